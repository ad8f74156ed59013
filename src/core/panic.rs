//! Panics in the inner service, caught and answered.
//!
//! A handler that panics would otherwise unwind through every layer: each gives back what it
//! holds (slots, permits), but none sees an outcome, so a handler that always panics trips
//! nothing and is counted nowhere. [`CatchPanic`] turns the panic into a
//! [`RejectionKind::Panicked`] answer (`500` problem+json, or `INTERNAL` for gRPC) and so lets
//! the breaker, the limiter and the metrics around it count a failure — what tower-http's
//! `CatchPanic` does for a plain service. The policy stack catches panics the same way in its
//! own future (and puts `CatchPanic` inside a contract check), with the same answer.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use super::{Origin, Protocol, ProtocolResponses, Rejection, RejectionKind, Reply, ResponseBody};

/// Catches panics of the inner service, in `call` and while its future is polled, and answers
/// them with a [`RejectionKind::Panicked`] rejection in the request's protocol.
#[derive(Clone, Debug)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> CatchPanic<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let protocol = Protocol::of(request.headers());
        let state = match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => State::Running { future },
            Err(panic) => State::Panicked { panic: Some(panic) },
        };
        CatchPanicFuture { state, protocol }
    }
}

pin_project! {
    /// The future of [`CatchPanic`].
    pub struct CatchPanicFuture<F> {
        #[pin]
        state: State<F>,
        protocol: Protocol,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F },
        Panicked { panic: Option<Box<dyn Any + Send>> },
    }
}

impl<F> fmt::Debug for CatchPanicFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatchPanicFuture").finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for CatchPanicFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ResponseBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let protocol = *this.protocol;
        let panic = match this.state.project() {
            StateProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Ready(result)) => {
                        return Poll::Ready(ProtocolResponses::forward(result));
                    }
                    Ok(Poll::Pending) => return Poll::Pending,
                    Err(panic) => panic,
                }
            }
            StateProj::Panicked { panic } => panic.take().expect("polled after completion"),
        };
        Poll::Ready(ProtocolResponses::reject(
            protocol,
            rejection(panic.as_ref()),
        ))
    }
}

/// The rejection answering a panic: logged with its message, never sent to the caller.
pub(crate) fn rejection(panic: &(dyn Any + Send)) -> Rejection {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)");
    tracing::error!(target: "steadfast::policy", panic = message, "the handler panicked; answered 500");
    Rejection::new(RejectionKind::Panicked, Origin::Policy)
        .with_detail("The service failed while handling the request.")
}
