//! Retry settings: which calls and answers are retried, how long to wait, how much to spend.

use std::time::Duration;

use http::{Method, StatusCode};

pub use crate::core::ConfigError;
use crate::core::grpc::Code;

/// The longest wait any duration setting may ask for.
const HOUR: Duration = Duration::from_secs(3_600);

/// A set of gRPC codes, one bit per code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Codes(u32);

impl Codes {
    pub(crate) fn contains(self, code: Code) -> bool {
        self.0 & (1 << code.as_u8()) != 0
    }
}

/// The retry budget shared by every caller of a dependency in the process.
///
/// Over a sliding window, retries may number at most `ratio` × the calls made plus
/// `min_per_second` × the window's seconds, as in Finagle's retry budget. Defaults: ratio 0.1,
/// 10 per second, a 10-second window:
/// - **ratio 0.1**: a dependency that fails every call sees at most 10 % more calls than
///   its callers make (gRPC's retry throttling keeps the same ratio; Finagle and Envoy allow
///   20 %, which lets a retry storm add a fifth to the load of a dependency already at
///   capacity);
/// - **10 per second**: a caller with little traffic can still retry a transient failure
///   (Finagle's floor);
/// - **10 seconds**: long enough to smooth bursts, short enough that the budget refills soon
///   after an outage ends (Finagle's TTL).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    pub(crate) ratio: f64,
    pub(crate) min_per_second: u32,
    pub(crate) window: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl BudgetConfig {
    /// The defaults above.
    pub const fn new() -> Self {
        Self {
            ratio: 0.1,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }

    /// Retries allowed per call made, over the window, in `[0, 10]`. Default `0.1`.
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Retries allowed per second whatever the traffic. Default `10`.
    pub fn min_per_second(mut self, retries: u32) -> Self {
        self.min_per_second = retries;
        self
    }

    /// The sliding window, 1 second to 1 hour. Default 10 seconds.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Checks the settings; a budget that can never allow a retry is allowed (it turns retries off).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=10.0).contains(&self.ratio) {
            return Err(ConfigError::new(
                "budget.ratio",
                format!("must be between 0 and 10, got {}", self.ratio),
            ));
        }
        if !(Duration::from_secs(1)..=HOUR).contains(&self.window) {
            return Err(ConfigError::new(
                "budget.window",
                format!("must be 1 s to 1 h, got {:?}", self.window),
            ));
        }
        Ok(())
    }
}

/// Settings of a [`RetryLayer`](super::RetryLayer), with defaults that are safe for any
/// dependency:
///
/// | setting | default | why |
/// |---|---|---|
/// | [`max_retries`](Self::max_retries) | 2 (3 attempts) | gRPC's and Polly's common choice; more rarely helps and multiplies load |
/// | [`backoff`](Self::backoff) | 25 ms base, 250 ms cap, full jitter | Envoy's; full jitter spreads callers that failed together |
/// | [`retry_on_status`](Self::retry_on_status) | 503, 429 | answers that say "not now" without having done the work |
/// | [`retry_on_grpc`](Self::retry_on_grpc) | `UNAVAILABLE`, `RESOURCE_EXHAUSTED` | the gRPC equivalents |
/// | [`retry_on_errors`](Self::retry_on_errors) | on | a transport error (connection refused, reset) or an attempt's timeout |
/// | [`methods`](Self::methods) | GET, HEAD, OPTIONS, PUT, DELETE, TRACE | idempotent in RFC 9110; others only when a request is marked [`Retryable`](super::Retryable) |
/// | [`max_retry_after`](Self::max_retry_after) | 10 s | a dependency asking for a longer wait is not retried |
/// | [`max_replay_bytes`](Self::max_replay_bytes) | 64 KiB | larger bodies are streamed once and not retried |
/// | [`budget`](Self::budget) | see [`BudgetConfig`] | |
///
/// Never retried: 4xx other than those listed (the request is at fault), gRPC answers with a
/// negative or unreadable `grpc-retry-pushback-ms` (the server said not to), refusals made in
/// this process (open breaker, throttled, spent deadline), and any attempt the caller's
/// deadline cannot cover.
#[derive(Clone, Debug)]
pub struct RetryConfig {
    pub(crate) name: String,
    pub(crate) max_retries: u32,
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    pub(crate) statuses: Vec<StatusCode>,
    pub(crate) grpc: Codes,
    pub(crate) errors: bool,
    pub(crate) methods: Vec<Method>,
    pub(crate) idempotent_grpc: Vec<String>,
    pub(crate) max_retry_after: Duration,
    pub(crate) max_replay_bytes: usize,
    pub(crate) budget: BudgetConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryConfig {
    /// The defaults in the table above.
    pub fn new() -> Self {
        Self {
            name: "unnamed".to_owned(),
            max_retries: 2,
            base: Duration::from_millis(25),
            cap: Duration::from_millis(250),
            statuses: vec![
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::TOO_MANY_REQUESTS,
            ],
            grpc: Codes((1 << Code::Unavailable.as_u8()) | (1 << Code::ResourceExhausted.as_u8())),
            errors: true,
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::PUT,
                Method::DELETE,
                Method::TRACE,
            ],
            idempotent_grpc: Vec::new(),
            max_retry_after: Duration::from_secs(10),
            max_replay_bytes: 64 * 1024,
            budget: BudgetConfig::new(),
        }
    }

    /// The dependency's name, for metric labels and logs. Default `"unnamed"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Retries after the first attempt, 0 to 10 (0 turns retries off). Default 2.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Exponential backoff with full jitter: the n-th retry waits a random time in
    /// `[0, min(cap, base × 2^(n-1))]`. Default 25 ms and 250 ms.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.base = base;
        self.cap = cap;
        self
    }

    /// The HTTP statuses that are retried. Default 503 and 429.
    pub fn retry_on_status(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// The gRPC codes that are retried. Default `UNAVAILABLE` and `RESOURCE_EXHAUSTED`.
    pub fn retry_on_grpc(mut self, codes: impl IntoIterator<Item = Code>) -> Self {
        self.grpc = Codes(
            codes
                .into_iter()
                .fold(0, |bits, code| bits | 1 << code.as_u8()),
        );
        self
    }

    /// Whether an error of the client (a transport error) or an attempt's timeout is retried.
    /// Default `true`.
    pub fn retry_on_errors(mut self, retry: bool) -> Self {
        self.errors = retry;
        self
    }

    /// The methods retried without a [`Retryable`](super::Retryable) mark. Default: RFC 9110's
    /// idempotent methods.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// A gRPC method (`/package.Service/Method`) that is idempotent and so retried like a GET
    /// (gRPC calls are POSTs). Call once per method.
    pub fn idempotent_grpc_method(mut self, path: impl Into<String>) -> Self {
        self.idempotent_grpc.push(path.into());
        self
    }

    /// The longest `Retry-After` or `grpc-retry-pushback-ms` honoured; a longer one ends the
    /// call with the dependency's answer. Default 10 seconds.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The largest request body kept to send again. Default 64 KiB.
    pub fn max_replay_bytes(mut self, bytes: usize) -> Self {
        self.max_replay_bytes = bytes;
        self
    }

    /// The retry budget. Default [`BudgetConfig::new`].
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.budget = budget;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_retries > 10 {
            return Err(ConfigError::new(
                "max_retries",
                format!("at most 10 retries, got {}", self.max_retries),
            ));
        }
        if self.base.is_zero() || self.base > self.cap || self.cap > HOUR {
            return Err(ConfigError::new(
                "backoff",
                format!(
                    "needs 0 < base <= cap <= 1 h, got base {:?} and cap {:?}",
                    self.base, self.cap
                ),
            ));
        }
        if self.max_retry_after > HOUR {
            return Err(ConfigError::new(
                "max_retry_after",
                format!("at most 1 h, got {:?}", self.max_retry_after),
            ));
        }
        if self.max_replay_bytes > 64 * 1024 * 1024 {
            return Err(ConfigError::new(
                "max_replay_bytes",
                format!("at most 64 MiB, got {}", self.max_replay_bytes),
            ));
        }
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        self.budget.validate()
    }

    /// The wait before retry number `retry` (1 for the first), drawn with full jitter.
    pub(crate) fn backoff_for(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1 << exponent).min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}
