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
        assert_eq!(
            response.headers()[RETRY_AFTER],
            u64::MAX.to_string().as_str()
        );
    }
}

#[test]
fn a_zero_budget_or_cap_is_a_configuration_error_not_a_504_for_every_request() {
    use steadfast::policy::{Policies, Policy};
    use steadfast::timeout::{TimeoutConfig, TimeoutLayer};

    let second = Duration::from_secs(1);
    let error = TimeoutLayer::new(Duration::ZERO).err().expect("refused");
    assert_eq!(error.key(), "budget");
    for (config, key) in [
        (TimeoutConfig::new(second).cap(Duration::ZERO), "cap"),
        (TimeoutConfig::caller_deadline(Duration::ZERO), "cap"),
        (
            TimeoutConfig::new(second).timeout_status(http::StatusCode::OK),
            "timeout_status",
        ),
    ] {
        let error = TimeoutLayer::from_config(config.clone())
            .err()
            .expect("refused");
        assert_eq!(error.key(), key, "{error}");
        let policies = Policies::new(Policy::new().timeout_config(config));
        let error = Policies::validate(&policies)
            .err()
            .expect("the policy is refused too");
        assert!(error.to_string().contains(key), "{error}");
    }
    assert!(TimeoutLayer::from_config(TimeoutConfig::caller_deadline(second)).is_ok());
}
