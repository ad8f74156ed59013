//! The load shedding service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use metrics::SharedString;
use tower::Service;

use super::future::{ResponseFuture, shed_rejection};
use super::layer::RequestSettings;
use super::limiter::ShedHandle;
use crate::core::Criticality;
use crate::core::keyed::{KeyCache, Source};
use crate::core::labels;
use crate::core::{
    Classify, Deadline, DefaultClassifier, Error, Protocol, ProtocolResponses, ResponseBody,
    TypedErrors,
};

/// Admits requests up to its limiter's concurrency limit and answers the rest at once; see the
/// [module docs](super).
pub struct Shed<S, C = DefaultClassifier, M = ProtocolResponses> {
    inner: S,
    source: Source<ShedHandle>,
    cache: Arc<KeyCache<ShedHandle>>,
    settings: Arc<RequestSettings>,
    classifier: C,
    _mode: PhantomData<fn() -> M>,
}

impl<S, C, M> Shed<S, C, M> {
    pub(crate) fn with(
        inner: S,
        source: Source<ShedHandle>,
        settings: Arc<RequestSettings>,
        classifier: C,
    ) -> Self {
        Self::with_cache(inner, source, Arc::default(), settings, classifier)
    }

    /// With a cache shared with other services (the policy layer builds one per request).
    pub(crate) fn with_cache(
        inner: S,
        source: Source<ShedHandle>,
        cache: Arc<KeyCache<ShedHandle>>,
        settings: Arc<RequestSettings>,
        classifier: C,
    ) -> Self {
        Self {
            inner,
            source,
            cache,
            settings,
            classifier,
            _mode: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C: Clone, M> Clone for Shed<S, C, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            source: self.source.clone(),
            cache: self.cache.clone(),
            settings: self.settings.clone(),
            classifier: self.classifier.clone(),
            _mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, C, M> fmt::Debug for Shed<S, C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, C: Clone, M> Shed<S, C, M> {
    /// Admits the request under `limiter`, queues it, or answers for the inner service.
    /// `protocol` (the protocol, the method label and the request's deadline) is read only
    /// when the request is not admitted at once.
    fn admit<Req>(
        &mut self,
        limiter: ShedHandle,
        class: Criticality,
        protocol: impl FnOnce(&Req) -> (Protocol, &'static str, Option<Deadline>),
        request: Req,
    ) -> ResponseFuture<S::Future, S, Req, C, M>
    where
        S: Service<Req>,
    {
        limiter.name_once(|| SharedString::const_str("shared"));
        let limiter = match limiter.acquire(class) {
            Ok(slot) => {
                let future = self.inner.call(request);
                return ResponseFuture::running(future, slot, self.classifier.clone(), class);
            }
            Err(limiter) => limiter,
        };
        let (protocol, method, deadline) = protocol(&request);
        let protocol = (protocol, method);
        match limiter.wait(class, deadline) {
            Ok(waiting) => {
                // The waiter takes the instance that is ready; this service keeps a clone,
                // which the caller will make ready before its next call.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let settings = self.settings.clone();
                ResponseFuture::queued(
                    waiting,
                    ready,
                    request,
                    settings,
                    self.classifier.clone(),
                    protocol,
                    class,
                )
            }
            Err(reason) => {
                limiter.count_rejection(class, reason);
                let rejection = shed_rejection(reason, &self.settings);
                ResponseFuture::rejected(
                    rejection,
                    limiter,
                    self.classifier.clone(),
                    protocol,
                    class,
                )
            }
        }
    }
}

impl<S, C, B, ResBody> Service<Request<B>> for Shed<S, C, ProtocolResponses>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    C: Classify<Response<ResBody>, S::Error> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, Request<B>, C, ProtocolResponses>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let class = self.settings.criticality(&request);
        let limiter = self.source.for_request(&request, &self.cache);
        let protocol = |request: &Request<B>| {
            (
                Protocol::of(request.headers()),
                labels::method(request.method()),
                Deadline::of(request),
            )
        };
        self.admit(limiter, class, protocol, request)
    }
}

/// For any request type: requests are of the default class; rejections are [`Error::Rejected`].
impl<S, C, Req> Service<Req> for Shed<S, C, TypedErrors>
where
    S: Service<Req> + Clone,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, S, Req, C, TypedErrors>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let limiter = self.source.default_instance();
        let class = self.settings.default_criticality;
        self.admit(
            limiter,
            class,
            |_: &Req| (Protocol::Http, "", None),
            request,
        )
    }
}
