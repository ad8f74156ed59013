//! The recording side of the reality map ([`crate::map`]): which routes call which
//! dependencies, counted as the service runs.
//!
//! A policy stack names the route it serves — the request's [`Caller`] — on the thread while it
//! polls the handler's future; a dependency policy reads it when it is called and counts the
//! call, its latency, its outcome and its retries and hedges on the edge route → dependency.
//!
//! # Bounds
//!
//! Nothing here grows with the traffic. Routes are the keys of the policy's other per-route
//! state (a router's templates and gRPC method names, at most 1,024 of each; beyond, the shared
//! `overflow` and `unmatched` routes), dependencies are the named policies (at most 256), and
//! edges at most 64 per route and about 4,096 in all; a call whose edge would go beyond the bound
//! is not recorded (and counted in [`crate::map::MapSnapshot::dropped_edges`]). Each edge keeps counters and a
//! fixed latency histogram (104 buckets, a quarter octave wide: a percentile is read to within
//! 25 %). Nodes and edges, once made, live as long as the process.
//!
//! Long because of its bounded edge store's unit tests and the attribution helpers' docs.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use pin_project_lite::pin_project;

use metrics::SharedString;

use super::Criticality;
use super::keyed::{CowMap, DEFAULT_MAX_KEYS, Key, KeyCache, Keyed};
use super::telemetry;

/// The most dependencies the map tells apart.
pub(crate) const MAX_DEPENDENCIES: usize = 256;
/// About the most edges the map keeps, over all routes.
pub(crate) const MAX_EDGES: usize = 4096;
/// The most edges of one route.
pub(crate) const EDGES_PER_ROUTE: usize = 64;
/// The route of calls made outside any request.
pub(crate) const NO_REQUEST: &str = "(none)";

/// One inbound route of the map.
pub(crate) struct RouteNode {
    pub(crate) label: Box<str>,
    requests: AtomicU64,
    criticality: AtomicU8,
    /// The availability objective in percent, as `f64` bits; 0 for none.
    availability: AtomicU64,
    edges: [OnceLock<&'static Edge>; EDGES_PER_ROUTE],
}

impl RouteNode {
    fn leak(label: &str) -> &'static RouteNode {
        Box::leak(Box::new(RouteNode {
            label: Box::from(label),
            requests: AtomicU64::new(0),
            criticality: AtomicU8::new(Criticality::Critical as u8),
            availability: AtomicU64::new(0),
            edges: [const { OnceLock::new() }; EDGES_PER_ROUTE],
        }))
    }

    /// Counts one request served under a policy with this class and objective.
    #[inline]
    pub(crate) fn record_request(&self, criticality: Criticality, availability: f64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = criticality as u8;
        if self.criticality.load(Ordering::Relaxed) != class {
            self.criticality.store(class, Ordering::Relaxed);
        }
        let bits = availability.to_bits();
        if self.availability.load(Ordering::Relaxed) != bits {
            self.availability.store(bits, Ordering::Relaxed);
        }
    }

    /// Requests counted so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The class of the route's policy.
    pub(crate) fn criticality(&self) -> Criticality {
        Criticality::ALL[usize::from(self.criticality.load(Ordering::Relaxed)).min(3)]
    }

    /// The availability objective of the route's policy, in percent.
    pub(crate) fn availability(&self) -> Option<f64> {
        let value = f64::from_bits(self.availability.load(Ordering::Relaxed));
        (value > 0.0).then_some(value)
    }

    /// The edges recorded so far.
    pub(crate) fn edges(&self) -> impl Iterator<Item = &'static Edge> + '_ {
        self.edges.iter().map_while(|slot| slot.get().copied())
    }

    /// The edge to `dependency`, made on first use; `None` beyond the bounds.
    #[inline]
    pub(crate) fn edge(
        &'static self,
        dependency: &'static DependencyNode,
    ) -> Option<&'static Edge> {
        for slot in &self.edges {
            let edge = match slot.get() {
                Some(edge) => *edge,
                None => {
                    if EDGE_COUNT.load(Ordering::Relaxed) >= MAX_EDGES {
                        DROPPED_EDGES.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    // Racing callers agree on one edge per slot; a loser moves on.
                    *slot.get_or_init(|| {
                        EDGE_COUNT.fetch_add(1, Ordering::Relaxed);
                        Edge::leak(self, dependency)
                    })
                }
            };
            if std::ptr::eq(edge.dependency, dependency) {
                return Some(edge);
            }
        }
        DROPPED_EDGES.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// What a dependency policy tells the map about itself when the map is read.
pub(crate) trait Probe: Send + Sync {
    fn probe(&self) -> Probed;
}

/// A dependency's live state, for the map.
#[derive(Clone, Debug, Default)]
pub(crate) struct Probed {
    /// The breaker's state (`closed`, `open`, ...), if the policy has a breaker.
    pub(crate) breaker: Option<&'static str>,
    /// Attempts in flight.
    pub(crate) in_flight: usize,
}

/// One outbound dependency of the map.
pub(crate) struct DependencyNode {
    pub(crate) name: Box<str>,
    declared: AtomicBool,
    probe: Mutex<Option<Weak<dyn Probe>>>,
}

impl DependencyNode {
    /// Whether the dependency's policy was declared (in code or in the policy file), not made
    /// up for a name strict mode did not know.
    pub(crate) fn declared(&self) -> bool {
        self.declared.load(Ordering::Relaxed)
    }

    /// Marks the policy as declared or not, and names what the map asks for its live state.
    pub(crate) fn attach(&self, declared: bool, probe: Weak<dyn Probe>) {
        self.declared.store(declared, Ordering::Relaxed);
        *self
            .probe
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(probe);
    }

    /// The dependency's live state, if its policy still exists.
    pub(crate) fn probe(&self) -> Option<Probed> {
        let probe = self
            .probe
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .as_ref()
            .and_then(Weak::upgrade)?;
        Some(probe.probe())
    }
}

/// How a call to a dependency ended, as its caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    /// Answered, and not a failure.
    Ok,
    /// The dependency failed it (an error, a timeout, a server error).
    Failed,
    /// Refused in this process before it was sent (open breaker, throttle, budget, cap,
    /// deadline, strict mode).
    Refused,
}

/// The calls of one route to one dependency.
pub(crate) struct Edge {
    route: &'static RouteNode,
    pub(crate) dependency: &'static DependencyNode,
    /// `steadfast.dependency.calls` by outcome (ok, failed, refused), registered on first use.
    counters: OnceLock<[metrics::Counter; 3]>,
    calls: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    retries: AtomicU64,
    hedges: AtomicU64,
    latency: Latency,
}

/// An edge's counts, read at once.
#[derive(Clone, Debug, Default)]
pub(crate) struct EdgeCounts {
    pub(crate) calls: u64,
    pub(crate) failed: u64,
    pub(crate) refused: u64,
    pub(crate) retries: u64,
    pub(crate) hedges: u64,
    /// 50th, 90th and 99th percentiles of the calls' latency (retries included).
    pub(crate) percentiles: [Duration; 3],
}

impl Edge {
    fn leak(route: &'static RouteNode, dependency: &'static DependencyNode) -> &'static Edge {
        Box::leak(Box::new(Edge {
            route,
            dependency,
            counters: OnceLock::new(),
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            hedges: AtomicU64::new(0),
            latency: Latency::new(),
        }))
    }

    /// Counts a finished call.
    #[inline]
    pub(crate) fn finish(&self, took: Duration, outcome: CallOutcome) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match outcome {
            CallOutcome::Ok => {}
            CallOutcome::Failed => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            CallOutcome::Refused => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency.record(took);
        let counters = self.counters.get_or_init(|| {
            let route = SharedString::from(self.route.label.to_string());
            let dependency = SharedString::from(self.dependency.name.to_string());
            ["ok", "failed", "refused"].map(|outcome| {
                metrics::counter!(
                    telemetry::DEPENDENCY_CALLS.name,
                    "route" => route.clone(),
                    "dependency" => dependency.clone(),
                    "outcome" => outcome,
                )
            })
        });
        counters[outcome as usize].increment(1);
    }

    /// Counts a retry of one of the edge's calls.
    #[inline]
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a hedge of one of the edge's calls.
    #[inline]
    pub(crate) fn hedged(&self) {
        self.hedges.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> EdgeCounts {
        EdgeCounts {
            calls: self.calls.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            hedges: self.hedges.load(Ordering::Relaxed),
            percentiles: self.latency.percentiles([0.5, 0.9, 0.99]),
        }
    }
}

/// Buckets of the latency histogram: 4 below 4 µs, then four per octave; the last is open (from
/// about two minutes).
const BUCKETS: usize = 104;

/// A lock-free latency histogram in microseconds, a quarter octave per bucket.
struct Latency {
    counts: [AtomicU64; BUCKETS],
}

impl Latency {
    fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    #[inline]
    fn record(&self, took: Duration) {
        // Without `as_micros`' 128-bit division.
        let micros = took
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(took.subsec_micros()));
        self.counts[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bound of the bucket holding each quantile (zero when nothing was recorded).
    fn percentiles<const N: usize>(&self, quantiles: [f64; N]) -> [Duration; N] {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect();
        quantiles.map(|quantile| quantile_of(&counts, quantile))
    }
}

/// The bucket of a latency in microseconds: exact below 4 µs, then a quarter octave each.
#[inline]
pub(crate) fn bucket(micros: u64) -> usize {
    if micros < 4 {
        return micros as usize;
    }
    let log = 63 - micros.leading_zeros() as usize;
    let quarter = ((micros >> (log - 2)) & 3) as usize;
    (4 * (log - 1) + quarter).min(BUCKETS - 1)
}

/// The largest latency, in microseconds, that falls in `bucket` (the last bucket is open).
pub(crate) fn upper_bound(bucket: usize) -> u64 {
    if bucket < 4 {
        return bucket as u64;
    }
    if bucket == BUCKETS - 1 {
        return u64::MAX;
    }
    let log = bucket / 4 + 1;
    let quarter = (bucket % 4) as u64;
    ((5 + quarter) << (log - 2)) - 1
}

/// The quantile of a histogram: the upper bound of the bucket holding its rank.
pub(crate) fn quantile_of(counts: &[u64], quantile: f64) -> Duration {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Duration::ZERO;
    }
    let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            // The open last bucket reads as its lower bound.
            let micros = if index == BUCKETS - 1 {
                upper_bound(index - 1) + 1
            } else {
                upper_bound(index)
            };
            return Duration::from_micros(micros);
        }
    }
    Duration::ZERO
}

static ROUTES: LazyLock<Keyed<&'static RouteNode>> =
    LazyLock::new(|| Keyed::new(Key::Route, DEFAULT_MAX_KEYS, RouteNode::leak));
static NONE: LazyLock<&'static RouteNode> = LazyLock::new(|| RouteNode::leak(NO_REQUEST));
static DEPENDENCIES: LazyLock<CowMap<Box<str>, &'static DependencyNode>> =
    LazyLock::new(CowMap::default);
static EDGE_COUNT: AtomicUsize = AtomicUsize::new(0);
static DROPPED_EDGES: AtomicU64 = AtomicU64::new(0);

/// The map's node for a request whose route the caller already read.
#[inline]
pub(crate) fn route_node<B>(
    route: crate::core::keyed::RouteKey<'_>,
    request: &Request<B>,
    cache: &KeyCache<&'static RouteNode>,
) -> &'static RouteNode {
    ROUTES.for_route(route, request, cache)
}

/// The map's node for the dependency `name`; `None` beyond the bound (logged once).
pub(crate) fn dependency(name: &str) -> Option<&'static DependencyNode> {
    let node = DEPENDENCIES.get_or_insert_with(
        name,
        || Box::from(name),
        |len| {
            (len < MAX_DEPENDENCIES).then(|| {
                &*Box::leak(Box::new(DependencyNode {
                    name: Box::from(name),
                    declared: AtomicBool::new(true),
                    probe: Mutex::new(None),
                }))
            })
        },
    );
    if node.is_none() {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "steadfast::map",
                dependency = name,
                "more than {MAX_DEPENDENCIES} dependency policies: the reality map leaves the \
                 rest out"
            );
        }
    }
    node
}

/// Every route seen so far, the `(none)` route included.
pub(crate) fn routes() -> Vec<&'static RouteNode> {
    let mut routes: Vec<_> = ROUTES.all().into_iter().map(|(_, node)| node).collect();
    routes.push(*NONE);
    routes
}

/// Every dependency policy made so far, by name.
pub(crate) fn dependencies() -> Vec<&'static DependencyNode> {
    let mut all: Vec<_> = DEPENDENCIES.snapshot().values().copied().collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// Edges left out at the bounds so far.
pub(crate) fn dropped_edges() -> u64 {
    DROPPED_EDGES.load(Ordering::Relaxed)
}

thread_local! {
    /// The route whose handler this thread is polling.
    static CURRENT: Cell<Option<&'static RouteNode>> = const { Cell::new(None) };
}

/// The route a request is served for, as the reality map ([`crate::map`]) attributes outbound
/// calls.
///
/// A policy stack sets it while it polls the handler's future; read it with
/// [`current`](Self::current) to hand it on to spawned work. Copying it costs nothing.
///
/// # The attribution rule
///
/// A call to a dependency belongs to the route whose handler future is being polled when the
/// call is made: across every `.await` of the handler, in the futures it polls itself
/// (`join!`, `select!`, a helper that calls another helper that calls the dependency), and in
/// a dependency's client that itself calls another dependency. Work that runs outside the
/// handler's polls — a task given to `tokio::spawn`, a thread, a response body streamed after
/// the handler returned, a layer between the policy and the handler that hands the request to
/// another task (tower's `Buffer`) — belongs to no route unless its caller is passed along:
/// [`Caller::current`] in the handler, then [`Caller::scope`] around the spawned future (or
/// [`Caller::run`] around a closure). Calls with no caller (start-up, background jobs) are
/// counted under the route `(none)`.
///
/// ```
/// use steadfast::core::Caller;
///
/// # async fn handler() {
/// // In a handler under a policy: hand the route on to work spawned for it.
/// let caller = Caller::current();
/// tokio::spawn(async move {
///     let work = async { /* calls to dependencies */ };
///     match caller {
///         Some(caller) => caller.scope(work).await,
///         None => work.await,
///     }
/// });
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct Caller {
    node: &'static RouteNode,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("route", &self.route())
            .field("criticality", &self.criticality())
            .finish()
    }
}

impl Caller {
    /// The caller of the code running now: the route whose handler is being polled on this
    /// thread, or the one a [`scope`](Self::scope) or [`run`](Self::run) set.
    pub fn current() -> Option<Caller> {
        CURRENT.with(Cell::get).map(|node| Caller { node })
    }

    /// The route: its template (`/orders/{id}`), its gRPC method (`shop.Orders/Get`), or
    /// `unmatched` / `overflow` for requests the policy has no bounded name for.
    pub fn route(&self) -> &str {
        &self.node.label
    }

    /// The class of the route's policy.
    pub fn criticality(&self) -> Criticality {
        self.node.criticality()
    }

    /// Runs `future` as this caller's work: calls made while it is polled are the route's.
    pub fn scope<F: Future>(self, future: F) -> CallerScope<F> {
        CallerScope {
            caller: self,
            future,
        }
    }

    /// Runs `work` as this caller's.
    pub fn run<R>(self, work: impl FnOnce() -> R) -> R {
        let _entered = enter(self.node);
        work()
    }
}

/// Makes `node` the current caller until the guard is dropped (panics included).
#[inline]
pub(crate) fn enter(node: &'static RouteNode) -> Entered {
    Entered {
        previous: CURRENT.with(|current| current.replace(Some(node))),
    }
}

/// The current caller's route node, or the `(none)` route outside any request.
#[inline]
pub(crate) fn current_route() -> &'static RouteNode {
    match CURRENT.with(Cell::get) {
        Some(node) => node,
        None => *NONE,
    }
}

/// Restores the caller that was current before [`enter`].
pub(crate) struct Entered {
    previous: Option<&'static RouteNode>,
}

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

pin_project! {
    /// A future run as a [`Caller`]'s work: see [`Caller::scope`].
    pub struct CallerScope<F> {
        caller: Caller,
        #[pin]
        future: F,
    }
}

impl<F: fmt::Debug> fmt::Debug for CallerScope<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerScope")
            .field("caller", &self.caller)
            .field("future", &self.future)
            .finish()
    }
}

impl<F: Future> Future for CallerScope<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = enter(this.caller.node);
        this.future.poll(cx)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_start_exact_then_quarter_octaves() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(3), 3);
        assert_eq!(bucket(4), 4);
        assert_eq!(bucket(7), 7);
        assert_eq!(bucket(8), 8);
        assert_eq!(bucket(9), 8);
        assert_eq!(bucket(10), 9);
        assert_eq!(upper_bound(8), 9);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        // A minute still has a bucket of its own.
        assert!(bucket(60_000_000) < BUCKETS - 1);
    }

    /// Threads racing to make the edges of one route agree on one edge per dependency, and
    /// every call is counted on it.
    #[test]
    fn racing_callers_make_one_edge_per_dependency() {
        let route = RouteNode::leak("racing");
        let dependencies: Vec<&'static DependencyNode> = (0..10)
            .map(|i| {
                &*Box::leak(Box::new(DependencyNode {
                    name: format!("racing-{i}").into(),
                    declared: AtomicBool::new(true),
                    probe: Mutex::new(None),
                }))
            })
            .collect();
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let dependencies = &dependencies;
                scope.spawn(move || {
                    for call in 0..1000 {
                        let dependency = dependencies[(call + thread) % dependencies.len()];
                        let edge = route.edge(dependency).expect("within the bounds");
                        assert!(std::ptr::eq(edge.dependency, dependency));
                        edge.finish(Duration::from_micros(100), CallOutcome::Ok);
                    }
                });
            }
        });
        let edges: Vec<_> = route.edges().collect();
        assert_eq!(edges.len(), dependencies.len());
        for dependency in &dependencies {
            let mine: Vec<_> = edges
                .iter()
                .filter(|edge| std::ptr::eq(edge.dependency, *dependency))
                .collect();
            assert_eq!(mine.len(), 1, "{}", dependency.name);
            assert_eq!(mine[0].counts().calls, 800);
        }
    }

    proptest! {
        #[test]
        fn a_latency_lies_in_its_bucket_within_a_quarter(micros in 0u64..100_000_000) {
            let index = bucket(micros);
            prop_assert!(micros <= upper_bound(index));
            if index > 0 {
                prop_assert!(micros > upper_bound(index - 1));
            }
            if micros >= 4 {
                prop_assert!((upper_bound(index) - micros) as f64 <= 0.25 * micros as f64);
            }
        }

        #[test]
        fn quantiles_match_a_sorted_list(
            samples in proptest::collection::vec(0u64..10_000_000, 1..200),
            quantile in 0.01f64..1.0,
        ) {
            let mut counts = vec![0u64; BUCKETS];
            for sample in &samples {
                counts[bucket(*sample)] += 1;
            }
            let mut sorted = samples.clone();
            sorted.sort_unstable();
            let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1];
            let read = quantile_of(&counts, quantile).as_micros() as u64;
            prop_assert_eq!(read, upper_bound(bucket(exact)));
        }
    }
}
