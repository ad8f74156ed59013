//! The instrumentation layer.

use std::fmt;
use std::sync::Arc;

use metrics::SharedString;
use tower::Layer;

use super::future::{ActiveGauges, RouteMetrics};
use super::service::Observe;
use crate::core::ConfigError;
use crate::core::keyed::{Key, Keyed};
use crate::core::route::UNMATCHED_ROUTE;

/// The most distinct route labels by default (1,024, the bound of every keyed layer); beyond,
/// routes are labelled `overflow`.
pub const DEFAULT_MAX_ROUTES: usize = crate::core::keyed::DEFAULT_MAX_KEYS;

/// What every service of one layer shares: the bounded route labels and the metric handles.
pub(crate) struct Shared {
    pub(crate) routes: Keyed<Arc<RouteMetrics>>,
    /// Requests that matched no route, outside the bound.
    pub(crate) unmatched: Arc<RouteMetrics>,
    pub(crate) active: ActiveGauges,
}

/// The observer's settings.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`max_routes`](Self::max_routes) | [`DEFAULT_MAX_ROUTES`] (1,024) | distinct route labels; beyond, `overflow` |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObserveConfig {
    max_routes: usize,
}

impl ObserveConfig {
    /// The defaults above.
    pub fn new() -> Self {
        Self {
            max_routes: DEFAULT_MAX_ROUTES,
        }
    }

    /// At most `max_routes` distinct route labels (at least 1): a guard against unbounded
    /// label sets, for example from callers probing unknown gRPC methods. Routes beyond share
    /// the label `overflow`.
    pub fn max_routes(mut self, max_routes: usize) -> Self {
        self.max_routes = max_routes;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `max_routes` when it is 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_routes == 0 {
            return Err(ConfigError::new("max_routes", "must be at least 1"));
        }
        Ok(())
    }
}

impl Default for ObserveConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Applies [`Observe`] to a service.
#[derive(Clone)]
pub struct ObserveLayer {
    shared: Arc<Shared>,
}

impl ObserveLayer {
    /// Instrumentation with the default [`ObserveConfig`].
    pub fn new() -> Self {
        Self::from_valid(&ObserveConfig::new())
    }

    /// Instrumentation with `config`.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`ObserveConfig::validate`].
    pub fn with_config(config: ObserveConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::from_valid(&config))
    }

    /// Instrumentation with at most `max_routes` distinct route labels, clamped to at least 1.
    #[deprecated(
        note = "use `ObserveLayer::with_config(ObserveConfig::new().max_routes(n))`, \
                         which refuses 0 instead of clamping it"
    )]
    pub fn with_max_routes(max_routes: usize) -> Self {
        Self::from_valid(&ObserveConfig::new().max_routes(max_routes.max(1)))
    }

    fn from_valid(config: &ObserveConfig) -> Self {
        let max_routes = config.max_routes;
        // Help texts and units for the exporter (`# HELP` lines).
        crate::core::telemetry::describe();
        let routes = Keyed::new(Key::Route, max_routes, |route| {
            Arc::new(RouteMetrics::new(SharedString::from(route.to_owned())))
        });
        let unmatched = Arc::new(RouteMetrics::new(SharedString::const_str(UNMATCHED_ROUTE)));
        Self {
            shared: Arc::new(Shared {
                routes,
                unmatched,
                active: Default::default(),
            }),
        }
    }
}

impl Default for ObserveLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ObserveLayer {
    /// The observer for one request of the policy stack, with the policy's route cache.
    /// Starts observing a request, for the policy's fused stack.
    #[inline]
    pub(crate) fn start<B>(
        &self,
        cache: &super::service::ObserveCache,
        request: &http::Request<B>,
        grpc: bool,
        route: crate::core::keyed::RouteKey<'_>,
    ) -> super::service::Started {
        super::service::start(&self.shared, cache, request, grpc, route)
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe::new(inner, self.shared.clone())
    }
}

impl fmt::Debug for ObserveLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveLayer").finish_non_exhaustive()
    }
}
