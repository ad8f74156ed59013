//! OpenAPI formats asserted the same way under 3.0 and 3.1, integers read exactly, custom
//! formats and the assertion switch; non-JSON bodies limited and validated by the layer.
#![cfg(feature = "contract")]

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use steadfast::contract::{Contract, ContractBody, ContractConfig, ContractLayer};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

const FORMATS_30: &str = include_str!("fixtures/formats-3.0.yaml");
const FORMATS_31: &str = include_str!("fixtures/formats-3.1.json");

fn sku(text: &str) -> bool {
    text.len() == 8 && text.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

fn contract(document: &str) -> Contract {
    Contract::builder()
        .openapi(document)
        .format("sku", sku)
        .build()
        .expect("the fixtures compile")
}

/// A handler that reads the body whole and answers 201 (200 for GET) with what it read.
fn service(
    contract: Contract,
    config: ContractConfig,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<steadfast::core::ResponseBody<Full<Bytes>>>,
    Error = BoxError,
> + Clone {
    let layer = ContractLayer::new(contract, config).expect("valid settings");
    ServiceBuilder::new().layer(layer).service_fn(
        |request: Request<ContractBody<Full<Bytes>>>| async move {
            let status = if request.method() == http::Method::GET {
                200
            } else {
                201
            };
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                // What Axum does with a body that went past its limit: a plain-text 413.
                Err(_) => {
                    return Ok::<_, BoxError>(
                        Response::builder()
                            .status(413)
                            .header("content-type", "text/plain")
                            .body(Full::new(Bytes::from_static(b"length limit exceeded")))
                            .unwrap(),
                    );
                }
            };
            Ok::<_, BoxError>(
                Response::builder()
                    .status(status)
                    .body(Full::new(body))
                    .unwrap(),
            )
        },
    )
}

async fn send(
    service: &mut (
             impl Service<
        Request<Full<Bytes>>,
        Response = Response<steadfast::core::ResponseBody<Full<Bytes>>>,
        Error = BoxError,
    > + Clone
         ),
    request: Request<Full<Bytes>>,
) -> (StatusCode, Value, Bytes) {
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let status = response.status();
    let is_problem = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value == "application/problem+json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let problem = if is_problem {
        serde_json::from_slice(&bytes).unwrap()
    } else {
        Value::Null
    };
    (status, problem, bytes)
}

fn post(uri: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

/// (pointer, keyword) of each violation.
fn violations(problem: &Value) -> Vec<(String, String)> {
    problem["violations"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| {
                    (
                        v["pointer"].as_str().unwrap().to_owned(),
                        v["keyword"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One property value, and whether each dialect accepts it: (3.0, 3.1).
struct Case {
    field: &'static str,
    value: Value,
    valid: (bool, bool),
}

fn cases() -> Vec<Case> {
    let both = |field, value, valid| Case {
        field,
        value,
        valid: (valid, valid),
    };
    vec![
        both("i32", json!(2147483647), true),
        both("i32", json!(-2147483648), true),
        both("i32", json!(2147483648u64), false),
        both("i32", json!(-2147483649i64), false),
        both("i64", json!(9223372036854775807i64), true),
        both("i64", json!(-9223372036854775808i64), true),
        both("i64", json!(9223372036854775808u64), false),
        both("f", json!(3.5), true),
        both("f", json!(1e300), true),
        both("d", json!(-0.25), true),
        both("id", json!("3e4666bf-d5e5-4aa7-b8ce-cefe41c7568a"), true),
        both("id", json!("3E4666BF-D5E5-4AA7-B8CE-CEFE41C7568A"), true),
        both("id", json!("3e4666bfd5e54aa7b8cecefe41c7568a"), false),
        both("id", json!("not-a-uuid"), false),
        both("day", json!("2026-12-02"), true),
        both("day", json!("2026-02-30"), false),
        both("day", json!("02/12/2026"), false),
        both("at", json!("2026-12-02T19:03:38Z"), true),
        both("at", json!("2026-12-02T19:03:38+01:00"), true),
        both("at", json!("2026-12-02 19:03:38"), false),
        both("mail", json!("ops@example.com"), true),
        both("mail", json!("ops.example.com"), false),
        both("link", json!("https://example.com/a?b=c"), true),
        both("link", json!("/relative/only"), false),
        both("host", json!("api.example.com"), true),
        both("host", json!("-bad-.example"), false),
        both("v4", json!("192.168.0.1"), true),
        both("v4", json!("256.1.1.1"), false),
        both("v6", json!("::1"), true),
        both("v6", json!("12345::"), false),
        both("span", json!("P1DT2H"), true),
        both("span", json!("1 day"), false),
        both("ref", json!("../a/b"), true),
        both("ref", json!("\\\\bad"), false),
        both("secret", json!("anything at all"), true),
        both("sku", json!("AB12CD34"), true),
        both("sku", json!("AB-12"), false),
        both("other", json!("whatever"), true),
        // OpenAPI 3.0's `byte` is base64; 3.1 spells that `contentEncoding`.
        Case {
            field: "blob",
            value: json!("Zm9vYg=="),
            valid: (true, true),
        },
        Case {
            field: "blob",
            value: json!("Zm9vYg"),
            valid: (false, true),
        },
        Case {
            field: "blob",
            value: json!("not base64!"),
            valid: (false, true),
        },
    ]
}

#[tokio::test]
async fn body_formats_are_asserted_alike_under_30_and_31() {
    for (document, dialect) in [(FORMATS_30, "3.0"), (FORMATS_31, "3.1")] {
        let mut service = service(contract(document), ContractConfig::default());
        for case in cases() {
            let valid = if dialect == "3.0" {
                case.valid.0
            } else {
                case.valid.1
            };
            let body = json!({ case.field: case.value }).to_string();
            let (status, problem, _) =
                send(&mut service, post("/things", "application/json", body)).await;
            let what = format!("{dialect}: {} = {}", case.field, case.value);
            if valid {
                assert_eq!(status, 201, "{what} is valid: {problem}");
            } else {
                assert_eq!(status, 422, "{what} is invalid");
                assert_eq!(
                    violations(&problem),
                    [(format!("/body/{}", case.field), "format".to_owned())],
                    "{what}"
                );
                let message = problem["violations"][0]["message"].as_str().unwrap();
                assert!(
                    !message.contains(&case.value.to_string()),
                    "{what}: the message does not echo the value: {message}"
                );
            }
        }
    }
}

/// A URI, the status expected, and the (pointer, keyword) of each violation expected.
type ParamRow = (
    &'static str,
    StatusCode,
    &'static [(&'static str, &'static str)],
);

#[tokio::test]
async fn integer_parameters_are_read_exactly_and_their_formats_asserted() {
    let rows: [ParamRow; 13] = [
        ("/things/9223372036854775807", StatusCode::OK, &[]),
        (
            "/things/9223372036854775808",
            StatusCode::BAD_REQUEST,
            &[("/path/id", "format")],
        ),
        ("/things/-9223372036854775808", StatusCode::OK, &[]),
        (
            "/things/-9223372036854775809",
            StatusCode::BAD_REQUEST,
            &[("/path/id", "format")],
        ),
        (
            "/things/99999999999999999999999",
            StatusCode::BAD_REQUEST,
            &[("/path/id", "format")],
        ),
        (
            "/things/1.0",
            StatusCode::BAD_REQUEST,
            &[("/path/id", "type")],
        ),
        (
            "/things/12abc",
            StatusCode::BAD_REQUEST,
            &[("/path/id", "type")],
        ),
        ("/things/1?limit=100", StatusCode::OK, &[]),
        (
            "/things/1?limit=2147483648",
            StatusCode::BAD_REQUEST,
            &[("/query/limit", "format"), ("/query/limit", "maximum")],
        ),
        // Beyond 2^53 a float would round 2^53 + 1 down to 2^53 and let it through.
        ("/things/1?big=9007199254740992", StatusCode::OK, &[]),
        (
            "/things/1?big=9007199254740993",
            StatusCode::BAD_REQUEST,
            &[("/query/big", "maximum")],
        ),
        (
            "/things/1?key=3e4666bf-d5e5-4aa7-b8ce-cefe41c7568a",
            StatusCode::OK,
            &[],
        ),
        (
            "/things/1?key=nope",
            StatusCode::BAD_REQUEST,
            &[("/query/key", "format")],
        ),
    ];
    for (document, dialect) in [(FORMATS_30, "3.0"), (FORMATS_31, "3.1")] {
        let mut service = service(contract(document), ContractConfig::default());
        for (uri, expected, expected_violations) in rows {
            let (status, problem, _) = send(&mut service, get(uri)).await;
            assert_eq!(status, expected, "{dialect} {uri}: {problem}");
            let mut found = violations(&problem);
            found.sort();
            let mut wanted: Vec<(String, String)> = expected_violations
                .iter()
                .map(|(p, k)| (p.to_string(), k.to_string()))
                .collect();
            wanted.sort();
            assert_eq!(found, wanted, "{dialect} {uri}");
        }
    }
}

#[tokio::test]
async fn format_assertion_can_be_switched_off_per_contract() {
    for document in [FORMATS_30, FORMATS_31] {
        let contract = Contract::builder()
            .openapi(document)
            .format("sku", sku)
            .assert_formats(false)
            .build()
            .unwrap();
        let mut service = service(contract, ContractConfig::default());
        let body = json!({"id": "nope", "i32": 1u64 << 40, "sku": "x", "day": "never"});
        let (status, problem, _) = send(
            &mut service,
            post("/things", "application/json", body.to_string()),
        )
        .await;
        assert_eq!(status, 201, "{problem}");
        // Other keywords still apply.
        let (status, _, _) = send(&mut service, get("/things/1?limit=101")).await;
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn a_custom_format_replaces_a_built_in_one() {
    let contract = Contract::builder()
        .openapi(FORMATS_31)
        .format("email", |text| text.ends_with("@example.com"))
        .build()
        .unwrap();
    let mut service = service(contract, ContractConfig::default());
    for (mail, status) in [("a@example.com", 201), ("a@example.org", 422)] {
        let body = json!({ "mail": mail }).to_string();
        let (got, _, _) = send(&mut service, post("/things", "application/json", body)).await;
        assert_eq!(got, status, "{mail}");
    }
}

#[test]
fn a_custom_format_applies_to_schemas_attached_in_code() {
    use steadfast::contract::RouteSchemas;
    let contract = Contract::builder()
        .format("even-length", |text| text.len() % 2 == 0)
        .route(
            http::Method::POST,
            "/x",
            RouteSchemas::new().request_body(json!({"type": "string", "format": "even-length"})),
        )
        .build();
    assert!(contract.is_ok());
}

#[tokio::test]
async fn formats_in_code_attached_schemas_are_checked() {
    use steadfast::contract::RouteSchemas;
    let contract = Contract::builder()
        .format("even-length", |text| text.len() % 2 == 0)
        .route(
            http::Method::POST,
            "/x",
            RouteSchemas::new().request_body(json!({
                "type": "object",
                "properties": {
                    "word": {"type": "string", "format": "even-length"},
                    "n": {"type": "integer", "format": "int32"},
                    "id": {"type": "string", "format": "uuid"}
                }
            })),
        )
        .build()
        .unwrap();
    let mut service = service(contract, ContractConfig::default());
    for (body, status) in [
        (json!({"word": "ab", "n": 1}), 201),
        (json!({"word": "abc"}), 422),
        (json!({"n": 1u64 << 33}), 422),
        (json!({"id": "nope"}), 422),
    ] {
        let (got, _, _) = send(
            &mut service,
            post("/x", "application/json", body.to_string()),
        )
        .await;
        assert_eq!(got, status, "{body}");
    }
}
