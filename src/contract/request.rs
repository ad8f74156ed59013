//! The request side of the contract: route and operation found, parameters checked, the
//! body read and validated (or streamed on under the size limit), gRPC's first message checked.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use super::ValidatedJson;
use super::config::{Mode, Undocumented};
use super::future::{OverflowCheck, ReadPlan, ResponseCheck, ResponseFuture};
use super::grpc::FrameChecker;
use super::model::{BodyKind, Media, find_media, media_type};
use super::params;
use super::service::{BoxError, Next, OperationRef, Shared};
use super::violation::Collector;
use crate::core::grpc::Code;
use crate::core::labels;
use crate::core::{
    Origin, Overflow, Rejection, RejectionKind, RequestBody, ResponseBody, route, telemetry,
};

impl Shared {
    pub(crate) fn begin<S, B, RB>(
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
        if self.http_passes {
            // What an undocumented route gets without a size limit, without looking it up.
            return ResponseFuture::call(service, request.map(RequestBody::untouched), None, None);
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
            operation: operation.clone(),
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
            self.report_request(&at, &violations);
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
                self.report_request(&at, &violations);
            }
            let (request, overflow) = pass_on(request);
            return ResponseFuture::call(service, request, response_check, overflow);
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(media_type);
        let media = content_type
            .as_deref()
            .and_then(|content_type| find_media(&spec.media, content_type));
        let kind = content_type.as_deref().and_then(BodyKind::of);
        match (media, kind) {
            (None, _) => {
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
                self.report_request(&at, &violations);
                let (request, overflow) = pass_on(request);
                ResponseFuture::call(service, request, response_check, overflow)
            }
            (Some(media), Some(kind)) if media.reads(Some(kind)) => {
                let (parts, body) = request.into_parts();
                let plan = ReadPlan::Body {
                    operation: at,
                    media: media.clone(),
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
            (Some(_), _) => {
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

    /// Checks a request body that has been read whole, and hands it on or rejects it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_body_request<B, RB>(
        &self,
        at: &OperationRef,
        media: &Media,
        kind: BodyKind,
        enforce: bool,
        mut parts: http::request::Parts,
        data: Bytes,
        trailers: Option<HeaderMap>,
    ) -> Next<B, RB> {
        let mut violations = Collector::new(self.config.max_violations);
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
            self.report_request(at, &violations);
        }
        Next::Call(Request::from_parts(
            parts,
            RequestBody::read(data, trailers),
        ))
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}
