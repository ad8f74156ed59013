//! Settings of the contract layer.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::core::{ConfigError, Rejection};

/// What a contract check does with what it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answer with a problem instead: `400`/`413`/`415`/`422` for a request, `500` for a
    /// response (whose original is logged).
    #[default]
    Enforce,
    /// Log the violations and count them in `steadfast.contract.violations`; the message passes
    /// unchanged.
    Report,
    /// Do not check.
    Off,
}

/// What to do with a request whose route or method the contract does not document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Undocumented {
    /// Let the router answer it as it would without the layer.
    #[default]
    Pass,
    /// Answer `404` (unknown path) or `405` with `Allow` (unknown method) as a problem.
    Reject,
}

/// Modes of one route, overriding the layer's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RouteModes {
    pub(crate) requests: Option<Mode>,
    pub(crate) responses: Option<Mode>,
    pub(crate) response_sample_rate: Option<f64>,
}

impl RouteModes {
    /// Nothing overridden.
    pub fn new() -> Self {
        Self::default()
    }

    /// How this route's requests are checked.
    pub fn requests(mut self, mode: Mode) -> Self {
        self.requests = Some(mode);
        self
    }

    /// How this route's responses are checked.
    pub fn responses(mut self, mode: Mode) -> Self {
        self.responses = Some(mode);
        self
    }

    /// The share of this route's responses that are checked.
    pub fn response_sample_rate(mut self, rate: f64) -> Self {
        self.response_sample_rate = Some(rate);
        self
    }
}

type ProblemFormatter = dyn Fn(&Rejection) -> http::Response<Bytes> + Send + Sync;
type ResponseHook = dyn Fn(&ResponseViolations<'_>) + Send + Sync;

/// A response that broke its contract, as [`ContractConfig::on_response_violations`] gets it.
///
/// In [`Mode::Enforce`] the caller was answered `500` instead; in [`Mode::Report`] the
/// response went on as it was. The violations describe the service, not the caller: they are
/// never sent, only logged, counted and given to the hook.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResponseViolations<'a> {
    /// The route template of the operation.
    pub route: &'a str,
    /// The request's method.
    pub method: &'a http::Method,
    /// The status the service answered.
    pub status: http::StatusCode,
    /// The mode that judged the response.
    pub mode: Mode,
    /// The violations found, at most `max_violations` of them.
    pub violations: &'a [crate::core::Violation],
    /// How many more were found and not listed.
    pub omitted: usize,
}

/// Settings of [`ContractLayer`](super::ContractLayer). Defaults:
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `requests` | [`Mode::Enforce`] | invalid requests are answered with a problem |
/// | `responses` | [`Mode::Report`] | invalid responses are logged and counted, and pass |
/// | `response_sample_rate` | `1.0` | the share of responses checked (requests are all checked) |
/// | `max_body_bytes` | 2 MiB | the largest request body; more is `413`, also while streaming |
/// | `max_response_body_bytes` | 2 MiB | the largest response body read for checking; a larger one passes unchecked |
/// | `max_violations` | 10 | violations listed in one problem; the rest are counted |
/// | `undocumented` | [`Undocumented::Pass`] | routes and methods the contract does not know |
/// | `grpc_max_message_bytes` | 4 MiB | gRPC's usual default for a request message |
#[derive(Clone)]
pub struct ContractConfig {
    pub(crate) requests: Mode,
    pub(crate) responses: Mode,
    pub(crate) response_sample_rate: f64,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_response_body_bytes: usize,
    pub(crate) max_violations: usize,
    pub(crate) undocumented: Undocumented,
    pub(crate) grpc_max_message_bytes: usize,
    pub(crate) routes: HashMap<String, RouteModes>,
    pub(crate) problem: Option<Arc<ProblemFormatter>>,
    pub(crate) on_response_violations: Option<Arc<ResponseHook>>,
}

impl Default for ContractConfig {
    fn default() -> Self {
        Self {
            requests: Mode::Enforce,
            responses: Mode::Report,
            response_sample_rate: 1.0,
            max_body_bytes: 2 * 1024 * 1024,
            max_response_body_bytes: 2 * 1024 * 1024,
            max_violations: 10,
            undocumented: Undocumented::Pass,
            grpc_max_message_bytes: 4 * 1024 * 1024,
            routes: HashMap::new(),
            problem: None,
            on_response_violations: None,
        }
    }
}

impl fmt::Debug for ContractConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractConfig")
            .field("requests", &self.requests)
            .field("responses", &self.responses)
            .field("response_sample_rate", &self.response_sample_rate)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_response_body_bytes", &self.max_response_body_bytes)
            .field("max_violations", &self.max_violations)
            .field("undocumented", &self.undocumented)
            .field("grpc_max_message_bytes", &self.grpc_max_message_bytes)
            .field("routes", &self.routes)
            .field("problem", &self.problem.is_some())
            .field(
                "on_response_violations",
                &self.on_response_violations.is_some(),
            )
            .finish()
    }
}

impl ContractConfig {
    /// How requests are checked (default [`Mode::Enforce`]).
    pub fn requests(mut self, mode: Mode) -> Self {
        self.requests = mode;
        self
    }

    /// How responses are checked (default [`Mode::Report`]).
    pub fn responses(mut self, mode: Mode) -> Self {
        self.responses = mode;
        self
    }

    /// The share of responses checked, from 0 to 1 (default 1). Sampling is deterministic: with
    /// 0.25, every fourth response of a route is checked.
    pub fn response_sample_rate(mut self, rate: f64) -> Self {
        self.response_sample_rate = rate;
        self
    }

    /// The largest request body (default 2 MiB). A larger `Content-Length` is answered `413`
    /// before anything is read; a body without one is cut off as soon as it passes the limit.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// The largest response body read to check it (default 2 MiB); larger ones pass unchecked.
    pub fn max_response_body_bytes(mut self, max: usize) -> Self {
        self.max_response_body_bytes = max;
        self
    }

    /// How many violations one problem lists (default 10); the rest are only counted.
    pub fn max_violations(mut self, max: usize) -> Self {
        self.max_violations = max;
        self
    }

    /// What to do with undocumented routes and methods (default [`Undocumented::Pass`]).
    pub fn undocumented(mut self, undocumented: Undocumented) -> Self {
        self.undocumented = undocumented;
        self
    }

    /// The largest gRPC request message for methods without their own (default 4 MiB).
    pub fn grpc_max_message_bytes(mut self, max: usize) -> Self {
        self.grpc_max_message_bytes = max;
        self
    }

    /// Modes for one route template, overriding the settings above.
    pub fn route(mut self, template: impl Into<String>, modes: RouteModes) -> Self {
        self.routes.insert(template.into(), modes);
        self
    }

    /// Replaces the shape of request problems (`400`, `413`, `415`, `422`, `404`, `405`): the
    /// function gets the rejection, with its violations, and returns the response to send.
    /// steadfast still marks the response as its own rejection for the other layers.
    pub fn problem_formatter(
        mut self,
        format: impl Fn(&Rejection) -> http::Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.problem = Some(Arc::new(format));
        self
    }

    /// Calls `hook` with every checked response that breaks its contract, in both modes, with
    /// the violations (pointer, keyword, message) the log line carries; for alerting, sampling
    /// bad payloads or failing a test. It runs on the response path: keep it quick. The
    /// `steadfast_contract_violations_total` counter (labels `route`, `direction`, `keyword`)
    /// counts the same violations whether or not a hook is set.
    pub fn on_response_violations(
        mut self,
        hook: impl Fn(&ResponseViolations<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_response_violations = Some(Arc::new(hook));
        self
    }

    /// Checks every setting; the error names the first one at fault.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setting at fault and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rate_ok = |rate: f64| (0.0..=1.0).contains(&rate);
        if !rate_ok(self.response_sample_rate) {
            return Err(ConfigError::new(
                "response_sample_rate",
                format!("{} is not between 0 and 1", self.response_sample_rate),
            ));
        }
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_response_body_bytes", self.max_response_body_bytes),
            ("max_violations", self.max_violations),
            ("grpc_max_message_bytes", self.grpc_max_message_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
        }
        for (template, modes) in &self.routes {
            if let Some(rate) = modes.response_sample_rate.filter(|&rate| !rate_ok(rate)) {
                return Err(ConfigError::new(
                    "routes.response_sample_rate",
                    format!("{rate} for `{template}` is not between 0 and 1"),
                ));
            }
        }
        Ok(())
    }
}
