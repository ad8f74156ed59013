//! Fuzzing every parser fed by the network or by files (proptest, stable toolchain, run by
//! `cargo test`): deadline headers (`grpc-timeout` and a millisecond header), the criticality
//! header, policy TOML, and OpenAPI documents. None may panic; every request gets an answer;
//! every bad file gets an error that says something.
//!
//! More cases: `PROPTEST_CASES=5000 cargo test --all-features --test parsers_fuzz`.
#![cfg(all(feature = "config", feature = "contract"))]

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response};
use proptest::prelude::*;
use steadfast::contract::Contract;
use steadfast::core::Deadline;
use steadfast::policy::{CONFIG_KEYS, PolicyFile};
use steadfast::shed::{Criticality, ShedConfig, ShedLayer};
use steadfast::timeout::{DeadlineFormat, OnInvalidDeadline, TimeoutConfig, TimeoutLayer};
use tower::{Layer, ServiceExt};

const PETSTORE_31: &str = include_str!("fixtures/petstore-3.1.json");
const PETSTORE_30: &str = include_str!("fixtures/petstore-3.0.yaml");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Header bytes a client could send: mostly printable, with the odd control byte, digit runs
/// and units, and very long numbers.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        "[0-9]{0,25}[HMSmunx]?".prop_map(String::into_bytes),
        "[ -~]{0,40}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #[test]
    fn deadline_headers_never_panic_and_never_extend_the_budget(
        grpc in header_bytes(),
        millis in header_bytes(),
        reject in any::<bool>(),
    ) {
        let budget = Duration::from_secs(5);
        let config = TimeoutConfig::new(budget)
            .http_deadline_header(HeaderName::from_static("x-deadline-ms"), DeadlineFormat::Millis)
            .on_invalid_deadline(if reject { OnInvalidDeadline::Reject } else { OnInvalidDeadline::Ignore });
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let record = seen.clone();
        let service = TimeoutLayer::new(config).unwrap().layer(tower::service_fn(
            move |request: Request<()>| {
                let left = Deadline::of(&request).map(|d| d.remaining());
                *record.lock().unwrap() = left;
                async move { Ok::<_, Infallible>(Response::new(String::new())) }
            },
        ));
        let mut request = Request::new(());
        for (name, bytes) in [("grpc-timeout", &grpc), ("x-deadline-ms", &millis)] {
            if let Ok(value) = HeaderValue::from_bytes(bytes) {
                request.headers_mut().insert(HeaderName::from_static(name), value);
            }
        }
        let response = runtime().block_on(service.oneshot(request)).unwrap();
        let status = response.status().as_u16();
        prop_assert!(status == 200 || status == 400 || status == 504, "status {status}");
        if status == 200 {
            let remaining = seen.lock().unwrap().expect("the handler saw a deadline");
            prop_assert!(remaining <= budget);
        }
    }

    #[test]
    fn criticality_headers_never_panic_and_never_raise_a_class(bytes in header_bytes()) {
        let config = ShedConfig::fixed(10)
            .criticality_header(HeaderName::from_static("x-criticality"), Criticality::Critical);
        let layer = ShedLayer::new(config).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let record = seen.clone();
        let watched = layer.clone();
        let service = layer.layer(tower::service_fn(move |_request: Request<()>| {
            // In flight now: the class it was admitted as is the one counted.
            let by_class = watched.limiters()[0].1.snapshot().in_flight_by_class;
            let class = Criticality::ALL
                .into_iter()
                .zip(by_class)
                .find_map(|(class, count)| (count == 1).then_some(class));
            *record.lock().unwrap() = class;
            async move { Ok::<_, Infallible>(Response::new(String::new())) }
        }));
        let mut request = Request::new(());
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            request.headers_mut().insert("x-criticality", value);
        }
        let response = runtime().block_on(service.oneshot(request)).unwrap();
        prop_assert_eq!(response.status().as_u16(), 200);
        let class = seen.lock().unwrap().expect("admitted in some class");
        prop_assert!(class <= Criticality::Critical, "raised to {class:?}");
    }
}

/// A policy file from the real keys, with values of every TOML type, sometimes broken.
fn policy_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-z0-9 ._/{}-]{0,12}".prop_map(|s| format!("{s:?}")),
        "[0-9]{1,6}(ns|us|ms|s|m|h|d|x)?".prop_map(|s| format!("{s:?}")),
        Just("[1, 2]".to_owned()),
        Just("{ a = 1 }".to_owned()),
    ];
    let key = proptest::sample::select(CONFIG_KEYS.iter().map(|k| k.key).collect::<Vec<_>>());
    let table = prop_oneof![
        Just("[defaults]".to_owned()),
        Just("[routes.\"/a/{id}\"]".to_owned()),
        Just("[routes.\"GET /b\"]".to_owned()),
        Just("[routes.\"\"]".to_owned()),
        Just(String::new()),
    ];
    proptest::collection::vec((table, key, value, any::<u8>()), 0..12).prop_map(|lines| {
        let mut text = String::new();
        for (table, key, value, noise) in lines {
            // A dependency's keys go in its own table (most of the time).
            let (table, key) = match key.strip_prefix("dependency.") {
                Some(rest) if noise % 5 != 0 => ("[dependencies.inventory]".to_owned(), rest),
                _ => (table, key),
            };
            text.push_str(&table);
            text.push('\n');
            let (section, leaf) = match key.split_once('.') {
                Some((section, leaf)) if !["openapi", "alerts"].contains(&section) => {
                    (Some(section), leaf)
                }
                _ => (None, key),
            };
            if let Some(section) = section {
                text.push_str(&format!("{section}.{leaf} = {value}\n"));
            } else {
                text.push_str(&format!("{leaf} = {value}\n"));
            }
            if noise % 17 == 0 {
                text.push_str("= broken\n");
            }
        }
        text
    })
}

proptest! {
    #[test]
    fn policy_files_are_read_or_refused_with_a_reason_never_a_panic(text in policy_text()) {
        match PolicyFile::parse(&text) {
            Ok(file) => {
                // A file that reads must also build, its dependency policies included.
                for name in file.dependencies().keys() {
                    prop_assert!(file.dependency_layer(name).is_ok());
                }
                let _ = file.into_layer();
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_text_as_a_policy_file_never_panics(text in "\\PC{0,200}") {
        let _ = PolicyFile::parse(&text);
    }

    #[test]
    fn mangled_openapi_documents_are_refused_or_read_never_a_panic(
        cut in 0usize..4000,
        flips in proptest::collection::vec((0usize..4000, any::<u8>()), 0..6),
        yaml in any::<bool>(),
    ) {
        let source = if yaml { PETSTORE_30 } else { PETSTORE_31 };
        let mut bytes = source.as_bytes().to_vec();
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        bytes.truncate(bytes.len().min(cut.max(bytes.len() / 2)));
        let text = String::from_utf8_lossy(&bytes);
        let _ = Contract::from_openapi(&text);
    }

    #[test]
    fn arbitrary_json_schemas_in_a_document_never_panic(schema in json_value()) {
        let document = serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/x": {"post": {
                "requestBody": {"content": {"application/json": {"schema": schema}}},
                "responses": {"200": {"description": "ok"}}
            }}}
        });
        let _ = Contract::from_openapi(&document.to_string());
    }
}

/// Small JSON values, schema-shaped now and then.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i32>().prop_map(serde_json::Value::from),
        "(type|object|string|#/components/x|\\$ref|[a-z]{0,6})".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                "(type|properties|items|required|\\$ref|allOf|oneOf|enum|format|[a-z]{1,5})",
                inner,
                0..4
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}
