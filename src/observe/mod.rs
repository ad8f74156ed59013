//! Automatic instrumentation: per-route RED metrics and server spans that follow the
//! OpenTelemetry semantic conventions.
//!
//! [`ObserveLayer`] records, through the [`metrics`] facade, for HTTP:
//! `http.server.request.duration` (seconds, until the response head) with
//! `http.request.method` (unknown methods as `_OTHER`), `url.scheme`, `http.route` (Axum's
//! route template, never the raw path), `network.protocol.version`,
//! `http.response.status_code` and, on errors, `error.type` (steadfast's rejection reason, the
//! 5xx status, or the inner error's type); and `http.server.active_requests`. For gRPC:
//! `rpc.server.call.duration` with `rpc.system.name = "grpc"`, `rpc.method`
//! (`pkg.Service/Method`), `rpc.status_code` (`"OK"`, `"DEADLINE_EXCEEDED"`, ...) and, on server
//! errors, `error.type`; a status in the trailers is read when the response body ends.
//!
//! Each request runs inside a `tracing` span named [`SPAN_NAME`] (`steadfast.request`, target
//! `steadfast::observe`) with those fields, `otel.kind = "server"`,
//! `otel.name = "{method} {route}"` and `otel.status_code = "ERROR"` for 5xx and gRPC server
//! errors (not for 4xx), as `tracing-opentelemetry` expects.
//!
//! **With tower-http's `TraceLayer`**, place it inside the observer and let it log in
//! steadfast's span ([`current_span`]), so a request has one span, not tower-http's `request`
//! span around steadfast's:
//!
//! ```
//! use axum::{Router, routing::get};
//! use steadfast::observe::{ObserveLayer, current_span};
//! use tower_http::trace::TraceLayer;
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .route_layer(TraceLayer::new_for_http().make_span_with(current_span))
//!     .route_layer(ObserveLayer::new());
//! ```
//!
//! Put it outermost, so it sees every outcome, steadfast's own rejections included:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use steadfast::observe::ObserveLayer;
//! use steadfast::timeout::TimeoutLayer;
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .route_layer(TimeoutLayer::new(Duration::from_millis(300)).expect("a valid budget"))
//!     .route_layer(ObserveLayer::new());
//! ```
//!
//! Route labels are bounded: the router's templates or the gRPC methods, at most
//! [`DEFAULT_MAX_ROUTES`] distinct values (the rest share `overflow`); requests no route matched
//! share `unmatched`. With no metrics recorder and no tracing subscriber installed, the cost is
//! two clock reads and a few branches per request.

mod future;
mod layer;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod service;
mod span;

pub(crate) use future::{Active, Request as Measured, finish};
pub use future::{EndOfCall, ObserveBody, ResponseFuture};
pub use layer::{DEFAULT_MAX_ROUTES, ObserveConfig, ObserveLayer};
pub use service::Observe;
pub(crate) use service::{ObserveCache, Started};
pub use span::{SPAN_NAME, current_span};
