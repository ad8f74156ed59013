//! Tower layers that keep Axum and Tonic services standing when things go wrong: timeouts that
//! honour the caller's deadline and pass it on, circuit breaking, adaptive load shedding,
//! contract validation, instrumentation, and policies for the dependencies a service calls.
//!
//! Every inbound rejection is a protocol answer — for HTTP a status with an RFC 9457
//! `application/problem+json` body and `Retry-After` where it helps, for gRPC a trailers-only
//! response with the right `grpc-status` — so an Axum router never needs `HandleErrorLayer`.
//! Outbound refusals (an open breaker, a spent deadline, an exhausted retry budget) are typed
//! errors, never made-up responses.
//!
//! # Modules
//!
//! | module | what it does |
//! |---|---|
//! | [`policy`] | Per-route policies composing the layers below in a fixed order, from code or a TOML file (feature `config`), reloadable at run time. Start here. |
//! | [`timeout`] | Time budgets that honour the caller's `grpc-timeout` or deadline header, and [`timeout::PropagateDeadlineLayer`] to pass the time left on. |
//! | [`breaker`] | Circuit breaking, per route or shared, count- or time-based windows. |
//! | [`shed`] | Load shedding with an adaptive concurrency limit, criticality classes and an optional queue. |
//! | [`observe`] | Metrics and server spans following OpenTelemetry's semantic conventions. |
//! | `contract` | Requests and responses checked against OpenAPI 3.0/3.1 or JSON Schema (feature `contract`). |
//! | [`dependency`] | One policy per outbound dependency: deadline, breaker, [`retry`] under a budget, hedging, adaptive [`throttle`], a concurrency cap; for hyper, tonic and reqwest (feature `reqwest`) clients. |
//! | [`fault`] | Fault injection (delays, aborts) for drills. |
//! | [`map`] | The reality map: which routes call which dependencies, from live traffic. |
//! | `guardrails` | Prometheus recording and alerting rules, a Grafana dashboard and CI checks generated from the policies (feature `guardrails`). |
//! | [`core`] | What every layer shares: outcome classification, the rejection model, the [`Deadline`], the clock, the metric catalogue. |
//!
//! Every capability module has the same shape: an `XLayer`, the service `X<S>`, an `XConfig`
//! builder with documented defaults and `validate`, and where state is shared an `XHandle`
//! with its `XSnapshot`.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use steadfast::policy::{Policies, Policy, PolicyLayer};
//! use steadfast::shed::Criticality;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Every route: a 2 s budget (a caller's `grpc-timeout` can shorten it), a circuit
//! // breaker, adaptive load shedding, metrics and spans. Checkout gets 300 ms; search is
//! // shed first under overload.
//! let policies = Policies::new(Policy::new().timeout(Duration::from_secs(2)))
//!     .route("/checkout", Policy::new().timeout(Duration::from_millis(300)))
//!     .route("/search", Policy::new().criticality(Criticality::Sheddable));
//! let app = Router::new()
//!     .route("/checkout", get(|| async { "ordered" }))
//!     .route("/search", get(|| async { "results" }))
//!     .layer(PolicyLayer::new(policies)?);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! None is on by default, and each only adds: `axum` (the [`Deadline`] extractor, route
//! templates from `MatchedPath`), `prometheus` (exporter settings for the metrics and
//! guardrails), `config` (policies from TOML), `contract`, `guardrails` (with `config` and
//! `contract`), `reqwest`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]
#![forbid(unsafe_code)]

pub mod breaker;
#[cfg(feature = "contract")]
pub mod contract;
pub mod core;
pub mod dependency;
pub mod fault;
#[cfg(feature = "guardrails")]
pub mod guardrails;
pub mod map;
pub mod observe;
pub mod policy;
pub mod retry;
pub mod shed;
pub mod throttle;
pub mod timeout;

pub use crate::core::{Deadline, Error, Rejection};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
