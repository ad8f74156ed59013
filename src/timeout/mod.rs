//! Timeouts with deadline propagation.
//!
//! [`TimeoutLayer`] gives every request a deadline: the earliest of the service's own budget,
//! an optional cap, the caller's `grpc-timeout` (and, opt-in, an HTTP deadline header) and any
//! [`Deadline`](crate::core::Deadline) an outer layer set. A request that arrives with no time
//! left is answered at once without calling the inner service. One that runs out of time has its
//! inner future dropped, which cancels the work, and is answered:
//!
//! - HTTP: `504 Gateway Timeout` (configurable) with an `application/problem+json` body;
//! - gRPC: a trailers-only response with `grpc-status: 4` (`DEADLINE_EXCEEDED`).
//!
//! Both carry the [`Rejection`](crate::core::Rejection) in their extensions. Errors of the inner
//! service pass unchanged, so an Axum router needs no `HandleErrorLayer`:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use steadfast::timeout::TimeoutLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! async fn slow() -> &'static str {
//!     tokio::time::sleep(Duration::from_secs(5)).await;
//!     "too late"
//! }
//!
//! let app = Router::new()
//!     .route("/slow", get(slow))
//!     .layer(TimeoutLayer::new(Duration::from_millis(300)).expect("a valid budget"));
//!
//! let request = http::Request::get("/slow").body(axum::body::Body::empty()).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 504);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! # }
//! ```
//!
//! # Handlers and outbound calls
//!
//! The effective deadline is published as the request's current
//! [`Deadline`](crate::core::Deadline) while the inner service is called and polled — no
//! allocation, unlike an `http::Extensions` insert. A handler reads it with
//! [`Deadline::current`](crate::core::Deadline::current) (with the `axum` feature, `Deadline` is
//! an extractor; `Option<Deadline>` where the layer is optional). Calls the handler makes
//! through [`PropagateDeadlineLayer`] (or a [dependency policy](crate::dependency)) pass on the
//! remaining time as `grpc-timeout` (or a configured HTTP header) and fail fast when none is
//! left, without the handler copying anything; a deadline put in the outbound request's
//! extensions by hand takes precedence:
//!
//! ```
//! use std::time::Duration;
//! use steadfast::timeout::{PropagateDeadlineLayer, TimeoutLayer};
//! use tower::{Layer, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // Stands in for a hyper client or a tonic Channel.
//! let upstream = tower::service_fn(|request: http::Request<()>| async move {
//!     assert_eq!(request.headers()["grpc-timeout"], "250000u");
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! });
//! let client = ServiceBuilder::new().layer(PropagateDeadlineLayer::new()).service(upstream);
//!
//! // A handler served under a 250 ms budget calls the upstream.
//! let handler = tower::service_fn(move |_: http::Request<()>| {
//!     let client = client.clone();
//!     async move {
//!         let outbound = http::Request::post("http://inventory/pkg.Inventory/Reserve")
//!             .header("content-type", "application/grpc")
//!             .body(())
//!             .unwrap();
//!         client.oneshot(outbound).await
//!     }
//! });
//! let service = TimeoutLayer::new(Duration::from_millis(250)).unwrap().layer(handler);
//! service.oneshot(http::Request::new(())).await.unwrap();
//! # }
//! ```
//!
//! Work handed to another task does not see the deadline (it may outlive the request); to
//! bound it, read `Deadline::current()` in the handler and put it in the extensions of the
//! requests that work sends. With tonic, a deadline put in the `tonic::Request`'s extensions
//! (`request.extensions_mut().insert(deadline)`) is carried into the HTTP request.
//!
//! # Malformed deadline headers
//!
//! An unreadable `grpc-timeout` (or configured header) never panics. By default it is ignored:
//! the request is served under the service's own budget, and the event is counted in
//! `steadfast.deadline.invalid`. [`OnInvalidDeadline::Reject`] answers 400 problem+json
//! (gRPC `INVALID_ARGUMENT`) instead.

mod config;
mod future;
mod layer;
mod propagate;
mod service;

pub use config::{DeadlineFormat, OnInvalidDeadline, TimeoutConfig};
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;
pub(crate) use propagate::write_time_left;
pub use propagate::{PropagateDeadline, PropagateDeadlineLayer};
pub use service::Timeout;
pub(crate) use service::{admit, expired};
