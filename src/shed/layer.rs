//! The load shedding layer.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Request};
use metrics::SharedString;
use tower::Layer;

use super::config::ShedConfig;
use super::limiter::ShedHandle;
use super::service::Shed;
use crate::core::Criticality;
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
    pub(crate) fn of(config: &ShedConfig) -> Self {
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
    source: Source<ShedHandle>,
    /// The limiters of the layer this one replaced, by key, until each has a successor.
    previous: Arc<Previous>,
    settings: Arc<RequestSettings>,
    classifier: C,
    _mode: PhantomData<fn() -> M>,
}

impl ShedLayer {
    /// One limiter per route, each with these settings.
    ///
    /// # Errors
    ///
    /// The first setting [`ShedConfig::validate`] refuses.
    pub fn new(config: ShedConfig) -> Result<Self, ConfigError> {
        Self::keyed(config, Key::Route, DEFAULT_MAX_KEYS)
    }

    /// One limiter per key, each with these settings, at most `max_limiters` of them (beyond,
    /// new keys share one `overflow` limiter).
    ///
    /// # Errors
    ///
    /// The first setting [`ShedConfig::validate`] refuses, or `max_limiters` of zero.
    pub fn keyed(config: ShedConfig, key: Key, max_limiters: usize) -> Result<Self, ConfigError> {
        config.validate()?;
        if max_limiters == 0 {
            return Err(ConfigError::new("max_limiters", "must be at least 1"));
        }
        let settings = Arc::new(RequestSettings::of(&config));
        let previous = Arc::new(Previous::default());
        let replaced = previous.clone();
        let limiters = Keyed::new(key, max_limiters, move |key| {
            let name = match &config.name {
                Some(prefix) => format!("{prefix}:{key}"),
                None => key.to_owned(),
            };
            let limiter = ShedHandle::from_valid(&config, Some(SharedString::from(name)));
            if let Some(old) = replaced.take(key) {
                limiter.succeed(&old);
            }
            limiter
        });
        let mut layer = Self::with(Source::Keyed(Arc::new(limiters)), settings);
        layer.previous = previous;
        Ok(layer)
    }

    /// One limiter for every service the layer wraps, and for every layer given the same
    /// handle: a pool shared across routes.
    pub fn shared(limiter: ShedHandle) -> Self {
        let settings = limiter.settings().clone();
        Self::with(Source::Shared(limiter), settings)
    }

    fn with(source: Source<ShedHandle>, settings: Arc<RequestSettings>) -> Self {
        Self {
            source,
            previous: Arc::default(),
            settings,
            classifier: DefaultClassifier::new(),
            _mode: PhantomData,
        }
    }
}

/// The limiters of a replaced keyed layer, handed to the new layer's limiter for the same key
/// when it is made. Taken once each: the old limiters are not kept beyond that.
#[derive(Default)]
struct Previous(std::sync::Mutex<HashMap<String, ShedHandle>>);

impl Previous {
    fn take(&self, key: &str) -> Option<ShedHandle> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.is_empty() {
            return None;
        }
        map.remove(key)
    }
}

impl ShedLayer {
    /// Takes over from `old`, which a reload replaces: each of `old`'s limiters admits nobody
    /// new, and what it still has in flight counts against the limit of this layer's limiter
    /// for the same key (the one shared limiter, for shared layers), so that a reload never lets
    /// more requests in than the new limit.
    pub(crate) fn take_over(&self, old: &ShedLayer) {
        match (&self.source, &old.source) {
            (Source::Shared(new), Source::Shared(old)) => new.succeed(old),
            // The new layer is not yet in use, so it has made no limiter: each of its limiters
            // takes over from the old one of its key when it is made.
            (Source::Keyed(_), Source::Keyed(old)) => {
                self.previous
                    .0
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend(old.all());
            }
            // Shared and keyed never replace each other in a policy.
            _ => {}
        }
    }

    /// Admits a request for the policy's fused stack: its slot, a place in the queue, or the
    /// rejection (counted). `deadline`: the request's, which bounds a wait in the queue.
    #[inline]
    pub(crate) fn admit<B>(
        &self,
        route: crate::core::keyed::RouteKey<'_>,
        request: &Request<B>,
        cache: &crate::core::keyed::KeyCache<ShedHandle>,
        method: &'static str,
        deadline: Option<crate::core::Deadline>,
    ) -> Admission {
        let class = self.settings.criticality(request);
        let limiter = self.source.for_route(route, request, cache);
        limiter.name_once(|| SharedString::const_str("shared"));
        let limiter = match limiter.acquire(class) {
            Ok(slot) => return Admission::Admitted(Some(slot)),
            Err(limiter) => limiter,
        };
        match limiter.wait(class, deadline) {
            Ok(waiting) => Admission::Queued(Queued {
                waiting,
                class,
                settings: self.settings.clone(),
            }),
            Err(reason) => {
                Admission::Refused(refuse(&limiter, &self.settings, class, reason, method))
            }
        }
    }
}

impl<C, M> ShedLayer<C, M> {
    /// Decide what counts as a drop (a sign of overload) with this classifier.
    pub fn classifier<C2>(self, classifier: C2) -> ShedLayer<C2, M> {
        ShedLayer {
            source: self.source,
            previous: self.previous,
            settings: self.settings,
            classifier,
            _mode: PhantomData,
        }
    }

    /// Answer rejections with [`crate::Error::Rejected`], for services whose requests are not HTTP.
    pub fn typed_errors(self) -> ShedLayer<ErrorsAsFailures, TypedErrors> {
        ShedLayer {
            source: self.source,
            previous: self.previous,
            settings: self.settings,
            classifier: ErrorsAsFailures,
            _mode: PhantomData,
        }
    }

    /// The limiters made so far, by key.
    pub fn limiters(&self) -> Vec<(String, ShedHandle)> {
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
            previous: self.previous.clone(),
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

/// What the shedder makes of a request in the policy's fused stack.
pub(crate) enum Admission {
    /// Admitted: it holds this slot (none where nothing sheds).
    Admitted(Option<super::limiter::Slot>),
    /// Waiting in the queue.
    Queued(Queued),
    /// Refused (already counted).
    Refused(crate::core::Rejection),
}

/// A request waiting in a limiter's queue, in the policy's fused stack.
pub(crate) struct Queued {
    pub(crate) waiting: super::limiter::Waiting,
    class: Criticality,
    settings: Arc<RequestSettings>,
}

impl Queued {
    /// The wait ended without a slot: the rejection (counted).
    pub(crate) fn timed_out(self, method: &'static str) -> crate::core::Rejection {
        let limiter = self.waiting.limiter().clone();
        drop(self.waiting);
        refuse(
            &limiter,
            &self.settings,
            self.class,
            super::limiter::ShedReason::QueueTimeout,
            method,
        )
    }
}

/// Counts a refusal and makes its rejection.
fn refuse(
    limiter: &ShedHandle,
    settings: &RequestSettings,
    class: Criticality,
    reason: super::limiter::ShedReason,
    method: &'static str,
) -> crate::core::Rejection {
    limiter.count_rejection(class, reason);
    let rejection = super::future::shed_rejection(reason, settings);
    crate::core::telemetry::record_rejection(
        &rejection,
        limiter.name().unwrap_or("shared"),
        method,
    );
    rejection
}
