//! Load shedding: admit what the service can serve well, answer the rest at once.
//!
//! A [`Shed`] admits requests while fewer than its limiter's concurrency limit are in flight
//! and answers the rest immediately with `503 Service Unavailable`, `Retry-After` and a
//! problem+json body (gRPC: `UNAVAILABLE`, or `RESOURCE_EXHAUSTED` if configured), marked as the
//! shedder's own rejection so that breakers and error budgets do not count it. The limit is fixed
//! or adaptive: [`Gradient2`] (the default) and [`Aimd`] move it with the latency and the drops
//! (timeouts, overload answers from further in) of the requests it admits, and never grow it
//! while fewer than half of it is in use.
//!
//! Requests carry a [`Criticality`]; lower classes are shed first (sheddable traffic from 90%
//! of the limit, sheddable-plus from 95%), and a class may be guaranteed a share of the limit
//! that others borrow while it is idle.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use steadfast::shed::{Criticality, ShedConfig, ShedLayer};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! async fn search() -> &'static str {
//!     tokio::time::sleep(Duration::from_millis(100)).await;
//!     "results"
//! }
//!
//! let shed = ShedLayer::new(
//!     ShedConfig::fixed(1).criticality_header("x-criticality".parse().unwrap(), Criticality::Critical),
//! )
//! .unwrap();
//! let app = Router::new().route("/search", get(search)).route_layer(shed);
//!
//! let request = || http::Request::get("/search").body(axum::body::Body::empty()).unwrap();
//! let first = tokio::spawn(app.clone().oneshot(request()));
//! tokio::task::yield_now().await; // the first request is now in flight
//! let second = app.oneshot(request()).await.unwrap();
//! assert_eq!(second.status(), 503);
//! assert_eq!(second.headers()["retry-after"], "1");
//! assert_eq!(first.await.unwrap().unwrap().status(), 200);
//! # }
//! ```
//!
//! # Slots
//!
//! A request's slot is taken when it is admitted and given back when its response head is ready
//! or its response future is dropped (a cancelled request frees its slot). Streaming response
//! bodies are not covered: the limit bounds the work of producing responses, not of sending them.
//!
//! # Queueing
//!
//! With [`ShedConfig::queue`], a request that finds the limiter full may wait for a slot in a
//! bounded queue instead of being rejected at once ([`QueueConfig`]): a released slot goes to the
//! highest class waiting, oldest first while the queue drains and newest first once a standing
//! queue has formed (adaptive LIFO); the wait is bounded CoDel-style (100 ms, or 5 ms once the
//! queue has not been empty for 100 ms) and never outlasts the request's [`Deadline`] minus the
//! expected service time; a request whose deadline leaves no time to be served is rejected at
//! once. Time spent waiting counts against the deadline. A queued request holds a clone of the
//! inner service, which is why the layer needs `S: Clone`. Admission takes no lock; the queue's
//! lock is taken only while someone waits.
//!
//! [`Deadline`]: crate::core::Deadline

mod config;
mod future;
mod knee;
mod layer;
mod limit;
mod limiter;
mod priority;
mod queue;
mod service;

#[cfg(all(test, loom))]
mod loom_tests;

pub use config::{Aimd, Gradient2, Knee, LimitAlgorithm, ShedConfig};
pub use future::ResponseFuture;
pub use layer::ShedLayer;
pub use limiter::{LimiterHandle, LimiterSnapshot};
pub use priority::{Criticality, UnknownCriticality};
pub use queue::QueueConfig;
pub use service::Shed;
