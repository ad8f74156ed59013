//! Per-route policies through a real Axum router and a real tonic server on loopback: the
//! right policy for each route, the order of the layers, hot reload.
#![cfg(all(feature = "axum", feature = "contract"))]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use steadfast::breaker::{BreakerConfig, SlidingWindow};
use steadfast::contract::{Contract, ContractConfig, RouteSchemas};
use steadfast::core::{Rejection, RejectionKind};
use steadfast::policy::{Policies, Policy, PolicyHandle, PolicyLayer};
use steadfast::shed::{QueueConfig, ShedConfig};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

mod common;

/// How many times each handler ran.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn router(calls: Calls) -> Router {
    let sleepy = {
        let calls = calls.clone();
        move |axum::extract::Path(ms): axum::extract::Path<u64>| {
            let calls = calls.clone();
            async move {
                calls.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "slept"
            }
        }
    };
    let failing = {
        let calls = calls.clone();
        move || {
            let calls = calls.clone();
            async move {
                calls.0.fetch_add(1, Ordering::SeqCst);
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    };
    let create = {
        let calls = calls.clone();
        move |_: Bytes| {
            let calls = calls.clone();
            async move {
                calls.0.fetch_add(1, Ordering::SeqCst);
                StatusCode::CREATED
            }
        }
    };
    Router::new()
        .route("/slow/{ms}", get(sleepy.clone()))
        .route("/other/{ms}", get(sleepy))
        .route("/fail", get(failing))
        .route("/pets", post(create))
}

fn contract() -> Contract {
    Contract::builder()
        .route(
            http::Method::POST,
            "/pets",
            RouteSchemas::new().request_body(serde_json::json!({
                "type": "object", "required": ["name"]
            })),
        )
        .build()
        .unwrap()
}

fn app(policies: Policies) -> (Router, PolicyHandle, Calls) {
    let calls = Calls::default();
    let layer =
        PolicyLayer::with_contract(policies, contract(), ContractConfig::default()).unwrap();
    let handle = layer.handle();
    (router(calls.clone()).layer(layer), handle, calls)
}

fn get_request(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Option<RejectionKind>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let kind = response
        .extensions()
        .get::<Rejection>()
        .map(Rejection::kind);
    (response.status(), kind)
}

/// A breaker that opens after two failures among the last four calls.
fn quick_breaker() -> BreakerConfig {
    BreakerConfig::new()
        .sliding_window(SlidingWindow::count(4))
        .minimum_calls(2)
}

#[tokio::test(start_paused = true)]
async fn each_route_gets_its_policy_and_the_others_the_defaults() {
    let policies = Policies::new(Policy::new().timeout(Duration::from_secs(2))).route(
        "/slow/{ms}",
        Policy::new().timeout(Duration::from_millis(100)),
    );
    let (app, _, _) = app(policies);

    let started = Instant::now();
    let (status, kind) = send(&app, get_request("/slow/500")).await;
    assert_eq!(
        (status, kind),
        (StatusCode::GATEWAY_TIMEOUT, Some(RejectionKind::Timeout))
    );
    assert_eq!(started.elapsed(), Duration::from_millis(100));

    let started = Instant::now();
    assert_eq!(
        send(&app, get_request("/other/500")).await.0,
        StatusCode::OK
    );
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    let (status, _) = send(&app, get_request("/other/5000")).await;
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "the default 2 s budget"
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_counts_timeouts_but_not_shedding_or_contract_rejections() {
    let policies = Policies::new(Policy::new().breaker(quick_breaker())).route(
        "/slow/{ms}",
        Policy::new()
            .timeout(Duration::from_millis(100))
            .breaker(quick_breaker())
            .shed(ShedConfig::fixed(1)),
    );
    let (app, _, calls) = app(policies);

    // Shedding: one admitted, the rest shed at once; none of it is a failure.
    let burst: Vec<_> = (0..5)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get_request("/slow/50")).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in burst {
        outcomes.push(call.await.unwrap());
    }
    let shed = outcomes
        .iter()
        .filter(|o| {
            *o == &(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(RejectionKind::Overloaded),
            )
        })
        .count();
    assert_eq!(shed, 4, "{outcomes:?}");

    // Contract rejections: not failures either.
    for _ in 0..4 {
        let invalid = Request::post("/pets")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        assert_eq!(
            send(&app, invalid).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let valid = Request::post("/pets")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name":"Rex"}"#))
        .unwrap();
    assert_eq!(
        send(&app, valid).await.0,
        StatusCode::CREATED,
        "the breaker is closed"
    );
    assert_eq!(send(&app, get_request("/slow/10")).await.0, StatusCode::OK);

    // Timeouts are: two of them and the breaker opens.
    for _ in 0..2 {
        let (status, kind) = send(&app, get_request("/slow/500")).await;
        assert_eq!(
            (status, kind),
            (StatusCode::GATEWAY_TIMEOUT, Some(RejectionKind::Timeout))
        );
    }
    let before = calls.get();
    let (status, kind) = send(&app, get_request("/slow/10")).await;
    assert_eq!(
        (status, kind),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(RejectionKind::CircuitOpen)
        )
    );
    assert_eq!(
        calls.get(),
        before,
        "an open breaker answers before the handler"
    );
}

#[tokio::test(start_paused = true)]
async fn time_spent_queueing_counts_against_the_deadline() {
    let queue = QueueConfig {
        max_wait: Duration::from_secs(5),
        target_wait: Duration::from_secs(5),
        ..QueueConfig::default()
    };
    let policies = Policies::new(Policy::new()).route(
        "/slow/{ms}",
        Policy::new()
            .timeout(Duration::from_millis(300))
            .shed(ShedConfig::fixed(1).queue(queue)),
    );
    let (app, _, _) = app(policies);
    let started = Instant::now();
    let first = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, get_request("/slow/250")).await })
    };
    tokio::task::yield_now().await;
    let (status, kind) = send(&app, get_request("/slow/250")).await;
    // Queued 250 ms, then 50 ms of service before its 300 ms ran out.
    assert_eq!(
        (status, kind),
        (StatusCode::GATEWAY_TIMEOUT, Some(RejectionKind::Timeout))
    );
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
}

/// A request that waits in the queue past its longest wait is refused as overloaded (with
/// `Retry-After`); one whose caller gives up while it waits leaves the queue, so that the next
/// request takes the slot.
#[tokio::test(start_paused = true)]
async fn a_queue_wait_runs_out_or_is_cancelled_without_keeping_a_place() {
    let queue = QueueConfig {
        max_wait: Duration::from_millis(100),
        target_wait: Duration::from_millis(100),
        ..QueueConfig::default()
    };
    let policies = Policies::new(Policy::new()).route(
        "/slow/{ms}",
        Policy::new().shed(ShedConfig::fixed(1).queue(queue)),
    );
    let (app, _, _) = app(policies);
    let first = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, get_request("/slow/1000")).await })
    };
    tokio::task::yield_now().await;
    let started = Instant::now();
    let response = app.clone().oneshot(get_request("/slow/10")).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response
            .extensions()
            .get::<Rejection>()
            .map(Rejection::kind),
        Some(RejectionKind::Overloaded)
    );
    // A waiting request whose caller gives up: its place is given back.
    let cancelled = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, get_request("/slow/10")).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(send(&app, get_request("/slow/10")).await.0, StatusCode::OK);
}

/// A service that panics when called (before it returns a future) or when its future is
/// polled, over HTTP and gRPC: each request is answered 500 / `INTERNAL` by the stack, counted
/// as a failure, and gives its limiter slot back.
#[tokio::test(start_paused = true)]
async fn panics_when_called_or_polled_are_answered_and_release_their_slot() {
    use steadfast::policy::InnerRequest;

    let policies = Policies::new(Policy::new().shed(ShedConfig::fixed(2)));
    let layer = PolicyLayer::new(policies).unwrap();
    let handle = layer.handle();
    let service = layer.layer(tower::service_fn(|request: InnerRequest<Body>| {
        if request.uri().path() == "/in-call" {
            panic!("panicked in call");
        }
        async move {
            if request.uri().path() == "/in-poll" {
                panic!("panicked in poll");
            }
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        }
    }));
    for path in ["/in-call", "/in-poll"] {
        for grpc in [false, true] {
            let mut request = Request::post(path).body(Body::empty()).unwrap();
            if grpc {
                request
                    .headers_mut()
                    .insert("content-type", "application/grpc".parse().unwrap());
            }
            let response = service.clone().oneshot(request).await.unwrap();
            let kind = response
                .extensions()
                .get::<Rejection>()
                .map(Rejection::kind);
            assert_eq!(kind, Some(RejectionKind::Panicked), "{path} grpc={grpc}");
            if grpc {
                assert_eq!(response.status(), StatusCode::OK);
                assert_eq!(response.headers()["grpc-status"], "13", "{path}");
            } else {
                assert_eq!(
                    response.status(),
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "{path}"
                );
            }
        }
    }
    // Every slot is back, and the next request is served.
    for (name, limiter) in handle.limiters() {
        assert_eq!(limiter.snapshot().in_flight, 0, "{name}");
    }
    let response = service
        .clone()
        .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// A request body that counts how often it is polled.
fn counted_body(polls: Arc<AtomicUsize>) -> Body {
    let stream = futures::stream::poll_fn(move |_| {
        polls.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::Ready(None::<Result<Frame<Bytes>, Infallible>>)
    });
    Body::new(StreamBody::new(stream))
}

#[tokio::test(start_paused = true)]
async fn the_cheapest_rejections_come_before_the_body_is_read() {
    let policies = Policies::new(
        Policy::new()
            .breaker(quick_breaker())
            .shed(ShedConfig::fixed(1)),
    );
    let (app, _, _) = app(policies);
    let polls = Arc::new(AtomicUsize::new(0));
    let pets = |extra: Option<(&str, &str)>| {
        let mut request = Request::post("/pets").header("content-type", "application/json");
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        request.body(counted_body(polls.clone())).unwrap()
    };

    // A spent deadline.
    let (_, kind) = send(&app, pets(Some(("grpc-timeout", "0n")))).await;
    assert_eq!(kind, Some(RejectionKind::DeadlineExpired));

    // Overload: a request still sending its body holds the only slot of /pets' limiter.
    let pending = Body::new(StreamBody::new(futures::stream::pending::<
        Result<Frame<Bytes>, Infallible>,
    >()));
    let holder = {
        let app = app.clone();
        tokio::spawn(async move {
            let request = Request::post("/pets")
                .header("content-type", "application/json")
                .body(pending)
                .unwrap();
            send(&app, request).await
        })
    };
    tokio::task::yield_now().await;
    let (_, kind) = send(&app, pets(None)).await;
    assert_eq!(kind, Some(RejectionKind::Overloaded));
    holder.abort();

    // An open breaker: /fail's opens after two failures.
    for _ in 0..2 {
        send(&app, get_request("/fail")).await;
    }
    let fail_with_body = Request::get("/fail")
        .body(counted_body(polls.clone()))
        .unwrap();
    let (_, kind) = send(&app, fail_with_body).await;
    assert_eq!(kind, Some(RejectionKind::CircuitOpen));

    assert_eq!(polls.load(Ordering::SeqCst), 0, "no body was read");
}

#[tokio::test(start_paused = true)]
async fn nothing_retries_a_failed_request() {
    let (app, _, calls) = app(Policies::new(Policy::new()));
    for _ in 0..5 {
        assert_eq!(
            send(&app, get_request("/fail")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(calls.get(), 5, "one handler call per request");
}

#[tokio::test(start_paused = true)]
async fn the_observer_sees_every_outcome_rejections_included() {
    use metrics_util::debugging::DebuggingRecorder;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let policies = Policies::new(Policy::new().breaker(quick_breaker())).route(
        "/slow/{ms}",
        Policy::new().timeout(Duration::from_millis(100)),
    );
    let (app, _, _) = app(policies);

    send(&app, get_request("/slow/500")).await;
    for _ in 0..3 {
        send(&app, get_request("/fail")).await;
    }
    let invalid = Request::post("/pets")
        .header("content-type", "application/json")
        .body(Body::from("[]"))
        .unwrap();
    send(&app, invalid).await;
    send(&app, get_request("/other/1")).await;

    let mut seen: Vec<(String, String)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "http.server.request.duration")
        .map(|(key, ..)| {
            let label = |name: &str| {
                key.key()
                    .labels()
                    .find(|l| l.key() == name)
                    .map_or("-".to_owned(), |l| l.value().to_owned())
            };
            (label("http.route"), label("error.type"))
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = [
        ("/fail", "500"),
        ("/fail", "circuit_open"),
        ("/other/{ms}", "-"),
        ("/pets", "invalid_request"),
        ("/slow/{ms}", "timeout"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, expected);
}

#[tokio::test(start_paused = true)]
async fn hot_reload_changes_a_limit_mid_run_and_loses_no_request() {
    let policies = Policies::new(Policy::new().breaker(quick_breaker()))
        .route("/slow/{ms}", Policy::new().shed(ShedConfig::fixed(2)));
    let (app, handle, _) = app(policies);

    let spawn = |uri: &'static str| {
        let app = app.clone();
        tokio::spawn(async move { send(&app, get_request(uri)).await })
    };
    let in_flight: Vec<_> = (0..2).map(|_| spawn("/slow/1000")).collect();
    tokio::task::yield_now().await;
    assert_eq!(
        send(&app, get_request("/slow/1000")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    handle
        .reload(
            Policies::new(Policy::new().breaker(quick_breaker()))
                .route("/slow/{ms}", Policy::new().shed(ShedConfig::fixed(4))),
        )
        .unwrap();
    // The two still in flight under the old limiter count against the new limit of 4.
    let after: Vec<_> = (0..2).map(|_| spawn("/slow/1000")).collect();
    tokio::task::yield_now().await;
    assert_eq!(
        send(&app, get_request("/slow/1000")).await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "the new limit is 4, old and new requests together"
    );
    for call in in_flight.into_iter().chain(after) {
        assert_eq!(
            call.await.unwrap().0,
            StatusCode::OK,
            "every admitted request is answered"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_breaker_keeps_its_state_across_a_reload_that_does_not_change_it() {
    let base = || Policies::new(Policy::new().breaker(quick_breaker()));
    let (app, handle, _) = app(base());
    for _ in 0..2 {
        send(&app, get_request("/fail")).await;
    }
    assert_eq!(
        send(&app, get_request("/fail")).await.1,
        Some(RejectionKind::CircuitOpen)
    );

    // Another timeout, the same breaker settings: still open.
    handle
        .reload(Policies::new(
            Policy::new()
                .breaker(quick_breaker())
                .timeout(Duration::from_secs(3)),
        ))
        .unwrap();
    assert_eq!(
        send(&app, get_request("/fail")).await.1,
        Some(RejectionKind::CircuitOpen)
    );

    // New breaker settings: a new breaker, closed.
    handle
        .reload(Policies::new(
            Policy::new().breaker(quick_breaker().failure_rate_threshold(90.0)),
        ))
        .unwrap();
    assert_eq!(
        send(&app, get_request("/fail")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    // An invalid reload is refused and changes nothing.
    let error = handle
        .reload(Policies::new(Policy::new().timeout(Duration::ZERO)))
        .unwrap_err();
    assert_eq!(error.path(), "defaults.timeout");
    assert_eq!(
        handle.policies().defaults().timeout_settings().budget(),
        Some(steadfast::policy::DEFAULT_TIMEOUT)
    );
}

// ------------------------------------------------------------------ strict mode

#[tokio::test(start_paused = true)]
async fn strict_mode_reports_or_refuses_routes_without_a_policy() {
    use metrics_util::debugging::DebuggingRecorder;
    use steadfast::policy::Strict;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let policies = || Policies::new(Policy::new()).route("/fail", Policy::new());

    // Report: served under the defaults, counted.
    let reporting = router(Calls::default())
        .layer(PolicyLayer::new(policies()).unwrap().strict(Strict::Report));
    assert_eq!(
        send(&reporting, get_request("/other/1")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&reporting, get_request("/fail")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the handler's own answer"
    );

    // Refuse: a misconfiguration answer, the handler not called.
    let calls = Calls::default();
    let refusing =
        router(calls.clone()).layer(PolicyLayer::new(policies()).unwrap().strict(Strict::Refuse));
    let (status, kind) = send(&refusing, get_request("/other/1")).await;
    assert_eq!(
        (status, kind),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(RejectionKind::Misconfigured)
        )
    );
    assert_eq!(calls.get(), 0);
    assert_eq!(
        send(&refusing, get_request("/fail")).await.1,
        None,
        "explicit: served"
    );

    let counted: Vec<(String, String, u64)> = common::counters(
        &snapshotter,
        "steadfast.policy.unmatched",
        &["route", "action"],
    )
    .into_iter()
    .map(|(labels, n)| (labels[0].clone(), labels[1].clone(), n))
    .collect();
    let mut counted = counted;
    counted.sort();
    assert_eq!(
        counted,
        [
            ("/other/{ms}".to_owned(), "refused".to_owned(), 1),
            ("/other/{ms}".to_owned(), "reported".to_owned(), 1),
        ]
    );
}

// ------------------------------------------------------------------ outside the router

/// The policy layer around the whole `Router` (no `MatchedPath` yet when it runs).
async fn send_outside<S, RB>(app: &S, request: Request<Body>) -> (StatusCode, Option<RejectionKind>)
where
    S: tower::Service<Request<Body>, Response = http::Response<RB>> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = app.clone().oneshot(request).await.unwrap();
    let kind = response
        .extensions()
        .get::<Rejection>()
        .map(Rejection::kind);
    (response.status(), kind)
}

#[tokio::test(start_paused = true)]
async fn around_the_whole_router_each_route_still_gets_its_policy() {
    use tower::Layer;
    let policies = Policies::new(Policy::new().timeout(Duration::from_secs(2)))
        .route(
            "/slow/{ms}",
            Policy::new().timeout(Duration::from_millis(100)),
        )
        .route("/fail", Policy::new().breaker(quick_breaker()));
    let calls = Calls::default();
    let layer =
        PolicyLayer::with_contract(policies, contract(), ContractConfig::default()).unwrap();
    let app = layer.layer(router(calls.clone()));

    let started = Instant::now();
    let (status, kind) = send_outside(&app, get_request("/slow/500")).await;
    assert_eq!(
        (status, kind),
        (StatusCode::GATEWAY_TIMEOUT, Some(RejectionKind::Timeout))
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "the route's budget"
    );
    let started = Instant::now();
    assert_eq!(
        send_outside(&app, get_request("/other/500")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(500),
        "the defaults"
    );

    // The route's own breaker opens on its failures; the others stay closed.
    for _ in 0..2 {
        assert_eq!(
            send_outside(&app, get_request("/fail")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(
        send_outside(&app, get_request("/fail")).await.1,
        Some(RejectionKind::CircuitOpen)
    );
    assert_eq!(
        send_outside(&app, get_request("/other/1")).await.0,
        StatusCode::OK
    );

    // The contract's routes are known too: its check applies.
    let bad = Request::post("/pets")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(
        send_outside(&app, bad).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Paths the layer does not know reach the router, which answers as it does.
    assert_eq!(
        send_outside(&app, get_request("/nowhere")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(start_paused = true)]
async fn around_the_whole_router_strict_mode_refuses_only_routes_without_a_policy() {
    use steadfast::policy::Strict;
    use tower::Layer;
    let policies = Policies::new(Policy::new())
        .route("/fail", Policy::new())
        .route("/slow/{ms}", Policy::new());
    let calls = Calls::default();
    let app = PolicyLayer::new(policies)
        .unwrap()
        .strict(Strict::Refuse)
        .layer(router(calls.clone()));
    assert_eq!(
        send_outside(&app, get_request("/fail")).await,
        (StatusCode::INTERNAL_SERVER_ERROR, None),
        "explicit: the handler's own answer"
    );
    assert_eq!(
        send_outside(&app, get_request("/slow/1")).await,
        (StatusCode::OK, None)
    );
    assert_eq!(calls.get(), 2);
    assert_eq!(
        send_outside(&app, get_request("/other/1")).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(RejectionKind::Misconfigured)
        )
    );
    assert_eq!(calls.get(), 2, "refused before the handler");
}

#[cfg(feature = "guardrails")]
#[tokio::test(start_paused = true)]
async fn the_ci_helper_lists_routes_served_without_a_policy() {
    use steadfast::policy::Strict;
    let policies = Policies::new(Policy::new())
        .route("/fail", Policy::new())
        .route("/pets", Policy::new());
    let app =
        router(Calls::default()).layer(PolicyLayer::new(policies).unwrap().strict(Strict::Refuse));
    let missing = steadfast::guardrails::routes_without_policy::<_, Body, _>(
        app,
        &[
            (http::Method::GET, "/fail"),
            (http::Method::POST, "/pets"),
            (http::Method::GET, "/slow/1"),
        ],
    )
    .await;
    assert_eq!(missing, ["GET /slow/1"]);
}

// ------------------------------------------------------------------ tonic

mod grpc_server {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tonic::server::NamedService;
    use tonic::{Request, Response, Status};

    use super::common::grpc::StringCodec;

    /// `demo.Work`: `Sleep` sleeps for the milliseconds in its message; `Fail` fails.
    #[derive(Clone, Default)]
    pub struct Work;

    impl NamedService for Work {
        const NAME: &'static str = "demo.Work";
    }

    type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

    impl tower::Service<http::Request<tonic::body::Body>> for Work {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
            let mut grpc = tonic::server::Grpc::new(StringCodec);
            Box::pin(async move {
                Ok(match request.uri().path() {
                    "/demo.Work/Sleep" => {
                        let sleep = tower::service_fn(|request: Request<String>| async move {
                            let millis: u64 = request.get_ref().parse().unwrap_or(0);
                            tokio::time::sleep(Duration::from_millis(millis)).await;
                            Ok::<_, Status>(Response::new("awake".to_owned()))
                        });
                        grpc.unary(sleep, request).await
                    }
                    "/demo.Work/Fail" => Status::internal("broken").into_http(),
                    _ => Status::unimplemented("no such method").into_http(),
                })
            })
        }
    }
}

#[tokio::test]
async fn tonic_methods_get_their_policies() {
    use common::grpc::StringCodec;
    use tonic::Code;

    let policies = Policies::new(Policy::new().timeout(Duration::from_secs(5)))
        .route(
            "/demo.Work/Sleep",
            Policy::new().timeout(Duration::from_millis(50)),
        )
        .route("/demo.Work/Fail", Policy::new().breaker(quick_breaker()));
    let layer = PolicyLayer::new(policies).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(grpc_server::Work)
            .serve_with_incoming(incoming),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let mut call = async |method: &str, message: &str| {
        client.ready().await.unwrap();
        let path = http::uri::PathAndQuery::try_from(format!("/demo.Work/{method}")).unwrap();
        client
            .unary::<_, String, _>(tonic::Request::new(message.to_owned()), path, StringCodec)
            .await
            .map(|response| response.into_inner())
            .map_err(|status| status.code())
    };

    assert_eq!(call("Sleep", "0").await, Ok("awake".to_owned()));
    assert_eq!(call("Sleep", "2000").await, Err(Code::DeadlineExceeded));
    assert_eq!(call("Fail", "").await, Err(Code::Internal));
    assert_eq!(call("Fail", "").await, Err(Code::Internal));
    assert_eq!(
        call("Fail", "").await,
        Err(Code::Unavailable),
        "the method's breaker opened"
    );
    assert_eq!(
        call("Sleep", "0").await,
        Ok("awake".to_owned()),
        "other methods unaffected"
    );
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn a_method_specific_policy_rejects_with_its_route_and_method_apart() {
    use metrics_util::debugging::DebuggingRecorder;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let breaker = BreakerConfig::default()
        .minimum_calls(2)
        .sliding_window(SlidingWindow::count(2));
    let policies = Policies::new(Policy::new())
        .route_method(
            http::Method::GET,
            "/slow/{ms}",
            Policy::new().shed(ShedConfig::fixed(1)),
        )
        .route_method(http::Method::GET, "/fail", Policy::new().breaker(breaker));
    let (app, _, _) = app(policies);
    let held = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, get_request("/slow/1000")).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(
        send(&app, get_request("/slow/1000")).await.1,
        Some(RejectionKind::Overloaded)
    );
    assert_eq!(held.await.unwrap().0, StatusCode::OK);
    for _ in 0..2 {
        send(&app, get_request("/fail")).await;
    }
    assert_eq!(
        send(&app, get_request("/fail")).await.1,
        Some(RejectionKind::CircuitOpen)
    );

    let mut seen: Vec<Vec<(String, String)>> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "steadfast.rejections")
        .map(|(key, ..)| {
            key.key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect()
        })
        .collect();
    seen.sort();
    let labels = |layer: &str, reason: &str, route: &str| {
        [
            ("layer", layer),
            ("reason", reason),
            ("route", route),
            ("method", "GET"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
    };
    // The template as the request metrics' `http.route` has it; the method apart.
    assert_eq!(
        seen,
        [
            labels("breaker", "circuit_open", "/fail"),
            labels("shed", "overloaded", "/slow/{ms}"),
        ]
    );
}
