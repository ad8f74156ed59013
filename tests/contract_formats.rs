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

/// (content type, body, status expected, (pointer, keyword) of each violation expected).
type BodyRow = (
    &'static str,
    &'static [u8],
    u16,
    &'static [(&'static str, &'static str)],
);

#[tokio::test]
async fn text_and_form_bodies_are_validated_where_the_document_gives_a_schema() {
    let rows: &[BodyRow] = &[
        ("text/plain", b"short", 201, &[]),
        ("text/plain; charset=utf-8", b"0123456789", 201, &[]),
        (
            "text/plain",
            b"much too long",
            422,
            &[("/body", "maxLength")],
        ),
        ("text/plain", b"\xff\xfe bad", 400, &[("/body", "syntax")]),
        (FORM, b"title=a&count=3&tags=x&tags=y&draft=true", 201, &[]),
        // An array property is an array even when given once.
        (FORM, b"title=a&tags=x", 201, &[]),
        (FORM, b"title=a+b%21", 201, &[]),
        (FORM, b"count=3", 422, &[("/body", "required")]),
        (FORM, b"title=", 422, &[("/body/title", "minLength")]),
        (FORM, b"title=a&count=abc", 422, &[("/body/count", "type")]),
        (FORM, b"title=a&count=1.5", 422, &[("/body/count", "type")]),
        (
            FORM,
            b"title=a&count=2147483648",
            422,
            &[("/body/count", "format")],
        ),
        (FORM, b"title=a&draft=yes", 422, &[("/body/draft", "type")]),
        // A field given twice that is not an array.
        (FORM, b"title=a&title=b", 422, &[("/body/title", "type")]),
        (
            FORM,
            b"title=a&extra=1",
            422,
            &[("/body", "additionalProperties")],
        ),
        // No schema the layer applies: handed on as it is.
        ("application/octet-stream", b"\x00\x01\x02", 201, &[]),
        (
            "image/png",
            b"\x89PNG",
            415,
            &[("/content-type", "contentType")],
        ),
    ];
    for (document, dialect) in [(FORMATS_30, "3.0"), (FORMATS_31, "3.1")] {
        let mut service = service(contract(document), ContractConfig::default());
        for (content_type, body, expected, expected_violations) in rows {
            let what = format!(
                "{dialect} {content_type} {:?}",
                String::from_utf8_lossy(body)
            );
            let (status, problem, echoed) = send(
                &mut service,
                post("/notes", content_type, Bytes::from_static(body)),
            )
            .await;
            assert_eq!(status.as_u16(), *expected, "{what}: {problem}");
            let wanted: Vec<(String, String)> = expected_violations
                .iter()
                .map(|(p, k)| (p.to_string(), k.to_string()))
                .collect();
            assert_eq!(violations(&problem), wanted, "{what}");
            if *expected == 201 {
                assert_eq!(
                    &echoed[..],
                    *body,
                    "{what}: the handler reads the same bytes"
                );
            }
        }
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn a_validated_form_body_reaches_the_handler_as_its_typed_value() {
    let layer = ContractLayer::new(contract(FORMATS_31), ContractConfig::default()).unwrap();
    let mut service = ServiceBuilder::new().layer(layer).service_fn(
        |request: Request<ContractBody<Full<Bytes>>>| async move {
            let value = request
                .extensions()
                .get::<steadfast::contract::ValidatedJson>()
                .map(|value| value.0.to_string())
                .unwrap_or_default();
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(value))))
        },
    );
    let response = service
        .ready()
        .await
        .unwrap()
        .call(post("/notes", FORM, "title=a&count=3&tags=x&draft=false"))
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        value,
        json!({"title": "a", "count": 3, "tags": ["x"], "draft": false})
    );
}

#[tokio::test]
async fn report_mode_hands_on_invalid_text_and_forms() {
    let config = ContractConfig::default().requests(steadfast::contract::Mode::Report);
    let mut service = service(contract(FORMATS_30), config);
    for (content_type, body) in [("text/plain", "much too long"), (FORM, "count=x")] {
        let (status, _, echoed) = send(&mut service, post("/notes", content_type, body)).await;
        assert_eq!(status, 201, "{content_type}");
        assert_eq!(&echoed[..], body.as_bytes());
    }
}

/// A body of `chunks` chunks of `size` bytes, streamed with no declared length; counts what
/// was pulled from it.
fn streamed(
    chunks: usize,
    size: usize,
    pulled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> http_body_util::StreamBody<
    impl futures::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
> {
    let stream = futures::stream::iter(0..chunks).map(move |_| {
        pulled.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        Ok(http_body::Frame::data(Bytes::from(vec![b'x'; size])))
    });
    http_body_util::StreamBody::new(stream)
}

use futures::StreamExt;

#[tokio::test]
async fn bodies_the_layer_does_not_read_are_limited_while_streaming_with_its_own_413() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let limit = 4096;
    for (document, content_type) in [
        (FORMATS_30, "application/octet-stream"),
        (FORMATS_31, "application/octet-stream"),
        // Read by the layer itself: the same answer.
        (FORMATS_30, "text/plain"),
        (FORMATS_31, FORM),
    ] {
        for (chunks, expected) in [(4, 201), (5, 413), (64, 413)] {
            let pulled = Arc::new(AtomicUsize::new(0));
            let received = Arc::new(AtomicUsize::new(0));
            let seen = received.clone();
            let layer = ContractLayer::new(
                contract(document),
                ContractConfig::default().max_body_bytes(limit),
            )
            .unwrap();
            let mut service = ServiceBuilder::new().layer(layer).service_fn(
                move |request: Request<ContractBody<_>>| {
                    let seen = seen.clone();
                    async move {
                        let mut body = request.into_body();
                        while let Some(frame) = body.frame().await {
                            match frame {
                                Ok(frame) => {
                                    if let Some(data) = frame.data_ref() {
                                        seen.fetch_add(data.len(), Ordering::Relaxed);
                                    }
                                }
                                // As Axum answers a body past its limit.
                                Err(_) => {
                                    return Ok::<_, BoxError>(
                                        Response::builder()
                                            .status(413)
                                            .body(Full::new(Bytes::from_static(b"too big")))
                                            .unwrap(),
                                    );
                                }
                            }
                        }
                        Ok(Response::builder()
                            .status(201)
                            .body(Full::new(Bytes::new()))
                            .unwrap())
                    }
                },
            );
            let body = streamed(chunks, 1024, pulled.clone());
            let request = Request::post("/notes")
                .header("content-type", content_type)
                .body(body)
                .unwrap();
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            let what = format!("{content_type}, {chunks} KiB");
            let status = response.status().as_u16();
            let problem = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v == "application/problem+json");
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            if content_type == "text/plain" && chunks == 4 {
                // 4 KiB of `x` is valid text but breaks maxLength 10.
                assert_eq!(status, 422, "{what}");
                continue;
            }
            if content_type == FORM && chunks == 4 {
                // One field named `xxx…` with no value: not a documented property.
                assert_eq!(status, 422, "{what}");
                continue;
            }
            assert_eq!(status, expected, "{what}");
            if expected == 413 {
                assert!(
                    problem,
                    "{what}: the layer's problem, not the handler's text"
                );
                let problem: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(
                    violations(&problem),
                    [("/body".to_owned(), "maxBodySize".to_owned())],
                    "{what}"
                );
            }
            assert!(
                received.load(Ordering::Relaxed) <= limit,
                "{what}: the handler never sees more than the limit"
            );
            // Never more than the limit held: the stream is pulled one chunk past it at most.
            assert!(
                pulled.load(Ordering::Relaxed) <= limit + 1024,
                "{what}: pulled {}",
                pulled.load(Ordering::Relaxed)
            );
        }
    }
}

#[tokio::test]
async fn a_handler_that_ignores_a_large_streamed_body_keeps_its_answer() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    let layer = ContractLayer::new(
        contract(FORMATS_30),
        ContractConfig::default().max_body_bytes(1024),
    )
    .unwrap();
    let mut service = ServiceBuilder::new().layer(layer).service_fn(
        |_request: Request<ContractBody<_>>| async move {
            Ok::<_, BoxError>(
                Response::builder()
                    .status(201)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
        },
    );
    let request = Request::post("/notes")
        .header("content-type", "application/octet-stream")
        .body(streamed(8, 1024, Arc::new(AtomicUsize::new(0))))
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_declared_length_past_the_limit_is_refused_before_the_handler() {
    let config = ContractConfig::default().max_body_bytes(16);
    let mut service = service(contract(FORMATS_31), config);
    let mut request = post("/notes", "application/octet-stream", vec![0u8; 17]);
    request
        .headers_mut()
        .insert("content-length", http::HeaderValue::from_static("17"));
    let (status, problem, _) = send(&mut service, request).await;
    assert_eq!(status, 413);
    assert_eq!(
        violations(&problem),
        [("/body".to_owned(), "maxBodySize".to_owned())]
    );
}
