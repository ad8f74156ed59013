//! The route template a request matched, for metric labels.

use std::sync::Arc;

/// The route label used when a request matched no known template: never the raw path, whose
/// values are unbounded.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The template the policy layer matched a request's path against, when no router had matched
/// it (the layer placed around the whole `Router`): set in the extensions for the layers
/// inside, which read it as they read Axum's `MatchedPath`.
#[derive(Clone, Debug)]
pub(crate) struct MatchedRoute(pub(crate) Arc<str>);

/// The route template a router (or the policy layer's matcher) matched, borrowed from the
/// request's extensions.
#[inline]
pub(crate) fn template(extensions: &http::Extensions) -> Option<&str> {
    #[cfg(feature = "axum")]
    if let Some(matched) = extensions.get::<axum::extract::MatchedPath>() {
        return Some(matched.as_str());
    }
    extensions.get::<MatchedRoute>().map(|matched| &*matched.0)
}

/// The route template of a request, captured when the request comes in so that it is still
/// known after the request has moved into the inner service.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteLabel {
    #[cfg(feature = "axum")]
    matched: Option<axum::extract::MatchedPath>,
    ours: Option<Arc<str>>,
}

impl RouteLabel {
    /// Axum's `MatchedPath` where the `axum` feature is on and the router set it, else the
    /// policy layer's match.
    #[inline]
    pub(crate) fn of(extensions: &http::Extensions) -> Self {
        #[cfg(feature = "axum")]
        if let Some(matched) = extensions.get::<axum::extract::MatchedPath>() {
            return Self {
                matched: Some(matched.clone()),
                ours: None,
            };
        }
        Self {
            #[cfg(feature = "axum")]
            matched: None,
            ours: extensions.get::<MatchedRoute>().map(|m| m.0.clone()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        #[cfg(feature = "axum")]
        if let Some(matched) = &self.matched {
            return matched.as_str();
        }
        self.ours.as_deref().unwrap_or(UNMATCHED_ROUTE)
    }
}
