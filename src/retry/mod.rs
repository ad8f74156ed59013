//! Retries of outbound calls that cannot amplify an outage.
//!
//! A [`Retry`] sends a call again when its dependency said "not now" (503, 429, gRPC
//! `UNAVAILABLE`/`RESOURCE_EXHAUSTED`), when the client failed to reach it (a transport error)
//! or when an attempt ran out of its own time — and only when that is safe and affordable:
//!
//! - **Safe**: idempotent methods only (RFC 9110's GET, HEAD, OPTIONS, PUT, DELETE, TRACE; gRPC
//!   methods listed with [`RetryConfig::idempotent_grpc_method`]), or a request marked
//!   [`Retryable::Yes`]. Request bodies up to [`RetryConfig::max_replay_bytes`] are read first and
//!   sent again without a copy; larger ones stream through once and are not retried.
//! - **Polite**: exponential backoff with full jitter (25 ms doubling to 250 ms by default);
//!   a dependency's `Retry-After` (delta-seconds) or `grpc-retry-pushback-ms` replaces it, and a
//!   negative pushback or a wait longer than [`RetryConfig::max_retry_after`] ends the call with
//!   the dependency's answer.
//! - **Within the deadline**: with a [`Deadline`](crate::core::Deadline) on the request, no attempt
//!   is started unless the wait plus the time the last attempt took still fits before it.
//! - **Within budget**: a [`RetryBudget`], shared by every caller of the dependency in the
//!   process, allows retries of at most 10 % of recent calls plus 10 per second. A call that
//!   needs a retry the budget cannot pay for fails fast with
//!   [`RejectionKind::RetryBudgetExhausted`](crate::core::RejectionKind::RetryBudgetExhausted),
//!   so a failing dependency sees little more than the calls its callers make: no retry storm.
//!
//! Outbound, nothing is forged: the layer answers the dependency's response, the client's
//! error ([`Error::Inner`](crate::Error::Inner)) or its own refusal
//! ([`Error::Rejected`](crate::Error::Rejected)).
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Empty;
//! use bytes::Bytes;
//! use steadfast::retry::{RetryConfig, RetryLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // A dependency that is unavailable once, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let seen = calls.clone();
//! let client = service_fn(move |_request: Request<_>| {
//!     let call = seen.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let status = if call == 0 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
//!         Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap())
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryConfig::new().name("inventory")).unwrap())
//!     .service(client);
//!
//! let request = Request::get("http://inventory/items/7").body(Empty::<Bytes>::new()).unwrap();
//! let response = client.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # }
//! ```
//!
//! For the whole outbound policy (per-attempt timeout, deadline propagation, breaker, throttle,
//! concurrency cap and retries, in that fixed order), use [`crate::dependency`], which is built
//! on this module.

mod body;
mod budget;
mod config;
mod decide;
mod service;

pub use body::ReplayBody;
pub use budget::{BudgetSnapshot, RetryBudget};
pub use config::{BudgetConfig, ConfigError, RetryConfig};
pub use service::{
    AttemptErrors, OverTyped, ResendCount, ResponseFuture, Retry, RetryHandle, RetryLayer,
    RetrySnapshot, Retryable,
};
