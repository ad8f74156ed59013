//! The instrumentation layer.

use std::fmt;
use std::sync::Arc;

use metrics::SharedString;
use tower::Layer;

use super::future::{ActiveGauges, RouteMetrics};
use super::service::Observe;
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

/// Applies [`Observe`] to a service.
#[derive(Clone)]
pub struct ObserveLayer {
    shared: Arc<Shared>,
}

impl ObserveLayer {
    /// Instrumentation with at most [`DEFAULT_MAX_ROUTES`] distinct route labels.
    pub fn new() -> Self {
        Self::with_max_routes(DEFAULT_MAX_ROUTES)
    }

    /// Instrumentation with at most `max_routes` distinct route labels (at least 1): a guard
    /// against unbounded label sets, for example from callers probing unknown gRPC methods.
    pub fn with_max_routes(max_routes: usize) -> Self {
        // Help texts and units for the exporter (`# HELP` lines).
        crate::core::telemetry::describe();
        let routes = Keyed::new(Key::Route, max_routes.max(1), |route| {
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
    pub(crate) fn layer_with_cache<S>(
        &self,
        inner: S,
        cache: super::service::ObserveCache,
    ) -> super::Observe<S> {
        super::Observe::with_cache(inner, self.shared.clone(), cache)
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
