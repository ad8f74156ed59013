//! The response future shared by the server-side and outbound timeout services.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::StatusCode;
use pin_project_lite::pin_project;

use crate::core::Deadline;
use crate::core::clock::{Instant, Timer};
use crate::core::deadline;
use crate::core::route::RouteLabel;
use crate::core::telemetry;
use crate::core::{Origin, Protocol, Rejection, Reply};

pin_project! {
    /// The response future of [`Timeout`](super::Timeout) and
    /// [`PropagateDeadline`](super::PropagateDeadline).
    ///
    /// It polls the inner future first, and arms its timer only once the inner future is
    /// pending, so a response that is ready at once costs no timer. When the deadline passes the
    /// inner future is dropped on the spot, cancelling its work, and the caller gets the
    /// timeout rejection.
    pub struct ResponseFuture<F, M> {
        #[pin]
        state: State<F>,
        protocol: Protocol,
        route: RouteLabel,
        // The request's method label (`""` for a request that is not HTTP).
        method: &'static str,
        origin: Origin,
        timeout_status: StatusCode,
        // The deadline published as the current one while the inner future is polled.
        published: Option<Deadline>,
        _mode: PhantomData<fn() -> M>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] inner: F, #[pin] timer: Timer },
        Rejected { rejection: Option<Rejection> },
    }
}

impl<F, M> ResponseFuture<F, M> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn running(
        inner: F,
        deadline: Option<Instant>,
        published: Option<Deadline>,
        protocol: Protocol,
        route: RouteLabel,
        method: &'static str,
        origin: Origin,
        timeout_status: StatusCode,
    ) -> Self {
        Self {
            state: State::Running {
                inner,
                timer: Timer::new(deadline),
            },
            protocol,
            route,
            method,
            origin,
            timeout_status,
            published,
            _mode: PhantomData,
        }
    }

    pub(crate) fn rejected(
        rejection: Rejection,
        protocol: Protocol,
        route: RouteLabel,
        method: &'static str,
    ) -> Self {
        Self {
            origin: rejection.origin(),
            timeout_status: rejection.status(),
            state: State::Rejected {
                rejection: Some(rejection),
            },
            protocol,
            route,
            method,
            published: None,
            _mode: PhantomData,
        }
    }
}

impl<F, M, Res, E> Future for ResponseFuture<F, M>
where
    F: Future<Output = Result<Res, E>>,
    M: Reply<Res, E>,
{
    type Output = Result<M::Response, M::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let rejection = match this.state.as_mut().project() {
            StateProj::Running { inner, timer } => {
                let polled = {
                    let _published = deadline::enter(*this.published);
                    inner.poll(cx)
                };
                if let Poll::Ready(result) = polled {
                    return Poll::Ready(M::forward(result));
                }
                ready!(timer.poll_expired(cx));
                super::service::expired(*this.timeout_status, *this.origin)
            }
            StateProj::Rejected { rejection } => rejection
                .take()
                .expect("ResponseFuture polled after completion"),
        };
        // Dropping the inner future here cancels the work it was doing.
        this.state.set(State::Rejected { rejection: None });
        telemetry::record_rejection(&rejection, this.route.as_str(), this.method);
        Poll::Ready(M::reject(*this.protocol, rejection))
    }
}
