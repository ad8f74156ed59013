//! The route template a request matched, for metric labels.

/// The route label used when a request matched no known template: never the raw path, whose
/// values are unbounded.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The route template a router matched, borrowed from the request's extensions.
#[inline]
pub(crate) fn template(_extensions: &http::Extensions) -> Option<&str> {
    #[cfg(feature = "axum")]
    return _extensions
        .get::<axum::extract::MatchedPath>()
        .map(|matched| matched.as_str());
    #[cfg(not(feature = "axum"))]
    return None;
}

/// The route template of a request, captured when the request comes in so that it is still
/// known after the request has moved into the inner service.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteLabel {
    #[cfg(feature = "axum")]
    matched: Option<axum::extract::MatchedPath>,
}

impl RouteLabel {
    /// Axum's `MatchedPath` where the `axum` feature is on and the router set it.
    #[inline]
    pub(crate) fn of(_extensions: &http::Extensions) -> Self {
        Self {
            #[cfg(feature = "axum")]
            matched: _extensions.get::<axum::extract::MatchedPath>().cloned(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        #[cfg(feature = "axum")]
        if let Some(matched) = &self.matched {
            return matched.as_str();
        }
        UNMATCHED_ROUTE
    }
}
