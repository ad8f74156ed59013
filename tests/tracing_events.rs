//! The rejections' `tracing` events, captured by a subscriber.
//!
//! Alone in its own test binary: tracing caches each callsite's interest process-wide, so a test
//! on another thread hitting the same callsite with no subscriber could hide the events from this
//! thread's subscriber.

mod common;

use common::Capture;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use steadfast::timeout::TimeoutLayer;
use tower::{Layer, ServiceExt};

const BUDGET: Duration = Duration::from_millis(300);

fn slow() -> impl tower::Service<
    Request<Empty<Bytes>>,
    Response = Response<String>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    tower::service_fn(|_: Request<Empty<Bytes>>| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(Response::new(String::new()))
    })
}

fn request(headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::get("/work");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::new()).unwrap()
}

/// Collects what a `tracing` fmt subscriber writes.

#[tokio::test(start_paused = true)]
async fn rejections_emit_tracing_events() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let service = TimeoutLayer::new(BUDGET).unwrap().layer(slow());
    service.clone().oneshot(request(&[])).await.unwrap();
    let expired = request(&[("content-type", "application/grpc"), ("grpc-timeout", "0n")]);
    service.oneshot(expired).await.unwrap();

    let output = capture.text();
    let timeout = output
        .lines()
        .find(|line| line.contains("reason=\"timeout\""))
        .expect(&output);
    assert!(
        timeout.contains("WARN")
            && timeout.contains("request rejected")
            && timeout.contains("layer=\"timeout\""),
        "{timeout}"
    );
    // The caller's spent deadline is not the service's fault: logged, but not as a warning.
    let expired = output
        .lines()
        .find(|line| line.contains("reason=\"deadline_expired\""))
        .expect(&output);
    assert!(expired.contains("DEBUG"), "{expired}");
}
