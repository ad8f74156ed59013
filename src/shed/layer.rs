//! The load shedding layer.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Request};
use metrics::SharedString;
use tower::Layer;

use super::config::ShedConfig;
use super::limiter::LimiterHandle;
use super::priority::Criticality;
use super::service::Shed;
use crate::core::grpc::Code;
use crate::core::keyed::{DEFAULT_MAX_KEYS, Key, Keyed, Source};
use crate::core::{
    ConfigError, DefaultClassifier, ErrorsAsFailures, ProtocolResponses, TypedErrors,
};

/// What every request needs from the settings, shared by a layer's services.
#[derive(Debug)]
pub(crate) struct RequestSettings {
    pub(crate) default_criticality: Criticality,
    criticality_header: Option<HeaderName>,
    max_header_criticality: Criticality,
    pub(crate) grpc_code: Code,
    pub(crate) retry_after: Duration,
}

impl RequestSettings {
    fn of(config: &ShedConfig) -> Self {
        Self {
            default_criticality: config.default_criticality,
            criticality_header: config.criticality_header.clone(),
            max_header_criticality: config.max_header_criticality,
            grpc_code: config.grpc_code,
            retry_after: config.retry_after,
        }
    }

    /// A request's class: from its extensions (set by trusted code), else from the configured
    /// header (capped), else the default. An unreadable header value means the default.
    pub(crate) fn criticality<B>(&self, request: &Request<B>) -> Criticality {
        if let Some(class) = request.extensions().get::<Criticality>() {
            return *class;
        }
        self.criticality_header
            .as_ref()
            .and_then(|name| request.headers().get(name))
            .and_then(|value| value.to_str().ok()?.parse::<Criticality>().ok())
            .map_or(self.default_criticality, |class| {
                class.min(self.max_header_criticality)
            })
    }
}

/// Applies [`Shed`] to a service.
///
/// [`new`](Self::new) keeps one limiter per route (Axum's route template, or the gRPC method
/// behind a tonic server), whichever service instance serves it; [`shared`](Self::shared) puts
/// every route the layer wraps in one pool.
pub struct ShedLayer<C = DefaultClassifier, M = ProtocolResponses> {
    source: Source<LimiterHandle>,
    settings: Arc<RequestSettings>,
    classifier: C,
    _mode: PhantomData<fn() -> M>,
}

impl ShedLayer {
    /// One limiter per route, each with these settings.
    pub fn new(config: ShedConfig) -> Result<Self, ConfigError> {
        Self::keyed(config, Key::Route, DEFAULT_MAX_KEYS)
    }

    /// One limiter per key, each with these settings, at most `max_limiters` of them (beyond,
    /// new keys share one `overflow` limiter).
    pub fn keyed(config: ShedConfig, key: Key, max_limiters: usize) -> Result<Self, ConfigError> {
        config.validate()?;
        if max_limiters == 0 {
            return Err(ConfigError::new("max_limiters", "must be at least 1"));
        }
        let settings = Arc::new(RequestSettings::of(&config));
        let limiters = Keyed::new(key, max_limiters, move |key| {
            let name = match &config.name {
                Some(prefix) => format!("{prefix}:{key}"),
                None => key.to_owned(),
            };
            LimiterHandle::from_valid(&config, Some(SharedString::from(name)))
        });
        Ok(Self::with(Source::Keyed(Arc::new(limiters)), settings))
    }

    /// One limiter for every service the layer wraps: a pool shared across routes.
    pub fn shared(config: ShedConfig) -> Result<Self, ConfigError> {
        let limiter = LimiterHandle::new(&config)?;
        Ok(Self::with(
            Source::Shared(limiter),
            Arc::new(RequestSettings::of(&config)),
        ))
    }

    fn with(source: Source<LimiterHandle>, settings: Arc<RequestSettings>) -> Self {
        Self {
            source,
            settings,
            classifier: DefaultClassifier::new(),
            _mode: PhantomData,
        }
    }
}

impl ShedLayer {
    /// Wraps `inner`, sharing `cache` with the other services made this way.
    pub(crate) fn layer_with_cache<S>(
        &self,
        inner: S,
        cache: Arc<crate::core::keyed::KeyCache<LimiterHandle>>,
    ) -> Shed<S> {
        Shed::with_cache(
            inner,
            self.source.clone(),
            cache,
            self.settings.clone(),
            self.classifier,
        )
    }
}

impl<C, M> ShedLayer<C, M> {
    /// Decide what counts as a drop (a sign of overload) with this classifier.
    pub fn classifier<C2>(self, classifier: C2) -> ShedLayer<C2, M> {
        ShedLayer {
            source: self.source,
            settings: self.settings,
            classifier,
            _mode: PhantomData,
        }
    }

    /// Answer rejections with [`crate::Error::Rejected`], for services whose requests are not HTTP.
    pub fn typed_errors(self) -> ShedLayer<ErrorsAsFailures, TypedErrors> {
        ShedLayer {
            source: self.source,
            settings: self.settings,
            classifier: ErrorsAsFailures,
            _mode: PhantomData,
        }
    }

    /// The limiters made so far, by key.
    pub fn limiters(&self) -> Vec<(String, LimiterHandle)> {
        self.source
            .all(|limiter| limiter.name().unwrap_or("shared").to_owned())
    }
}

impl<S, C: Clone, M> Layer<S> for ShedLayer<C, M> {
    type Service = Shed<S, C, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed::with(
            inner,
            self.source.clone(),
            self.settings.clone(),
            self.classifier.clone(),
        )
    }
}

impl<C: Clone, M> Clone for ShedLayer<C, M> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            settings: self.settings.clone(),
            classifier: self.classifier.clone(),
            _mode: PhantomData,
        }
    }
}

impl<C, M> fmt::Debug for ShedLayer<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShedLayer")
            .field("limiters", &self.limiters())
            .finish()
    }
}
