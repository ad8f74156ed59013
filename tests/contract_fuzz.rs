//! Fuzzing the contract layer with proptest (stable toolchain, run by `cargo test`): arbitrary
//! bodies, chunkings, headers, query strings and paths go through the layer; it never panics,
//! answers every request, and never hands the handler more than the body limit.
//!
//! More cases: `PROPTEST_CASES=20000 cargo test --all-features --test contract_fuzz`.
#![cfg(all(feature = "contract", feature = "axum"))]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use proptest::prelude::*;
use steadfast::contract::{Contract, ContractBody, ContractConfig, ContractLayer, Mode};
use tower::{BoxError, ServiceBuilder, ServiceExt};

const PETSTORE_30: &str = include_str!("fixtures/petstore-3.0.yaml");
const PETSTORE_31: &str = include_str!("fixtures/petstore-3.1.json");
const FORMATS_30: &str = include_str!("fixtures/formats-3.0.yaml");
const FORMATS_31: &str = include_str!("fixtures/formats-3.1.json");
const LIMIT: usize = 4096;

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Raw bytes, invalid UTF-8 included.
        prop::collection::vec(any::<u8>(), 0..600),
        // JSON-looking text built from the characters that matter to a parser.
        prop::collection::vec(
            prop::sample::select(vec![
                "{",
                "}",
                "[",
                "]",
                ",",
                ":",
                "\"",
                "\"name\"",
                "\"kind\"",
                "\"cat\"",
                "1e309",
                "-0",
                "null",
                "true",
                "123456789012345678901234567890",
                "\\u0000",
                "\\ud800",
                " ",
                "\"tags\"",
                "\"age\"",
            ]),
            0..200
        )
        .prop_map(|parts| parts.concat().into_bytes()),
        // Form-looking text.
        prop::collection::vec(
            prop::sample::select(vec![
                "title",
                "count",
                "tags",
                "draft",
                "=",
                "&",
                "%",
                "%ff",
                "+",
                "1",
                "-9",
                "true",
                "2147483648",
                "x",
            ]),
            0..120
        )
        .prop_map(|parts| parts.concat().into_bytes()),
        // Valid JSON of random shape.
        any::<u32>().prop_map(
            |n| format!(r#"{{"name":"n{n}","kind":"cat","age":{}}}"#, n % 300).into_bytes()
        ),
        // Deep nesting and oversized bodies.
        (1usize..3000).prop_map(|depth| ("[".repeat(depth) + &"]".repeat(depth)).into_bytes()),
        (LIMIT - 10..LIMIT * 3).prop_map(|n| vec![b' '; n]),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

#[derive(Debug, Clone)]
struct Case {
    document: u8,
    method: &'static str,
    path: String,
    query: String,
    content_type: Option<String>,
    declared_length: Option<u64>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    chunk: usize,
    grpc: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0u8..4,
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        prop::sample::select(vec![
            "/pets".to_owned(),
            "/pets/1".to_owned(),
            "/pets/%ff%fe".to_owned(),
            "/pets/5b6f2a8e-4a0b-4c9e-9c55-2f3c1d9a7e10".to_owned(),
            "/pets/1/photo".to_owned(),
            "/pets//photo".to_owned(),
            "/unknown".to_owned(),
            "/notes".to_owned(),
            "/things".to_owned(),
            "/things/9223372036854775808".to_owned(),
        ]),
        "[a-z=&%0-9,+]{0,40}",
        prop::option::of(prop::sample::select(vec![
            "application/json".to_owned(),
            "application/json; charset=utf-8".to_owned(),
            "APPLICATION/JSON".to_owned(),
            "image/png".to_owned(),
            "text/plain".to_owned(),
            "text/plain; charset=utf-8".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
            "application/octet-stream".to_owned(),
            "application/grpc".to_owned(),
            ";;;".to_owned(),
        ])),
        prop::option::of(0u64..20_000),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "x-request-id".to_owned(),
                    "x-tenant".to_owned(),
                    "cookie".to_owned(),
                    "grpc-timeout".to_owned(),
                ]),
                header_value(),
            ),
            0..4,
        ),
        body_strategy(),
        1usize..700,
        any::<bool>(),
    )
        .prop_map(
            |(
                document,
                method,
                path,
                query,
                content_type,
                declared_length,
                headers,
                body,
                chunk,
                grpc,
            )| Case {
                document,
                method,
                path,
                query,
                content_type,
                declared_length,
                headers,
                body,
                chunk,
                grpc,
            },
        )
}

type ChunkedBody =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn request(case: &Case) -> Option<Request<ChunkedBody>> {
    let uri = if case.query.is_empty() {
        case.path.clone()
    } else {
        format!("{}?{}", case.path, case.query)
    };
    let mut builder = Request::builder().method(case.method).uri(uri);
    if let Some(content_type) = &case.content_type {
        builder = builder.header("content-type", content_type);
    }
    if case.grpc {
        builder = builder.header("content-type", "application/grpc");
    }
    if let Some(length) = case.declared_length {
        builder = builder.header("content-length", length);
    }
    for (name, value) in &case.headers {
        let value = http::HeaderValue::from_bytes(value).ok()?;
        builder = builder.header(name, value);
    }
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = case
        .body
        .chunks(case.chunk)
        .map(|chunk| Ok(Frame::data(Bytes::copy_from_slice(chunk))))
        .collect();
    builder
        .body(StreamBody::new(futures::stream::iter(chunks)))
        .ok()
}

async fn run(case: Case) -> Result<(), TestCaseError> {
    let Some(request) = request(&case) else {
        return Ok(());
    };
    let document = [PETSTORE_30, PETSTORE_31, FORMATS_30, FORMATS_31][usize::from(case.document)];
    let contract = Contract::from_openapi(document).unwrap();
    let config = ContractConfig::default()
        .max_body_bytes(LIMIT)
        .grpc_max_message_bytes(LIMIT)
        .responses(Mode::Enforce);
    let svc = ServiceBuilder::new()
        .layer(ContractLayer::new(contract, config).unwrap())
        .service_fn(|request: Request<ContractBody<_>>| async move {
            // The handler reads what it is given: never more than the limit over HTTP (gRPC
            // streams are bounded per message).
            let grpc = steadfast::core::grpc::is_grpc(request.headers());
            let read = request.into_body().collect().await.map(|c| c.to_bytes());
            if let (Ok(bytes), false) = (&read, grpc) {
                assert!(bytes.len() <= LIMIT, "{} bytes handed on", bytes.len());
            }
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
        });
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), svc.oneshot(request))
        .await
        .map_err(|_| TestCaseError::fail("no answer within 5 s"))?
        .map_err(|e| TestCaseError::fail(format!("an error instead of an answer: {e}")))?;
    let status = response.status().as_u16();
    prop_assert!(
        [200, 400, 404, 405, 413, 415, 422, 500].contains(&status),
        "unexpected status {status}"
    );
    // Every answer's body can be read to its end.
    response.into_body().collect().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn the_layer_answers_everything_without_panicking(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(run(case))?;
    }
}
