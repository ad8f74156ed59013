//! Fault injection for drills: delays and aborts injected into a share of requests, to rehearse
//! an incident in staging (does the timeout fire, does the breaker open, does the alert page?)
//! before a real one. The semantics are those of Envoy's fault filter: a delay is added before
//! the request is served, an abort answers the request in the service's place; each applies to
//! a percentage of the requests, optionally only to requests that carry a trigger header.
//!
//! Nothing is injected unless configured. Injected faults are labelled as such: the
//! [`steadfast.fault.injected`](crate::core::telemetry::FAULT_INJECTED) counter, a `tracing`
//! event on target `steadfast::fault` inside the request's span, an [`InjectedFault`] in the
//! response extensions and an `x-steadfast-fault` response header on aborts.
//!
//! In the [policy stack](crate::policy) faults are injected innermost, just outside the contract
//! check and the service: an injected delay occupies a concurrency slot and counts against the
//! deadline, an injected abort is counted by the breaker and the metrics like the service's own
//! failure. That is the point of a drill.
//!
//! ```
//! use std::time::Duration;
//! use http::StatusCode;
//! use steadfast::fault::{FaultConfig, FaultLayer};
//!
//! // One request in ten waits 2 s more; one in a hundred gets a 503; only requests that
//! // carry `x-drill` are touched.
//! let config = FaultConfig::new()
//!     .delay(Duration::from_secs(2), 10.0)
//!     .abort(StatusCode::SERVICE_UNAVAILABLE, 1.0)
//!     .header(http::HeaderName::from_static("x-drill"));
//! let layer = FaultLayer::new(config)?;
//! # let _ = layer;
//! # Ok::<(), steadfast::core::ConfigError>(())
//! ```

mod service;

use std::time::Duration;

use http::{HeaderName, StatusCode};

use crate::core::ConfigError;

pub(crate) use service::aborted;
pub use service::{Fault, FaultFuture, FaultLayer};

/// The faults to inject. Defaults: none (a layer with the default settings passes every request
/// through untouched).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    delay: Option<(Duration, f64)>,
    abort: Option<(StatusCode, f64)>,
    header: Option<HeaderName>,
}

/// The longest delay a drill may inject.
const MAX_DELAY: Duration = Duration::from_secs(3600);

impl FaultConfig {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delays `percent` of the requests (0 to 100) by `delay` before they are served.
    pub fn delay(mut self, delay: Duration, percent: f64) -> Self {
        self.delay = Some((delay, percent));
        self
    }

    /// Answers `percent` of the requests (0 to 100) with `status` (a 4xx or 5xx; for gRPC
    /// requests, the matching gRPC status in a trailers-only response) instead of serving them.
    pub fn abort(mut self, status: StatusCode, percent: f64) -> Self {
        self.abort = Some((status, percent));
        self
    }

    /// Injects faults only into requests that carry this header (any value). Default: every
    /// request is eligible.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = Some(name);
        self
    }

    /// Whether any fault is configured.
    pub fn is_active(&self) -> bool {
        self.delay.is_some_and(|(_, percent)| percent > 0.0)
            || self.abort.is_some_and(|(_, percent)| percent > 0.0)
    }

    /// Checks the settings: percentages within 0 to 100, a delay of at most an hour, an error
    /// status for aborts.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting (`delay`, `delay_percent`, `abort_status`,
    /// `abort_percent`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let percent = |key: &'static str, percent: f64| {
            if (0.0..=100.0).contains(&percent) {
                Ok(())
            } else {
                Err(ConfigError::new(
                    key,
                    format!("must be 0 to 100, got {percent}"),
                ))
            }
        };
        if let Some((delay, share)) = self.delay {
            if delay > MAX_DELAY {
                return Err(ConfigError::new(
                    "delay",
                    format!("at most an hour, got {delay:?}"),
                ));
            }
            percent("delay_percent", share)?;
        }
        if let Some((status, share)) = self.abort {
            if !(status.is_client_error() || status.is_server_error()) {
                return Err(ConfigError::new(
                    "abort_status",
                    format!("must be a 4xx or 5xx status, got {status}"),
                ));
            }
            percent("abort_percent", share)?;
        }
        Ok(())
    }
}

/// What a request got from the fault layer, in its response extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectedFault {
    /// The delay added before it was served, if any.
    pub delay: Option<Duration>,
    /// The status it was answered with in the service's place, if it was aborted.
    pub abort: Option<StatusCode>,
}
