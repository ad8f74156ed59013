//! Per-route policies: the whole stack of protections, in the right order, configured in one
//! place and reloadable while the service runs.
//!
//! A [`Policy`] says what a route gets (a timeout, a circuit breaker, a load shedder and, with
//! a contract, how its messages are checked); [`Policies`] holds the defaults and the overrides
//! by route template and method. [`PolicyLayer`] applies the stack to every route, looking the
//! policy up per request (Axum's `MatchedPath`, or the gRPC method path), and
//! [`PolicyHandle::reload`] swaps the policies without a restart.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use steadfast::policy::{Policies, Policy, PolicyLayer};
//! use steadfast::shed::Criticality;
//!
//! # fn main() -> Result<(), steadfast::policy::PolicyError> {
//! let policies = Policies::new(Policy::new().timeout(Duration::from_secs(2)))
//!     .route("/checkout", Policy::new().timeout(Duration::from_millis(300)))
//!     .route("/search", Policy::new().criticality(Criticality::Sheddable));
//! let layer = PolicyLayer::new(policies)?;
//! let reload = layer.handle(); // keep it to swap the policies later
//! let app: Router = Router::new()
//!     .route("/checkout", get(|| async { "ordered" }))
//!     .route("/search", get(|| async { "found" }))
//!     .layer(layer);
//! # let _ = (app, reload); Ok(()) }
//! ```
//!
//! # Where it goes
//!
//! - `Router::layer(policy_layer)` (as above): the router has matched the route, and the
//!   layer reads its template from Axum's `MatchedPath`.
//! - Around the whole router (`policy_layer.layer(router)`, or outside other middleware): no
//!   route is matched yet, so the layer matches the request path itself against the
//!   templates it knows, its policies' and its contract's (in Axum's syntax, with `matchit`,
//!   the matcher Axum uses). Every layer inside sees that template (as the current route
//!   while it is called and polled, without touching the request), so a route gets its
//!   policy either way. A path that matches none of them is served under the defaults (in
//!   strict mode, refused) and labelled `unmatched`: with this placement, a route with no
//!   policy and no contract is not known by name.
//! - gRPC: the method path (`/package.Service/Method`) is the route, wherever the layer is.
//!
//! The inner service gets `Request<`[`RequestBody`](crate::core::RequestBody)`<B>>`
//! ([`InnerRequest`]) whichever features are on, and answers through an opaque
//! [`PolicyFuture`] and [`PolicyBody`]: turning on `contract` (or any feature, in any crate of
//! the build) changes no type a handler or a caller names. Axum's `Router` and tonic's
//! services take any such body as it is.
//!
//! # The order, and why
//!
//! Outermost first: **observe → breaker → timeout → shed → fault → contract → catch panic →
//! handler**.
//!
//! - The observer is outermost, so it records every outcome, every layer's rejections
//!   included, with its reason in `error.type`.
//! - The breaker sits outside the timeout, so that it sees a timeout as the `504` it is and
//!   counts it as a failure (inside, it would only see its call cancelled). It counts
//!   handler failures too, but not the shedder's or the contract's rejections of requests,
//!   which are marked as steadfast's own and are not failures. An open breaker answers
//!   before any other work.
//! - The timeout wraps the shedder and the contract, so time spent waiting in the shedder's
//!   queue and reading the request body counts against the request's deadline, and a request
//!   that arrives with its deadline spent is refused before anything else is done.
//! - The shedder admits before the body is read: an overloaded service does not read the
//!   bodies of requests it will refuse. (A slow sender holds its slot while its body is read;
//!   the deadline bounds how long.)
//! - Fault injection for drills ([`crate::fault`], off unless a policy sets `fault`) sits
//!   just inside the shedder: an injected delay holds a slot and counts against the deadline,
//!   an injected abort is counted by the breaker and the metrics like the service's failure.
//! - The contract is innermost but for the panic catcher: bodies are read only for admitted
//!   requests, and only valid ones reach the handler.
//! - A handler's panic, when it is called or while its future runs, is caught innermost (by
//!   the fused stack itself, or by [`CatchPanic`](crate::core::CatchPanic) inside a contract)
//!   and answered `500` problem+json / `INTERNAL` ([`RejectionKind::Panicked`]), so every
//!   part around it sees a failure rather than a cancelled call.
//!
//! [`RejectionKind::Panicked`]: crate::core::RejectionKind::Panicked
//! - In [strict mode](PolicyLayer::strict), a guard just inside the observer refuses routes
//!   without a policy of their own: observed, and never seen by the breaker.
//! - There is no retry anywhere in the stack, so nothing multiplies the load on a struggling
//!   handler or inflates the breaker's counts. Retries belong to the caller, within its
//!   deadline.
//!
//! # One stack, run as one future
//!
//! The order above is how a request is treated; it is not a pile of services. The policy runs
//! its stack as one state machine ([`PolicyFuture`]): the protocol, the route and the clock
//! are read once at entry and shared by every part, the outcome is classified once for the
//! breaker and the shedder, the clock is read once at the end for the shedder and the
//! observer, and the response has one body wrapper ([`PolicyBody`]). Parts a policy does not
//! have (no breaker, no shedding, no faults) are absent, not disabled. Nothing is allocated
//! per request (a request that waits in a queue, or is delayed by an injected fault, boxes
//! its wait). The standalone layers ([`crate::timeout`], [`crate::breaker`], [`crate::shed`],
//! [`crate::observe`]) share the same internals, for services composed by hand.
//!
//! # Hot reload
//!
//! [`PolicyLayer::handle`] gives a [`PolicyHandle`]; [`PolicyHandle::reload`] validates and
//! swaps the policies atomically. Requests in flight finish under the policy they started with;
//! a breaker or limiter whose own settings did not change keeps its state.
//!
//! With the `config` feature, [`PolicyFile`] reads the policies from a TOML file (the keys are
//! listed in [`CONFIG_KEYS`]), and [`PolicyHandle::reload_file`] swaps in a whole file: its
//! policies and its `[openapi]` section (document, `max_body_bytes`, `undocumented`). A
//! contract set in code stays; a reloaded file that names another one is refused, never
//! silently ignored. `reload` with policies alone leaves the contract as it is.

#[cfg(feature = "config")]
mod file;
mod fused;
mod layer;
mod service;
mod spec;

pub use crate::core::Strict;
#[cfg(feature = "config")]
pub use file::{CONFIG_KEYS, ConfigKey, PolicyFile};
pub use fused::{PolicyBody, PolicyFuture};
pub use layer::{PolicyHandle, PolicyLayer};
pub use service::{InnerRequest, PolicyService};
pub use spec::{
    AlertSettings, DEFAULT_TIMEOUT, Objective, Policies, Policy, PolicyError, RouteMatch,
};
