//! The limiter: lock-free admission by class against the current limit.
//!
//! Long on purpose: the lock-free admission, the queue hand-off and the limiter's metrics all
//! work on one counts word whose layout stays private to this file.

use super::layer::RequestSettings;
use crate::core::PerClass;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, SharedString};
use tokio::sync::oneshot;

use super::config::{LimitAlgorithm, ShedConfig};
use super::limit::{Adaptive, Completion};
use super::queue::{NoWait, Queue};
use crate::core::Criticality;
use crate::core::Deadline;
use crate::core::clock::nanos;
use crate::core::clock::{self, Instant};
use crate::core::sync::{AtomicU64, Ordering};
use crate::core::telemetry;

/// The bits of one class's lane in the counts and reserves words (four lanes, lowest class in
/// the lowest bits).
const LANE_BITS: u32 = 16;

/// The most requests of one class that may be in flight at once (15 of its 16 bits: the top
/// bit of the word marks a retired limiter).
pub(crate) const MAX_PER_CLASS: u32 = (1 << (LANE_BITS - 1)) - 1;

/// Set in the counts word of a limiter replaced by a reload: it admits nobody new (its
/// successor does, counting what this one still has in flight), only drains.
const RETIRED: u64 = 1 << (Criticality::COUNT as u32 * LANE_BITS - 1);

/// What an attempt to take a slot came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Admitted, with this many in flight.
    Yes(u64),
    /// At the limit.
    Full,
    /// Replaced: ask the successor.
    Retired,
}

impl Acquired {
    #[cfg(loom)]
    pub(crate) fn is_admitted(self) -> bool {
        matches!(self, Acquired::Yes(_))
    }
}

/// In-flight counts and the limit they are held to.
///
/// The four classes' in-flight counts share one word, 16 bits each, and the total is their sum:
/// admission is one compare-and-swap and release one subtraction. A class is admitted while the
/// total is below its threshold (`admit_below` x limit), or, once past it, while the class holds
/// less than its guaranteed share; the total never passes the limit except through guaranteed
/// shares, and, under an adaptive limit, through higher classes admitted past lower ones'
/// requests (see [`Admission::by_rank`]).
#[derive(Debug)]
pub(crate) struct Admission {
    limit: AtomicU64,
    counts: AtomicU64,
    /// Slots kept for each class's recent demand, 16 bits each like `counts`: a class is
    /// admitted only while the classes above it still have room for theirs.
    reserves: AtomicU64,
    shares: PerClass<f64>,
    admit_below: PerClass<f64>,
    /// Per class, what the current limit makes of its fractions, rounded up (so that a small
    /// limit does not shut a class out altogether): `ceil(limit × admit_below) << 32 |
    /// ceil(limit × share)`. Computed when the limit changes, not on every admission.
    thresholds: PerClass<AtomicU64>,
    /// Whether a class counts only its own and higher classes' requests in flight (adaptive
    /// limits), rather than all of them (fixed limits).
    by_rank: bool,
}

/// The room the classes above `class` need beyond what they hold now.
fn room_above(counts: u64, reserves: u64, class: Criticality) -> u64 {
    if reserves == 0 {
        // Nothing reserved (a fixed limit, or no demand seen yet): no room to keep.
        return 0;
    }
    Criticality::ALL[class.index() + 1..]
        .iter()
        .map(|&above| count_of(reserves, above).saturating_sub(count_of(counts, above)))
        .sum()
}

/// The shift of `class`'s lane.
fn lane_shift(class: Criticality) -> u32 {
    LANE_BITS * class.index() as u32
}

/// One request of `class`, as a counts word adds it.
fn unit(class: Criticality) -> u64 {
    1 << lane_shift(class)
}

fn count_of(counts: u64, class: Criticality) -> u64 {
    (counts >> lane_shift(class)) & u64::from(MAX_PER_CLASS)
}

/// In flight of `class` and the classes above it.
fn at_or_above(counts: u64, class: Criticality) -> u64 {
    let counts = counts & !RETIRED;
    Criticality::ALL[class.index()..]
        .iter()
        .map(|&class| count_of(counts, class))
        .sum()
}

fn total_of(counts: u64) -> u64 {
    // The four 16-bit lanes added pairwise into two 32-bit lanes, then those two.
    const LOW_LANES: u64 = 0x0000_FFFF_0000_FFFF;
    let counts = counts & !RETIRED;
    let pairs = (counts & LOW_LANES) + ((counts >> LANE_BITS) & LOW_LANES);
    (pairs & 0xFFFF_FFFF) + (pairs >> 32)
}

impl Admission {
    pub(crate) fn new(limit: u32, shares: PerClass<f64>, admit_below: PerClass<f64>) -> Self {
        let admission = Self {
            limit: AtomicU64::new(u64::from(limit)),
            counts: AtomicU64::new(0),
            reserves: AtomicU64::new(0),
            shares,
            admit_below,
            thresholds: std::array::from_fn(|_| AtomicU64::new(0)),
            by_rank: false,
        };
        admission.set_limit(limit);
        admission
    }

    /// The thresholds of `class` under `limit`: see [`Admission::thresholds`].
    fn thresholds_of(&self, limit: u32, class: Criticality) -> u64 {
        let limit = f64::from(limit);
        let index = class.index();
        let admit_below = (limit * self.admit_below[index]).ceil() as u64;
        let share = (limit * self.shares[index]).ceil() as u64;
        admit_below << 32 | share
    }

    /// Requests of lower classes in flight no longer stand in the way of a higher class: used
    /// with adaptive limits, which estimate the service's knee with headroom. A critical request
    /// that arrives while sheddable ones fill the limit (admitted before the overload was seen,
    /// or while critical demand was low) is admitted and waits behind them in the service
    /// rather than being refused; each class's own total, with those above it, stays within the
    /// limit. A fixed limit is the user's bound on the total, and keeps it.
    pub(crate) fn by_rank(mut self) -> Self {
        self.by_rank = true;
        self
    }

    /// Whether `class` is admitted with `counts` in flight here and `draining` still in flight
    /// on the limiters this one replaced.
    fn admits(&self, counts: u64, draining: u64, class: Criticality) -> bool {
        let thresholds = self.thresholds[class.index()].load(Ordering::Acquire);
        let (admit_below, share) = (thresholds >> 32, thresholds & 0xFFFF_FFFF);
        let in_flight = if self.by_rank {
            at_or_above(counts, class)
        } else {
            total_of(counts)
        };
        let mut needed = in_flight + draining;
        if class != Criticality::CriticalPlus {
            needed += room_above(counts, self.reserves.load(Ordering::Acquire), class);
        }
        needed < admit_below || count_of(counts, class) < share
    }

    /// Keeps room for each class's recent demand (slots, lowest class first).
    pub(crate) fn set_reserves(&self, reserves: PerClass<u32>) {
        let packed = Criticality::ALL.into_iter().fold(0, |packed, class| {
            packed | (u64::from(reserves[class.index()].min(MAX_PER_CLASS)) * unit(class))
        });
        self.reserves.store(packed, Ordering::Release);
    }

    /// Takes a slot for `class`, counting `draining` requests still in flight on the limiters
    /// this one replaced.
    pub(crate) fn try_acquire(&self, class: Criticality, draining: u64) -> Acquired {
        let mut counts = self.counts.load(Ordering::Acquire);
        loop {
            if counts & RETIRED != 0 {
                return Acquired::Retired;
            }
            if !self.admits(counts, draining, class)
                || count_of(counts, class) == u64::from(MAX_PER_CLASS)
            {
                return Acquired::Full;
            }
            let taken = counts + unit(class);
            match self.counts.compare_exchange_weak(
                counts,
                taken,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Acquired::Yes(total_of(taken)),
                Err(actual) => counts = actual,
            }
        }
    }

    /// Whether a waiter of class `to` would be admitted in the place of a slot of class `from`
    /// being released.
    pub(crate) fn would_take_over(&self, from: Criticality, to: Criticality) -> bool {
        let after_release = self.counts.load(Ordering::Acquire) - unit(from);
        self.admits(after_release, 0, to)
    }

    /// Moves a slot from one class to another; the total is unchanged.
    pub(crate) fn transfer(&self, from: Criticality, to: Criticality) {
        // Modular: the word stays the sum of non-negative fields.
        self.counts
            .fetch_add(unit(to).wrapping_sub(unit(from)), Ordering::AcqRel);
    }

    /// Gives back a slot of `class`; returns whether nothing is in flight any more.
    pub(crate) fn release(&self, class: Criticality) -> bool {
        self.counts.fetch_sub(unit(class), Ordering::AcqRel) == unit(class)
    }

    pub(crate) fn set_limit(&self, limit: u32) {
        self.limit.store(u64::from(limit), Ordering::Release);
        for class in Criticality::ALL {
            self.thresholds[class.index()]
                .store(self.thresholds_of(limit, class), Ordering::Release);
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }

    /// Admits nobody new from now on; what is in flight drains.
    pub(crate) fn retire(&self) {
        self.counts.fetch_or(RETIRED, Ordering::AcqRel);
    }

    pub(crate) fn in_flight(&self) -> u64 {
        total_of(self.counts.load(Ordering::Acquire))
    }

    pub(crate) fn in_flight_of(&self, class: Criticality) -> u64 {
        count_of(self.counts.load(Ordering::Acquire), class)
    }
}

/// A concurrency limiter, shared by every service and handle cloned from it.
///
/// The layer makes one per route; make one yourself to share a pool across routes
/// ([`ShedLayer::shared`](super::ShedLayer::shared)) or to watch it.
#[derive(Clone)]
pub struct ShedHandle {
    inner: Arc<Inner>,
}

struct Inner {
    admission: Admission,
    /// How the requests it admits or sheds are read and answered (a shared layer's settings).
    settings: Arc<RequestSettings>,
    /// The limiter this one replaced (a reload changed the settings), while requests it admitted
    /// are still in flight: they count against this one's limit.
    predecessor: arc_swap::ArcSwapOption<Inner>,
    /// Whether `predecessor` may be set: read first, so that the common case loads nothing.
    has_predecessor: std::sync::atomic::AtomicBool,
    /// The limiter that replaced this one: it admits the requests that still find this one.
    successor: OnceLock<ShedHandle>,
    adaptive: Option<Adaptive>,
    queue: Option<Queue>,
    /// Whether requests' service times are measured (an adaptive limit or a queue needs them).
    measures: bool,
    /// An exponential average of the service time, in nanoseconds (0 until measured).
    expected_rtt: AtomicU64,
    base: Instant,
    name: OnceLock<SharedString>,
    metrics: OnceLock<LimiterMetrics>,
}

struct LimiterMetrics {
    limit: Gauge,
    in_flight: Gauge,
    short_rtt: Gauge,
    long_rtt: Gauge,
    queue_length: Gauge,
    queue_wait: Histogram,
    /// By class, then by reason.
    rejected: [[Counter; ShedReason::COUNT]; Criticality::COUNT],
}

/// Why the shedder rejected a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShedReason {
    /// At the limit, with no queue or a class that may not wait.
    Limit,
    /// At the limit and the queue is full.
    QueueFull,
    /// Waited as long as allowed.
    QueueTimeout,
    /// Its deadline leaves no time to wait and be served.
    Deadline,
}

impl ShedReason {
    const COUNT: usize = 4;
    const ALL: [ShedReason; ShedReason::COUNT] = [
        ShedReason::Limit,
        ShedReason::QueueFull,
        ShedReason::QueueTimeout,
        ShedReason::Deadline,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ShedReason::Limit => "limit",
            ShedReason::QueueFull => "queue_full",
            ShedReason::QueueTimeout => "queue_timeout",
            ShedReason::Deadline => "deadline",
        }
    }

    pub(crate) fn detail(self) -> &'static str {
        match self {
            ShedReason::Limit => "the service is at its concurrency limit; try again shortly",
            ShedReason::QueueFull => {
                "the service is at its concurrency limit and its queue is full"
            }
            ShedReason::QueueTimeout => "the request waited for a slot as long as allowed",
            ShedReason::Deadline => {
                "the request's deadline leaves no time to wait for a slot and be served"
            }
        }
    }
}

/// What a limiter knows right now.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ShedSnapshot {
    /// The current concurrency limit.
    pub limit: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// Requests in flight by class, lowest class first (see [`Criticality::ALL`]).
    pub in_flight_by_class: PerClass<u64>,
    /// Requests waiting in the queue.
    pub queued: u64,
}

impl ShedHandle {
    /// A limiter with these settings, for [`ShedLayer::shared`](super::ShedLayer::shared).
    ///
    /// # Errors
    ///
    /// The first setting [`ShedConfig::validate`] refuses.
    pub fn new(config: ShedConfig) -> Result<Self, crate::core::ConfigError> {
        config.validate()?;
        Ok(Self::from_valid(
            &config,
            config.name.clone().map(SharedString::from),
        ))
    }

    /// How the requests this limiter admits are read and answered.
    pub(crate) fn settings(&self) -> &Arc<RequestSettings> {
        &self.inner.settings
    }

    pub(crate) fn from_valid(config: &ShedConfig, name: Option<SharedString>) -> Self {
        let adaptive = config.algorithm.is_adaptive().then(|| {
            let window = nanos(config.window);
            Adaptive::new(config.algorithm, window, config.min_samples)
        });
        let handle = Self {
            inner: Arc::new(Inner {
                admission: {
                    let admission = Admission::new(
                        config.algorithm.initial(),
                        config.shares,
                        config.admit_below,
                    );
                    if adaptive.is_some() {
                        admission.by_rank()
                    } else {
                        admission
                    }
                },
                settings: Arc::new(RequestSettings::of(config)),
                predecessor: arc_swap::ArcSwapOption::empty(),
                has_predecessor: std::sync::atomic::AtomicBool::new(false),
                successor: OnceLock::new(),
                measures: adaptive.is_some() || config.queue.is_some(),
                adaptive,
                queue: config.queue.map(Queue::new),
                expected_rtt: AtomicU64::new(0),
                base: clock::now(),
                name: OnceLock::new(),
                metrics: OnceLock::new(),
            }),
        };
        if let Some(name) = name {
            handle.name_once(|| name);
        }
        handle
    }

    /// Makes this new limiter take over from `old` (a reload changed the settings): `old`
    /// admits nobody new, and what it still has in flight counts against this one's limit until
    /// it has drained, so that the two together never pass the new limit.
    pub(crate) fn succeed(&self, old: &ShedHandle) {
        if Arc::ptr_eq(&self.inner, &old.inner) {
            return;
        }
        if old.inner.successor.set(self.clone()).is_err() {
            return;
        }
        self.inner.predecessor.store(Some(old.inner.clone()));
        self.inner
            .has_predecessor
            .store(true, std::sync::atomic::Ordering::Release);
        old.inner.admission.retire();
    }

    /// Requests still in flight on the limiters this one replaced; forgets those that drained.
    #[inline]
    fn draining(inner: &Inner) -> u64 {
        if !inner
            .has_predecessor
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return 0;
        }
        Self::draining_slow(inner)
    }

    #[cold]
    #[inline(never)]
    fn draining_slow(inner: &Inner) -> u64 {
        let guard = inner.predecessor.load();
        let Some(predecessor) = guard.as_ref() else {
            return 0;
        };
        let before = Self::draining(predecessor);
        let own = predecessor.admission.in_flight();
        if own == 0 && before == 0 {
            // A retired limiter with nothing in flight can admit nothing more: forget it.
            inner.predecessor.store(None);
            inner
                .has_predecessor
                .store(false, std::sync::atomic::Ordering::Release);
        }
        own + before
    }

    /// The limit and what is in flight.
    pub fn snapshot(&self) -> ShedSnapshot {
        let admission = &self.inner.admission;
        ShedSnapshot {
            limit: admission.limit(),
            in_flight: admission.in_flight(),
            in_flight_by_class: Criticality::ALL.map(|class| admission.in_flight_of(class)),
            queued: self.inner.queue.as_ref().map_or(0, Queue::len),
        }
    }

    /// The limiter's name, once known.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.get().map(|name| &**name)
    }

    pub(crate) fn name_once(&self, name: impl FnOnce() -> SharedString) {
        if self.inner.metrics.get().is_some() {
            return;
        }
        let name = self.inner.name.get_or_init(name);
        self.inner.metrics.get_or_init(|| {
            let metrics = LimiterMetrics {
                limit: metrics::gauge!(telemetry::SHED_LIMIT.name, "limiter" => name.clone()),
                in_flight: metrics::gauge!(telemetry::SHED_IN_FLIGHT.name, "limiter" => name.clone()),
                short_rtt: metrics::gauge!(telemetry::SHED_RTT.name, "limiter" => name.clone(), "window" => "short"),
                long_rtt: metrics::gauge!(telemetry::SHED_RTT.name, "limiter" => name.clone(), "window" => "long"),
                queue_length: metrics::gauge!(telemetry::SHED_QUEUE_LENGTH.name, "limiter" => name.clone()),
                queue_wait: metrics::histogram!(telemetry::SHED_QUEUE_WAIT.name, "limiter" => name.clone()),
                rejected: Criticality::ALL.map(|class| {
                    ShedReason::ALL.map(|reason| {
                        metrics::counter!(
                            telemetry::SHED_REJECTED.name,
                            "limiter" => name.clone(),
                            "class" => class.as_str(),
                            "reason" => reason.as_str(),
                        )
                    })
                }),
            };
            metrics.limit.set(self.inner.admission.limit() as f64);
            metrics
        });
    }

    /// Takes a slot, or gives the handle back when the limiter is full.
    pub(crate) fn acquire(self, class: Criticality) -> Result<Slot, ShedHandle> {
        let mut acquired = self
            .inner
            .admission
            .try_acquire(class, Self::draining(&self.inner));
        if acquired == Acquired::Retired {
            let successor = self
                .inner
                .successor
                .get()
                .expect("a limiter is retired only once its successor is set")
                .clone();
            return successor.acquire(class);
        }
        if acquired == Acquired::Full {
            // A limit set by traffic long gone may be stale (see `Adaptive::relax`).
            if let Some(limit) = self
                .inner
                .adaptive
                .as_ref()
                .and_then(|adaptive| adaptive.relax(|| self.nanos_since_base(clock::now())))
            {
                self.set_limit(limit);
                acquired = self
                    .inner
                    .admission
                    .try_acquire(class, Self::draining(&self.inner));
            }
        }
        match acquired {
            Acquired::Yes(in_flight) => {
                let started = self.started();
                if let (1, Some(started), Some(adaptive)) =
                    (in_flight, started, &self.inner.adaptive)
                {
                    adaptive.busy(started);
                }
                Ok(Slot {
                    limiter: self,
                    class,
                    in_flight,
                    started,
                    armed: true,
                })
            }
            Acquired::Full => Err(self),
            // Retired between the two attempts: the successor decides.
            Acquired::Retired => match self.inner.successor.get() {
                Some(successor) => successor.clone().acquire(class),
                None => Err(self),
            },
        }
    }

    /// When a slot taken now starts, in nanoseconds since the limiter's base, if the limiter
    /// measures its requests.
    fn started(&self) -> Option<u64> {
        self.inner
            .measures
            .then(|| self.nanos_since_base(clock::now()))
    }

    fn set_limit(&self, limit: u32) {
        self.inner.admission.set_limit(limit);
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.limit.set(f64::from(limit));
        }
    }

    fn slot(&self, class: Criticality, in_flight: u64) -> Slot {
        Slot {
            limiter: self.clone(),
            class,
            in_flight,
            started: self.started(),
            armed: true,
        }
    }

    /// Counts a rejection.
    pub(crate) fn count_rejection(&self, class: Criticality, reason: ShedReason) {
        if let Some(adaptive) = &self.inner.adaptive {
            adaptive.rejected(class.index());
        }
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.rejected[class.index()][reason as usize].increment(1);
        }
    }

    /// Waits in the queue for a slot: the slot's receiver and when to give up; or why not.
    pub(crate) fn wait(
        &self,
        class: Criticality,
        deadline: Option<Deadline>,
    ) -> Result<Waiting, ShedReason> {
        let Some(queue) = &self.inner.queue else {
            return Err(ShedReason::Limit);
        };
        let now = clock::now();
        let mut longest = None;
        if let Some(deadline) = deadline {
            // Time to wait is what the deadline leaves after the expected service time.
            let service = Duration::from_nanos(self.inner.expected_rtt.load(Ordering::Acquire));
            let left = deadline.instant().saturating_duration_since(now);
            if left <= service {
                return Err(ShedReason::Deadline);
            }
            longest = Some(left - service);
        }
        let (receiver, wait) = queue
            .join(class, self.nanos_since_base(now))
            .map_err(|NoWait::Full| ShedReason::QueueFull)?;
        let wait = longest.map_or(wait, |longest| wait.min(longest));
        self.set_queue_gauge(queue);
        Ok(Waiting {
            limiter: self.clone(),
            receiver,
            until: clock::saturating_add(now, wait),
            since: now,
        })
    }

    fn set_queue_gauge(&self, queue: &Queue) {
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.queue_length.set(queue.len() as f64);
        }
    }

    fn nanos_since_base(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.inner.base))
    }

    /// Gives back a slot of `class`: to the best waiter that may take it, or to the pool.
    fn release(&self, class: Criticality) {
        let mut holder = class;
        if let Some(queue) = self
            .inner
            .queue
            .as_ref()
            .filter(|queue| queue.has_waiters())
        {
            let now = self.nanos_since_base(clock::now());
            let admission = &self.inner.admission;
            while let Some((to, sender)) =
                queue.next(now, |to| admission.would_take_over(holder, to))
            {
                admission.transfer(holder, to);
                let slot = self.slot(to, admission.in_flight());
                match sender.send(slot) {
                    Ok(()) => return,
                    // The waiter gave up meanwhile: offer the slot to the next one.
                    Err(mut slot) => {
                        slot.armed = false;
                        holder = to;
                    }
                }
            }
        }
        if self.inner.admission.release(holder) {
            if let Some(adaptive) = &self.inner.adaptive {
                adaptive.idle();
            }
        }
    }

    fn finish(&self, slot: &Slot, dropped: bool) {
        let Some(started) = slot.started else {
            return;
        };
        let now = self.nanos_since_base(clock::now());
        // An exponential average over about 20 requests: the expected service time, which
        // only the queue reads (a write to a shared line per request is not free).
        if self.inner.queue.is_some() {
            let rtt = now.saturating_sub(started);
            let expected = self.inner.expected_rtt.load(Ordering::Acquire);
            let updated = if expected == 0 {
                rtt
            } else {
                (expected * 19 + rtt) / 20
            };
            self.inner.expected_rtt.store(updated, Ordering::Release);
        }
        if let Some(adaptive) = &self.inner.adaptive {
            let sampled = adaptive.sample(Completion {
                now,
                started,
                dropped,
                inflight_then: slot.in_flight,
                inflight_now: self.inner.admission.in_flight(),
                class: slot.class.index(),
            });
            if let Some(update) = sampled {
                self.inner.admission.set_limit(update.limit);
                if let Some(reserves) = update.reserves {
                    self.inner.admission.set_reserves(reserves);
                }
                if let Some(metrics) = self.inner.metrics.get() {
                    metrics.limit.set(f64::from(update.limit));
                    metrics
                        .in_flight
                        .set(self.inner.admission.in_flight() as f64);
                    metrics.short_rtt.set(update.short_rtt_nanos / 1e9);
                    if let Some(long) = update.long_rtt_nanos {
                        metrics.long_rtt.set(long / 1e9);
                    }
                }
                tracing::debug!(
                    limiter = self.name().unwrap_or("shared"),
                    limit = update.limit,
                    short_rtt_ms = update.short_rtt_nanos / 1e6,
                    long_rtt_ms = update.long_rtt_nanos.map(|long| long / 1e6),
                    "concurrency limit updated"
                );
            }
        }
    }
}

impl fmt::Debug for ShedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShedHandle")
            .field("name", &self.name())
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

/// A slot held by an admitted request. It is given back when dropped, whether or not the request
/// finished (a cancelled request frees its slot); a finished request also feeds its latency to an
/// adaptive limit.
pub(crate) struct Slot {
    limiter: ShedHandle,
    class: Criticality,
    in_flight: u64,
    /// When it was taken (nanoseconds since the limiter's base), if the limiter measures.
    started: Option<u64>,
    /// Whether dropping it releases it; a slot refused by a waiter that gave up is passed on
    /// by the releaser instead.
    armed: bool,
}

impl Slot {
    /// Whether the limiter wants to hear how the request went.
    pub(crate) fn measures(&self) -> bool {
        self.started.is_some()
    }

    /// The request finished; `dropped` says whether it signals overload downstream.
    pub(crate) fn finish(mut self, dropped: bool) {
        self.limiter.finish(&self, dropped);
        self.started = None;
    }
}

impl Drop for Slot {
    /// Released on every path, finished or cancelled. A cancelled request (its caller gave up,
    /// or a timeout outside the shedder cut it off) tells an adaptive limit that it took at least
    /// this long, as a drop: otherwise a service whose every request times out would never be
    /// measured.
    fn drop(&mut self) {
        if self.armed {
            if self.started.is_some() && self.limiter.inner.adaptive.is_some() {
                self.limiter.finish(self, true);
            }
            self.limiter.release(self.class);
        }
    }
}

/// A request waiting in the queue. Dropped (served, timed out or cancelled), it leaves the queue.
pub(crate) struct Waiting {
    limiter: ShedHandle,
    pub(crate) receiver: oneshot::Receiver<Slot>,
    pub(crate) until: Instant,
    since: Instant,
}

impl Waiting {
    pub(crate) fn limiter(&self) -> &ShedHandle {
        &self.limiter
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(queue) = &self.limiter.inner.queue {
            let now = clock::now();
            queue.leave(self.limiter.nanos_since_base(now));
            self.limiter.set_queue_gauge(queue);
            if let Some(metrics) = self.limiter.inner.metrics.get() {
                metrics
                    .queue_wait
                    .record(now.saturating_duration_since(self.since).as_secs_f64());
            }
        }
    }
}

impl LimitAlgorithm {
    pub(crate) fn is_adaptive(&self) -> bool {
        !matches!(self, LimitAlgorithm::Fixed(_))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The lanes' total, added in parallel, is the sum of the four counts.
        #[test]
        fn the_total_is_the_sum_of_the_lanes(lanes in proptest::array::uniform4(0u64..=u64::from(MAX_PER_CLASS)), retired: bool) {
            let counts = lanes
                .iter()
                .zip(Criticality::ALL)
                .fold(if retired { RETIRED } else { 0 }, |word, (&count, class)| word | count << lane_shift(class));
            proptest::prop_assert_eq!(total_of(counts), lanes.iter().sum::<u64>());
        }
    }
}
