//! Policies from a TOML file (feature `config`).
//!
//! ```toml
//! [defaults]
//! timeout = "2s"
//!
//! [defaults.breaker]
//! failure_rate_threshold = 50
//! minimum_calls = 20
//!
//! [routes."/checkout"]
//! timeout = "300ms"
//! criticality = "critical_plus"
//!
//! [routes."GET /search"]
//! criticality = "sheddable"
//! shed.algorithm = "aimd"
//! ```
//!
//! A route's table overrides the defaults key by key. Durations are strings (`"250ms"`,
//! `"2s"`, `"1m 30s"`); unknown keys are errors.

mod dependencies;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::spec::{AlertSettings, Objective, Policies, Policy, PolicyError, RouteMatch};
use crate::breaker::{BreakerConfig, SlidingWindow};
use crate::core::Strict;
use crate::shed::{Aimd, Criticality, Gradient2, Knee, LimitAlgorithm, ShedConfig};

/// One key of the policy file, for the reference table (a test keeps the README's equal).
#[derive(Clone, Copy, Debug)]
pub struct ConfigKey {
    /// The key; those of a policy go in `[defaults]` or `[routes."<route>"]`.
    pub key: &'static str,
    /// Its default.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

const fn key(key: &'static str, default: &'static str, meaning: &'static str) -> ConfigKey {
    ConfigKey {
        key,
        default,
        meaning,
    }
}

/// Every key of the policy file.
pub const CONFIG_KEYS: &[ConfigKey] = &[
    key(
        "timeout",
        "\"15s\"",
        "The budget of each request; a caller's `grpc-timeout` may shorten it.",
    ),
    key(
        "criticality",
        "\"critical\"",
        "The class of the route's requests unless they carry one: `critical_plus`, `critical`, `sheddable_plus`, `sheddable`.",
    ),
    key(
        "breaker.enabled",
        "false",
        "Whether the route has a circuit breaker; setting any other `breaker` key turns it on too. Off by default: a route's own 5xx answers should not cut it off (put breakers around dependencies).",
    ),
    key(
        "breaker.failure_rate_threshold",
        "50",
        "Percentage of failed calls in the window that opens the breaker.",
    ),
    key(
        "breaker.slow_call_rate_threshold",
        "100",
        "Percentage of slow calls in the window that opens the breaker.",
    ),
    key(
        "breaker.slow_call_duration",
        "none",
        "Calls slower than this count as slow (must be shorter than `timeout`).",
    ),
    key(
        "breaker.window_calls",
        "100",
        "A count window: the last N calls.",
    ),
    key(
        "breaker.window_duration",
        "none",
        "A time window instead (at least twice `timeout`).",
    ),
    key(
        "breaker.minimum_calls",
        "100",
        "Calls the window needs before the breaker may open.",
    ),
    key(
        "breaker.open_duration",
        "\"60s\"",
        "How long the breaker stays open before probing.",
    ),
    key(
        "breaker.half_open_permits",
        "10",
        "Probe calls let through while half-open.",
    ),
    key(
        "shed.enabled",
        "true",
        "Whether the route has a load shedder.",
    ),
    key(
        "shed.algorithm",
        "\"knee\"",
        "`knee` (adaptive, needs no capacity setting), `gradient2` or `aimd` (adaptive, Netflix's), or `fixed`.",
    ),
    key(
        "shed.limit",
        "none",
        "The concurrency limit with `algorithm = \"fixed\"` (required then).",
    ),
    key(
        "shed.initial_limit",
        "10000",
        "The adaptive limit's starting point (gradient2 and aimd: 20).",
    ),
    key(
        "shed.min_limit",
        "2",
        "The adaptive limit's floor (gradient2 and aimd: 20).",
    ),
    key(
        "shed.max_limit",
        "10000",
        "The adaptive limit's ceiling (gradient2 and aimd: 200).",
    ),
    key(
        "shed.retry_after",
        "\"1s\"",
        "The `Retry-After` sent with shed requests.",
    ),
    key(
        "shed.criticality_header",
        "none",
        "A request header that may lower (never raise) a request's class.",
    ),
    key(
        "fault.delay",
        "none",
        "A delay injected before requests are served, for a drill (see `fault.delay_percent`).",
    ),
    key(
        "fault.delay_percent",
        "100",
        "The percentage of requests delayed by `fault.delay`.",
    ),
    key(
        "fault.abort_status",
        "none",
        "A status (4xx or 5xx) answered in the service's place, for a drill (gRPC: the matching code).",
    ),
    key(
        "fault.abort_percent",
        "100",
        "The percentage of requests answered with `fault.abort_status`.",
    ),
    key(
        "fault.header",
        "none",
        "Inject faults only into requests that carry this header.",
    ),
    key(
        "contract.requests",
        "\"enforce\"",
        "How the route's requests are checked against the contract: `enforce`, `report`, `off`.",
    ),
    key(
        "contract.responses",
        "\"report\"",
        "How its responses are checked: `enforce`, `report`, `off`.",
    ),
    key(
        "contract.response_sample_rate",
        "1.0",
        "The share of responses checked.",
    ),
    key(
        "objective.availability",
        "99.9",
        "The percentage of requests that must not fail with a server error, for the generated SLO alerts.",
    ),
    key(
        "objective.latency_percent",
        "95",
        "The percentage of requests that must be answered within `objective.latency_threshold`.",
    ),
    key(
        "objective.latency_threshold",
        "\"500ms\"",
        "The latency objective's threshold: a bucket boundary of the duration histograms (5ms ... 10s).",
    ),
    key(
        "objective.window",
        "\"30d\"",
        "The period the objectives are measured over (at least 3 days).",
    ),
    key(
        "objective.min_request_rate",
        "0.05",
        "Requests per second below which burn-rate alerts stay silent (the low-traffic guard).",
    ),
    key(
        "openapi.document",
        "none",
        "Top level: the OpenAPI 3.0/3.1 document (JSON or YAML) to check requests and responses against, relative to the policy file.",
    ),
    key(
        "openapi.max_body_bytes",
        "2097152",
        "Top level: the largest request body.",
    ),
    key(
        "openapi.undocumented",
        "\"pass\"",
        "Top level: routes the document lacks: `pass`, or `reject` (404/405).",
    ),
    key(
        "alerts.breaker_open_for",
        "\"5m\"",
        "Top level: a breaker open this long pages.",
    ),
    key(
        "alerts.shed_percent",
        "5",
        "Top level: shedding more than this percentage of a route's requests...",
    ),
    key(
        "alerts.shed_for",
        "\"10m\"",
        "Top level: ...for this long opens a ticket.",
    ),
    key(
        "alerts.timeout_percent",
        "5",
        "Top level: timeouts above this percentage of a route's requests...",
    ),
    key(
        "alerts.timeout_for",
        "\"10m\"",
        "Top level: ...for this long opens a ticket.",
    ),
    key(
        "alerts.runbook_url",
        "docs.rs guardrails page",
        "Top level: each alert's runbook link; `{alert}` becomes the alert's name.",
    ),
    key(
        "alerts.service_labels",
        "[\"job\"]",
        "Top level: the labels that tell services apart in one Prometheus; the rules aggregate per service and the dashboard picks one.",
    ),
    key(
        "dependency.attempt_timeout",
        "none",
        "In `[dependencies.<name>]`, a dependency policy (`steadfast::dependency`): each attempt's own time limit (the caller's deadline applies too).",
    ),
    key(
        "dependency.deadline_header",
        "none",
        "A header carrying each attempt's time left in milliseconds on plain HTTP calls (gRPC calls always get `grpc-timeout`).",
    ),
    key(
        "dependency.max_concurrency",
        "none",
        "At most this many attempts in flight (a bulkhead); those beyond fail fast as `overloaded`.",
    ),
    key(
        "dependency.breaker.enabled",
        "true",
        "Whether the dependency has a circuit breaker (on by default here); overload refusals (503, 429, `UNAVAILABLE`) do not count for it.",
    ),
    key(
        "dependency.breaker.failure_rate_threshold",
        "50",
        "As for routes: percentage of failed calls that opens the breaker.",
    ),
    key(
        "dependency.breaker.slow_call_rate_threshold",
        "100",
        "As for routes.",
    ),
    key(
        "dependency.breaker.slow_call_duration",
        "none",
        "As for routes.",
    ),
    key("dependency.breaker.window_calls", "100", "As for routes."),
    key(
        "dependency.breaker.window_duration",
        "none",
        "As for routes.",
    ),
    key("dependency.breaker.minimum_calls", "100", "As for routes."),
    key(
        "dependency.breaker.open_duration",
        "\"60s\"",
        "As for routes.",
    ),
    key(
        "dependency.breaker.half_open_permits",
        "10",
        "As for routes.",
    ),
    key(
        "dependency.retry.enabled",
        "true",
        "Whether idempotent calls (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, listed gRPC methods) are retried on 503, 429, `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, transport errors and attempt timeouts.",
    ),
    key(
        "dependency.retry.max_retries",
        "2",
        "Retries after the first attempt (0 to 10).",
    ),
    key(
        "dependency.retry.backoff_base",
        "\"25ms\"",
        "The first retry's backoff ceiling; it doubles per retry, with full jitter.",
    ),
    key(
        "dependency.retry.backoff_max",
        "\"250ms\"",
        "The backoff's cap.",
    ),
    key(
        "dependency.retry.budget_ratio",
        "0.1",
        "Retries (and hedges) allowed per call made over the last 10 s, shared by the dependency's callers.",
    ),
    key(
        "dependency.retry.budget_min_per_second",
        "10",
        "Retries allowed per second whatever the traffic.",
    ),
    key(
        "dependency.retry.max_replay_bytes",
        "65536",
        "The largest request body kept to send again; larger ones are sent once.",
    ),
    key(
        "dependency.retry.idempotent_grpc_methods",
        "[]",
        "gRPC methods (`\"/pkg.Service/Method\"`) safe to retry.",
    ),
    key(
        "dependency.throttle.enabled",
        "true",
        "Client-side adaptive throttling: drop attempts locally while the dependency refuses most of them.",
    ),
    key(
        "dependency.throttle.k",
        "2",
        "The throttle's K: nothing is dropped while the dependency accepts more than 1/K of the attempts.",
    ),
    key(
        "dependency.hedge.enabled",
        "false",
        "Hedging of idempotent calls: a second attempt when the first is slow; setting another `hedge` key turns it on.",
    ),
    key(
        "dependency.hedge.percentile",
        "95",
        "Hedge after this percentile of the dependency's recent latencies.",
    ),
    key(
        "dependency.hedge.delay",
        "none",
        "Hedge after this fixed delay instead.",
    ),
    key(
        "dependency.objective.availability",
        "99.9",
        "The share of attempts (percent) that must not fail (5xx, gRPC server errors, timeouts, transport errors), for the generated dependency alerts.",
    ),
    key(
        "dependency.objective.latency_percent",
        "95",
        "The share of attempts that must be answered within `dependency.objective.latency_threshold`.",
    ),
    key(
        "dependency.objective.latency_threshold",
        "\"500ms\"",
        "As for routes: a bucket boundary of the duration histograms.",
    ),
    key("dependency.objective.window", "\"30d\"", "As for routes."),
    key(
        "dependency.objective.min_request_rate",
        "0.05",
        "Attempts per second below which the dependency's burn-rate alerts stay silent.",
    ),
];

/// A duration written as a string: `"250ms"`, `"2s"`, `"1m 30s"`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map(Dur).map_err(|error| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration such as \"250ms\": {error}"
            ))
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    defaults: PolicySpec,
    #[serde(default)]
    routes: BTreeMap<String, PolicySpec>,
    openapi: Option<OpenApiSpec>,
    alerts: Option<AlertsSpec>,
    #[serde(default)]
    dependencies: BTreeMap<String, dependencies::DependencySpec>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct AlertsSpec {
    breaker_open_for: Option<Dur>,
    shed_percent: Option<f64>,
    shed_for: Option<Dur>,
    timeout_percent: Option<f64>,
    timeout_for: Option<Dur>,
    runbook_url: Option<String>,
    service_labels: Option<Vec<String>>,
}

impl AlertsSpec {
    fn build(&self) -> Result<AlertSettings, PolicyError> {
        let mut alerts = AlertSettings::default();
        if let Some(Dur(d)) = self.breaker_open_for {
            alerts.breaker_open_for = d;
        }
        if let Some(p) = self.shed_percent {
            alerts.shed_percent = p;
        }
        if let Some(Dur(d)) = self.shed_for {
            alerts.shed_for = d;
        }
        if let Some(p) = self.timeout_percent {
            alerts.timeout_percent = p;
        }
        if let Some(Dur(d)) = self.timeout_for {
            alerts.timeout_for = d;
        }
        if let Some(url) = &self.runbook_url {
            alerts.runbook_url = url.clone();
        }
        if let Some(labels) = &self.service_labels {
            alerts.service_labels = labels.clone();
        }
        alerts.validate()?;
        Ok(alerts)
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct ObjectiveSpec {
    availability: Option<f64>,
    latency_percent: Option<f64>,
    latency_threshold: Option<Dur>,
    window: Option<Dur>,
    min_request_rate: Option<f64>,
}

impl ObjectiveSpec {
    fn build(&self) -> Objective {
        let mut objective = Objective::default();
        if let Some(p) = self.availability {
            objective.availability = p;
        }
        if let Some(p) = self.latency_percent {
            objective.latency_percent = p;
        }
        if let Some(Dur(d)) = self.latency_threshold {
            objective.latency_threshold = d;
        }
        if let Some(Dur(d)) = self.window {
            objective.window = d;
        }
        if let Some(rate) = self.min_request_rate {
            objective.min_request_rate = rate;
        }
        objective
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    timeout: Option<Dur>,
    criticality: Option<String>,
    #[serde(default)]
    breaker: BreakerSpec,
    #[serde(default)]
    shed: ShedSpec,
    #[serde(default)]
    fault: FaultSpec,
    #[serde(default)]
    contract: ContractSpec,
    #[serde(default)]
    objective: ObjectiveSpec,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    delay: Option<Dur>,
    delay_percent: Option<f64>,
    abort_status: Option<u16>,
    abort_percent: Option<f64>,
    header: Option<String>,
}

impl FaultSpec {
    fn build(&self) -> Result<crate::fault::FaultConfig, KeyError> {
        let mut config = crate::fault::FaultConfig::new();
        if self.delay_percent.is_some() && self.delay.is_none() {
            return Err(("fault.delay_percent", "needs fault.delay".into()));
        }
        if self.abort_percent.is_some() && self.abort_status.is_none() {
            return Err(("fault.abort_percent", "needs fault.abort_status".into()));
        }
        if let Some(Dur(delay)) = self.delay {
            config = config.delay(delay, self.delay_percent.unwrap_or(100.0));
        }
        if let Some(status) = self.abort_status {
            let status = http::StatusCode::from_u16(status).map_err(|_| {
                (
                    "fault.abort_status",
                    format!("{status} is not an HTTP status"),
                )
            })?;
            config = config.abort(status, self.abort_percent.unwrap_or(100.0));
        }
        if let Some(header) = &self.header {
            let name = http::HeaderName::try_from(header.as_str())
                .map_err(|_| ("fault.header", format!("`{header}` is not a header name")))?;
            config = config.header(name);
        }
        config.validate().map_err(|error| {
            let key = match error.key() {
                "delay" => "fault.delay",
                "delay_percent" => "fault.delay_percent",
                "abort_status" => "fault.abort_status",
                _ => "fault.abort_percent",
            };
            (key, error.reason().to_owned())
        })?;
        Ok(config)
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct BreakerSpec {
    enabled: Option<bool>,
    failure_rate_threshold: Option<f64>,
    slow_call_rate_threshold: Option<f64>,
    slow_call_duration: Option<Dur>,
    window_calls: Option<u32>,
    window_duration: Option<Dur>,
    minimum_calls: Option<u32>,
    open_duration: Option<Dur>,
    half_open_permits: Option<u32>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct ShedSpec {
    enabled: Option<bool>,
    algorithm: Option<String>,
    limit: Option<u32>,
    initial_limit: Option<u32>,
    min_limit: Option<u32>,
    max_limit: Option<u32>,
    retry_after: Option<Dur>,
    criticality_header: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct ContractSpec {
    requests: Option<String>,
    responses: Option<String>,
    response_sample_rate: Option<f64>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "contract"), allow(dead_code))]
struct OpenApiSpec {
    document: Option<String>,
    max_body_bytes: Option<usize>,
    undocumented: Option<String>,
}

/// `route` overrides `defaults` key by key.
macro_rules! merge {
    ($route:expr, $defaults:expr, [$($field:ident),*]) => {
        $( if $route.$field.is_none() { $route.$field = $defaults.$field.clone(); } )*
    };
}

impl PolicySpec {
    fn over(mut self, defaults: &PolicySpec) -> PolicySpec {
        merge!(self, defaults, [timeout, criticality]);
        // A route that picks its own kind of window does not inherit the other kind.
        let own_window =
            self.breaker.window_calls.is_some() || self.breaker.window_duration.is_some();
        merge!(
            self.breaker,
            defaults.breaker,
            [
                enabled,
                failure_rate_threshold,
                slow_call_rate_threshold,
                slow_call_duration,
                minimum_calls,
                open_duration,
                half_open_permits
            ]
        );
        if !own_window {
            merge!(
                self.breaker,
                defaults.breaker,
                [window_calls, window_duration]
            );
        }
        merge!(
            self.shed,
            defaults.shed,
            [
                enabled,
                algorithm,
                limit,
                initial_limit,
                min_limit,
                max_limit,
                retry_after,
                criticality_header
            ]
        );
        merge!(
            self.fault,
            defaults.fault,
            [delay, delay_percent, abort_status, abort_percent, header]
        );
        merge!(
            self.contract,
            defaults.contract,
            [requests, responses, response_sample_rate]
        );
        self
    }

    fn build(&self, at: &str) -> Result<Policy, PolicyError> {
        let err = |key: &str, reason: String| PolicyError::new(format!("{at}.{key}"), reason);
        let mut policy = Policy::new().objective(self.objective.build());
        if let Some(Dur(budget)) = self.timeout {
            policy = policy.timeout(budget);
        }
        policy.breaker = self
            .breaker
            .build()
            .map_err(|(key, reason)| err(key, reason))?;
        policy.shed = self
            .shed
            .build()
            .map_err(|(key, reason)| err(key, reason))?;
        policy.fault = self
            .fault
            .build()
            .map_err(|(key, reason)| err(key, reason))?;
        if let Some(class) = &self.criticality {
            let class: Criticality = class.parse().map_err(|_| {
                err(
                    "criticality",
                    format!(
                        "`{class}` is not critical_plus, critical, sheddable_plus or sheddable"
                    ),
                )
            })?;
            if policy.shed.is_none() {
                return Err(err(
                    "criticality",
                    "needs a load shedder (shed.enabled = true)".into(),
                ));
            }
            policy = policy.criticality(class);
        }
        #[cfg(feature = "contract")]
        {
            policy.contract = self
                .contract
                .build()
                .map_err(|(key, reason)| err(key, reason))?;
        }
        Ok(policy)
    }
}

type KeyError = (&'static str, String);

impl BreakerSpec {
    fn build(&self) -> Result<Option<BreakerConfig>, KeyError> {
        // Off unless asked for: explicitly, or by setting any of its keys.
        let asked = self.failure_rate_threshold.is_some()
            || self.slow_call_rate_threshold.is_some()
            || self.slow_call_duration.is_some()
            || self.window_calls.is_some()
            || self.window_duration.is_some()
            || self.minimum_calls.is_some()
            || self.open_duration.is_some()
            || self.half_open_permits.is_some();
        if !self.enabled.unwrap_or(asked) {
            return Ok(None);
        }
        let mut config = BreakerConfig::new();
        if let Some(percent) = self.failure_rate_threshold {
            config = config.failure_rate_threshold(percent);
        }
        if let Some(percent) = self.slow_call_rate_threshold {
            config = config.slow_call_rate_threshold(percent);
        }
        if let Some(Dur(duration)) = self.slow_call_duration {
            config = config.slow_call_duration(duration);
        }
        match (self.window_calls, self.window_duration) {
            (Some(_), Some(_)) => {
                return Err((
                    "breaker.window_duration",
                    "set window_calls or window_duration, not both".into(),
                ));
            }
            (Some(calls), None) => config = config.sliding_window(SlidingWindow::count(calls)),
            (None, Some(Dur(span))) => config = config.sliding_window(SlidingWindow::time(span)),
            (None, None) => {}
        }
        if let Some(calls) = self.minimum_calls {
            config = config.minimum_calls(calls);
        }
        if let Some(Dur(duration)) = self.open_duration {
            config = config.open_duration(duration);
        }
        if let Some(permits) = self.half_open_permits {
            config = config.half_open_permits(permits);
        }
        Ok(Some(config))
    }
}

impl ShedSpec {
    fn build(&self) -> Result<Option<ShedConfig>, KeyError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let algorithm = match self.algorithm.as_deref().unwrap_or("knee") {
            "knee" => {
                let base = Knee::default();
                LimitAlgorithm::Knee(Knee {
                    initial: self.initial_limit.unwrap_or(base.initial),
                    min: self.min_limit.unwrap_or(base.min),
                    max: self.max_limit.unwrap_or(base.max),
                    ..base
                })
            }
            "fixed" => {
                let limit = self.limit.ok_or((
                    "shed.limit",
                    "required with algorithm = \"fixed\"".to_owned(),
                ))?;
                LimitAlgorithm::Fixed(limit)
            }
            "gradient2" => {
                let base = Gradient2::default();
                LimitAlgorithm::Gradient2(Gradient2 {
                    initial: self.initial_limit.unwrap_or(base.initial),
                    min: self.min_limit.unwrap_or(base.min),
                    max: self.max_limit.unwrap_or(base.max),
                    ..base
                })
            }
            "aimd" => {
                let base = Aimd::default();
                LimitAlgorithm::Aimd(Aimd {
                    initial: self.initial_limit.unwrap_or(base.initial),
                    min: self.min_limit.unwrap_or(base.min),
                    max: self.max_limit.unwrap_or(base.max),
                    ..base
                })
            }
            other => {
                return Err((
                    "shed.algorithm",
                    format!("`{other}` is not knee, gradient2, aimd or fixed"),
                ));
            }
        };
        if self.limit.is_some() && !matches!(algorithm, LimitAlgorithm::Fixed(_)) {
            return Err(("shed.limit", "only with algorithm = \"fixed\"; adaptive limits use initial_limit, min_limit and max_limit".into()));
        }
        let mut config = ShedConfig::new().algorithm(algorithm);
        if let Some(Dur(after)) = self.retry_after {
            config = config.retry_after(after);
        }
        if let Some(header) = &self.criticality_header {
            let name = http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                (
                    "shed.criticality_header",
                    format!("`{header}` is not a header name"),
                )
            })?;
            config = config.criticality_header(name, Criticality::Critical);
        }
        Ok(Some(config))
    }
}

#[cfg(feature = "contract")]
fn mode(
    key: &'static str,
    text: &Option<String>,
) -> Result<Option<crate::contract::Mode>, KeyError> {
    use crate::contract::Mode;
    match text.as_deref() {
        None => Ok(None),
        Some("enforce") => Ok(Some(Mode::Enforce)),
        Some("report") => Ok(Some(Mode::Report)),
        Some("off") => Ok(Some(Mode::Off)),
        Some(other) => Err((key, format!("`{other}` is not enforce, report or off"))),
    }
}

#[cfg(feature = "contract")]
impl ContractSpec {
    fn build(&self) -> Result<crate::contract::RouteModes, KeyError> {
        let mut modes = crate::contract::RouteModes::new();
        if let Some(requests) = mode("contract.requests", &self.requests)? {
            modes = modes.requests(requests);
        }
        if let Some(responses) = mode("contract.responses", &self.responses)? {
            modes = modes.responses(responses);
        }
        if let Some(rate) = self.response_sample_rate {
            modes = modes.response_sample_rate(rate);
        }
        Ok(modes)
    }
}

/// The key path of the TOML text at `offset`: the enclosing table and the key on that line.
fn key_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    if line.starts_with('[') {
        return line
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_owned();
    }
    let key = line.split('=').next().unwrap_or("").trim();
    match table {
        Some(table) if !key.is_empty() => format!("{table}.{key}"),
        Some(table) => table.to_owned(),
        None => key.to_owned(),
    }
}

/// Policies read from a TOML file, and the contract it names (feature `contract`).
pub struct PolicyFile {
    policies: Policies,
    alerts: AlertSettings,
    #[cfg(feature = "contract")]
    contract: Option<(crate::contract::Contract, crate::contract::ContractConfig)>,
    dependencies: BTreeMap<String, crate::dependency::DependencyConfig>,
    dependency_objectives: BTreeMap<String, Objective>,
}

impl std::fmt::Debug for PolicyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyFile")
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl PolicyFile {
    /// Reads and checks the policy file at `path`; `openapi.document` is relative to it.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the key path (`file` if the file cannot be read).
    pub fn load(path: impl AsRef<Path>) -> Result<PolicyFile, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| {
            PolicyError::new("file", format!("cannot read {}: {error}", path.display()))
        })?;
        Self::parse_in(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Reads and checks policy text; `openapi.document` is relative to the working directory.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the key path.
    pub fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
        Self::parse_in(text, Path::new("."))
    }

    fn parse_in(text: &str, _base: &Path) -> Result<PolicyFile, PolicyError> {
        let spec: FileSpec = toml::from_str(text).map_err(|error| {
            let path = error
                .span()
                .map_or_else(String::new, |span| key_path_at(text, span.start));
            PolicyError::new(path, error.message().trim().to_owned())
        })?;
        let mut policies = Policies::new(spec.defaults.build("defaults")?);
        for (key, route_spec) in &spec.routes {
            let at = format!("routes.\"{key}\"");
            let route = RouteMatch::parse(key).map_err(|reason| PolicyError::new(&at, reason))?;
            let policy = route_spec.clone().over(&spec.defaults).build(&at)?;
            policies.set(route, policy);
        }
        policies.validate()?;
        #[cfg(feature = "contract")]
        let contract = match &spec.openapi {
            Some(openapi) => Some(openapi.load(_base)?),
            None => None,
        };
        #[cfg(not(feature = "contract"))]
        if spec.openapi.is_some() {
            return Err(PolicyError::new(
                "openapi",
                "contract validation needs steadfast's `contract` feature",
            ));
        }
        let alerts = spec
            .alerts
            .as_ref()
            .map_or_else(|| Ok(AlertSettings::default()), AlertsSpec::build)?;
        let mut dependencies = BTreeMap::new();
        let mut dependency_objectives = BTreeMap::new();
        for (name, dependency) in &spec.dependencies {
            let at = format!("dependencies.{name}");
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"_-.".contains(&byte));
            if !valid {
                return Err(PolicyError::new(
                    &at,
                    "a dependency's name is 1 to 64 letters, digits, `_`, `-` or `.` (it becomes a metric label)",
                ));
            }
            let config = dependency
                .build(name)
                .map_err(|(key, reason)| PolicyError::new(format!("{at}.{key}"), reason))?;
            let objective = dependency.objective();
            objective.validate(&at)?;
            dependencies.insert(name.clone(), config);
            dependency_objectives.insert(name.clone(), objective);
        }
        Ok(PolicyFile {
            policies,
            alerts,
            dependencies,
            dependency_objectives,
            #[cfg(feature = "contract")]
            contract,
        })
    }

    /// The thresholds of the generated protection alerts (`[alerts]`).
    pub fn alerts(&self) -> &AlertSettings {
        &self.alerts
    }

    /// The dependency policies (`[dependencies.<name>]`), by name.
    pub fn dependencies(&self) -> &BTreeMap<String, crate::dependency::DependencyConfig> {
        &self.dependencies
    }

    /// The service level of each dependency (`[dependencies.<name>.objective]`, else the
    /// defaults of [`Objective`]), for the alerts `steadfast::guardrails` generates.
    pub fn dependency_objectives(&self) -> &BTreeMap<String, Objective> {
        &self.dependency_objectives
    }

    /// The layer for the dependency `name`, if the file has a policy for it.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] at `dependencies.<name>` when the file has no such dependency.
    pub fn dependency_layer(
        &self,
        name: &str,
    ) -> Result<crate::dependency::DependencyLayer, PolicyError> {
        let config = self.dependencies.get(name).ok_or_else(|| {
            PolicyError::new(
                format!("dependencies.{name}"),
                "the policy file has no such dependency",
            )
        })?;
        crate::dependency::DependencyLayer::new(config.clone())
            .map_err(|error| PolicyError::new(format!("dependencies.{name}"), error.to_string()))
    }

    /// The layer for the dependency `name`: the file's policy if it has one, else the default
    /// dependency policy marked undeclared, whose calls `strict` serves silently, reports or
    /// refuses (see [`DependencyConfig::undeclared`](crate::dependency::DependencyConfig::undeclared)).
    /// The [reality map](crate::map) lists undeclared dependencies that were called;
    /// [`map::undeclared`](crate::map::undeclared) is the list a test run can fail on.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] at `dependencies.<name>` when the file's policy for it is invalid, or
    /// the name is empty.
    pub fn dependency_layer_or_default(
        &self,
        name: &str,
        strict: Strict,
    ) -> Result<crate::dependency::DependencyLayer, PolicyError> {
        if self.dependencies.contains_key(name) {
            return self.dependency_layer(name);
        }
        crate::dependency::DependencyLayer::new(
            crate::dependency::DependencyConfig::new(name).undeclared(strict),
        )
        .map_err(|error| PolicyError::new(format!("dependencies.{name}"), error.to_string()))
    }

    /// The policies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The policies alone, for [`PolicyHandle::reload`](super::PolicyHandle::reload), which
    /// leaves the contract as it is; [`PolicyHandle::reload_file`](super::PolicyHandle::reload_file)
    /// applies the file's `[openapi]` too.
    pub fn into_policies(self) -> Policies {
        self.policies
    }

    #[cfg(feature = "contract")]
    pub(crate) fn into_parts(
        self,
    ) -> (
        Policies,
        Option<(crate::contract::Contract, crate::contract::ContractConfig)>,
    ) {
        (self.policies, self.contract)
    }

    /// The layer applying these policies (and checking the contract, if the file names one).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] from the contract settings.
    pub fn into_layer(self) -> Result<super::PolicyLayer, PolicyError> {
        #[cfg(feature = "contract")]
        if let Some((contract, config)) = self.contract {
            return super::PolicyLayer::with_file_contract(self.policies, contract, config);
        }
        super::PolicyLayer::new(self.policies)
    }
}

#[cfg(feature = "contract")]
impl OpenApiSpec {
    fn load(
        &self,
        base: &Path,
    ) -> Result<(crate::contract::Contract, crate::contract::ContractConfig), PolicyError> {
        use crate::contract::{Contract, ContractConfig, Undocumented};
        let document = self
            .document
            .as_ref()
            .ok_or_else(|| PolicyError::new("openapi.document", "required in [openapi]"))?;
        let path = base.join(document);
        let text = std::fs::read_to_string(&path).map_err(|error| {
            PolicyError::new(
                "openapi.document",
                format!("cannot read {}: {error}", path.display()),
            )
        })?;
        let contract = Contract::from_openapi(&text)
            .map_err(|error| PolicyError::new("openapi.document", error.to_string()))?;
        let mut config = ContractConfig::default();
        if let Some(max) = self.max_body_bytes {
            config = config.max_body_bytes(max);
        }
        match self.undocumented.as_deref() {
            None | Some("pass") => {}
            Some("reject") => config = config.undocumented(Undocumented::Reject),
            Some(other) => {
                return Err(PolicyError::new(
                    "openapi.undocumented",
                    format!("`{other}` is not pass or reject"),
                ));
            }
        }
        Ok((contract, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{self, Deserializer, Visitor};

    /// The field names a `Deserialize` struct accepts, captured from `deserialize_struct`.
    pub(super) fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        struct Capture(Option<&'static [&'static str]>);
        #[derive(Debug)]
        struct Captured;
        impl std::fmt::Display for Captured {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("captured")
            }
        }
        impl std::error::Error for Captured {}
        impl de::Error for Captured {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Captured
            }
        }
        impl<'de> Deserializer<'de> for &mut Capture {
            type Error = Captured;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
                Err(Captured)
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Captured> {
                self.0 = Some(fields);
                Err(Captured)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut capture = Capture(None);
        let _ = T::deserialize(&mut capture);
        capture.0.expect("a struct")
    }

    #[test]
    fn the_key_reference_lists_exactly_the_keys_the_parser_accepts() {
        let mut accepted: Vec<String> = Vec::new();
        for field in fields_of::<PolicySpec>() {
            match *field {
                "breaker" => accepted.extend(
                    fields_of::<BreakerSpec>()
                        .iter()
                        .map(|f| format!("breaker.{f}")),
                ),
                "shed" => {
                    accepted.extend(fields_of::<ShedSpec>().iter().map(|f| format!("shed.{f}")))
                }
                "fault" => accepted.extend(
                    fields_of::<FaultSpec>()
                        .iter()
                        .map(|f| format!("fault.{f}")),
                ),
                "contract" => accepted.extend(
                    fields_of::<ContractSpec>()
                        .iter()
                        .map(|f| format!("contract.{f}")),
                ),
                "objective" => accepted.extend(
                    fields_of::<ObjectiveSpec>()
                        .iter()
                        .map(|f| format!("objective.{f}")),
                ),
                other => accepted.push(other.to_owned()),
            }
        }
        accepted.extend(
            fields_of::<OpenApiSpec>()
                .iter()
                .map(|f| format!("openapi.{f}")),
        );
        accepted.extend(
            fields_of::<AlertsSpec>()
                .iter()
                .map(|f| format!("alerts.{f}")),
        );
        accepted.extend(dependencies::fields());
        let listed: Vec<String> = CONFIG_KEYS.iter().map(|k| k.key.to_owned()).collect();
        assert_eq!(listed, accepted);
        assert_eq!(
            fields_of::<FileSpec>(),
            ["defaults", "routes", "openapi", "alerts", "dependencies"]
        );
    }

    #[test]
    fn key_paths_are_found_from_error_offsets() {
        let text = "[defaults]\ntimeout = 5\n\n[routes.\"/a\".breaker]\nminimum_calls = \"x\"\n";
        assert_eq!(
            key_path_at(text, text.find("5").unwrap()),
            "defaults.timeout"
        );
        assert_eq!(
            key_path_at(text, text.find("\"x\"").unwrap()),
            "routes.\"/a\".breaker.minimum_calls"
        );
    }
}
