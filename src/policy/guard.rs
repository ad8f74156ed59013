//! Strict mode: a request on a route without a policy of its own is reported, or refused.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

pub use crate::core::Strict;
use crate::core::{Origin, Protocol, Rejection, RejectionKind, ResponseBody};

/// Passes requests on, or answers a strict-mode refusal; built per request by the policy
/// service, outside everything but the observer.
pub struct Guard<S> {
    inner: S,
    refusal: Option<Rejection>,
}

impl<S> Guard<S> {
    pub(crate) fn new(inner: S, refuse: bool) -> Self {
        let refusal = refuse.then(|| {
            Rejection::new(RejectionKind::Misconfigured, Origin::Policy)
                .with_detail("The route has no policy of its own and strict mode refuses it.")
        });
        Self { inner, refusal }
    }
}

impl<S: fmt::Debug> fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("inner", &self.inner)
            .field("refusal", &self.refusal)
            .finish()
    }
}

impl<S, B, RB> Service<Request<B>> for Guard<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, RB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.refusal.take() {
            None => GuardFuture::inner(self.inner.call(request)),
            Some(rejection) => GuardFuture::refused(match Protocol::of(request.headers()) {
                Protocol::Http => rejection.to_http_response(),
                Protocol::Grpc => rejection.to_grpc_response(),
            }),
        }
    }
}

pin_project! {
    /// The future of [`Guard`].
    pub struct GuardFuture<F, RB> {
        #[pin]
        state: State<F, RB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, RB> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<ResponseBody<RB>>> },
    }
}

impl<F, RB> GuardFuture<F, RB> {
    fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    fn refused(response: Response<ResponseBody<RB>>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, RB, E> Future for GuardFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ResponseBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(ResponseBody::new))),
            StateProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
