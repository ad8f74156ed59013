//! Instrumentation: exact metric names, labels and values, with a debugging recorder.
#![cfg(feature = "axum")]

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use steadfast::observe::{ObserveConfig, ObserveLayer};
use steadfast::timeout::TimeoutLayer;
use tower::{Layer, ServiceExt};

type Labels = Vec<(String, String)>;

/// Every recorded series as (name, sorted labels, value).
fn series(snapshotter: &Snapshotter) -> Vec<(String, Labels, DebugValue)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Labels = key
                .key()
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            labels.sort();
            (key.key().name().to_owned(), labels, value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    labels
}

fn durations(all: &[(String, Labels, DebugValue)], name: &str) -> Vec<(Labels, usize)> {
    all.iter()
        .filter(|(n, ..)| n == name)
        .map(|(_, labels, value)| match value {
            DebugValue::Histogram(samples) => (labels.clone(), samples.len()),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .collect()
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/slow", get(slow))
        .route_layer(TimeoutLayer::new(Duration::from_millis(100)).unwrap())
        .route_layer(ObserveLayer::new())
}

async fn send(app: &Router, path: &str) -> StatusCode {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test(start_paused = true)]
async fn http_requests_are_measured_with_the_conventions_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let app = app();
    assert_eq!(send(&app, "/users/1").await, 200);
    assert_eq!(send(&app, "/users/2").await, 200);
    assert_eq!(send(&app, "/missing").await, 404);
    assert_eq!(send(&app, "/broken").await, 500);
    assert_eq!(send(&app, "/slow").await, 504);

    let all = series(&snapshotter);
    let base = |route: &str, status: &str| {
        vec![
            ("http.request.method", "GET"),
            ("http.response.status_code", status),
            ("http.route", route),
            ("network.protocol.version", "1.1"),
            ("url.scheme", "http"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<Vec<_>>()
    };
    let with_error = |route: &str, status: &str, error: &str| {
        let mut labels = base(route, status);
        labels.push(("error.type".to_owned(), error.to_owned()));
        labels.sort();
        labels
    };
    let mut found = durations(&all, "http.server.request.duration");
    found.sort();
    let mut expected = vec![
        (
            labels(
                &base("/users/{id}", "200")
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ),
            2,
        ),
        (
            labels(
                &base("/missing", "404")
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ),
            1,
        ),
        (with_error("/broken", "500", "500"), 1),
        (with_error("/slow", "504", "timeout"), 1),
    ];
    expected.sort();
    assert_eq!(found, expected);

    let active: Vec<_> = all
        .iter()
        .filter(|(n, ..)| n == "http.server.active_requests")
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0].1,
        labels(&[("http.request.method", "GET"), ("url.scheme", "http")])
    );
    assert_eq!(
        active[0].2,
        DebugValue::Gauge(0.0.into()),
        "every request that started has ended"
    );
}

#[tokio::test(start_paused = true)]
async fn unmatched_paths_and_unknown_methods_do_not_grow_the_label_sets() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    // Router::layer also wraps the fallback, which sees every unmatched path.
    let app = Router::new()
        .route("/known", get(|| async { "ok" }))
        .layer(ObserveLayer::new());
    for n in 0..500 {
        let method = if n % 2 == 0 { "GET" } else { "PURGE" };
        let request = Request::builder()
            .method(method)
            .uri(format!("/random/{n}"))
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request).await.unwrap();
    }
    let found = durations(&series(&snapshotter), "http.server.request.duration");
    let routes: std::collections::BTreeSet<_> = found
        .iter()
        .flat_map(|(labels, _)| {
            labels
                .iter()
                .filter(|(k, _)| k == "http.route")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(routes.into_iter().collect::<Vec<_>>(), ["unmatched"]);
    let methods: std::collections::BTreeSet<_> = found
        .iter()
        .flat_map(|(labels, _)| {
            labels
                .iter()
                .filter(|(k, _)| k == "http.request.method")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(methods.into_iter().collect::<Vec<_>>(), ["GET", "_OTHER"]);
    assert_eq!(found.len(), 2, "one series per method, not per path");
}

fn grpc(path: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn grpc_calls_are_measured_by_method_and_status() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    // A trailers-only UNAVAILABLE, and a streaming OK whose status is in the trailers.
    let service = tower::service_fn(|request: Request<Body>| async move {
        let response = if request.uri().path().contains("Fail") {
            http::Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "14")
                .body(Body::empty())
                .unwrap()
        } else {
            let trailers = http::HeaderMap::from_iter([(
                http::HeaderName::from_static("grpc-status"),
                http::HeaderValue::from_static("0"),
            )]);
            let frames: Vec<Result<http_body::Frame<Bytes>, Infallible>> = vec![
                Ok(http_body::Frame::data(Bytes::from_static(b"x"))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            let body = Body::new(http_body_util::StreamBody::new(futures::stream::iter(
                frames,
            )));
            http::Response::builder()
                .header("content-type", "application/grpc")
                .body(body)
                .unwrap()
        };
        Ok::<_, Infallible>(response)
    });
    let observed = ObserveLayer::with_config(ObserveConfig::new().max_routes(3))
        .unwrap()
        .layer(service);
    observed
        .clone()
        .oneshot(grpc("/pkg.Svc/Fail"))
        .await
        .unwrap();
    let ok = observed
        .clone()
        .oneshot(grpc("/pkg.Svc/Get"))
        .await
        .unwrap();
    // (A snapshot drains the recorded samples: what follows counts from here.)
    let before_the_end = durations(&series(&snapshotter), "rpc.server.call.duration");
    let fail = |method: &str| {
        labels(&[
            ("error.type", "UNAVAILABLE"),
            ("rpc.method", method),
            ("rpc.status_code", "UNAVAILABLE"),
            ("rpc.system.name", "grpc"),
        ])
    };
    assert_eq!(
        before_the_end,
        [(fail("pkg.Svc/Fail"), 1)],
        "OK is recorded when its body ends"
    );
    ok.into_body().collect().await.unwrap();
    // Callers probing methods that do not exist cannot grow the label set beyond the bound.
    for n in 0..50 {
        observed
            .clone()
            .oneshot(grpc(&format!("/pkg.Svc/Fail{n}")))
            .await
            .unwrap();
    }

    let mut found = durations(&series(&snapshotter), "rpc.server.call.duration");
    found.sort();
    let grpc_labels = |method: &str, code: &str, error: Option<&str>| {
        let mut pairs = vec![
            ("rpc.method", method),
            ("rpc.status_code", code),
            ("rpc.system.name", "grpc"),
        ];
        if let Some(error) = error {
            pairs.push(("error.type", error));
        }
        labels(&pairs)
    };
    let mut expected = vec![
        (
            grpc_labels("pkg.Svc/Fail", "UNAVAILABLE", Some("UNAVAILABLE")),
            0,
        ),
        (grpc_labels("pkg.Svc/Get", "OK", None), 1),
        (
            grpc_labels("pkg.Svc/Fail0", "UNAVAILABLE", Some("UNAVAILABLE")),
            1,
        ),
        (
            grpc_labels("unmatched", "UNAVAILABLE", Some("UNAVAILABLE")),
            49,
        ),
    ];
    expected.sort();
    assert_eq!(found, expected);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_are_named_by_their_type() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let failing = tower::service_fn(|_: Request<Body>| async {
        Err::<http::Response<Body>, _>(std::io::Error::other("down"))
    });
    ObserveLayer::new()
        .layer(failing)
        .oneshot(Request::get("/x").body(Body::empty()).unwrap())
        .await
        .unwrap_err();
    let found = durations(&series(&snapshotter), "http.server.request.duration");
    assert_eq!(found.len(), 1);
    assert!(
        found[0]
            .0
            .contains(&("error.type".to_owned(), "std::io::error::Error".to_owned())),
        "{:?}",
        found[0].0
    );
}

#[tokio::test(start_paused = true)]
async fn a_grpc_body_dropped_before_its_end_is_a_cancelled_call() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let streaming = tower::service_fn(|_: Request<Body>| async {
        let frames: Vec<Result<http_body::Frame<Bytes>, Infallible>> =
            vec![Ok(http_body::Frame::data(Bytes::from_static(b"x")))];
        let body = Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames,
        )));
        Ok::<_, Infallible>(
            http::Response::builder()
                .header("content-type", "application/grpc")
                .body(body)
                .unwrap(),
        )
    });
    drop(
        ObserveLayer::new()
            .layer(streaming)
            .oneshot(grpc("/pkg.Svc/Watch"))
            .await
            .unwrap(),
    );
    let found = durations(&series(&snapshotter), "rpc.server.call.duration");
    assert_eq!(
        found,
        [(
            labels(&[
                ("error.type", "CANCELLED"),
                ("rpc.method", "pkg.Svc/Watch"),
                ("rpc.status_code", "CANCELLED"),
                ("rpc.system.name", "grpc")
            ]),
            1
        )]
    );
}

/// A caller that goes away before the answer does not burn the availability budget: the
/// request is not measured at all (no duration, so no 5xx), and is no longer active.
#[tokio::test(start_paused = true)]
async fn an_http_request_dropped_unanswered_is_not_measured() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let never = tower::service_fn(|_: Request<Body>| {
        std::future::pending::<Result<http::Response<Body>, Infallible>>()
    });
    let call = ObserveLayer::new()
        .layer(never)
        .oneshot(Request::get("/x").body(Body::empty()).unwrap());
    // The client disconnects: hyper drops the request's future.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), call)
            .await
            .is_err()
    );
    let all = series(&snapshotter);
    assert!(durations(&all, "http.server.request.duration").is_empty());
    let active: Vec<_> = all
        .iter()
        .filter(|(name, ..)| name == "http.server.active_requests")
        .map(|(_, _, value)| value)
        .collect();
    assert_eq!(active, [&DebugValue::Gauge(0.0.into())]);
}

/// Every layer at work behind the observer: each rejection kind is named in `error.type`, and
/// every metric any layer emits is in the catalogue.
#[tokio::test(start_paused = true)]
async fn every_rejection_is_named_and_every_emitted_metric_is_catalogued() {
    use steadfast::breaker::{BreakerConfig, BreakerLayer, SlidingWindow};
    use steadfast::shed::{QueueConfig, ShedConfig, ShedLayer};
    use steadfast::timeout::{OnInvalidDeadline, TimeoutConfig};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let breaker = BreakerLayer::new(
        BreakerConfig::new()
            .sliding_window(SlidingWindow::count(4))
            .minimum_calls(2)
            .slow_call_duration(Duration::from_secs(1)),
    )
    .unwrap();
    let shed = ShedLayer::new(
        ShedConfig::new()
            .algorithm(steadfast::shed::LimitAlgorithm::Aimd(
                steadfast::shed::Aimd {
                    initial: 1,
                    min: 1,
                    max: 1,
                    ..Default::default()
                },
            ))
            .sample_window(Duration::from_millis(10), 1)
            .queue(QueueConfig {
                max_len: 1,
                ..QueueConfig::default()
            }),
    )
    .unwrap();
    let timeout = TimeoutLayer::new(
        TimeoutConfig::new(Duration::from_millis(100))
            .on_invalid_deadline(OnInvalidDeadline::Reject),
    )
    .unwrap();
    // Outermost first: observe, breaker, shed, timeout.
    let app = Router::new()
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/slow", get(slow))
        .route(
            "/busy",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                "done"
            }),
        )
        .route(
            "/pets",
            axum::routing::post(|| async { StatusCode::CREATED }),
        );
    // Contract validation, innermost (with the `contract` feature).
    #[cfg(feature = "contract")]
    let app = {
        use steadfast::contract::{Contract, ContractConfig, ContractLayer, RouteSchemas};
        let contract = Contract::builder()
            .route(
                http::Method::POST,
                "/pets",
                RouteSchemas::new().request_body(serde_json::json!({"type": "object"})),
            )
            .build()
            .unwrap();
        app.route_layer(ContractLayer::new(contract, ContractConfig::default()).unwrap())
    };
    let app = app
        .route_layer(timeout)
        .route_layer(shed)
        .route_layer(breaker)
        .route_layer(ObserveLayer::new());

    let request = |path: &str, headers: &[(&str, &str)]| {
        let mut builder = Request::get(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    };
    let status = |request: Request<Body>| {
        let app = app.clone();
        async move { app.oneshot(request).await.unwrap().status() }
    };

    // The breaker opens on /broken after two failures.
    assert_eq!(status(request("/broken", &[])).await, 500);
    assert_eq!(status(request("/broken", &[])).await, 500);
    assert_eq!(status(request("/broken", &[])).await, 503);
    // Timeouts, spent and unreadable deadlines.
    assert_eq!(status(request("/slow", &[])).await, 504);
    assert_eq!(
        status(request("/busy", &[("grpc-timeout", "0n")])).await,
        504
    );
    assert_eq!(
        status(request("/busy", &[("grpc-timeout", "soon")])).await,
        400
    );
    // /busy allows one request at a time and queues one: the third is shed.
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(status(request("/busy", &[]))))
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503]);
    tokio::time::advance(Duration::from_millis(20)).await;
    assert_eq!(status(request("/busy", &[])).await, 200);
    #[cfg(feature = "contract")]
    {
        let invalid = Request::post("/pets")
            .header("content-type", "application/json")
            .body(Body::from("[]"))
            .unwrap();
        assert_eq!(status(invalid).await, 422);
    }

    let all = series(&snapshotter);
    let errors: std::collections::BTreeSet<(String, String)> =
        durations(&all, "http.server.request.duration")
            .into_iter()
            .filter_map(|(labels, _)| {
                let route = labels.iter().find(|(k, _)| k == "http.route")?.1.clone();
                let error = labels.iter().find(|(k, _)| k == "error.type")?.1.clone();
                Some((route, error))
            })
            .collect();
    let expected: std::collections::BTreeSet<(String, String)> = [
        ("/broken", "500"),
        ("/broken", "circuit_open"),
        ("/slow", "timeout"),
        ("/busy", "deadline_expired"),
        ("/busy", "invalid_deadline"),
        ("/busy", "overloaded"),
        #[cfg(feature = "contract")]
        ("/pets", "invalid_request"),
    ]
    .into_iter()
    .map(|(route, error)| (route.to_owned(), error.to_owned()))
    .collect();
    assert_eq!(errors, expected);

    let catalogued: std::collections::BTreeSet<&str> = steadfast::core::telemetry::CATALOGUE
        .iter()
        .map(|metric| metric.name)
        .collect();
    let emitted: std::collections::BTreeSet<String> =
        all.iter().map(|(name, ..)| name.clone()).collect();
    for name in &emitted {
        assert!(
            catalogued.contains(name.as_str()),
            "{name} is emitted but not in the catalogue"
        );
    }
    // And the run exercised most of the catalogue (the gRPC histogram needs gRPC traffic).
    let missed: Vec<_> = catalogued
        .iter()
        .filter(|name| !emitted.contains(**name))
        .collect();
    // The policy layer's strict-mode counter is checked in tests/policy.rs, the fault
    // layer's in tests/fault.rs, the outbound counters in tests/dependency.rs.
    let expected_missed: &[&&str] = if cfg!(feature = "contract") {
        &[
            &"http.client.request.duration",
            &"rpc.client.call.duration",
            &"rpc.server.call.duration",
            &"steadfast.dependency.calls",
            &"steadfast.dependency.capped",
            &"steadfast.dependency.undeclared",
            &"steadfast.fault.injected",
            &"steadfast.hedges",
            &"steadfast.policy.unmatched",
            &"steadfast.retries",
            &"steadfast.retry.budget_exhausted",
            &"steadfast.throttled",
        ]
    } else {
        &[
            &"http.client.request.duration",
            &"rpc.client.call.duration",
            &"rpc.server.call.duration",
            &"steadfast.contract.violations",
            &"steadfast.dependency.calls",
            &"steadfast.dependency.capped",
            &"steadfast.dependency.undeclared",
            &"steadfast.fault.injected",
            &"steadfast.hedges",
            &"steadfast.policy.unmatched",
            &"steadfast.retries",
            &"steadfast.retry.budget_exhausted",
            &"steadfast.throttled",
        ]
    };
    assert_eq!(missed, expected_missed, "not emitted by this run");
}
