//! Policies from TOML: inheritance, and one test per kind of mistake, each naming its key.
#![cfg(feature = "config")]

use std::time::Duration;

use http::Method;
use steadfast::policy::{CONFIG_KEYS, PolicyFile};

mod common;

#[test]
fn routes_inherit_the_defaults_key_by_key() {
    let file = PolicyFile::parse(
        r#"
        [defaults]
        timeout = "2s"
        criticality = "critical"

        [defaults.breaker]
        failure_rate_threshold = 40
        minimum_calls = 20

        [routes."/checkout"]
        timeout = "300ms"
        breaker.minimum_calls = 10

        [routes."GET /search"]
        criticality = "sheddable"
        shed.algorithm = "aimd"
        breaker.enabled = false
        "#,
    )
    .unwrap();
    let policies = file.policies();
    let checkout = policies.for_route(&Method::POST, "/checkout");
    assert_eq!(
        checkout.timeout_settings().budget(),
        Some(Duration::from_millis(300))
    );
    let expected = steadfast::policy::Policy::new()
        .timeout(Duration::from_millis(300))
        .breaker(
            steadfast::breaker::BreakerConfig::new()
                .failure_rate_threshold(40.0)
                .minimum_calls(10),
        );
    assert_eq!(checkout, &expected);
    let search = policies.for_route(&Method::GET, "/search");
    assert_eq!(
        search,
        &steadfast::policy::Policy::new()
            .timeout(Duration::from_secs(2))
            .no_breaker()
            .shed(
                steadfast::shed::ShedConfig::new()
                    .algorithm(steadfast::shed::LimitAlgorithm::Aimd(Default::default()))
            )
            .criticality(steadfast::shed::Criticality::Sheddable)
    );
    // POST /search has no policy of its own: the defaults.
    assert_eq!(
        policies
            .for_route(&Method::POST, "/search")
            .timeout_settings()
            .budget(),
        Some(Duration::from_secs(2))
    );
}

/// Parses `text`, expecting an error at `path` whose reason contains `reason`.
fn fails(text: &str, path: &str, reason: &str) {
    let error = PolicyFile::parse(text).unwrap_err();
    assert_eq!(error.path(), path, "{error}");
    assert!(error.reason().contains(reason), "{error}");
    assert!(error.to_string().contains(path), "{error}");
}

#[test]
fn unknown_keys_are_refused() {
    fails(
        "[defaults.breaker]\nfailure_rate = 50\n",
        "defaults.breaker.failure_rate",
        "unknown field `failure_rate`",
    );
    fails(
        "[routes.\"/a\"]\ntimeout = \"1s\"\nretries = 3\n",
        "routes.\"/a\".retries",
        "unknown field `retries`",
    );
    fails(
        "[default]\ntimeout = \"1s\"\n",
        "default",
        "unknown field `default`",
    );
}

#[test]
fn values_of_the_wrong_type_or_shape_are_refused() {
    fails(
        "[defaults]\ntimeout = 250\n",
        "defaults.timeout",
        "invalid type: integer `250`",
    );
    fails(
        "[defaults]\ntimeout = \"soon\"\n",
        "defaults.timeout",
        "`soon` is not a duration",
    );
    fails(
        "[routes.\"/a\".breaker]\nminimum_calls = \"ten\"\n",
        "routes.\"/a\".breaker.minimum_calls",
        "invalid type",
    );
    fails(
        "[defaults]\ncriticality = \"vip\"\n",
        "defaults.criticality",
        "`vip` is not",
    );
    fails(
        "[defaults.shed]\nalgorithm = \"vegas\"\n",
        "defaults.shed.algorithm",
        "`vegas` is not",
    );
    fails(
        "[defaults.contract]\nresponses = \"strict\"\n",
        "defaults.contract.responses",
        "`strict` is not",
    );
    fails(
        "[routes.\"checkout\"]\ntimeout = \"1s\"\n",
        "routes.\"checkout\"",
        "starts with `/`",
    );
}

#[test]
fn settings_that_cannot_work_together_are_refused() {
    fails(
        "[defaults]\ntimeout = \"0s\"\n",
        "defaults.timeout",
        "longer than zero",
    );
    fails(
        "[routes.\"/a\"]\ntimeout = \"2s\"\nbreaker.slow_call_duration = \"3s\"\n",
        "routes.\"/a\".breaker.slow_call_duration",
        "not shorter than the timeout",
    );
    fails(
        "[routes.\"/a\"]\ntimeout = \"2s\"\nbreaker.window_duration = \"3s\"\n",
        "routes.\"/a\".breaker.window_duration",
        "shorter than twice the timeout",
    );
    fails(
        "[routes.\"POST /a\".shed]\nmin_limit = 50\nmax_limit = 10\ninitial_limit = 10\n",
        "routes.\"POST /a\".shed.min_limit",
        "above the max",
    );
    fails(
        "[defaults.shed]\nalgorithm = \"fixed\"\n",
        "defaults.shed.limit",
        "required with algorithm = \"fixed\"",
    );
    fails(
        "[defaults.breaker]\nfailure_rate_threshold = 150\n",
        "defaults.breaker.failure_rate_threshold",
        "percentage",
    );
    fails(
        "[defaults.breaker]\nwindow_calls = 0\n",
        "defaults.breaker.window_calls",
        "count window",
    );
    fails(
        "[defaults.breaker]\nwindow_calls = 10\nwindow_duration = \"60s\"\n",
        "defaults.breaker.window_duration",
        "not both",
    );
    fails(
        "[defaults.contract]\nresponse_sample_rate = 2.0\n",
        "defaults.contract.response_sample_rate",
        "between 0 and 1",
    );
}

#[test]
fn a_contract_document_that_cannot_be_read_is_named() {
    fails(
        "[openapi]\ndocument = \"does/not/exist.yaml\"\n",
        "openapi.document",
        "cannot read",
    );
    let missing = PolicyFile::load("does/not/exist.toml").unwrap_err();
    assert_eq!(missing.path(), "file");
}

/// The README's configuration reference lists every key with its default and meaning.
#[test]
fn the_readme_configuration_reference_is_the_code_s() {
    let rows = common::readme_table("### Configuration reference");
    let expected: Vec<Vec<String>> = CONFIG_KEYS
        .iter()
        .map(|key| {
            vec![
                format!("`{}`", key.key),
                format!("`{}`", key.default),
                key.meaning.to_owned(),
            ]
        })
        .collect();
    assert_eq!(rows, expected);
}

/// `[dependencies.<name>]`: a dependency policy from the file, applied by the layer it gives.
#[tokio::test(start_paused = true)]
async fn dependency_policies_come_from_the_file_and_their_mistakes_name_the_key() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use steadfast::retry::ReplayBody;
    use tower::{Layer, ServiceExt};

    let file = PolicyFile::parse(
        r#"
        [dependencies.inventory]
        attempt_timeout = "100ms"
        max_concurrency = 8
        retry.max_retries = 3
        retry.budget_min_per_second = 100
        retry.idempotent_grpc_methods = ["/shop.Inventory/Get"]
        breaker.minimum_calls = 50
        hedge.delay = "20ms"

        [dependencies.payments]
        retry.enabled = false
        breaker.enabled = false
        throttle.enabled = false
        "#,
    )
    .unwrap();
    assert_eq!(
        file.dependencies().keys().collect::<Vec<_>>(),
        ["inventory", "payments"]
    );

    let count = |layer: steadfast::dependency::DependencyLayer| async move {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let client = tower::service_fn(
            move |_: http::Request<ReplayBody<http_body_util::Empty<bytes::Bytes>>>| {
                seen.fetch_add(1, Ordering::SeqCst);
                async {
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder().status(503).body(()).unwrap(),
                    )
                }
            },
        );
        let request = http::Request::get("http://x/")
            .body(http_body_util::Empty::new())
            .unwrap();
        let _ = layer.layer(client).oneshot(request).await;
        calls.load(Ordering::SeqCst)
    };
    let inventory = file.dependency_layer("inventory").unwrap();
    assert!(inventory.handle().breaker().is_some());
    assert!(inventory.handle().throttle().is_some());
    assert_eq!(count(inventory).await, 4, "retry.max_retries = 3");
    let payments = file.dependency_layer("payments").unwrap();
    assert!(payments.handle().breaker().is_none());
    assert!(payments.handle().throttle().is_none());
    assert_eq!(count(payments).await, 1, "retry.enabled = false");
    assert_eq!(
        file.dependency_layer("nope").unwrap_err().path(),
        "dependencies.nope"
    );

    for (text, path) in [
        (
            "[dependencies.a]\nattempt_timeout = \"0s\"",
            "dependencies.a.attempt_timeout",
        ),
        (
            "[dependencies.a]\nattempt_timeout = 5",
            "dependencies.a.attempt_timeout",
        ),
        (
            "[dependencies.a]\nmax_concurrency = 0",
            "dependencies.a.max_concurrency",
        ),
        (
            "[dependencies.a]\ndeadline_header = \"bad header\"",
            "dependencies.a.deadline_header",
        ),
        (
            "[dependencies.a]\nretry.max_retries = 11",
            "dependencies.a.retry.max_retries",
        ),
        (
            "[dependencies.a]\nretry.backoff_base = \"1s\"\nretry.backoff_max = \"10ms\"",
            "dependencies.a.retry.backoff_base",
        ),
        (
            "[dependencies.a]\nretry.budget_ratio = -1",
            "dependencies.a.retry.budget_ratio",
        ),
        (
            "[dependencies.a]\nretry.idempotent_grpc_methods = [\"Get\"]",
            "dependencies.a.retry.idempotent_grpc_methods",
        ),
        (
            "[dependencies.a]\nretry.maximum = 3",
            "dependencies.a.retry.maximum",
        ),
        (
            "[dependencies.a]\nthrottle.k = 0.5",
            "dependencies.a.throttle.k",
        ),
        (
            "[dependencies.a]\nhedge.percentile = 100",
            "dependencies.a.hedge.delay",
        ),
        (
            "[dependencies.a]\nhedge.percentile = 90\nhedge.delay = \"5ms\"",
            "dependencies.a.hedge.delay",
        ),
        (
            "[dependencies.a]\nbreaker.failure_rate_threshold = 0",
            "dependencies.a.breaker.failure_rate_threshold",
        ),
        (
            "[dependencies.\"a b\"]\nmax_concurrency = 1",
            "dependencies.a b",
        ),
        (
            "[dependencies.a]\nobjective.availability = 100",
            "dependencies.a.objective.availability",
        ),
        (
            "[dependencies.a]\nobjective.latency_threshold = \"300ms\"",
            "dependencies.a.objective.latency_threshold",
        ),
        (
            "[alerts]\nservice_labels = [\"route\"]",
            "alerts.service_labels",
        ),
        (
            "[alerts]\nservice_labels = [\"9lives\"]",
            "alerts.service_labels",
        ),
    ] {
        let error = PolicyFile::parse(text).unwrap_err();
        assert_eq!(error.path(), path, "{text}: {error}");
    }
}

/// Every timeout setting code can make has a key: the cap, the caller's headers and their
/// form, the answer to an unreadable one, the timeout status, publishing the `Deadline`; and
/// the shedder's queue. A route inherits them key by key.
#[test]
fn deadline_and_queue_settings_come_from_the_file() {
    use http::{HeaderName, StatusCode};
    use steadfast::policy::Policy;
    use steadfast::shed::{QueueConfig, ShedConfig};
    use steadfast::timeout::{DeadlineFormat, OnInvalidDeadline, TimeoutConfig};

    let file = PolicyFile::parse(
        r#"
        [defaults]
        timeout = "2s"
        deadline.cap = "5s"
        deadline.http_header = "x-envoy-expected-rq-timeout-ms"
        deadline.on_invalid = "reject"
        shed.queue.max_wait = "50ms"

        [routes."/a"]
        deadline.http_format = "grpc_timeout"
        deadline.grpc_timeout = false
        deadline.timeout_status = 503
        deadline.publish = false
        shed.queue.max_len = 10
        "#,
    )
    .unwrap();
    let policies = file.policies();
    let header = HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
    let defaults = TimeoutConfig::new(Duration::from_secs(2))
        .cap(Duration::from_secs(5))
        .http_deadline_header(header.clone(), DeadlineFormat::Millis)
        .on_invalid_deadline(OnInvalidDeadline::Reject);
    let queue = QueueConfig {
        max_wait: Duration::from_millis(50),
        ..QueueConfig::default()
    };
    assert_eq!(
        policies.for_route(&Method::GET, "/elsewhere"),
        &Policy::new()
            .timeout_config(defaults.clone())
            .shed(ShedConfig::new().queue(queue))
    );
    let route = TimeoutConfig::new(Duration::from_secs(2))
        .cap(Duration::from_secs(5))
        .http_deadline_header(header, DeadlineFormat::GrpcTimeout)
        .on_invalid_deadline(OnInvalidDeadline::Reject)
        .honor_grpc_timeout(false)
        .timeout_status(StatusCode::SERVICE_UNAVAILABLE)
        .publish_deadline(false);
    assert_eq!(
        policies.for_route(&Method::GET, "/a"),
        &Policy::new()
            .timeout_config(route)
            .shed(ShedConfig::new().queue(QueueConfig {
                max_len: 10,
                ..queue
            }))
    );
    // No key: no queue, as in code.
    let plain = PolicyFile::parse("[defaults]\ntimeout = \"2s\"\n").unwrap();
    assert_eq!(
        plain.policies().for_route(&Method::GET, "/a"),
        &Policy::new().timeout(Duration::from_secs(2))
    );
}

/// The shedder's window, its gRPC status and the per-class fractions have keys too; a route
/// inherits them key by key (a class's fraction on its own).
#[test]
fn shed_window_code_and_class_fractions_come_from_the_file() {
    use steadfast::core::grpc::Code;
    use steadfast::policy::Policy;
    use steadfast::shed::{Criticality, ShedConfig};

    let file = PolicyFile::parse(
        r#"
        [defaults]
        shed.sample_window = "500ms"
        shed.admit_below.sheddable = 0.5
        shed.guaranteed_share = { critical = 0.3 }

        [routes."/a"]
        shed.min_samples = 20
        shed.grpc_code = "resource_exhausted"
        shed.admit_below = { sheddable_plus = 0.8 }
        shed.guaranteed_share.critical_plus = 0.2
        "#,
    )
    .unwrap();
    let policies = file.policies();
    let defaults = ShedConfig::new()
        .sample_window(Duration::from_millis(500), 10)
        .admit_below(Criticality::Sheddable, 0.5)
        .guaranteed_share(Criticality::Critical, 0.3);
    assert_eq!(
        policies.for_route(&Method::GET, "/elsewhere"),
        &Policy::new().shed(defaults)
    );
    let route = ShedConfig::new()
        .sample_window(Duration::from_millis(500), 20)
        .grpc_code(Code::ResourceExhausted)
        .admit_below(Criticality::Sheddable, 0.5)
        .admit_below(Criticality::SheddablePlus, 0.8)
        .guaranteed_share(Criticality::Critical, 0.3)
        .guaranteed_share(Criticality::CriticalPlus, 0.2);
    assert_eq!(
        policies.for_route(&Method::GET, "/a"),
        &Policy::new().shed(route)
    );
}

#[test]
fn shed_mistakes_name_their_key() {
    for (text, path, reason) in [
        (
            "[defaults]\nshed.grpc_code = \"internal\"\n",
            "defaults.shed.grpc_code",
            "`internal` is not",
        ),
        (
            "[routes.\"/a\"]\nshed.sample_window = \"0s\"\n",
            "routes.\"/a\".shed.sample_window",
            "longer than zero",
        ),
        (
            "[defaults]\nshed.min_samples = 0\n",
            "defaults.shed.min_samples",
            "at least 1",
        ),
        (
            "[defaults]\nshed.admit_below.sheddable = 1.5\n",
            "defaults.shed.admit_below",
            "",
        ),
        (
            "[defaults]\nshed.guaranteed_share = { critical = 0.7, sheddable = 0.7 }\n",
            "defaults.shed.guaranteed_share",
            "at most 1",
        ),
        (
            "[defaults]\nshed.admit_below.urgent = 0.5\n",
            "defaults.shed.admit_below.urgent",
            "unknown field",
        ),
    ] {
        fails(text, path, reason);
    }
}

#[test]
fn deadline_and_queue_mistakes_name_their_key() {
    for (text, path, reason) in [
        (
            "[defaults]\ndeadline.http_format = \"millis\"\n",
            "defaults.deadline.http_format",
            "needs deadline.http_header",
        ),
        (
            "[defaults]\ndeadline.http_header = \"x-t\"\ndeadline.http_format = \"seconds\"\n",
            "defaults.deadline.http_format",
            "`seconds` is not",
        ),
        (
            "[defaults]\ndeadline.http_header = \"bad header\"\n",
            "defaults.deadline.http_header",
            "not a header name",
        ),
        (
            "[defaults]\ndeadline.on_invalid = \"drop\"\n",
            "defaults.deadline.on_invalid",
            "`drop` is not",
        ),
        (
            "[defaults]\ndeadline.timeout_status = 200\n",
            "defaults.deadline.timeout_status",
            "4xx or 5xx",
        ),
        (
            "[defaults]\ndeadline.cap = \"0s\"\n",
            "defaults.deadline.cap",
            "longer than zero",
        ),
        (
            "[routes.\"/a\"]\nshed.queue.max_len = 0\n",
            "routes.\"/a\".shed.queue.max_len",
            "at least 1",
        ),
        (
            "[routes.\"/a\"]\nshed.queue.max_wait = \"2h\"\n",
            "routes.\"/a\".shed.queue.max_wait",
            "at most an hour",
        ),
        (
            "[defaults.shed.queue]\ntarget_wait = \"1s\"\n",
            "defaults.shed.queue.target_wait",
            "not be longer than queue.max_wait",
        ),
    ] {
        fails(text, path, reason);
    }
}

/// The breaker's backoff, jitter and half-open timing have keys too, for routes and
/// dependencies alike.
#[test]
fn breaker_timing_comes_from_the_file() {
    use steadfast::breaker::BreakerConfig;
    use steadfast::policy::Policy;

    let file = PolicyFile::parse(
        r#"
        [defaults.breaker]
        open_backoff = 2.0
        open_max = "1m"
        open_jitter = 0.1
        half_open_max_wait = "10s"
        automatic_half_open = true
        "#,
    )
    .unwrap();
    let expected = BreakerConfig::new()
        .open_backoff(2.0, Duration::from_secs(60))
        .open_jitter(0.1)
        .half_open_max_wait(Some(Duration::from_secs(10)))
        .automatic_half_open(true);
    assert_eq!(
        file.policies().for_route(&Method::GET, "/a"),
        &Policy::new().breaker(expected)
    );
    fails(
        "[defaults.breaker]\nopen_jitter = 2.0\n",
        "defaults.breaker.open_jitter",
        "",
    );
    let dependency = PolicyFile::parse("[dependencies.db]\nbreaker.open_backoff = 2.0\n").unwrap();
    assert!(dependency.dependency_layer("db").is_ok());
}
