//! Circuit breaking: fail fast on a failing route or dependency, recover by itself.
//!
//! A [`Breaker`] watches the outcomes of the calls it lets through (classified once, in
//! [`crate::core::classify`]: 5xx, gRPC server errors, inner errors and timeouts are failures;
//! other steadfast layers' rejections are not counted). When the failure rate (or the slow-call
//! rate) of its sliding window reaches a threshold, it **opens**: calls are answered at once
//! with `503 Service Unavailable`, `Retry-After` and a problem+json body (gRPC: `UNAVAILABLE`),
//! without reaching the inner service. After the open duration it goes **half-open** and lets a
//! bounded number of probes through; their outcome closes it or opens it again, for longer if a
//! backoff is configured.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get, http::StatusCode};
//! use steadfast::breaker::{BreakerConfig, BreakerLayer, SlidingWindow};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! async fn flaky() -> StatusCode {
//!     StatusCode::BAD_GATEWAY
//! }
//!
//! let breaker = BreakerLayer::new(
//!     BreakerConfig::new()
//!         .sliding_window(SlidingWindow::count(10))
//!         .minimum_calls(5)
//!         .open_duration(Duration::from_secs(30)),
//! )
//! .unwrap();
//! let app = Router::new().route("/flaky", get(flaky)).route_layer(breaker);
//!
//! let get = || http::Request::get("/flaky").body(axum::body::Body::empty()).unwrap();
//! for _ in 0..5 {
//!     assert_eq!(app.clone().oneshot(get()).await.unwrap().status(), 502);
//! }
//! // Five failures out of five: the breaker for /flaky is open and answers for the handler.
//! let response = app.oneshot(get()).await.unwrap();
//! assert_eq!(response.status(), 503);
//! assert_eq!(response.headers()["retry-after"], "30");
//! # }
//! ```
//!
//! # States
//!
//! Besides closed, open and half-open, a [`BreakerHandle`] can put a breaker in three states by
//! hand: [`State::Disabled`] (always pass, record nothing), [`State::ForcedOpen`] (always
//! reject) and [`State::MetricsOnly`] (measure and compute rates, never trip), each starting
//! with an empty window as in Resilience4j. [`BreakerHandle::half_open`] and
//! [`BreakerHandle::close`] make the other transitions by hand; [`BreakerHandle::reset`]
//! returns to closed with an empty window and also forgets the open backoff.
//!
//! # Semantics
//!
//! Thresholds are compared with `>=` and checked only when an outcome is recorded, once the
//! window holds the minimum number of calls (capped at a count window's size). A call is slow
//! when strictly longer than the slow-call duration. The open wait must be strictly exceeded.
//! Half-open rejects calls beyond its permits (they are not queued) and opens again if its
//! probes do not finish within the maximum wait. A call whose future is dropped (cancelled)
//! gives its permit back and records nothing. The window starts fresh on the way to closed.
//! Outcomes of calls admitted in an earlier state are ignored.
//!
//! # Watching and calling by hand
//!
//! [`BreakerHandle::snapshot`] tells the state, the window's figures, the rates the breaker
//! judges by (`None` while the window holds fewer calls than the minimum: "not enough calls
//! yet" is not a 0 % rate, where Resilience4j reports `-1`) and, while half-open, the probes'
//! progress ([`HalfOpenProgress`]: places in use, probes completed, failed and slow).
//!
//! Outside a Tower service, [`BreakerHandle::try_acquire`] asks permission for one call and
//! returns a [`BreakerPermit`] to record the outcome on ([`success`](BreakerPermit::success),
//! [`failure_after`](BreakerPermit::failure_after), …) or a [`NotPermitted`] that says the state
//! and how long to wait. The [`Breaker`] service goes through the same permit, so both
//! paths behave alike: a permit dropped unrecorded is a cancelled call.
//!
//! # gRPC
//!
//! A gRPC call's outcome is its `grpc-status`: read from the headers of a trailers-only
//! response (how tonic answers an error), or from the trailers when the response body ends
//! (how it answers a success, and how a stream fails midway). In the second case the body
//! finishes the call; a body dropped before its end counts for nothing, like a cancelled call.
//! With [`TypedErrors`](crate::core::TypedErrors) the response head is as far as the breaker looks.
//!
//! # Cost
//!
//! The closed state costs no lock and no allocation per call: admission is one atomic load, and
//! recording a count window's outcome a few atomic additions. Durations (two clock reads) are
//! measured only with slow-call detection or a time window.

mod config;
mod future;
mod handle;
mod layer;
mod service;
mod state;
mod window;

#[cfg(all(test, loom))]
mod loom_tests;

pub use crate::core::keyed::KeyFn;
pub use config::{BreakerConfig, ConfigError, SlidingWindow};
pub use future::{BreakerBody, BreakerReply, EndOfCall, ResponseFuture};
pub(crate) use future::{Guard as CallGuard, settle};
pub(crate) use handle::Call as BreakerCall;
pub use handle::{BreakerEvent, BreakerHandle, BreakerPermit, BreakerSnapshot, NotPermitted};
pub use layer::{BreakerKey, BreakerLayer, DEFAULT_MAX_BREAKERS};
pub use service::Breaker;
pub use state::{HalfOpenProgress, State, Transition, TransitionReason};
pub use window::WindowSnapshot;

/// The old name of [`BreakerLayer`].
#[deprecated(note = "renamed `BreakerLayer`, like every capability's `XLayer`")]
pub type CircuitBreakerLayer<
    C = crate::core::DefaultClassifier,
    M = crate::core::ProtocolResponses,
> = BreakerLayer<C, M>;

/// The old name of [`Breaker`].
#[deprecated(note = "renamed `Breaker`, like every capability's `X<S>`")]
pub type CircuitBreaker<S, C = crate::core::DefaultClassifier, M = crate::core::ProtocolResponses> =
    Breaker<S, C, M>;
