//! Dependency policies: typed refusals, the per-attempt guard, and the retry storm they prevent.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use steadfast::Error;
use steadfast::breaker::{BreakerConfig, SlidingWindow, State};
use steadfast::core::{Deadline, Origin, RejectionKind};
use steadfast::dependency::{DependencyConfig, DependencyLayer};
use steadfast::retry::{ReplayBody, RetryConfig};
use steadfast::timeout::DeadlineFormat;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

type Body = ReplayBody<Empty<Bytes>>;

fn get() -> Request<Empty<Bytes>> {
    Request::get("http://pricing/quote")
        .body(Empty::new())
        .unwrap()
}

/// A client that answers every call with `status` after `delay`, counting calls.
fn client(
    status: u16,
    delay: Duration,
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Body>, Response = Response<()>, Error = std::io::Error, Future: Send> + Clone
{
    tower::service_fn(move |_request: Request<Body>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            if status == 0 {
                return Err(std::io::Error::other("connection refused"));
            }
            Ok(Response::builder().status(status).body(()).unwrap())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_a_typed_refusal_that_is_not_retried_and_never_reaches_the_client() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = DependencyConfig::new("pricing")
        .breaker(Some(
            BreakerConfig::new()
                .sliding_window(SlidingWindow::count(4))
                .minimum_calls(4),
        ))
        .retry(Some(RetryConfig::new().max_retries(0)));
    let layer = DependencyLayer::new(config).unwrap();
    let pricing = layer.layer(client(502, Duration::ZERO, calls.clone()));
    for _ in 0..4 {
        assert_eq!(pricing.clone().oneshot(get()).await.unwrap().status(), 502);
    }
    assert_eq!(layer.handle().breaker().unwrap().state(), State::Open);
    let Err(Error::Rejected(rejection)) = pricing.clone().oneshot(get()).await else {
        panic!("an open breaker answers with a typed refusal, never a forged 503");
    };
    assert_eq!(rejection.kind(), RejectionKind::CircuitOpen);
    assert_eq!(rejection.origin(), Origin::Breaker);
    assert!(rejection.retry_after().is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // With retries on, an open breaker is still one refusal, not three.
    let config = DependencyConfig::new("pricing").breaker(Some(
        BreakerConfig::new()
            .sliding_window(SlidingWindow::count(4))
            .minimum_calls(4),
    ));
    let layer = DependencyLayer::new(config).unwrap();
    layer.handle().breaker().unwrap().force_open();
    let calls = Arc::new(AtomicUsize::new(0));
    let result = layer
        .layer(client(200, Duration::ZERO, calls.clone()))
        .oneshot(get())
        .await;
    assert!(
        matches!(result, Err(Error::Rejected(ref rejection)) if rejection.kind() == RejectionKind::CircuitOpen)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn overload_refusals_do_not_open_the_breaker_but_failures_do() {
    for (status, opens) in [
        (503, false),
        (429, false),
        (500, true),
        (502, true),
        (0, true),
    ] {
        let config = DependencyConfig::new("pricing")
            .breaker(Some(
                BreakerConfig::new()
                    .sliding_window(SlidingWindow::count(10))
                    .minimum_calls(10),
            ))
            .retry(None)
            .throttle(None);
        let layer = DependencyLayer::new(config).unwrap();
        let pricing = layer.layer(client(status, Duration::ZERO, Arc::default()));
        for _ in 0..10 {
            let _ = pricing.clone().oneshot(get()).await;
        }
        let state = layer.handle().breaker().unwrap().state();
        assert_eq!(state == State::Open, opens, "status {status}: {state:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_is_cut_at_its_timeout_retried_and_reported_as_a_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = DependencyConfig::new("pricing").attempt_timeout(Duration::from_millis(100));
    let layer = DependencyLayer::new(config).unwrap();
    let started = Instant::now();
    let result = layer
        .layer(client(200, Duration::from_secs(5), calls.clone()))
        .oneshot(get())
        .await;
    let Err(Error::Rejected(rejection)) = result else {
        panic!("expected a timeout")
    };
    assert_eq!(rejection.kind(), RejectionKind::Timeout);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Three attempts of 100 ms, and the backoffs between them (at most 25 and 50 ms).
    assert!(
        started.elapsed() <= Duration::from_millis(375),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(layer.handle().snapshot().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn the_callers_deadline_bounds_and_is_announced_to_every_attempt() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let recording = tower::service_fn(move |request: Request<Body>| {
        let headers = request.headers().clone();
        record.lock().unwrap().push(headers);
        async { Ok::<_, Infallible>(Response::builder().status(503).body(()).unwrap()) }
    });
    let config = DependencyConfig::new("pricing")
        .attempt_timeout(Duration::from_millis(300))
        .deadline_header(
            http::HeaderName::from_static("x-request-timeout-ms"),
            DeadlineFormat::Millis,
        );
    let layer = DependencyLayer::new(config).unwrap();
    let mut request = get();
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(1_000)));
    let _ = layer.layer(recording.clone()).oneshot(request).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    // The attempt's own limit is the shorter one here.
    assert_eq!(seen[0]["x-request-timeout-ms"], "300");
    // gRPC calls get grpc-timeout: the caller's remaining time when it is shorter.
    let grpc_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = grpc_seen.clone();
    let grpc = tower::service_fn(move |request: Request<Body>| {
        record
            .lock()
            .unwrap()
            .push(request.headers().get("grpc-timeout").cloned());
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .body(())
                    .unwrap(),
            )
        }
    });
    let mut request = Request::post("http://pricing/shop.Pricing/Quote")
        .header("content-type", "application/grpc")
        .body(Empty::<Bytes>::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(120)));
    let _ = layer.layer(grpc).oneshot(request).await;
    let announced = grpc_seen.lock().unwrap()[0].clone().unwrap();
    assert_eq!(
        steadfast::core::grpc::parse_timeout(announced.as_bytes()).unwrap(),
        Duration::from_millis(120)
    );
    // A spent deadline is not sent at all.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut request = get();
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::ZERO));
    let result = layer
        .layer(client(200, Duration::ZERO, calls.clone()))
        .oneshot(request)
        .await;
    assert!(
        matches!(result, Err(Error::Rejected(ref rejection)) if rejection.kind() == RejectionKind::DeadlineExpired)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_cap_refuses_beyond_its_size_and_gives_places_back_on_drop() {
    let config = DependencyConfig::new("pricing")
        .max_concurrency(2)
        .retry(None);
    let layer = DependencyLayer::new(config).unwrap();
    let pricing = layer.layer(client(200, Duration::from_secs(1), Arc::default()));
    let first = tokio::spawn(pricing.clone().oneshot(get()));
    let second = tokio::spawn(pricing.clone().oneshot(get()));
    tokio::task::yield_now().await;
    assert_eq!(layer.handle().snapshot().in_flight, 2);
    let Err(Error::Rejected(rejection)) = pricing.clone().oneshot(get()).await else {
        panic!()
    };
    assert_eq!(
        (rejection.kind(), rejection.origin()),
        (RejectionKind::Overloaded, Origin::Dependency)
    );
    first.abort();
    let _ = first.await;
    assert_eq!(layer.handle().snapshot().in_flight, 1);
    assert_eq!(second.await.unwrap().unwrap().status(), 200);
    assert_eq!(layer.handle().snapshot().in_flight, 0);
}

/// A half-open breaker's one probe, taken by a call whose caller gives up, is given back: the
/// next call probes (and closes the breaker), instead of finding every probe place taken.
#[tokio::test(start_paused = true)]
async fn a_cancelled_call_gives_its_breaker_probe_back() {
    let config = DependencyConfig::new("pricing")
        .breaker(Some(BreakerConfig::new().half_open_permits(1)))
        .retry(None);
    let layer = DependencyLayer::new(config).unwrap();
    let breaker = layer.handle().breaker().unwrap();
    breaker.half_open();
    let slow = layer.layer(client(200, Duration::from_secs(1), Arc::default()));
    let probe = tokio::spawn(slow.clone().oneshot(get()));
    tokio::task::yield_now().await;
    // The probe place is taken: another call is refused while the probe runs.
    let Err(Error::Rejected(rejection)) = slow.clone().oneshot(get()).await else {
        panic!("a second call while the only probe runs")
    };
    assert_eq!(rejection.kind(), RejectionKind::CircuitOpen);
    probe.abort();
    let _ = probe.await;
    // Given back: the next call is the probe, and its success closes the breaker.
    let fast = layer.layer(client(200, Duration::from_millis(1), Arc::default()));
    assert_eq!(fast.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_refuses_everything_is_throttled_locally() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = DependencyConfig::new("pricing").retry(None);
    let layer = DependencyLayer::new(config).unwrap();
    let pricing = layer.layer(client(503, Duration::ZERO, calls.clone()));
    let mut throttled = 0;
    for _ in 0..1_000 {
        if let Err(Error::Rejected(rejection)) = pricing.clone().oneshot(get()).await {
            assert_eq!(rejection.kind(), RejectionKind::Throttled);
            throttled += 1;
        }
        tokio::time::advance(Duration::from_millis(5)).await;
    }
    let sent = calls.load(Ordering::SeqCst);
    assert_eq!(sent + throttled, 1_000);
    assert!(
        sent < 100,
        "{sent} calls reached a dependency refusing all of them"
    );
    assert!(
        sent > 5,
        "the throttle still lets a trickle through to see a recovery"
    );
}

#[tokio::test(start_paused = true)]
async fn settings_are_checked() {
    for (config, key) in [
        (DependencyConfig::new(""), "name"),
        (
            DependencyConfig::new("x").attempt_timeout(Duration::ZERO),
            "attempt_timeout",
        ),
        (
            DependencyConfig::new("x").max_concurrency(0),
            "max_concurrency",
        ),
        (
            DependencyConfig::new("x").retry(Some(RetryConfig::new().max_retries(50))),
            "max_retries",
        ),
        (
            DependencyConfig::new("x")
                .breaker(Some(BreakerConfig::new().failure_rate_threshold(0.0))),
            "failure_rate_threshold",
        ),
    ] {
        assert_eq!(DependencyLayer::new(config).unwrap_err().key(), key);
    }
}

/// The retry-storm experiment, on paused time: a dependency with 8 places and 20 ms of work
/// per call (capacity 400 calls/s) answers 503 when full. Every call, served or refused, first
/// costs 1 ms of its front end (one thread reading and routing requests: 1,000 calls/s at most).
/// Its callers make 800 calls/s (2x) for 5 s, each retrying up to 3 times; a success counts
/// toward goodput when it comes within 100 ms (5 × the work).
mod retry_storm {
    use super::*;

    const PLACES: usize = 8;
    const WORK: Duration = Duration::from_millis(20);
    const SECONDS: u64 = 5;

    const FRONT: Duration = Duration::from_millis(1);
    const SLO: Duration = Duration::from_millis(100);

    #[derive(Clone)]
    struct Counts {
        calls: Arc<AtomicUsize>,
        busy: Arc<AtomicUsize>,
        front: Arc<tokio::sync::Semaphore>,
    }

    impl Default for Counts {
        fn default() -> Self {
            Self {
                calls: Arc::default(),
                busy: Arc::default(),
                front: Arc::new(tokio::sync::Semaphore::new(1)),
            }
        }
    }

    fn dependency(
        counts: Counts,
    ) -> impl Service<Request<Body>, Response = Response<()>, Error = Infallible, Future: Send> + Clone
    {
        tower::service_fn(move |_request: Request<Body>| {
            let counts = counts.clone();
            counts.calls.fetch_add(1, Ordering::SeqCst);
            async move {
                {
                    let _front = counts.front.acquire().await.unwrap();
                    tokio::time::sleep(FRONT).await;
                }
                if counts.busy.fetch_add(1, Ordering::SeqCst) >= PLACES {
                    counts.busy.fetch_sub(1, Ordering::SeqCst);
                    return Ok(Response::builder().status(503).body(()).unwrap());
                }
                tokio::time::sleep(WORK).await;
                counts.busy.fetch_sub(1, Ordering::SeqCst);
                Ok(Response::new(()))
            }
        })
    }

    /// Offers 2x capacity for the run; returns (requests, successes).
    async fn offer<F>(call: impl Fn() -> F) -> (usize, usize)
    where
        F: std::future::Future<Output = bool> + Send + 'static,
    {
        let successes = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let ticks = SECONDS * 1_000 / 5;
        for _ in 0..ticks {
            // 4 calls every 5 ms: 800 calls/s.
            for _ in 0..4 {
                let successes = successes.clone();
                let call = call();
                tasks.push(tokio::spawn(async move {
                    let started = Instant::now();
                    if call.await && started.elapsed() <= SLO {
                        successes.fetch_add(1, Ordering::SeqCst);
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for task in tasks.iter_mut() {
            task.await.unwrap();
        }
        (tasks.len(), successes.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn a_naive_retry_loop_multiplies_the_calls_and_the_dependency_policy_does_not() {
        let capacity = (PLACES as f64 / WORK.as_secs_f64()) * SECONDS as f64;

        // A naive loop: up to 3 retries, straight away, as a hand-written client does.
        let naive = Counts::default();
        let client = dependency(naive.clone());
        let (requests, naive_successes) = offer(|| {
            let client = client.clone();
            async move {
                for _ in 0..4 {
                    let response = client
                        .clone()
                        .oneshot(get().map(ReplayBody::new))
                        .await
                        .unwrap();
                    if response.status() == StatusCode::OK {
                        return true;
                    }
                }
                false
            }
        })
        .await;
        let naive_calls = naive.calls.load(Ordering::SeqCst);

        let policy = Counts::default();
        let layer = DependencyLayer::new(
            DependencyConfig::new("inventory").retry(Some(RetryConfig::new().max_retries(3))),
        )
        .unwrap();
        let client = layer.layer(dependency(policy.clone()));
        let (policy_requests, policy_successes) = offer(|| {
            let client = client.clone();
            async move { matches!(client.oneshot(get()).await, Ok(response) if response.status() == StatusCode::OK) }
        })
        .await;
        let policy_calls = policy.calls.load(Ordering::SeqCst);

        eprintln!(
            "retry storm at 2x: naive {naive_calls} calls for {requests} requests ({:.2}x), goodput {:.0}% of capacity; \
             dependency policy {policy_calls} calls for {policy_requests} ({:.2}x), goodput {:.0}%",
            naive_calls as f64 / requests as f64,
            100.0 * naive_successes as f64 / capacity,
            policy_calls as f64 / policy_requests as f64,
            100.0 * policy_successes as f64 / capacity,
        );
        assert!(
            naive_calls as f64 >= 2.0 * requests as f64,
            "the naive loop storms: {naive_calls}"
        );
        assert!(
            (naive_successes as f64) < 0.5 * capacity,
            "and its goodput collapses: {naive_successes}"
        );
        assert!(
            policy_calls as f64 <= 1.2 * policy_requests as f64,
            "{policy_calls} calls for {policy_requests} requests"
        );
        assert!(
            policy_successes as f64 >= 0.9 * capacity,
            "goodput {policy_successes} of {capacity}"
        );
    }
}

#[test]
fn full_bodies_are_accepted_by_the_policy() {
    // The policy takes any body the client can be built for; a `Full` request body is kept for
    // a retry (the type only has to name `ReplayBody<Full<Bytes>>`).
    fn assert_service<S: Service<Request<Full<Bytes>>>>(_: &S) {}
    let client = tower::service_fn(|_request: Request<ReplayBody<Full<Bytes>>>| async {
        Ok::<_, Infallible>(Response::new(()))
    });
    let layer = DependencyLayer::new(DependencyConfig::new("pricing")).unwrap();
    assert_service(&layer.layer(client));
}

/// Against a real server on loopback, through hyper-util's client.
mod loopback {
    use super::*;
    use axum::Router;
    use axum::routing::{get as route_get, post};
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use steadfast::dependency::Dependency;

    /// The type a user names for a hyper client under a dependency policy.
    type Pricing = Dependency<Client<HttpConnector, ReplayBody<Full<Bytes>>>>;

    fn pricing(config: DependencyConfig) -> Pricing {
        let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
        DependencyLayer::new(config).unwrap().layer(client)
    }

    async fn serve() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let flaky = move |body: Bytes| {
            let call = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                // Unavailable on every other call; the body echoed back.
                if call % 2 == 0 {
                    (StatusCode::SERVICE_UNAVAILABLE, Bytes::new())
                } else {
                    (StatusCode::OK, body)
                }
            }
        };
        let app = Router::new()
            .route("/quote", route_get(flaky.clone()))
            .route("/order", post(flaky));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, calls)
    }

    #[tokio::test]
    async fn a_hyper_client_is_retried_against_a_real_server_and_posts_are_not() {
        let (addr, calls) = serve().await;
        let pricing = pricing(DependencyConfig::new("pricing"));
        let request = Request::get(format!("http://{addr}/quote"))
            .body(Full::new(Bytes::from_static(b"seven")))
            .unwrap();
        let response: Response<hyper::body::Incoming> =
            pricing.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "seven"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let request = Request::post(format!("http://{addr}/order"))
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap();
        assert_eq!(
            pricing.clone().oneshot(request).await.unwrap().status(),
            503
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[cfg(feature = "reqwest")]
    #[tokio::test]
    async fn a_reqwest_client_is_retried_against_a_real_server() {
        use steadfast::dependency::ReqwestClient;
        let (addr, calls) = serve().await;
        let policy = DependencyLayer::new(DependencyConfig::new("pricing")).unwrap();
        let pricing = policy.layer(ReqwestClient::new(reqwest::Client::new()));
        let request = Request::get(format!("http://{addr}/quote"))
            .body(Full::new(Bytes::from_static(b"seven")))
            .unwrap();
        let response: Response<reqwest::Body> = pricing.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "seven"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // reqwest's own errors come back as the client's error.
        let nobody = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let request = Request::get(format!("http://{nobody}/quote"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        match pricing.oneshot(request).await {
            Err(Error::Inner(error)) => assert!(error.is_connect(), "{error}"),
            other => panic!("expected reqwest's connect error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_the_clients_error_after_the_retries() {
        // A port nobody listens on.
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let pricing = pricing(DependencyConfig::new("pricing"));
        let request = Request::get(format!("http://{addr}/quote"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let handle = pricing.handle().clone();
        match pricing.oneshot(request).await {
            Err(Error::Inner(error)) => assert!(error.is_connect(), "{error}"),
            other => panic!("expected the client's connect error, got {other:?}"),
        }
        // Three attempts were paid for by the budget's floor.
        assert_eq!(handle.snapshot().retry.budget.retries, 2);
    }
}

#[tokio::test(start_paused = true)]
async fn every_outbound_counter_is_emitted_with_its_catalogued_labels() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use steadfast::retry::BudgetConfig;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    // Retries: 503 answers, retried.
    let layer = DependencyLayer::new(DependencyConfig::new("inventory").throttle(None)).unwrap();
    let _ = layer
        .layer(client(503, Duration::ZERO, Arc::default()))
        .oneshot(get())
        .await;
    // An exhausted budget: nothing to spend.
    let no_budget = RetryConfig::new().budget(BudgetConfig::new().ratio(0.0).min_per_second(0));
    let layer =
        DependencyLayer::new(DependencyConfig::new("pricing").retry(Some(no_budget))).unwrap();
    let _ = layer
        .layer(client(503, Duration::ZERO, Arc::default()))
        .oneshot(get())
        .await;
    // Throttled: a dependency refusing everything.
    let layer = DependencyLayer::new(DependencyConfig::new("search").retry(None)).unwrap();
    for _ in 0..100 {
        let _ = layer
            .layer(client(503, Duration::ZERO, Arc::default()))
            .oneshot(get())
            .await;
    }
    // Capped: one place, held.
    let layer =
        DependencyLayer::new(DependencyConfig::new("mail").max_concurrency(1).retry(None)).unwrap();
    let held = tokio::spawn(
        layer
            .layer(client(200, Duration::from_secs(1), Arc::default()))
            .oneshot(get()),
    );
    tokio::task::yield_now().await;
    let _ = layer
        .layer(client(200, Duration::ZERO, Arc::default()))
        .oneshot(get())
        .await;
    held.await.unwrap().unwrap();
    // Hedged: a fixed delay shorter than the dependency's answer.
    let hedge = steadfast::dependency::HedgeConfig::new().delay(
        steadfast::dependency::HedgeDelay::Fixed(Duration::from_millis(1)),
    );
    let layer =
        DependencyLayer::new(DependencyConfig::new("search-hedged").hedge(Some(hedge))).unwrap();
    let _ = layer
        .layer(client(200, Duration::from_millis(10), Arc::default()))
        .oneshot(get())
        .await;
    // Strict mode: a call through a made-up policy, reported.
    let ghost = DependencyLayer::new(
        DependencyConfig::new("ghost").undeclared(steadfast::core::Strict::Report),
    )
    .unwrap();
    let _ = ghost
        .layer(client(200, Duration::ZERO, Arc::default()))
        .oneshot(get())
        .await;

    let expected = [
        ("steadfast.retries", "inventory"),
        ("steadfast.dependency.undeclared", "ghost"),
        ("steadfast.retry.budget_exhausted", "pricing"),
        ("steadfast.throttled", "search"),
        ("steadfast.dependency.capped", "mail"),
        ("steadfast.hedges", "search-hedged"),
    ];
    let snapshot = snapshotter.snapshot().into_vec();
    for (name, dependency) in expected {
        let metric = steadfast::core::telemetry::CATALOGUE
            .iter()
            .find(|metric| metric.name == name)
            .unwrap();
        let (key, _, _, value) = snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == name)
            .unwrap_or_else(|| panic!("{name} not emitted"));
        let labels: Vec<&str> = key.key().labels().map(|label| label.key()).collect();
        assert_eq!(labels, metric.labels, "{name}");
        assert!(
            key.key()
                .labels()
                .any(|label| label.key() == "dependency" && label.value() == dependency)
        );
        assert!(
            matches!(value, DebugValue::Counter(count) if *count > 0),
            "{name}"
        );
    }
}

/// The tail-latency experiment, on paused time: a dependency whose every twentieth call takes
/// 100 ms instead of 10 ms, called 200 times a second for 10 s, without and with hedging.
mod tail_latency {
    use super::*;
    use steadfast::dependency::HedgeConfig;

    fn dependency(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<Request<Body>, Response = Response<()>, Error = Infallible, Future: Send> + Clone
    {
        tower::service_fn(move |_request: Request<Body>| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let millis = if call % 20 == 7 { 100 } else { 10 };
                tokio::time::sleep(Duration::from_millis(millis)).await;
                Ok(Response::new(()))
            }
        })
    }

    /// Returns (p99 in ms, calls made, requests).
    async fn run(config: DependencyConfig) -> (u128, usize, usize) {
        let calls = Arc::new(AtomicUsize::new(0));
        let client = DependencyLayer::new(config)
            .unwrap()
            .layer(dependency(calls.clone()));
        let mut tasks = Vec::new();
        for _ in 0..2_000 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                assert_eq!(client.oneshot(get()).await.unwrap().status(), 200);
                started.elapsed()
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.push(task.await.unwrap());
        }
        latencies.sort();
        let p99 = latencies[latencies.len() * 99 / 100].as_millis();
        (p99, calls.load(Ordering::SeqCst), latencies.len())
    }

    #[tokio::test(start_paused = true)]
    async fn hedging_cuts_the_p99_at_a_small_price_in_calls() {
        let (plain_p99, plain_calls, requests) = run(DependencyConfig::new("slow")).await;
        let (hedged_p99, hedged_calls, _) =
            run(DependencyConfig::new("slow").hedge(Some(HedgeConfig::new()))).await;
        eprintln!(
            "tail latency: p99 {plain_p99} ms without hedging ({plain_calls} calls), {hedged_p99} ms with ({hedged_calls} calls, +{:.1} %)",
            100.0 * (hedged_calls as f64 / requests as f64 - 1.0)
        );
        assert_eq!(plain_calls, requests);
        assert!(
            hedged_p99 * 3 <= plain_p99,
            "p99 {hedged_p99} ms hedged vs {plain_p99} ms"
        );
        assert!(
            hedged_calls as f64 <= 1.1 * requests as f64,
            "{hedged_calls} calls for {requests}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedge_is_never_sent_for_a_call_that_cannot_be_repeated() {
        let calls = Arc::new(AtomicUsize::new(0));
        let config = DependencyConfig::new("slow").hedge(Some(HedgeConfig::new().delay(
            steadfast::dependency::HedgeDelay::Fixed(Duration::from_millis(1)),
        )));
        let client = DependencyLayer::new(config)
            .unwrap()
            .layer(dependency(calls.clone()));
        for _ in 0..40 {
            let post = Request::post("http://slow/orders")
                .body(Empty::<Bytes>::new())
                .unwrap();
            client.clone().oneshot(post).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 40);
        // A GET with the fixed 1 ms delay is hedged every time (the dependency takes 10 ms).
        for _ in 0..10 {
            client.clone().oneshot(get()).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 60);
    }
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_measured_as_opentelemetry_names_client_requests_with_bounded_labels() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    // Unavailable once, then served: two attempts, two measurements.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let flaky = tower::service_fn(move |_: Request<Body>| {
        let call = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(if call == 0 { 503 } else { 200 })
                    .body(())
                    .unwrap(),
            )
        }
    });
    let layer = DependencyLayer::new(DependencyConfig::new("pricing")).unwrap();
    layer.layer(flaky.clone()).oneshot(get()).await.unwrap();
    // A thousand other hosts through the same policy share one `_OTHER` label.
    for host in 0..1_000 {
        let request = Request::get(format!("http://host-{host}/quote"))
            .body(Empty::new())
            .unwrap();
        let _ = layer.layer(flaky.clone()).oneshot(request).await;
    }
    // gRPC: the status of a trailers-only answer; junk method paths share `_OTHER`.
    let grpc = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "5")
                .body(())
                .unwrap(),
        )
    });
    for path in ["/shop.Pricing/Quote", "/not a method", "/also/not/one"] {
        let request = Request::post(format!("http://pricing{path}").replace(' ', "%20"))
            .header("content-type", "application/grpc")
            .body(Empty::new())
            .unwrap();
        let _ = layer.layer(grpc).oneshot(request).await;
    }

    let snapshot = snapshotter.snapshot().into_vec();
    let series = |name: &str| -> Vec<(Vec<(String, String)>, usize)> {
        snapshot
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .map(|(key, _, _, value)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|label| (label.key().to_owned(), label.value().to_owned()))
                    .collect();
                let DebugValue::Histogram(values) = value else {
                    panic!("{name} is a histogram")
                };
                (labels, values.len())
            })
            .collect()
    };
    let http = series("http.client.request.duration");
    let catalogue = |name| {
        steadfast::core::telemetry::CATALOGUE
            .iter()
            .find(|metric| metric.name == name)
            .unwrap()
    };
    for (labels, _) in &http {
        for (key, _) in labels {
            assert!(
                catalogue("http.client.request.duration")
                    .labels
                    .contains(&key.as_str()),
                "{key}"
            );
        }
    }
    let find = |address: &str, status: &str| {
        http.iter()
            .find(|(labels, _)| {
                labels.contains(&("server.address".into(), address.into()))
                    && labels.contains(&("http.response.status_code".into(), status.into()))
            })
            .map(|(labels, count)| (labels.clone(), *count))
    };
    let (unavailable, count) = find("pricing", "503").expect("the first attempt");
    assert_eq!(count, 1);
    assert!(unavailable.contains(&("error.type".into(), "503".into())));
    assert!(unavailable.contains(&("http.request.method".into(), "GET".into())));
    assert!(unavailable.contains(&("steadfast.dependency".into(), "pricing".into())));
    let (served, _) = find("pricing", "200").expect("the retry");
    assert!(!served.iter().any(|(key, _)| key == "error.type"));
    let (_, others) = find("_OTHER", "200").expect("other hosts");
    assert_eq!(others, 1_000);
    assert!(http.len() <= 4, "{http:?}");

    let grpc = series("rpc.client.call.duration");
    let methods: std::collections::BTreeSet<String> = grpc
        .iter()
        .flat_map(|(labels, _)| {
            labels
                .iter()
                .filter(|(key, _)| key == "rpc.method")
                .map(|(_, value)| value.clone())
        })
        .collect();
    assert_eq!(
        methods,
        ["_OTHER".to_owned(), "shop.Pricing/Quote".to_owned()].into()
    );
    assert!(
        grpc.iter()
            .all(|(labels, _)| labels.contains(&("rpc.status_code".into(), "NOT_FOUND".into())))
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_answer_of_a_hedged_call_wins_the_other_is_cancelled_and_hedges_spend_the_budget()
{
    use steadfast::dependency::{HedgeConfig, HedgeDelay};
    use steadfast::retry::BudgetConfig;

    /// Counts the attempts that ran to their end and those dropped before it.
    #[derive(Clone, Default)]
    struct Fates {
        calls: Arc<AtomicUsize>,
        finished: Arc<AtomicUsize>,
        dropped: Arc<AtomicUsize>,
    }
    struct Watch(Fates, bool);
    impl Drop for Watch {
        fn drop(&mut self) {
            let counter = if self.1 {
                &self.0.finished
            } else {
                &self.0.dropped
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }
    // The first attempt takes 100 ms, every later one 10 ms.
    let dependency = |fates: Fates| {
        tower::service_fn(move |_: Request<Body>| {
            let fates = fates.clone();
            let call = fates.calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut watch = Watch(fates, false);
                tokio::time::sleep(Duration::from_millis(if call == 0 { 100 } else { 10 })).await;
                watch.1 = true;
                Ok::<_, Infallible>(Response::new(()))
            }
        })
    };
    let hedge = HedgeConfig::new().delay(HedgeDelay::Fixed(Duration::from_millis(5)));

    let fates = Fates::default();
    let layer = DependencyLayer::new(DependencyConfig::new("search").hedge(Some(hedge))).unwrap();
    let started = Instant::now();
    layer
        .layer(dependency(fates.clone()))
        .oneshot(get())
        .await
        .unwrap();
    // The hedge, sent at 5 ms, answered at 15 ms; the slow first attempt was cancelled.
    assert_eq!(started.elapsed(), Duration::from_millis(15));
    assert_eq!(fates.calls.load(Ordering::SeqCst), 2);
    assert_eq!(fates.finished.load(Ordering::SeqCst), 1);
    assert_eq!(fates.dropped.load(Ordering::SeqCst), 1);
    let snapshot = layer.handle().snapshot();
    assert_eq!(snapshot.in_flight, 0);
    assert_eq!(
        snapshot.retry.budget.retries, 1,
        "the hedge was paid from the budget"
    );

    // No budget: no hedge; the slow attempt is the answer.
    let fates = Fates::default();
    let broke = RetryConfig::new().budget(BudgetConfig::new().ratio(0.0).min_per_second(0));
    let layer = DependencyLayer::new(
        DependencyConfig::new("search")
            .retry(Some(broke))
            .hedge(Some(hedge)),
    )
    .unwrap();
    let started = Instant::now();
    layer
        .layer(dependency(fates.clone()))
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(fates.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_reload_applies_to_every_service_made_from_the_policy_and_a_bad_one_changes_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = DependencyLayer::new(DependencyConfig::new("pricing").retry(None)).unwrap();
    let mut pricing = layer.layer(client(503, Duration::ZERO, calls.clone()));
    let _ = pricing.ready().await.unwrap().call(get()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let handle = layer.handle().clone();
    handle
        .reload(DependencyConfig::new("pricing").retry(Some(RetryConfig::new().max_retries(3))))
        .unwrap();
    // The service made before the reload takes the new policy at its next call.
    let _ = pricing.ready().await.unwrap().call(get()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(handle.config().name(), "pricing");
    // A refused reload leaves the policy in force.
    assert!(
        handle
            .reload(DependencyConfig::new("pricing").max_concurrency(0))
            .is_err()
    );
    let _ = pricing.ready().await.unwrap().call(get()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 9);
    // A reload that drops the breaker: the handle shows none.
    assert!(handle.breaker().is_some());
    handle
        .reload(DependencyConfig::new("pricing").breaker(None))
        .unwrap();
    assert!(handle.breaker().is_none());
}
