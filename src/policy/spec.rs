//! Policies: what each route gets, built in code (or read from a file by [`super::file`]).

use std::fmt;
use std::time::Duration;

use http::Method;

use crate::breaker::{BreakerConfig, SlidingWindow};
use crate::core::ConfigError;
use crate::shed::{Criticality, ShedConfig};
use crate::timeout::TimeoutConfig;

/// The default budget of a request: Envoy's default route timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// A setting that cannot work, named by its full key path: `routes."/checkout".timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    path: String,
    reason: String,
}

impl PolicyError {
    pub(crate) fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Where: the key path in the configuration file's terms (`defaults.breaker.minimum_calls`,
    /// `routes."POST /orders".shed.min_limit`), or `file` for a file that cannot be read.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong there.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid policy `{}`: {}", self.path, self.reason)
    }
}

impl std::error::Error for PolicyError {}

/// What one route gets: a timeout, a circuit breaker and a load shedder (each optional but the
/// timeout), and, with a contract, how its requests and responses are checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub(crate) timeout: TimeoutConfig,
    pub(crate) breaker: Option<BreakerConfig>,
    pub(crate) shed: Option<ShedConfig>,
    #[cfg(feature = "contract")]
    pub(crate) contract: crate::contract::RouteModes,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            timeout: TimeoutConfig::new(DEFAULT_TIMEOUT),
            breaker: Some(BreakerConfig::default()),
            shed: Some(ShedConfig::default()),
            #[cfg(feature = "contract")]
            contract: crate::contract::RouteModes::default(),
        }
    }
}

impl Policy {
    /// The defaults: a 15 s budget, the breaker's defaults ([`BreakerConfig::new`]) and the
    /// shedder's (Gradient2, [`ShedConfig::new`]), requests `Critical`.
    pub fn new() -> Self {
        Self::default()
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

    /// The settings in force for the timeout.
    pub fn timeout_settings(&self) -> &TimeoutConfig {
        &self.timeout
    }

    /// Checks each layer's settings and how they fit together; `at` prefixes the key paths.
    pub(crate) fn validate(&self, at: &str) -> Result<(), PolicyError> {
        let budget = self.timeout.budget();
        if budget.is_some_and(|budget| budget.is_zero()) {
            return Err(PolicyError::new(
                format!("{at}.timeout"),
                "must be longer than zero",
            ));
        }
        if let Some(breaker) = &self.breaker {
            breaker
                .validate()
                .map_err(|error| layer_error(at, "breaker", &error))?;
            if let (Some(budget), Some(slow)) = (budget, breaker.slow_call_duration) {
                if slow >= budget {
                    return Err(PolicyError::new(
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
                    return Err(PolicyError::new(
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
                .map_err(|error| layer_error(at, "shed", &error))?;
        }
        #[cfg(feature = "contract")]
        if let Some(rate) = self.contract.response_sample_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(PolicyError::new(
                    format!("{at}.contract.response_sample_rate"),
                    format!("{rate} is not between 0 and 1"),
                ));
            }
        }
        Ok(())
    }
}

/// A layer's own error, with its key named as the policy file names it.
fn layer_error(at: &str, section: &str, error: &ConfigError) -> PolicyError {
    let key = match (section, error.key()) {
        ("shed", "algorithm.min") => "min_limit",
        ("shed", "algorithm.max") => "max_limit",
        ("shed", "algorithm.initial") => "initial_limit",
        ("shed", "algorithm.limit") => "limit",
        ("breaker", "sliding_window") => "window",
        (_, key) => key,
    };
    PolicyError::new(format!("{at}.{section}.{key}"), error.reason())
}

/// Which requests a route policy is for: a route template, and optionally one method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteMatch {
    pub(crate) method: Option<Method>,
    pub(crate) template: String,
}

impl RouteMatch {
    /// As the policy file writes it: `/checkout` or `POST /checkout`; a gRPC method is its
    /// path, `/package.Service/Method`.
    pub fn parse(key: &str) -> Result<Self, String> {
        let (method, template) = match key.split_once(' ') {
            Some((method, template)) => {
                let method = Method::from_bytes(method.as_bytes())
                    .map_err(|_| format!("`{method}` is not an HTTP method"))?;
                (Some(method), template.trim())
            }
            None => (None, key),
        };
        if !template.starts_with('/') {
            return Err("a route template starts with `/`".into());
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
                return Err(PolicyError::new(
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
