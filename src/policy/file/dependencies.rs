//! `[dependencies.<name>]`: the outbound dependency policies of a policy file.

use serde::Deserialize;

use super::spec::{BreakerSpec, Dur, KeyError};
use crate::dependency::{DependencyConfig, HedgeConfig, HedgeDelay};
use crate::retry::{BudgetConfig, RetryConfig};
use crate::throttle::ThrottleConfig;
use crate::timeout::DeadlineFormat;

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct DependencySpec {
    attempt_timeout: Option<Dur>,
    deadline_header: Option<String>,
    max_concurrency: Option<usize>,
    #[serde(default)]
    pub(super) breaker: BreakerSpec,
    #[serde(default)]
    retry: RetrySpec,
    #[serde(default)]
    throttle: ThrottleSpec,
    #[serde(default)]
    hedge: HedgeSpec,
    #[serde(default)]
    objective: super::spec::ObjectiveSpec,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RetrySpec {
    enabled: Option<bool>,
    max_retries: Option<u32>,
    backoff_base: Option<Dur>,
    backoff_max: Option<Dur>,
    budget_ratio: Option<f64>,
    budget_min_per_second: Option<u32>,
    max_replay_bytes: Option<usize>,
    idempotent_grpc_methods: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct ThrottleSpec {
    enabled: Option<bool>,
    k: Option<f64>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct HedgeSpec {
    enabled: Option<bool>,
    percentile: Option<f64>,
    delay: Option<Dur>,
}

/// The reference rows of `[dependencies.<name>]`, in the order the parser takes them.
#[cfg(test)]
pub(super) fn fields() -> Vec<String> {
    use super::tests::fields_of;
    let mut keys = Vec::new();
    for field in fields_of::<DependencySpec>() {
        let nested: Option<&[&str]> = match *field {
            "breaker" => Some(fields_of::<BreakerSpec>()),
            "retry" => Some(fields_of::<RetrySpec>()),
            "throttle" => Some(fields_of::<ThrottleSpec>()),
            "hedge" => Some(fields_of::<HedgeSpec>()),
            "objective" => Some(fields_of::<super::spec::ObjectiveSpec>()),
            _ => None,
        };
        match nested {
            Some(nested) => keys.extend(nested.iter().map(|f| format!("dependency.{field}.{f}"))),
            None => keys.push(format!("dependency.{field}")),
        }
    }
    keys
}

impl DependencySpec {
    /// The dependency's service level, for the generated alerts.
    pub(super) fn objective(&self) -> crate::policy::Objective {
        self.objective.build()
    }

    pub(super) fn build(&self, name: &str) -> Result<DependencyConfig, KeyError> {
        let mut config = DependencyConfig::new(name);
        if let Some(Dur(timeout)) = self.attempt_timeout {
            config = config.attempt_timeout(timeout);
        }
        if let Some(header) = &self.deadline_header {
            let name = http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                (
                    "deadline_header",
                    format!("`{header}` is not a header name"),
                )
            })?;
            config = config.deadline_header(name, DeadlineFormat::Millis);
        }
        if let Some(max) = self.max_concurrency {
            config = config.max_concurrency(max);
        }
        // On by default around a dependency: the breaker's keys tune it, `enabled = false` drops it.
        let breaker = if self.breaker.enabled == Some(false) {
            None
        } else {
            let mut spec = self.breaker.clone();
            spec.enabled = Some(true);
            spec.build()?
        };
        config = config.breaker(breaker);
        config = config.retry(self.retry.build()?);
        config = config.throttle(self.throttle.build());
        config = config.hedge(self.hedge.build()?);
        config.validate().map_err(|error| {
            let key = match error.key() {
                "attempt_timeout" => "attempt_timeout",
                "max_concurrency" => "max_concurrency",
                "max_retries" => "retry.max_retries",
                "backoff" => "retry.backoff_base",
                "max_replay_bytes" => "retry.max_replay_bytes",
                "budget.ratio" => "retry.budget_ratio",
                "throttle.k" => "throttle.k",
                "hedge.delay" => "hedge.delay",
                "hedge.min_delay" => "hedge.delay",
                "failure_rate_threshold" => "breaker.failure_rate_threshold",
                "slow_call_rate_threshold" => "breaker.slow_call_rate_threshold",
                "minimum_calls" => "breaker.minimum_calls",
                "open_duration" => "breaker.open_duration",
                "half_open_permits" => "breaker.half_open_permits",
                "sliding_window" => "breaker.window_calls",
                _ => "breaker",
            };
            (key, error.reason().to_owned())
        })?;
        Ok(config)
    }
}

impl RetrySpec {
    fn build(&self) -> Result<Option<RetryConfig>, KeyError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let mut config = RetryConfig::new();
        if let Some(retries) = self.max_retries {
            config = config.max_retries(retries);
        }
        if self.backoff_base.is_some() || self.backoff_max.is_some() {
            let defaults = RetryConfig::new();
            let base = self.backoff_base.map_or(defaults.base, |Dur(d)| d);
            let cap = self.backoff_max.map_or(defaults.cap.max(base), |Dur(d)| d);
            config = config.backoff(base, cap);
        }
        let mut budget = BudgetConfig::new();
        if let Some(ratio) = self.budget_ratio {
            budget = budget.ratio(ratio);
        }
        if let Some(floor) = self.budget_min_per_second {
            budget = budget.min_per_second(floor);
        }
        config = config.budget(budget);
        if let Some(bytes) = self.max_replay_bytes {
            config = config.max_replay_bytes(bytes);
        }
        for method in self.idempotent_grpc_methods.iter().flatten() {
            if crate::core::grpc::method_key(method).is_none() {
                return Err((
                    "retry.idempotent_grpc_methods",
                    format!("`{method}` is not a gRPC method path such as \"/pkg.Service/Method\""),
                ));
            }
            config = config.idempotent_grpc_method(method.clone());
        }
        Ok(Some(config))
    }
}

impl ThrottleSpec {
    fn build(&self) -> Option<ThrottleConfig> {
        if self.enabled == Some(false) {
            return None;
        }
        let mut config = ThrottleConfig::new();
        if let Some(k) = self.k {
            config = config.k(k);
        }
        Some(config)
    }
}

impl HedgeSpec {
    fn build(&self) -> Result<Option<HedgeConfig>, KeyError> {
        let asked = self.percentile.is_some() || self.delay.is_some();
        if !self.enabled.unwrap_or(asked) {
            return Ok(None);
        }
        let delay = match (self.percentile, self.delay) {
            (Some(_), Some(_)) => {
                return Err(("hedge.delay", "set percentile or delay, not both".into()));
            }
            (Some(percentile), None) => HedgeDelay::Percentile(percentile),
            (None, Some(Dur(delay))) => HedgeDelay::Fixed(delay),
            (None, None) => HedgeDelay::Percentile(95.0),
        };
        Ok(Some(HedgeConfig::new().delay(delay)))
    }
}
