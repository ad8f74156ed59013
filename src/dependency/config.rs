//! A dependency policy's settings.

use std::time::Duration;

use http::HeaderName;

use super::hedge::HedgeConfig;
use crate::breaker::BreakerConfig;
pub use crate::core::ConfigError;
use crate::core::Strict;
use crate::retry::RetryConfig;
use crate::throttle::ThrottleConfig;
use crate::timeout::DeadlineFormat;

/// The policy of one outbound dependency. Defaults:
///
/// | part | default | why |
/// |---|---|---|
/// | [`attempt_timeout`](Self::attempt_timeout) | none | the caller's [`Deadline`](crate::core::Deadline) bounds every attempt; a per-attempt timeout is a choice about the dependency's latency that only its owner can make |
/// | deadline propagation | `grpc-timeout` on gRPC calls; [`deadline_header`](Self::deadline_header) for HTTP | the dependency stops working when the caller has stopped waiting |
/// | [`breaker`](Self::breaker) | on, [`BreakerConfig::new`] | breakers belong around dependencies |
/// | [`retry`](Self::retry) | on, [`RetryConfig::new`] | idempotent calls, budgeted |
/// | [`throttle`](Self::throttle) | on, [`ThrottleConfig::new`] | a dependency that sheds is not hammered |
/// | [`hedge`](Self::hedge) | off | a hedge is an extra call; opt in with [`HedgeConfig::new`] |
/// | [`max_concurrency`](Self::max_concurrency) | none | a cap is the dependency's capacity, which only its owner knows |
/// | [`reality_map`](Self::reality_map) | on | the map of what the service calls costs a few nanoseconds a call |
/// | [`undeclared`](Self::undeclared) | declared | a policy in code or in the policy file is one someone chose |
#[derive(Clone, Debug)]
pub struct DependencyConfig {
    pub(crate) name: String,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline_header: Option<(HeaderName, DeadlineFormat)>,
    pub(crate) breaker: Option<BreakerConfig>,
    pub(crate) retry: Option<RetryConfig>,
    pub(crate) throttle: Option<ThrottleConfig>,
    pub(crate) hedge: Option<HedgeConfig>,
    pub(crate) max_concurrency: Option<usize>,
    /// `Some` for a policy made up for a dependency nobody declared, with what to do.
    pub(crate) undeclared: Option<Strict>,
    pub(crate) reality_map: bool,
}

impl DependencyConfig {
    /// The defaults above, for the dependency named `name` (a metric label: keep it short and fixed).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attempt_timeout: None,
            deadline_header: None,
            breaker: Some(BreakerConfig::new()),
            retry: Some(RetryConfig::new()),
            throttle: Some(ThrottleConfig::new()),
            hedge: None,
            max_concurrency: None,
            undeclared: None,
            reality_map: true,
        }
    }

    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Each attempt's own time limit (the caller's deadline still applies). Default none.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Write the time an attempt has left on plain HTTP calls in this header and format (gRPC
    /// calls always get `grpc-timeout`). Default none.
    pub fn deadline_header(mut self, name: HeaderName, format: DeadlineFormat) -> Self {
        self.deadline_header = Some((name, format));
        self
    }

    /// The circuit breaker's settings, or `None` for no breaker. Default on.
    pub fn breaker(mut self, breaker: Option<BreakerConfig>) -> Self {
        self.breaker = breaker;
        self
    }

    /// The retry settings, or `None` for no retries. Default on.
    pub fn retry(mut self, retry: Option<RetryConfig>) -> Self {
        self.retry = retry;
        self
    }

    /// The adaptive throttle's settings, or `None` for no throttling. Default on.
    pub fn throttle(mut self, throttle: Option<ThrottleConfig>) -> Self {
        self.throttle = throttle;
        self
    }

    /// Hedging of idempotent calls, or `None`. Default none: a hedge is a second call, which
    /// only the dependency's owner can say it affords.
    pub fn hedge(mut self, hedge: Option<HedgeConfig>) -> Self {
        self.hedge = hedge;
        self
    }

    /// At most this many attempts in flight at once (a bulkhead); those beyond fail fast with
    /// [`RejectionKind::Overloaded`](crate::core::RejectionKind::Overloaded). Default none.
    pub fn max_concurrency(mut self, max: usize) -> Self {
        self.max_concurrency = Some(max);
        self
    }

    /// Marks this as a policy made up for a dependency that no one declared, and says what its
    /// calls get: [`Strict::Off`] serves them silently, [`Strict::Report`] logs and counts each
    /// (`steadfast.dependency.undeclared`), [`Strict::Refuse`] refuses each with a
    /// [`Misconfigured`](crate::core::RejectionKind::Misconfigured) rejection, unsent. Either way
    /// the [reality map](crate::map) lists the dependency as undeclared. Default: declared.
    /// [`PolicyFile::dependency_layer_or_default`](crate::policy::PolicyFile) sets it for names
    /// the policy file does not have.
    pub fn undeclared(mut self, strict: Strict) -> Self {
        self.undeclared = Some(strict);
        self
    }

    /// Whether the policy was declared (not made up with [`undeclared`](Self::undeclared)).
    pub fn is_declared(&self) -> bool {
        self.undeclared.is_none()
    }

    /// Count the dependency's calls in the [reality map](crate::map), on the edge from the
    /// route being served. Default on (its cost is in `benches/dependency.rs`).
    pub fn reality_map(mut self, on: bool) -> Self {
        self.reality_map = on;
        self
    }

    /// Checks every part's settings.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "a dependency needs a name"));
        }
        if let Some(timeout) = self.attempt_timeout {
            if timeout.is_zero() || timeout > Duration::from_secs(3_600) {
                return Err(ConfigError::new(
                    "attempt_timeout",
                    format!("must be above zero and at most 1 h, got {timeout:?}"),
                ));
            }
        }
        if self.max_concurrency == Some(0) {
            return Err(ConfigError::new(
                "max_concurrency",
                "a cap of 0 would refuse every call",
            ));
        }
        if let Some(breaker) = &self.breaker {
            breaker.validate()?;
        }
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        if let Some(throttle) = &self.throttle {
            throttle.validate()?;
        }
        if let Some(hedge) = &self.hedge {
            hedge.validate()?;
        }
        Ok(())
    }
}
