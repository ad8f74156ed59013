//! The policy service: per request, the route's policy, and the stack built around the inner
//! service from it.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::Request;
use tower::{Layer, Service};

use super::guard::{Guard, Strict};
use super::layer::Compiled;
use crate::breaker::CircuitBreaker;
use crate::core::{CatchPanic, grpc, route, telemetry};
use crate::fault::Fault;
use crate::observe::{Observe, ObserveLayer};
use crate::shed::Shed;
use crate::timeout::Timeout;

/// What the innermost protection wraps: the contract check with the `contract` feature, around
/// the service with its panics caught.
#[cfg(feature = "contract")]
pub type Checked<S> = crate::contract::ContractService<CatchPanic<S>>;
/// What the innermost protection wraps: the service with its panics caught (and the contract
/// check with the `contract` feature).
#[cfg(not(feature = "contract"))]
pub type Checked<S> = CatchPanic<S>;

/// The request the inner service gets: its body wrapped by the contract check with the
/// `contract` feature.
#[cfg(feature = "contract")]
pub type InnerRequest<B> = Request<crate::contract::ContractBody<B>>;
/// The request the inner service gets: its body wrapped by the contract check with the
/// `contract` feature.
#[cfg(not(feature = "contract"))]
pub type InnerRequest<B> = Request<B>;

/// The stack a policy puts around a service, outermost first: observe, the strict-mode guard,
/// breaker, timeout, shed, the fault injection of drills (off unless configured), contract,
/// and innermost the catching of the service's panics (a
/// panic is answered `500`/`INTERNAL` and counted as a failure by every layer around it).
pub type Stack<S> = Observe<Guard<CircuitBreaker<Timeout<Shed<Fault<Checked<S>>>>>>>;

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

impl<S, B> Service<Request<B>> for PolicyService<S>
where
    S: Service<InnerRequest<B>> + Clone,
    Stack<S>: Service<Request<B>, Error = S::Error>,
{
    type Response = <Stack<S> as Service<Request<B>>>::Response;
    type Error = S::Error;
    type Future = <Stack<S> as Service<Request<B>>>::Future;

    /// Every layer of the stack is ready when the inner service is: their `poll_ready` only
    /// delegates.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

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
        let mut stack = self.stack(
            &compiled,
            inner,
            route,
            template.is_some(),
            request.method(),
        );
        drop(compiled);
        stack.call(request)
    }
}

impl<S> PolicyService<S> {
    /// `templated`: `route` is a router's template (bounded), not a path from the request.
    fn stack(
        &self,
        compiled: &Compiled,
        inner: S,
        route: Option<&str>,
        templated: bool,
        method: &http::Method,
    ) -> Stack<S> {
        let (entry, explicit) = compiled.entry(method, route);
        let refuse = !explicit && self.strict != Strict::Off && {
            let action = match self.strict {
                Strict::Refuse => "refused",
                _ => "reported",
            };
            // Never a path from the request as a label: only a router's template.
            let label = route
                .filter(|_| templated)
                .unwrap_or(route::UNMATCHED_ROUTE);
            telemetry::record_unmatched_policy(label, action);
            self.strict == Strict::Refuse
        };
        let inner = CatchPanic::new(inner);
        #[cfg(feature = "contract")]
        let inner = compiled.contract.layer(inner);
        let inner = entry.fault.layer(inner);
        let inner = entry.shed.layer_with_cache(inner, entry.shed_cache.clone());
        let inner = Timeout::with_config(inner, entry.timeout.clone());
        let inner = entry
            .breaker
            .layer_with_cache(inner, entry.breaker_cache.clone());
        self.observe.layer(Guard::new(inner, refuse))
    }
}
