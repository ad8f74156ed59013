//! Retries: each rule on paused time with a scripted dependency.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use steadfast::Error;
use steadfast::core::{Deadline, Origin, Rejection, RejectionKind};
use steadfast::retry::{BudgetConfig, ReplayBody, RetryConfig, RetryLayer, Retryable};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// One answer of the scripted dependency.
#[derive(Clone)]
enum Answer {
    Status(u16, Vec<(&'static str, &'static str)>),
    /// A transport error.
    Fail,
    /// A steadfast rejection made inside the retry (for `over_typed` stacks).
    Refuse(RejectionKind),
    /// Answer 200 after this long.
    Slow(Duration),
}

/// What the dependency saw of one attempt.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    body: Bytes,
}

#[derive(Clone)]
struct Dependency {
    script: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Answer when the script has run out.
    otherwise: Answer,
    /// How long each attempt takes before it answers.
    delay: Duration,
}

impl Dependency {
    fn new(script: impl IntoIterator<Item = Answer>, otherwise: Answer) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into_iter().collect())),
            seen: Arc::default(),
            otherwise,
            delay: Duration::ZERO,
        }
    }

    /// Each attempt answers after `delay`.
    fn taking(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn attempts(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl<B> Service<Request<ReplayBody<B>>> for Dependency
where
    B: http_body::Body + Send + 'static,
    B::Error: std::fmt::Debug + Send,
    B::Data: Send,
{
    type Response = Response<Empty<Bytes>>;
    type Error = Error<std::io::Error>;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReplayBody<B>>) -> Self::Future {
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(self.otherwise.clone());
        let seen = self.seen.clone();
        let at = Instant::now();
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let body = match request.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::from_static(b"<broken>"),
            };
            seen.lock().unwrap().push(Seen { at, body });
            match answer {
                Answer::Status(status, headers) => {
                    let mut response = Response::builder().status(status);
                    for (name, value) in headers {
                        response = response.header(name, value);
                    }
                    Ok(response.body(Empty::new()).unwrap())
                }
                Answer::Fail => Err(Error::Inner(std::io::Error::other("connection refused"))),
                Answer::Refuse(kind) => Err(Error::Rejected(Rejection::new(kind, Origin::Breaker))),
                Answer::Slow(after) => {
                    tokio::time::sleep(after).await;
                    Ok(Response::new(Empty::new()))
                }
            }
        })
    }
}

fn status(code: u16) -> Answer {
    Answer::Status(code, Vec::new())
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("http://inventory/items/1")
        .body(Empty::new())
        .unwrap()
}

fn layer(config: RetryConfig) -> RetryLayer<steadfast::retry::OverTyped> {
    RetryLayer::new(config.name("inventory"))
        .unwrap()
        .over_typed()
}

async fn call<B>(
    dependency: &Dependency,
    config: RetryConfig,
    request: Request<B>,
) -> Result<StatusCode, Error<std::io::Error>>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Error: std::fmt::Debug + Send,
    B::Data: Send,
{
    layer(config)
        .layer(dependency.clone())
        .oneshot(request)
        .await
        .map(|response| response.status())
}

#[tokio::test(start_paused = true)]
async fn answers_that_say_not_now_are_retried_and_others_are_final() {
    let table: &[(Answer, usize)] = &[
        (status(503), 2),
        (status(429), 2),
        (Answer::Fail, 2),
        (Answer::Refuse(RejectionKind::Timeout), 2),
        (status(200), 1),
        (status(500), 1),
        (status(502), 1),
        (status(400), 1),
        (status(404), 1),
        (Answer::Refuse(RejectionKind::CircuitOpen), 1),
        (Answer::Refuse(RejectionKind::Throttled), 1),
        (Answer::Refuse(RejectionKind::DeadlineExpired), 1),
        (
            Answer::Status(
                200,
                vec![("content-type", "application/grpc"), ("grpc-status", "14")],
            ),
            2,
        ),
        (
            Answer::Status(
                200,
                vec![("content-type", "application/grpc"), ("grpc-status", "8")],
            ),
            2,
        ),
        (
            Answer::Status(
                200,
                vec![("content-type", "application/grpc"), ("grpc-status", "13")],
            ),
            1,
        ),
        (
            Answer::Status(
                200,
                vec![
                    ("content-type", "application/grpc"),
                    ("grpc-status", "14"),
                    ("grpc-retry-pushback-ms", "-1"),
                ],
            ),
            1,
        ),
    ];
    for (first, attempts) in table {
        let dependency = Dependency::new([first.clone()], status(200));
        let _ = call(&dependency, RetryConfig::new(), get()).await;
        assert_eq!(
            dependency.attempts(),
            *attempts,
            "after {:?}",
            match first {
                Answer::Status(code, headers) => format!("{code} {headers:?}"),
                Answer::Fail => "transport error".into(),
                Answer::Refuse(kind) => kind.to_string(),
                Answer::Slow(_) => "slow".into(),
            }
        );
    }
}

#[tokio::test(start_paused = true)]
async fn only_idempotent_methods_or_marked_requests_are_retried() {
    for (method, mark, attempts) in [
        (Method::GET, None, 3),
        (Method::HEAD, None, 3),
        (Method::PUT, None, 3),
        (Method::DELETE, None, 3),
        (Method::OPTIONS, None, 3),
        (Method::POST, None, 1),
        (Method::PATCH, None, 1),
        (Method::POST, Some(Retryable::Yes), 3),
        (Method::GET, Some(Retryable::No), 1),
    ] {
        let dependency = Dependency::new([], status(503));
        let mut request = Request::builder()
            .method(method.clone())
            .uri("http://inventory/x")
            .body(Empty::<Bytes>::new())
            .unwrap();
        if let Some(mark) = mark {
            request.extensions_mut().insert(mark);
        }
        // Every attempt fails: the answer is the last attempt's.
        assert_eq!(
            call(&dependency, RetryConfig::new(), request)
                .await
                .unwrap(),
            503
        );
        assert_eq!(dependency.attempts(), attempts, "{method} {mark:?}");
    }
    // A gRPC method listed as idempotent is retried although it is a POST.
    let dependency = Dependency::new([], status(503));
    let request = Request::post("http://inventory/shop.Inventory/Get")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let config = RetryConfig::new().idempotent_grpc_method("/shop.Inventory/Get");
    call(&dependency, config, request).await.unwrap();
    assert_eq!(dependency.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_jittered_exponential_and_bounded_by_its_cap() {
    let config = || {
        RetryConfig::new()
            .max_retries(5)
            .backoff(Duration::from_millis(10), Duration::from_millis(40))
    };
    let mut waits: Vec<Vec<Duration>> = Vec::new();
    for _ in 0..50 {
        let dependency = Dependency::new([], status(503));
        call(
            &dependency,
            config().budget(BudgetConfig::new().min_per_second(1_000)),
            get(),
        )
        .await
        .unwrap();
        let seen = dependency.seen();
        assert_eq!(seen.len(), 6);
        waits.push(
            seen.windows(2)
                .map(|pair| pair[1].at - pair[0].at)
                .collect(),
        );
    }
    for retry in 0..5 {
        let ceiling = Duration::from_millis(10 << retry.min(2));
        let observed: Vec<Duration> = waits.iter().map(|waits| waits[retry]).collect();
        assert!(
            observed.iter().all(|wait| *wait <= ceiling),
            "retry {retry}: {observed:?}"
        );
        // Full jitter: spread over the range, not a fixed step.
        let distinct: std::collections::BTreeSet<_> = observed.iter().collect();
        // (The paused clock moves in whole milliseconds.)
        assert!(distinct.len() > 4, "retry {retry}: {observed:?}");
        let mean = observed.iter().sum::<Duration>() / observed.len() as u32;
        assert!(
            mean > ceiling / 4 && mean < ceiling * 3 / 4,
            "retry {retry}: mean {mean:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_dependency_says_how_long_to_wait_and_a_long_wait_is_not_waited() {
    // Retry-After in seconds.
    let dependency = Dependency::new(
        [Answer::Status(503, vec![("retry-after", "3")])],
        status(200),
    );
    assert_eq!(
        call(&dependency, RetryConfig::new(), get()).await.unwrap(),
        200
    );
    let seen = dependency.seen();
    assert_eq!(seen[1].at - seen[0].at, Duration::from_secs(3));
    // gRPC pushback in milliseconds.
    let pushback = Answer::Status(
        200,
        vec![
            ("content-type", "application/grpc"),
            ("grpc-status", "14"),
            ("grpc-retry-pushback-ms", "750"),
        ],
    );
    let dependency = Dependency::new([pushback], status(200));
    call(
        &dependency,
        RetryConfig::new().idempotent_grpc_method("/items/1"),
        get(),
    )
    .await
    .unwrap();
    let seen = dependency.seen();
    assert_eq!(seen[1].at - seen[0].at, Duration::from_millis(750));
    // Longer than `max_retry_after`: the dependency's answer is the call's.
    let dependency = Dependency::new(
        [Answer::Status(503, vec![("retry-after", "30")])],
        status(200),
    );
    assert_eq!(
        call(&dependency, RetryConfig::new(), get()).await.unwrap(),
        503
    );
    assert_eq!(dependency.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_attempt_is_started_that_the_deadline_cannot_cover() {
    // Each attempt takes 80 ms and fails; the caller has 200 ms: two attempts fit, not three.
    for (budget_ms, attempts) in [(50u64, 1usize), (200, 2), (1_000, 3)] {
        let dependency =
            Dependency::new([], Answer::Status(503, vec![])).taking(Duration::from_millis(80));
        let mut request = get();
        request
            .extensions_mut()
            .insert(Deadline::after(Duration::from_millis(budget_ms)));
        let started = Instant::now();
        let _ =
            layer(RetryConfig::new().backoff(Duration::from_millis(1), Duration::from_millis(1)))
                .layer(dependency.clone())
                .oneshot(request)
                .await;
        assert_eq!(dependency.attempts(), attempts, "budget {budget_ms} ms");
        // Never past the deadline by more than the attempt that was already running.
        assert!(
            started.elapsed() <= Duration::from_millis(budget_ms.max(80)),
            "budget {budget_ms} ms: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_keeps_retries_to_a_tenth_of_the_calls_and_then_fails_fast() {
    let config = RetryConfig::new().budget(BudgetConfig::new().min_per_second(0));
    let dependency = Dependency::new([], status(503));
    let retry = layer(config).layer(dependency.clone());
    let mut exhausted = 0;
    for _ in 0..1_000 {
        match retry.clone().oneshot(get()).await {
            Ok(response) => assert_eq!(response.status(), 503),
            Err(Error::Rejected(rejection)) => {
                assert_eq!(rejection.kind(), RejectionKind::RetryBudgetExhausted);
                assert_eq!(rejection.origin(), Origin::Retry);
                assert!(rejection.detail().contains("503"), "{}", rejection.detail());
                exhausted += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    let attempts = dependency.attempts();
    assert!(
        (1_000..=1_100).contains(&attempts),
        "{attempts} attempts for 1,000 calls"
    );
    assert!(exhausted > 900, "{exhausted}");
    // The floor: a quiet caller can still retry.
    let dependency = Dependency::new([status(503)], status(200));
    let quiet = layer(RetryConfig::new()).layer(dependency.clone());
    assert_eq!(quiet.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(dependency.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_shared_by_every_clone_and_refills_after_its_window() {
    let config = RetryConfig::new().budget(
        BudgetConfig::new()
            .min_per_second(1)
            .window(Duration::from_secs(2)),
    );
    let dependency = Dependency::new([], status(503));
    let layer = layer(config);
    // The floor is 2 retries over the window, shared by two clients.
    let (one, two) = (
        layer.layer(dependency.clone()),
        layer.layer(dependency.clone()),
    );
    let _ = one.oneshot(get()).await;
    let _ = two.oneshot(get()).await;
    // The first call spends both retries (3 attempts); the second gets its first attempt only.
    assert_eq!(dependency.attempts(), 4);
    tokio::time::advance(Duration::from_secs(3)).await;
    let _ = layer.layer(dependency.clone()).oneshot(get()).await;
    assert_eq!(dependency.attempts(), 7);
}

#[tokio::test(start_paused = true)]
async fn bodies_are_sent_whole_on_every_attempt_and_large_ones_once() {
    let chunks = || {
        futures::stream::iter((0..16).map(|i| {
            Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![i as u8; 64])))
        }))
    };
    let expected: Bytes = (0..16).flat_map(|i| vec![i as u8; 64]).collect();
    // 1 KiB in 16 chunks, under the limit: replayed.
    let dependency = Dependency::new([status(503), status(503)], status(200));
    let mut request = Request::post("http://inventory/items")
        .body(StreamBody::new(chunks()))
        .unwrap();
    request.extensions_mut().insert(Retryable::Yes);
    assert_eq!(
        call(&dependency, RetryConfig::new(), request)
            .await
            .unwrap(),
        200
    );
    let seen = dependency.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|seen| seen.body == expected));
    // Over the limit: sent once, whole.
    let dependency = Dependency::new([status(503)], status(200));
    let mut request = Request::post("http://inventory/items")
        .body(StreamBody::new(chunks()))
        .unwrap();
    request.extensions_mut().insert(Retryable::Yes);
    let config = RetryConfig::new().max_replay_bytes(300);
    assert_eq!(call(&dependency, config, request).await.unwrap(), 503);
    let seen = dependency.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, expected);
    // A known-size body over the limit is not read first.
    let dependency = Dependency::new([status(503)], status(200));
    let mut request = Request::put("http://inventory/items/1")
        .body(Full::new(expected.clone()))
        .unwrap();
    request.extensions_mut().insert(Retryable::Yes);
    assert_eq!(
        call(
            &dependency,
            RetryConfig::new().max_replay_bytes(100),
            request
        )
        .await
        .unwrap(),
        503
    );
    assert_eq!(dependency.seen()[0].body, expected);
    // A body that breaks while it is read reaches the client broken, once.
    let broken = futures::stream::iter([
        Ok(http_body::Frame::data(Bytes::from_static(b"half"))),
        Err(std::io::Error::other("reset")),
    ]);
    let dependency = Dependency::new([], status(503));
    let request = Request::put("http://inventory/items/1")
        .body(StreamBody::new(broken))
        .unwrap();
    let _ = call(&dependency, RetryConfig::new(), request).await;
    let seen = dependency.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, "<broken>");
    let _ = chunks().count().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_while_it_waits_to_retry_stops_there() {
    let dependency = Dependency::new(
        [Answer::Status(503, vec![("retry-after", "5")])],
        status(200),
    );
    let future = layer(RetryConfig::new())
        .layer(dependency.clone())
        .oneshot(get());
    assert!(
        tokio::time::timeout(Duration::from_secs(1), future)
            .await
            .is_err()
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(dependency.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_plain_client_gets_typed_errors_and_settings_are_checked() {
    // Over a client with its own error type (TypedErrors): its errors come back as Error::Inner.
    let client = tower::service_fn(|_request: Request<ReplayBody<Empty<Bytes>>>| async {
        Err::<Response<()>, _>(std::io::Error::other("connection refused"))
    });
    let error = RetryLayer::new(RetryConfig::new().max_retries(1))
        .unwrap()
        .layer(client)
        .oneshot(get())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Inner(_)));
    // Slow answers are not retried by the retry layer itself (a per-attempt timeout is).
    let dependency = Dependency::new([Answer::Slow(Duration::from_secs(2))], status(200));
    assert_eq!(
        call(&dependency, RetryConfig::new(), get()).await.unwrap(),
        200
    );
    assert_eq!(dependency.attempts(), 1);
    for (config, key) in [
        (RetryConfig::new().max_retries(11), "max_retries"),
        (
            RetryConfig::new().backoff(Duration::ZERO, Duration::from_secs(1)),
            "backoff",
        ),
        (
            RetryConfig::new().backoff(Duration::from_secs(2), Duration::from_secs(1)),
            "backoff",
        ),
        (
            RetryConfig::new().backoff(Duration::from_secs(1), Duration::MAX),
            "backoff",
        ),
        (
            RetryConfig::new().max_retry_after(Duration::MAX),
            "max_retry_after",
        ),
        (
            RetryConfig::new().budget(BudgetConfig::new().ratio(-1.0)),
            "budget.ratio",
        ),
        (
            RetryConfig::new().budget(BudgetConfig::new().ratio(f64::NAN)),
            "budget.ratio",
        ),
        (
            RetryConfig::new().budget(BudgetConfig::new().window(Duration::MAX)),
            "budget.window",
        ),
        (RetryConfig::new().name(""), "name"),
    ] {
        assert_eq!(RetryLayer::new(config).unwrap_err().key(), key);
    }
}
