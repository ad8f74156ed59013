//! Adaptive concurrency limits: windows of latency samples turned into a new limit.
//!
//! Completed requests add their latency to the current window with a few atomic additions.
//! Once the window is long enough and holds enough samples, the thread whose compare-and-swap
//! closes it computes the next limit; the algorithm's own state is touched only there, one
//! window after another.

use super::config::{Aimd, Gradient2, LimitAlgorithm};
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

/// A new limit, and the latencies it was computed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LimitUpdate {
    pub(crate) limit: u32,
    /// The window's average latency, in nanoseconds.
    pub(crate) short_rtt_nanos: f64,
    /// Gradient2's long-term latency, in nanoseconds (none for AIMD).
    pub(crate) long_rtt_nanos: Option<f64>,
}

/// The sampling state of an adaptive limit.
#[derive(Debug)]
pub(crate) struct Adaptive {
    algorithm: LimitAlgorithm,
    window_nanos: u64,
    min_samples: u64,
    window_start: AtomicU64,
    samples: AtomicU64,
    rtt_sum: AtomicU64,
    drops: AtomicU64,
    max_inflight: AtomicU64,
    /// The limit as a fraction (f64 bits): the algorithms work on it, admission on its rounding.
    estimate: AtomicU64,
    /// The long RTT (f64 bits) and how many windows it has seen.
    long_rtt: AtomicU64,
    windows: AtomicU64,
}

impl Adaptive {
    pub(crate) fn new(algorithm: LimitAlgorithm, window_nanos: u64, min_samples: u32) -> Self {
        Self {
            algorithm,
            window_nanos,
            min_samples: u64::from(min_samples),
            window_start: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            rtt_sum: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            max_inflight: AtomicU64::new(0),
            estimate: AtomicU64::new(f64::from(algorithm.initial()).to_bits()),
            long_rtt: AtomicU64::new(0f64.to_bits()),
            windows: AtomicU64::new(0),
        }
    }

    /// Adds one completed request; returns the new limit when this sample closed a window.
    pub(crate) fn sample(
        &self,
        now: u64,
        rtt_nanos: u64,
        dropped: bool,
        inflight: u64,
    ) -> Option<LimitUpdate> {
        self.samples.fetch_add(1, Ordering::AcqRel);
        self.rtt_sum.fetch_add(rtt_nanos, Ordering::AcqRel);
        if dropped {
            self.drops.fetch_add(1, Ordering::AcqRel);
        }
        self.max_inflight.fetch_max(inflight, Ordering::AcqRel);

        let start = self.window_start.load(Ordering::Acquire);
        if now.saturating_sub(start) < self.window_nanos
            || self.samples.load(Ordering::Acquire) < self.min_samples
        {
            return None;
        }
        if self
            .window_start
            .compare_exchange(start, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let samples = self.samples.swap(0, Ordering::AcqRel);
        let rtt_sum = self.rtt_sum.swap(0, Ordering::AcqRel);
        let drops = self.drops.swap(0, Ordering::AcqRel);
        let max_inflight = self.max_inflight.swap(0, Ordering::AcqRel);
        if samples == 0 {
            return None;
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
        };
        self.estimate.store(next.to_bits(), Ordering::Release);
        Some(LimitUpdate {
            limit: next.round().max(1.0) as u32,
            short_rtt_nanos: window.rtt_nanos,
            long_rtt_nanos,
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

    #[test]
    fn a_window_closes_after_its_time_and_samples() {
        let adaptive = Adaptive::new(
            LimitAlgorithm::Aimd(Aimd::default()),
            Duration::from_secs(1).as_nanos() as u64,
            3,
        );
        let second = 1_000_000_000;
        assert_eq!(
            adaptive.sample(second / 2, 1_000, false, 20),
            None,
            "too early"
        );
        assert_eq!(
            adaptive.sample(second, 1_000, false, 20),
            None,
            "too few samples"
        );
        assert_eq!(
            adaptive
                .sample(second, 1_000, false, 20)
                .map(|update| update.limit),
            Some(21)
        );
        for _ in 0..3 {
            assert_eq!(
                adaptive.sample(second + 10, 1_000, true, 20),
                None,
                "a new window has begun"
            );
        }
        assert_eq!(
            adaptive
                .sample(2 * second, 1_000, true, 20)
                .map(|update| update.limit),
            Some(20),
            "21 * 0.9, floored at the min"
        );
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
