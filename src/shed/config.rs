//! Load shedder settings, with their defaults and validation.
//!
//! Long because of its documented defaults table and unit tests.

use crate::core::PerClass;
use std::time::Duration;

use http::HeaderName;

use super::limiter::MAX_PER_CLASS;
use super::queue::QueueConfig;
use crate::core::ConfigError;
use crate::core::Criticality;
use crate::core::grpc::Code;

/// Additive increase, multiplicative decrease: grow by one per window while busy, shrink by
/// `backoff` when a request was dropped (timed out or rejected downstream) or slower than
/// `timeout`. Defaults from Netflix concurrency-limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aimd {
    /// The limit to start from. Default 20.
    pub initial: u32,
    /// The floor. Default 20.
    pub min: u32,
    /// The ceiling. Default 200.
    pub max: u32,
    /// The factor applied on a drop. Default 0.9.
    pub backoff: f64,
    /// A request slower than this counts as a drop. Default 5 s.
    pub timeout: Duration,
}

impl Default for Aimd {
    fn default() -> Self {
        Self {
            initial: 20,
            min: 20,
            max: 200,
            backoff: 0.9,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Gradient2: compares the window's average latency (short RTT) with a long-term exponential
/// average (long RTT); while latency stays within `tolerance` of its long-term level the limit
/// grows by `queue_size` per window, and as queueing pushes latency up it shrinks in proportion.
/// Defaults from Netflix concurrency-limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gradient2 {
    /// The limit to start from. Default 20.
    pub initial: u32,
    /// The floor. Default 20.
    pub min: u32,
    /// The ceiling. Default 200.
    pub max: u32,
    /// How much of each new estimate enters the limit (exponential smoothing). Default 0.2.
    pub smoothing: f64,
    /// How much the short RTT may exceed the long RTT before the limit shrinks. Default 1.5.
    pub tolerance: f64,
    /// The number of samples the long RTT averages over. Default 600.
    pub long_window: u32,
    /// The headroom added to each estimate, allowing a small queue. Default 4.
    pub queue_size: u32,
}

impl Default for Gradient2 {
    fn default() -> Self {
        Self {
            initial: 20,
            min: 20,
            max: 200,
            smoothing: 0.2,
            tolerance: 1.5,
            long_window: 600,
            queue_size: 4,
        }
    }
}

/// The default adaptive limit: finds the knee of the service's latency curve, where more
/// requests in flight stop adding throughput and only add queueing, and keeps the limit at
/// `headroom` times the concurrency there. It needs no setting about the service's capacity; see
/// the [module docs](super#the-default-limit-knee) for the algorithm and the reason for every
/// default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Knee {
    /// The limit before the service has shown any congestion. Default 10 000: nothing is shed
    /// until latency says the service is queueing.
    pub initial: u32,
    /// The floor. Default 2.
    pub min: u32,
    /// The ceiling. Default 10 000.
    pub max: u32,
    /// The limit under overload, as a multiple of the concurrency the service completes at its
    /// no-load latency (throughput x no-load latency, Little's law). Default 1.5.
    pub headroom: f64,
    /// Latency above this multiple of the no-load latency is congestion. Default 1.5.
    pub tolerance: f64,
    /// A window lasts this many no-load latencies (within `min_window` and the shedder's
    /// `sample_window`), and holds at least 25 completed requests unless it lasted the whole
    /// `sample_window`. Default 1.
    pub window_rtts: u32,
    /// The shortest window. Default 20 ms.
    pub min_window: Duration,
    /// While the limit binds, the no-load latency is measured again this often, with the limit
    /// divided by three for the measurement: five times as often until a measurement confirms
    /// it, then this often, the interval doubling (up to 16 times) while they keep confirming.
    /// Default 10 s.
    pub probe_interval: Duration,
}

impl Default for Knee {
    fn default() -> Self {
        Self {
            initial: 10_000,
            min: 2,
            max: 10_000,
            headroom: 1.5,
            tolerance: 1.5,
            window_rtts: 1,
            min_window: Duration::from_millis(20),
            probe_interval: Duration::from_secs(10),
        }
    }
}

/// How the concurrency limit is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LimitAlgorithm {
    /// A fixed number of requests in flight.
    Fixed(u32),
    /// The knee of the latency curve, the default ([`Knee`]).
    Knee(Knee),
    /// Additive increase, multiplicative decrease.
    Aimd(Aimd),
    /// Netflix's Gradient2.
    Gradient2(Gradient2),
}

impl LimitAlgorithm {
    pub(crate) fn initial(&self) -> u32 {
        match self {
            LimitAlgorithm::Fixed(limit) => *limit,
            LimitAlgorithm::Aimd(aimd) => aimd.initial,
            LimitAlgorithm::Gradient2(gradient) => gradient.initial,
            LimitAlgorithm::Knee(knee) => knee.initial,
        }
    }
}

/// The settings of a load shedder.
#[derive(Clone, Debug, PartialEq)]
pub struct ShedConfig {
    pub(crate) algorithm: LimitAlgorithm,
    pub(crate) window: Duration,
    pub(crate) min_samples: u32,
    pub(crate) default_criticality: Criticality,
    pub(crate) criticality_header: Option<HeaderName>,
    pub(crate) max_header_criticality: Criticality,
    pub(crate) shares: PerClass<f64>,
    pub(crate) admit_below: PerClass<f64>,
    pub(crate) grpc_code: Code,
    pub(crate) retry_after: Duration,
    pub(crate) queue: Option<QueueConfig>,
    pub(crate) name: Option<String>,
}

impl Default for ShedConfig {
    fn default() -> Self {
        Self {
            algorithm: LimitAlgorithm::Knee(Knee::default()),
            window: Duration::from_secs(1),
            min_samples: 10,
            default_criticality: Criticality::Critical,
            criticality_header: None,
            max_header_criticality: Criticality::Critical,
            shares: [0.0; Criticality::COUNT],
            // Sheddable, sheddable-plus, critical, critical-plus.
            admit_below: [0.9, 0.95, 1.0, 1.0],
            grpc_code: Code::Unavailable,
            retry_after: Duration::from_secs(1),
            queue: None,
            name: None,
        }
    }
}

impl ShedConfig {
    /// The defaults: the [`Knee`] limit (nothing shed until latency shows queueing), windows of
    /// at most 1 s with at least 10 samples, requests `Critical` unless told otherwise, lower
    /// classes shed first (sheddable from 90% of the limit, sheddable-plus from 95%, and each
    /// leaving room for the recent demand of the classes above it).
    pub fn new() -> Self {
        Self::default()
    }

    /// A fixed limit: at most `limit` requests in flight.
    pub fn fixed(limit: u32) -> Self {
        Self {
            algorithm: LimitAlgorithm::Fixed(limit),
            ..Self::default()
        }
    }

    /// How the limit is set. Default: [`Knee`] with its defaults.
    pub fn algorithm(mut self, algorithm: LimitAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// An adaptive limit is reconsidered once per window holding at least `min_samples`
    /// completed requests. Gradient2 and AIMD use windows of `window`; [`Knee`] sizes its
    /// windows from the service's latency and uses `window` as their longest. Default: 1 s and
    /// 10 samples; the window is at most an hour.
    pub fn sample_window(mut self, window: Duration, min_samples: u32) -> Self {
        self.window = window;
        self.min_samples = min_samples;
        self
    }

    /// The class of requests that say nothing. Default: [`Criticality::Critical`].
    pub fn default_criticality(mut self, criticality: Criticality) -> Self {
        self.default_criticality = criticality;
        self
    }

    /// Read the class from this request header (for example `x-criticality`), never above
    /// `max`: callers are not trusted to rate their own requests above it. Default: no header.
    pub fn criticality_header(mut self, name: HeaderName, max: Criticality) -> Self {
        self.criticality_header = Some(name);
        self.max_header_criticality = max;
        self
    }

    /// Guarantee `class` this fraction of the limit: once the limit is reached, its requests
    /// are still admitted while it has fewer than that many in flight. While it is idle, other
    /// classes may borrow its share. Default: no guarantees.
    pub fn guaranteed_share(mut self, class: Criticality, fraction: f64) -> Self {
        self.shares[class.index()] = fraction;
        self
    }

    /// Admit `class` only while fewer than this fraction of the limit is in flight, so that
    /// lower classes are shed before higher ones. Defaults: sheddable 0.9, sheddable-plus 0.95,
    /// critical and critical-plus 1.0.
    pub fn admit_below(mut self, class: Criticality, fraction: f64) -> Self {
        self.admit_below[class.index()] = fraction;
        self
    }

    /// The gRPC status of a shed call: [`Code::Unavailable`] (the default; gRPC clients may retry
    /// it on another replica) or [`Code::ResourceExhausted`] (not retried by default policies).
    pub fn grpc_code(mut self, code: Code) -> Self {
        self.grpc_code = code;
        self
    }

    /// The `Retry-After` of a shed request. Default 1 s; at most a day.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Let requests that find the limiter full wait for a slot in a bounded queue (see
    /// [`QueueConfig`]). Default: no queue, such requests are rejected at once.
    pub fn queue(mut self, queue: QueueConfig) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The name in metric labels. Default: the route template (or gRPC method) of the limiter.
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
        let bounds = |min: u32, initial: u32, max: u32| {
            if max > MAX_PER_CLASS {
                Err(ConfigError::new(
                    "algorithm.max",
                    format!("at most {MAX_PER_CLASS}, got {max}"),
                ))
            } else if min == 0 {
                Err(ConfigError::new("algorithm.min", "must be at least 1"))
            } else if min > max {
                Err(ConfigError::new(
                    "algorithm.min",
                    format!("{min} is above the max {max}"),
                ))
            } else if !(min..=max).contains(&initial) {
                Err(ConfigError::new(
                    "algorithm.initial",
                    format!("{initial} is outside [{min}, {max}]"),
                ))
            } else {
                Ok(())
            }
        };
        if self.window.is_zero() || self.window > MAX_QUEUE_WAIT {
            return Err(ConfigError::new(
                "sample_window",
                "must be longer than zero and at most an hour",
            ));
        }
        if self.retry_after > Duration::from_secs(86_400) {
            return Err(ConfigError::new("retry_after", "at most a day"));
        }
        if self.min_samples == 0 {
            return Err(ConfigError::new("min_samples", "must be at least 1"));
        }
        match self.algorithm {
            LimitAlgorithm::Fixed(limit) if limit == 0 || limit > MAX_PER_CLASS => {
                return Err(ConfigError::new(
                    "algorithm.limit",
                    format!("must be 1 to {MAX_PER_CLASS}, got {limit}"),
                ));
            }
            LimitAlgorithm::Fixed(_) => {}
            LimitAlgorithm::Aimd(aimd) => {
                bounds(aimd.min, aimd.initial, aimd.max)?;
                if !(aimd.backoff > 0.0 && aimd.backoff < 1.0) {
                    return Err(ConfigError::new(
                        "algorithm.backoff",
                        format!("must be in (0, 1), got {}", aimd.backoff),
                    ));
                }
            }
            LimitAlgorithm::Knee(knee) => {
                bounds(knee.min, knee.initial, knee.max)?;
                if !(knee.headroom >= 1.0 && knee.headroom <= 10.0) {
                    return Err(ConfigError::new(
                        "algorithm.headroom",
                        format!("must be in [1, 10], got {}", knee.headroom),
                    ));
                }
                if !(knee.tolerance > 1.0 && knee.tolerance <= 10.0) {
                    return Err(ConfigError::new(
                        "algorithm.tolerance",
                        format!("must be in (1, 10], got {}", knee.tolerance),
                    ));
                }
                if knee.window_rtts == 0 {
                    return Err(ConfigError::new(
                        "algorithm.window_rtts",
                        "must be at least 1",
                    ));
                }
                if knee.min_window.is_zero() || knee.min_window > self.window {
                    return Err(ConfigError::new(
                        "algorithm.min_window",
                        "must be longer than zero and not longer than sample_window",
                    ));
                }
                if knee.probe_interval.is_zero() || knee.probe_interval > Duration::from_secs(3600)
                {
                    return Err(ConfigError::new(
                        "algorithm.probe_interval",
                        "must be longer than zero and at most an hour",
                    ));
                }
            }
            LimitAlgorithm::Gradient2(gradient) => {
                bounds(gradient.min, gradient.initial, gradient.max)?;
                if !(gradient.smoothing > 0.0 && gradient.smoothing <= 1.0) {
                    return Err(ConfigError::new("algorithm.smoothing", "must be in (0, 1]"));
                }
                if !(gradient.tolerance >= 1.0 && gradient.tolerance.is_finite()) {
                    return Err(ConfigError::new(
                        "algorithm.tolerance",
                        "must be at least 1",
                    ));
                }
                if gradient.long_window == 0 {
                    return Err(ConfigError::new(
                        "algorithm.long_window",
                        "must be at least 1",
                    ));
                }
            }
        }
        if self.shares.iter().any(|share| !(0.0..=1.0).contains(share))
            || self.shares.iter().sum::<f64>() > 1.0 + 1e-9
        {
            return Err(ConfigError::new(
                "guaranteed_share",
                "each share is in [0, 1] and together they are at most 1",
            ));
        }
        if self
            .admit_below
            .iter()
            .any(|fraction| !(*fraction > 0.0 && *fraction <= 1.0))
        {
            return Err(ConfigError::new(
                "admit_below",
                "each fraction is in (0, 1]",
            ));
        }
        if let Some(queue) = &self.queue {
            if queue.max_len == 0 {
                return Err(ConfigError::new("queue.max_len", "must be at least 1"));
            }
            for (field, wait) in [
                ("queue.max_wait", queue.max_wait),
                ("queue.target_wait", queue.target_wait),
                ("queue.interval", queue.interval),
            ] {
                if wait > MAX_QUEUE_WAIT {
                    return Err(ConfigError::new(
                        field,
                        format!("at most an hour, got {wait:?}"),
                    ));
                }
            }
            if queue.target_wait > queue.max_wait {
                return Err(ConfigError::new(
                    "queue.target_wait",
                    "must not be longer than queue.max_wait",
                ));
            }
        }
        if !matches!(self.grpc_code, Code::Unavailable | Code::ResourceExhausted) {
            return Err(ConfigError::new(
                "grpc_code",
                "is UNAVAILABLE or RESOURCE_EXHAUSTED",
            ));
        }
        Ok(())
    }
}

/// The longest queue wait (and CoDel interval) a configuration may ask for: a request that has
/// waited an hour for a slot has no caller left.
const MAX_QUEUE_WAIT: Duration = Duration::from_secs(3600);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ShedConfig::default().validate().unwrap();
        ShedConfig::fixed(10).validate().unwrap();
        ShedConfig::new()
            .algorithm(LimitAlgorithm::Aimd(Aimd::default()))
            .validate()
            .unwrap();
    }

    #[test]
    fn each_invalid_setting_is_named() {
        let cases = [
            (ShedConfig::fixed(0), "algorithm.limit"),
            (ShedConfig::fixed(70_000), "algorithm.limit"),
            (
                ShedConfig::new().algorithm(LimitAlgorithm::Aimd(Aimd {
                    max: 70_000,
                    ..Aimd::default()
                })),
                "algorithm.max",
            ),
            (
                ShedConfig::new().algorithm(LimitAlgorithm::Aimd(Aimd {
                    min: 50,
                    max: 10,
                    ..Aimd::default()
                })),
                "algorithm.min",
            ),
            (
                ShedConfig::new().algorithm(LimitAlgorithm::Aimd(Aimd {
                    initial: 5,
                    ..Aimd::default()
                })),
                "algorithm.initial",
            ),
            (
                ShedConfig::new().algorithm(LimitAlgorithm::Aimd(Aimd {
                    backoff: 1.0,
                    ..Aimd::default()
                })),
                "algorithm.backoff",
            ),
            (
                ShedConfig::new().algorithm(LimitAlgorithm::Gradient2(Gradient2 {
                    smoothing: 0.0,
                    ..Gradient2::default()
                })),
                "algorithm.smoothing",
            ),
            (
                ShedConfig::new().algorithm(LimitAlgorithm::Gradient2(Gradient2 {
                    tolerance: 0.5,
                    ..Gradient2::default()
                })),
                "algorithm.tolerance",
            ),
            (
                ShedConfig::new().sample_window(Duration::ZERO, 10),
                "sample_window",
            ),
            (
                ShedConfig::new().sample_window(Duration::from_secs(1), 0),
                "min_samples",
            ),
            (
                ShedConfig::new()
                    .guaranteed_share(Criticality::Critical, 0.8)
                    .guaranteed_share(Criticality::Sheddable, 0.3),
                "guaranteed_share",
            ),
            (
                ShedConfig::new().admit_below(Criticality::Sheddable, 0.0),
                "admit_below",
            ),
            (ShedConfig::new().grpc_code(Code::Internal), "grpc_code"),
            (
                ShedConfig::new().queue(QueueConfig {
                    max_len: 0,
                    ..QueueConfig::default()
                }),
                "queue.max_len",
            ),
            (
                ShedConfig::new().queue(QueueConfig {
                    target_wait: Duration::from_secs(1),
                    ..QueueConfig::default()
                }),
                "queue.target_wait",
            ),
        ];
        for (config, key) in cases {
            assert_eq!(config.validate().unwrap_err().key(), key);
        }
    }
}
