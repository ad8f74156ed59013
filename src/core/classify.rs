//! Outcome classification: the one place that decides whether a call succeeded.
//!
//! The circuit breaker, the adaptive limiter and the instrumentation all ask the same question of
//! what an inner service produced, and must get the same answer. [`DefaultClassifier`] answers
//! for HTTP and gRPC; a closure ([`classify_fn`]) or an own [`Classify`] implementation overrides it.

use http::{HeaderMap, Response, StatusCode};

use super::grpc::{self, Code};
use super::rejection::{Rejection, RejectionKind};

/// What became of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The service did its job.
    Success,
    /// The service failed the call, for the given reason.
    Failure(FailureReason),
    /// A steadfast layer rejected the call for a reason that is not a failure of the service
    /// (shedding, an open breaker, invalid input). Breakers and error-rate objectives skip it.
    Rejected(RejectionKind),
}

impl Outcome {
    /// Whether the call counts as a failure.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure(_))
    }

    fn of_rejection(rejection: &Rejection) -> Outcome {
        if rejection.counts_as_failure() {
            Outcome::Failure(FailureReason::Rejected(rejection.kind()))
        } else {
            Outcome::Rejected(rejection.kind())
        }
    }
}

/// Why a call counts as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// An HTTP status classified as a failure (5xx by default).
    HttpStatus(StatusCode),
    /// A gRPC status classified as a failure.
    GrpcStatus(Code),
    /// The inner service returned an error.
    Error,
    /// A steadfast layer answered in the service's place for a reason that is a failure of the
    /// service ([`RejectionKind::Timeout`], [`RejectionKind::InvalidResponse`], ...).
    Rejected(RejectionKind),
}

/// The first verdict on a response: final, or waiting for the gRPC trailers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    /// The outcome is known from the response head.
    Done(Outcome),
    /// A streaming gRPC response: the outcome is in the trailers, see
    /// [`ClassifyTrailers::classify_trailers`].
    AtEndOfStream,
}

/// Decides the [`Outcome`] of a streaming response from its trailers, once the stream ends.
///
/// Separate from [`Classify`] so that a response body can carry the classifier without knowing
/// the request and response types.
pub trait ClassifyTrailers {
    /// Classifies the trailers of a response classified [`Classified::AtEndOfStream`]; `None`
    /// when the stream ended without trailers.
    fn classify_trailers(&self, trailers: Option<&HeaderMap>) -> Outcome;
}

/// Decides the [`Outcome`] of a call from its response or error.
pub trait Classify<Res, E>: ClassifyTrailers {
    /// Classifies a response head.
    fn classify_response(&self, response: &Res) -> Classified;

    /// Classifies an error of the inner service.
    fn classify_error(&self, _error: &E) -> Outcome {
        Outcome::Failure(FailureReason::Error)
    }
}

/// Bit set of gRPC codes, one bit per code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CodeSet(u32);

impl CodeSet {
    fn contains(self, code: Code) -> bool {
        self.0 & (1 << code.as_u8()) != 0
    }

    fn with(self, code: Code, member: bool) -> Self {
        let bit = 1 << code.as_u8();
        CodeSet(if member { self.0 | bit } else { self.0 & !bit })
    }
}

/// The default classification for HTTP and gRPC.
///
/// - A response carrying a steadfast [`Rejection`] in its extensions: a failure if its kind
///   [counts as one](RejectionKind::counts_as_failure), otherwise [`Outcome::Rejected`].
/// - gRPC (`content-type: application/grpc*`): the `grpc-status` of a trailers-only response,
///   or of the trailers. Failures by default: `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
///   `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS` (the server errors of the OpenTelemetry RPC
///   conventions); a stream that ends without `grpc-status` is `UNKNOWN`.
/// - HTTP: 5xx is a failure; 408 and 429 are successes unless switched on.
/// - An inner error is a failure.
///
/// ```
/// use steadfast::core::{Classified, Classify, DefaultClassifier, FailureReason, Outcome};
///
/// let classifier = DefaultClassifier::new().http_429_is_failure(true);
/// let response = http::Response::builder().status(429).body(()).unwrap();
/// let verdict = Classify::<_, ()>::classify_response(&classifier, &response);
/// assert_eq!(verdict, Classified::Done(Outcome::Failure(FailureReason::HttpStatus(
///     http::StatusCode::TOO_MANY_REQUESTS,
/// ))));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultClassifier {
    http_408_is_failure: bool,
    http_429_is_failure: bool,
    grpc_failures: CodeSet,
}

impl Default for DefaultClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl DefaultClassifier {
    /// The defaults described above.
    pub const fn new() -> Self {
        let mut bits = 0u32;
        let defaults = [
            Code::Unknown,
            Code::DeadlineExceeded,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
        ];
        let mut index = 0;
        while index < defaults.len() {
            bits |= 1 << defaults[index] as u8;
            index += 1;
        }
        Self {
            http_408_is_failure: false,
            http_429_is_failure: false,
            grpc_failures: CodeSet(bits),
        }
    }

    /// Count `408 Request Timeout` as a failure (default: no, it is the client's doing).
    pub fn http_408_is_failure(mut self, failure: bool) -> Self {
        self.http_408_is_failure = failure;
        self
    }

    /// Count `429 Too Many Requests` as a failure (default: no). Turn it on when the inner
    /// service is a client of a dependency whose throttling should open a breaker.
    pub fn http_429_is_failure(mut self, failure: bool) -> Self {
        self.http_429_is_failure = failure;
        self
    }

    /// Count a gRPC code as a failure, or not.
    pub fn grpc_code_is_failure(mut self, code: Code, failure: bool) -> Self {
        self.grpc_failures = self.grpc_failures.with(code, failure);
        self
    }

    /// The outcome of an HTTP status.
    pub fn classify_status(&self, status: StatusCode) -> Outcome {
        let failure = status.is_server_error()
            || (status == StatusCode::REQUEST_TIMEOUT && self.http_408_is_failure)
            || (status == StatusCode::TOO_MANY_REQUESTS && self.http_429_is_failure);
        if failure {
            Outcome::Failure(FailureReason::HttpStatus(status))
        } else {
            Outcome::Success
        }
    }

    /// The outcome of a gRPC status code.
    pub fn classify_grpc_code(&self, code: Code) -> Outcome {
        if self.grpc_failures.contains(code) {
            Outcome::Failure(FailureReason::GrpcStatus(code))
        } else {
            Outcome::Success
        }
    }
}

impl<B, E> Classify<Response<B>, E> for DefaultClassifier {
    fn classify_response(&self, response: &Response<B>) -> Classified {
        if let Some(rejection) = response.extensions().get::<Rejection>() {
            return Classified::Done(Outcome::of_rejection(rejection));
        }
        if grpc::is_grpc(response.headers()) && response.status().is_success() {
            return match Code::from_headers(response.headers()) {
                Some(code) => Classified::Done(self.classify_grpc_code(code)),
                None => Classified::AtEndOfStream,
            };
        }
        Classified::Done(self.classify_status(response.status()))
    }
}

impl ClassifyTrailers for DefaultClassifier {
    fn classify_trailers(&self, trailers: Option<&HeaderMap>) -> Outcome {
        let code = trailers
            .and_then(Code::from_headers)
            .unwrap_or(Code::Unknown);
        self.classify_grpc_code(code)
    }
}

/// Classification by a closure over the result; gRPC trailers are classified as
/// [`DefaultClassifier`] does. Build it with [`classify_fn`].
#[derive(Clone, Copy, Debug)]
pub struct ClassifyFn<F> {
    classify: F,
    trailers: DefaultClassifier,
}

/// Classification by a closure, for services whose failures are not their status codes.
///
/// ```
/// use steadfast::core::{classify_fn, Classified, Classify, FailureReason, Outcome};
///
/// // A search backend that answers 200 with an empty body when its index is down.
/// let classifier = classify_fn(|result: Result<&http::Response<&str>, &()>| match result {
///     Ok(response) if response.body().is_empty() => {
///         Classified::Done(Outcome::Failure(FailureReason::HttpStatus(response.status())))
///     }
///     Ok(_) => Classified::Done(Outcome::Success),
///     Err(_) => Classified::Done(Outcome::Failure(FailureReason::Error)),
/// });
/// let empty = http::Response::new("");
/// assert!(matches!(classifier.classify_response(&empty), Classified::Done(o) if o.is_failure()));
/// ```
pub fn classify_fn<F>(classify: F) -> ClassifyFn<F> {
    ClassifyFn {
        classify,
        trailers: DefaultClassifier::new(),
    }
}

impl<F, Res, E> Classify<Res, E> for ClassifyFn<F>
where
    F: Fn(Result<&Res, &E>) -> Classified,
{
    fn classify_response(&self, response: &Res) -> Classified {
        (self.classify)(Ok(response))
    }

    fn classify_error(&self, error: &E) -> Outcome {
        match (self.classify)(Err(error)) {
            Classified::Done(outcome) => outcome,
            Classified::AtEndOfStream => Outcome::Failure(FailureReason::Error),
        }
    }
}

/// For services that are not HTTP: every response is a success, every error a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorsAsFailures;

impl<Res, E> Classify<Res, E> for ErrorsAsFailures {
    fn classify_response(&self, _: &Res) -> Classified {
        Classified::Done(Outcome::Success)
    }
}

impl ClassifyTrailers for ErrorsAsFailures {
    fn classify_trailers(&self, _: Option<&HeaderMap>) -> Outcome {
        Outcome::Success
    }
}

impl<F> ClassifyTrailers for ClassifyFn<F> {
    fn classify_trailers(&self, trailers: Option<&HeaderMap>) -> Outcome {
        self.trailers.classify_trailers(trailers)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::core::Origin;

    fn classify(classifier: &DefaultClassifier, response: &Response<()>) -> Classified {
        Classify::<Response<()>, ()>::classify_response(classifier, response)
    }

    fn http(status: u16) -> Response<()> {
        Response::builder().status(status).body(()).unwrap()
    }

    fn grpc(status: Option<Code>) -> Response<()> {
        let mut builder = Response::builder().header("content-type", "application/grpc+proto");
        if let Some(code) = status {
            builder = builder.header("grpc-status", code.to_header_value());
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn http_5xx_fail_and_the_rest_succeed() {
        let classifier = DefaultClassifier::new();
        for status in [200, 201, 204, 301, 400, 404, 408, 429, 499] {
            assert_eq!(
                classify(&classifier, &http(status)),
                Classified::Done(Outcome::Success),
                "{status}"
            );
        }
        for status in [500, 502, 503, 504, 599] {
            assert!(
                matches!(classify(&classifier, &http(status)), Classified::Done(o) if o.is_failure()),
                "{status}"
            );
        }
    }

    #[test]
    fn http_408_and_429_are_configurable() {
        let classifier = DefaultClassifier::new()
            .http_408_is_failure(true)
            .http_429_is_failure(true);
        for status in [408, 429] {
            let expected = Outcome::Failure(FailureReason::HttpStatus(
                StatusCode::from_u16(status).unwrap(),
            ));
            assert_eq!(
                classify(&classifier, &http(status)),
                Classified::Done(expected)
            );
        }
    }

    #[test]
    fn grpc_server_errors_fail_by_default() {
        let classifier = DefaultClassifier::new();
        let failures = [
            Code::Unknown,
            Code::DeadlineExceeded,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
        ];
        for code in Code::ALL {
            let expected = if failures.contains(&code) {
                Outcome::Failure(FailureReason::GrpcStatus(code))
            } else {
                Outcome::Success
            };
            assert_eq!(
                classify(&classifier, &grpc(Some(code))),
                Classified::Done(expected),
                "{code}"
            );
            let trailers = HeaderMap::from_iter([(grpc::GRPC_STATUS, code.to_header_value())]);
            let from_trailers = classifier.classify_trailers(Some(&trailers));
            assert_eq!(from_trailers, expected, "{code} in trailers");
        }
    }

    #[test]
    fn grpc_codes_are_configurable() {
        let classifier = DefaultClassifier::new()
            .grpc_code_is_failure(Code::ResourceExhausted, true)
            .grpc_code_is_failure(Code::Unavailable, false);
        assert!(
            classifier
                .classify_grpc_code(Code::ResourceExhausted)
                .is_failure()
        );
        assert!(
            !classifier
                .classify_grpc_code(Code::Unavailable)
                .is_failure()
        );
    }

    #[test]
    fn grpc_status_in_trailers_waits_for_the_end_of_stream() {
        let classifier = DefaultClassifier::new();
        assert_eq!(
            classify(&classifier, &grpc(None)),
            Classified::AtEndOfStream
        );
        let missing = classifier.classify_trailers(None);
        assert_eq!(
            missing,
            Outcome::Failure(FailureReason::GrpcStatus(Code::Unknown))
        );
    }

    #[test]
    fn steadfast_rejections_are_told_apart() {
        let classifier = DefaultClassifier::new();
        let mut shed = http(503);
        shed.extensions_mut()
            .insert(Rejection::new(RejectionKind::Overloaded, Origin::Shed));
        assert_eq!(
            classify(&classifier, &shed),
            Classified::Done(Outcome::Rejected(RejectionKind::Overloaded))
        );
        let timeout =
            Rejection::new(RejectionKind::Timeout, Origin::Timeout).to_grpc_response::<()>();
        assert_eq!(
            Classify::<_, ()>::classify_response(&classifier, &timeout),
            Classified::Done(Outcome::Failure(FailureReason::Rejected(
                RejectionKind::Timeout
            )))
        );
    }

    #[test]
    fn errors_fail_and_closures_override() {
        let classifier = DefaultClassifier::new();
        assert_eq!(
            Classify::<Response<()>, &str>::classify_error(&classifier, &"boom"),
            Outcome::Failure(FailureReason::Error)
        );
        let lenient = classify_fn(|result: Result<&Response<()>, &&str>| match result {
            Ok(_) | Err(_) => Classified::Done(Outcome::Success),
        });
        assert_eq!(lenient.classify_error(&"boom"), Outcome::Success);
        assert_eq!(
            Classify::<u32, ()>::classify_response(&ErrorsAsFailures, &7),
            Classified::Done(Outcome::Success)
        );
        assert!(Classify::<u32, ()>::classify_error(&ErrorsAsFailures, &()).is_failure());
    }
}
