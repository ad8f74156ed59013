//! Adaptive concurrency limits: windows of latency samples turned into a new limit.
//!
//! Completed requests add their latency to the current window's sums, in their thread's shard.
//! Once the window is long enough and holds enough samples, the thread whose compare-and-swap
//! closes it computes the next limit; the algorithm's own state is touched only there, one
//! window after another.
//!
//! Long because of its unit tests (about a third of the file).

use crate::core::PerClass;
use std::sync::Mutex;
// std's, not `core::sync`'s: the flag that serializes closers is outside the loom models.
use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};

use super::config::{Aimd, Gradient2, LimitAlgorithm};
use super::knee::{KneeState, WindowStats};
use crate::core::sync::{AtomicU64, Ordering};

/// What one window of samples says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct WindowSample {
    /// The average latency of the window, in nanoseconds.
    pub(crate) rtt_nanos: f64,
    /// Whether any request was dropped (timed out or rejected downstream).
    pub(crate) dropped: bool,
    /// The most requests in flight seen in the window.
    pub(crate) max_inflight: u64,
}

/// AIMD's next limit: multiply by the backoff on a drop (or a window slower than the timeout),
/// otherwise grow by one, but only while the service is busy (in flight at least half the limit).
pub(crate) fn aimd_next(config: &Aimd, limit: f64, sample: WindowSample) -> f64 {
    let timeout = config.timeout.as_nanos() as f64;
    let next = if sample.dropped || sample.rtt_nanos > timeout {
        limit * config.backoff
    } else if (sample.max_inflight as f64) * 2.0 >= limit {
        limit + 1.0
    } else {
        limit
    };
    next.clamp(f64::from(config.min), f64::from(config.max))
}

/// Gradient2's next limit, given the long RTT after this window's update.
pub(crate) fn gradient2_next(
    config: &Gradient2,
    limit: f64,
    long_rtt: f64,
    sample: WindowSample,
) -> f64 {
    // The service is not busy enough for its latency to say anything about the limit.
    if (sample.max_inflight as f64) < limit / 2.0 {
        return limit;
    }
    let gradient = (config.tolerance * long_rtt / sample.rtt_nanos).clamp(0.5, 1.0);
    let estimate = limit * gradient + f64::from(config.queue_size);
    let smoothed = limit * (1.0 - config.smoothing) + estimate * config.smoothing;
    smoothed.clamp(f64::from(config.min), f64::from(config.max))
}

/// The long RTT after a window: a plain average over the first ten windows, then an exponential
/// average over `long_window` windows; pulled down when latency has fallen far below it.
pub(crate) fn long_rtt_next(
    config: &Gradient2,
    long_rtt: f64,
    windows: u64,
    short_rtt: f64,
) -> f64 {
    const WARMUP: u64 = 10;
    let updated = if windows == 0 {
        short_rtt
    } else if windows < WARMUP {
        (long_rtt * windows as f64 + short_rtt) / (windows + 1) as f64
    } else {
        let factor = 2.0 / (f64::from(config.long_window) + 1.0);
        long_rtt * (1.0 - factor) + short_rtt * factor
    };
    if updated / short_rtt > 2.0 {
        updated * 0.95
    } else {
        updated
    }
}

/// The fewest samples in a knee window (unless it lasted the longest window).
const KNEE_MIN_SAMPLES: u64 = 25;
/// A knee window with fewer samples closes once it has lasted this many windows and holds at
/// least [`KNEE_FEW_SAMPLES`].
const KNEE_FEW_WINDOWS: u64 = 3;
const KNEE_FEW_SAMPLES: u64 = 4;
/// A knee window that lasted more than this many windows, and in which a busy spell began,
/// spanned an idle spell.
const KNEE_IDLE_WINDOWS: u64 = 5;

/// A new limit, and the latencies it was computed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LimitUpdate {
    pub(crate) limit: u32,
    /// The window's average latency, in nanoseconds.
    pub(crate) short_rtt_nanos: f64,
    /// Gradient2's long-term latency, or the knee's no-load latency, in nanoseconds (none for
    /// AIMD).
    pub(crate) long_rtt_nanos: Option<f64>,
    /// The knee's room for each class's recent demand.
    pub(crate) reserves: Option<PerClass<u32>>,
}

/// One completed (or cancelled) request, as the limit sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completion {
    /// When it finished, and when it was admitted, in nanoseconds on the limiter's clock.
    pub(crate) now: u64,
    pub(crate) started: u64,
    /// Whether it signals overload downstream (a timeout or an overload answer).
    pub(crate) dropped: bool,
    /// In flight when it was admitted (itself included), and now.
    pub(crate) inflight_then: u64,
    pub(crate) inflight_now: u64,
    pub(crate) class: usize,
}

/// Shards of a window's sums that one thread each writes alone (the first threads to complete
/// a request in the process), without a locked read-modify-write; threads after them share one
/// more shard, written with atomic additions.
const OWNED: usize = 8;
const SHARDS: usize = OWNED + 1;

/// A window's sums, counted up since the limiter began (wrapping): a window's share is the
/// difference from what the previous window took, so that the one writer of a shard never
/// races a reset.
#[derive(Debug, Default)]
struct Sums {
    samples: AtomicU64,
    rtt_sum: AtomicU64,
    /// The knee's sum of squared latencies, in microseconds squared: how noisy the window is.
    rtt_squares: AtomicU64,
    drops: AtomicU64,
    /// The knee's measurements beyond the others': rejections and demand by class, and the
    /// requests of a probe and their latencies.
    rejected: AtomicU64,
    demand: PerClass<AtomicU64>,
    probe_samples: AtomicU64,
    probe_rtt_sum: AtomicU64,
}

/// One shard of a window's sums, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    sums: Sums,
}

/// The calling thread's shard, and whether the thread writes it alone.
fn shard_index() -> (usize, bool) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed).min(OWNED);
    }
    INDEX.with(|index| (*index, *index < OWNED))
}

/// Adds `value` to a shard's counter: a load and a store from the shard's one writer, an
/// atomic addition on the shared shard.
#[inline]
fn add(counter: &AtomicU64, value: u64, owned: bool) {
    if owned {
        let sum = counter.load(Ordering::Relaxed).wrapping_add(value);
        counter.store(sum, Ordering::Release);
    } else {
        counter.fetch_add(value, Ordering::AcqRel);
    }
}

/// Held by the one thread closing a window (a thread that finds another closing leaves its
/// samples to the next window).
struct Closing<'a>(&'a AtomicBool);

impl<'a> Closing<'a> {
    /// Begins closing a window, unless another thread is closing one.
    fn begin(flag: &'a AtomicBool) -> Option<Self> {
        flag.compare_exchange(false, true, StdOrdering::AcqRel, StdOrdering::Acquire)
            .ok()
            .map(|_| Self(flag))
    }
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.store(false, StdOrdering::Release);
    }
}

/// The sampling state of an adaptive limit.
#[derive(Debug)]
pub(crate) struct Adaptive {
    algorithm: LimitAlgorithm,
    /// The current window's length (the knee changes it with the latency), and the longest.
    window_nanos: AtomicU64,
    max_window: u64,
    min_samples: u64,
    window_start: AtomicU64,
    /// The window's sums, one set per shard (threads spread over them), so that completions on
    /// different threads do not write the same cache line.
    shards: [Shard; SHARDS],
    /// What the windows closed so far took of each shard's sums (written only while closing).
    taken: [Sums; SHARDS],
    /// Set while a thread closes a window.
    closing: AtomicBool,
    max_inflight: AtomicU64,
    /// When the latest busy spell began: the admission of a request that found nothing in
    /// flight (knee only).
    busy_since: AtomicU64,
    /// The limit as a fraction (f64 bits): the algorithms work on it, admission on its rounding.
    estimate: AtomicU64,
    /// The long RTT (f64 bits) and how many windows it has seen.
    long_rtt: AtomicU64,
    windows: AtomicU64,
    /// In-flight when the window began, and when the probe in progress began (its requests
    /// are those admitted after `probe_since - 1`; 0 when there is no probe).
    inflight_start: AtomicU64,
    probe_since: AtomicU64,
    /// `windows + 1` when the limiter last went idle (0: not since the last window).
    idle_mark: AtomicU64,
    /// Locked only by the thread closing a window (or relaxing the limit), never waited for.
    knee: Option<Mutex<KneeState>>,
}

impl Adaptive {
    pub(crate) fn new(algorithm: LimitAlgorithm, window_nanos: u64, min_samples: u32) -> Self {
        let knee = match algorithm {
            LimitAlgorithm::Knee(config) => Some(KneeState::new(config, window_nanos)),
            _ => None,
        };
        Self {
            algorithm,
            window_nanos: AtomicU64::new(knee.as_ref().map_or(window_nanos, KneeState::window)),
            max_window: window_nanos,
            min_samples: u64::from(min_samples),
            window_start: AtomicU64::new(0),
            shards: std::array::from_fn(|_| Shard::default()),
            taken: std::array::from_fn(|_| Sums::default()),
            closing: AtomicBool::new(false),
            max_inflight: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            estimate: AtomicU64::new(f64::from(algorithm.initial()).to_bits()),
            long_rtt: AtomicU64::new(0f64.to_bits()),
            windows: AtomicU64::new(0),
            inflight_start: AtomicU64::new(0),
            probe_since: AtomicU64::new(0),
            idle_mark: AtomicU64::new(0),
            knee: knee.map(Mutex::new),
        }
    }

    /// A request of `class` was rejected.
    pub(crate) fn rejected(&self, class: usize) {
        let (shard, owned) = self.shard();
        add(&shard.rejected, 1, owned);
        add(&shard.demand[class], 1, owned);
    }

    /// The sums of the calling thread's shard, and whether the thread writes them alone.
    #[inline]
    fn shard(&self) -> (&Sums, bool) {
        let (index, owned) = shard_index();
        (&self.shards[index].sums, owned)
    }

    /// The current window's sum of one field over the shards (`take`: taken by the window
    /// closing, so that the next one counts from here).
    fn total(&self, field: impl Fn(&Sums) -> &AtomicU64, take: bool) -> u64 {
        self.shards
            .iter()
            .zip(&self.taken)
            .map(|(shard, taken)| {
                let now = field(&shard.sums).load(Ordering::Acquire);
                let before = if take {
                    field(taken).swap(now, Ordering::AcqRel)
                } else {
                    field(taken).load(Ordering::Acquire)
                };
                now.wrapping_sub(before)
            })
            .fold(0, u64::saturating_add)
    }

    /// A request found nothing in flight when it was admitted at `started`: a busy spell began.
    pub(crate) fn busy(&self, started: u64) {
        // A load and a store, not a locked maximum: a service that is often idle finds nothing
        // in flight on most requests. Two spells beginning on two threads at once may leave the
        // earlier of their starts (the spell then reads a few microseconds longer).
        if self.knee.is_some() && started > self.busy_since.load(Ordering::Acquire) {
            self.busy_since.store(started, Ordering::Release);
        }
    }

    /// Nothing is in flight any more.
    pub(crate) fn idle(&self) {
        if self.knee.is_some() {
            let windows = self.windows.load(Ordering::Acquire);
            self.idle_mark.store(windows + 1, Ordering::Release);
        }
    }

    /// A request finds the limiter full at `now`. If the service went idle (nothing in flight)
    /// after the last window closed, and no window has closed for four windows (at least the
    /// longest window) since, nothing
    /// has confirmed the limit since the traffic that set it (a burst, an overload that ended):
    /// the knee goes back to its initial limit. Returns the new limit when it did.
    pub(crate) fn relax(&self, now: impl FnOnce() -> u64) -> Option<u32> {
        let knee = self.knee.as_ref()?;
        let windows = self.windows.load(Ordering::Acquire);
        let LimitAlgorithm::Knee(config) = self.algorithm else {
            return None;
        };
        // Idle since, and no window closed for four windows (at least the longest): the traffic
        // that set the limit is gone.
        let longest = self
            .window_nanos
            .load(Ordering::Acquire)
            .saturating_mul(4)
            .max(self.max_window);
        // The clock is read only once the limiter is known to have gone idle.
        if self.idle_mark.load(Ordering::Acquire) != windows + 1
            || now().saturating_sub(self.window_start.load(Ordering::Acquire)) <= longest
            || f64::from_bits(self.estimate.load(Ordering::Acquire)) >= f64::from(config.initial)
        {
            return None;
        }
        let mut state = knee.try_lock().ok()?;
        let limit = state.relax();
        self.estimate.store(limit.to_bits(), Ordering::Release);
        self.probe_since.store(0, Ordering::Release);
        Some(limit.round().max(1.0) as u32)
    }

    /// Adds one completed request; returns the new limit when this sample closed a window.
    pub(crate) fn sample(&self, done: Completion) -> Option<LimitUpdate> {
        let rtt_nanos = done.now.saturating_sub(done.started);
        let (shard, owned) = self.shard();
        add(&shard.samples, 1, owned);
        add(&shard.rtt_sum, rtt_nanos, owned);
        if done.dropped {
            add(&shard.drops, 1, owned);
        }
        // Most requests do not set a new peak: a load, and the read-modify-write only if so.
        if done.inflight_then > self.max_inflight.load(Ordering::Acquire) {
            self.max_inflight
                .fetch_max(done.inflight_then, Ordering::AcqRel);
        }
        if self.knee.is_some() {
            let micros = rtt_nanos / 1_000;
            add(&shard.rtt_squares, micros.saturating_mul(micros), owned);
            add(&shard.demand[done.class], 1, owned);
            let probe = self.probe_since.load(Ordering::Acquire);
            if probe != 0 && done.started >= probe - 1 {
                add(&shard.probe_samples, 1, owned);
                add(&shard.probe_rtt_sum, rtt_nanos, owned);
            }
        }

        let mut start = self.window_start.load(Ordering::Acquire);
        if start == 0 && self.knee.is_some() && self.windows.load(Ordering::Acquire) == 0 {
            // The first window starts with the first request, not with the limiter.
            start = match self.window_start.compare_exchange(
                0,
                done.started,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => done.started,
                Err(actual) => actual,
            };
        }
        let elapsed = done.now.saturating_sub(start);
        let window = self.window_nanos.load(Ordering::Acquire);
        if elapsed < window {
            return None;
        }
        // Summed over the shards only once the window has lasted its length.
        let samples = self.total(|shard| &shard.samples, false);
        // A window closes after its length once it has enough samples. The knee's windows hold
        // at least `KNEE_MIN_SAMPLES` (latency is noisy), or close with fewer after the longest
        // window, so that a slow, small service is still measured.
        let enough = if self.knee.is_some() {
            let min_samples = self.min_samples.max(KNEE_MIN_SAMPLES);
            // The first window is shorter, to see an overload from the start sooner.
            let min_samples = if self.windows.load(Ordering::Acquire) == 0 {
                self.min_samples
            } else {
                min_samples
            };
            // A slow or small service completes few requests a window: after a few windows'
            // time, a handful of samples is enough (its latency varies little between them,
            // and waiting for more would let a backlog build unseen).
            samples >= min_samples
                || (samples >= KNEE_FEW_SAMPLES && elapsed >= KNEE_FEW_WINDOWS * window)
                || (samples > 0 && elapsed >= self.max_window)
        } else {
            samples >= self.min_samples
        };
        if !enough {
            return None;
        }
        // One closer at a time: the window's sums are taken from the shards by difference.
        let _closing = Closing::begin(&self.closing)?;
        if self
            .window_start
            .compare_exchange(start, done.now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let samples = self.total(|shard| &shard.samples, true);
        let rtt_sum = self.total(|shard| &shard.rtt_sum, true);
        let drops = self.total(|shard| &shard.drops, true);
        let max_inflight = self.max_inflight.swap(0, Ordering::AcqRel);
        if samples == 0 {
            return None;
        }
        if let Some(knee) = &self.knee {
            // A window stretched far past its length by an idle spell (a burst after a quiet
            // second) is measured over the busy spell only: over the whole window its
            // throughput reads far too low, and a burst in flight looks like a backlog that
            // has stood for a second. (A short lull, as at half load on a small pool, is not
            // such a spell: the window's throughput is the right one there.)
            let busy_since = self.busy_since.load(Ordering::Acquire);
            let busy = if busy_since > start && elapsed > KNEE_IDLE_WINDOWS * window {
                elapsed.min(done.now.saturating_sub(busy_since).max(1))
            } else {
                elapsed
            };
            return self.close_knee(knee, done, (elapsed, busy), samples, rtt_sum, max_inflight);
        }
        let window = WindowSample {
            rtt_nanos: (rtt_sum as f64 / samples as f64).max(1.0),
            dropped: drops > 0,
            max_inflight,
        };
        let limit = f64::from_bits(self.estimate.load(Ordering::Acquire));
        let mut long_rtt_nanos = None;
        let next = match &self.algorithm {
            LimitAlgorithm::Fixed(limit) => f64::from(*limit),
            LimitAlgorithm::Aimd(config) => aimd_next(config, limit, window),
            LimitAlgorithm::Gradient2(config) => {
                let windows = self.windows.fetch_add(1, Ordering::AcqRel);
                let long = f64::from_bits(self.long_rtt.load(Ordering::Acquire));
                let long = long_rtt_next(config, long, windows, window.rtt_nanos);
                self.long_rtt.store(long.to_bits(), Ordering::Release);
                long_rtt_nanos = Some(long);
                gradient2_next(config, limit, long, window)
            }
            LimitAlgorithm::Knee(_) => unreachable!("the knee closes its windows above"),
        };
        self.estimate.store(next.to_bits(), Ordering::Release);
        Some(LimitUpdate {
            limit: next.round().max(1.0) as u32,
            short_rtt_nanos: window.rtt_nanos,
            long_rtt_nanos,
            reserves: None,
        })
    }

    fn close_knee(
        &self,
        knee: &Mutex<KneeState>,
        done: Completion,
        (elapsed, busy): (u64, u64),
        samples: u64,
        rtt_sum: u64,
        peak: u64,
    ) -> Option<LimitUpdate> {
        let stats = WindowStats {
            now: done.now,
            elapsed,
            busy,
            samples,
            rtt_sum,
            rtt_squares: self.total(|shard| &shard.rtt_squares, true),
            rejected: self.total(|shard| &shard.rejected, true),
            inflight_start: self
                .inflight_start
                .swap(done.inflight_now, Ordering::AcqRel),
            inflight_end: done.inflight_now,
            peak,
            demand: std::array::from_fn(|class| self.total(|shard| &shard.demand[class], true)),
            probe_samples: self.total(|shard| &shard.probe_samples, true),
            probe_rtt_sum: self.total(|shard| &shard.probe_rtt_sum, true),
        };
        self.windows.fetch_add(1, Ordering::AcqRel);
        // Only the thread that closed the window gets here; a relax holding the lock at this
        // instant wins and this window's measurements are dropped.
        let mut state = knee.try_lock().ok()?;
        let step = state.on_window(&stats);
        drop(state);
        self.window_nanos.store(step.window, Ordering::Release);
        self.probe_since.store(
            step.probe_since.map_or(0, |since| since + 1),
            Ordering::Release,
        );
        self.estimate.store(step.limit.to_bits(), Ordering::Release);
        Some(LimitUpdate {
            limit: (step.limit - 1e-9).ceil().max(1.0) as u32,
            short_rtt_nanos: step.rtt,
            long_rtt_nanos: Some(step.base),
            reserves: Some(step.reserves),
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    const MS: f64 = 1_000_000.0;

    fn busy(rtt_ms: f64, dropped: bool) -> WindowSample {
        WindowSample {
            rtt_nanos: rtt_ms * MS,
            dropped,
            max_inflight: 1000,
        }
    }

    #[test]
    fn aimd_grows_by_one_and_backs_off_on_drops() {
        let config = Aimd::default();
        assert_eq!(aimd_next(&config, 50.0, busy(10.0, false)), 51.0);
        assert_eq!(aimd_next(&config, 50.0, busy(10.0, true)), 45.0);
        assert_eq!(
            aimd_next(&config, 50.0, busy(6_000.0, false)),
            45.0,
            "slower than the timeout"
        );
        assert_eq!(
            aimd_next(&config, 21.0, busy(10.0, true)),
            20.0,
            "never below the min"
        );
        assert_eq!(
            aimd_next(&config, 200.0, busy(10.0, false)),
            200.0,
            "never above the max"
        );
        let idle = WindowSample {
            max_inflight: 10,
            ..busy(10.0, false)
        };
        assert_eq!(
            aimd_next(&config, 50.0, idle),
            50.0,
            "no growth below half the limit"
        );
    }

    #[test]
    fn gradient2_grows_at_steady_latency_and_shrinks_when_it_rises() {
        let config = Gradient2::default();
        // Steady: gradient 1 (clamped), + queue size, smoothed: 50 * 0.8 + 54 * 0.2.
        assert!((gradient2_next(&config, 50.0, 10.0 * MS, busy(10.0, false)) - 50.8).abs() < 1e-9);
        // Latency 3x the long-term level: gradient 0.5, estimate 29, smoothed 45.8.
        assert!((gradient2_next(&config, 50.0, 10.0 * MS, busy(30.0, false)) - 45.8).abs() < 1e-9);
        let idle = WindowSample {
            max_inflight: 10,
            ..busy(30.0, false)
        };
        assert_eq!(gradient2_next(&config, 50.0, 10.0 * MS, idle), 50.0);
        assert_eq!(
            gradient2_next(&config, 20.0, 10.0 * MS, busy(100.0, false)),
            20.0,
            "the min holds"
        );
    }

    #[test]
    fn long_rtt_warms_up_then_averages_and_decays() {
        let config = Gradient2::default();
        assert_eq!(long_rtt_next(&config, 0.0, 0, 10.0), 10.0);
        assert_eq!(long_rtt_next(&config, 10.0, 1, 20.0), 15.0);
        let factor = 2.0 / 601.0;
        assert!(
            (long_rtt_next(&config, 10.0, 50, 12.0) - (10.0 * (1.0 - factor) + 12.0 * factor))
                .abs()
                < 1e-9
        );
        // Latency fell far below the long-term level: the long RTT is pulled down.
        assert!(long_rtt_next(&config, 100.0, 50, 10.0) < 100.0 * (1.0 - factor) + 10.0 * factor);
    }

    fn done(now: u64, dropped: bool) -> Completion {
        Completion {
            now,
            started: now.saturating_sub(1_000),
            dropped,
            inflight_then: 20,
            inflight_now: 20,
            class: 2,
        }
    }

    #[test]
    fn sums_from_many_threads_are_counted_once_per_window() {
        // More threads than shards written alone: some write a shard alone, the rest share one.
        let adaptive = std::sync::Arc::new(Adaptive::new(
            LimitAlgorithm::Aimd(Aimd::default()),
            u64::MAX / 2,
            1,
        ));
        let threads = 2 * OWNED + 3;
        let per_thread = 500u64;
        for round in 1..=3u64 {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let adaptive = adaptive.clone();
                    std::thread::spawn(move || {
                        for i in 0..per_thread {
                            // A window never closes (it is far too long): only the sums move.
                            let update = adaptive.sample(Completion {
                                now: 1_000 + i * round,
                                started: 1_000,
                                dropped: i % 5 == 0,
                                inflight_then: 1,
                                inflight_now: 1,
                                class: 2,
                            });
                            assert_eq!(update, None);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
            let samples = adaptive.total(|shard| &shard.samples, false);
            assert_eq!(samples, threads as u64 * per_thread, "round {round}");
            // Taken as a window closes: counted once, and the next window starts from zero.
            assert_eq!(adaptive.total(|shard| &shard.samples, true), samples);
            let rtt: u64 = (0..per_thread).map(|i| i * round).sum();
            assert_eq!(
                adaptive.total(|shard| &shard.rtt_sum, true),
                threads as u64 * rtt
            );
            assert_eq!(
                adaptive.total(|shard| &shard.drops, true),
                threads as u64 * per_thread / 5
            );
            assert_eq!(adaptive.total(|shard| &shard.samples, false), 0);
        }
    }

    #[test]
    fn a_window_closes_after_its_time_and_samples() {
        let adaptive = Adaptive::new(
            LimitAlgorithm::Aimd(Aimd::default()),
            Duration::from_secs(1).as_nanos() as u64,
            3,
        );
        let second = 1_000_000_000;
        assert_eq!(adaptive.sample(done(second / 2, false)), None, "too early");
        assert_eq!(
            adaptive.sample(done(second, false)),
            None,
            "too few samples"
        );
        assert_eq!(
            adaptive
                .sample(done(second, false))
                .map(|update| update.limit),
            Some(21)
        );
        for _ in 0..3 {
            assert_eq!(
                adaptive.sample(done(second + 10, true)),
                None,
                "a new window has begun"
            );
        }
        assert_eq!(
            adaptive
                .sample(done(2 * second, true))
                .map(|update| update.limit),
            Some(20),
            "21 * 0.9, floored at the min"
        );
    }

    #[test]
    fn a_knee_window_closes_with_few_samples_after_the_longest_window() {
        let adaptive = Adaptive::new(
            LimitAlgorithm::Knee(crate::shed::Knee::default()),
            Duration::from_secs(1).as_nanos() as u64,
            10,
        );
        let ms = 1_000_000;
        for i in 1..10 {
            assert_eq!(
                adaptive.sample(done(i * 3 * ms, false)),
                None,
                "{i} of 10 samples"
            );
        }
        let first = adaptive
            .sample(done(30 * ms, false))
            .expect("the first window");
        assert_eq!(first.long_rtt_nanos, Some(1_000.0), "the no-load latency");
        assert_eq!(
            adaptive.sample(done(100 * ms, false)),
            None,
            "1 of 25 samples"
        );
        let update = adaptive
            .sample(done(1_100 * ms, false))
            .expect("closed with 2 samples: the longest window passed");
        assert_eq!(update.short_rtt_nanos, 1_000.0);
    }

    proptest! {
        #[test]
        fn limits_stay_within_bounds(
            rtts in proptest::collection::vec((1u64..10_000, any::<bool>(), 0u64..500), 1..200),
        ) {
            let aimd = Aimd::default();
            let gradient = Gradient2::default();
            let (mut a, mut g, mut long) = (20.0, 20.0, 0.0);
            for (window, (rtt_ms, dropped, inflight)) in rtts.into_iter().enumerate() {
                let sample = WindowSample { rtt_nanos: rtt_ms as f64 * MS, dropped, max_inflight: inflight };
                a = aimd_next(&aimd, a, sample);
                long = long_rtt_next(&gradient, long, window as u64, sample.rtt_nanos);
                g = gradient2_next(&gradient, g, long, sample);
                prop_assert!((20.0..=200.0).contains(&a), "aimd {a}");
                prop_assert!((20.0..=200.0).contains(&g), "gradient2 {g}");
                prop_assert!(long.is_finite() && long > 0.0);
            }
        }
    }
}
