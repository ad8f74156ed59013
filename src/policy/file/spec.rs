//! The policy file as serde reads it, and its conversion into policies: one `*Spec` struct
//! per table, unknown keys refused, each `build` naming the key a refusal is about.
//!
//! Long on purpose: one serde struct per table of the file and the `build` that turns it into
//! settings, in the file's order; they share `Dur` and the key-path errors.

use std::collections::BTreeMap;
#[cfg(feature = "contract")]
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::dependencies;
use crate::breaker::{BreakerConfig, SlidingWindow};
use crate::core::grpc::Code;
use crate::policy::spec::{AlertSettings, Objective, Policy, PolicyError};
use crate::shed::{Aimd, Criticality, Gradient2, Knee, LimitAlgorithm, QueueConfig, ShedConfig};
use crate::timeout::{DeadlineFormat, OnInvalidDeadline, TimeoutConfig};

/// A duration written as a string: `"250ms"`, `"2s"`, `"1m 30s"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Dur(pub(super) Duration);

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
pub(super) struct FileSpec {
    #[serde(default)]
    pub(super) defaults: PolicySpec,
    #[serde(default)]
    pub(super) routes: BTreeMap<String, PolicySpec>,
    pub(super) openapi: Option<OpenApiSpec>,
    pub(super) alerts: Option<AlertsSpec>,
    #[serde(default)]
    pub(super) dependencies: BTreeMap<String, dependencies::DependencySpec>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertsSpec {
    breaker_open_for: Option<Dur>,
    shed_percent: Option<f64>,
    shed_for: Option<Dur>,
    timeout_percent: Option<f64>,
    timeout_for: Option<Dur>,
    runbook_url: Option<String>,
    service_labels: Option<Vec<String>>,
}

impl AlertsSpec {
    pub(super) fn build(&self) -> Result<AlertSettings, PolicyError> {
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
pub(super) struct ObjectiveSpec {
    availability: Option<f64>,
    latency_percent: Option<f64>,
    latency_threshold: Option<Dur>,
    window: Option<Dur>,
    min_request_rate: Option<f64>,
}

impl ObjectiveSpec {
    pub(super) fn build(&self) -> Objective {
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
pub(super) struct PolicySpec {
    timeout: Option<Dur>,
    #[serde(default)]
    deadline: DeadlineSpec,
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

/// How the route reads its callers' deadlines and answers when time runs out (the rest of the
/// timeout settings; `timeout` is the budget).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct DeadlineSpec {
    cap: Option<Dur>,
    grpc_timeout: Option<bool>,
    http_header: Option<String>,
    http_format: Option<String>,
    on_invalid: Option<String>,
    timeout_status: Option<u16>,
    publish: Option<bool>,
}

impl DeadlineSpec {
    /// The timeout settings: the budget `timeout` (the default one when unset) and these keys.
    pub(super) fn build(&self, budget: Option<Duration>) -> Result<TimeoutConfig, KeyError> {
        let mut config = match budget {
            Some(budget) => TimeoutConfig::new(budget),
            None => Policy::new().timeout_settings().clone(),
        };
        if let Some(Dur(cap)) = self.cap {
            config = config.cap(cap);
        }
        if let Some(honor) = self.grpc_timeout {
            config = config.honor_grpc_timeout(honor);
        }
        let format = match self.http_format.as_deref() {
            None | Some("millis") => DeadlineFormat::Millis,
            Some("grpc_timeout") => DeadlineFormat::GrpcTimeout,
            Some(other) => {
                return Err((
                    "deadline.http_format",
                    format!("`{other}` is not millis or grpc_timeout"),
                ));
            }
        };
        match &self.http_header {
            Some(header) => {
                let name = http::HeaderName::try_from(header.as_str()).map_err(|_| {
                    (
                        "deadline.http_header",
                        format!("`{header}` is not a header name"),
                    )
                })?;
                config = config.http_deadline_header(name, format);
            }
            None if self.http_format.is_some() => {
                return Err(("deadline.http_format", "needs deadline.http_header".into()));
            }
            None => {}
        }
        match self.on_invalid.as_deref() {
            None => {}
            Some("ignore") => config = config.on_invalid_deadline(OnInvalidDeadline::Ignore),
            Some("reject") => config = config.on_invalid_deadline(OnInvalidDeadline::Reject),
            Some(other) => {
                return Err((
                    "deadline.on_invalid",
                    format!("`{other}` is not ignore or reject"),
                ));
            }
        }
        if let Some(status) = self.timeout_status {
            let status = http::StatusCode::from_u16(status).map_err(|_| {
                (
                    "deadline.timeout_status",
                    format!("{status} is not an HTTP status"),
                )
            })?;
            config = config.timeout_status(status);
        }
        if let Some(publish) = self.publish {
            config = config.publish_deadline(publish);
        }
        config.validate().map_err(|error| {
            let key = match error.key() {
                "budget" => "timeout",
                "cap" => "deadline.cap",
                _ => "deadline.timeout_status",
            };
            (key, error.reason().to_owned())
        })?;
        Ok(config)
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FaultSpec {
    delay: Option<Dur>,
    delay_percent: Option<f64>,
    abort_status: Option<u16>,
    abort_percent: Option<f64>,
    header: Option<String>,
}

impl FaultSpec {
    pub(super) fn build(&self) -> Result<crate::fault::FaultConfig, KeyError> {
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
pub(super) struct BreakerSpec {
    pub(super) enabled: Option<bool>,
    failure_rate_threshold: Option<f64>,
    slow_call_rate_threshold: Option<f64>,
    slow_call_duration: Option<Dur>,
    window_calls: Option<u32>,
    window_duration: Option<Dur>,
    minimum_calls: Option<u32>,
    open_duration: Option<Dur>,
    open_backoff: Option<f64>,
    open_max: Option<Dur>,
    open_jitter: Option<f64>,
    half_open_permits: Option<u32>,
    half_open_max_wait: Option<Dur>,
    automatic_half_open: Option<bool>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct ShedSpec {
    enabled: Option<bool>,
    algorithm: Option<String>,
    limit: Option<u32>,
    initial_limit: Option<u32>,
    min_limit: Option<u32>,
    max_limit: Option<u32>,
    retry_after: Option<Dur>,
    criticality_header: Option<String>,
    sample_window: Option<Dur>,
    min_samples: Option<u32>,
    grpc_code: Option<String>,
    #[serde(default)]
    admit_below: ClassFractions,
    #[serde(default)]
    guaranteed_share: ClassFractions,
    #[serde(default)]
    queue: QueueSpec,
}

/// A fraction per criticality class (`shed.admit_below`, `shed.guaranteed_share`).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct ClassFractions {
    critical_plus: Option<f64>,
    critical: Option<f64>,
    sheddable_plus: Option<f64>,
    sheddable: Option<f64>,
}

impl ClassFractions {
    /// The classes given a fraction, with it.
    fn given(&self) -> impl Iterator<Item = (Criticality, f64)> {
        [
            (Criticality::CriticalPlus, self.critical_plus),
            (Criticality::Critical, self.critical),
            (Criticality::SheddablePlus, self.sheddable_plus),
            (Criticality::Sheddable, self.sheddable),
        ]
        .into_iter()
        .filter_map(|(class, fraction)| Some((class, fraction?)))
    }
}

/// The shedder's queue: off unless asked for (`enabled`, or any of its keys).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueSpec {
    enabled: Option<bool>,
    max_len: Option<usize>,
    max_wait: Option<Dur>,
    target_wait: Option<Dur>,
    interval: Option<Dur>,
}

impl QueueSpec {
    fn build(&self) -> Option<QueueConfig> {
        let asked = self.max_len.is_some()
            || self.max_wait.is_some()
            || self.target_wait.is_some()
            || self.interval.is_some();
        if !self.enabled.unwrap_or(asked) {
            return None;
        }
        let base = QueueConfig::default();
        Some(QueueConfig {
            max_len: self.max_len.unwrap_or(base.max_len),
            max_wait: self.max_wait.map_or(base.max_wait, |Dur(d)| d),
            target_wait: self.target_wait.map_or(base.target_wait, |Dur(d)| d),
            interval: self.interval.map_or(base.interval, |Dur(d)| d),
        })
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct ContractSpec {
    requests: Option<String>,
    responses: Option<String>,
    response_sample_rate: Option<f64>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "contract"), allow(dead_code))]
pub(super) struct OpenApiSpec {
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
    pub(super) fn over(mut self, defaults: &PolicySpec) -> PolicySpec {
        merge!(self, defaults, [timeout, criticality]);
        merge!(
            self.deadline,
            defaults.deadline,
            [
                cap,
                grpc_timeout,
                http_header,
                http_format,
                on_invalid,
                timeout_status,
                publish
            ]
        );
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
                open_backoff,
                open_max,
                open_jitter,
                half_open_permits,
                half_open_max_wait,
                automatic_half_open
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
                criticality_header,
                sample_window,
                min_samples,
                grpc_code
            ]
        );
        merge!(
            self.shed.admit_below,
            defaults.shed.admit_below,
            [critical_plus, critical, sheddable_plus, sheddable]
        );
        merge!(
            self.shed.guaranteed_share,
            defaults.shed.guaranteed_share,
            [critical_plus, critical, sheddable_plus, sheddable]
        );
        merge!(
            self.shed.queue,
            defaults.shed.queue,
            [enabled, max_len, max_wait, target_wait, interval]
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

    pub(super) fn build(&self, at: &str) -> Result<Policy, PolicyError> {
        let err = |key: &str, reason: String| PolicyError::at(format!("{at}.{key}"), reason);
        let mut policy = Policy::new().objective(self.objective.build());
        let timeout = self
            .deadline
            .build(self.timeout.map(|Dur(budget)| budget))
            .map_err(|(key, reason)| err(key, reason))?;
        policy = policy.timeout_config(timeout);
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

pub(super) type KeyError = (&'static str, String);

impl BreakerSpec {
    pub(super) fn build(&self) -> Result<Option<BreakerConfig>, KeyError> {
        // Off unless asked for: explicitly, or by setting any of its keys.
        let asked = self.failure_rate_threshold.is_some()
            || self.slow_call_rate_threshold.is_some()
            || self.slow_call_duration.is_some()
            || self.window_calls.is_some()
            || self.window_duration.is_some()
            || self.minimum_calls.is_some()
            || self.open_duration.is_some()
            || self.open_backoff.is_some()
            || self.open_max.is_some()
            || self.open_jitter.is_some()
            || self.half_open_permits.is_some()
            || self.half_open_max_wait.is_some()
            || self.automatic_half_open.is_some();
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
        if self.open_backoff.is_some() || self.open_max.is_some() {
            let base = BreakerConfig::new();
            config = config.open_backoff(
                self.open_backoff.unwrap_or(base.open_backoff),
                self.open_max.map_or(base.open_max, |Dur(max)| max),
            );
        }
        if let Some(fraction) = self.open_jitter {
            config = config.open_jitter(fraction);
        }
        if let Some(permits) = self.half_open_permits {
            config = config.half_open_permits(permits);
        }
        if let Some(Dur(wait)) = self.half_open_max_wait {
            config = config.half_open_max_wait(Some(wait));
        }
        if let Some(automatic) = self.automatic_half_open {
            config = config.automatic_half_open(automatic);
        }
        Ok(Some(config))
    }
}

impl ShedSpec {
    pub(super) fn build(&self) -> Result<Option<ShedConfig>, KeyError> {
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
        if self.sample_window.is_some() || self.min_samples.is_some() {
            let base = ShedConfig::new();
            config = config.sample_window(
                self.sample_window.map_or(base.window, |Dur(d)| d),
                self.min_samples.unwrap_or(base.min_samples),
            );
        }
        if let Some(code) = &self.grpc_code {
            config = config.grpc_code(match code.as_str() {
                "unavailable" => Code::Unavailable,
                "resource_exhausted" => Code::ResourceExhausted,
                other => {
                    return Err((
                        "shed.grpc_code",
                        format!("`{other}` is not unavailable or resource_exhausted"),
                    ));
                }
            });
        }
        for (class, fraction) in self.admit_below.given() {
            config = config.admit_below(class, fraction);
        }
        for (class, fraction) in self.guaranteed_share.given() {
            config = config.guaranteed_share(class, fraction);
        }
        if let Some(queue) = self.queue.build() {
            config = config.queue(queue);
        }
        // The queue's keys are named here; the other settings where the policies are checked.
        if let Err(error) = config.validate() {
            let key = match error.key() {
                "queue.max_len" => Some("shed.queue.max_len"),
                "queue.max_wait" => Some("shed.queue.max_wait"),
                "queue.target_wait" => Some("shed.queue.target_wait"),
                "queue.interval" => Some("shed.queue.interval"),
                _ => None,
            };
            if let Some(key) = key {
                return Err((key, error.reason().to_owned()));
            }
        }
        Ok(Some(config))
    }
}

#[cfg(feature = "contract")]
pub(super) fn mode(
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
    pub(super) fn build(&self) -> Result<crate::contract::RouteModes, KeyError> {
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

#[cfg(feature = "contract")]
impl OpenApiSpec {
    pub(super) fn load(
        &self,
        base: &Path,
    ) -> Result<(crate::contract::Contract, crate::contract::ContractConfig), PolicyError> {
        use crate::contract::{Contract, ContractConfig, Undocumented};
        let document = self
            .document
            .as_ref()
            .ok_or_else(|| PolicyError::at("openapi.document", "required in [openapi]"))?;
        let path = base.join(document);
        let text = std::fs::read_to_string(&path).map_err(|error| {
            PolicyError::at(
                "openapi.document",
                format!("cannot read {}: {error}", path.display()),
            )
        })?;
        let contract = Contract::from_openapi(&text)
            .map_err(|error| PolicyError::at("openapi.document", error.to_string()))?;
        let mut config = ContractConfig::default();
        if let Some(max) = self.max_body_bytes {
            config = config.max_body_bytes(max);
        }
        match self.undocumented.as_deref() {
            None | Some("pass") => {}
            Some("reject") => config = config.undocumented(Undocumented::Reject),
            Some(other) => {
                return Err(PolicyError::at(
                    "openapi.undocumented",
                    format!("`{other}` is not pass or reject"),
                ));
            }
        }
        Ok((contract, config))
    }
}
