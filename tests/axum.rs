//! Axum: the layers plug into a `Router` with no `HandleErrorLayer`.
#![cfg(feature = "axum")]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use steadfast::core::Deadline;
use steadfast::timeout::TimeoutLayer;
use tower::ServiceExt;

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(10)).await;
    "late"
}

async fn remaining(deadline: Deadline) -> String {
    deadline.remaining().as_millis().to_string()
}

async fn maybe(deadline: Option<Deadline>) -> &'static str {
    if deadline.is_some() { "some" } else { "none" }
}

fn app() -> Router {
    Router::new()
        .route("/slow", get(slow))
        .route("/remaining", get(remaining))
        .route("/users/{id}", get(slow))
        .layer(TimeoutLayer::new(Duration::from_millis(300)).unwrap())
}

async fn text(response: axum::response::Response) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_router_with_the_layer_serves_and_times_out() {
    let response = app()
        .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["status"], 504);
}

#[tokio::test(start_paused = true)]
async fn handlers_extract_the_deadline() {
    let request = Request::get("/remaining")
        .header("grpc-timeout", "120m")
        .body(Body::empty())
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "120");
}

#[tokio::test(start_paused = true)]
async fn a_missing_deadline_is_a_clear_500_and_optional_extraction_works() {
    let bare = Router::new()
        .route("/remaining", get(remaining))
        .route("/maybe", get(maybe));
    let response = bare
        .clone()
        .oneshot(Request::get("/remaining").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text(response).await.contains("TimeoutLayer"));

    let response = bare
        .oneshot(Request::get("/maybe").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(text(response).await, "none");
    let layered = Router::new()
        .route("/maybe", get(maybe))
        .layer(TimeoutLayer::new(Duration::from_secs(1)).unwrap());
    let response = layered
        .oneshot(Request::get("/maybe").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(text(response).await, "some");
}

#[tokio::test(start_paused = true)]
async fn route_layer_labels_rejections_with_the_route_template() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let app = Router::new()
        .route("/users/{id}", get(slow))
        .route_layer(TimeoutLayer::new(Duration::from_millis(300)).unwrap());
    let call = async {
        for id in 0..3 {
            let request = Request::get(format!("/users/{id}"))
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        }
    };
    // The recorder must be active while the futures are polled: install it for this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);
    call.await;

    let snapshot = snapshotter.snapshot().into_vec();
    let rejections: Vec<_> = snapshot
        .iter()
        .filter(|(key, ..)| key.key().name() == "steadfast.rejections")
        .collect();
    assert_eq!(
        rejections.len(),
        1,
        "one label set, not one per raw path: {rejections:?}"
    );
    let (key, _, _, value) = rejections[0];
    let labels: Vec<_> = key
        .key()
        .labels()
        .map(|label| (label.key(), label.value()))
        .collect();
    assert_eq!(
        labels,
        [
            ("layer", "timeout"),
            ("reason", "timeout"),
            ("route", "/users/{id}"),
            ("method", "GET")
        ]
    );
    assert_eq!(value, &DebugValue::Counter(3));
}

mod breaker {
    use super::*;
    use steadfast::breaker::{BreakerConfig, BreakerHandle, BreakerLayer, SlidingWindow, State};

    async fn broken() -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    async fn healthy() -> &'static str {
        "ok"
    }

    fn config() -> BreakerConfig {
        BreakerConfig::new()
            .sliding_window(SlidingWindow::count(5))
            .minimum_calls(3)
    }

    async fn status(app: &Router, path: &str) -> u16 {
        app.clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test(start_paused = true)]
    async fn each_route_gets_its_own_breaker_named_after_its_template() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let app = Router::new()
            .route("/orders/{id}", get(broken))
            .route("/health", get(healthy))
            .layer(BreakerLayer::new(config()).unwrap());

        for id in 0..3 {
            assert_eq!(status(&app, &format!("/orders/{id}")).await, 500);
        }
        assert_eq!(
            status(&app, "/orders/9").await,
            503,
            "the orders breaker is open"
        );
        assert_eq!(
            status(&app, "/health").await,
            200,
            "the health route has its own breaker"
        );

        let snapshot = snapshotter.snapshot().into_vec();
        let state = snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == "steadfast.breaker.state"
                    && key
                        .key()
                        .labels()
                        .any(|label| label.value() == "/orders/{id}")
            })
            .expect("a state gauge labelled with the route template");
        assert_eq!(state.3, DebugValue::Gauge(1.0.into()));
        let failures = snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == "steadfast.breaker.calls"
                    && key.key().labels().any(|label| label.value() == "failure")
            })
            .unwrap();
        assert_eq!(failures.3, DebugValue::Counter(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_breaker_guards_several_routes() {
        let handle = BreakerHandle::new(config().name("backend")).unwrap();
        let app = Router::new()
            .route("/a", get(broken))
            .route("/b", get(healthy))
            .layer(BreakerLayer::shared(handle.clone()));
        for _ in 0..3 {
            status(&app, "/a").await;
        }
        assert_eq!(handle.state(), State::Open);
        assert_eq!(status(&app, "/b").await, 503);
    }
}

#[tokio::test]
async fn a_route_breaker_outlives_connections_on_a_real_server() {
    use steadfast::breaker::{BreakerConfig, BreakerLayer, SlidingWindow};
    async fn broken() -> StatusCode {
        StatusCode::BAD_GATEWAY
    }
    let layer = BreakerLayer::new(
        BreakerConfig::new()
            .sliding_window(SlidingWindow::count(4))
            .minimum_calls(2),
    )
    .unwrap();
    let app = Router::new()
        .route("/broken", get(broken))
        .layer(layer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Each request on a fresh connection: axum builds the route's service anew for each.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let uri: http::Uri = format!("http://{addr}/broken").parse().unwrap();
        statuses.push(client.get(uri).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [502, 502, 503]);
    let breakers = layer.breakers();
    assert_eq!(breakers.len(), 1);
    assert_eq!(breakers[0].0, "/broken");
}
