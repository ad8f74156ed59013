//! Breaker settings, with their defaults and validation.

use std::time::Duration;

use super::state::{MAX_PERMITS, Settings};
pub use crate::core::ConfigError;
use crate::core::clock::nanos;

/// How a breaker remembers calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `buckets` intervals of `bucket` each (the current interval
    /// included); for example 60 buckets of one second.
    Time {
        /// How many intervals the window spans.
        buckets: u32,
        /// The length of one interval.
        bucket: Duration,
    },
}

impl SlidingWindow {
    /// The last `calls` calls.
    pub fn count(calls: u32) -> Self {
        SlidingWindow::Count(calls)
    }

    /// The calls of the last `span`, in one-second intervals (Resilience4j's time-based window);
    /// a span under two seconds uses ten intervals instead.
    pub fn time(span: Duration) -> Self {
        let seconds = span.as_secs();
        if seconds >= 2 {
            SlidingWindow::Time {
                buckets: seconds.min(u64::from(u32::MAX)) as u32,
                bucket: Duration::from_secs(1),
            }
        } else {
            SlidingWindow::Time {
                buckets: 10,
                bucket: span / 10,
            }
        }
    }
}

/// The settings of a circuit breaker. Defaults follow Resilience4j where it has one, so that a
/// migrating team gets the behaviour it knows; the exceptions are marked.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    pub(crate) failure_rate_threshold: f64,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) window: SlidingWindow,
    pub(crate) minimum_calls: u32,
    pub(crate) open_duration: Duration,
    pub(crate) open_backoff: f64,
    pub(crate) open_max: Duration,
    pub(crate) open_jitter: f64,
    pub(crate) half_open_permits: u32,
    pub(crate) half_open_max_wait: Option<Duration>,
    pub(crate) automatic_half_open: bool,
    pub(crate) name: Option<String>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: None,
            window: SlidingWindow::Count(100),
            minimum_calls: 100,
            open_duration: Duration::from_secs(60),
            open_backoff: 1.0,
            open_max: Duration::from_secs(300),
            open_jitter: 0.0,
            half_open_permits: 10,
            half_open_max_wait: Some(Duration::from_secs(60)),
            automatic_half_open: false,
            name: None,
        }
    }
}

impl BreakerConfig {
    /// The defaults: trip at a 50% failure rate over the last 100 calls once 100 calls are
    /// recorded, stay open 60 s, then let 10 probes decide.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trip when this percentage of the window's calls failed (`>=`). Default 50.
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.failure_rate_threshold = percent;
        self
    }

    /// Trip when this percentage of the window's calls were slow (`>=`). Default 100.
    pub fn slow_call_rate_threshold(mut self, percent: f64) -> Self {
        self.slow_call_rate_threshold = percent;
        self
    }

    /// A call slower than this (strictly) is slow. Default: none, slow calls are not tracked,
    /// which saves two clock reads per call. (Resilience4j's default, 60 s at a 100% rate,
    /// trips only when every call takes a minute; turn it on with a duration that matters.)
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.slow_call_duration = Some(duration);
        self
    }

    /// The sliding window. Default: the last 100 calls.
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// Rates are judged only once the window holds this many calls. Default 100; capped at a
    /// count window's size.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// How long the breaker stays open after its first trip. Default 60 s.
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.open_duration = duration;
        self
    }

    /// Each consecutive trip (probes failed again) multiplies the open duration by `factor`, up
    /// to `max`. Default: factor 1 (a fixed duration, as in Resilience4j), max 300 s.
    pub fn open_backoff(mut self, factor: f64, max: Duration) -> Self {
        self.open_backoff = factor;
        self.open_max = max;
        self
    }

    /// Spread each open duration by up to ± this fraction (0.1 = ±10%), so that many instances
    /// do not probe at once. Default 0.
    pub fn open_jitter(mut self, fraction: f64) -> Self {
        self.open_jitter = fraction;
        self
    }

    /// How many probe calls half-open lets through; excess calls are rejected, not queued.
    /// Default 10.
    pub fn half_open_permits(mut self, permits: u32) -> Self {
        self.half_open_permits = permits;
        self
    }

    /// The longest the breaker stays half-open waiting for its probes to finish before it opens
    /// again. Default 60 s (Resilience4j waits forever by default; a probe that never finishes
    /// would then keep the breaker half-open for good).
    pub fn half_open_max_wait(mut self, wait: Option<Duration>) -> Self {
        self.half_open_max_wait = wait;
        self
    }

    /// Move from open to half-open (and out of an overdue half-open) by a timer, without waiting
    /// for a call. Default: off, the next call makes the move. Needs a tokio runtime.
    pub fn automatic_half_open(mut self, automatic: bool) -> Self {
        self.automatic_half_open = automatic;
        self
    }

    /// The name in metric labels and events. Default: the route template of the first request
    /// (Axum's `MatchedPath`), the gRPC method path, or `unmatched`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks every setting; the error names the first one at fault.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setting at fault and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let percent = |key, value: f64| {
            if value > 0.0 && value <= 100.0 {
                Ok(())
            } else {
                Err(ConfigError::new(
                    key,
                    format!("must be a percentage in (0, 100], got {value}"),
                ))
            }
        };
        percent("failure_rate_threshold", self.failure_rate_threshold)?;
        percent("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        match self.window {
            SlidingWindow::Count(size) if !(1..=1 << 30).contains(&size) => {
                return Err(ConfigError::new(
                    "sliding_window",
                    format!("a count window holds 1 to 2^30 calls, got {size}"),
                ));
            }
            SlidingWindow::Time { buckets, bucket } => {
                if !(1..=86_400).contains(&buckets) {
                    return Err(ConfigError::new(
                        "sliding_window",
                        format!("a time window has 1 to 86400 buckets, got {buckets}"),
                    ));
                }
                if bucket < Duration::from_millis(1) {
                    return Err(ConfigError::new(
                        "sliding_window",
                        "a time window's buckets last at least 1 ms",
                    ));
                }
            }
            SlidingWindow::Count(_) => {}
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", "must be at least 1"));
        }
        if self.open_duration.is_zero() {
            return Err(ConfigError::new(
                "open_duration",
                "must be longer than zero",
            ));
        }
        if !(self.open_backoff >= 1.0 && self.open_backoff.is_finite()) {
            return Err(ConfigError::new(
                "open_backoff",
                format!("the factor must be at least 1, got {}", self.open_backoff),
            ));
        }
        if self.open_max < self.open_duration {
            return Err(ConfigError::new(
                "open_max",
                "must not be shorter than open_duration",
            ));
        }
        if !(0.0..1.0).contains(&self.open_jitter) {
            return Err(ConfigError::new(
                "open_jitter",
                format!("must be in [0, 1), got {}", self.open_jitter),
            ));
        }
        if !(1..=MAX_PERMITS).contains(&self.half_open_permits) {
            return Err(ConfigError::new(
                "half_open_permits",
                format!("must be 1 to {MAX_PERMITS}, got {}", self.half_open_permits),
            ));
        }
        if self.half_open_max_wait.is_some_and(|wait| wait.is_zero()) {
            return Err(ConfigError::new(
                "half_open_max_wait",
                "must be longer than zero (or none)",
            ));
        }
        Ok(())
    }

    pub(crate) fn settings(&self) -> Settings {
        let minimum_calls = match self.window {
            SlidingWindow::Count(size) => self.minimum_calls.min(size),
            SlidingWindow::Time { .. } => self.minimum_calls,
        };
        Settings {
            failure_rate_threshold: self.failure_rate_threshold,
            slow_call_rate_threshold: self.slow_call_rate_threshold,
            minimum_calls: u64::from(minimum_calls),
            open_nanos: nanos(self.open_duration),
            open_backoff: self.open_backoff,
            open_max_nanos: nanos(self.open_max),
            open_jitter: self.open_jitter,
            half_open_permits: self.half_open_permits,
            half_open_max_wait_nanos: self.half_open_max_wait.map(nanos),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let config = BreakerConfig::default();
        config.validate().unwrap();
        assert_eq!(config.failure_rate_threshold, 50.0);
        assert_eq!(config.window, SlidingWindow::Count(100));
        assert_eq!(config.minimum_calls, 100);
        assert_eq!(config.open_duration, Duration::from_secs(60));
        assert_eq!(config.half_open_permits, 10);
    }

    #[test]
    fn each_invalid_setting_is_named() {
        let cases = [
            (
                BreakerConfig::new().failure_rate_threshold(0.0),
                "failure_rate_threshold",
            ),
            (
                BreakerConfig::new().failure_rate_threshold(101.0),
                "failure_rate_threshold",
            ),
            (
                BreakerConfig::new().slow_call_rate_threshold(f64::NAN),
                "slow_call_rate_threshold",
            ),
            (
                BreakerConfig::new().sliding_window(SlidingWindow::Count(0)),
                "sliding_window",
            ),
            (
                BreakerConfig::new().sliding_window(SlidingWindow::Time {
                    buckets: 0,
                    bucket: Duration::from_secs(1),
                }),
                "sliding_window",
            ),
            (
                BreakerConfig::new().sliding_window(SlidingWindow::Time {
                    buckets: 10,
                    bucket: Duration::ZERO,
                }),
                "sliding_window",
            ),
            (BreakerConfig::new().minimum_calls(0), "minimum_calls"),
            (
                BreakerConfig::new().open_duration(Duration::ZERO),
                "open_duration",
            ),
            (
                BreakerConfig::new().open_backoff(0.5, Duration::from_secs(600)),
                "open_backoff",
            ),
            (
                BreakerConfig::new().open_backoff(2.0, Duration::from_secs(1)),
                "open_max",
            ),
            (BreakerConfig::new().open_jitter(1.0), "open_jitter"),
            (
                BreakerConfig::new().half_open_permits(0),
                "half_open_permits",
            ),
            (
                BreakerConfig::new().half_open_permits(MAX_PERMITS + 1),
                "half_open_permits",
            ),
            (
                BreakerConfig::new().half_open_max_wait(Some(Duration::ZERO)),
                "half_open_max_wait",
            ),
        ];
        for (config, key) in cases {
            let error = config.validate().unwrap_err();
            assert_eq!(error.key(), key, "{error}");
            assert!(error.to_string().contains(key));
        }
    }

    #[test]
    fn minimum_calls_is_capped_at_a_count_windows_size() {
        let settings = BreakerConfig::new()
            .sliding_window(SlidingWindow::count(10))
            .minimum_calls(50)
            .settings();
        assert_eq!(settings.minimum_calls, 10);
    }

    #[test]
    fn time_windows_use_one_second_buckets() {
        assert_eq!(
            SlidingWindow::time(Duration::from_secs(60)),
            SlidingWindow::Time {
                buckets: 60,
                bucket: Duration::from_secs(1)
            }
        );
        assert_eq!(
            SlidingWindow::time(Duration::from_millis(500)),
            SlidingWindow::Time {
                buckets: 10,
                bucket: Duration::from_millis(50)
            }
        );
    }
}
