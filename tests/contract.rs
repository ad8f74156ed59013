//! Contract validation against an OpenAPI 3.0 (YAML) and a 3.1 (JSON) document of our own.
#![cfg(all(feature = "contract", feature = "axum"))]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
use serde_json::{Value, json};
use steadfast::contract::{
    Contract, ContractBody, ContractConfig, ContractLayer, GrpcMethod, Mode, RouteModes,
    RouteSchemas, Undocumented, ValidatedJson,
};
use steadfast::core::{Rejection, RejectionKind};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

mod common;

const PETSTORE_30: &str = include_str!("fixtures/petstore-3.0.yaml");
const PETSTORE_31: &str = include_str!("fixtures/petstore-3.1.json");

type Handler = Arc<dyn Fn(&Request<()>, Bytes) -> Response<Full<Bytes>> + Send + Sync>;

/// What the handler saw: the requests that reached it, with their bodies.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Sighting>>>);

type Sighting = (Request<()>, Bytes);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn last_body(&self) -> Bytes {
        self.0.lock().unwrap().last().unwrap().1.clone()
    }

    fn last_validated(&self) -> Option<Value> {
        let seen = self.0.lock().unwrap();
        let (request, _) = seen.last().unwrap();
        request
            .extensions()
            .get::<ValidatedJson>()
            .map(|json| (*json.0).clone())
    }
}

fn ok_json(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn fixed(response: impl Fn() -> Response<Full<Bytes>> + Send + Sync + 'static) -> Handler {
    Arc::new(move |_, _| response())
}

/// A service behind the contract layer whose handler reads the whole body, then answers.
fn service<B>(
    contract: &str,
    config: ContractConfig,
    handler: Handler,
    seen: Seen,
) -> impl Service<
    Request<B>,
    Response = Response<steadfast::core::ResponseBody<Full<Bytes>>>,
    Error = BoxError,
> + Clone
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let contract = Contract::from_openapi(contract).expect("the test documents compile");
    let layer = ContractLayer::new(contract, config).expect("valid settings");
    ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |request: Request<ContractBody<B>>| {
            let handler = handler.clone();
            let seen = seen.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body.collect().await?.to_bytes();
                let head = Request::from_parts(parts, ());
                let response = handler(&head, bytes.clone());
                seen.0.lock().unwrap().push((head, bytes));
                Ok::<_, BoxError>(response)
            }
        })
}

fn json_request(method: &str, uri: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn empty_request(method: &str, uri: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn problem<B>(response: Response<B>) -> Value
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn pointers(problem: &Value) -> Vec<(String, String)> {
    problem["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["pointer"].as_str().unwrap().to_owned(),
                v["keyword"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The response is a problem with `status` listing exactly these (pointer, keyword) pairs.
async fn expect_violations<B>(response: Response<B>, status: StatusCode, expected: &[(&str, &str)])
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    assert_eq!(response.status(), status);
    let mut found = pointers(&problem(response).await);
    found.sort();
    let mut expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, k)| (p.to_string(), k.to_string()))
        .collect();
    expected.sort();
    assert_eq!(found, expected);
}

fn pet_201() -> Handler {
    fixed(|| ok_json(201, json!({"id": 1, "name": "Rex", "kind": "dog"})))
}

// ---------------------------------------------------------------- requests, OpenAPI 3.0

#[tokio::test]
async fn a_valid_request_reaches_the_handler_with_its_bytes_and_value() {
    let seen = Seen::default();
    let svc = service(
        PETSTORE_30,
        ContractConfig::default(),
        pet_201(),
        seen.clone(),
    );
    let body = r#"{"name":"Rex","kind":"dog","nickname":null,"tags":["a"]}"#;
    let response = svc
        .oneshot(json_request("POST", "/pets", body))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(seen.last_body(), body, "the same bytes are handed on");
    assert_eq!(
        seen.last_validated(),
        Some(serde_json::from_str::<Value>(body).unwrap())
    );
}

#[tokio::test]
async fn path_query_and_header_parameters_are_checked() {
    let seen = Seen::default();
    let handler = fixed(|| ok_json(200, json!([])));
    let svc = service(
        PETSTORE_30,
        ContractConfig::default(),
        handler,
        seen.clone(),
    );

    let ok = svc
        .clone()
        .oneshot(
            Request::get("/pets?limit=10&kind=cat&tags=a,b")
                .header("x-request-id", "0123abcd")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    type Pairs = &'static [(&'static str, &'static str)];
    let cases: [(&str, Pairs, Pairs); 6] = [
        ("/pets", &[], &[("/query/limit", "required")]),
        ("/pets?limit=ten", &[], &[("/query/limit", "type")]),
        ("/pets?limit=0", &[], &[("/query/limit", "minimum")]),
        ("/pets?limit=5&kind=cow", &[], &[("/query/kind", "enum")]),
        (
            "/pets?limit=5&tags=short,muchtoolong",
            &[],
            &[("/query/tags/1", "maxLength")],
        ),
        (
            "/pets?limit=5",
            &[("x-request-id", "nope")],
            &[("/header/x-request-id", "pattern")],
        ),
    ];
    for (uri, headers, expected) in cases {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = svc
            .clone()
            .oneshot(request.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
        let problem = problem(response).await;
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(p, k)| (p.to_string(), k.to_string()))
            .collect();
        assert_eq!(pointers(&problem), expected, "{uri}");
    }

    let response = svc
        .clone()
        .oneshot(empty_request("GET", "/pets/abc"))
        .await
        .unwrap();
    expect_violations(response, StatusCode::BAD_REQUEST, &[("/path/id", "type")]).await;
    assert_eq!(
        seen.count(),
        1,
        "only the valid request reached the handler"
    );
}

#[tokio::test]
async fn the_body_schema_is_checked_with_pointers_keywords_and_short_messages() {
    let seen = Seen::default();
    let svc = service(
        PETSTORE_30,
        ContractConfig::default(),
        pet_201(),
        seen.clone(),
    );
    let huge = "x".repeat(100_000);
    let body = json!({"name": huge, "kind": "cow", "age": -1, "extra": true}).to_string();
    let response = svc
        .oneshot(json_request("POST", "/pets", &body))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(response).await;
    assert_eq!(problem["status"], 422);
    assert_eq!(
        problem["type"],
        "https://docs.rs/steadfast/latest/steadfast/core/enum.RejectionKind.html#variant.InvalidRequest"
    );
    let mut found = pointers(&problem);
    found.sort();
    assert_eq!(
        found,
        [
            ("/body".to_owned(), "additionalProperties".to_owned()),
            ("/body/age".to_owned(), "minimum".to_owned()),
            ("/body/kind".to_owned(), "enum".to_owned()),
            ("/body/name".to_owned(), "maxLength".to_owned()),
        ]
    );
    let text = problem.to_string();
    assert!(text.len() < 2_000, "no echo of the input: {text}");
    assert!(!text.contains("xxxxxxxxxx"));
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn nullable_and_ref_request_bodies_follow_openapi_30() {
    let seen = Seen::default();
    let svc = service(
        PETSTORE_30,
        ContractConfig::default(),
        pet_201(),
        seen.clone(),
    );
    let response = svc
        .clone()
        .oneshot(json_request(
            "POST",
            "/pets",
            r#"{"name":"a","kind":"cat","nickname":null}"#,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = svc
        .oneshot(json_request(
            "POST",
            "/pets",
            r#"{"name":"a","kind":"cat","age":null}"#,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn violations_are_capped_and_the_rest_counted() {
    let config = ContractConfig::default().max_violations(2);
    let svc = service(PETSTORE_30, config, pet_201(), Seen::default());
    let tags: Vec<i32> = (0..5).collect();
    let body = json!({"name": 1, "kind": 2, "tags": tags}).to_string();
    let problem = problem(
        svc.oneshot(json_request("POST", "/pets", &body))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(problem["violations"].as_array().unwrap().len(), 2);
    // name: type; kind: type and enum; five tags: type.
    assert_eq!(problem["violations_omitted"], 6);
}

#[tokio::test]
async fn media_types_syntax_and_required_bodies() {
    let seen = Seen::default();
    let svc = service(
        PETSTORE_30,
        ContractConfig::default(),
        pet_201(),
        seen.clone(),
    );

    let text = Request::post("/pets")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"hi")))
        .unwrap();
    let response = svc.clone().oneshot(text).await.unwrap();
    expect_violations(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &[("/content-type", "contentType")],
    )
    .await;

    let broken = json_request("POST", "/pets", r#"{"name": "a", "#);
    let response = svc.clone().oneshot(broken).await.unwrap();
    expect_violations(response, StatusCode::BAD_REQUEST, &[("/body", "syntax")]).await;

    let response = svc
        .clone()
        .oneshot(empty_request("POST", "/pets"))
        .await
        .unwrap();
    expect_violations(response, StatusCode::BAD_REQUEST, &[("/body", "required")]).await;

    // `application/merge-patch+json` is JSON, but not a documented type for this operation.
    let response = svc
        .clone()
        .oneshot(
            Request::post("/pets")
                .header("content-type", "application/merge-patch+json")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A wildcard media range; a parameter on the content type does not matter.
    let photo = Request::put("/pets/3/photo")
        .header("content-type", "image/png; q=1")
        .body(Full::new(Bytes::from_static(b"\x89PNG")))
        .unwrap();
    let response = svc.clone().oneshot(photo).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(seen.last_body(), &b"\x89PNG"[..]);
}

// ---------------------------------------------------------------- body size

/// A body of `chunks` chunks of `size` bytes, with no length known in advance, that counts
/// how many chunks were pulled from it.
fn chunked(
    chunks: usize,
    size: usize,
    pulled: Arc<AtomicUsize>,
) -> StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send> {
    let stream = futures::stream::iter(0..chunks).map(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
        Ok(Frame::data(Bytes::from(vec![b' '; size])))
    });
    StreamBody::new(stream)
}

#[tokio::test]
async fn a_chunked_body_without_length_is_cut_off_at_the_limit_with_413() {
    let seen = Seen::default();
    let config = ContractConfig::default().max_body_bytes(10_000);
    let svc = service(PETSTORE_30, config, pet_201(), seen.clone());
    let pulled = Arc::new(AtomicUsize::new(0));
    let request = Request::post("/pets")
        .header("content-type", "application/json")
        .body(chunked(1_000, 1_000, pulled.clone()))
        .unwrap();
    assert!(request.headers().get("content-length").is_none());
    let response = svc.oneshot(request).await.unwrap();
    expect_violations(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        &[("/body", "maxBodySize")],
    )
    .await;
    // Ten chunks fit, the eleventh passes the limit: nothing more is read.
    assert_eq!(pulled.load(Ordering::SeqCst), 11);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_reading() {
    let config = ContractConfig::default().max_body_bytes(10);
    let svc = service(PETSTORE_30, config, pet_201(), Seen::default());
    let pulled = Arc::new(AtomicUsize::new(0));
    let request = Request::post("/pets")
        .header("content-type", "application/json")
        .header("content-length", "1000")
        .body(chunked(1, 1000, pulled.clone()))
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(pulled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_streamed_body_that_is_not_json_errors_past_the_limit() {
    let config = ContractConfig::default().max_body_bytes(100);
    let handler_error = Arc::new(Mutex::new(None));
    let contract = Contract::from_openapi(PETSTORE_30).unwrap();
    let error_slot = handler_error.clone();
    let svc = ServiceBuilder::new()
        .layer(ContractLayer::new(contract, config).unwrap())
        .service_fn(move |request: Request<ContractBody<_>>| {
            let error_slot = error_slot.clone();
            async move {
                if let Err(error) = request.into_body().collect().await {
                    let too_large = error
                        .downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some();
                    *error_slot.lock().unwrap() = Some(too_large);
                }
                Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
            }
        });
    let request = Request::put("/pets/1/photo")
        .header("content-type", "image/png")
        .body(chunked(10, 50, Arc::new(AtomicUsize::new(0))))
        .unwrap();
    svc.oneshot(request).await.unwrap();
    assert_eq!(*handler_error.lock().unwrap(), Some(true));
}

// ---------------------------------------------------------------- hostile input

#[tokio::test]
async fn hostile_bodies_are_answered_not_crashed_on() {
    let svc = service(
        PETSTORE_30,
        ContractConfig::default(),
        pet_201(),
        Seen::default(),
    );
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let cases: Vec<(Vec<u8>, StatusCode)> = vec![
        (deep.into_bytes(), StatusCode::BAD_REQUEST),
        (
            br#"{"name":"a","kind":"cat","age":1e999999}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            br#"{"name":"a","kind":"cat","age":123456789012345678901234567890}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            b"{\"name\":\"\xff\xfe\",\"kind\":\"cat\"}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            br#"{"name":"a","kind":"cat","kind":"dog"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, status) in cases {
        let request = Request::post("/pets")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let response = svc.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            status,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        let problem = problem(response).await;
        assert!(problem.to_string().len() < 1_000);
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_ends_is_stopped_by_the_timeout_layer() {
    use steadfast::timeout::TimeoutLayer;
    let contract = Contract::from_openapi(PETSTORE_30).unwrap();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(2)).unwrap())
        .layer(ContractLayer::new(contract, ContractConfig::default()).unwrap())
        .service_fn(|_: Request<ContractBody<_>>| async {
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
        });
    // A slow sender: one byte, then nothing, forever.
    let stream =
        futures::stream::once(async { Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"{"))) })
            .chain(futures::stream::pending());
    let request = Request::post("/pets")
        .header("content-type", "application/json")
        .body(StreamBody::new(stream))
        .unwrap();
    let started = tokio::time::Instant::now();
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

// ---------------------------------------------------------------- OpenAPI 3.1

#[tokio::test]
async fn openapi_31_documents_use_json_schema_2020_12() {
    let seen = Seen::default();
    let handler = fixed(|| {
        ok_json(
            201,
            json!({"id": "5b6f2a8e-4a0b-4c9e-9c55-2f3c1d9a7e10", "name": "Rex"}),
        )
    });
    let svc = service(
        PETSTORE_31,
        ContractConfig::default(),
        handler,
        seen.clone(),
    );
    let post = |body: &str, tenant: Option<&str>, query: &str| {
        let mut request =
            Request::post(format!("/pets{query}")).header("content-type", "application/json");
        if let Some(tenant) = tenant {
            request = request.header("x-tenant", tenant);
        }
        request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    let ok = svc
        .clone()
        .oneshot(post(
            r#"{"name":"Rex","nickname":null,"weight":2.5,"born":"2020-02-29"}"#,
            Some("acme"),
            "?dry_run=true",
        ))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);

    let response = svc
        .clone()
        .oneshot(post(r#"{"name":"Rex"}"#, None, "?dry_run=maybe"))
        .await
        .unwrap();
    expect_violations(
        response,
        StatusCode::BAD_REQUEST,
        &[("/header/x-tenant", "required"), ("/query/dry_run", "type")],
    )
    .await;

    let response = svc
        .clone()
        .oneshot(post(
            r#"{"name":"Rex","weight":0,"born":"2020-02-30"}"#,
            Some("acme"),
            "",
        ))
        .await
        .unwrap();
    expect_violations(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            ("/body/born", "format"),
            ("/body/weight", "exclusiveMinimum"),
        ],
    )
    .await;

    let response = svc
        .clone()
        .oneshot(empty_request("GET", "/pets/not-a-uuid"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(seen.count(), 1);
}

// ---------------------------------------------------------------- responses

fn violations_counted(snapshotter: &Snapshotter) -> Vec<(String, String, String, u64)> {
    common::counters(
        snapshotter,
        "steadfast.contract.violations",
        &["route", "direction", "keyword"],
    )
    .into_iter()
    .map(|(labels, n)| (labels[0].clone(), labels[1].clone(), labels[2].clone(), n))
    .collect()
}

#[tokio::test]
async fn report_mode_passes_invalid_responses_unchanged_and_counts_them() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let bad = json!({"id": "one", "name": "Rex", "kind": "dog"});
    let handler = fixed(move || ok_json(201, bad.clone()));
    let svc = service(
        PETSTORE_30,
        ContractConfig::default(),
        handler,
        Seen::default(),
    );
    let response = svc
        .oneshot(json_request(
            "POST",
            "/pets",
            r#"{"name":"Rex","kind":"dog"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"id": "one", "name": "Rex", "kind": "dog"})
    );
    assert_eq!(
        violations_counted(&snapshotter),
        [(
            "/pets".to_owned(),
            "response".to_owned(),
            "type".to_owned(),
            1
        )]
    );
}

#[tokio::test]
async fn enforce_mode_turns_invalid_responses_into_500_problems() {
    let config = ContractConfig::default().responses(Mode::Enforce);
    let bad = fixed(|| ok_json(201, json!({"name": "Rex", "kind": "dog"})));
    let svc = service(PETSTORE_30, config.clone(), bad, Seen::default());
    let response = svc
        .oneshot(json_request(
            "POST",
            "/pets",
            r#"{"name":"Rex","kind":"dog"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let rejection = response.extensions().get::<Rejection>().unwrap();
    assert_eq!(rejection.kind(), RejectionKind::InvalidResponse);
    let problem = problem(response).await;
    assert!(
        problem.get("violations").is_none(),
        "internals stay in the logs"
    );

    // Undocumented status, undocumented content type, a body where none is documented.
    let cases: Vec<(&str, &str, Handler)> = vec![
        ("/pets/1", "status", fixed(|| ok_json(418, json!({})))),
        (
            "/pets/1",
            "contentType",
            fixed(|| {
                Response::builder()
                    .status(200)
                    .header("content-type", "text/html")
                    .body(Full::new(Bytes::from_static(b"<p>")))
                    .unwrap()
            }),
        ),
        ("/pets/1", "contentType", fixed(|| ok_json(404, json!({})))),
    ];
    for (uri, keyword, handler) in cases {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let svc = service(PETSTORE_30, config.clone(), handler, Seen::default());
        let response = svc.oneshot(empty_request("GET", uri)).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{keyword}"
        );
        let counted = violations_counted(&snapshotter);
        assert_eq!(counted[0].2, keyword);
    }

    // A documented range (4XX) and an empty documented response pass.
    let problem_404 = fixed(|| {
        Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()))
            .unwrap()
    });
    let svc = service(PETSTORE_30, config.clone(), problem_404, Seen::default());
    let response = svc.oneshot(empty_request("GET", "/pets/1")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn response_sampling_checks_the_chosen_share() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let config = ContractConfig::default().response_sample_rate(0.25);
    let bad = fixed(|| ok_json(200, json!({"id": "x"})));
    let svc = service(PETSTORE_30, config, bad, Seen::default());
    for _ in 0..40 {
        let response = svc
            .clone()
            .oneshot(empty_request("GET", "/pets/7"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Each checked response has the same violations (id type, name and kind required).
    let counted = violations_counted(&snapshotter);
    let checked: u64 = counted
        .iter()
        .filter(|(_, _, keyword, _)| keyword == "type")
        .map(|(.., n)| n)
        .sum();
    assert_eq!(checked, 10, "{counted:?}");
}

#[tokio::test]
async fn per_route_modes_override_the_defaults() {
    let config = ContractConfig::default().responses(Mode::Enforce).route(
        "/pets",
        RouteModes::new()
            .requests(Mode::Report)
            .responses(Mode::Off),
    );
    let seen = Seen::default();
    let bad = fixed(|| ok_json(201, json!({"nothing": "documented"})));
    let svc = service(PETSTORE_30, config, bad, seen.clone());
    let response = svc
        .clone()
        .oneshot(json_request("POST", "/pets", r#"{"name": 5}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "reported, passed");
    assert_eq!(seen.last_body(), r#"{"name": 5}"#);
    assert_eq!(
        seen.last_validated(),
        None,
        "not validated, so not handed on as such"
    );

    let response = svc.oneshot(empty_request("GET", "/pets/1")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

// ---------------------------------------------------------------- undocumented, errors, shape

#[tokio::test]
async fn undocumented_routes_pass_or_get_404_and_405() {
    let seen = Seen::default();
    let ok = fixed(|| Response::new(Full::new(Bytes::new())));
    let svc = service(
        PETSTORE_30,
        ContractConfig::default(),
        ok.clone(),
        seen.clone(),
    );
    let response = svc.oneshot(empty_request("GET", "/owners")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.count(), 1);

    let config = ContractConfig::default().undocumented(Undocumented::Reject);
    let svc = service(PETSTORE_30, config, ok, seen.clone());
    let response = svc
        .clone()
        .oneshot(empty_request("GET", "/owners"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    problem(response).await;
    let response = svc
        .oneshot(empty_request("PATCH", "/pets/1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, DELETE");
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn the_problem_shape_can_be_replaced() {
    let config = ContractConfig::default().problem_formatter(|rejection| {
        let errors: Vec<String> = rejection
            .violations()
            .iter()
            .map(|v| format!("{} {}", v.pointer(), v.keyword()))
            .collect();
        Response::builder()
            .status(rejection.status())
            .header("content-type", "application/vnd.acme.error+json")
            .body(Bytes::from(json!({"errors": errors}).to_string()))
            .unwrap()
    });
    let svc = service(PETSTORE_30, config, pet_201(), Seen::default());
    let response = svc
        .oneshot(json_request("POST", "/pets", r#"{"name":"a"}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.acme.error+json"
    );
    assert!(response.extensions().get::<Rejection>().is_some());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"errors": ["/body required"]})
    );
}

#[test]
fn broken_documents_are_start_up_errors_that_name_the_place() {
    let cases = [
        (
            PETSTORE_30.replace(
                "#/components/schemas/Pet\" }\n    post",
                "#/components/schemas/Nope\" }\n    post",
            ),
            "/paths/~1pets/get/responses/200/content/application~1json/schema",
            "",
        ),
        (
            PETSTORE_30.replace("openapi: 3.0.3", "openapi: 2.0"),
            "/openapi",
            "2.0",
        ),
        (
            PETSTORE_30.replace(
                "$ref: \"#/components/requestBodies/NewPet\"",
                "$ref: \"#/components/requestBodies/Gone\"",
            ),
            "/paths/~1pets/post/requestBody/$ref",
            "does not exist",
        ),
        (
            PETSTORE_30.replace("minLength: 1, maxLength: 40", "minLength: -1"),
            "/components/schemas/NewPet/properties/name/minLength",
            "-1 is less than the minimum of 0",
        ),
        (
            PETSTORE_30.replace(
                "  /pets/{id}/photo:\n    parameters:\n      - name: id",
                "  /pets/{id}/photo:\n    parameters:\n      - name: pet",
            ),
            "/paths/~1pets~1{id}~1photo/put/parameters",
            "`id` is not documented",
        ),
        ("openapi: [3".to_owned(), "", "YAML"),
    ];
    for (document, pointer, reason) in cases {
        let error = Contract::from_openapi(&document).unwrap_err();
        assert_eq!(error.pointer(), pointer, "{error}");
        assert!(error.reason().contains(reason), "{error}");
        assert!(error.to_string().contains(pointer));
    }
}

#[test]
fn settings_are_validated_with_the_key_named() {
    let contract = || Contract::from_openapi(PETSTORE_30).unwrap();
    let cases = [
        (
            ContractConfig::default().response_sample_rate(1.5),
            "response_sample_rate",
        ),
        (
            ContractConfig::default().max_body_bytes(0),
            "max_body_bytes",
        ),
        (
            ContractConfig::default().max_violations(0),
            "max_violations",
        ),
        (
            ContractConfig::default().route("/nope", RouteModes::new()),
            "routes",
        ),
        (
            ContractConfig::default().route("/pets", RouteModes::new().response_sample_rate(-0.1)),
            "routes.response_sample_rate",
        ),
    ];
    for (config, key) in cases {
        let error = ContractLayer::new(contract(), config).unwrap_err();
        assert_eq!(error.key(), key);
    }
}

// ---------------------------------------------------------------- schemas in code

#[tokio::test]
async fn json_schemas_attached_in_code() {
    let contract = Contract::builder()
        .route(
            http::Method::POST,
            "/orders/{id}/items",
            RouteSchemas::new()
                .request_body(json!({
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}}
                }))
                .response_empty(204),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(
            ContractLayer::new(contract, ContractConfig::default().responses(Mode::Enforce))
                .unwrap(),
        )
        .service_fn(|_: Request<ContractBody<Full<Bytes>>>| async {
            Ok::<_, BoxError>(
                Response::builder()
                    .status(204)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
        });
    let response = svc
        .clone()
        .oneshot(json_request(
            "POST",
            "/orders/9/items",
            r#"{"sku":"a","quantity":0}"#,
        ))
        .await
        .unwrap();
    expect_violations(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/body/quantity", "minimum")],
    )
    .await;
    let response = svc
        .oneshot(json_request(
            "POST",
            "/orders/9/items",
            r#"{"sku":"a","quantity":2}"#,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let error = Contract::builder()
        .route(
            http::Method::GET,
            "/x",
            RouteSchemas::new().response_body(200, json!({"type": 12})),
        )
        .build()
        .unwrap_err();
    assert_eq!(error.pointer(), "code:GET /x/responses/200");
}

// ---------------------------------------------------------------- Axum

#[tokio::test]
async fn through_an_axum_router_with_matched_path() {
    use axum::routing::{get, post};
    use axum::{Json, Router};

    async fn create(Json(pet): Json<Value>) -> (StatusCode, Json<Value>) {
        let mut pet = pet;
        pet["id"] = json!(1);
        (StatusCode::CREATED, Json(pet))
    }
    async fn photo(body: Bytes) -> StatusCode {
        assert!(!body.is_empty());
        StatusCode::NO_CONTENT
    }
    let contract = Contract::from_openapi(PETSTORE_30).unwrap();
    let app = Router::new()
        .route("/pets", post(create))
        .route("/pets/{id}", get(|| async { "not json" }))
        .route("/pets/{id}/photo", axum::routing::put(photo))
        .layer(
            ContractLayer::new(
                contract,
                ContractConfig::default()
                    .responses(Mode::Enforce)
                    .max_body_bytes(1_000),
            )
            .unwrap(),
        );
    let request = |method: &str, uri: &str, ct: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", ct)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(request(
            "POST",
            "/pets",
            "application/json",
            br#"{"name":"Rex","kind":"dog"}"#.to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let response = app
        .clone()
        .oneshot(request(
            "POST",
            "/pets",
            "application/json",
            br#"{"name":"Rex"}"#.to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The handler answers text where the contract says JSON: enforced as a 500.
    let response = app
        .clone()
        .oneshot(
            Request::get("/pets/3")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // A streamed upload past the limit: Axum's own extractor answers 413 from our body error.
    let stream =
        futures::stream::iter((0..20).map(|_| Ok::<_, Infallible>(Bytes::from(vec![0u8; 100]))));
    let upload = Request::put("/pets/3/photo")
        .header("content-type", "image/png")
        .body(axum::body::Body::from_stream(stream))
        .unwrap();
    let response = app.clone().oneshot(upload).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

// ---------------------------------------------------------------- gRPC

fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

fn grpc_request(path: &str, body: Vec<u8>, tenant: bool) -> Request<Full<Bytes>> {
    let mut request = Request::post(path).header("content-type", "application/grpc");
    if tenant {
        request = request.header("x-tenant", "acme");
    }
    request.body(Full::new(Bytes::from(body))).unwrap()
}

#[tokio::test]
async fn grpc_metadata_message_size_and_message_hook() {
    let contract = Contract::builder()
        .grpc_method(
            "/pets.v1.Pets/Create",
            GrpcMethod::new()
                .require_metadata(http::HeaderName::from_static("x-tenant"))
                .max_message_bytes(16)
                .validate_message(|message| {
                    if message.starts_with(b"bad") {
                        Err("the name may not start with bad".into())
                    } else {
                        Ok(())
                    }
                }),
        )
        .build()
        .unwrap();
    let seen = Seen::default();
    let seen_in = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(
            ContractLayer::new(
                contract,
                ContractConfig::default().grpc_max_message_bytes(64),
            )
            .unwrap(),
        )
        .service_fn(move |request: Request<ContractBody<Full<Bytes>>>| {
            let seen = seen_in.clone();
            async move {
                let (parts, body) = request.into_parts();
                let result = body.collect().await;
                let status = if result.is_ok() { "0" } else { "8" };
                let bytes = result.map(|c| c.to_bytes()).unwrap_or_default();
                seen.0
                    .lock()
                    .unwrap()
                    .push((Request::from_parts(parts, ()), bytes));
                Ok::<_, BoxError>(
                    Response::builder()
                        .header("content-type", "application/grpc")
                        .header("grpc-status", status)
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
            }
        });
    let status = |response: &Response<_>| {
        tonic::Status::from_header_map(response.headers())
            .map(|s| (s.code(), s.message().to_owned()))
    };

    let response = svc
        .clone()
        .oneshot(grpc_request(
            "/pets.v1.Pets/Create",
            grpc_frame(b"rex"),
            true,
        ))
        .await
        .unwrap();
    assert_eq!(status(&response).unwrap().0, tonic::Code::Ok);
    assert_eq!(
        seen.last_body(),
        grpc_frame(b"rex"),
        "the frame is handed on whole"
    );

    let response = svc
        .clone()
        .oneshot(grpc_request(
            "/pets.v1.Pets/Create",
            grpc_frame(b"rex"),
            false,
        ))
        .await
        .unwrap();
    let (code, message) = status(&response).unwrap();
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("/metadata/x-tenant"), "{message}");

    let response = svc
        .clone()
        .oneshot(grpc_request(
            "/pets.v1.Pets/Create",
            grpc_frame(&[b'x'; 17]),
            true,
        ))
        .await
        .unwrap();
    let (code, message) = status(&response).unwrap();
    assert_eq!(code, tonic::Code::ResourceExhausted);
    assert!(message.contains("17 bytes"), "{message}");

    let response = svc
        .clone()
        .oneshot(grpc_request(
            "/pets.v1.Pets/Create",
            grpc_frame(b"bad rex"),
            true,
        ))
        .await
        .unwrap();
    let (code, message) = status(&response).unwrap();
    assert_eq!(code, tonic::Code::InvalidArgument);
    assert!(message.contains("may not start with bad"), "{message}");

    // A second, oversized frame in a stream fails the body the handler reads.
    let mut stream = grpc_frame(b"ok");
    stream.extend(grpc_frame(&[b'y'; 40]));
    let response = svc
        .clone()
        .oneshot(grpc_request("/pets.v1.Pets/Create", stream, true))
        .await
        .unwrap();
    assert_eq!(status(&response).unwrap().0, tonic::Code::ResourceExhausted);

    // Methods without a contract still get the default size limit.
    let response = svc
        .clone()
        .oneshot(grpc_request(
            "/pets.v1.Pets/List",
            grpc_frame(&[b'z'; 65]),
            false,
        ))
        .await
        .unwrap();
    assert_eq!(status(&response).unwrap().0, tonic::Code::ResourceExhausted);
    let before = seen.count();
    let response = svc
        .oneshot(grpc_request(
            "/pets.v1.Pets/List",
            grpc_frame(&[b'z'; 64]),
            false,
        ))
        .await
        .unwrap();
    assert_eq!(status(&response).unwrap().0, tonic::Code::Ok);
    assert_eq!(seen.count(), before + 1);
}

#[tokio::test]
async fn empty_bodies_and_methods_without_bodies() {
    let seen = Seen::default();
    let ok = fixed(|| {
        Response::builder()
            .status(204)
            .body(Full::new(Bytes::new()))
            .unwrap()
    });
    let svc = service::<Empty<Bytes>>(PETSTORE_30, ContractConfig::default(), ok, seen.clone());
    let response = svc
        .oneshot(Request::delete("/pets/4").body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(seen.count(), 1);
}

type FrameResult = Result<Frame<Bytes>, BoxError>;
type Frames = Vec<FrameResult>;

/// A body of one good chunk, then an error (a connection to an upstream reset mid-body).
fn failing_body(
    first: &'static [u8],
) -> StreamBody<futures::stream::Iter<std::vec::IntoIter<FrameResult>>> {
    let frames: Frames = vec![
        Ok(Frame::data(Bytes::from_static(first))),
        Err("upstream reset".into()),
    ];
    StreamBody::new(futures::stream::iter(frames))
}

#[tokio::test]
async fn a_failing_response_body_is_never_delivered_as_a_complete_truncated_one() {
    // The contract once replayed the bytes it had read plus the body that had already failed:
    // the caller got a clean end and believed the truncated 201 complete.
    for mode in [Mode::Report, Mode::Enforce] {
        let contract = Contract::from_openapi(PETSTORE_30).unwrap();
        let layer =
            ContractLayer::new(contract, ContractConfig::default().responses(mode)).unwrap();
        let svc = ServiceBuilder::new().layer(layer).service_fn(
            |_request: Request<ContractBody<Full<Bytes>>>| async {
                Ok::<_, BoxError>(
                    Response::builder()
                        .status(201)
                        .header("content-type", "application/json")
                        .body(failing_body(br#"{"id": 1, "name": "Re"#))
                        .unwrap(),
                )
            },
        );
        let response = svc
            .oneshot(json_request(
                "POST",
                "/pets",
                r#"{"name":"Rex","kind":"dog"}"#,
            ))
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await;
        assert!(
            status == StatusCode::INTERNAL_SERVER_ERROR || body.is_err(),
            "{mode:?}: a {status} with a body that ended cleanly"
        );
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{mode:?}");
        let rejection_body = body.ok().unwrap().to_bytes();
        let problem: Value = serde_json::from_slice(&rejection_body).unwrap();
        assert_eq!(problem["status"], 500);
    }
}

#[tokio::test]
async fn a_failing_grpc_request_body_reaches_the_handler_as_a_failure() {
    // The first message is read to check it; a stream that breaks meanwhile once reached the
    // handler as the bytes read and then a clean end.
    let contract = Contract::builder()
        .grpc_method("/pets.v1.Pets/Create", GrpcMethod::new())
        .build()
        .unwrap();
    let layer = ContractLayer::new(contract, ContractConfig::default()).unwrap();
    let svc = ServiceBuilder::new().layer(layer).service_fn(
        |request: Request<ContractBody<StreamBody<_>>>| async move {
            let failed = request.into_body().collect().await.is_err();
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(failed.to_string()))))
        },
    );
    let request = Request::post("/pets.v1.Pets/Create")
        .header("content-type", "application/grpc")
        .body(failing_body(&[0, 0, 0, 0, 9, b'r']))
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "true", "the handler saw the body fail");
}

#[tokio::test]
async fn response_violations_reach_the_hook_in_both_modes_and_are_counted_by_keyword() {
    type Heard = Vec<(String, String, u16, Mode, Vec<(String, String)>, usize)>;
    for mode in [Mode::Enforce, Mode::Report] {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let heard: Arc<Mutex<Heard>> = Arc::default();
        let sink = heard.clone();
        let config = ContractConfig::default()
            .responses(mode)
            .on_response_violations(move |found| {
                sink.lock().unwrap().push((
                    found.route.to_owned(),
                    found.method.to_string(),
                    found.status.as_u16(),
                    found.mode,
                    found
                        .violations
                        .iter()
                        .map(|v| (v.pointer().to_owned(), v.keyword().to_owned()))
                        .collect(),
                    found.omitted,
                ));
            });
        // `id` of the wrong type and `name` missing.
        let bad = fixed(|| ok_json(201, json!({"id": "one", "kind": "dog"})));
        let svc = service(PETSTORE_30, config.clone(), bad, Seen::default());
        let response = svc
            .oneshot(json_request(
                "POST",
                "/pets",
                r#"{"name":"Rex","kind":"dog"}"#,
            ))
            .await
            .unwrap();
        let expected_status = if mode == Mode::Enforce { 500 } else { 201 };
        assert_eq!(response.status().as_u16(), expected_status);
        let got = heard.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "{mode:?}");
        let (route, method, status, seen_mode, mut found, omitted) = got[0].clone();
        assert_eq!(
            (route.as_str(), method.as_str(), status, seen_mode, omitted),
            ("/pets", "POST", 201, mode, 0)
        );
        found.sort();
        assert_eq!(
            found,
            [
                ("/body".to_owned(), "required".to_owned()),
                ("/body/id".to_owned(), "type".to_owned())
            ],
            "{mode:?}"
        );
        let mut counted = violations_counted(&snapshotter);
        counted.sort();
        let row = |keyword: &str| {
            (
                "/pets".to_owned(),
                "response".to_owned(),
                keyword.to_owned(),
                1,
            )
        };
        assert_eq!(counted, [row("required"), row("type")], "{mode:?}");

        // A valid response is not heard.
        let good = fixed(|| ok_json(201, json!({"id": 1, "name": "Rex", "kind": "dog"})));
        let svc = service(PETSTORE_30, config, good, Seen::default());
        let response = svc
            .oneshot(json_request(
                "POST",
                "/pets",
                r#"{"name":"Rex","kind":"dog"}"#,
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(
            heard.lock().unwrap().len(),
            1,
            "{mode:?}: a valid response is not heard"
        );
    }
}

/// Cookie parameters are read as RFC 6265 has them (the `cookie` crate): whitespace, quoted
/// values, several `Cookie` headers, malformed pairs skipped.
#[tokio::test]
async fn cookie_parameters_are_read_as_browsers_send_them() {
    const DOC: &str = r#"{
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {"/cart": {"get": {
            "parameters": [
                {"name": "session", "in": "cookie", "required": true,
                 "schema": {"type": "string", "pattern": "^[a-f0-9]{8}$"}},
                {"name": "items", "in": "cookie", "schema": {"type": "integer", "maximum": 9}}
            ],
            "responses": {"200": {"description": "ok"}}
        }}}
    }"#;
    let svc = service(
        DOC,
        ContractConfig::default(),
        fixed(|| Response::new(Full::new(Bytes::new()))),
        Seen::default(),
    );
    let send = |cookies: &'static [&'static str]| {
        let svc = svc.clone();
        async move {
            let mut request = Request::get("/cart");
            for cookie in cookies {
                request = request.header("cookie", *cookie);
            }
            svc.oneshot(request.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap()
        }
    };
    for cookies in [
        &["session=0123abcd"][..],
        &["theme=dark;  session=0123abcd ; items=3"],
        &["session=\"0123abcd\""],
        &["theme=dark", "session=0123abcd"],
        &["junk; session=0123abcd"],
    ] {
        assert_eq!(send(cookies).await.status(), StatusCode::OK, "{cookies:?}");
    }
    expect_violations(
        send(&["theme=dark"]).await,
        StatusCode::BAD_REQUEST,
        &[("/cookie/session", "required")],
    )
    .await;
    expect_violations(
        send(&["session=0123abcd; items=12"]).await,
        StatusCode::BAD_REQUEST,
        &[("/cookie/items", "maximum")],
    )
    .await;
}
