//! The limiter: lock-free admission by class against the current limit.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, SharedString};

use super::config::{LimitAlgorithm, ShedConfig};
use super::limit::Adaptive;
use super::priority::Criticality;
use crate::core::clock::{self, Instant};
use crate::core::sync::{AtomicU64, Ordering};
use crate::core::telemetry;

/// In-flight counts and the limit they are held to.
///
/// Admission is a compare-and-swap on the total: a class is admitted while the total is below
/// its threshold (`admit_below` × limit), or, once past it, while the class holds less than its
/// guaranteed share. The share check reads the class count beside the CAS, so under contention a
/// class may overshoot its share by the number of racing callers; the total never passes the
/// limit except through guaranteed shares.
#[derive(Debug)]
pub(crate) struct Admission {
    limit: AtomicU64,
    total: AtomicU64,
    by_class: [AtomicU64; 4],
    shares: [f64; 4],
    admit_below: [f64; 4],
}

impl Admission {
    pub(crate) fn new(limit: u32, shares: [f64; 4], admit_below: [f64; 4]) -> Self {
        Self {
            limit: AtomicU64::new(u64::from(limit)),
            total: AtomicU64::new(0),
            by_class: std::array::from_fn(|_| AtomicU64::new(0)),
            shares,
            admit_below,
        }
    }

    /// Takes a slot for `class`; returns the number in flight with it, or `None` when full.
    pub(crate) fn try_acquire(&self, class: Criticality) -> Option<u64> {
        let index = class.index();
        let limit = self.limit.load(Ordering::Acquire) as f64;
        let threshold = limit * self.admit_below[index];
        let share = (limit * self.shares[index]).ceil();
        let mut total = self.total.load(Ordering::Acquire);
        loop {
            let admitted = (total as f64) < threshold
                || (share > 0.0 && (self.by_class[index].load(Ordering::Acquire) as f64) < share);
            if !admitted {
                return None;
            }
            match self.total.compare_exchange_weak(
                total,
                total + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.by_class[index].fetch_add(1, Ordering::AcqRel);
                    return Some(total + 1);
                }
                Err(actual) => total = actual,
            }
        }
    }

    /// Gives back a slot of `class`.
    pub(crate) fn release(&self, class: Criticality) {
        self.by_class[class.index()].fetch_sub(1, Ordering::AcqRel);
        self.total.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn set_limit(&self, limit: u32) {
        self.limit.store(u64::from(limit), Ordering::Release);
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.total.load(Ordering::Acquire)
    }

    pub(crate) fn in_flight_of(&self, class: Criticality) -> u64 {
        self.by_class[class.index()].load(Ordering::Acquire)
    }
}

/// A concurrency limiter, shared by every service and handle cloned from it.
///
/// The layer makes one per route; make one yourself to share a pool across routes
/// ([`ShedLayer::shared`](super::ShedLayer::shared)) or to watch it.
#[derive(Clone)]
pub struct LimiterHandle {
    inner: Arc<Inner>,
}

struct Inner {
    admission: Admission,
    adaptive: Option<Adaptive>,
    base: Instant,
    name: OnceLock<SharedString>,
    metrics: OnceLock<LimiterMetrics>,
}

struct LimiterMetrics {
    limit: Gauge,
    in_flight: Gauge,
    rejected: [Counter; 4],
}

/// What a limiter knows right now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimiterSnapshot {
    /// The current concurrency limit.
    pub limit: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// Requests in flight by class, lowest class first (see [`Criticality::ALL`]).
    pub in_flight_by_class: [u64; 4],
}

impl LimiterHandle {
    /// A limiter with these settings.
    pub fn new(config: &ShedConfig) -> Result<Self, crate::core::ConfigError> {
        config.validate()?;
        Ok(Self::from_valid(
            config,
            config.name.clone().map(SharedString::from),
        ))
    }

    pub(crate) fn from_valid(config: &ShedConfig, name: Option<SharedString>) -> Self {
        let adaptive = config.algorithm.is_adaptive().then(|| {
            let window = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
            Adaptive::new(config.algorithm, window, config.min_samples)
        });
        let handle = Self {
            inner: Arc::new(Inner {
                admission: Admission::new(
                    config.algorithm.initial(),
                    config.shares,
                    config.admit_below,
                ),
                adaptive,
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

    /// The limit and what is in flight.
    pub fn snapshot(&self) -> LimiterSnapshot {
        let admission = &self.inner.admission;
        LimiterSnapshot {
            limit: admission.limit(),
            in_flight: admission.in_flight(),
            in_flight_by_class: Criticality::ALL.map(|class| admission.in_flight_of(class)),
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
                rejected: Criticality::ALL.map(|class| {
                    metrics::counter!(telemetry::SHED_REJECTED.name, "limiter" => name.clone(), "class" => class.as_str())
                }),
            };
            metrics.limit.set(self.inner.admission.limit() as f64);
            metrics
        });
    }

    /// Takes a slot, or says the limiter is full.
    pub(crate) fn acquire(&self, class: Criticality) -> Option<Slot> {
        match self.inner.admission.try_acquire(class) {
            Some(in_flight) => Some(Slot {
                limiter: self.clone(),
                class,
                in_flight,
                started: self.inner.adaptive.as_ref().map(|_| clock::now()),
            }),
            None => {
                if let Some(metrics) = self.inner.metrics.get() {
                    metrics.rejected[class.index()].increment(1);
                }
                None
            }
        }
    }

    fn finish(&self, slot: &Slot, dropped: bool) {
        if let (Some(adaptive), Some(started)) = (&self.inner.adaptive, slot.started) {
            let now = clock::now();
            let rtt = now.saturating_duration_since(started);
            let since_base = now.saturating_duration_since(self.inner.base);
            let sampled = adaptive.sample(nanos(since_base), nanos(rtt), dropped, slot.in_flight);
            if let Some(limit) = sampled {
                self.inner.admission.set_limit(limit);
                if let Some(metrics) = self.inner.metrics.get() {
                    metrics.limit.set(f64::from(limit));
                    metrics
                        .in_flight
                        .set(self.inner.admission.in_flight() as f64);
                }
                tracing::debug!(
                    limiter = self.name().unwrap_or("shared"),
                    limit,
                    long_rtt_ms = adaptive.long_rtt_nanos() / 1e6,
                    "concurrency limit updated"
                );
            }
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Debug for LimiterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterHandle")
            .field("name", &self.name())
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

/// A slot held by an admitted request. It is given back when dropped, whether or not the request
/// finished (a cancelled request frees its slot); a finished request also feeds its latency to an
/// adaptive limit.
pub(crate) struct Slot {
    limiter: LimiterHandle,
    class: Criticality,
    in_flight: u64,
    started: Option<Instant>,
}

impl Slot {
    /// The request finished; `dropped` says whether it signals overload downstream.
    pub(crate) fn finish(self, dropped: bool) {
        self.limiter.finish(&self, dropped);
    }
}

impl Drop for Slot {
    /// Released on every path, finished or cancelled.
    fn drop(&mut self) {
        self.limiter.inner.admission.release(self.class);
    }
}

impl LimitAlgorithm {
    pub(crate) fn is_adaptive(&self) -> bool {
        !matches!(self, LimitAlgorithm::Fixed(_))
    }
}
