//! Under a policy with a contract, a request is checked whichever way it reaches the service:
//! at once, after waiting in the shedder's queue, or after a drill's injected delay; a route
//! without a contract under the same layer is served without one.
#![cfg(all(feature = "axum", feature = "contract"))]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use steadfast::contract::{Contract, ContractConfig, RouteSchemas};
use steadfast::fault::FaultConfig;
use steadfast::policy::{Policies, Policy, PolicyLayer};
use steadfast::shed::{QueueConfig, ShedConfig};
use tokio::sync::Semaphore;
use tower::ServiceExt;

fn contract() -> Contract {
    Contract::builder()
        .route(
            http::Method::POST,
            "/notes",
            RouteSchemas::new().request_body(serde_json::json!({
                "type": "object", "required": ["title"]
            })),
        )
        .build()
        .unwrap()
}

/// `/notes` (checked) and `/free` (no contract); each handler waits for a permit of `gate`.
fn app(policy: Policy, gate: Arc<Semaphore>) -> Router {
    let layer = PolicyLayer::with_contract(
        Policies::new(Policy::new())
            .route("/notes", policy.clone())
            .route("/free", policy),
        contract(),
        ContractConfig::default(),
    )
    .unwrap();
    let handler = move |_: Bytes| {
        let gate = gate.clone();
        async move {
            gate.acquire().await.unwrap().forget();
            StatusCode::CREATED
        }
    };
    Router::new()
        .route("/notes", post(handler.clone()))
        .route("/free", post(handler))
        .layer(layer)
}

fn post_json(uri: &str, body: &'static str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// The status `app` answers a JSON POST of `body` to `uri` with.
async fn status(app: &Router, uri: &str, body: &'static str) -> StatusCode {
    app.clone()
        .oneshot(post_json(uri, body))
        .await
        .unwrap()
        .status()
}

#[tokio::test(start_paused = true)]
async fn requests_are_checked_at_once_after_queueing_and_after_a_delay() {
    // At once.
    let open = Arc::new(Semaphore::new(1000));
    let app_now = app(Policy::new(), open.clone());
    assert_eq!(status(&app_now, "/notes", "{}").await, 422);
    assert_eq!(status(&app_now, "/notes", r#"{"title":"t"}"#).await, 201);
    let free = status(&app_now, "/free", "{}").await;
    assert_eq!(free, 201, "no contract on /free");

    // After waiting in the queue: the route's one slot, held by a request until the gate opens.
    let gate = Arc::new(Semaphore::new(0));
    let queued = Policy::new().shed(ShedConfig::fixed(1).queue(QueueConfig {
        max_wait: Duration::from_secs(5),
        target_wait: Duration::from_secs(5),
        ..QueueConfig::default()
    }));
    let app_queued = app(queued, gate.clone());
    let holder = tokio::spawn(
        app_queued
            .clone()
            .oneshot(post_json("/notes", r#"{"title":"t"}"#)),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waiting_invalid = tokio::spawn(app_queued.clone().oneshot(post_json("/notes", "{}")));
    let waiting_valid = tokio::spawn(
        app_queued
            .clone()
            .oneshot(post_json("/notes", r#"{"title":"t"}"#)),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!holder.is_finished(), "the holder waits for the gate");
    assert!(!waiting_invalid.is_finished(), "queued behind the holder");
    gate.add_permits(10);
    assert_eq!(holder.await.unwrap().unwrap().status(), 201);
    assert_eq!(waiting_invalid.await.unwrap().unwrap().status(), 422);
    assert_eq!(waiting_valid.await.unwrap().unwrap().status(), 201);

    // After a drill's delay, on every request.
    let delayed = Policy::new().fault(FaultConfig::new().delay(Duration::from_millis(30), 100.0));
    let app_delayed = app(delayed, open);
    let started = tokio::time::Instant::now();
    assert_eq!(status(&app_delayed, "/notes", "{}").await, 422);
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "delayed first"
    );
    assert_eq!(
        status(&app_delayed, "/notes", r#"{"title":"t"}"#).await,
        201
    );
    assert_eq!(status(&app_delayed, "/free", "{}").await, 201);
}
