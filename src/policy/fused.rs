//! The policy's fused future and response body: the whole stack, run for one request as one
//! state machine (see [`super::service`] for how a request enters it).
//!
//! Long on purpose: the state machine's states (served, checked by a contract, queued,
//! delayed, panicked, answered) and what the request holds through them are one piece.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;
use tracing::Span;

use super::service::{Checked, Inner, InnerBody, InnerRequest, StateOf, plain_body};
use crate::breaker::{CallGuard, EndOfCall as BreakerEnd};
use crate::core::clock::Timer;
use crate::core::map::{self, RouteNode};
use crate::core::route::{RouteLabel, RouteScope};
use crate::core::{
    Classified, Classify, Deadline, DefaultClassifier, OnEndOfStream, Origin, Outcome, Protocol,
    Rejection, ResponseBody, TrackedBody, clock, deadline, telemetry,
};
use crate::fault::{FaultLayer, InjectedFault};
use crate::observe::{Active, EndOfCall as ObserveEnd, Measured};
use crate::shed::{Queued, Slot, signals_overload};

/// What a request under a policy holds while it is served: its labels, its observation, its
/// breaker call and shedder slot. Settled once, when the response head is ready.
pub(crate) struct Held {
    pub(crate) caller: &'static RouteNode,
    pub(crate) protocol: Protocol,
    pub(crate) method: &'static str,
    /// The route as the timeout labels its rejections.
    pub(crate) route: RouteLabel,
    /// The template the layer matched itself (placed around the whole router), made the
    /// current route while the inner service is called and polled.
    pub(crate) matched: Option<&'static str>,
    pub(crate) measured: Option<Measured>,
    pub(crate) active: Option<Active>,
    pub(crate) breaker: Option<CallGuard>,
    pub(crate) slot: Option<Slot>,
    /// The deadline published to the inner service while it is called and polled.
    pub(crate) published: Option<Deadline>,
    pub(crate) timeout_status: StatusCode,
    /// The fault injected into the request for a drill, if any (in its response extensions).
    pub(crate) injected: Option<InjectedFault>,
}

impl Held {
    /// The stack answers `rejection` itself (after the breaker admitted the call, it counts it
    /// as it counts any response).
    fn answer<RB, E>(
        &mut self,
        span: &Span,
        rejection: Rejection,
    ) -> Result<Response<PolicyBody<RB>>, E> {
        // One clock read at the end, shared by the shedder's and the observer's measures.
        let _exit = clock::enter(clock::now());
        let response = rejection.to_response(self.protocol);
        let classified = Classify::<_, E>::classify_response(&DefaultClassifier::new(), &response);
        Ok(self.respond(span, response, classified, |body| body))
    }

    /// The inner service answered (or failed): one classification, for the shedder and the
    /// breaker; then the observer. The response's body becomes a [`PolicyBody`] through `body`,
    /// in one move.
    #[inline(always)]
    pub(crate) fn complete<X, RB, E>(
        &mut self,
        span: &Span,
        result: Result<Response<X>, E>,
        body: impl FnOnce(X) -> ResponseBody<InnerBody<RB>>,
    ) -> Result<Response<PolicyBody<RB>>, E> {
        let mut result = result;
        if let (Ok(response), Some(injected)) = (&mut result, self.injected) {
            response.extensions_mut().insert(injected);
        }
        // One clock read at the end, shared by the shedder's and the observer's measures.
        let _exit = clock::enter(clock::now());
        let classifier = DefaultClassifier::new();
        let classified = match &result {
            Ok(response) => Classify::<_, E>::classify_response(&classifier, response),
            Err(error) => Classified::Done(Classify::<Response<X>, E>::classify_error(
                &classifier,
                error,
            )),
        };
        if let Some(slot) = self.slot.take() {
            if slot.measures() {
                let outcome = match classified {
                    Classified::Done(outcome) => outcome,
                    // Streaming: the head came back, which is all the slot covers.
                    Classified::AtEndOfStream => Outcome::Success,
                };
                slot.finish(signals_overload(outcome));
            }
        }
        match result {
            Ok(response) => Ok(self.respond(span, response, classified, body)),
            Err(error) => {
                if let Some(guard) = self.breaker.take() {
                    crate::breaker::settle(guard, classified, false, &classifier);
                }
                self.active = None;
                if let Some(measured) = self.measured.take() {
                    measured.fail::<E>(span);
                }
                Err(error)
            }
        }
    }

    /// Settles the breaker's call and the observation on a response head.
    #[inline(always)]
    fn respond<X, RB>(
        &mut self,
        span: &Span,
        response: Response<X>,
        classified: Classified,
        body: impl FnOnce(X) -> ResponseBody<InnerBody<RB>>,
    ) -> Response<PolicyBody<RB>> {
        let breaker = self.breaker.take().and_then(|guard| {
            crate::breaker::settle(guard, classified, true, &DefaultClassifier::new())
        });
        self.active = None;
        let observe = self
            .measured
            .take()
            .and_then(|measured| crate::observe::finish(measured, span, &response));
        let ends = (breaker.is_some() || observe.is_some()).then_some(Ends { breaker, observe });
        response.map(|inner| PolicyBody {
            inner: TrackedBody::new(body(inner), ends),
        })
    }

    /// Makes the request's published deadline and matched route current on this thread, for
    /// the layers inside, while the returned scopes live (the service is called or polled).
    #[inline(always)]
    pub(crate) fn publish(&self) -> (deadline::DeadlineScope, RouteScope) {
        (
            deadline::enter(self.published),
            crate::core::route::enter(self.matched),
        )
    }

    /// Polls the service's future (or the contract check's) with the request's deadline and
    /// route current, catching a panic.
    #[inline(always)]
    fn poll_inner<F: Future>(
        &self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> std::thread::Result<Poll<F::Output>> {
        let _published = self.publish();
        catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
    }

    /// The inner service panicked (when called or polled): answered 500 (gRPC `INTERNAL`) in
    /// its place, counted as its response would be.
    #[cold]
    fn panicked<RB, E>(
        &mut self,
        span: &Span,
        panic: &(dyn std::any::Any + Send),
    ) -> Result<Response<PolicyBody<RB>>, E> {
        let rejection = crate::core::panic::rejection(panic);
        let response = rejection.to_response(self.protocol);
        self.complete(span, Ok(response), |body| body)
    }

    /// The deadline passed while the request was served (or waited).
    #[cold]
    fn expired<RB, E>(&mut self, span: &Span) -> Result<Response<PolicyBody<RB>>, E> {
        let _exit = clock::enter(clock::now());
        // As when the timeout drops the shedder's future: the slot goes back (an adaptive
        // limit hears of it as a drop).
        self.slot = None;
        let rejection = crate::timeout::expired(self.timeout_status, Origin::Timeout);
        telemetry::record_rejection(&rejection, self.route.as_str(), self.method);
        self.answer(span, rejection)
    }
}

pin_project! {
    /// The future of [`PolicyService`]: the policy's whole stack, run for one request.
    pub struct PolicyFuture<S, B>
    where
        S: Service<InnerRequest<B>>,
        S: Clone,
        Inner<S>: Service<Request<B>>,
    {
        #[pin]
        pub(crate) state: StateOf<S, B>,
        #[pin]
        pub(crate) timer: Timer,
        pub(crate) held: Held,
        // The request's server span (a disabled one when nobody listens).
        pub(crate) span: Span,
    }
}

pin_project! {
    #[project = StateProj]
    pub(crate) enum State<F, C, S, R> {
        // Admitted: the service's future.
        Running { #[pin] inner: F },
        // Admitted under a contract: the contract check's future, around the service's.
        Checking { future: Pin<Box<C>> },
        // Waiting in the shedder's queue. Boxed: only a request that waits pays for the room.
        Waiting { waiting: Pin<Box<Waiting<S, R>>> },
        // Delayed by an injected fault (a drill), then served or aborted. Boxed, as rare.
        Delayed { delayed: Pin<Box<Delayed<S, R>>> },
        // Answered by the stack itself (or done).
        Answered { rejection: Option<Rejection> },
        // The inner service panicked when called: answered in its place.
        Panicked { panic: Option<Box<dyn std::any::Any + Send>> },
    }
}

pin_project! {
    /// A request waiting for a slot, with the ready inner service that will serve it.
    pub(crate) struct Waiting<S, R> {
        pub(crate) queued: Option<Queued>,
        // The faults to inject once it is admitted.
        pub(crate) fault: FaultLayer,
        #[pin]
        pub(crate) timer: Sleep,
        pub(crate) service: Option<S>,
        pub(crate) request: Option<R>,
    }
}

pin_project! {
    /// A request held back by an injected delay, with the ready inner service that will serve
    /// it (unless the fault also aborts it).
    pub(crate) struct Delayed<S, R> {
        #[pin]
        sleep: Sleep,
        service: Option<S>,
        request: Option<R>,
    }
}

impl<S, B> StateOf<S, B>
where
    S: Service<InnerRequest<B>>,
    Inner<S>: Service<Request<B>>,
{
    /// Serves an admitted request: calls `service` at once, or after the delay of an injected
    /// fault (one that aborts is answered in the service's place when the delay is over).
    #[inline(always)]
    pub(crate) fn serve(
        mut service: Checked<S>,
        request: Request<B>,
        injected: Option<InjectedFault>,
        held: &mut Held,
    ) -> Self {
        held.injected = injected;
        match injected {
            None => service.call(request),
            Some(injected) => State::Delayed {
                delayed: Box::pin(Delayed {
                    sleep: tokio::time::sleep(injected.delay.unwrap_or_default()),
                    service: Some(service),
                    request: Some(request),
                }),
            },
        }
    }
}

impl<S, B> fmt::Debug for PolicyFuture<S, B>
where
    S: Service<InnerRequest<B>> + Clone,
    Inner<S>: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyFuture").finish_non_exhaustive()
    }
}

/// Serves a request whose service (or contract check) was called: polls its future, and
/// completes the stack with its answer, its panic, or the deadline's expiry. The state is
/// set to `Answered` (dropping the future) before the stack completes.
macro_rules! serve {
    ($future:expr, $state:expr, $timer:expr, $held:expr, $span:expr, $cx:expr, $body:expr) => {{
        let polled = match $held.poll_inner($future, $cx) {
            Ok(polled) => polled,
            Err(panic) => {
                // Dropping the inner future may panic again: not under the stack.
                $state.set(State::Answered { rejection: None });
                return Poll::Ready($held.panicked($span, &*panic));
            }
        };
        if let Poll::Ready(result) = polled {
            $state.set(State::Answered { rejection: None });
            return Poll::Ready($held.complete($span, result, $body));
        }
        ready!($timer.as_mut().poll_expired($cx));
        // Dropping the inner future cancels the work it was doing.
        $state.set(State::Answered { rejection: None });
        return Poll::Ready($held.expired($span));
    }};
}

impl<S, B, RB> Future for PolicyFuture<S, B>
where
    S: Service<InnerRequest<B>, Response = Response<RB>> + Clone,
    Inner<S>: Service<Request<B>, Response = Response<InnerBody<RB>>, Error = S::Error>,
{
    type Output = Result<Response<PolicyBody<RB>>, S::Error>;

    /// The hot path, an admitted request's service future, inline; the other states (queued,
    /// delayed, checked by a contract, answered by the stack) out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let held = this.held;
        let span = &*this.span;
        let _caller = map::enter(held.caller);
        let _span = span.enter();
        if let StateProj::Running { inner } = this.state.as_mut().project() {
            serve!(inner, this.state, this.timer, held, span, cx, plain_body)
        }
        poll_states(this.state, this.timer, held, span, cx)
    }
}

/// Runs the state machine of a [`PolicyFuture`] from any state.
#[inline(never)]
fn poll_states<S, B, RB>(
    mut state: Pin<&mut StateOf<S, B>>,
    mut timer: Pin<&mut Timer>,
    held: &mut Held,
    span: &Span,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<PolicyBody<RB>>, S::Error>>
where
    S: Service<InnerRequest<B>, Response = Response<RB>> + Clone,
    Inner<S>: Service<Request<B>, Response = Response<InnerBody<RB>>, Error = S::Error>,
{
    loop {
        match state.as_mut().project() {
            StateProj::Running { inner } => {
                serve!(inner, state, timer, held, span, cx, plain_body)
            }
            #[cfg(feature = "contract")]
            StateProj::Checking { future } => {
                serve!(
                    future.as_mut(),
                    state,
                    timer,
                    held,
                    span,
                    cx,
                    ResponseBody::new
                )
            }
            #[cfg(not(feature = "contract"))]
            StateProj::Checking { future } => future.unreachable(),
            StateProj::Waiting { waiting } => {
                let waiting = waiting.as_mut().project();
                let queued = waiting
                    .queued
                    .as_mut()
                    .expect("PolicyFuture polled after completion");
                let receiver = &mut queued.waiting.receiver;
                let slot = match Pin::new(&mut *receiver).poll(cx) {
                    Poll::Ready(result) => result.ok(),
                    Poll::Pending => {
                        if timer.as_mut().poll_expired(cx).is_ready() {
                            state.set(State::Answered { rejection: None });
                            return Poll::Ready(held.expired(span));
                        }
                        ready!(waiting.timer.poll(cx));
                        // Out of time; a slot may still have been sent in the meantime.
                        receiver.close();
                        receiver.try_recv().ok()
                    }
                };
                let queued = waiting.queued.take().expect("checked above");
                match slot {
                    Some(slot) => {
                        drop(queued);
                        held.slot = Some(slot);
                        let service = waiting
                            .service
                            .take()
                            .expect("a waiting request holds its service");
                        let request = waiting
                            .request
                            .take()
                            .expect("a waiting request holds its request");
                        let injected = waiting.fault.decide(&request);
                        let next = {
                            let _published = held.publish();
                            State::serve(service, request, injected, held)
                        };
                        state.set(next);
                    }
                    None => {
                        let rejection = queued.timed_out(held.method);
                        state.set(State::Answered {
                            rejection: Some(rejection),
                        });
                    }
                }
            }
            StateProj::Delayed { delayed } => {
                let delayed = delayed.as_mut().project();
                if delayed.sleep.poll(cx).is_pending() {
                    ready!(timer.as_mut().poll_expired(cx));
                    state.set(State::Answered { rejection: None });
                    return Poll::Ready(held.expired(span));
                }
                let request = delayed
                    .request
                    .take()
                    .expect("a delayed request is served once");
                let mut service = delayed
                    .service
                    .take()
                    .expect("a delayed request is served once");
                if let Some(injected) = held.injected.filter(|injected| injected.abort.is_some()) {
                    drop((service, request));
                    let status = injected.abort.expect("filtered above");
                    let response = crate::fault::aborted(status, held.protocol == Protocol::Grpc);
                    state.set(State::Answered { rejection: None });
                    return Poll::Ready(held.complete(span, Ok(response), |body| body));
                }
                let next = {
                    let _published = held.publish();
                    service.call(request)
                };
                state.set(next);
            }
            StateProj::Panicked { panic } => {
                let panic = panic.take().expect("PolicyFuture polled after completion");
                state.set(State::Answered { rejection: None });
                return Poll::Ready(held.panicked(span, &*panic));
            }
            StateProj::Answered { rejection } => {
                let rejection = rejection
                    .take()
                    .expect("PolicyFuture polled after completion");
                return Poll::Ready(held.answer(span, rejection));
            }
        }
    }
}

/// What a response body under a policy reports its end to: the breaker's call still open (a
/// successful head whose body is still to come, or a gRPC status in the trailers) and the
/// observer's measurement of a streaming gRPC call.
pub(crate) struct Ends {
    pub(crate) breaker: Option<BreakerEnd<DefaultClassifier>>,
    pub(crate) observe: Option<ObserveEnd>,
}

impl OnEndOfStream for Ends {
    fn on_end(self, trailers: Option<&HeaderMap>) {
        if let Some(breaker) = self.breaker {
            breaker.on_end(trailers);
        }
        if let Some(observe) = self.observe {
            observe.on_end(trailers);
        }
    }

    fn on_error(self) {
        if let Some(breaker) = self.breaker {
            breaker.on_error();
        }
        if let Some(observe) = self.observe {
            observe.on_error();
        }
    }
}

pin_project! {
    /// The response body under a policy: the inner service's body `RB`, or a layer's own
    /// answer, watched to its end (the breaker and the observer finish the call when it ends).
    /// It has `RB`'s data and error types.
    pub struct PolicyBody<RB> {
        #[pin]
        pub(crate) inner: TrackedBody<ResponseBody<InnerBody<RB>>, Ends>,
    }
}

impl<RB> fmt::Debug for PolicyBody<RB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyBody").finish_non_exhaustive()
    }
}

impl<RB> Body for PolicyBody<RB>
where
    RB: Body,
    RB::Data: From<bytes::Bytes>,
{
    type Data = RB::Data;
    type Error = RB::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
