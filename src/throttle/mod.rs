//! Client-side adaptive throttling: stop hammering a dependency that is refusing calls.
//!
//! The rule of Google's SRE book ("Handling Overload"): over a sliding window, count the
//! attempts this process made (`requests`) and those the dependency accepted (`accepts`), and
//! drop a new attempt locally with probability
//!
//! ```text
//! P(reject) = max(0, (requests − K × accepts) / (requests + 1))
//! ```
//!
//! Attempts are counted when they end (accepted or not) or when they are dropped, never while
//! in flight: a slow dependency with many calls outstanding is not mistaken for one that
//! refuses them. Below [`ThrottleConfig::min_requests`] attempts in the window nothing is
//! dropped: one refusal among the first calls is no evidence (the formula alone would drop half
//! of the calls after a single refusal).
//!
//! With K = 2 nothing is dropped while the dependency accepts at least half of the calls;
//! beyond that, the calls that reach it approach K × what it accepts, so a shedding dependency
//! spends little on refusing this process, while enough calls still get through to see it
//! recover. Dropped attempts count as requests (not accepts), as in the book.
//!
//! An attempt is *accepted* unless it was refused as overload: 503 or 429, gRPC `UNAVAILABLE`
//! or `RESOURCE_EXHAUSTED`, a transport error, or the attempt's own timeout. A 500 was
//! accepted (the dependency did the work and failed): that is the breaker's business.
//!
//! Defaults: K = 2 (the book's), at least 20 attempts in the window before anything is dropped
//! (a sample in which a majority of refusals means something), a 10-second window in 10 buckets (long enough to hold a
//! meaningful sample at modest traffic, short enough to follow a recovery within seconds; the
//! book's two minutes suit its far larger fleets).
//!
//! ```
//! use steadfast::throttle::{ThrottleConfig, ThrottleHandle};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let throttle = ThrottleHandle::new(ThrottleConfig::new()).unwrap();
//! // The dependency refuses every call; after 20 refusals, most attempts are dropped here.
//! let mut sent = 0;
//! for _ in 0..100 {
//!     if throttle.try_admit().is_ok() {
//!         sent += 1;
//!         throttle.record(false);
//!     }
//! }
//! assert!(sent < 40);
//! assert!(throttle.snapshot().reject_probability > 0.9);
//! # }
//! ```
//!
//! [`ThrottleHandle`] is the lock-free state (one compare-and-swap per attempt); the
//! [dependency policy](crate::dependency) uses it around every attempt.

use std::sync::Arc;
use std::time::Duration;

pub use crate::core::ConfigError;
use crate::core::clock;
use crate::core::sync::{AtomicU64, Ordering};
use crate::core::tally::Tally;
use crate::core::{Origin, Rejection, RejectionKind};

/// Buckets of the throttle's window.
const BUCKETS: usize = 10;

/// Settings of a [`ThrottleHandle`]; see the [module docs](self) for the defaults' reasons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleConfig {
    k: f64,
    min_requests: u32,
    window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ThrottleConfig {
    /// K = 2, a 10-second window.
    pub const fn new() -> Self {
        Self {
            k: 2.0,
            min_requests: 20,
            window: Duration::from_secs(10),
        }
    }

    /// The multiplier K, at least 1 (lower drops calls the dependency would accept).
    /// Default 2.
    pub fn k(mut self, k: f64) -> Self {
        self.k = k;
        self
    }

    /// Attempts the window must hold before any is dropped. Default 20.
    pub fn min_requests(mut self, requests: u32) -> Self {
        self.min_requests = requests;
        self
    }

    /// The sliding window, 1 second to 1 hour. Default 10 seconds.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1.0..=1_000.0).contains(&self.k) {
            return Err(ConfigError::new(
                "throttle.k",
                format!("must be between 1 and 1000, got {}", self.k),
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3_600)).contains(&self.window) {
            return Err(ConfigError::new(
                "throttle.window",
                format!("must be 1 s to 1 h, got {:?}", self.window),
            ));
        }
        Ok(())
    }
}

/// The adaptive throttle of one dependency: clones share it.
#[derive(Clone, Debug)]
pub struct ThrottleHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ThrottleConfig,
    /// Requests (first count) and accepts (second count).
    tally: Tally,
    /// The drop probability as last computed (`f64` bits; zero while nothing is dropped), so
    /// that a healthy dependency's attempt is admitted with one atomic load. It is recomputed
    /// from the window when an attempt is refused (the only event that can raise it, besides
    /// old accepts leaving the window, which the next refusal then sees) and on every decision
    /// while it is above zero (so it falls as soon as the window says so).
    probability: AtomicU64,
}

/// What a [`ThrottleHandle`] saw over its window.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ThrottleSnapshot {
    /// Attempts made or dropped.
    pub requests: u64,
    /// Attempts the dependency accepted.
    pub accepts: u64,
    /// The probability the next attempt is dropped.
    pub reject_probability: f64,
}

impl ThrottleHandle {
    /// A throttle with these settings.
    ///
    /// # Errors
    /// A [`ConfigError`] from [`ThrottleConfig::validate`].
    pub fn new(config: ThrottleConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                tally: Tally::new(config.window, BUCKETS),
                probability: AtomicU64::new(0),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ThrottleConfig {
        &self.inner.config
    }

    fn probability(&self, requests: u64, accepts: u64) -> f64 {
        if requests < u64::from(self.inner.config.min_requests) {
            return 0.0;
        }
        let requests = requests as f64;
        ((requests - self.inner.config.k * accepts as f64) / (requests + 1.0)).max(0.0)
    }

    /// Decides on one attempt: `Ok` to send it (then [`record`](Self::record) how it went), or
    /// the [`RejectionKind::Throttled`] refusal, which counts as a request not accepted.
    ///
    /// # Errors
    /// The refusal, when the attempt is dropped.
    pub fn try_admit(&self) -> Result<(), Rejection> {
        self.try_admit_at(clock::now())
    }

    /// [`try_admit`](Self::try_admit) at an instant the caller has already read.
    pub(crate) fn try_admit_at(&self, now: clock::Instant) -> Result<(), Rejection> {
        if self.inner.probability.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let sums = self.inner.tally.sums(now);
        let probability = self.probability(sums.first, sums.second);
        self.inner
            .probability
            .store(probability.to_bits(), Ordering::Relaxed);
        if probability > 0.0 && fastrand::f64() < probability {
            self.inner.tally.add(now, 1, 0);
            return Err(
                Rejection::new(RejectionKind::Throttled, Origin::Throttle).with_detail(format!(
                    "the dependency accepted {} of the last {} calls; this one was dropped before it was sent",
                    sums.second, sums.first
                )),
            );
        }
        Ok(())
    }

    /// Records an admitted attempt once it has ended, and whether the dependency accepted it.
    /// An attempt never recorded (cancelled by its caller) counts for nothing.
    pub fn record(&self, accepted: bool) {
        self.record_at(clock::now(), accepted);
    }

    /// [`record`](Self::record) at an instant the caller has already read.
    pub(crate) fn record_at(&self, now: clock::Instant, accepted: bool) {
        let inner = &*self.inner;
        inner.tally.add(now, 1, u64::from(accepted));
        // An accept cannot raise the probability (K ≥ 1); a refusal can.
        if !accepted || inner.probability.load(Ordering::Relaxed) != 0 {
            let sums = inner.tally.sums(now);
            let probability = self.probability(sums.first, sums.second);
            inner
                .probability
                .store(probability.to_bits(), Ordering::Relaxed);
        }
    }

    /// The window's counts and the current drop probability.
    pub fn snapshot(&self) -> ThrottleSnapshot {
        let sums = self.inner.tally.sums(clock::now());
        ThrottleSnapshot {
            requests: sums.first,
            accepts: sums.second,
            reject_probability: self.probability(sums.first, sums.second),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_healthy_dependency_is_never_throttled() {
        let throttle = ThrottleHandle::new(ThrottleConfig::new()).unwrap();
        for _ in 0..10_000 {
            throttle.try_admit().unwrap();
            throttle.record(true);
        }
        assert_eq!(throttle.snapshot().reject_probability, 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn half_accepted_is_not_throttled_and_the_rate_sent_follows_k_times_accepts() {
        let throttle = ThrottleHandle::new(ThrottleConfig::new()).unwrap();
        for call in 0..1_000 {
            throttle.try_admit().unwrap();
            throttle.record(call % 2 == 0);
        }
        assert_eq!(throttle.snapshot().reject_probability, 0.0);
        // A dependency that accepts only a tenth of what reaches it.
        let throttle = ThrottleHandle::new(ThrottleConfig::new()).unwrap();
        let (mut sent, mut accepted) = (0u32, 0u32);
        for _ in 0..20_000 {
            if throttle.try_admit().is_ok() {
                sent += 1;
                let accept = sent % 10 == 0;
                accepted += u32::from(accept);
                throttle.record(accept);
            }
        }
        // Sent ≈ K × accepted + the trickle that keeps probing: far below the 20,000 offered.
        assert!(sent < 20_000 / 4, "sent {sent}");
        assert!(accepted > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_and_a_few_refusals_are_no_reason_to_drop() {
        let throttle = ThrottleHandle::new(ThrottleConfig::new()).unwrap();
        // A thousand admitted and still running: nothing recorded yet, nothing dropped.
        for _ in 0..1_000 {
            throttle.try_admit().unwrap();
        }
        // Nineteen refusals in a row: below the minimum sample.
        for _ in 0..19 {
            throttle.record(false);
        }
        assert_eq!(throttle.snapshot().reject_probability, 0.0);
        throttle.record(false);
        assert!(throttle.snapshot().reject_probability > 0.9);
    }

    #[tokio::test(start_paused = true)]
    async fn the_throttle_lets_go_once_the_window_has_passed() {
        let throttle = ThrottleHandle::new(ThrottleConfig::new()).unwrap();
        for _ in 0..100 {
            if throttle.try_admit().is_ok() {
                throttle.record(false);
            }
        }
        assert!(throttle.snapshot().reject_probability > 0.9);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(throttle.snapshot().reject_probability, 0.0);
        assert!(throttle.try_admit().is_ok());
    }

    proptest::proptest! {
        /// The admission's one-load fast path agrees with the formula on the window: nothing is
        /// dropped while the window's probability is zero, and right after a refusal that
        /// raised it the attempts are dropped at that rate.
        #[test]
        fn decisions_follow_the_window(events in proptest::collection::vec((proptest::bool::ANY, 0u64..1_500), 1..300)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            runtime.block_on(async {
                let throttle = ThrottleHandle::new(ThrottleConfig::new().window(Duration::from_secs(2))).unwrap();
                for (accepted, step) in events {
                    tokio::time::advance(Duration::from_millis(step)).await;
                    throttle.record(accepted);
                    let probability = throttle.snapshot().reject_probability;
                    if probability == 0.0 {
                        proptest::prop_assert!(throttle.try_admit().is_ok());
                    } else if !accepted && probability > 0.9 {
                        proptest::prop_assert!((0..50).any(|_| throttle.try_admit().is_err()));
                    }
                }
                Ok(())
            })?;
        }
    }
}
