//! The client span of each attempt of an outbound call, captured by a subscriber. Alone in its
//! own test binary: tracing caches callsite interest process-wide.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::Capture;
use http::{Request, Response};
use http_body_util::Empty;
use steadfast::dependency::{DependencyConfig, DependencyLayer};
use steadfast::retry::ReplayBody;
use tower::{Layer, ServiceExt};
use tracing_subscriber::fmt::format::FmtSpan;

#[tokio::test(start_paused = true)]
async fn each_attempt_gets_a_client_span_with_its_resend_count() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let calls = Arc::new(AtomicUsize::new(0));
    let client = tower::service_fn(move |_: Request<ReplayBody<Empty<Bytes>>>| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        tracing::info!("sending");
        async move {
            let status = if call == 0 { 503 } else { 200 };
            Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap())
        }
    });
    let pricing = DependencyLayer::new(DependencyConfig::new("pricing"))
        .unwrap()
        .layer(client);
    let request = Request::get("http://pricing.internal/quote")
        .body(Empty::new())
        .unwrap();
    assert_eq!(pricing.oneshot(request).await.unwrap().status(), 200);

    let output = capture.text();
    println!("{output}");
    let closes: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("attempt") && line.contains("close"))
        .collect();
    assert_eq!(closes.len(), 2, "{output}");
    for field in [
        "otel.name=\"GET\"",
        "otel.kind=\"client\"",
        "steadfast.dependency=\"pricing\"",
        "http.request.method=\"GET\"",
        "server.address=\"pricing.internal\"",
        "http.request.resend_count=0",
        "http.response.status_code=503",
        "error.type=\"503\"",
        "otel.status_code=\"ERROR\"",
    ] {
        assert!(
            closes[0].contains(field),
            "{field} missing from {}",
            closes[0]
        );
    }
    for field in [
        "http.request.resend_count=1",
        "http.response.status_code=200",
    ] {
        assert!(
            closes[1].contains(field),
            "{field} missing from {}",
            closes[1]
        );
    }
    assert!(!closes[1].contains("error.type"), "{}", closes[1]);
    // The client's own events are inside the attempt's span.
    let sending: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("sending"))
        .collect();
    assert_eq!(sending.len(), 2);
    assert!(
        sending.iter().all(|line| line.contains("attempt{")),
        "{output}"
    );
}
