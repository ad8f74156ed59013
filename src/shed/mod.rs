//! Load shedding: admit what the service can serve well, answer the rest at once.
//!
//! A [`Shed`] admits requests while fewer than its limiter's concurrency limit are in flight
//! and answers the rest immediately with `503 Service Unavailable`, `Retry-After` and a
//! problem+json body (gRPC: `UNAVAILABLE`, or `RESOURCE_EXHAUSTED` if configured), marked as the
//! shedder's own rejection so that breakers and error budgets do not count it. The limit is fixed
//! or adaptive: [`Knee`] (the default) finds the service's capacity from its latency and
//! throughput without being told anything about it; Netflix's [`Gradient2`] and [`Aimd`] are
//! there for those who want them.
//!
//! Requests carry a [`Criticality`]; lower classes are shed first (sheddable traffic from 90%
//! of the limit, sheddable-plus from 95%, and each only while the classes above it keep room
//! for their recent demand), and a class may be guaranteed a share of the limit that others
//! borrow while it is idle.
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
//! # The default limit: knee
//!
//! A service's latency stays near its *no-load latency* while it has spare capacity, and rises
//! once more requests are in flight than it can work on at once (the knee): past it, they only
//! queue. By Little's law the concurrency at the knee is throughput x no-load latency. The knee
//! limit measures both and, under overload, holds the limit at `headroom` (1.5) times that
//! concurrency, plus one. Until the service shows overload, it holds nothing back (10 000).
//!
//! It works in windows of about one no-load latency (at least 20 ms, at most the shedder's
//! `sample_window`, 1 s) holding at least 25 completed requests (10 for the first), or at least
//! 4 once three windows' time has passed (a pool of two at 100 ms completes 20 a second: waiting
//! for 25 would let a second's backlog build unseen). A window stretched past five windows by an idle
//! spell (nothing in flight) measures throughput and congestion from the admission that ended
//! it: over the whole window a burst after a quiet second reads as a trickle of throughput and a
//! backlog that has stood for a second. (A short lull, as at half load on a small pool, is not
//! such a spell.)
//! Each window:
//!
//! - **Noise.** The window's average latency is compared allowing for chance: two standard
//!   errors of it (from the spread of its requests' latencies; zero for fixed-time work), and
//!   in-flight counts allow two square roots of themselves (arrivals at random). Without this,
//!   random service times read as congestion in half the windows and a healthy service at half
//!   its capacity was shed.
//! - **Healthy** (latency within `tolerance`, 1.5, of the no-load latency, nothing rejected): the
//!   limit relaxes (doubles, and is at least twice the peak in flight) — at once if it was never
//!   cut, else only after 1 s (and 5 windows) of calm, so that load hovering at capacity does
//!   not see its limit doubled by the windows that happened to reject nothing. The no-load
//!   latency follows latency up slowly (5% a window), and only while in-flight and latency have
//!   stayed level (within 10%, plus chance) over the last six readings taken at least 100 ms
//!   apart: a queue that builds slowly (load just over capacity) keeps both climbing, and a
//!   no-load latency that followed it would never see the queue. It follows down fast (50%),
//!   as far as chance cannot explain.
//! - **Overload** is congestion that has lasted 50 ms (a burst that drains sooner is absorbed)
//!   while in flight still rises, and either requests are rejected, or in-flight grew by 25%
//!   (plus chance) over the congested windows, or a backlog stands (in flight would take 4 x 1.5
//!   no-load latencies to complete at the measured throughput), or latency is still 10% above
//!   the streak's first 300 ms a second after the streak began (a queue creeping up: a slower
//!   service steps up once, then holds). The limit is then set to 1.5 x throughput x no-load
//!   latency + 1. The requests already admitted stay; the new limit applies to arrivals.
//! - **Congestion without overload** (latency up, nothing queueing up: the service got slower):
//!   the limit holds and the no-load latency follows once level — but not while a limit set by
//!   an overload holds, since latency under it includes the queue it allows.
//! - **Below the knee** (the limit binds, latency fine): the limit grows to 1.5 x what completes,
//!   and by one when nothing queues at all. Rejections while in-flight stayed more than one
//!   below the limit are lower classes kept out for higher ones: the limit did not bind, and
//!   holds (growing it there let sheddable requests flood a small pool every other second).
//!
//! The no-load latency can be wrong in two ways, and both are checked:
//! - *Too low* (the service became slower): latency then stays put while the limit falls. After
//!   three windows in which the limit fell by a quarter and latency did not fall with it (by
//!   15%), that latency becomes the no-load latency. A limit stuck with latency above twice the
//!   tolerated level for three windows, with no backlog draining, raises it likewise.
//! - *Too high* (it was learnt while queueing): while the limit binds, a **probe** divides the
//!   limit by three for as long as five requests admitted during it take to complete, and their
//!   latency is the no-load latency. Probes come every 2 s until one confirms the value (within
//!   10%), then every 10 s, doubling up to 160 s while they keep confirming. Limits under 6 are
//!   not probed (a pool of two or three cannot be measured below its knee for less than it costs),
//!   nor services whose latencies vary by more than a quarter of their average (standard
//!   deviation over mean): the first requests of a probe to complete are its fastest, and with
//!   random service times they read as a far lower no-load latency; nor while the classes above
//!   the lowest one in demand need more room than the probe would leave (it would refuse them).
//!
//! The first windows warm up (eight windows or one longest window): the first requests to
//! complete are the fast ones, so latency reads low, and in-flight grows towards its level
//! anyway. Meanwhile the no-load latency follows latency both ways, and only a backlog of five
//! times throughput x latency counts as overload. A limit that nothing has confirmed since the
//! service went idle (no window closed for four windows and the longest window) goes back to the
//! initial limit when a request would be refused by it.
//!
//! **Classes.** Each window also measures each class's demand (completed plus rejected requests
//! a second) and keeps room for it: demand x the time a request holds a slot (the window's
//! latency, at most twice the no-load latency) x 1.25, plus half its square root (arrivals
//! bunch), falling by at most a tenth a window. A class is admitted only while the room of the
//! classes above it is free, so sheddable traffic uses what critical traffic leaves and gives it
//! back as critical demand rises, with no fixed fractions to tune. The `admit_below` fractions
//! still apply on top, rounded up. Under an adaptive limit a class counts only its own and
//! higher classes' requests in flight: sheddable requests admitted before an overload was seen
//! (or while critical demand was low) never keep a critical one out — it is admitted and waits
//! behind them in the service. A fixed limit is the user's bound on the total and keeps it.
//!
//! Cost: admission is the same compare-and-swap plus one atomic load; a completion adds its
//! latency to its thread's shard of the window's sums (shards on cache lines of their own, so
//! that threads do not contend on them; each of the first eight threads writes one alone, with
//! plain loads and stores, and later threads share a ninth with atomic additions), summed once
//! the window has lasted its length; a window's computation runs once per window on the thread
//! that closes it.
//! A cancelled request (its caller gave up, or a timeout outside the shedder) counts with the
//! time it took, as a drop.
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
mod queue;
mod service;

#[cfg(all(test, loom))]
mod loom_tests;

pub use crate::core::{Criticality, UnknownCriticality};
pub use config::{Aimd, Gradient2, Knee, LimitAlgorithm, ShedConfig};
pub use future::ResponseFuture;
pub(crate) use future::signals_overload;
pub use layer::ShedLayer;
pub(crate) use layer::{Admission, Queued};
pub(crate) use limiter::Slot;
pub use limiter::{ShedHandle, ShedSnapshot};
pub use queue::QueueConfig;
pub use service::Shed;

/// The old name of [`ShedHandle`].
#[deprecated(note = "renamed `ShedHandle`, like every capability's `XHandle`")]
pub type LimiterHandle = ShedHandle;

/// The old name of [`ShedSnapshot`].
#[deprecated(note = "renamed `ShedSnapshot`, like every capability's `XSnapshot`")]
pub type LimiterSnapshot = ShedSnapshot;
