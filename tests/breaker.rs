//! Circuit breaker behaviour, on paused time with scripted inner services.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::poll;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use steadfast::breaker::{
    BreakerConfig, BreakerHandle, BreakerLayer, SlidingWindow, State, TransitionReason,
};
use steadfast::core::{Origin, Rejection, RejectionKind};
use steadfast::timeout::TimeoutLayer;
use tower::{Layer, Service, ServiceExt};

/// An inner service whose answers the test sets: a status, after a delay.
#[derive(Clone)]
struct Script {
    status: Arc<AtomicU16>,
    delay_millis: Arc<AtomicU64>,
    calls: Arc<AtomicUsize>,
}

impl Script {
    fn new() -> Self {
        Self {
            status: Arc::new(AtomicU16::new(200)),
            delay_millis: Arc::new(AtomicU64::new(0)),
            calls: Arc::default(),
        }
    }

    fn answer(&self, status: u16) -> &Self {
        self.status.store(status, Ordering::SeqCst);
        self
    }

    fn delay(&self, millis: u64) -> &Self {
        self.delay_millis.store(millis, Ordering::SeqCst);
        self
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service(
        &self,
    ) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static {
        let script = self.clone();
        tower::service_fn(move |_request: Request<String>| {
            script.calls.fetch_add(1, Ordering::SeqCst);
            let status = script.status.load(Ordering::SeqCst);
            let delay = Duration::from_millis(script.delay_millis.load(Ordering::SeqCst));
            async move {
                tokio::time::sleep(delay).await;
                let mut response = Response::new(String::new());
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                Ok(response)
            }
        })
    }
}

fn request() -> Request<String> {
    Request::get("/dependency").body(String::new()).unwrap()
}

fn grpc_request() -> Request<String> {
    Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap()
}

/// A small breaker: window of 10 calls, trip at 50% after 4 calls, open 10 s, 2 probes.
fn config() -> BreakerConfig {
    BreakerConfig::new()
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(4)
        .open_duration(Duration::from_secs(10))
        .half_open_permits(2)
        .half_open_max_wait(Some(Duration::from_secs(30)))
        .name("dependency")
}

fn breaker<S>(config: BreakerConfig, inner: S) -> (steadfast::breaker::Breaker<S>, BreakerHandle) {
    let handle = BreakerHandle::new(config).unwrap();
    (BreakerLayer::shared(handle.clone()).layer(inner), handle)
}

async fn status<S, B>(service: &mut S, request: Request<String>) -> StatusCode
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible>,
{
    service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap()
        .status()
}

/// Sends a gRPC call and returns its response, body unread.
async fn grpc_call<S, B>(service: &mut S) -> Response<B>
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible>,
{
    service
        .ready()
        .await
        .unwrap()
        .call(grpc_request())
        .await
        .unwrap()
}

async fn send<S, B>(service: &mut S, times: usize) -> Vec<u16>
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible>,
{
    let mut statuses = Vec::new();
    for _ in 0..times {
        statuses.push(status(service, request()).await.as_u16());
    }
    statuses
}

#[tokio::test(start_paused = true)]
async fn it_does_not_trip_below_the_minimum_number_of_calls() {
    let script = Script::new();
    let (mut service, handle) = breaker(config(), script.service());
    script.answer(500);
    assert_eq!(send(&mut service, 3).await, [500, 500, 500]);
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().window.failures, 3);
}

#[tokio::test(start_paused = true)]
async fn it_trips_when_the_failure_rate_reaches_the_threshold() {
    let script = Script::new();
    let (mut service, handle) = breaker(config(), script.service());
    let mut events = handle.subscribe();
    send(&mut service, 2).await;
    script.answer(503);
    // Two successes, then two failures: 50% of 4 calls, equal to the threshold.
    assert_eq!(send(&mut service, 2).await, [503, 503]);
    assert_eq!(handle.state(), State::Open);
    let event = events.recv().await.unwrap();
    assert_eq!(
        (event.transition.from, event.transition.to),
        (State::Closed, State::Open)
    );
    assert_eq!(event.transition.reason, TransitionReason::FailureRate);
    assert_eq!(&*event.breaker, "dependency");

    // Open: answered at once, without the inner service.
    let calls = script.calls();
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "10");
    let rejection = response.extensions().get::<Rejection>().unwrap();
    assert_eq!(
        (rejection.kind(), rejection.origin()),
        (RejectionKind::CircuitOpen, Origin::Breaker)
    );
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["status"], 503);
    assert_eq!(script.calls(), calls);
}

#[tokio::test(start_paused = true)]
async fn open_grpc_calls_get_unavailable() {
    let script = Script::new();
    let (mut service, handle) = breaker(config(), script.service());
    handle.trip();
    let response = grpc_call(&mut service).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "14");
}

#[tokio::test(start_paused = true)]
async fn it_trips_on_the_slow_call_rate() {
    let script = Script::new();
    let config = config()
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(75.0);
    let (mut service, handle) = breaker(config, script.service());
    script.delay(100); // exactly the slow duration: not slow
    send(&mut service, 4).await;
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().window.slow_calls, 0);
    script.delay(101);
    send(&mut service, 3).await; // 3 slow of 7 calls
    assert_eq!(handle.state(), State::Closed);
    send(&mut service, 3).await; // 6 slow of 10
    assert_eq!(handle.state(), State::Closed);
    send(&mut service, 2).await; // the last 10 calls: 8 slow
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn the_open_wait_must_be_strictly_exceeded() {
    let script = Script::new();
    let (mut service, handle) = breaker(config(), script.service());
    handle.trip();
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(status(&mut service, request()).await, 503);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(status(&mut service, request()).await, 200);
    assert_eq!(handle.state(), State::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn probes_are_bounded_and_decide() {
    let script = Script::new();
    let (service, handle) = breaker(config(), script.service());
    handle.trip();
    tokio::time::advance(Duration::from_secs(11)).await;
    script.delay(50);

    // Two probes in flight; the third call is rejected, not queued.
    let first = service.clone().oneshot(request());
    let second = service.clone().oneshot(request());
    tokio::pin!(first, second);
    assert!(poll!(first.as_mut()).is_pending());
    assert!(poll!(second.as_mut()).is_pending());
    let third = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(handle.state(), State::HalfOpen);

    tokio::time::advance(Duration::from_millis(50)).await;
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(second.await.unwrap().status(), 200);
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().window.calls, 0, "the window starts fresh");
}

#[tokio::test(start_paused = true)]
async fn failing_probes_reopen_with_backoff_up_to_the_cap() {
    let script = Script::new();
    let config = config()
        .half_open_permits(1)
        .open_backoff(2.0, Duration::from_secs(30));
    let (mut service, handle) = breaker(config, script.service());
    script.answer(500);
    handle.trip();
    let mut waits = Vec::new();
    for _ in 0..4 {
        let open_for = handle.snapshot().open_for.unwrap();
        waits.push(open_for.as_secs());
        tokio::time::advance(open_for + Duration::from_millis(1)).await;
        assert_eq!(
            status(&mut service, request()).await,
            500,
            "the probe goes through"
        );
        assert_eq!(handle.state(), State::Open, "and fails");
    }
    assert_eq!(waits, [10, 20, 30, 30]);
    assert_eq!(handle.snapshot().consecutive_opens, 5);

    // Recovery resets the backoff.
    script.answer(200);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(status(&mut service, request()).await, 200);
    assert_eq!(handle.state(), State::Closed);
    handle.trip();
    assert_eq!(handle.snapshot().open_for, Some(Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn a_stuck_half_open_is_released_by_the_max_wait() {
    let script = Script::new();
    let (service, handle) = breaker(config(), script.service());
    handle.trip();
    tokio::time::advance(Duration::from_secs(11)).await;
    script.delay(3_600_000); // probes that never finish
    let probes = [
        service.clone().oneshot(request()),
        service.clone().oneshot(request()),
    ];
    let mut probes = probes.map(Box::pin);
    for probe in &mut probes {
        assert!(poll!(probe.as_mut()).is_pending());
    }
    let mut service = service;
    assert_eq!(status(&mut service, request()).await, 503, "out of probes");
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(status(&mut service, request()).await, 503);
    assert_eq!(handle.state(), State::HalfOpen, "the wait must be exceeded");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(status(&mut service, request()).await, 503);
    assert_eq!(
        handle.state(),
        State::Open,
        "back to open after the max wait"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_gives_its_permit_back_and_counts_for_nothing() {
    let script = Script::new();
    let (service, handle) = breaker(config().half_open_permits(1), script.service());
    handle.trip();
    tokio::time::advance(Duration::from_secs(11)).await;
    script.delay(1000);
    let mut probe = Box::pin(service.clone().oneshot(request()));
    assert!(poll!(probe.as_mut()).is_pending());
    let mut service = service;
    assert_eq!(
        status(&mut service, request()).await,
        503,
        "the only permit is taken"
    );
    drop(probe);
    assert_eq!(
        handle.state(),
        State::HalfOpen,
        "a cancelled call is not a success"
    );
    script.delay(0);
    assert_eq!(
        status(&mut service, request()).await,
        200,
        "the permit came back"
    );
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn cancelled_calls_are_not_recorded_in_the_window() {
    let script = Script::new();
    let (service, handle) = breaker(config(), script.service());
    script.delay(1000);
    for _ in 0..5 {
        let mut call = Box::pin(service.clone().oneshot(request()));
        assert!(poll!(call.as_mut()).is_pending());
    }
    assert_eq!(handle.snapshot().window.calls, 0);
}

#[tokio::test(start_paused = true)]
async fn manual_states_behave_as_documented() {
    let script = Script::new();
    let (mut service, handle) = breaker(config(), script.service());
    script.answer(500);

    handle.force_open();
    assert_eq!(send(&mut service, 2).await, [503, 503]);
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(send(&mut service, 1).await, [503], "forced open stays open");
    assert_eq!(script.calls(), 0);

    handle.disable();
    assert_eq!(send(&mut service, 10).await, [500; 10]);
    assert_eq!(handle.state(), State::Disabled, "disabled never trips");
    assert_eq!(
        handle.snapshot().window.calls,
        0,
        "and records nothing, as in Resilience4j"
    );

    handle.metrics_only();
    assert_eq!(send(&mut service, 10).await, [500; 10]);
    assert_eq!(handle.state(), State::MetricsOnly);
    assert_eq!(handle.snapshot().window.failure_rate(), Some(100.0));

    handle.reset();
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().window.calls, 0);
    assert_eq!(send(&mut service, 4).await, [500; 4]);
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn timeouts_count_as_failures() {
    let script = Script::new();
    script.delay(5_000);
    let inner = TimeoutLayer::new(Duration::from_millis(100))
        .unwrap()
        .layer(script.service());
    let handle = BreakerHandle::new(config()).unwrap();
    let mut service = BreakerLayer::shared(handle.clone()).layer(inner);
    for _ in 0..4 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    }
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn other_layers_rejections_are_not_counted() {
    // An inner layer that sheds every call, marking its 503 as its own rejection.
    let shedding = tower::service_fn(|_: Request<String>| async {
        let mut response = Response::new(String::new());
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .extensions_mut()
            .insert(Rejection::new(RejectionKind::Overloaded, Origin::Shed));
        Ok::<_, Infallible>(response)
    });
    let (mut service, handle) = breaker(config(), shedding);
    assert_eq!(send(&mut service, 8).await, [503; 8]);
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().window.calls, 0);
}

#[tokio::test(start_paused = true)]
async fn grpc_failures_in_trailers_only_responses_count() {
    let unavailable = tower::service_fn(|_: Request<String>| async {
        let response = Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "14")
            .body(String::new())
            .unwrap();
        Ok::<_, Infallible>(response)
    });
    let (mut service, handle) = breaker(config(), unavailable);
    for _ in 0..4 {
        status(&mut service, grpc_request()).await;
    }
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_time_window_forgets_old_failures() {
    let script = Script::new();
    let config = config().sliding_window(SlidingWindow::time(Duration::from_secs(10)));
    let (mut service, handle) = breaker(config, script.service());
    script.answer(500);
    send(&mut service, 3).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    send(&mut service, 1).await; // the first three have left the window
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().window.calls, 1);
    send(&mut service, 3).await;
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn automatic_half_open_moves_without_a_call() {
    let script = Script::new();
    let (_service, handle) = breaker(config().automatic_half_open(true), script.service());
    let mut events = handle.subscribe();
    handle.trip();
    assert_eq!(events.recv().await.unwrap().transition.to, State::Open);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let event = events.recv().await.unwrap();
    assert_eq!(
        (event.transition.to, event.transition.reason),
        (State::HalfOpen, TransitionReason::OpenDurationElapsed)
    );
    assert_eq!(handle.state(), State::HalfOpen);
    // And out of an overdue half-open, back to open.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let event = events.recv().await.unwrap();
    assert_eq!(
        (event.transition.to, event.transition.reason),
        (State::Open, TransitionReason::HalfOpenMaxWait)
    );
}

#[tokio::test(start_paused = true)]
async fn a_reset_disarms_the_timer_of_the_previous_state() {
    let script = Script::new();
    let (_service, handle) = breaker(config().automatic_half_open(true), script.service());
    handle.trip();
    handle.reset();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn late_outcomes_from_an_earlier_state_are_ignored() {
    let script = Script::new();
    let (service, handle) = breaker(config(), script.service());
    script.answer(500).delay(1000);
    // Admitted while closed, finishing after the breaker has tripped and recovered.
    let mut late = Box::pin(service.clone().oneshot(request()));
    assert!(poll!(late.as_mut()).is_pending());
    handle.trip();
    handle.reset();
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(late.await.unwrap().status(), 500);
    assert_eq!(handle.snapshot().window.calls, 0);
}

#[tokio::test(start_paused = true)]
async fn typed_errors_for_plain_services() {
    let failing = tower::service_fn(|n: u32| async move {
        if n == 0 {
            Err(std::io::Error::other("down"))
        } else {
            Ok(n)
        }
    });
    let handle = BreakerHandle::new(config()).unwrap();
    let mut service = BreakerLayer::shared(handle.clone())
        .typed_errors()
        .layer(failing);
    for _ in 0..4 {
        let error = service.ready().await.unwrap().call(0).await.unwrap_err();
        assert!(error.rejection().is_none());
    }
    let error = service.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(
        error.rejection().unwrap().kind(),
        RejectionKind::CircuitOpen
    );
}

#[test]
fn invalid_settings_are_errors_not_panics() {
    let error = BreakerLayer::new(BreakerConfig::new().failure_rate_threshold(0.0)).unwrap_err();
    assert_eq!(error.key(), "failure_rate_threshold");
    assert!(BreakerHandle::new(BreakerConfig::new().half_open_permits(0)).is_err());
}

mod keyed {
    use super::*;
    use steadfast::breaker::BreakerKey;

    fn to(authority: &str) -> Request<String> {
        Request::get(format!("http://{authority}/x"))
            .body(String::new())
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn one_breaker_per_upstream_for_clients() {
        let failing_host = tower::service_fn(|request: Request<String>| async move {
            let status = if request.uri().host() == Some("down.internal") {
                500
            } else {
                200
            };
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        });
        let layer = BreakerLayer::keyed(config(), BreakerKey::Authority, 16).unwrap();
        let mut client = layer.layer(failing_host);
        for _ in 0..4 {
            status(&mut client, to("down.internal")).await;
        }
        assert_eq!(status(&mut client, to("down.internal")).await, 503);
        assert_eq!(status(&mut client, to("up.internal:8080")).await, 200);
        let states: Vec<_> = layer
            .breakers()
            .into_iter()
            .map(|(key, breaker)| (key, breaker.state()))
            .collect();
        assert_eq!(
            states,
            [
                ("down.internal".to_owned(), State::Open),
                ("up.internal:8080".to_owned(), State::Closed)
            ]
        );
        let (_, breaker) = &layer.breakers()[0];
        assert_eq!(
            breaker.name(),
            Some("dependency:down.internal"),
            "the configured name prefixes the key"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keys_beyond_the_bound_share_one_overflow_breaker() {
        let script = Script::new();
        let layer = BreakerLayer::keyed(
            config(),
            BreakerKey::Header(http::HeaderName::from_static("x-tenant")),
            3,
        )
        .unwrap();
        let mut service = layer.layer(script.service());
        for tenant in 0..1000 {
            let request = Request::get("/")
                .header("x-tenant", tenant.to_string())
                .body(String::new())
                .unwrap();
            status(&mut service, request).await;
        }
        let keys: Vec<_> = layer.breakers().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["0", "1", "2", "overflow"]);
    }
}

mod grpc_trailers {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use std::pin::Pin;

    type Frames = StreamBody<
        futures::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, Infallible>>>,
    >;

    /// A streaming gRPC answer: one message, then `grpc-status` in the trailers.
    fn streaming(
        status: &'static str,
    ) -> impl Service<Request<String>, Response = Response<Frames>, Error = Infallible> + Clone
    {
        tower::service_fn(move |_: Request<String>| async move {
            let trailers = http::HeaderMap::from_iter([(
                http::HeaderName::from_static("grpc-status"),
                http::HeaderValue::from_static(status),
            )]);
            let frames = vec![
                Ok(http_body::Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            let response = Response::builder()
                .header("content-type", "application/grpc")
                .body(StreamBody::new(futures::stream::iter(frames)))
                .unwrap();
            Ok(response)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_in_the_trailers_counts_once_the_body_ends() {
        let (mut service, handle) = breaker(config(), streaming("14"));
        let response = grpc_call(&mut service).await;
        assert_eq!(handle.snapshot().window.calls, 0, "not decided at the head");
        response.into_body().collect().await.unwrap();
        assert_eq!(handle.snapshot().window.failures, 1);
        for _ in 0..3 {
            let response = grpc_call(&mut service).await;
            response.into_body().collect().await.unwrap();
        }
        assert_eq!(handle.state(), State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn ok_in_the_trailers_is_a_success() {
        let (mut service, handle) = breaker(config(), streaming("0"));
        for _ in 0..5 {
            let response = grpc_call(&mut service).await;
            response.into_body().collect().await.unwrap();
        }
        let window = handle.snapshot().window;
        assert_eq!((window.calls, window.failures), (5, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dropped_mid_stream_counts_for_nothing_and_frees_its_probe() {
        let (mut service, handle) = breaker(config().half_open_permits(1), streaming("14"));
        handle.trip();
        tokio::time::advance(Duration::from_secs(11)).await;
        let response = grpc_call(&mut service).await;
        let mut body = response.into_body();
        let _first = Pin::new(&mut body).frame().await;
        drop(body);
        assert_eq!(handle.state(), State::HalfOpen);
        let probe = grpc_call(&mut service).await;
        assert!(
            probe.headers().get("grpc-status").is_none(),
            "the permit came back: a real probe"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_open_durations_within_bounds() {
    let handle = BreakerHandle::new(config().open_jitter(0.5)).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        handle.trip();
        let open_for = handle.snapshot().open_for.unwrap();
        assert!(
            open_for >= Duration::from_secs(5) && open_for <= Duration::from_secs(15),
            "{open_for:?}"
        );
        seen.insert(open_for.as_millis());
        handle.reset();
    }
    assert!(
        seen.len() > 10,
        "durations should differ from trip to trip: {seen:?}"
    );
}

/// Runs `body` on its own paused-time runtime and fails (instead of hanging the suite) if it
/// has not finished within `limit` of real time.
fn within<F>(limit: Duration, body: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(body());
        let _ = done.send(());
    });
    finished
        .recv_timeout(limit)
        .expect("the breaker answered in time (no spin, no panic)");
}

#[test]
fn a_breaker_keeps_answering_after_years_of_uptime() {
    // Stored timestamps once wrapped after 2^48 microseconds (8.9 years) and acquire then spun
    // between open and half-open forever.
    for years in [9u64, 100, 500] {
        within(Duration::from_secs(20), move || async move {
            let script = Script::new();
            let (mut service, handle) = breaker(config(), script.service());
            tokio::time::advance(Duration::from_secs(years * 365 * 86_400)).await;
            handle.trip();
            assert_eq!(status(&mut service, request()).await, 503, "still open");
            assert_eq!(handle.state(), State::Open);
            tokio::time::advance(Duration::from_secs(11)).await;
            assert_eq!(status(&mut service, request()).await, 200, "a probe");
            assert_eq!(status(&mut service, request()).await, 200, "a probe");
            assert_eq!(handle.state(), State::Closed, "{years} years");
        });
    }
}

/// One row of the manual-transition table: what is done by hand, after which calls.
struct ManualRow {
    name: &'static str,
    calls_before: usize,
    action: fn(&BreakerHandle),
    state: State,
    window_calls: u64,
}

#[tokio::test(start_paused = true)]
async fn manual_transitions_follow_resilience4j_table() {
    // Resilience4j: every state entered by hand but OPEN and HALF_OPEN starts with an empty
    // window; DISABLED records nothing; HALF_OPEN and CLOSED can be entered by hand.
    let rows = [
        ManualRow {
            name: "metrics only starts empty",
            calls_before: 3,
            action: BreakerHandle::metrics_only,
            state: State::MetricsOnly,
            window_calls: 0,
        },
        ManualRow {
            name: "disabled starts empty",
            calls_before: 3,
            action: BreakerHandle::disable,
            state: State::Disabled,
            window_calls: 0,
        },
        ManualRow {
            name: "forced open starts empty",
            calls_before: 3,
            action: BreakerHandle::force_open,
            state: State::ForcedOpen,
            window_calls: 0,
        },
        ManualRow {
            name: "half-open by hand",
            calls_before: 3,
            action: BreakerHandle::half_open,
            state: State::HalfOpen,
            window_calls: 3,
        },
        ManualRow {
            name: "close by hand starts empty",
            calls_before: 3,
            action: BreakerHandle::close,
            state: State::Closed,
            window_calls: 0,
        },
    ];
    for row in rows {
        let script = Script::new();
        let (mut service, handle) = breaker(config(), script.service());
        script.answer(500);
        send(&mut service, row.calls_before).await;
        (row.action)(&handle);
        assert_eq!(handle.state(), row.state, "{}", row.name);
        assert_eq!(
            handle.snapshot().window.calls,
            row.window_calls,
            "{}",
            row.name
        );
    }

    // Half-open by hand: the probes decide.
    let script = Script::new();
    let (mut service, handle) = breaker(config(), script.service());
    handle.half_open();
    assert_eq!(send(&mut service, 2).await, [200, 200]);
    assert_eq!(handle.state(), State::Closed);

    // Close keeps the open backoff; reset forgets it.
    let config = config().open_backoff(2.0, Duration::from_secs(300));
    let (_service, handle) = breaker(config, Script::new().service());
    handle.trip();
    handle.trip();
    assert_eq!(handle.snapshot().open_for, Some(Duration::from_secs(20)));
    handle.close();
    handle.trip();
    assert_eq!(
        handle.snapshot().open_for,
        Some(Duration::from_secs(40)),
        "kept"
    );
    handle.reset();
    handle.trip();
    assert_eq!(
        handle.snapshot().open_for,
        Some(Duration::from_secs(10)),
        "forgotten"
    );
}

#[tokio::test(start_paused = true)]
async fn timer_driven_transitions_land_on_time_with_no_drift() {
    // Open 10 s, half-open at most 30 s, no probes and no backoff: the breaker cycles
    // open → half-open → open on its timers alone. Each transition once landed a millisecond
    // late, and the lag accumulated.
    let config = config()
        .automatic_half_open(true)
        .open_backoff(1.0, Duration::from_secs(10));
    let (_service, handle) = breaker(config, Script::new().service());
    handle.trip();
    // Four full cycles (160 s), then 5 s into the fifth open wait.
    tokio::time::sleep(Duration::from_secs(4 * 40 + 5)).await;
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.snapshot().open_for, Some(Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn the_half_open_max_wait_has_its_own_timer_without_automatic_half_open() {
    let (_service, handle) = breaker(config(), Script::new().service());
    let mut events = handle.subscribe();
    handle.half_open();
    assert_eq!(events.recv().await.unwrap().transition.to, State::HalfOpen);
    // No call arrives; the wait ends on time, and the open interval starts then.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("the half-open maximum wait ended by itself")
        .unwrap();
    assert_eq!(
        (event.transition.to, event.transition.reason),
        (State::Open, TransitionReason::HalfOpenMaxWait)
    );
    assert_eq!(handle.snapshot().open_for, Some(Duration::from_secs(9)));
}
