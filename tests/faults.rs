//! Regressions from fault injection and hostile input (issue 15): each test is named after the
//! behaviour it protects and failed before its fix.

use std::time::Duration;

use http::header::RETRY_AFTER;
use steadfast::core::{Origin, Rejection, RejectionKind};

#[test]
fn an_endless_retry_after_is_sent_as_the_largest_wait_not_as_retry_now() {
    // `Duration::MAX` rounded up once overflowed (wrapping to `Retry-After: 0` in release).
    for after in [Duration::MAX, Duration::new(u64::MAX, 1)] {
        let rejection =
            Rejection::new(RejectionKind::Overloaded, Origin::Shed).with_retry_after(after);
        let response = rejection.to_http_response::<http_body_util::Full<bytes::Bytes>>();
        assert_eq!(response.headers()[RETRY_AFTER], u64::MAX.to_string().as_str());
    }
}
