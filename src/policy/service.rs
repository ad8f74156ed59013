//! The policy service: per request, the route's policy, run as one fused state machine.
//!
//! The standalone layers nest a service and a future per layer, each reading the protocol,
//! looking its instance up, reading the clock, classifying the outcome and wrapping the body on
//! its own. Under a policy the stack runs as one future instead: one route lookup, one clock
//! read at entry, one classification shared by the breaker and the shedder, one body wrapper.
//! It calls the same internals as the standalone layers (the observer's start and finish, the
//! breaker's admission and settlement, the timeout's deadline, the shedder's admission, queue
//! and measurement), in the same order, so that a request is treated exactly as the nested
//! layers would treat it: observe → strict-mode guard → breaker → timeout → shed → fault →
//! contract → catch panic → service.

use std::fmt;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::core::reload::{Reloadable, Seen};
use http::{Request, Response};
#[cfg(feature = "contract")]
use tower::Layer;
use tower::Service;
use tracing::Span;

use super::fused::{Held, PolicyBody, PolicyFuture, State, Waiting};
use super::layer::Compiled;
use crate::core::Strict;
use crate::core::clock::Timer;
use crate::core::keyed::RouteKey;

use crate::core::labels;
use crate::core::map::{self};
use crate::core::route::RouteLabel;
use crate::core::{
    Deadline, Origin, Protocol, Rejection, RejectionKind, RequestBody, clock, grpc, route,
    telemetry,
};
use crate::observe::{ObserveLayer, Started};
use crate::shed::Admission;

/// What the fused stack calls once a request is admitted: the service itself (its request's
/// body handed on as a [`RequestBody`]; the fused stack catches its panics), or with the
/// `contract` feature, where the policy has a contract, the contract check around the service
/// with its panics caught.
pub(crate) enum Checked<S> {
    Plain(S),
    #[cfg(feature = "contract")]
    Contract(crate::contract::ContractService<crate::core::CatchPanic<S>>),
}

/// The service whose future is the contract check's (with the `contract` feature), or the
/// plain hand-off (without it: never called, it only gives the stack's bounds one shape).
#[cfg(feature = "contract")]
pub(crate) type Inner<S> = crate::contract::ContractService<crate::core::CatchPanic<S>>;
/// The service whose future is the contract check's (with the `contract` feature), or the
/// plain hand-off (without it: never called, it only gives the stack's bounds one shape).
#[cfg(not(feature = "contract"))]
pub(crate) type Inner<S> = Handoff<S>;

/// The contract check's future, boxed in the fused future: it is large (it may read and check
/// the body), and a request without a contract should not move its room around.
#[cfg(feature = "contract")]
pub(crate) type ContractFuture<S, B> = <Inner<S> as Service<Request<B>>>::Future;
/// Without the `contract` feature there is no contract check.
#[cfg(not(feature = "contract"))]
pub(crate) type ContractFuture<S, B> = NoContract<S, B>;

/// Without the `contract` feature: the future of a contract check that never happens.
#[cfg(not(feature = "contract"))]
pub(crate) struct NoContract<S, B>(
    std::convert::Infallible,
    std::marker::PhantomData<fn() -> (S, B)>,
);

#[cfg(not(feature = "contract"))]
impl<S, B> NoContract<S, B> {
    /// There is no such future.
    pub(crate) fn unreachable(&self) -> ! {
        match self.0 {}
    }
}

/// The state of the fused stack for a request of the policy's service `S`.
pub(crate) type StateOf<S, B> =
    State<<S as Service<InnerRequest<B>>>::Future, ContractFuture<S, B>, Checked<S>, Request<B>>;

impl<S> Checked<S> {
    /// Calls the service (or the contract check around it), catching a panic.
    #[inline(always)]
    pub(crate) fn call<B>(&mut self, request: Request<B>) -> StateOf<S, B>
    where
        S: Service<InnerRequest<B>>,
        Inner<S>: Service<Request<B>>,
    {
        match self {
            Checked::Plain(service) => Self::call_plain(service, request),
            #[cfg(feature = "contract")]
            Checked::Contract(contract) => checked(contract, request),
        }
    }

    /// Calls the service itself, catching a panic.
    #[inline(always)]
    pub(crate) fn call_plain<B>(service: &mut S, request: Request<B>) -> StateOf<S, B>
    where
        S: Service<InnerRequest<B>>,
        Inner<S>: Service<Request<B>>,
    {
        match catch_unwind(AssertUnwindSafe(|| {
            service.call(request.map(RequestBody::new))
        })) {
            Ok(inner) => State::Running { inner },
            Err(panic) => State::Panicked { panic: Some(panic) },
        }
    }
}

/// Calls the contract check (out of line: the plain path stays small).
#[cfg(feature = "contract")]
#[inline(never)]
fn checked<S, B>(contract: &mut Inner<S>, request: Request<B>) -> StateOf<S, B>
where
    S: Service<InnerRequest<B>>,
    Inner<S>: Service<Request<B>>,
{
    match catch_unwind(AssertUnwindSafe(|| Box::pin(contract.call(request)))) {
        Ok(future) => State::Checking { future },
        Err(panic) => State::Panicked { panic: Some(panic) },
    }
}

/// The body the fused stack wraps around a response of the service itself (the same type
/// as the contract check's, so that [`PolicyBody`] has one shape).
#[cfg(feature = "contract")]
#[inline(always)]
pub(crate) fn plain_body<RB>(body: RB) -> crate::core::ResponseBody<InnerBody<RB>> {
    use crate::core::ResponseBody;
    ResponseBody::new(ResponseBody::new(ResponseBody::new(body)))
}
/// The body the fused stack wraps around a response of the service itself.
#[cfg(not(feature = "contract"))]
#[inline(always)]
pub(crate) fn plain_body<RB>(body: RB) -> crate::core::ResponseBody<InnerBody<RB>> {
    crate::core::ResponseBody::new(body)
}

/// The response body of the contract check around a service answering `RB`: the contract's,
/// around the one its panic catcher answers.
#[cfg(feature = "contract")]
pub(crate) type CheckedBody<RB> = crate::core::ResponseBody<crate::core::ResponseBody<RB>>;
/// The response body of [`Checked`] around a service answering `RB`.
#[cfg(not(feature = "contract"))]
pub(crate) type CheckedBody<RB> = RB;

/// The response body of [`Inner`].
pub(crate) type InnerBody<RB> = CheckedBody<RB>;

/// The request the inner service gets under a policy, whichever features are on.
pub type InnerRequest<B> = Request<RequestBody<B>>;

/// Hands the request on with its body as a [`RequestBody`] (what [`Checked::Plain`] does),
/// as a service: without the `contract` feature, the shape of the stack's bounds.
#[cfg(not(feature = "contract"))]
#[derive(Clone, Debug)]
pub(crate) struct Handoff<S> {
    inner: S,
}

#[cfg(not(feature = "contract"))]
impl<S, B> Service<Request<B>> for Handoff<S>
where
    S: Service<Request<RequestBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.inner.call(request.map(RequestBody::new))
    }
}

/// Applies each request's policy; see [`PolicyLayer`](super::PolicyLayer).
pub struct PolicyService<S> {
    inner: S,
    current: Arc<Reloadable<Compiled>>,
    /// The policies this service last saw, with the reload count they were taken at.
    compiled: Seen<Compiled>,
    observe: ObserveLayer,
    strict: Strict,
}

impl<S> PolicyService<S> {
    pub(crate) fn new(
        inner: S,
        current: Arc<Reloadable<Compiled>>,
        observe: ObserveLayer,
        strict: Strict,
    ) -> Self {
        Self {
            inner,
            compiled: current.snapshot(),
            current,
            observe,
            strict,
        }
    }
}

impl<S: Clone> Clone for PolicyService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            current: self.current.clone(),
            compiled: self.compiled.clone(),
            observe: self.observe.clone(),
            strict: self.strict,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for PolicyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Service<Request<B>> for PolicyService<S>
where
    S: Service<InnerRequest<B>, Response = Response<RB>> + Clone,
    Inner<S>: Service<Request<B>, Response = Response<InnerBody<RB>>, Error = S::Error>,
{
    type Response = Response<PolicyBody<RB>>;
    type Error = S::Error;
    type Future = PolicyFuture<S, B>;

    /// Every part of the stack is ready when the inner service is.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline(always)]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        self.current.refresh(&mut self.compiled);
        let compiled = &*self.compiled.1;
        let is_grpc = grpc::is_grpc(request.headers());
        let protocol = if is_grpc {
            Protocol::Grpc
        } else {
            Protocol::Http
        };
        // Outside the router there is no `MatchedPath`: the layer's own matcher names the
        // route, for every part of the stack (and, as the current route while they are called
        // and polled, for the layers inside).
        let mut template = route::template(request.extensions());
        let mut matched = None;
        if !is_grpc && template.is_none() {
            matched = compiled.match_path(request.uri().path());
            template = matched;
        }
        let templated = template.is_some();
        // A gRPC path names a policy only if it is a well-formed method name.
        let method_key = match template {
            None if is_grpc => grpc::method_key(request.uri().path()),
            _ => None,
        };
        let route = template.or_else(|| method_key.map(|_| request.uri().path()));
        // The route as every keyed part reads it, read once.
        let route_key = match (template, method_key) {
            (Some(template), _) => RouteKey::Template(template),
            (None, Some(method)) => RouteKey::GrpcMethod(method),
            (None, None) => RouteKey::Unmatched,
        };
        let (entry, explicit) = compiled.entry(request.method(), route);
        let caller = map::route_node(route_key, &request, &entry.map_cache);
        caller.record_request(entry.criticality, entry.availability);
        let method = labels::method(request.method());
        // One clock read at entry, shared by every part's admission.
        let _entry = clock::enter(clock::now());
        let _caller = map::enter(caller);
        let Started {
            measured,
            span,
            active,
        } = self
            .observe
            .start(&entry.observe_cache, &request, is_grpc, route_key);
        let entered = span.enter();
        let mut held = Held {
            caller,
            protocol,
            method,
            route: match matched {
                Some(template) => RouteLabel::matched(Some(template)),
                None => RouteLabel::of(request.extensions()),
            },
            matched,
            measured: Some(measured),
            active,
            breaker: None,
            slot: None,
            published: None,
            timeout_status: entry.timeout.status(),
            injected: None,
        };
        let answered = |held: Held, span: Span, rejection: Rejection| PolicyFuture {
            state: State::Answered {
                rejection: Some(rejection),
            },
            timer: Timer::Idle { deadline: None },
            held,
            span,
        };
        // Strict mode: a route without a policy of its own is reported, or refused (observed,
        // never seen by the breaker).
        if !explicit && self.strict != Strict::Off {
            let action = match self.strict {
                Strict::Refuse => "refused",
                _ => "reported",
            };
            // Never a path from the request as a label: only a router's template.
            let label = route
                .filter(|_| templated)
                .unwrap_or(route::UNMATCHED_ROUTE);
            telemetry::record_unmatched_policy(label, method, action);
            if self.strict == Strict::Refuse {
                let rejection = Rejection::new(RejectionKind::Misconfigured, Origin::Policy)
                    .with_detail("The route has no policy of its own and strict mode refuses it.");
                drop(entered);
                return answered(held, span, rejection);
            }
        }
        if let Some(breaker) = &entry.breaker {
            match breaker.admit(route_key, &request, &entry.breaker_cache, method) {
                Ok(guard) => held.breaker = Some(guard),
                Err(rejection) => {
                    drop(entered);
                    return answered(held, span, rejection);
                }
            }
        }
        let admitted = match crate::timeout::admit(&entry.timeout, &request, &held.route, method) {
            Ok(admitted) => admitted,
            Err(rejection) => {
                telemetry::record_rejection(&rejection, held.route.as_str(), method);
                drop(entered);
                return answered(held, span, rejection);
            }
        };
        held.published = admitted.published;
        let timer = Timer::Idle {
            deadline: Some(admitted.deadline.instant()),
        };
        let _published = held.publish();
        // The service as the stack calls it: with the policy's contract check around it, if any.
        let checked = |inner: S| {
            #[cfg(feature = "contract")]
            if let Some(contract) = &compiled.contract {
                return Checked::Contract(contract.layer(crate::core::CatchPanic::new(inner)));
            }
            Checked::Plain(inner)
        };
        let admission = match &entry.shed {
            Some(shed) => {
                // The deadline the request is served under (the one just published).
                let deadline = held.published.or_else(|| Deadline::of(&request));
                shed.admit(route_key, &request, &entry.shed_cache, method, deadline)
            }
            None => Admission::Admitted(None),
        };
        let state = match admission {
            Admission::Admitted(slot) => {
                held.slot = slot;
                let injected = entry.fault.decide(&request);
                match checked(inner) {
                    // The common case, straight to the service.
                    Checked::Plain(mut inner) if injected.is_none() => {
                        Checked::call_plain(&mut inner, request)
                    }
                    checked => State::serve(checked, request, injected, &mut held),
                }
            }
            Admission::Queued(queued) => State::Waiting {
                waiting: Box::pin(Waiting {
                    timer: tokio::time::sleep_until(queued.waiting.until),
                    queued: Some(queued),
                    fault: entry.fault.clone(),
                    service: Some(checked(inner)),
                    request: Some(request),
                }),
            },
            Admission::Refused(rejection) => State::Answered {
                rejection: Some(rejection),
            },
        };
        drop(entered);
        PolicyFuture {
            state,
            timer,
            held,
            span,
        }
    }
}
