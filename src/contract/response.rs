//! The response side of the contract: status and content type checked against the operation's
//! documented responses, the media type its body is validated against, and the answer when it
//! breaks the contract.

use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response, StatusCode};

use super::config::Mode;
use super::future::ResponseCheck;
use super::model::{Media, find_media, media_type};
use super::service::{OperationRef, Shared};
use super::violation::Collector;
use super::{Direction, ResponseViolations};
use crate::core::labels;
use crate::core::{Origin, Rejection, RejectionKind, ResponseBody, telemetry};

impl Shared {
    /// Checks a response's status and content type; says whether its body must be read.
    pub(crate) fn check_response_head(
        &self,
        at: &OperationRef,
        status: StatusCode,
        headers: &HeaderMap,
        body_is_empty: bool,
        violations: &mut Collector,
    ) -> Option<Arc<Media>> {
        let responses = at.operation.responses.as_ref()?;
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
            .map(media_type);
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
            Some(found) if found.json && found.schema.is_some() => Some(found.clone()),
            Some(_) => None,
        }
    }
}

/// The answer when the service's response body failed while the contract read it (both modes:
/// there is no complete response to hand on, and the head has not been sent).
pub(crate) fn broken_response<RB>(
    check: &ResponseCheck,
    status: StatusCode,
) -> Response<ResponseBody<RB>> {
    let route = &*check.operation.template;
    tracing::warn!(
        target: "steadfast::contract",
        route,
        status = status.as_u16(),
        "the response body failed before its end; answered 500 instead"
    );
    let rejection = Rejection::new(RejectionKind::InvalidResponse, Origin::Contract)
        .with_detail("The service's response body failed before its end.");
    telemetry::record_rejection(&rejection, route, labels::method(&check.operation.method));
    rejection.to_http_response()
}

/// The response as it is, or (enforce mode, violations found) a `500` problem; the original is
/// logged either way when it broke the contract.
pub(crate) fn finish_response<RB>(
    check: &ResponseCheck,
    violations: Collector,
    response: Response<ResponseBody<RB>>,
) -> Response<ResponseBody<RB>> {
    if violations.is_empty() {
        return response;
    }
    let shared = &check.shared;
    let route = &*check.operation.template;
    let method = labels::method(&check.operation.method);
    if let Some(hook) = &shared.config.on_response_violations {
        hook(&ResponseViolations {
            route,
            method: &check.operation.method,
            status: response.status(),
            mode: check.mode,
            violations: violations.listed(),
            omitted: violations.omitted(),
        });
    }
    if check.mode != Mode::Enforce {
        shared.report(route, method, Direction::Response, &violations);
        return response;
    }
    shared.count(route, method, Direction::Response, &violations);
    tracing::error!(
        target: "steadfast::contract",
        route,
        status = response.status().as_u16(),
        headers = ?response.headers(),
        violations = ?violations.listed(),
        omitted = violations.omitted(),
        "response broke the contract; answered 500 instead"
    );
    // The violations describe the service's internals: logged, not sent to the caller.
    let rejection = Rejection::new(RejectionKind::InvalidResponse, Origin::Contract)
        .with_detail("The service produced a response that breaks its contract.");
    telemetry::record_rejection(&rejection, route, method);
    rejection.to_http_response()
}
