//! The server span: one per request, named [`SPAN_NAME`], made by the outermost steadfast
//! observer and shared with tower-http's `TraceLayer` through [`current_span`].

use http::Request;
use tracing::Span;
use tracing::field::Empty;

/// The `tracing` name of steadfast's server span (its target is `steadfast::observe`). It is
/// not tower-http's `request`: filters and log lines tell the two apart. OpenTelemetry
/// exporters name the span from its `otel.name` field, `{method} {route}` for HTTP and the
/// method path for gRPC.
pub const SPAN_NAME: &str = "steadfast.request";

/// The target of steadfast's server span.
const SPAN_TARGET: &str = "steadfast::observe";

/// The span tower-http's `TraceLayer` should log in when it runs inside steadfast's observer:
/// the current one, steadfast's server span. With
/// `TraceLayer::new_for_http().make_span_with(steadfast::observe::current_span)` placed inside
/// [`ObserveLayer`](super::ObserveLayer) (or the policy layer), a request has **one** span:
/// tower-http's events (request, response, failure) are logged inside steadfast's, which
/// carries the route, the outcome and the OpenTelemetry name (`GET /users/{id}`).
///
/// With `TraceLayer`'s own span instead (its default, `request`), each request has two: that
/// span, outside, holding steadfast's. (A span made outside the router cannot take the route as
/// its OpenTelemetry name: `tracing-opentelemetry` fixes the name when the span is first
/// entered, before routing.)
///
/// ```
/// use axum::{Router, routing::get};
/// use steadfast::observe::{ObserveLayer, current_span};
/// use tower_http::trace::TraceLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "user" }))
///     // Inside the observer: layers added later run further out.
///     .route_layer(TraceLayer::new_for_http().make_span_with(current_span))
///     .route_layer(ObserveLayer::new());
/// ```
pub fn current_span<B>(_request: &Request<B>) -> Span {
    Span::current()
}

/// The span of a gRPC call; `rpc.method` is recorded once known.
pub(crate) fn grpc_span() -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        SPAN_NAME,
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system.name = "grpc",
        rpc.method = Empty,
        rpc.status_code = Empty,
        error.type = Empty,
    )
}

/// The span of an HTTP request; `http.route` is recorded once known.
pub(crate) fn http_span(method: &'static str, scheme: &'static str, version: &'static str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        SPAN_NAME,
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = Empty,
        url.scheme = scheme,
        network.protocol.version = version,
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// The server span an observer further out opened for this request (the policy stack's, or a
/// hand-composed one), which this observer shares rather than opening a second one.
#[inline]
pub(crate) fn current() -> Option<Span> {
    // No subscriber was ever installed: no span can be current (one atomic load).
    if !tracing::dispatcher::has_been_set() {
        return None;
    }
    let current = Span::current();
    let ours = current
        .metadata()
        .is_some_and(|meta| meta.name() == SPAN_NAME && meta.target() == SPAN_TARGET);
    ours.then_some(current)
}
