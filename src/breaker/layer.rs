//! The circuit breaker layer.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use metrics::SharedString;
use tower::Layer;

use super::config::{BreakerConfig, ConfigError};
use super::handle::BreakerHandle;
use super::service::Breaker;
use crate::core::keyed::{KeyCache, Keyed};
use crate::core::{DefaultClassifier, ErrorsAsFailures, ProtocolResponses, TypedErrors};

/// The most breakers a keyed layer makes by default.
pub const DEFAULT_MAX_BREAKERS: usize = crate::core::keyed::DEFAULT_MAX_KEYS;

/// What a keyed breaker layer tells its breakers apart by.
pub type BreakerKey = crate::core::keyed::Key;

pub(crate) type Source = crate::core::keyed::Source<BreakerHandle>;

/// The breaker a service instance used last, by key.
pub(crate) type RouteCache = KeyCache<BreakerHandle>;

/// Applies [`Breaker`] to a service.
///
/// [`new`](Self::new) keeps one breaker per route, whichever service instance serves it (Axum
/// rebuilds route services per connection, so a breaker per instance would forget): Axum's
/// route template, or the gRPC method path behind a tonic server. [`keyed`](Self::keyed) keys
/// by upstream, header or a function instead; [`shared`](Self::shared) puts one breaker in
/// front of everything. Keys are bounded ([`DEFAULT_MAX_BREAKERS`]); beyond the bound, new keys
/// share one `overflow` breaker.
pub struct BreakerLayer<C = DefaultClassifier, M = ProtocolResponses> {
    source: Source,
    classifier: C,
    _mode: PhantomData<fn() -> M>,
}

impl BreakerLayer {
    /// One breaker per route, each with these settings.
    ///
    /// # Errors
    ///
    /// The first setting [`BreakerConfig::validate`] refuses.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::keyed(config, BreakerKey::Route, DEFAULT_MAX_BREAKERS)
    }

    /// One breaker per key, each with these settings, at most `max_breakers` of them.
    ///
    /// # Errors
    ///
    /// The first setting [`BreakerConfig::validate`] refuses, or `max_breakers` of zero.
    pub fn keyed(
        config: BreakerConfig,
        key: BreakerKey,
        max_breakers: usize,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if max_breakers == 0 {
            return Err(ConfigError::new("max_breakers", "must be at least 1"));
        }
        let breakers = Keyed::new(key, max_breakers, move |key| {
            let name = match &config.name {
                Some(prefix) => format!("{prefix}:{key}"),
                None => key.to_owned(),
            };
            BreakerHandle::from_valid(&config, Some(SharedString::from(name)))
        });
        Ok(Self::with(Source::Keyed(Arc::new(breakers))))
    }

    /// Every wrapped service shares this breaker.
    pub fn shared(breaker: BreakerHandle) -> Self {
        Self::with(Source::Shared(breaker))
    }

    fn with(source: Source) -> Self {
        Self {
            source,
            classifier: DefaultClassifier::new(),
            _mode: PhantomData,
        }
    }
}

impl BreakerLayer {
    /// Admits a request through its breaker, for the policy's fused stack: the call's guard,
    /// or the open breaker's rejection (counted).
    #[inline]
    pub(crate) fn admit<B>(
        &self,
        route: crate::core::keyed::RouteKey<'_>,
        request: &http::Request<B>,
        cache: &RouteCache,
        method: &'static str,
    ) -> Result<super::future::Guard, crate::core::Rejection> {
        let breaker = self.source.for_route(route, request, cache);
        breaker.name_once(|| SharedString::const_str("shared"));
        match breaker.acquire() {
            Ok(permit) => Ok(super::future::Guard::new(permit)),
            Err((refused, breaker)) => {
                let rejection = super::service::open_rejection(refused.refusal());
                crate::core::telemetry::record_rejection(
                    &rejection,
                    breaker.name().unwrap_or("shared"),
                    method,
                );
                Err(rejection)
            }
        }
    }
}

impl Default for BreakerLayer {
    fn default() -> Self {
        Self::new(BreakerConfig::default()).expect("the default settings are valid")
    }
}

impl<C, M> BreakerLayer<C, M> {
    /// Decide success and failure with this classifier instead of [`DefaultClassifier`].
    pub fn classifier<C2>(self, classifier: C2) -> BreakerLayer<C2, M> {
        BreakerLayer {
            source: self.source,
            classifier,
            _mode: PhantomData,
        }
    }

    /// Answer rejections with [`crate::Error::Rejected`], for services whose requests are not
    /// HTTP (and so have no key: a keyed layer uses its `default` breaker). Responses count as
    /// successes and errors as failures unless another classifier is set.
    pub fn typed_errors(self) -> BreakerLayer<ErrorsAsFailures, TypedErrors> {
        BreakerLayer {
            source: self.source,
            classifier: ErrorsAsFailures,
            _mode: PhantomData,
        }
    }

    /// The breakers made so far, by key, to watch or steer them (an admin endpoint, a test).
    pub fn breakers(&self) -> Vec<(String, BreakerHandle)> {
        self.source
            .all(|breaker| breaker.name().unwrap_or("shared").to_owned())
    }
}

impl<S, C: Clone, M> Layer<S> for BreakerLayer<C, M> {
    type Service = Breaker<S, C, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker::with(inner, self.source.clone(), self.classifier.clone())
    }
}

impl<C: Clone, M> Clone for BreakerLayer<C, M> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            classifier: self.classifier.clone(),
            _mode: PhantomData,
        }
    }
}

impl<C, M> fmt::Debug for BreakerLayer<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("breakers", &self.breakers())
            .finish()
    }
}
