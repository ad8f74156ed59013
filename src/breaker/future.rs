//! The circuit breaker's response future.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use metrics::SharedString;
use pin_project_lite::pin_project;

use super::handle::{BreakerHandle, Call};
use super::state::Verdict;
use crate::core::telemetry;
use crate::core::{Classified, Classify, Outcome, Protocol, Rejection, Reply};

/// An admitted call in flight. Dropped unfinished (the response future was cancelled), it gives
/// its permit back and counts for nothing.
pub(crate) struct Guard {
    breaker: BreakerHandle,
    call: Option<Call>,
}

impl Guard {
    pub(crate) fn new(breaker: BreakerHandle, call: Call) -> Self {
        Self {
            breaker,
            call: Some(call),
        }
    }

    fn complete(mut self, verdict: Verdict) {
        if let Some(call) = self.call.take() {
            self.breaker.complete(call, verdict);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.breaker.cancel(call);
        }
    }
}

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker).
    pub struct ResponseFuture<F, C, M> {
        #[pin]
        state: State<F>,
        classifier: C,
        protocol: Protocol,
        breaker: SharedString,
        _mode: PhantomData<fn() -> M>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] inner: F, guard: Option<Guard> },
        Rejected { rejection: Option<Rejection> },
    }
}

impl<F, C, M> ResponseFuture<F, C, M> {
    pub(crate) fn running(
        inner: F,
        guard: Guard,
        classifier: C,
        protocol: Protocol,
        breaker: SharedString,
    ) -> Self {
        Self {
            state: State::Running {
                inner,
                guard: Some(guard),
            },
            classifier,
            protocol,
            breaker,
            _mode: PhantomData,
        }
    }

    pub(crate) fn rejected(
        rejection: Rejection,
        classifier: C,
        protocol: Protocol,
        breaker: SharedString,
    ) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
            },
            classifier,
            protocol,
            breaker,
            _mode: PhantomData,
        }
    }
}

fn verdict(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Success => Verdict::Success,
        Outcome::Failure(_) => Verdict::Failure,
        Outcome::Rejected(_) => Verdict::Ignored,
    }
}

impl<F, C, M, Res, E> Future for ResponseFuture<F, C, M>
where
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
    M: Reply<Res, E>,
{
    type Output = Result<M::Response, M::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Running { inner, guard } => {
                let result = ready!(inner.poll(cx));
                let outcome = match &result {
                    Ok(response) => match this.classifier.classify_response(response) {
                        Classified::Done(outcome) => outcome,
                        // A gRPC status in the trailers: the call got a response head, which
                        // is as far as this breaker looks.
                        Classified::AtEndOfStream => Outcome::Success,
                    },
                    Err(error) => this.classifier.classify_error(error),
                };
                if let Some(guard) = guard.take() {
                    guard.complete(verdict(outcome));
                }
                Poll::Ready(M::forward(result))
            }
            StateProj::Rejected { rejection } => {
                let rejection = rejection
                    .take()
                    .expect("ResponseFuture polled after completion");
                telemetry::record_rejection(&rejection, this.breaker);
                Poll::Ready(M::reject(*this.protocol, rejection))
            }
        }
    }
}
