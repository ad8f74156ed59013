//! The contract service: what to check for each request, and the verdicts.

use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use super::config::{ContractConfig, Mode, Undocumented};
use super::future::{OverflowCheck, ReadPlan, ResponseCheck, ResponseFuture};
use super::grpc::FrameChecker;
use super::model::{BodyKind, Compiled, Media, Operation, essence, find_media};
use super::params;
use super::spec::Contract;
use super::violation::Collector;
use super::{Direction, ValidatedJson};
use crate::core::grpc::Code;
use crate::core::labels;
use crate::core::{ConfigError, Origin, Rejection, RejectionKind, ResponseBody, route, telemetry};
use crate::core::{Overflow, RequestBody};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
struct RouteRuntime {
    requests: Mode,
    responses: Mode,
    sample_rate: f64,
    seen: AtomicU64,
}

impl RouteRuntime {
    /// Deterministic sampling: the n-th response is checked when `floor(n * rate)` moves.
    fn sampled(&self) -> bool {
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
    routes: HashMap<Arc<str>, RouteRuntime>,
}

/// The operation a request is for, found again when its body or its response is checked.
#[derive(Clone, Debug)]
pub(crate) struct OperationRef {
    pub(crate) template: Arc<str>,
    pub(crate) method: Method,
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
        Ok(Self {
            compiled,
            config,
            routes,
        })
    }

    pub(crate) fn operation(&self, at: &OperationRef) -> &Operation {
        self.compiled.routes[&at.template]
            .operation(&at.method)
            .expect("an operation found once is found again")
    }

    fn begin<S, B, RB>(
        self: &Arc<Self>,
        service: S,
        request: Request<B>,
    ) -> ResponseFuture<S, B, RB>
    where
        S: Service<Request<RequestBody<B>>, Response = Response<RB>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        if crate::core::grpc::is_grpc(request.headers()) {
            return self.begin_grpc(service, request);
        }
        let path = request.uri().path();
        let found = route::template(request.extensions())
            .and_then(|template| self.compiled.routes.get_key_value(template))
            .or_else(|| {
                let template = self.compiled.matcher.find(path)?;
                self.compiled.routes.get_key_value(template)
            });
        let Some((template, item)) = found else {
            return self.undocumented(service, request, StatusCode::NOT_FOUND, None);
        };
        let Some(operation) = item.operation(request.method()) else {
            let allow = item.allowed();
            return self.undocumented(
                service,
                request,
                StatusCode::METHOD_NOT_ALLOWED,
                Some(allow),
            );
        };
        let runtime = &self.routes[template];
        let at = OperationRef {
            template: template.clone(),
            method: request.method().clone(),
        };
        let response_check =
            (runtime.responses != Mode::Off && operation.responses.is_some() && runtime.sampled())
                .then(|| ResponseCheck {
                    operation: at.clone(),
                    mode: runtime.responses,
                    shared: self.clone(),
                });
        if runtime.requests == Mode::Off {
            let request = request.map(RequestBody::untouched);
            return ResponseFuture::call(service, request, response_check, None);
        }
        let enforce = runtime.requests == Mode::Enforce;
        let mut violations = Collector::new(self.config.max_violations);

        let has_path_params = operation
            .params
            .iter()
            .any(|p| p.location == params::ParamIn::Path);
        let captures = if has_path_params {
            item.template.captures(path).unwrap_or_default()
        } else {
            Vec::new()
        };
        params::check_all(
            &operation.params,
            &captures,
            request.uri().query(),
            request.headers(),
            &mut violations,
        );
        if !violations.is_empty() {
            if enforce {
                return ResponseFuture::rejected(self.request_rejection(
                    &at,
                    StatusCode::BAD_REQUEST,
                    "The request's parameters break the contract.",
                    violations,
                ));
            }
            self.report(
                &at.template,
                labels::method(&at.method),
                Direction::Request,
                &violations,
            );
            violations = Collector::new(self.config.max_violations);
        }

        let declared = declared_length(request.headers());
        let max = self.config.max_body_bytes;
        if enforce && declared.is_some_and(|length| length > max as u64) {
            return ResponseFuture::rejected(
                self.too_large(&at.template, labels::method(&at.method)),
            );
        }
        let has_body = declared != Some(0) && !request.body().is_end_stream();
        // A body the layer does not read streams on, under the size limit in enforce mode.
        let pass_on = |request: Request<B>| self.stream_on(request, Some(&at.template), enforce);
        let Some(spec) = &operation.body else {
            let (request, overflow) = pass_on(request);
            return ResponseFuture::call(service, request, response_check, overflow);
        };
        if !has_body {
            if spec.required {
                violations.push("/body", "required", "a request body is required");
                if enforce {
                    return ResponseFuture::rejected(self.request_rejection(
                        &at,
                        StatusCode::BAD_REQUEST,
                        "The request body is missing.",
                        violations,
                    ));
                }
                self.report(
                    &at.template,
                    labels::method(&at.method),
                    Direction::Request,
                    &violations,
                );
            }
            let (request, overflow) = pass_on(request);
            return ResponseFuture::call(service, request, response_check, overflow);
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| essence(value).to_ascii_lowercase());
        let media = content_type
            .as_deref()
            .and_then(|content_type| find_media(&spec.media, content_type));
        match media {
            None => {
                violations
                    .undocumented_media_type(content_type.as_deref().unwrap_or("no content type"));
                if enforce {
                    return ResponseFuture::rejected(self.request_rejection(
                        &at,
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "The request's media type is not accepted.",
                        violations,
                    ));
                }
                self.report(
                    &at.template,
                    labels::method(&at.method),
                    Direction::Request,
                    &violations,
                );
                let (request, overflow) = pass_on(request);
                ResponseFuture::call(service, request, response_check, overflow)
            }
            Some((media, found)) if found.reads(content_type.as_deref().and_then(BodyKind::of)) => {
                let kind = content_type
                    .as_deref()
                    .and_then(BodyKind::of)
                    .expect("a read body has a kind");
                let (parts, body) = request.into_parts();
                let plan = ReadPlan::Body {
                    operation: at,
                    media,
                    kind,
                    enforce,
                };
                ResponseFuture::read_request(
                    service,
                    parts,
                    body,
                    self.clone(),
                    plan,
                    max,
                    response_check,
                )
            }
            Some(_) => {
                let (request, overflow) = pass_on(request);
                ResponseFuture::call(service, request, response_check, overflow)
            }
        }
    }

    /// A body handed on unread: limited to `max_body_bytes` when `limit`, with the mark that
    /// lets the response future answer `413` itself if the handler's reading went past it.
    fn stream_on<B>(
        self: &Arc<Self>,
        request: Request<B>,
        route: Option<&Arc<str>>,
        limit: bool,
    ) -> (Request<RequestBody<B>>, Option<OverflowCheck>)
    where
        B: Body,
    {
        if !limit {
            return (request.map(RequestBody::untouched), None);
        }
        let max = self.config.max_body_bytes;
        if request.body().is_end_stream() {
            return (
                request.map(|body| RequestBody::limited(body, max, None)),
                None,
            );
        }
        let overflow = Overflow::default();
        // An undocumented route is labelled by the router's template, never by its path.
        let route = route.cloned().unwrap_or_else(|| {
            route::template(request.extensions())
                .unwrap_or(route::UNMATCHED_ROUTE)
                .into()
        });
        let check = OverflowCheck {
            overflow: overflow.clone(),
            route,
            method: labels::method(request.method()),
            shared: self.clone(),
        };
        let request = request.map(|body| RequestBody::limited(body, max, Some(overflow)));
        (request, Some(check))
    }

    /// The `413` problem for a body past `max_body_bytes`.
    pub(crate) fn too_large<RB>(
        &self,
        route: &str,
        method: &'static str,
    ) -> Response<ResponseBody<RB>> {
        let max = self.config.max_body_bytes;
        let mut violations = Collector::new(self.config.max_violations);
        violations.push(
            "/body",
            "maxBodySize",
            format!("the body is larger than the {max} bytes allowed"),
        );
        let rejection = Rejection::new(RejectionKind::InvalidRequest, Origin::Contract)
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            .with_detail("The request body is too large.");
        self.problem_response(&self.request_rejection_of(route, method, violations, rejection))
    }

    fn begin_grpc<S, B, RB>(
        self: &Arc<Self>,
        service: S,
        request: Request<B>,
    ) -> ResponseFuture<S, B, RB>
    where
        S: Service<Request<RequestBody<B>>, Response = Response<RB>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        let path = request.uri().path();
        let method = self.compiled.grpc.get(path);
        let Some(method) = method else {
            if self.config.undocumented == Undocumented::Reject && !self.compiled.grpc.is_empty() {
                let rejection = Rejection::new(RejectionKind::InvalidRequest, Origin::Contract)
                    .with_grpc_code(Code::Unimplemented)
                    .with_detail("The method is not part of the contract.");
                telemetry::record_rejection(&rejection, path, "POST");
                return ResponseFuture::rejected(rejection.to_grpc_response());
            }
            let checker = FrameChecker::new(self.config.grpc_max_message_bytes);
            let request = request.map(|body| RequestBody::framed(body, checker));
            return ResponseFuture::call(service, request, None, None);
        };
        let missing: Vec<&str> = method
            .required_metadata
            .iter()
            .filter(|key| !request.headers().contains_key(*key))
            .map(|key| key.as_str())
            .collect();
        if !missing.is_empty() {
            let mut violations = Collector::new(self.config.max_violations);
            for key in missing {
                violations.push(
                    &format!("/metadata/{key}"),
                    "required",
                    format!("the metadata `{key}` is required"),
                );
            }
            return ResponseFuture::rejected(self.grpc_rejection(
                path,
                Code::InvalidArgument,
                violations,
            ));
        }
        let max = method
            .max_message_bytes
            .unwrap_or(self.config.grpc_max_message_bytes);
        let (parts, body) = request.into_parts();
        let plan = ReadPlan::GrpcFirstMessage {
            path: parts.uri.path().to_owned(),
            check: method.check.clone(),
            max,
        };
        // A frame header and the largest message: enough to see the first message whole.
        let limit = max.saturating_add(super::grpc::FRAME_HEADER);
        ResponseFuture::read_request(service, parts, body, self.clone(), plan, limit, None)
    }

    fn undocumented<S, B, RB>(
        self: &Arc<Self>,
        service: S,
        request: Request<B>,
        status: StatusCode,
        allow: Option<String>,
    ) -> ResponseFuture<S, B, RB>
    where
        S: Service<Request<RequestBody<B>>, Response = Response<RB>>,
        B: Body,
    {
        if self.config.undocumented == Undocumented::Pass {
            // Still bounded: the size limit protects the service, documented route or not.
            let limit = self.config.requests == Mode::Enforce;
            let (request, overflow) = self.stream_on(request, None, limit);
            return ResponseFuture::call(service, request, None, overflow);
        }
        let detail = if status == StatusCode::NOT_FOUND {
            "The path is not part of the contract."
        } else {
            "The method is not allowed on this path."
        };
        let rejection = Rejection::new(RejectionKind::InvalidRequest, Origin::Contract)
            .with_status(status)
            .with_detail(detail);
        let route = route::template(request.extensions()).unwrap_or(route::UNMATCHED_ROUTE);
        telemetry::record_rejection(&rejection, route, labels::method(request.method()));
        let mut response = self.problem_response(&rejection);
        if let Some(allow) = allow.and_then(|allow| HeaderValue::from_str(&allow).ok()) {
            response.headers_mut().insert(ALLOW, allow);
        }
        ResponseFuture::rejected(response)
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

    /// Checks a request body that has been read whole, and hands it on or rejects it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_body_request<B, RB>(
        &self,
        at: &OperationRef,
        media: usize,
        kind: BodyKind,
        enforce: bool,
        mut parts: http::request::Parts,
        data: Bytes,
        trailers: Option<HeaderMap>,
    ) -> Next<B, RB> {
        let mut violations = Collector::new(self.config.max_violations);
        let operation = self.operation(at);
        let media = &operation
            .body
            .as_ref()
            .expect("a planned body has a spec")
            .media[media];
        let (status, detail) = match media.check(kind, &data, &mut violations) {
            None if kind == BodyKind::Json => (
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON.",
            ),
            None => (
                StatusCode::BAD_REQUEST,
                "The request body is not valid text.",
            ),
            Some(value) => {
                if violations.is_empty() {
                    parts.extensions.insert(ValidatedJson(Arc::new(value)));
                }
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "The request body breaks the contract.",
                )
            }
        };
        if !violations.is_empty() {
            if enforce {
                return Next::Answer(self.request_rejection(at, status, detail, violations));
            }
            self.report(
                &at.template,
                labels::method(&at.method),
                Direction::Request,
                &violations,
            );
        }
        Next::Call(Request::from_parts(
            parts,
            RequestBody::read(data, trailers),
        ))
    }

    /// Checks a response's status and content type; says whether its body must be read.
    pub(crate) fn check_response_head(
        &self,
        at: &OperationRef,
        status: StatusCode,
        headers: &HeaderMap,
        body_is_empty: bool,
        violations: &mut Collector,
    ) -> Option<usize> {
        let operation = self.operation(at);
        let responses = operation.responses.as_ref()?;
        let Some(media) = responses.for_status(status.as_u16()) else {
            violations.push(
                "/status",
                "status",
                format!("{} is not a documented status", status.as_u16()),
            );
            return None;
        };
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| essence(value).to_ascii_lowercase());
        if media.is_empty() {
            if content_type.is_some() && !body_is_empty {
                violations.push(
                    "/content-type",
                    "contentType",
                    "a body where the contract documents none",
                );
            }
            return None;
        }
        let Some(content_type) = content_type else {
            if !body_is_empty {
                violations.push(
                    "/content-type",
                    "contentType",
                    "a body without a content type",
                );
            }
            return None;
        };
        match find_media(media, &content_type) {
            None => {
                violations.undocumented_media_type(&content_type);
                None
            }
            Some((index, found)) if found.json && found.schema.is_some() => Some(index),
            Some(_) => None,
        }
    }

    /// The media type a response's body is checked against.
    pub(crate) fn response_media(
        &self,
        at: &OperationRef,
        status: StatusCode,
        index: usize,
    ) -> &Media {
        let responses = self
            .operation(at)
            .responses
            .as_ref()
            .expect("checked responses are documented");
        &responses
            .for_status(status.as_u16())
            .expect("a documented status")[index]
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}
