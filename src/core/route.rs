//! The route template a request matched, for metric labels.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// The route label used when a request matched no known template: never the raw path, whose
/// values are unbounded.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

thread_local! {
    /// The template the policy layer matched a request's path against, when no router had
    /// matched it (the layer placed around the whole `Router`): current while the layers
    /// inside are called and polled, which read it as they read Axum's `MatchedPath`.
    static CURRENT: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// `template`, kept for the life of the process, once per distinct template: the templates a
/// layer is configured with (never request data), so that a matched route is named without a
/// copy or a reference count.
pub(crate) fn intern(template: &str) -> &'static str {
    static INTERNED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut interned = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&known) = interned.get(template) {
        return known;
    }
    let kept: &'static str = Box::leak(template.into());
    interned.insert(kept);
    kept
}

/// Makes `route` the current matched route on this thread until the scope is dropped (nothing
/// changes for `None`).
#[inline]
pub(crate) fn enter(route: Option<&'static str>) -> RouteScope {
    RouteScope {
        previous: route.map(|route| CURRENT.with(|current| current.replace(Some(route)))),
    }
}

/// The scope of [`enter`]; dropping it restores the route that was current before.
pub(crate) struct RouteScope {
    /// `Some(previous)` when a route was entered.
    previous: Option<Option<&'static str>>,
}

impl Drop for RouteScope {
    #[inline]
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            CURRENT.with(|current| current.set(previous));
        }
    }
}

/// The route template a router matched (from the request's extensions), or else the one the
/// policy layer around the router matched for the request being served.
#[inline]
pub(crate) fn template(extensions: &http::Extensions) -> Option<&str> {
    #[cfg(feature = "axum")]
    if let Some(matched) = extensions.get::<axum::extract::MatchedPath>() {
        return Some(matched.as_str());
    }
    #[cfg(not(feature = "axum"))]
    let _ = extensions;
    CURRENT.with(Cell::get)
}

/// The route template of a request, captured when the request comes in so that it is still
/// known after the request has moved into the inner service.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteLabel {
    #[cfg(feature = "axum")]
    matched: Option<axum::extract::MatchedPath>,
    ours: Option<&'static str>,
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
        #[cfg(not(feature = "axum"))]
        let _ = extensions;
        Self::matched(CURRENT.with(Cell::get))
    }

    /// The policy layer's own match (or none).
    #[inline]
    pub(crate) fn matched(template: Option<&'static str>) -> Self {
        Self {
            #[cfg(feature = "axum")]
            matched: None,
            ours: template,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        #[cfg(feature = "axum")]
        if let Some(matched) = &self.matched {
            return matched.as_str();
        }
        self.ours.unwrap_or(UNMATCHED_ROUTE)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_kept_once_and_current_only_inside_its_scope() {
        let first = intern("/items/{id}");
        let again = intern(&String::from("/items/{id}"));
        assert!(std::ptr::eq(first, again));
        let extensions = http::Extensions::new();
        assert_eq!(template(&extensions), None);
        {
            let _outer = enter(Some(first));
            assert_eq!(template(&extensions), Some("/items/{id}"));
            {
                let _none = enter(None);
                assert_eq!(template(&extensions), Some("/items/{id}"));
                let _inner = enter(Some(intern("/other")));
                assert_eq!(RouteLabel::of(&extensions).as_str(), "/other");
            }
            assert_eq!(template(&extensions), Some("/items/{id}"));
        }
        assert_eq!(template(&extensions), None);
        assert_eq!(RouteLabel::of(&extensions).as_str(), UNMATCHED_ROUTE);
    }
}
