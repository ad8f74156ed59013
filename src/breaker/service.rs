//! The circuit breaker service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use metrics::SharedString;
use tower::Service;

use super::future::{BreakerBody, Guard, ResponseFuture};
use super::handle::BreakerHandle;
use super::layer::{RouteCache, Source};
use super::state::Refusal;
use crate::core::labels;
use crate::core::{
    Classify, DefaultClassifier, Error, Origin, Protocol, ProtocolResponses, Rejection,
    RejectionKind, ResponseBody, TypedErrors,
};

/// Fails fast while its breaker is open; see the [module docs](super).
pub struct Breaker<S, C = DefaultClassifier, M = ProtocolResponses> {
    inner: S,
    source: Source,
    cache: Arc<RouteCache>,
    classifier: C,
    _mode: PhantomData<fn() -> M>,
}

impl<S, C, M> Breaker<S, C, M> {
    pub(crate) fn with(inner: S, source: Source, classifier: C) -> Self {
        Self::with_cache(inner, source, Arc::default(), classifier)
    }

    /// With a cache shared with other services (the policy layer builds one per request).
    pub(crate) fn with_cache(
        inner: S,
        source: Source,
        cache: Arc<RouteCache>,
        classifier: C,
    ) -> Self {
        Self {
            inner,
            source,
            cache,
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

impl<S: Clone, C: Clone, M> Clone for Breaker<S, C, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            source: self.source.clone(),
            cache: self.cache.clone(),
            classifier: self.classifier.clone(),
            _mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, C, M> fmt::Debug for Breaker<S, C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

pub(crate) fn open_rejection(refusal: Refusal) -> Rejection {
    let rejection = Rejection::new(RejectionKind::CircuitOpen, Origin::Breaker).with_detail(
        "the circuit breaker is open: the service is failing and sheds calls until it recovers",
    );
    match refusal.retry_after_nanos {
        Some(nanos) => rejection.with_retry_after(Duration::from_nanos(nanos)),
        None => rejection,
    }
}

impl<S, C: Clone, M> Breaker<S, C, M> {
    /// Admits the call through `breaker`, or answers for the inner service.
    fn admit<F>(
        &mut self,
        breaker: BreakerHandle,
        protocol: Protocol,
        method: &'static str,
        call: impl FnOnce(&mut S) -> F,
    ) -> ResponseFuture<F, C, M> {
        breaker.name_once(|| SharedString::const_str("shared"));
        match breaker.acquire() {
            Ok(permit) => {
                let guard = Guard::new(permit);
                let future = call(&mut self.inner);
                ResponseFuture::running(future, guard, self.classifier.clone(), protocol)
            }
            Err((refused, breaker)) => {
                let rejection = open_rejection(refused.refusal());
                ResponseFuture::rejected(
                    rejection,
                    breaker,
                    method,
                    self.classifier.clone(),
                    protocol,
                )
            }
        }
    }
}

impl<S, C, B, ResBody> Service<Request<B>> for Breaker<S, C, ProtocolResponses>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    C: Classify<Response<ResBody>, S::Error> + Clone,
{
    type Response = Response<ResponseBody<BreakerBody<ResBody, C>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C, ProtocolResponses>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let protocol = Protocol::of(request.headers());
        let breaker = self.source.for_request(&request, &self.cache);
        let method = labels::method(request.method());
        self.admit(breaker, protocol, method, |inner| inner.call(request))
    }
}

/// For any request type: rejections are [`Error::Rejected`].
impl<S, C, Req> Service<Req> for Breaker<S, C, TypedErrors>
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

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let breaker = self.source.default_instance();
        self.admit(breaker, Protocol::Http, "", |inner| inner.call(request))
    }
}
