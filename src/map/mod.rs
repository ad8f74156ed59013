//! The reality map: which routes call which dependencies, drawn from live traffic.
//!
//! Every request served under a [`PolicyLayer`](crate::policy::PolicyLayer) names its route on
//! the thread while its handler runs (its [`Caller`](crate::core::Caller)); every call through a
//! [`DependencyLayer`](crate::dependency::DependencyLayer) counts itself on the edge from that
//! route to its dependency. [`snapshot`] reads the whole map: per edge, calls per request,
//! latency percentiles, error ratio, retries and hedges; per dependency, its breaker's state,
//! whether it is on the critical path and its rank by impact. Nothing extra is deployed and
//! nothing grows with the traffic (see [`Caller`](crate::core::Caller) for the attribution rule
//! — across `.await`s, nested calls and, with [`Caller::scope`](crate::core::Caller::scope),
//! spawned work — and for the bounds).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use bytes::Bytes;
//! use http_body_util::Empty;
//! use steadfast::dependency::{DependencyConfig, DependencyLayer};
//! use steadfast::policy::{Policies, Policy, PolicyLayer};
//! use tower::{Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // A dependency and a route that calls it.
//! let client = service_fn(|_request: http::Request<_>| async {
//!     Ok::<_, std::io::Error>(http::Response::new(()))
//! });
//! let inventory = DependencyLayer::new(DependencyConfig::new("doc-inventory")).unwrap();
//! let inventory = tower::ServiceBuilder::new().layer(inventory).service(client);
//! let app = Router::new()
//!     .route(
//!         "/doc/stock",
//!         get(move || async move {
//!             let request = http::Request::get("http://inventory/").body(Empty::<Bytes>::new());
//!             let _ = inventory.clone().oneshot(request.unwrap()).await;
//!             "in stock"
//!         }),
//!     )
//!     // The map itself, for people and tools.
//!     .route("/steadfast/map", get(steadfast::map::handler))
//!     // (A route with a policy of its own is named by the layer's matcher; the others by
//!     // Axum's `MatchedPath`, read with the `axum` feature.)
//!     .layer(PolicyLayer::new(Policies::new(Policy::new()).route("/doc/stock", Policy::new())).unwrap());
//!
//! let request = http::Request::get("/doc/stock").body(axum::body::Body::empty()).unwrap();
//! app.clone().oneshot(request).await.unwrap();
//!
//! let map = steadfast::map::snapshot();
//! let edge = map.edge("/doc/stock", "doc-inventory").unwrap();
//! assert_eq!(edge.calls, 1);
//! assert!(map.to_mermaid().contains("doc-inventory"));
//! # }
//! ```
//!
//! # The JSON document
//!
//! [`MapSnapshot::to_json`] writes, and [`MapSnapshot::from_json`] reads, one object; its
//! `schema` is `1` and stays so while fields are only added:
//!
//! | key | what |
//! |---|---|
//! | `schema` | `1` |
//! | `routes[]` | `route` (template, gRPC method, `unmatched`, `overflow`, or `(none)` for calls outside requests), `criticality`, `availability_objective` (percent, or null), `requests`, `critical` |
//! | `dependencies[]` | `name`, `declared` (false: called through a policy strict mode made up), `breaker` (`closed`, `open`, `half_open`, …, or null), `in_flight`, `calls`, `errors`, `error_ratio`, `critical`, `impact`, `rank` (1 = most impact) |
//! | `edges[]` | `route`, `dependency`, `calls`, `calls_per_request`, `errors` (failed or refused), `refused` (not sent: breaker, throttle, budget, cap, deadline), `error_ratio`, `retries`, `hedges`, `latency_ms` (`p50`, `p90`, `p99`), `criticality`, `availability_objective`, `critical` |
//! | `dropped_edges` | calls not counted because their edge would have gone past the map's bounds |
//!
//! Counts are totals since the process started. Latencies are whole calls as the handler saw
//! them (retries and backoff included), read from a histogram to within 25 %.
//!
//! # Critical path and impact
//!
//! A route is **critical** when its policy's class is `critical` or `critical_plus`; a
//! dependency (and an edge) is critical when a critical route calls it; calls outside requests
//! (the route `(none)`) never are. A dependency's **impact** sums over its edges
//! `calls × weight × (1 + burn)`: the weight of the route's class (sheddable 1, sheddable_plus
//! 2, critical 4, critical_plus 8; 1 for `(none)`) and the edge's error-budget burn (its error
//! ratio over the route's allowed error ratio, `1 − availability objective`, 99.9 % when the
//! route has none). Dependencies are ranked by impact, highest first.

mod render;
mod snapshot;

pub use snapshot::{
    DependencyEntry, EdgeEntry, Latencies, MapSnapshot, RouteEntry, handler, snapshot, undeclared,
};
