//! Behaviour of the server-side timeout layer, on paused time.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::poll;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use steadfast::core::{Deadline, Rejection, RejectionKind, ResponseBody};
use steadfast::timeout::{DeadlineFormat, OnInvalidDeadline, Timeout, TimeoutConfig, TimeoutLayer};
use tower::{Layer, Service, ServiceExt};

const BUDGET: Duration = Duration::from_millis(300);

/// What the inner service saw.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    remaining: Arc<Mutex<Option<Duration>>>,
    dropped: Arc<AtomicBool>,
}

/// Sets a flag when dropped: proves the inner future was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An inner service that answers `200 ok` after `delay`, recording what it saw.
fn handler(
    delay: Duration,
    seen: &Seen,
) -> impl Service<Request<Empty<Bytes>>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone {
    let seen = seen.clone();
    tower::service_fn(move |request: Request<Empty<Bytes>>| {
        seen.calls.fetch_add(1, Ordering::SeqCst);
        *seen.remaining.lock().unwrap() = Deadline::of(&request).map(Deadline::remaining);
        let flag = DropFlag(seen.dropped.clone());
        async move {
            tokio::time::sleep(delay).await;
            drop(flag);
            Ok(Response::new("ok".to_owned()))
        }
    })
}

fn request(headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::get("/work");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::new()).unwrap()
}

fn grpc_request(timeout: &str) -> Request<Empty<Bytes>> {
    request(&[
        ("content-type", "application/grpc"),
        ("grpc-timeout", timeout),
    ])
}

async fn problem(response: Response<ResponseBody<String>>) -> serde_json::Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn layer(config: TimeoutConfig) -> TimeoutLayer {
    TimeoutLayer::new(config).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_expires_at_the_budget_with_504_problem_json() {
    let seen = Seen::default();
    let service = TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::from_secs(10), &seen));
    let call = service.oneshot(request(&[]));
    tokio::pin!(call);

    assert!(poll!(call.as_mut()).is_pending());
    tokio::time::advance(BUDGET - Duration::from_millis(1)).await;
    assert!(poll!(call.as_mut()).is_pending(), "expired early");
    tokio::time::advance(Duration::from_millis(1)).await;
    let response = call.await.unwrap();

    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let rejection = response.extensions().get::<Rejection>().unwrap();
    assert_eq!(rejection.kind(), RejectionKind::Timeout);
    let json = problem(response).await;
    assert_eq!(json["status"], 504);
    assert_eq!(json["title"], "Request timed out");
    assert!(json["type"].as_str().unwrap().ends_with("#variant.Timeout"));
    assert!(json["detail"].is_string());
}

#[tokio::test(start_paused = true)]
async fn a_fast_request_passes_through_unchanged() {
    let seen = Seen::default();
    let service = TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::from_millis(10), &seen));
    let response = service.oneshot(request(&[])).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.extensions().get::<Rejection>().is_none());
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok"
    );
}

#[tokio::test(start_paused = true)]
async fn the_inner_future_is_dropped_when_the_deadline_passes() {
    let seen = Seen::default();
    let service = TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::from_secs(10), &seen));
    let call = service.oneshot(request(&[]));
    tokio::pin!(call);
    assert!(poll!(call.as_mut()).is_pending());
    assert!(!seen.dropped.load(Ordering::SeqCst));
    tokio::time::advance(BUDGET).await;
    // The rejection is returned, yet the outer future is still alive: the inner one must be gone.
    let response = poll!(call.as_mut());
    assert!(response.is_ready());
    assert!(
        seen.dropped.load(Ordering::SeqCst),
        "the inner work was not cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn the_effective_deadline_is_the_earliest_of_caller_budget_and_cap() {
    let cases = [
        // (budget, cap, caller's grpc-timeout, expected remaining)
        (BUDGET, None, None, BUDGET),
        (BUDGET, None, Some("100m"), Duration::from_millis(100)),
        (BUDGET, None, Some("5S"), BUDGET), // a caller cannot extend our budget
        (
            BUDGET,
            Some(Duration::from_millis(200)),
            Some("5S"),
            Duration::from_millis(200),
        ),
        (
            BUDGET,
            Some(Duration::from_millis(200)),
            Some("150m"),
            Duration::from_millis(150),
        ),
        (
            BUDGET,
            Some(Duration::from_millis(200)),
            None,
            Duration::from_millis(200),
        ),
    ];
    for (budget, cap, caller, expected) in cases {
        let seen = Seen::default();
        let mut config = TimeoutConfig::new(budget);
        if let Some(cap) = cap {
            config = config.cap(cap);
        }
        let service = layer(config).layer(handler(Duration::ZERO, &seen));
        let request = match caller {
            Some(timeout) => grpc_request(timeout),
            None => request(&[]),
        };
        service.oneshot(request).await.unwrap();
        assert_eq!(
            *seen.remaining.lock().unwrap(),
            Some(expected),
            "{budget:?} {cap:?} {caller:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_caller_deadline_also_bounds_the_work() {
    let seen = Seen::default();
    let service = TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::from_secs(10), &seen));
    let call = service.oneshot(grpc_request("50m"));
    tokio::pin!(call);
    assert!(poll!(call.as_mut()).is_pending());
    tokio::time::advance(Duration::from_millis(50)).await;
    let response = call.await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "4");
}

#[tokio::test(start_paused = true)]
async fn caller_deadline_mode_uses_the_callers_time_up_to_the_cap() {
    let cap = Duration::from_secs(2);
    for (caller, expected) in [("700m", Duration::from_millis(700)), ("1H", cap)] {
        let seen = Seen::default();
        let service =
            layer(TimeoutConfig::caller_deadline(cap)).layer(handler(Duration::ZERO, &seen));
        service.oneshot(grpc_request(caller)).await.unwrap();
        assert_eq!(*seen.remaining.lock().unwrap(), Some(expected));
    }
}

#[tokio::test(start_paused = true)]
async fn every_grpc_timeout_unit_sets_the_deadline() {
    let big = Duration::from_secs(10 * 3600);
    let cases = [
        ("2H", Duration::from_secs(7200)),
        ("3M", Duration::from_secs(180)),
        ("4S", Duration::from_secs(4)),
        ("5m", Duration::from_millis(5)),
        ("6u", Duration::from_micros(6)),
        ("7n", Duration::from_nanos(7)),
        ("99999999n", Duration::from_nanos(99_999_999)),
    ];
    for (value, expected) in cases {
        let seen = Seen::default();
        let service = TimeoutLayer::new(big)
            .unwrap()
            .layer(handler(Duration::ZERO, &seen));
        service.oneshot(grpc_request(value)).await.unwrap();
        assert_eq!(*seen.remaining.lock().unwrap(), Some(expected), "{value}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_already_expired_request_never_reaches_the_inner_service() {
    // The caller gave no time at all.
    let seen = Seen::default();
    let service = TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::ZERO, &seen));
    let response = service.oneshot(grpc_request("0n")).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "4");
    assert_eq!(
        response.extensions().get::<Rejection>().unwrap().kind(),
        RejectionKind::DeadlineExpired
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);

    // An outer layer's deadline has already passed (e.g. time spent in a queue).
    let mut late = request(&[]);
    late.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(5)));
    tokio::time::advance(Duration::from_millis(5)).await;
    let service = TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::ZERO, &seen));
    let response = service.oneshot(late).await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(problem(response).await["title"], "Deadline already expired");
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn an_outer_deadline_in_the_extensions_is_kept_when_earlier() {
    let seen = Seen::default();
    let service = TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::ZERO, &seen));
    let mut inner_request = request(&[]);
    inner_request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(40)));
    service.oneshot(inner_request).await.unwrap();
    assert_eq!(
        *seen.remaining.lock().unwrap(),
        Some(Duration::from_millis(40))
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_grpc_timeouts_are_ignored_by_default() {
    for value in [
        "",
        "S",
        "123456789S",
        "10",
        "10ms",
        "-1S",
        "1.5S",
        "\u{7f}S",
    ] {
        let seen = Seen::default();
        let service = TimeoutLayer::new(BUDGET)
            .unwrap()
            .layer(handler(Duration::ZERO, &seen));
        let mut request = grpc_request("1S");
        let Ok(header) = http::HeaderValue::from_str(value) else {
            continue;
        };
        request.headers_mut().insert("grpc-timeout", header);
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{value:?}");
        assert!(response.headers().get("grpc-status").is_none());
        assert_eq!(*seen.remaining.lock().unwrap(), Some(BUDGET), "{value:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_deadlines_are_rejected_when_configured() {
    let config = TimeoutConfig::new(BUDGET).on_invalid_deadline(OnInvalidDeadline::Reject);
    let seen = Seen::default();

    let response = layer(config.clone())
        .layer(handler(Duration::ZERO, &seen))
        .oneshot(grpc_request("12x"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "3");
    let message = response.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("grpc-timeout"), "{message}");

    let http = request(&[("grpc-timeout", "999999999S")]);
    let response = layer(config)
        .layer(handler(Duration::ZERO, &seen))
        .oneshot(http)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json = problem(response).await;
    assert_eq!(json["status"], 400);
    assert_eq!(
        json["detail"],
        "invalid grpc-timeout header: more than 8 digits"
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn grpc_timeout_can_be_ignored() {
    let seen = Seen::default();
    let config = TimeoutConfig::new(BUDGET).honor_grpc_timeout(false);
    layer(config)
        .layer(handler(Duration::ZERO, &seen))
        .oneshot(grpc_request("1m"))
        .await
        .unwrap();
    assert_eq!(*seen.remaining.lock().unwrap(), Some(BUDGET));
}

#[tokio::test(start_paused = true)]
async fn an_http_deadline_header_is_honoured_when_configured() {
    let header = HeaderName::from_static("x-request-timeout-ms");
    let config =
        TimeoutConfig::new(BUDGET).http_deadline_header(header.clone(), DeadlineFormat::Millis);
    let seen = Seen::default();
    layer(config.clone())
        .layer(handler(Duration::ZERO, &seen))
        .oneshot(request(&[("x-request-timeout-ms", "120")]))
        .await
        .unwrap();
    assert_eq!(
        *seen.remaining.lock().unwrap(),
        Some(Duration::from_millis(120))
    );

    // Not configured: the header means nothing.
    TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::ZERO, &seen))
        .oneshot(request(&[("x-request-timeout-ms", "120")]))
        .await
        .unwrap();
    assert_eq!(*seen.remaining.lock().unwrap(), Some(BUDGET));

    // Zero left: rejected before the handler.
    let calls = seen.calls.load(Ordering::SeqCst);
    let response = layer(config)
        .layer(handler(Duration::ZERO, &seen))
        .oneshot(request(&[("x-request-timeout-ms", "0")]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(seen.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test(start_paused = true)]
async fn grpc_requests_get_trailers_only_and_http_requests_get_problem_json() {
    let seen = Seen::default();
    let service = TimeoutLayer::new(BUDGET)
        .unwrap()
        .layer(handler(Duration::from_secs(10), &seen));

    let grpc = service
        .clone()
        .oneshot(request(&[("content-type", "application/grpc+proto")]));
    let http = service.oneshot(request(&[("content-type", "application/json")]));
    let (grpc, http) = tokio::join!(grpc, http);

    let grpc = grpc.unwrap();
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["content-type"], "application/grpc");
    let status = tonic::Status::from_header_map(grpc.headers()).unwrap();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert!(
        http_body::Body::is_end_stream(grpc.body()),
        "trailers-only: no body"
    );

    let http = http.unwrap();
    assert_eq!(http.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(problem(http).await["status"], 504);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_status_is_configurable() {
    let seen = Seen::default();
    let config = TimeoutConfig::new(BUDGET).timeout_status(StatusCode::SERVICE_UNAVAILABLE);
    let response = layer(config)
        .layer(handler(Duration::from_secs(1), &seen))
        .oneshot(request(&[]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem(response).await["status"], 503);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unchanged() {
    let failing =
        tower::service_fn(|_: Request<Empty<Bytes>>| async { Err::<Response<String>, _>("boom") });
    let error = Timeout::new(failing, BUDGET)
        .oneshot(request(&[]))
        .await
        .unwrap_err();
    assert_eq!(error, "boom");
}

#[tokio::test(start_paused = true)]
async fn typed_errors_for_plain_services() {
    let slow = tower::service_fn(|n: u32| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, std::io::Error>(n * 2)
    });
    let fast = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) });
    let layer = TimeoutLayer::new(BUDGET).unwrap().typed_errors();

    assert_eq!(layer.layer(fast).oneshot(21).await.unwrap(), 42);
    match layer.layer(slow).oneshot(21).await {
        Err(steadfast::Error::Rejected(rejection)) => {
            assert_eq!(rejection.kind(), RejectionKind::Timeout)
        }
        other => panic!("expected a timeout rejection, got {other:?}"),
    }
    let failing =
        tower::service_fn(|_: u32| async { Err::<u32, _>(std::io::Error::other("down")) });
    let error = layer.layer(failing).oneshot(1).await.unwrap_err();
    assert_eq!(error.into_inner().unwrap().to_string(), "down");
}

#[tokio::test(start_paused = true)]
async fn readiness_of_the_inner_service_is_forwarded() {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Empty<Bytes>>, Response<String>>();
    let mut service = TimeoutLayer::new(BUDGET).unwrap().layer(mock);
    handle.allow(0);
    assert!(poll!(futures::future::poll_fn(|cx| service.poll_ready(cx))).is_pending());
    handle.allow(1);
    futures::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    let call = service.call(request(&[]));
    let (received, reply) = handle.next_request().await.unwrap();
    // The deadline is published to the inner service while it is called and polled, not
    // carried in the request: a request handed on to another task (as the mock does) has none.
    assert!(Deadline::of(&received).is_none());
    reply.send_response(Response::new("mocked".to_owned()));
    assert_eq!(call.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn an_unpublished_deadline_is_still_enforced() {
    let seen = Seen::default();
    let config = TimeoutConfig::new(BUDGET).publish_deadline(false);
    layer(config.clone())
        .layer(handler(Duration::ZERO, &seen))
        .oneshot(request(&[]))
        .await
        .unwrap();
    assert_eq!(*seen.remaining.lock().unwrap(), None);

    let call = layer(config)
        .layer(handler(Duration::from_secs(10), &seen))
        .oneshot(request(&[]));
    tokio::pin!(call);
    assert!(poll!(call.as_mut()).is_pending());
    tokio::time::advance(BUDGET).await;
    assert_eq!(call.await.unwrap().status(), StatusCode::GATEWAY_TIMEOUT);
}
