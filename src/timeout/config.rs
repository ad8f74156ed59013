//! Configuration of the server-side timeout layer.

use std::time::Duration;

use http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::core::clock::{self, Instant};
use crate::core::grpc::{self, GRPC_TIMEOUT};
use crate::core::route::RouteLabel;
use crate::core::telemetry;
use crate::core::{ConfigError, Deadline, Origin, Rejection, RejectionKind};

/// How a deadline is written in an HTTP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineFormat {
    /// The time left, in whole milliseconds, as a decimal integer: `250`. This is the form of
    /// Envoy's `x-envoy-expected-rq-timeout-ms`.
    Millis,
    /// The time left in `grpc-timeout` form: `250m`, `2S`.
    GrpcTimeout,
}

impl DeadlineFormat {
    pub(crate) fn parse(self, value: &HeaderValue) -> Result<Duration, &'static str> {
        match self {
            DeadlineFormat::GrpcTimeout => {
                grpc::parse_timeout(value.as_bytes()).map_err(|error| error.as_str())
            }
            DeadlineFormat::Millis => parse_millis(value.as_bytes()),
        }
    }

    pub(crate) fn encode(self, remaining: Duration) -> HeaderValue {
        match self {
            DeadlineFormat::GrpcTimeout => grpc::encode_timeout(remaining),
            DeadlineFormat::Millis => {
                HeaderValue::from(u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX))
            }
        }
    }
}

/// Milliseconds: 1 to 19 ASCII digits, nothing else (no sign, no spaces, no fraction).
fn parse_millis(value: &[u8]) -> Result<Duration, &'static str> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err("the value is not a whole number of milliseconds");
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok())
        .map(Duration::from_millis)
        .ok_or("the value is too large")
}

/// What to do with a request whose deadline header cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnInvalidDeadline {
    /// Serve the request under the service's own budget, as if the header were absent, and count
    /// it in `steadfast.deadline.invalid` with a debug event. The default: a caller with a buggy
    /// header still gets served, and the service still bounds its work.
    #[default]
    Ignore,
    /// Answer 400 problem+json (gRPC `INVALID_ARGUMENT`) without calling the inner service.
    Reject,
}

/// The settings of [`TimeoutLayer`](super::TimeoutLayer), with their defaults.
///
/// The effective deadline of a request is the earliest of:
/// - now + the service's own budget ([`TimeoutConfig::new`]);
/// - now + the cap ([`TimeoutConfig::cap`]), if set;
/// - now + the caller's `grpc-timeout` (honoured by default, see
///   [`TimeoutConfig::honor_grpc_timeout`]);
/// - now + the caller's HTTP deadline header, if one is configured
///   ([`TimeoutConfig::http_deadline_header`]; off by default, since a plain HTTP client's header
///   is not a standard);
/// - a [`Deadline`] an outer layer already put in the request extensions.
///
/// A caller can shorten the service's budget, never extend it.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeoutConfig {
    budget: Option<Duration>,
    cap: Option<Duration>,
    honor_grpc_timeout: bool,
    http_header: Option<(HeaderName, DeadlineFormat)>,
    on_invalid: OnInvalidDeadline,
    status: StatusCode,
    publish_deadline: bool,
}

/// A budget is a timeout configuration with every other setting at its default.
impl From<Duration> for TimeoutConfig {
    fn from(budget: Duration) -> Self {
        TimeoutConfig::new(budget)
    }
}

impl TimeoutConfig {
    /// The service's own budget for each request.
    ///
    /// Defaults: `grpc-timeout` honoured, no HTTP deadline header, invalid headers ignored,
    /// timeouts answered with `504 Gateway Timeout`.
    pub fn new(budget: Duration) -> Self {
        Self {
            budget: Some(budget),
            cap: None,
            honor_grpc_timeout: true,
            http_header: None,
            on_invalid: OnInvalidDeadline::Ignore,
            status: StatusCode::GATEWAY_TIMEOUT,
            publish_deadline: true,
        }
    }

    /// No budget of the service's own: the caller's deadline governs, never longer than `cap`.
    /// Suits a gateway or pass-through service whose callers set the deadline.
    pub fn caller_deadline(cap: Duration) -> Self {
        Self {
            budget: None,
            cap: Some(cap),
            ..Self::new(cap)
        }
    }

    /// The longest deadline any request may get, whatever the caller asks for. Default: none
    /// beyond the budget.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.cap = Some(cap);
        self
    }

    /// Whether to honour the caller's `grpc-timeout` header. Default: `true`.
    pub fn honor_grpc_timeout(mut self, honor: bool) -> Self {
        self.honor_grpc_timeout = honor;
        self
    }

    /// Also honour an HTTP header carrying the caller's remaining time, for example
    /// `x-envoy-expected-rq-timeout-ms` with [`DeadlineFormat::Millis`]. Default: none.
    pub fn http_deadline_header(mut self, name: HeaderName, format: DeadlineFormat) -> Self {
        self.http_header = Some((name, format));
        self
    }

    /// What to do when a deadline header cannot be read. Default: [`OnInvalidDeadline::Ignore`].
    pub fn on_invalid_deadline(mut self, action: OnInvalidDeadline) -> Self {
        self.on_invalid = action;
        self
    }

    /// The HTTP status of a timed-out request. Default: `504 Gateway Timeout` (tower-http answers
    /// 408, which tells the client it was too slow to send its request; here the server was too
    /// slow to answer). gRPC callers always get `DEADLINE_EXCEEDED`.
    pub fn timeout_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Whether to publish the effective [`Deadline`] as the request's current deadline while
    /// the inner service is called and polled ([`Deadline::current`], [`Deadline::of`], the
    /// extractor). Default: `true`.
    ///
    /// Handlers read it, [`PropagateDeadline`](super::PropagateDeadline) and dependency
    /// policies pass it on, and other steadfast layers inside this one (the load shedder's
    /// deadline-aware queue) rely on it. Publishing costs no allocation; turned off, the
    /// request is still bounded by the deadline, but nothing inside sees it.
    pub fn publish_deadline(mut self, publish: bool) -> Self {
        self.publish_deadline = publish;
        self
    }

    /// Whether the effective deadline is published to the inner service.
    pub fn publishes_deadline(&self) -> bool {
        self.publish_deadline
    }

    /// The service's own budget, if it has one.
    pub fn budget(&self) -> Option<Duration> {
        self.budget
    }

    /// The HTTP status of a timed-out request.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The longest time the service allows any request.
    /// Checks the settings: the budget and the cap are longer than zero (a zero one would
    /// answer every request with a timeout), and the timeout status is an error status.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting: `budget`, `cap` or `timeout_status`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.budget.is_some_and(|budget| budget.is_zero()) {
            return Err(ConfigError::new(
                "budget",
                "must be longer than zero (a zero budget times out every request)",
            ));
        }
        if self.cap.is_some_and(|cap| cap.is_zero()) {
            return Err(ConfigError::new(
                "cap",
                "must be longer than zero (a zero cap times out every request)",
            ));
        }
        if !(self.status.is_client_error() || self.status.is_server_error()) {
            return Err(ConfigError::new(
                "timeout_status",
                format!("must be a 4xx or 5xx status, got {}", self.status),
            ));
        }
        Ok(())
    }

    pub(crate) fn bound(&self) -> Duration {
        match (self.budget, self.cap) {
            (Some(budget), Some(cap)) => budget.min(cap),
            (Some(bound), None) | (None, Some(bound)) => bound,
            (None, None) => unreachable!("every constructor sets a budget or a cap"),
        }
    }

    /// The effective deadline of a request arriving at `now`, and whether it is earlier than a
    /// deadline already in the extensions; or the rejection of a request whose deadline header is
    /// unreadable (with [`OnInvalidDeadline::Reject`]).
    pub(crate) fn deadline_for(
        &self,
        now: Instant,
        headers: &HeaderMap,
        extensions: &Extensions,
        route: &RouteLabel,
        method: &'static str,
    ) -> Result<(Deadline, bool), Rejection> {
        let mut allowed = self.bound();
        if self.honor_grpc_timeout {
            if let Some(value) = headers.get(GRPC_TIMEOUT) {
                let caller = self.caller_time(
                    GRPC_TIMEOUT.as_str(),
                    DeadlineFormat::GrpcTimeout,
                    value,
                    route,
                    method,
                )?;
                allowed = allowed.min(caller.unwrap_or(allowed));
            }
        }
        if let Some((name, format)) = &self.http_header {
            if let Some(value) = headers.get(name) {
                let caller = self.caller_time(name.as_str(), *format, value, route, method)?;
                allowed = allowed.min(caller.unwrap_or(allowed));
            }
        }
        let deadline = Deadline::at(clock::saturating_add(now, allowed));
        Ok(match Deadline::in_extensions(extensions) {
            Some(outer) if outer <= deadline => (outer, false),
            _ => (deadline, true),
        })
    }

    /// The caller's remaining time from one header: `Ok(None)` when unreadable and ignored.
    fn caller_time(
        &self,
        header: &str,
        format: DeadlineFormat,
        value: &HeaderValue,
        route: &RouteLabel,
        method: &'static str,
    ) -> Result<Option<Duration>, Rejection> {
        match format.parse(value) {
            Ok(time) => Ok(Some(time)),
            Err(reason) => {
                let reject = self.on_invalid == OnInvalidDeadline::Reject;
                telemetry::record_invalid_deadline(header, reject, route.as_str(), method, &reason);
                if reject {
                    Err(
                        Rejection::new(RejectionKind::InvalidDeadline, Origin::Timeout)
                            .with_detail(format!("invalid {header} header: {reason}")),
                    )
                } else {
                    Ok(None)
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn millis_accepts_digits_only() {
        assert_eq!(parse_millis(b"250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_millis(b"0"), Ok(Duration::ZERO));
        for bad in [
            &b""[..],
            b"+5",
            b"-5",
            b"5ms",
            b" 5",
            b"1.5",
            b"99999999999999999999999",
        ] {
            assert!(
                parse_millis(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bound_is_the_smaller_of_budget_and_cap() {
        let second = Duration::from_secs(1);
        assert_eq!(TimeoutConfig::new(second).bound(), second);
        assert_eq!(
            TimeoutConfig::new(second).cap(second / 2).bound(),
            second / 2
        );
        assert_eq!(TimeoutConfig::caller_deadline(second).bound(), second);
        assert_eq!(TimeoutConfig::caller_deadline(second).budget(), None);
    }
}
