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
    Deadline, Origin, Protocol, Rejection, RejectionKind, RequestBody, clock, deadline, grpc,
    route, telemetry,
};
use crate::observe::{ObserveLayer, Started};
use crate::shed::Admission;

/// What the fused stack calls, with the `contract` feature: the contract check around the
/// service with its panics caught, or where the policy has no contract, the hand-off alone
/// (the fused stack catches its panics itself). The contract's future is boxed: it is large
/// (it may read and check the body), and a request without a contract should not move its
/// room around.
#[cfg(feature = "contract")]
pub(crate) enum Checked<S> {
    Contract(crate::contract::ContractService<crate::core::CatchPanic<S>>),
    Plain(Handoff<S>),
}

#[cfg(feature = "contract")]
impl<S, B, RB> Service<Request<B>> for Checked<S>
where
    S: Service<InnerRequest<B>, Response = Response<RB>>,
    crate::contract::ContractService<crate::core::CatchPanic<S>>:
        Service<Request<B>, Response = Response<CheckedBody<RB>>, Error = S::Error>,
{
    type Response = Response<CheckedBody<RB>>;
    type Error = S::Error;
    type Future = CheckedFuture<
        <crate::contract::ContractService<crate::core::CatchPanic<S>> as Service<Request<B>>>::Future,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Checked::Contract(contract) => contract.poll_ready(cx),
            Checked::Plain(plain) => plain.poll_ready(cx),
        }
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self {
            Checked::Contract(contract) => CheckedFuture::Contract {
                future: Box::pin(contract.call(request)),
            },
            Checked::Plain(plain) => CheckedFuture::Plain {
                future: plain.call(request),
            },
        }
    }
}

#[cfg(feature = "contract")]
pin_project_lite::pin_project! {
    /// The future of [`Checked`].
    #[project = CheckedProj]
    pub(crate) enum CheckedFuture<C, P> {
        Contract { future: std::pin::Pin<Box<C>> },
        Plain { #[pin] future: P },
    }
}

#[cfg(feature = "contract")]
impl<C, P, RB, E> std::future::Future for CheckedFuture<C, P>
where
    C: std::future::Future<Output = Result<Response<CheckedBody<RB>>, E>>,
    P: std::future::Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<CheckedBody<RB>>, E>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CheckedProj::Contract { future } => future.as_mut().poll(cx),
            CheckedProj::Plain { future } => future.poll(cx).map(|result| {
                result.map(|response| {
                    response.map(|body| {
                        crate::core::ResponseBody::new(crate::core::ResponseBody::new(body))
                    })
                })
            }),
        }
    }
}
/// What the fused stack calls: the hand-off of the body as a [`RequestBody`] (the fused stack
/// catches the service's panics itself).
#[cfg(not(feature = "contract"))]
pub(crate) type Checked<S> = Handoff<S>;

/// The response body of [`Checked`] around a service answering `RB`: the contract's, around
/// the one its panic catcher answers.
#[cfg(feature = "contract")]
pub(crate) type CheckedBody<RB> = crate::core::ResponseBody<crate::core::ResponseBody<RB>>;
/// The response body of [`Checked`] around a service answering `RB`.
#[cfg(not(feature = "contract"))]
pub(crate) type CheckedBody<RB> = RB;

/// The service the fused stack calls once a request is admitted (fault injection for drills
/// is part of the fused stack).
pub(crate) type Inner<S> = Checked<S>;

/// The response body of [`Inner`].
pub(crate) type InnerBody<RB> = CheckedBody<RB>;

/// The request the inner service gets under a policy, whichever features are on.
pub type InnerRequest<B> = Request<RequestBody<B>>;

/// Hands the request on with its body as a [`RequestBody`], where no contract check does it,
/// so that the inner service's request type is the same with and without the `contract`
/// feature.
#[derive(Clone, Debug)]
pub(crate) struct Handoff<S> {
    inner: S,
}

impl<S> Handoff<S> {
    #[cfg_attr(feature = "contract", allow(dead_code))]
    fn new(inner: S) -> Self {
        Self { inner }
    }
}

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

    #[inline]
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
        let _published = deadline::enter(held.published);
        let _route = crate::core::route::enter(held.matched);
        #[cfg(feature = "contract")]
        let inner = match &compiled.contract {
            Some(contract) => {
                Checked::Contract(contract.layer(crate::core::CatchPanic::new(inner)))
            }
            None => Checked::Plain(Handoff::new(inner)),
        };
        #[cfg(not(feature = "contract"))]
        let inner = Handoff::new(inner);
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
                State::serve(inner, request, injected, &mut held)
            }
            Admission::Queued(queued) => State::Waiting {
                waiting: Box::pin(Waiting {
                    timer: tokio::time::sleep_until(queued.waiting.until),
                    queued: Some(queued),
                    fault: entry.fault.clone(),
                    service: Some(inner),
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
