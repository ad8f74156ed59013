//! One policy per outbound dependency: deadline, breaker, throttle, concurrency cap and
//! retries under a budget, around any HTTP or gRPC client.
//!
//! Most incidents start in a dependency. A [`DependencyLayer`] puts every call to one under a
//! named [`DependencyConfig`], in this fixed order:
//!
//! 1. **Retries** ([`crate::retry`]), outermost: idempotent calls only, backoff with full
//!    jitter, the dependency's `Retry-After`/`grpc-retry-pushback-ms` honoured, never an
//!    attempt the caller's deadline cannot cover, and a budget shared by every caller of the
//!    dependency in the process. Each of the following steps runs per **attempt**:
//!    With [hedging](HedgeConfig) on (opt-in), a slow idempotent attempt gets a second one
//!    after the dependency's 95th-percentile latency; the first answer wins, and each hedge
//!    spends a retry from the same budget.
//! 2. the caller's [`Deadline`](crate::core::Deadline) (copied onto the outbound request from the
//!    inbound one): a spent deadline is not sent;
//! 3. the client-side **adaptive throttle** ([`crate::throttle`]): drops attempts locally while
//!    the dependency refuses most of them;
//! 4. the **circuit breaker** ([`crate::breaker`], on by default here): fails fast while open.
//!    It counts transport errors, timeouts and 5xx / gRPC server errors, but not refusals as
//!    overload (503, 429, `UNAVAILABLE`, `RESOURCE_EXHAUSTED`): those are the throttle's, since
//!    a dependency shedding half its load still serves the other half;
//! 5. the **concurrency cap** (a bulkhead, off by default);
//! 6. the attempt's **time limit** (the earlier of the deadline and
//!    [`attempt_timeout`](DependencyConfig::attempt_timeout)), announced to the dependency
//!    (`grpc-timeout`, or the configured HTTP header) and enforced.
//!
//! Nothing on the client side is forged: the caller gets the dependency's own answer, the
//! client's error as [`Error::Inner`](crate::Error::Inner), or, for a call this process did
//! not send or gave up on, [`Error::Rejected`](crate::Error::Rejected) with a [`Rejection`] whose
//! [kind](crate::core::RejectionKind) says which: `CircuitOpen`, `Throttled`, `Overloaded` (the
//! cap), `DeadlineExpired`, `Timeout`, `RetryBudgetExhausted`. The response type is the client's
//! own: `Response<hyper::body::Incoming>` for hyper-util's client.
//!
//! [`Rejection`]: crate::core::Rejection
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Empty;
//! use steadfast::core::RejectionKind;
//! use steadfast::dependency::{DependencyConfig, DependencyLayer};
//! use steadfast::Error;
//! use tower::{Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // A dependency that hangs.
//! let client = service_fn(|_request: Request<_>| async {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok::<_, std::io::Error>(Response::new(()))
//! });
//! let layer = DependencyLayer::new(
//!     DependencyConfig::new("pricing").attempt_timeout(Duration::from_millis(200)),
//! )
//! .unwrap();
//! let mut pricing = tower::ServiceBuilder::new().layer(layer.clone()).service(client);
//!
//! let request = Request::get("http://pricing/quote").body(Empty::<Bytes>::new()).unwrap();
//! match pricing.ready().await.unwrap().call(request).await {
//!     // Three attempts of 200 ms each, then the last attempt's timeout.
//!     Err(Error::Rejected(rejection)) => assert_eq!(rejection.kind(), RejectionKind::Timeout),
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(layer.handle().snapshot().in_flight, 0);
//! # }
//! ```
//!
//! With hyper-util's client the body type the client is built for is
//! [`ReplayBody<B>`](crate::retry::ReplayBody): `Client::builder(TokioExecutor::new())
//! .build_http::<ReplayBody<Full<Bytes>>>()`. A tonic `Channel` takes tonic's own body, so wrap
//! the policy's body back into one and build the generated client on the result:
//!
//! ```ignore
//! let channel = channel.map_request(|request: http::Request<ReplayBody<tonic::body::Body>>| {
//!     request.map(tonic::body::Body::new)
//! });
//! let policy = DependencyLayer::new(
//!     DependencyConfig::new("inventory")
//!         .retry(Some(RetryConfig::new().idempotent_grpc_method("/shop.Inventory/Get"))),
//! )?;
//! let mut inventory = InventoryClient::new(policy.layer(channel));
//! ```
//!
//! (`tests/tonic.rs` runs exactly this against a tonic server on loopback; a refusal reaches the
//! generated client as the `Status` tonic makes of a service error, carrying the
//! [`Error`](crate::Error).)

mod config;
mod hedge;
mod measure;
#[cfg(feature = "reqwest")]
mod reqwest_client;
mod service;

pub use config::{ConfigError, DependencyConfig};
pub use hedge::{Hedge, HedgeConfig, HedgeDelay, HedgeFuture};
#[cfg(feature = "reqwest")]
pub use reqwest_client::{ReqwestClient, ReqwestFuture};
pub use service::{
    Attempt, AttemptFuture, Dependency, DependencyHandle, DependencyLayer, DependencySnapshot,
    ResponseFuture,
};
