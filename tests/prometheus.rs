//! The Prometheus helper: steadfast's histograms render as histograms with the recommended buckets,
//! under the names the catalogue gives, each described.
#![cfg(all(feature = "axum", feature = "prometheus"))]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use metrics_exporter_prometheus::PrometheusBuilder;
use steadfast::core::telemetry::CATALOGUE;
use steadfast::observe::ObserveLayer;
use steadfast::observe::prometheus::recommended;
use tower::ServiceExt;

#[tokio::test]
async fn request_durations_render_with_the_recommended_buckets() {
    let recorder = recommended(PrometheusBuilder::new())
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route_layer(ObserveLayer::new());
    app.oneshot(Request::get("/users/1").body(Body::empty()).unwrap())
        .await
        .unwrap();

    let text = handle.render();
    assert!(
        text.contains("# TYPE http_server_request_duration_seconds histogram"),
        "{text}"
    );
    for bound in ["0.005", "0.075", "10", "+Inf"] {
        let line = format!("le=\"{bound}\"");
        assert!(
            text.lines().any(
                |l| l.starts_with("http_server_request_duration_seconds_bucket")
                    && l.contains("http_route=\"/users/{id}\"")
                    && l.contains(&line)
            ),
            "bucket {bound} missing:\n{text}"
        );
    }
    // Every family is catalogued under its Prometheus name, and described.
    let names: Vec<String> = CATALOGUE.iter().map(|m| m.prometheus_name()).collect();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let family = line.split(' ').nth(2).unwrap();
        assert!(
            names.iter().any(|n| n == family),
            "{family} is not catalogued"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no HELP:\n{text}"
        );
    }
}
