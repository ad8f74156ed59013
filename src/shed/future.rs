//! The load shedder's response future.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::StatusCode;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use super::layer::RequestSettings;
use super::limiter::{ShedHandle, ShedReason, Slot, Waiting};
use crate::core::Criticality;
use crate::core::grpc::Code;
use crate::core::telemetry;
use crate::core::{
    Classified, Classify, FailureReason, Origin, Outcome, Protocol, Rejection, RejectionKind, Reply,
};

pin_project! {
    /// The response future of [`Shed`](super::Shed). Its slot is given back when the response
    /// head is ready, or when the future is dropped; the response body is not covered. A request
    /// waiting in the queue holds the inner service (ready) and the request until it gets a slot.
    pub struct ResponseFuture<F, S, Req, C, M> {
        #[pin]
        state: State<F, S, Req>,
        classifier: C,
        protocol: Protocol,
        // The request's method label, for a rejection (`""` for a request that is not HTTP).
        method: &'static str,
        class: Criticality,
        _mode: PhantomData<fn() -> M>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req> {
        // Boxed: only a request that waits pays for the room a waiter needs.
        Queued { queued: Pin<Box<Queued<S, Req>>> },
        Running { #[pin] inner: F, slot: Option<Slot> },
        Rejected { rejection: Option<Rejection>, limiter: ShedHandle },
    }
}

pin_project! {
    /// A request waiting for a slot, with the ready inner service that will serve it.
    #[project = QueuedProj]
    struct Queued<S, Req> {
        waiting: Option<Waiting>,
        #[pin]
        timer: Sleep,
        service: Option<S>,
        request: Option<Req>,
        settings: Arc<RequestSettings>,
    }
}

/// The rejection of a shed request.
pub(crate) fn shed_rejection(reason: ShedReason, settings: &RequestSettings) -> Rejection {
    Rejection::new(RejectionKind::Overloaded, Origin::Shed)
        .with_grpc_code(settings.grpc_code)
        .with_retry_after(settings.retry_after)
        .with_detail(reason.detail())
}

impl<F, S, Req, C, M> ResponseFuture<F, S, Req, C, M> {
    pub(crate) fn running(inner: F, slot: Slot, classifier: C, class: Criticality) -> Self {
        // The protocol shapes rejections only, and an admitted request is not rejected.
        let state = State::Running {
            inner,
            slot: Some(slot),
        };
        Self::with(state, classifier, (Protocol::Http, ""), class)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn queued(
        waiting: Waiting,
        service: S,
        request: Req,
        settings: Arc<RequestSettings>,
        classifier: C,
        protocol: (Protocol, &'static str),
        class: Criticality,
    ) -> Self {
        let timer = tokio::time::sleep_until(waiting.until);
        let queued = Box::pin(Queued {
            waiting: Some(waiting),
            timer,
            service: Some(service),
            request: Some(request),
            settings,
        });
        Self::with(State::Queued { queued }, classifier, protocol, class)
    }

    pub(crate) fn rejected(
        rejection: Rejection,
        limiter: ShedHandle,
        classifier: C,
        protocol: (Protocol, &'static str),
        class: Criticality,
    ) -> Self {
        Self::with(
            State::Rejected {
                rejection: Some(rejection),
                limiter,
            },
            classifier,
            protocol,
            class,
        )
    }

    fn with(
        state: State<F, S, Req>,
        classifier: C,
        (protocol, method): (Protocol, &'static str),
        class: Criticality,
    ) -> Self {
        Self {
            state,
            classifier,
            protocol,
            method,
            class,
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

/// What a queued request turns into.
enum Next<F> {
    Run(F, Slot),
    Reject(Rejection, ShedHandle),
}

impl<F, S, Req, C, M, Res, E> Future for ResponseFuture<F, S, Req, C, M>
where
    S: Service<Req, Future = F>,
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
    M: Reply<Res, E>,
{
    type Output = Result<M::Response, M::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Queued { queued } => {
                    let QueuedProj {
                        waiting,
                        timer,
                        service,
                        request,
                        settings,
                    } = queued.as_mut().project();
                    let queued = waiting
                        .as_mut()
                        .expect("ResponseFuture polled after completion");
                    let slot = match Pin::new(&mut queued.receiver).poll(cx) {
                        Poll::Ready(result) => result.ok(),
                        Poll::Pending => {
                            ready!(timer.poll(cx));
                            // Out of time; a slot may still have been sent in the meantime.
                            queued.receiver.close();
                            queued.receiver.try_recv().ok()
                        }
                    };
                    let queued = waiting.take().expect("checked above");
                    match slot {
                        Some(slot) => {
                            drop(queued);
                            let mut service =
                                service.take().expect("a queued request holds its service");
                            let request =
                                request.take().expect("a queued request holds its request");
                            Next::Run(service.call(request), slot)
                        }
                        None => {
                            let limiter = queued.limiter().clone();
                            drop(queued);
                            limiter.count_rejection(*this.class, ShedReason::QueueTimeout);
                            Next::Reject(
                                shed_rejection(ShedReason::QueueTimeout, settings),
                                limiter,
                            )
                        }
                    }
                }
                StateProj::Running { inner, slot } => {
                    let result = ready!(inner.poll(cx));
                    if let Some(slot) = slot.take().filter(Slot::measures) {
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
                    return Poll::Ready(M::forward(result));
                }
                StateProj::Rejected { rejection, limiter } => {
                    let rejection = rejection
                        .take()
                        .expect("ResponseFuture polled after completion");
                    telemetry::record_rejection(
                        &rejection,
                        limiter.name().unwrap_or("shared"),
                        this.method,
                    );
                    return Poll::Ready(M::reject(*this.protocol, rejection));
                }
            };
            match next {
                Next::Run(inner, slot) => this.state.set(State::Running {
                    inner,
                    slot: Some(slot),
                }),
                Next::Reject(rejection, limiter) => this.state.set(State::Rejected {
                    rejection: Some(rejection),
                    limiter,
                }),
            }
        }
    }
}
