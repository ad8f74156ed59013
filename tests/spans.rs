//! Server spans reach an OpenTelemetry pipeline (`tracing-opentelemetry`, an in-memory
//! exporter): one span per request, named by OpenTelemetry's conventions, with tower-http's
//! `TraceLayer` logging inside it.
#![cfg(feature = "axum")]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use steadfast::observe::{ObserveLayer, SPAN_NAME, current_span};
use steadfast::policy::{Policies, Policy, PolicyLayer};
use tower::ServiceExt;
use tower_http::trace::TraceLayer;
use tracing_subscriber::layer::SubscriberExt;

/// Runs `send` under a subscriber that exports spans to memory, and returns the spans.
async fn exported<F: std::future::Future<Output = ()>>(send: F) -> Vec<SpanData> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("steadfast-test")));
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        send.await;
    }
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::new(key.to_owned()))
        .map(|kv| &kv.value)
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
}

async fn call(app: Router, path: &str) -> StatusCode {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

#[tokio::test]
async fn the_observer_s_span_is_an_opentelemetry_server_span() {
    let spans = exported(async {
        let app = app().route_layer(ObserveLayer::new());
        assert_eq!(call(app.clone(), "/users/7").await, StatusCode::OK);
        assert_eq!(call(app, "/fail").await, StatusCode::INTERNAL_SERVER_ERROR);
    })
    .await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let ok = spans.iter().find(|s| s.name == "GET /users/{id}").unwrap();
    assert_eq!(ok.span_kind, SpanKind::Server);
    assert_eq!(
        attribute(ok, "http.route"),
        Some(&Value::from("/users/{id}"))
    );
    assert_eq!(
        attribute(ok, "http.request.method"),
        Some(&Value::from("GET"))
    );
    assert_eq!(
        attribute(ok, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(ok.status, Status::Unset);
    let failed = spans.iter().find(|s| s.name == "GET /fail").unwrap();
    assert!(matches!(failed.status, Status::Error { .. }), "{failed:?}");
    assert_eq!(
        attribute(failed, "error.type"),
        Some(&Value::from("500")),
        "{failed:?}"
    );
}

#[tokio::test]
async fn trace_layer_inside_the_observer_logs_in_its_span() {
    let spans = exported(async {
        let app = app()
            .route_layer(TraceLayer::new_for_http().make_span_with(current_span))
            .route_layer(ObserveLayer::new());
        assert_eq!(call(app, "/users/7").await, StatusCode::OK);
    })
    .await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span.name, "GET /users/{id}");
    // tower-http's "started processing request" and "finished processing request".
    assert!(span.events.len() >= 2, "{span:#?}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(
        attribute(span, "http.route"),
        Some(&Value::from("/users/{id}"))
    );
    assert_eq!(
        attribute(span, "http.response.status_code"),
        Some(&Value::I64(200))
    );
}

#[tokio::test]
async fn under_trace_layer_s_own_span_steadfast_s_span_has_its_own_name() {
    let spans = exported(async {
        let app = app()
            .route_layer(ObserveLayer::new())
            .layer(TraceLayer::new_for_http());
        assert_eq!(call(app, "/users/7").await, StatusCode::OK);
    })
    .await;
    // tower-http's `request` span holds steadfast's: the setup `current_span` avoids.
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let outer = spans.iter().find(|s| s.name == "request").unwrap();
    let ours = spans.iter().find(|s| s.name == "GET /users/{id}").unwrap();
    assert_eq!(ours.parent_span_id, outer.span_context.span_id());
    assert_ne!(SPAN_NAME, "request");
}

#[tokio::test]
async fn the_policy_stack_opens_one_span_too() {
    let spans = exported(async {
        let policies = Policies::new(Policy::new()).route("/users/{id}", Policy::new());
        let app = app()
            .route_layer(TraceLayer::new_for_http().make_span_with(current_span))
            .route_layer(PolicyLayer::new(policies).unwrap());
        assert_eq!(call(app, "/users/7").await, StatusCode::OK);
    })
    .await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].name, "GET /users/{id}");
}

#[tokio::test]
async fn nested_observers_share_one_span() {
    let spans = exported(async {
        let app = app()
            .route_layer(ObserveLayer::new())
            .route_layer(ObserveLayer::new());
        assert_eq!(call(app, "/users/7").await, StatusCode::OK);
    })
    .await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
}

#[tokio::test]
async fn a_grpc_call_s_span_is_named_by_its_method() {
    let spans = exported(async {
        let app = Router::new()
            .route(
                "/shop.Orders/Place",
                axum::routing::post(|| async {
                    (
                        [("content-type", "application/grpc"), ("grpc-status", "0")],
                        "",
                    )
                }),
            )
            .route_layer(TraceLayer::new_for_grpc().make_span_with(current_span))
            .route_layer(ObserveLayer::new());
        let response = app
            .oneshot(
                Request::post("/shop.Orders/Place")
                    .header("content-type", "application/grpc")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
    })
    .await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(
        attribute(span, "rpc.system.name"),
        Some(&Value::from("grpc"))
    );
    assert!(
        span.name.contains("Orders/Place"),
        "named by its method: {}",
        span.name
    );
    assert_eq!(attribute(span, "rpc.status_code"), Some(&Value::from("OK")));
}
