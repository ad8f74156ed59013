//! The policy service: per request, the route's policy, and the stack built around the inner
//! service from it.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use arc_swap::ArcSwap;
use http::Request;
use tower::{Layer, Service};

use super::guard::{Guard, Strict};
use super::layer::Compiled;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::breaker::{Breaker, BreakerBody};
use crate::core::labels;
use crate::core::map::{self, RouteNode};
use crate::core::{
    CatchPanic, DefaultClassifier, RequestBody, ResponseBody, clock, grpc, route, telemetry,
};
use crate::fault::Fault;
use crate::observe::ObserveBody;
use crate::observe::{Observe, ObserveLayer};
use crate::shed::Shed;
use crate::timeout::Timeout;

/// What the innermost protection wraps: the contract check with the `contract` feature, around
/// the service with its panics caught.
#[cfg(feature = "contract")]
type Checked<S> = crate::contract::ContractService<CatchPanic<S>>;
/// What the innermost protection wraps: the hand-off of the body as a [`RequestBody`], around
/// the service with its panics caught.
#[cfg(not(feature = "contract"))]
type Checked<S> = Handoff<CatchPanic<S>>;

/// The stack a policy puts around a service, outermost first: observe, the strict-mode guard,
/// breaker, timeout, shed, the fault injection of drills (off unless configured), contract,
/// and innermost the catching of the service's panics (a panic is answered `500`/`INTERNAL`
/// and counted as a failure by every layer around it). Private: [`PolicyFuture`] and
/// [`PolicyBody`] are what users see, the same whatever the features.
type Stack<S> = Observe<Guard<Breaker<Timeout<Shed<Fault<Checked<S>>>>>>>;

/// The response body of [`Stack`] around a service answering `RB`.
#[cfg(feature = "contract")]
type StackBody<RB> = ObserveBody<
    ResponseBody<
        ResponseBody<
            BreakerBody<
                ResponseBody<ResponseBody<ResponseBody<ResponseBody<ResponseBody<RB>>>>>,
                DefaultClassifier,
            >,
        >,
    >,
>;
/// The response body of [`Stack`] around a service answering `RB`.
#[cfg(not(feature = "contract"))]
type StackBody<RB> = ObserveBody<
    ResponseBody<
        ResponseBody<
            BreakerBody<
                ResponseBody<ResponseBody<ResponseBody<ResponseBody<RB>>>>,
                DefaultClassifier,
            >,
        >,
    >,
>;

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

pin_project! {
    /// The future of [`PolicyService`]: the policy's whole stack, run for one request.
    pub struct PolicyFuture<S, B>
    where
        S: Service<InnerRequest<B>>,
        S: Clone,
        Stack<S>: Service<Request<B>>,
    {
        #[pin]
        inner: <Stack<S> as Service<Request<B>>>::Future,
        // The route the handler serves, named on the thread while it is polled (the reality
        // map attributes outbound calls to it).
        caller: &'static RouteNode,
    }
}

impl<S, B> fmt::Debug for PolicyFuture<S, B>
where
    S: Service<InnerRequest<B>> + Clone,
    Stack<S>: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyFuture").finish_non_exhaustive()
    }
}

impl<S, B, RB> Future for PolicyFuture<S, B>
where
    S: Service<InnerRequest<B>, Response = http::Response<RB>> + Clone,
    Stack<S>: Service<Request<B>, Response = http::Response<StackBody<RB>>, Error = S::Error>,
{
    type Output = Result<http::Response<PolicyBody<RB>>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _caller = map::enter(this.caller);
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(response.map(|inner| PolicyBody { inner })))
    }
}

pin_project! {
    /// The response body under a policy: the inner service's body `RB`, or a layer's own
    /// answer, watched to its end (the breaker, the limiter and the observer finish the call
    /// when it ends). It has `RB`'s data and error types.
    pub struct PolicyBody<RB> {
        #[pin]
        inner: StackBody<RB>,
    }
}

impl<RB> fmt::Debug for PolicyBody<RB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyBody").finish_non_exhaustive()
    }
}

impl<RB> Body for PolicyBody<RB>
where
    StackBody<RB>: Body,
{
    type Data = <StackBody<RB> as Body>::Data;
    type Error = <StackBody<RB> as Body>::Error;

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

/// Applies each request's policy; see [`PolicyLayer`](super::PolicyLayer).
pub struct PolicyService<S> {
    inner: S,
    current: Arc<ArcSwap<Compiled>>,
    observe: ObserveLayer,
    strict: Strict,
}

impl<S> PolicyService<S> {
    pub(crate) fn new(
        inner: S,
        current: Arc<ArcSwap<Compiled>>,
        observe: ObserveLayer,
        strict: Strict,
    ) -> Self {
        Self {
            inner,
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
    S: Service<InnerRequest<B>, Response = http::Response<RB>> + Clone,
    Stack<S>: Service<Request<B>, Response = http::Response<StackBody<RB>>, Error = S::Error>,
{
    type Response = http::Response<PolicyBody<RB>>;
    type Error = S::Error;
    type Future = PolicyFuture<S, B>;

    /// Every layer of the stack is ready when the inner service is: their `poll_ready` only
    /// delegates.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        let compiled = self.current.load();
        let is_grpc = grpc::is_grpc(request.headers());
        // Outside the router there is no `MatchedPath`: the layer's own matcher names the
        // route, for every layer inside.
        if !is_grpc && route::template(request.extensions()).is_none() {
            if let Some(template) = compiled.match_path(request.uri().path()) {
                let matched = route::MatchedRoute(template.clone());
                request.extensions_mut().insert(matched);
            }
        }
        let template = route::template(request.extensions());
        // A gRPC path names a policy only if it is a well-formed method name.
        let route = template.or_else(|| {
            (is_grpc && grpc::method_key(request.uri().path()).is_some())
                .then(|| request.uri().path())
        });
        let (mut stack, caller) = self.stack(&compiled, inner, route, template.is_some(), &request);
        drop(compiled);
        // One clock read at entry, shared by every layer's admission.
        let _entry = clock::enter(clock::now());
        let _caller = map::enter(caller);
        PolicyFuture {
            inner: stack.call(request),
            caller,
        }
    }
}

impl<S> PolicyService<S> {
    /// `templated`: `route` is a router's template (bounded), not a path from the request.
    fn stack<B>(
        &self,
        compiled: &Compiled,
        inner: S,
        route: Option<&str>,
        templated: bool,
        request: &Request<B>,
    ) -> (Stack<S>, &'static RouteNode) {
        let (entry, explicit) = compiled.entry(request.method(), route);
        let caller = map::route_of(request, &entry.map_cache);
        caller.record_request(entry.criticality, entry.availability);
        let refuse = !explicit && self.strict != Strict::Off && {
            let action = match self.strict {
                Strict::Refuse => "refused",
                _ => "reported",
            };
            // Never a path from the request as a label: only a router's template.
            let label = route
                .filter(|_| templated)
                .unwrap_or(route::UNMATCHED_ROUTE);
            telemetry::record_unmatched_policy(label, labels::method(request.method()), action);
            self.strict == Strict::Refuse
        };
        let inner = CatchPanic::new(inner);
        #[cfg(feature = "contract")]
        let inner = compiled.contract.layer(inner);
        #[cfg(not(feature = "contract"))]
        let inner = Handoff::new(inner);
        let inner = entry.fault.layer(inner);
        let inner = match &entry.shed {
            Some(shed) => shed.layer_with_cache(inner, entry.shed_cache.clone()),
            None => Shed::absent(inner, DefaultClassifier::new()),
        };
        let inner = Timeout::with_config(inner, entry.timeout.clone());
        let inner = match &entry.breaker {
            Some(breaker) => breaker.layer_with_cache(inner, entry.breaker_cache.clone()),
            None => Breaker::absent(inner, DefaultClassifier::new()),
        };
        let stack = self
            .observe
            .layer_with_cache(Guard::new(inner, refuse), entry.observe_cache.clone());
        (stack, caller)
    }
}
