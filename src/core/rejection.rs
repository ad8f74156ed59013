//! The rejection model: what a steadfast layer answers instead of calling the inner service.
//!
//! Long because of the rejection kinds' table (status, gRPC code, problem title each) and its
//! unit tests.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Serialize;

use super::body::ResponseBody;
use super::grpc::{self, Code};

/// Why a request was rejected.
///
/// Each kind has a default HTTP status and gRPC code (see [`Rejection::new`]) and says whether it
/// counts as a failure of the service ([`RejectionKind::counts_as_failure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The request ran out of time while it was being served; the work was cancelled.
    /// 504, `DEADLINE_EXCEEDED`. Counts as a failure.
    Timeout,
    /// The request arrived (or was about to be sent) with no time left before its deadline,
    /// so it was not served at all. 504, `DEADLINE_EXCEEDED`. Not a failure of this service.
    DeadlineExpired,
    /// The caller's deadline header could not be read and the layer is set to reject such
    /// requests. 400, `INVALID_ARGUMENT`. Not a failure.
    InvalidDeadline,
    /// A circuit breaker is open and fails fast. 503 with `Retry-After`, `UNAVAILABLE`.
    /// Not a failure (the breaker does not count its own rejections).
    CircuitOpen,
    /// The service is at its concurrency limit and sheds the request. 503 with `Retry-After`,
    /// `UNAVAILABLE`. Not a failure.
    Overloaded,
    /// The request broke the route's contract. 400 (or 413, 415, 422), `INVALID_ARGUMENT`.
    /// Not a failure.
    InvalidRequest,
    /// The handler's response broke the route's contract. 500, `INTERNAL`. A failure.
    InvalidResponse,
    /// steadfast is wired wrongly for this route (for example, a handler asks for a
    /// `Deadline` that no layer provides). 500, `INTERNAL`. A failure.
    Misconfigured,
    /// The handler panicked; the policy stack caught the panic (as tower-http's `CatchPanic`
    /// does) so that the caller gets an answer and the breaker and metrics count a failure.
    /// 500, `INTERNAL`. A failure.
    Panicked,
    /// An outbound call needed a retry and the dependency's retry budget had none left, so the
    /// call failed fast instead of adding load to a struggling dependency
    /// ([`crate::retry`]). 503, `UNAVAILABLE`. Not a failure of the dependency (the attempts
    /// that were made are counted on their own).
    RetryBudgetExhausted,
    /// An outbound call was not sent because the dependency has recently refused many calls
    /// and the client-side adaptive throttle dropped this one ([`crate::throttle`]).
    /// 503, `UNAVAILABLE`. Not a failure.
    Throttled,
}

impl RejectionKind {
    /// A short, stable name for logs and metric labels: `"timeout"`, `"circuit_open"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::DeadlineExpired => "deadline_expired",
            Self::InvalidDeadline => "invalid_deadline",
            Self::CircuitOpen => "circuit_open",
            Self::Overloaded => "overloaded",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidResponse => "invalid_response",
            Self::Misconfigured => "misconfigured",
            Self::Panicked => "panicked",
            Self::RetryBudgetExhausted => "retry_budget_exhausted",
            Self::Throttled => "throttled",
        }
    }

    /// Whether the service failed the request, so that a circuit breaker or an error-rate
    /// objective should count it. Rejections that protect the service (shedding, an open
    /// breaker) or that are the caller's doing (bad input, a spent deadline) are not failures.
    pub fn counts_as_failure(self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::InvalidResponse | Self::Misconfigured | Self::Panicked
        )
    }

    /// The HTTP status used unless the layer is configured otherwise.
    pub fn default_status(self) -> StatusCode {
        match self {
            Self::Timeout | Self::DeadlineExpired => StatusCode::GATEWAY_TIMEOUT,
            Self::InvalidDeadline | Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::CircuitOpen | Self::Overloaded | Self::RetryBudgetExhausted | Self::Throttled => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::InvalidResponse | Self::Misconfigured | Self::Panicked => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The gRPC status code used unless the layer is configured otherwise.
    pub fn default_grpc_code(self) -> Code {
        match self {
            Self::Timeout | Self::DeadlineExpired => Code::DeadlineExceeded,
            Self::InvalidDeadline | Self::InvalidRequest => Code::InvalidArgument,
            Self::CircuitOpen | Self::Overloaded | Self::RetryBudgetExhausted | Self::Throttled => {
                Code::Unavailable
            }
            Self::InvalidResponse | Self::Misconfigured | Self::Panicked => Code::Internal,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Timeout => "Request timed out",
            Self::DeadlineExpired => "Deadline already expired",
            Self::InvalidDeadline => "Invalid deadline",
            Self::CircuitOpen => "Circuit open",
            Self::Overloaded => "Service overloaded",
            Self::InvalidRequest => "Invalid request",
            Self::InvalidResponse => "Invalid response",
            Self::Misconfigured => "Service misconfigured",
            Self::Panicked => "Internal error",
            Self::RetryBudgetExhausted => "Retry budget exhausted",
            Self::Throttled => "Call throttled",
        }
    }

    /// The problem type URI of RFC 9457: the documentation of this variant.
    fn problem_type(self) -> &'static str {
        macro_rules! variant_docs {
            ($($variant:ident),*) => {
                match self {
                    $(Self::$variant => concat!(
                        "https://docs.rs/steadfast/latest/steadfast/core/enum.RejectionKind.html#variant.",
                        stringify!($variant)
                    ),)*
                }
            };
        }
        variant_docs!(
            Timeout,
            DeadlineExpired,
            InvalidDeadline,
            CircuitOpen,
            Overloaded,
            InvalidRequest,
            InvalidResponse,
            Misconfigured,
            Panicked,
            RetryBudgetExhausted,
            Throttled
        )
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which steadfast layer made a rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The server-side timeout layer ([`crate::timeout::TimeoutLayer`]).
    Timeout,
    /// The client-side deadline propagation layer ([`crate::timeout::PropagateDeadlineLayer`]).
    PropagateDeadline,
    /// The circuit breaker.
    Breaker,
    /// The load shedder.
    Shed,
    /// Contract validation.
    Contract,
    /// The policy layer's strict mode (a route served without a policy of its own).
    Policy,
    /// Retries of an outbound call ([`crate::retry`]).
    Retry,
    /// The client-side adaptive throttle ([`crate::throttle`]).
    Throttle,
    /// A dependency policy's own admission ([`crate::dependency`]): its concurrency cap.
    Dependency,
}

impl Origin {
    /// A short, stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::PropagateDeadline => "propagate_deadline",
            Self::Breaker => "breaker",
            Self::Shed => "shed",
            Self::Contract => "contract",
            Self::Policy => "policy",
            Self::Retry => "retry",
            Self::Throttle => "throttle",
            Self::Dependency => "dependency",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request a steadfast layer refused or gave up on, and how to say so.
///
/// With [`ProtocolResponses`](super::ProtocolResponses) a rejection becomes a response: for HTTP
/// its status with an RFC 9457 `application/problem+json` body (and `Retry-After` when known),
/// for gRPC a trailers-only response with `grpc-status` and `grpc-message`. The response carries
/// a clone of the `Rejection` in its extensions, so outer layers can tell steadfast's own
/// rejections from the handler's answers:
///
/// ```
/// use http_body_util::Empty;
/// use steadfast::core::{Origin, Rejection, RejectionKind};
///
/// // The type parameter is the inner service's body type, which the response must match.
/// let rejection = Rejection::new(RejectionKind::Timeout, Origin::Timeout);
/// let response = rejection.to_http_response::<Empty<bytes::Bytes>>();
/// assert_eq!(response.status(), 504);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// let marker = response.extensions().get::<Rejection>().unwrap();
/// assert_eq!(marker.kind(), RejectionKind::Timeout);
/// ```
///
/// With [`TypedErrors`](super::TypedErrors) it is the `Rejected` variant of [`super::Error`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    origin: Origin,
    status: StatusCode,
    grpc_code: Code,
    detail: Cow<'static, str>,
    retry_after: Option<Duration>,
    violations: Option<Arc<Violations>>,
}

/// One way a request or a response broke its contract: where, which rule, and a short message.
///
/// The pointer is an RFC 6901 JSON pointer into a virtual document of the message:
/// `/body/items/0/name` for a place in a JSON body, `/query/limit`, `/path/id` and
/// `/header/x-tenant` for parameters, `/status` and `/content-type` for the response head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Violation {
    pointer: String,
    keyword: Cow<'static, str>,
    message: String,
}

impl Violation {
    /// A violation at `pointer` of the rule `keyword` (a JSON Schema keyword such as `type`, or
    /// one of steadfast's own: `contentType`, `maxBodySize`, `syntax`, `status`, ...).
    pub fn new(
        pointer: impl Into<String>,
        keyword: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            pointer: pointer.into(),
            keyword: keyword.into(),
            message: message.into(),
        }
    }

    /// Where the violation is (a JSON pointer).
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The rule that failed.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// What is wrong, in a few words; never the whole schema, never a large piece of the input.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The violations a rejection reports, and how many more were found but not listed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Violations {
    listed: Vec<Violation>,
    omitted: usize,
}

impl Rejection {
    /// A rejection with the kind's default status, gRPC code and detail.
    pub fn new(kind: RejectionKind, origin: Origin) -> Self {
        Self {
            kind,
            origin,
            status: kind.default_status(),
            grpc_code: kind.default_grpc_code(),
            detail: Cow::Borrowed(kind.title()),
            retry_after: None,
            violations: None,
        }
    }

    /// List what broke the contract in the problem body (`violations`, with `violations_omitted`
    /// when more were found than listed) and in the gRPC message.
    pub fn with_violations(mut self, listed: Vec<Violation>, omitted: usize) -> Self {
        self.violations = Some(Arc::new(Violations { listed, omitted }));
        self
    }

    /// Answer HTTP callers with this status instead of the kind's default.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Answer gRPC callers with this code instead of the kind's default.
    pub fn with_grpc_code(mut self, code: Code) -> Self {
        self.grpc_code = code;
        self
    }

    /// A human-readable explanation for this occurrence (problem `detail`, `grpc-message`).
    /// Keep it short and free of user input.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Tell the caller when trying again makes sense (`Retry-After`, in whole seconds rounded up).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Why the request was rejected.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// Which layer rejected it.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The gRPC status code of the response.
    pub fn grpc_code(&self) -> Code {
        self.grpc_code
    }

    /// The explanation sent to the caller.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// When the caller may try again, if the layer knows.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The violations listed with this rejection (empty unless it is a contract rejection).
    pub fn violations(&self) -> &[Violation] {
        self.violations
            .as_deref()
            .map_or(&[], |violations| violations.listed.as_slice())
    }

    /// How many violations were found beyond those listed.
    pub fn violations_omitted(&self) -> usize {
        self.violations
            .as_deref()
            .map_or(0, |violations| violations.omitted)
    }

    /// Shorthand for `self.kind().counts_as_failure()`.
    pub fn counts_as_failure(&self) -> bool {
        self.kind.counts_as_failure()
    }

    /// The form `protocol` answers with: [`to_http_response`](Self::to_http_response) or
    /// [`to_grpc_response`](Self::to_grpc_response).
    pub(crate) fn to_response<B>(&self, protocol: super::Protocol) -> Response<ResponseBody<B>> {
        match protocol {
            super::Protocol::Http => self.to_http_response(),
            super::Protocol::Grpc => self.to_grpc_response(),
        }
    }

    /// The HTTP form: the status, `content-type: application/problem+json`, `Retry-After` when
    /// set, and a problem body with `type`, `title`, `status` and `detail` (and `violations`
    /// for a contract rejection).
    pub fn to_http_response<B>(&self) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::full(self.problem_json()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(after) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds(after)));
        }
        response.extensions_mut().insert(self.clone());
        response
    }

    /// The RFC 9457 problem document of [`Rejection::to_http_response`], serialized.
    pub fn problem_json(&self) -> Bytes {
        let problem = ProblemDetails {
            problem_type: self.kind.problem_type(),
            title: self.kind.title(),
            status: self.status.as_u16(),
            detail: &self.detail,
            violations: self.violations.as_deref().map(|v| v.listed.as_slice()),
            violations_omitted: self.violations_omitted(),
        };
        Bytes::from(serde_json::to_vec(&problem).expect("a problem body always serializes"))
    }

    /// The gRPC form: a trailers-only response (HTTP 200, no body) whose headers carry
    /// `grpc-status` and the percent-encoded `grpc-message` (the detail, then the first
    /// violations if any).
    pub fn to_grpc_response<B>(&self) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(grpc::GRPC_STATUS, self.grpc_code.to_header_value());
        let message = utf8_percent_encode(&self.grpc_message(), GRPC_MESSAGE_ESCAPED).to_string();
        if let Ok(message) = HeaderValue::from_str(&message) {
            headers.insert(grpc::GRPC_MESSAGE, message);
        }
        if let Some(after) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds(after)));
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl Rejection {
    /// The detail, followed by up to three violations: gRPC has no structured place for them
    /// without a protobuf dependency (`google.rpc.BadRequest`).
    fn grpc_message(&self) -> Cow<'_, str> {
        let violations = self.violations();
        if violations.is_empty() {
            return Cow::Borrowed(&self.detail);
        }
        let mut message = self.detail.to_string();
        for violation in violations.iter().take(3) {
            message.push_str("; ");
            message.push_str(&violation.pointer);
            message.push_str(": ");
            message.push_str(&violation.message);
        }
        let more = violations.len().saturating_sub(3) + self.violations_omitted();
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        Cow::Owned(message)
    }
}

/// `grpc-message` is percent-encoded: everything outside printable ASCII, and `%` itself.
const GRPC_MESSAGE_ESCAPED: &AsciiSet = &CONTROLS.add(b'%');

/// Whole seconds, rounded up, saturating (`Duration::MAX` once wrapped to `0`: "retry now").
fn retry_after_seconds(after: Duration) -> u64 {
    after
        .as_secs()
        .saturating_add(u64::from(after.subsec_nanos() > 0))
}

#[derive(Serialize)]
struct ProblemDetails<'a> {
    #[serde(rename = "type")]
    problem_type: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    violations: Option<&'a [Violation]>,
    #[serde(skip_serializing_if = "is_zero")]
    violations_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rejected by steadfast {} ({}): {}",
            self.origin, self.kind, self.detail
        )
    }
}

impl std::error::Error for Rejection {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(
        response: Response<ResponseBody<http_body_util::Empty<Bytes>>>,
    ) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn http_form_is_rfc9457_problem_json() {
        let rejection = Rejection::new(RejectionKind::Overloaded, Origin::Shed)
            .with_detail("at the concurrency limit")
            .with_retry_after(Duration::from_millis(1500));
        let response = rejection.to_http_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(response.extensions().get::<Rejection>(), Some(&rejection));
        let json = body_json(response).await;
        assert_eq!(
            json,
            serde_json::json!({
                "type": "https://docs.rs/steadfast/latest/steadfast/core/enum.RejectionKind.html#variant.Overloaded",
                "title": "Service overloaded",
                "status": 503,
                "detail": "at the concurrency limit",
            })
        );
    }

    #[tokio::test]
    async fn grpc_form_is_trailers_only() {
        let rejection = Rejection::new(RejectionKind::Timeout, Origin::Timeout)
            .with_detail("100% of the budget spent\nsorry é");
        let response = rejection.to_grpc_response::<http_body_util::Empty<Bytes>>();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "4");
        assert_eq!(
            response.headers()["grpc-message"],
            "100%25 of the budget spent%0Asorry %C3%A9"
        );
        // What a real gRPC client makes of it: tonic reads the same headers.
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(status.message(), "100% of the budget spent\nsorry é");
        assert!(http_body::Body::is_end_stream(response.body()));
    }

    #[test]
    fn defaults_follow_the_kind() {
        let cases = [
            (RejectionKind::Timeout, 504, Code::DeadlineExceeded, true),
            (
                RejectionKind::DeadlineExpired,
                504,
                Code::DeadlineExceeded,
                false,
            ),
            (
                RejectionKind::InvalidDeadline,
                400,
                Code::InvalidArgument,
                false,
            ),
            (RejectionKind::CircuitOpen, 503, Code::Unavailable, false),
            (RejectionKind::Overloaded, 503, Code::Unavailable, false),
            (
                RejectionKind::InvalidRequest,
                400,
                Code::InvalidArgument,
                false,
            ),
            (RejectionKind::InvalidResponse, 500, Code::Internal, true),
            (RejectionKind::Misconfigured, 500, Code::Internal, true),
            (RejectionKind::Panicked, 500, Code::Internal, true),
        ];
        for (kind, status, code, failure) in cases {
            let rejection = Rejection::new(kind, Origin::Timeout);
            assert_eq!(rejection.status(), status, "{kind}");
            assert_eq!(rejection.grpc_code(), code, "{kind}");
            assert_eq!(rejection.counts_as_failure(), failure, "{kind}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 0);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(30)), 30);
    }
}
