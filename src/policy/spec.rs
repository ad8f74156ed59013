//! Policies: what each route gets, built in code (or read from a file by [`super::file`]).
//!
//! Long because of its unit tests and the builder's documented setters, one per setting.

use std::fmt;
use std::time::Duration;

use http::Method;

use crate::breaker::{BreakerConfig, SlidingWindow};
use crate::core::ConfigError;
use crate::core::telemetry::DURATION_BUCKETS;
use crate::shed::{Criticality, ShedConfig};
use crate::timeout::TimeoutConfig;

/// The default budget of a request: Envoy's default route timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// A policy that cannot work, at its key path in the configuration file's terms
/// (`defaults.breaker.minimum_calls`, `routes."POST /orders".shed.min_limit`), or `file` for a
/// file that cannot be read: the crate's one settings error, [`ConfigError`].
pub type PolicyError = crate::core::ConfigError;

/// The service level a route promises, for the alerts and dashboards that
/// `steadfast::guardrails` generates from the policies.
#[derive(Clone, Debug, PartialEq)]
pub struct Objective {
    /// The share of requests that must not fail with a 5xx (or a gRPC server error), in
    /// percent. Default 99.9.
    pub availability: f64,
    /// The share of requests that must be answered within [`latency_threshold`], in percent.
    /// Default 95.
    ///
    /// [`latency_threshold`]: Objective::latency_threshold
    pub latency_percent: f64,
    /// The latency objective's threshold; it must be a bucket boundary of the duration
    /// histograms (OpenTelemetry's: 5, 10, 25, 50, 75, 100, 250, 500, 750 ms, 1, 2.5, 5, 7.5,
    /// 10 s). Default 500 ms.
    pub latency_threshold: Duration,
    /// The period the objective is measured over. Default 30 days.
    pub window: Duration,
    /// Below this many requests per second (over the alert's long window) burn-rate alerts stay
    /// silent: on a quiet route one failure is a large share. Default 0.05 (3 a minute).
    pub min_request_rate: f64,
}

impl Default for Objective {
    fn default() -> Self {
        Self {
            availability: 99.9,
            latency_percent: 95.0,
            latency_threshold: Duration::from_millis(500),
            window: Duration::from_secs(30 * 24 * 3600),
            min_request_rate: 0.05,
        }
    }
}

impl Objective {
    pub(crate) fn validate(&self, at: &str) -> Result<(), PolicyError> {
        let percent = |key: &str, value: f64| {
            if value > 0.0 && value < 100.0 {
                Ok(())
            } else {
                Err(PolicyError::at(
                    format!("{at}.objective.{key}"),
                    format!("{value} is not a percentage strictly between 0 and 100"),
                ))
            }
        };
        percent("availability", self.availability)?;
        percent("latency_percent", self.latency_percent)?;
        let threshold = self.latency_threshold.as_secs_f64();
        if !DURATION_BUCKETS
            .iter()
            .any(|b| (b - threshold).abs() < 1e-9)
        {
            return Err(PolicyError::at(
                format!("{at}.objective.latency_threshold"),
                format!(
                    "{:?} is not a bucket boundary of the duration histograms ({})",
                    self.latency_threshold,
                    DURATION_BUCKETS
                        .iter()
                        .map(|b| format!("{}ms", b * 1000.0))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if self.window < Duration::from_secs(3 * 24 * 3600) {
            return Err(PolicyError::at(
                format!("{at}.objective.window"),
                "at least 3 days: the slowest burn-rate alert looks back 3 days",
            ));
        }
        if !(self.min_request_rate >= 0.0 && self.min_request_rate.is_finite()) {
            return Err(PolicyError::at(
                format!("{at}.objective.min_request_rate"),
                "a rate of requests per second, 0 or more",
            ));
        }
        Ok(())
    }
}

/// Thresholds of the protection alerts that `steadfast::guardrails` generates.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertSettings {
    /// A breaker open this long pages. Default 5 minutes.
    pub breaker_open_for: Duration,
    /// Shedding more than this percentage of a route's requests... Default 5.
    pub shed_percent: f64,
    /// ...for this long opens a ticket. Default 10 minutes.
    pub shed_for: Duration,
    /// Timeouts (and spent deadlines) above this percentage of a route's requests... Default 5.
    pub timeout_percent: f64,
    /// ...for this long opens a ticket. Default 10 minutes.
    pub timeout_for: Duration,
    /// The runbook link of each alert; `{alert}` is replaced by the alert's name.
    pub runbook_url: String,
    /// The labels that tell services apart in one Prometheus: every generated rule aggregates
    /// per service (`sum by (job, route)`), and the dashboard has a variable for each. Default
    /// `["job"]`.
    pub service_labels: Vec<String>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            breaker_open_for: Duration::from_secs(300),
            shed_percent: 5.0,
            shed_for: Duration::from_secs(600),
            timeout_percent: 5.0,
            timeout_for: Duration::from_secs(600),
            runbook_url: "https://docs.rs/steadfast/latest/steadfast/guardrails/#{alert}".into(),
            service_labels: vec!["job".to_owned()],
        }
    }
}

impl AlertSettings {
    /// Checks the thresholds.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the key (`alerts.shed_percent`, ...).
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (key, value) in [
            ("shed_percent", self.shed_percent),
            ("timeout_percent", self.timeout_percent),
        ] {
            if !(value > 0.0 && value <= 100.0) {
                return Err(PolicyError::at(
                    format!("alerts.{key}"),
                    format!("{value} is not a percentage in (0, 100]"),
                ));
            }
        }
        for (key, value) in [
            ("breaker_open_for", self.breaker_open_for),
            ("shed_for", self.shed_for),
            ("timeout_for", self.timeout_for),
        ] {
            if value < Duration::from_secs(1) {
                return Err(PolicyError::at(format!("alerts.{key}"), "at least 1s"));
            }
        }
        for label in &self.service_labels {
            let valid = label.bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            }) && !label.is_empty()
                && !label.starts_with("__");
            // Labels the rules use themselves cannot also tell services apart.
            let taken = ["route", "dependency", "breaker", "le", "service_version"];
            if !valid || taken.contains(&label.as_str()) {
                return Err(PolicyError::at(
                    "alerts.service_labels",
                    format!(
                        "`{label}` is not a Prometheus label name free for this (letters, digits and `_`, not starting with a digit or `__`, not one of {})",
                        taken.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What one route gets: a timeout, a circuit breaker and a load shedder (each optional but the
/// timeout), and, with a contract, how its requests and responses are checked; and the
/// objective its alerts watch.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub(crate) timeout: TimeoutConfig,
    pub(crate) breaker: Option<BreakerConfig>,
    pub(crate) shed: Option<ShedConfig>,
    pub(crate) fault: crate::fault::FaultConfig,
    pub(crate) objective: Objective,
    #[cfg(feature = "contract")]
    pub(crate) contract: crate::contract::RouteModes,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            timeout: TimeoutConfig::new(DEFAULT_TIMEOUT),
            breaker: None,
            shed: Some(ShedConfig::default()),
            fault: crate::fault::FaultConfig::new(),
            objective: Objective::default(),
            #[cfg(feature = "contract")]
            contract: crate::contract::RouteModes::default(),
        }
    }
}

impl Policy {
    /// The defaults: a 15 s budget, the shedder's defaults (the adaptive [`Knee`] limit,
    /// [`ShedConfig::new`]), requests `Critical`, and **no circuit breaker**: a breaker belongs
    /// around a dependency, where it stops calls to something that is failing; on a route it
    /// would cut the route off because of its own 5xx answers (a handler passing on a
    /// dependency's 502s, a bug in one endpoint), turning partial failure into total failure.
    /// Ask for one with [`breaker`](Self::breaker) (`breaker.enabled = true` in a file).
    ///
    /// [`Knee`]: crate::shed::Knee
    pub fn new() -> Self {
        Self::default()
    }

    /// Faults to inject into the route's requests, for a drill (see [`crate::fault`]). Default:
    /// none.
    pub fn fault(mut self, config: crate::fault::FaultConfig) -> Self {
        self.fault = config;
        self
    }

    /// The budget of each request (the caller's `grpc-timeout` may shorten it).
    pub fn timeout(mut self, budget: Duration) -> Self {
        self.timeout = TimeoutConfig::new(budget);
        self
    }

    /// All timeout settings.
    pub fn timeout_config(mut self, config: TimeoutConfig) -> Self {
        self.timeout = config;
        self
    }

    /// The circuit breaker's settings.
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = Some(config);
        self
    }

    /// No circuit breaker on this route.
    pub fn no_breaker(mut self) -> Self {
        self.breaker = None;
        self
    }

    /// The load shedder's settings.
    pub fn shed(mut self, config: ShedConfig) -> Self {
        self.shed = Some(config);
        self
    }

    /// No load shedding on this route.
    pub fn no_shed(mut self) -> Self {
        self.shed = None;
        self
    }

    /// The class of the route's requests unless they say otherwise (the shedder sheds
    /// `Sheddable` first). Needs a shedder.
    pub fn criticality(mut self, class: Criticality) -> Self {
        if let Some(shed) = self.shed.take() {
            self.shed = Some(shed.default_criticality(class));
        }
        self
    }

    /// How the contract checks this route (feature `contract`).
    #[cfg(feature = "contract")]
    pub fn contract(mut self, modes: crate::contract::RouteModes) -> Self {
        self.contract = modes;
        self
    }

    /// The service level the route's alerts watch.
    pub fn objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// The settings in force for the timeout.
    pub fn timeout_settings(&self) -> &TimeoutConfig {
        &self.timeout
    }

    /// The route's objective.
    pub fn objective_settings(&self) -> &Objective {
        &self.objective
    }

    /// Whether the route has a circuit breaker.
    pub fn has_breaker(&self) -> bool {
        self.breaker.is_some()
    }

    /// Checks each layer's settings and how they fit together; `at` prefixes the key paths.
    pub(crate) fn validate(&self, at: &str) -> Result<(), PolicyError> {
        let budget = self.timeout.budget();
        if budget.is_some_and(|budget| budget.is_zero()) {
            return Err(PolicyError::at(
                format!("{at}.timeout"),
                "must be longer than zero",
            ));
        }
        self.fault.validate().map_err(|error| {
            PolicyError::at(format!("{at}.fault.{}", error.key()), error.reason())
        })?;
        self.timeout.validate().map_err(|error| {
            PolicyError::at(format!("{at}.timeout.{}", error.key()), error.reason())
        })?;
        if let Some(breaker) = &self.breaker {
            breaker.validate().map_err(|error| {
                // The file spells the window by its kind.
                let window = match breaker.window {
                    SlidingWindow::Count(_) => "window_calls",
                    SlidingWindow::Time { .. } => "window_duration",
                };
                layer_error(at, "breaker", &error, window)
            })?;
            if let (Some(budget), Some(slow)) = (budget, breaker.slow_call_duration) {
                if slow >= budget {
                    return Err(PolicyError::at(
                        format!("{at}.breaker.slow_call_duration"),
                        format!(
                            "{slow:?} is not shorter than the timeout of {budget:?}: calls time out before they count as slow"
                        ),
                    ));
                }
            }
            if let (Some(budget), SlidingWindow::Time { buckets, bucket }) =
                (budget, breaker.window)
            {
                let span = bucket * buckets;
                if span < budget * 2 {
                    return Err(PolicyError::at(
                        format!("{at}.breaker.window_duration"),
                        format!(
                            "{span:?} is shorter than twice the timeout of {budget:?}: calls that time out would leave the window before they are counted"
                        ),
                    ));
                }
            }
        }
        if let Some(shed) = &self.shed {
            shed.validate()
                .map_err(|error| layer_error(at, "shed", &error, ""))?;
        }
        self.objective.validate(at)?;
        #[cfg(feature = "contract")]
        if let Some(rate) = self.contract.response_sample_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(PolicyError::at(
                    format!("{at}.contract.response_sample_rate"),
                    format!("{rate} is not between 0 and 1"),
                ));
            }
        }
        Ok(())
    }
}

/// A layer's own error, with its key named as the policy file names it (`window`: the breaker
/// window's key).
fn layer_error(at: &str, section: &str, error: &ConfigError, window: &str) -> PolicyError {
    let key = match (section, error.key()) {
        ("shed", "algorithm.min") => "min_limit",
        ("shed", "algorithm.max") => "max_limit",
        ("shed", "algorithm.initial") => "initial_limit",
        ("shed", "algorithm.limit") => "limit",
        ("breaker", "sliding_window") => window,
        (_, key) => key,
    };
    PolicyError::at(format!("{at}.{section}.{key}"), error.reason())
}

/// Which requests a route policy is for: a route template, and optionally one method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteMatch {
    pub(crate) method: Option<Method>,
    pub(crate) template: String,
}

impl RouteMatch {
    /// The route template (or gRPC method path).
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The method, if the policy is for one.
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// As the policy file writes it: `/checkout` or `POST /checkout`; a gRPC method is its
    /// path, `/package.Service/Method`.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] at `routes."<key>"`: an unknown method, or a template that does not
    /// start with `/`.
    pub fn parse(key: &str) -> Result<Self, PolicyError> {
        let refused = |reason: String| PolicyError::at(format!("routes.{key:?}"), reason);
        let (method, template) = match key.split_once(' ') {
            Some((method, template)) => {
                let method = Method::from_bytes(method.as_bytes())
                    .map_err(|_| refused(format!("`{method}` is not an HTTP method")))?;
                (Some(method), template.trim())
            }
            None => (None, key),
        };
        if !template.starts_with('/') {
            return Err(refused("a route template starts with `/`".into()));
        }
        Ok(Self {
            method,
            template: template.to_owned(),
        })
    }
}

impl fmt::Display for RouteMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Some(method) => write!(f, "{method} {}", self.template),
            None => f.write_str(&self.template),
        }
    }
}

/// The policies of a service: defaults, and overrides by route template and method.
///
/// A request gets the policy of its route and method, else of its route, else the defaults.
/// Routes are Axum route templates (`/users/{id}`, from `MatchedPath`) or gRPC method paths.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policies {
    pub(crate) defaults: Policy,
    pub(crate) routes: Vec<(RouteMatch, Policy)>,
}

impl Policies {
    /// Every route gets `defaults` unless overridden.
    pub fn new(defaults: Policy) -> Self {
        Self {
            defaults,
            routes: Vec::new(),
        }
    }

    /// `policy` for every method of the route `template`.
    pub fn route(mut self, template: impl Into<String>, policy: Policy) -> Self {
        self.set(
            RouteMatch {
                method: None,
                template: template.into(),
            },
            policy,
        );
        self
    }

    /// `policy` for one method of the route `template`.
    pub fn route_method(
        mut self,
        method: Method,
        template: impl Into<String>,
        policy: Policy,
    ) -> Self {
        self.set(
            RouteMatch {
                method: Some(method),
                template: template.into(),
            },
            policy,
        );
        self
    }

    pub(crate) fn set(&mut self, route: RouteMatch, policy: Policy) {
        self.routes.retain(|(r, _)| *r != route);
        self.routes.push((route, policy));
    }

    /// The defaults.
    pub fn defaults(&self) -> &Policy {
        &self.defaults
    }

    /// The routes with a policy of their own, in the order they were set.
    pub fn routes(&self) -> impl Iterator<Item = (&RouteMatch, &Policy)> {
        self.routes.iter().map(|(route, policy)| (route, policy))
    }

    /// The policy a request for `template` with `method` gets.
    pub fn for_route(&self, method: &Method, template: &str) -> &Policy {
        let exact = self
            .routes
            .iter()
            .find(|(r, _)| r.template == template && r.method.as_ref() == Some(method));
        let any = || {
            self.routes
                .iter()
                .find(|(r, _)| r.template == template && r.method.is_none())
        };
        exact
            .or_else(any)
            .map_or(&self.defaults, |(_, policy)| policy)
    }

    /// Checks every policy.
    ///
    /// # Errors
    ///
    /// The first [`PolicyError`], with its key path.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.defaults.validate("defaults")?;
        for (route, policy) in &self.routes {
            if !route.template.starts_with('/') {
                return Err(PolicyError::at(
                    format!("routes.\"{route}\""),
                    "a route template starts with `/`",
                ));
            }
            policy.validate(&format!("routes.\"{route}\""))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_policy_wins() {
        let policies = Policies::new(Policy::new())
            .route("/orders", Policy::new().timeout(Duration::from_secs(2)))
            .route_method(
                Method::POST,
                "/orders",
                Policy::new().timeout(Duration::from_secs(1)),
            );
        let budget =
            |method: Method, route: &str| policies.for_route(&method, route).timeout.budget();
        assert_eq!(
            budget(Method::POST, "/orders"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(budget(Method::GET, "/orders"), Some(Duration::from_secs(2)));
        assert_eq!(budget(Method::GET, "/other"), Some(DEFAULT_TIMEOUT));
    }

    #[test]
    fn route_keys_parse() {
        assert_eq!(
            RouteMatch::parse("POST /a/{id}").unwrap().to_string(),
            "POST /a/{id}"
        );
        assert_eq!(RouteMatch::parse("/pkg.Svc/Get").unwrap().method, None);
        assert!(RouteMatch::parse("a").is_err());
        assert!(RouteMatch::parse("P(ST /a").is_err());
    }
}
