//! The contract service: what to check for each request, and the verdicts.

use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use super::Direction;
use super::config::{ContractConfig, Mode};
use super::future::ResponseFuture;
use super::model::{Compiled, Operation};
use super::spec::Contract;
use super::violation::Collector;
use crate::core::RequestBody;
use crate::core::grpc::Code;
use crate::core::labels;
use crate::core::{ConfigError, Origin, Rejection, RejectionKind, ResponseBody, telemetry};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Checks requests against a [`Contract`] before the inner service sees them, and its
/// responses after. See the [module docs](super).
pub struct ContractService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ContractService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for ContractService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ContractService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Service<Request<B>> for ContractService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<RB>> + Clone,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body,
    RB::Data: From<Bytes>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, RB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The body may have to be read before the inner service is called: take the service
        // that `poll_ready` readied, and leave a clone for the next call.
        let clone = self.inner.clone();
        let service = mem::replace(&mut self.inner, clone);
        self.shared.begin(service, request)
    }
}

/// What a request leads to once its body is read: the inner service, or an answer.
// Made once per request and moved straight into a call or a return: boxing would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Next<B, RB> {
    Call(Request<RequestBody<B>>),
    Answer(Response<ResponseBody<RB>>),
}

/// Per-route modes and the response sampler.
pub(crate) struct RouteRuntime {
    pub(crate) requests: Mode,
    pub(crate) responses: Mode,
    sample_rate: f64,
    seen: AtomicU64,
}

impl RouteRuntime {
    /// Deterministic sampling: the n-th response is checked when `floor(n * rate)` moves.
    pub(crate) fn sampled(&self) -> bool {
        if self.sample_rate >= 1.0 {
            return true;
        }
        if self.sample_rate <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.sample_rate).floor() > (n * self.sample_rate).floor()
    }
}

/// What every clone of the service shares: the compiled contract and the settings.
pub(crate) struct Shared {
    pub(crate) compiled: Arc<Compiled>,
    pub(crate) config: ContractConfig,
    pub(crate) routes: HashMap<Arc<str>, RouteRuntime>,
    /// Nothing to check on an HTTP request: no route documented, undocumented ones pass, and
    /// no size limit applies to them (a policy layer without a contract).
    pub(crate) http_passes: bool,
}

/// The operation a request is for, carried to the checks of its body and its response.
#[derive(Clone)]
pub(crate) struct OperationRef {
    pub(crate) template: Arc<str>,
    pub(crate) method: Method,
    pub(crate) operation: Arc<Operation>,
}

impl fmt::Debug for OperationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationRef")
            .field("template", &self.template)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(contract: Contract, config: ContractConfig) -> Result<Self, ConfigError> {
        let compiled = contract.compiled;
        for template in config.routes.keys() {
            if !compiled.routes.contains_key(template.as_str()) {
                return Err(ConfigError::new(
                    "routes",
                    format!("`{template}` is not a route of the contract"),
                ));
            }
        }
        let routes = compiled
            .routes
            .keys()
            .map(|template| {
                let modes = config.routes.get(&**template).copied().unwrap_or_default();
                let runtime = RouteRuntime {
                    requests: modes.requests.unwrap_or(config.requests),
                    responses: modes.responses.unwrap_or(config.responses),
                    sample_rate: modes
                        .response_sample_rate
                        .unwrap_or(config.response_sample_rate),
                    seen: AtomicU64::new(0),
                };
                (template.clone(), runtime)
            })
            .collect();
        let http_passes = compiled.routes.is_empty()
            && config.undocumented == super::Undocumented::Pass
            && config.requests != Mode::Enforce;
        Ok(Self {
            compiled,
            config,
            routes,
            http_passes,
        })
    }

    /// The problem response for a request rejection, in the user's shape if one is set.
    pub(crate) fn problem_response<RB>(&self, rejection: &Rejection) -> Response<ResponseBody<RB>> {
        let Some(format) = &self.config.problem else {
            return rejection.to_http_response();
        };
        let mut response = format(rejection).map(ResponseBody::full);
        response.extensions_mut().insert(rejection.clone());
        response
    }

    /// A request rejection made, counted and logged; the violations listed on it.
    pub(crate) fn request_rejection_of(
        &self,
        route: &str,
        method: &'static str,
        violations: Collector,
        rejection: Rejection,
    ) -> Rejection {
        self.count(route, method, Direction::Request, &violations);
        let (listed, omitted) = violations.into_parts();
        let rejection = rejection.with_violations(listed, omitted);
        telemetry::record_rejection(&rejection, route, method);
        rejection
    }

    pub(crate) fn request_rejection<RB>(
        &self,
        at: &OperationRef,
        status: StatusCode,
        detail: &'static str,
        violations: Collector,
    ) -> Response<ResponseBody<RB>> {
        let rejection = Rejection::new(RejectionKind::InvalidRequest, Origin::Contract)
            .with_status(status)
            .with_detail(detail);
        self.problem_response(&self.request_rejection_of(
            &at.template,
            labels::method(&at.method),
            violations,
            rejection,
        ))
    }

    /// A gRPC call rejected: `RESOURCE_EXHAUSTED` for a message too large, else
    /// `INVALID_ARGUMENT`.
    pub(crate) fn grpc_rejection<RB>(
        &self,
        path: &str,
        code: Code,
        violations: Collector,
    ) -> Response<ResponseBody<RB>> {
        let detail = match code {
            Code::ResourceExhausted => "The request message is too large.",
            _ => "The request breaks the contract.",
        };
        let rejection = Rejection::new(RejectionKind::InvalidRequest, Origin::Contract)
            .with_grpc_code(code)
            .with_detail(detail);
        // gRPC calls are POSTs.
        self.request_rejection_of(path, "POST", violations, rejection)
            .to_grpc_response()
    }

    pub(crate) fn count(
        &self,
        route: &str,
        method: &'static str,
        direction: Direction,
        violations: &Collector,
    ) {
        let (listed, omitted) = (violations.listed(), violations.omitted());
        telemetry::record_contract_violations(route, method, direction.as_str(), listed, omitted);
    }

    /// Report mode for a request's violations: logged and counted on its operation.
    pub(crate) fn report_request(&self, at: &OperationRef, violations: &Collector) {
        self.report(
            &at.template,
            labels::method(&at.method),
            Direction::Request,
            violations,
        );
    }

    /// Report mode: the violations are logged and counted; the message goes on.
    pub(crate) fn report(
        &self,
        route: &str,
        method: &'static str,
        direction: Direction,
        violations: &Collector,
    ) {
        self.count(route, method, direction, violations);
        tracing::warn!(
            target: "steadfast::contract",
            route,
            direction = direction.as_str(),
            violations = ?violations.listed(),
            omitted = violations.omitted(),
            "contract violated (report mode)"
        );
    }
}
