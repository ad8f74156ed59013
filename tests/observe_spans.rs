//! The server span of each request, captured by a subscriber. Alone in its own test binary:
//! tracing caches callsite interest process-wide.
#![cfg(feature = "axum")]

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use common::Capture;
use http::Request;
use steadfast::observe::ObserveLayer;
use tower::ServiceExt;
use tracing_subscriber::fmt::format::FmtSpan;

#[tokio::test]
async fn each_request_gets_a_server_span_named_method_and_route() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route_layer(ObserveLayer::new());
    for path in ["/users/7", "/missing", "/broken"] {
        app.clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
    }

    let output = capture.text();
    println!("{output}");
    let line = |route: &str| {
        output
            .lines()
            .find(|line| line.contains(&format!("http.route=\"{route}\"")))
            .unwrap_or_else(|| panic!("{output}"))
            .to_owned()
    };

    let ok = line("/users/{id}");
    for field in [
        "otel.name=\"GET /users/{id}\"",
        "otel.kind=\"server\"",
        "http.request.method=\"GET\"",
        "url.scheme=\"http\"",
        "network.protocol.version=\"1.1\"",
        "http.response.status_code=200",
    ] {
        assert!(ok.contains(field), "{field} missing from {ok}");
    }
    assert!(!ok.contains("otel.status_code"), "{ok}");
    let missing = line("/missing");
    assert!(
        missing.contains("http.response.status_code=404") && !missing.contains("otel.status_code"),
        "4xx is not a server error: {missing}"
    );
    let broken = line("/broken");
    assert!(
        broken.contains("otel.status_code=\"ERROR\"") && broken.contains("error.type=\"500\""),
        "{broken}"
    );
}
