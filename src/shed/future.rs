//! The load shedder's response future.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::StatusCode;
use pin_project_lite::pin_project;

use super::limiter::{LimiterHandle, Slot};
use crate::core::grpc::Code;
use crate::core::telemetry;
use crate::core::{
    Classified, Classify, FailureReason, Outcome, Protocol, Rejection, RejectionKind, Reply,
};

pin_project! {
    /// The response future of [`Shed`](super::Shed). Its slot is given back when the response
    /// head is ready, or when the future is dropped; the response body is not covered.
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
        Running { #[pin] inner: F, slot: Option<Slot> },
        Rejected { rejection: Option<Rejection>, limiter: LimiterHandle },
    }
}

impl<F, C, M> ResponseFuture<F, C, M> {
    pub(crate) fn running(inner: F, slot: Slot, classifier: C, protocol: Protocol) -> Self {
        Self {
            state: State::Running {
                inner,
                slot: Some(slot),
            },
            classifier,
            protocol,
            _mode: PhantomData,
        }
    }

    pub(crate) fn rejected(
        rejection: Rejection,
        limiter: LimiterHandle,
        classifier: C,
        protocol: Protocol,
    ) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
                limiter,
            },
            classifier,
            protocol,
            _mode: PhantomData,
        }
    }
}

/// Whether an outcome says the work downstream is overloaded: a timeout, or an overload answer
/// from further in. The adaptive limits shrink on such drops.
pub(crate) fn signals_overload(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Failure(FailureReason::Rejected(RejectionKind::Timeout)) => true,
        Outcome::Failure(FailureReason::HttpStatus(status)) => {
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT
        }
        Outcome::Failure(FailureReason::GrpcStatus(code)) => {
            matches!(
                code,
                Code::DeadlineExceeded | Code::Unavailable | Code::ResourceExhausted
            )
        }
        Outcome::Rejected(kind) => kind == RejectionKind::Overloaded,
        _ => false,
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
            StateProj::Running { inner, slot } => {
                let result = ready!(inner.poll(cx));
                if let Some(slot) = slot.take() {
                    let outcome = match &result {
                        Ok(response) => match this.classifier.classify_response(response) {
                            Classified::Done(outcome) => outcome,
                            // Streaming: the head came back, which is all the slot covers.
                            Classified::AtEndOfStream => Outcome::Success,
                        },
                        Err(error) => this.classifier.classify_error(error),
                    };
                    slot.finish(signals_overload(outcome));
                }
                Poll::Ready(M::forward(result))
            }
            StateProj::Rejected { rejection, limiter } => {
                let rejection = rejection
                    .take()
                    .expect("ResponseFuture polled after completion");
                telemetry::record_rejection(&rejection, limiter.name().unwrap_or("shared"));
                Poll::Ready(M::reject(*this.protocol, rejection))
            }
        }
    }
}
