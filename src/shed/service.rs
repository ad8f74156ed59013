//! The load shedding service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use metrics::SharedString;
use tower::Service;

use super::future::ResponseFuture;
use super::layer::RequestSettings;
use super::limiter::LimiterHandle;
use super::priority::Criticality;
use crate::core::keyed::{KeyCache, Source};
use crate::core::{
    Classify, DefaultClassifier, Error, Origin, Protocol, ProtocolResponses, Rejection,
    RejectionKind, ResponseBody, TypedErrors,
};

/// Admits requests up to its limiter's concurrency limit and answers the rest at once; see the
/// [module docs](super).
pub struct Shed<S, C = DefaultClassifier, M = ProtocolResponses> {
    inner: S,
    source: Source<LimiterHandle>,
    cache: Arc<KeyCache<LimiterHandle>>,
    settings: Arc<RequestSettings>,
    classifier: C,
    _mode: PhantomData<fn() -> M>,
}

impl<S, C, M> Shed<S, C, M> {
    pub(crate) fn with(
        inner: S,
        source: Source<LimiterHandle>,
        settings: Arc<RequestSettings>,
        classifier: C,
    ) -> Self {
        Self {
            inner,
            source,
            cache: Arc::default(),
            settings,
            classifier,
            _mode: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
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

impl<S, C: Clone, M> Shed<S, C, M> {
    /// Admits the call under `limiter`, or answers for the inner service.
    fn admit<F>(
        &mut self,
        limiter: LimiterHandle,
        class: Criticality,
        protocol: Protocol,
        call: impl FnOnce(&mut S) -> F,
    ) -> ResponseFuture<F, C, M> {
        limiter.name_once(|| SharedString::const_str("shared"));
        match limiter.acquire(class) {
            Some(slot) => {
                let future = call(&mut self.inner);
                ResponseFuture::running(future, slot, self.classifier.clone(), protocol)
            }
            None => {
                let rejection = Rejection::new(RejectionKind::Overloaded, Origin::Shed)
                    .with_grpc_code(self.settings.grpc_code)
                    .with_retry_after(self.settings.retry_after)
                    .with_detail("the service is at its concurrency limit; try again shortly");
                ResponseFuture::rejected(rejection, limiter, self.classifier.clone(), protocol)
            }
        }
    }
}

impl<S, C, B, ResBody> Service<Request<B>> for Shed<S, C, ProtocolResponses>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    C: Classify<Response<ResBody>, S::Error> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C, ProtocolResponses>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let protocol = Protocol::of(request.headers());
        let class = self.settings.criticality(&request);
        let limiter = self.source.for_request(&request, &self.cache);
        self.admit(limiter, class, protocol, |inner| inner.call(request))
    }
}

/// For any request type: requests are of the default class; rejections are [`Error::Rejected`].
impl<S, C, Req> Service<Req> for Shed<S, C, TypedErrors>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, C, TypedErrors>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let limiter = self.source.default_instance();
        let class = self.settings.default_criticality;
        self.admit(limiter, class, Protocol::Http, |inner| inner.call(request))
    }
}
