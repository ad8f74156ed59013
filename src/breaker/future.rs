//! The circuit breaker's response future, and the body that finishes a streaming call.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Response};
use pin_project_lite::pin_project;

use super::handle::{BreakerHandle, BreakerPermit};
use super::state::Verdict;
use crate::core::telemetry;
use crate::core::{
    Classified, Classify, ClassifyTrailers, DefaultClassifier, Error, OnEndOfStream, Outcome,
    Protocol, ProtocolResponses, Rejection, Reply, ResponseBody, TrackedBody, TypedErrors,
};

/// An admitted call in flight: the public permit. Dropped unfinished (the response future or
/// the streaming body was dropped), it gives its permit back and counts for nothing.
pub(crate) struct Guard {
    permit: BreakerPermit,
}

impl Guard {
    pub(crate) fn new(permit: BreakerPermit) -> Self {
        Self { permit }
    }

    fn complete(mut self, verdict: Verdict) {
        self.finish(verdict);
    }

    fn finish(&mut self, verdict: Verdict) {
        self.permit.settle(verdict, None);
    }
}

fn verdict(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Success => Verdict::Success,
        Outcome::Failure(_) => Verdict::Failure,
        Outcome::Rejected(_) => Verdict::Ignored,
    }
}

/// Settles a call whose response (or error, `ok` false) was classified: at once, or when its
/// body ends. A successful head with a body still to come keeps the call open: a body that
/// fails is a failure (a body dropped before its end stays the success it was); a gRPC status
/// in trailers is read there.
pub(crate) fn settle<C: Clone>(
    guard: Guard,
    classified: Classified,
    ok: bool,
    classifier: &C,
) -> Option<EndOfCall<C>> {
    match classified {
        Classified::Done(Outcome::Success) if ok => Some(EndOfCall {
            guard,
            classifier: classifier.clone(),
            settled: Some(Verdict::Success),
        }),
        Classified::Done(outcome) => {
            guard.complete(verdict(outcome));
            None
        }
        Classified::AtEndOfStream => Some(EndOfCall {
            guard,
            classifier: classifier.clone(),
            settled: None,
        }),
    }
}

/// A call whose outcome is in its trailers (a streaming gRPC response), or whose successful
/// head still has a body to send: the response body finishes it when the stream ends, and a
/// body that fails counts as a failure.
pub struct EndOfCall<C> {
    guard: Guard,
    classifier: C,
    /// The outcome already known from the head (a success), kept unless the body fails; also
    /// what a body dropped before its end (the caller went away) counts as.
    settled: Option<Verdict>,
}

impl<C: ClassifyTrailers> OnEndOfStream for EndOfCall<C> {
    fn on_end(mut self, trailers: Option<&HeaderMap>) {
        let verdict = match self.settled.take() {
            Some(settled) => settled,
            None => verdict(self.classifier.classify_trailers(trailers)),
        };
        self.guard.finish(verdict);
    }

    fn on_error(mut self) {
        self.settled = None;
        self.guard.finish(Verdict::Failure);
    }
}

impl<C> Drop for EndOfCall<C> {
    fn drop(&mut self) {
        if let Some(settled) = self.settled.take() {
            self.guard.finish(settled);
        }
    }
}

impl<C> std::fmt::Debug for EndOfCall<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndOfCall").finish_non_exhaustive()
    }
}

/// The response body of a breaker in front of an HTTP service: the inner body, which finishes
/// the call at its end when the outcome is in the trailers.
pub type BreakerBody<B, C = DefaultClassifier> = TrackedBody<B, EndOfCall<C>>;

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::core::ProtocolResponses {}
    impl Sealed for crate::core::TypedErrors {}
}

/// How a breaker hands results on in each reply mode. Implemented for [`ProtocolResponses`]
/// (the body of a streaming response finishes the call) and [`TypedErrors`] (the response head
/// is as far as the breaker looks).
pub trait BreakerReply<Res, E, C>: sealed::Sealed {
    /// The breaker's response type.
    type Response;
    /// The breaker's error type.
    type Error;

    #[doc(hidden)]
    fn forward(
        result: Result<Res, E>,
        pending: Option<EndOfCall<C>>,
    ) -> Result<Self::Response, Self::Error>;

    #[doc(hidden)]
    fn reject(protocol: Protocol, rejection: Rejection) -> Result<Self::Response, Self::Error>;
}

impl<B, E, C> BreakerReply<Response<B>, E, C> for ProtocolResponses {
    type Response = Response<ResponseBody<BreakerBody<B, C>>>;
    type Error = E;

    fn forward(
        result: Result<Response<B>, E>,
        pending: Option<EndOfCall<C>>,
    ) -> Result<Self::Response, E> {
        result
            .map(|response| response.map(|body| ResponseBody::new(TrackedBody::new(body, pending))))
    }

    fn reject(protocol: Protocol, rejection: Rejection) -> Result<Self::Response, E> {
        <ProtocolResponses as Reply<Response<BreakerBody<B, C>>, E>>::reject(protocol, rejection)
    }
}

impl<Res, E, C> BreakerReply<Res, E, C> for TypedErrors {
    type Response = Res;
    type Error = Error<E>;

    fn forward(result: Result<Res, E>, pending: Option<EndOfCall<C>>) -> Result<Res, Error<E>> {
        // Not an HTTP body to watch: a response head is a success (dropping the pending call
        // records what the head settled).
        if let Some(mut pending) = pending {
            let settled = pending.settled.take().unwrap_or(Verdict::Success);
            pending.guard.finish(settled);
        }
        <TypedErrors as Reply<Res, E>>::forward(result)
    }

    fn reject(protocol: Protocol, rejection: Rejection) -> Result<Res, Error<E>> {
        <TypedErrors as Reply<Res, E>>::reject(protocol, rejection)
    }
}

pin_project! {
    /// The response future of [`Breaker`](super::Breaker).
    pub struct ResponseFuture<F, C, M> {
        #[pin]
        state: State<F>,
        classifier: C,
        protocol: Protocol,
        _mode: PhantomData<fn() -> M>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] inner: F, guard: Option<Guard> },
        Rejected { rejection: Option<Rejection>, breaker: BreakerHandle, method: &'static str },
    }
}

impl<F, C, M> ResponseFuture<F, C, M> {
    pub(crate) fn running(inner: F, guard: Guard, classifier: C, protocol: Protocol) -> Self {
        Self {
            state: State::Running {
                inner,
                guard: Some(guard),
            },
            classifier,
            protocol,
            _mode: PhantomData,
        }
    }

    pub(crate) fn rejected(
        rejection: Rejection,
        breaker: BreakerHandle,
        method: &'static str,
        classifier: C,
        protocol: Protocol,
    ) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
                breaker,
                method,
            },
            classifier,
            protocol,
            _mode: PhantomData,
        }
    }
}

impl<F, C, M, Res, E> Future for ResponseFuture<F, C, M>
where
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E> + Clone,
    M: BreakerReply<Res, E, C>,
{
    type Output = Result<M::Response, M::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Running { inner, guard } => {
                let result = ready!(inner.poll(cx));
                let guard = guard
                    .take()
                    .expect("ResponseFuture polled after completion");
                let classified = match &result {
                    Ok(response) => this.classifier.classify_response(response),
                    Err(error) => Classified::Done(this.classifier.classify_error(error)),
                };
                let pending = settle(guard, classified, result.is_ok(), this.classifier);
                Poll::Ready(M::forward(result, pending))
            }
            StateProj::Rejected {
                rejection,
                breaker,
                method,
            } => {
                let rejection = rejection
                    .take()
                    .expect("ResponseFuture polled after completion");
                telemetry::record_rejection(&rejection, breaker.name().unwrap_or("shared"), method);
                Poll::Ready(M::reject(*this.protocol, rejection))
            }
        }
    }
}
