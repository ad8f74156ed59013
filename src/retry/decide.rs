//! Whether an attempt's result is worth another attempt, and how long the dependency asked to wait.

use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, Response};

use super::config::RetryConfig;
use super::service::AttemptErrors;
use crate::core::RejectionKind;
use crate::core::grpc::{self, Code};

/// gRPC's pushback header (gRFC A6): milliseconds to wait, or "do not retry" when negative or
/// unreadable.
pub(crate) const GRPC_RETRY_PUSHBACK_MS: HeaderName =
    HeaderName::from_static("grpc-retry-pushback-ms");

/// Why an attempt is retried, for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// An HTTP status in the retried set.
    Status,
    /// A gRPC status in the retried set.
    Grpc,
    /// An error of the client (a transport error).
    Error,
    /// The attempt ran out of its time.
    Timeout,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Status => "status",
            Reason::Grpc => "grpc_status",
            Reason::Error => "error",
            Reason::Timeout => "timeout",
        }
    }
}

/// The verdict on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The result is the call's answer.
    Final,
    /// Worth another attempt, after the dependency's own wait if it gave one.
    Retry {
        reason: Reason,
        after: Option<Duration>,
    },
}

/// The verdict on an answer.
pub(crate) fn response<B>(config: &RetryConfig, response: &Response<B>) -> Verdict {
    let headers = response.headers();
    if grpc::is_grpc(headers) {
        // Trailers-only answers carry the status in the head; a streamed answer has begun and
        // is the call's answer whatever its trailers say.
        let Some(code) = Code::from_headers(headers) else {
            return Verdict::Final;
        };
        if !config.grpc.contains(code) {
            return Verdict::Final;
        }
        return match headers.get(GRPC_RETRY_PUSHBACK_MS) {
            None => Verdict::Retry {
                reason: Reason::Grpc,
                after: None,
            },
            Some(value) => match value
                .to_str()
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
            {
                Some(millis) => Verdict::Retry {
                    reason: Reason::Grpc,
                    after: Some(Duration::from_millis(millis)),
                },
                // Negative or unreadable: the server asks not to retry (gRFC A6).
                None => Verdict::Final,
            },
        };
    }
    if !config.statuses.contains(&response.status()) {
        return Verdict::Final;
    }
    Verdict::Retry {
        reason: Reason::Status,
        after: retry_after(headers),
    }
}

/// The verdict on an error of the client (or of a steadfast layer inside the retry).
pub(crate) fn error<E, M: AttemptErrors<E>>(config: &RetryConfig, error: &E) -> Verdict {
    if !config.errors {
        return Verdict::Final;
    }
    match M::rejection(error) {
        // An attempt's own timeout: the next attempt may be luckier.
        Some(rejection) if rejection.kind() == RejectionKind::Timeout => Verdict::Retry {
            reason: Reason::Timeout,
            after: None,
        },
        // Refused in this process (open breaker, throttled, spent deadline): final.
        Some(_) => Verdict::Final,
        None => Verdict::Retry {
            reason: Reason::Error,
            after: None,
        },
    }
}

/// `Retry-After` in delta-seconds. An HTTP date (rare between services) is not read: the
/// backoff applies.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // Beyond u64 seconds: as long as can be, which no `max_retry_after` allows.
    Some(Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn which_answers_are_retried() {
        let config = RetryConfig::new();
        let retry = |after| Verdict::Retry {
            reason: Reason::Status,
            after,
        };
        let grpc = |after| Verdict::Retry {
            reason: Reason::Grpc,
            after,
        };
        let table: &[(Response<()>, Verdict)] = &[
            (answer(200, &[]), Verdict::Final),
            (answer(500, &[]), Verdict::Final),
            (answer(502, &[]), Verdict::Final),
            (answer(404, &[]), Verdict::Final),
            (answer(400, &[]), Verdict::Final),
            (answer(503, &[]), retry(None)),
            (
                answer(429, &[("retry-after", "3")]),
                retry(Some(Duration::from_secs(3))),
            ),
            (
                answer(503, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
                retry(None),
            ),
            (answer(503, &[("retry-after", "-1")]), retry(None)),
            (
                answer(503, &[("retry-after", "99999999999999999999999")]),
                retry(Some(Duration::from_secs(u64::MAX))),
            ),
            (
                answer(200, &[("content-type", "application/grpc")]),
                Verdict::Final,
            ),
            (
                answer(
                    200,
                    &[("content-type", "application/grpc"), ("grpc-status", "14")],
                ),
                grpc(None),
            ),
            (
                answer(
                    200,
                    &[
                        ("content-type", "application/grpc"),
                        ("grpc-status", "8"),
                        ("grpc-retry-pushback-ms", "120"),
                    ],
                ),
                grpc(Some(Duration::from_millis(120))),
            ),
            (
                answer(
                    200,
                    &[
                        ("content-type", "application/grpc"),
                        ("grpc-status", "14"),
                        ("grpc-retry-pushback-ms", "-1"),
                    ],
                ),
                Verdict::Final,
            ),
            (
                answer(
                    200,
                    &[
                        ("content-type", "application/grpc"),
                        ("grpc-status", "14"),
                        ("grpc-retry-pushback-ms", "soon"),
                    ],
                ),
                Verdict::Final,
            ),
            (
                answer(
                    200,
                    &[("content-type", "application/grpc"), ("grpc-status", "13")],
                ),
                Verdict::Final,
            ),
            (
                answer(
                    200,
                    &[("content-type", "application/grpc"), ("grpc-status", "3")],
                ),
                Verdict::Final,
            ),
        ];
        for (response, expected) in table {
            assert_eq!(
                &super::response(&config, response),
                expected,
                "{response:?}"
            );
        }
    }
}
