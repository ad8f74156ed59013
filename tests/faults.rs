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
    let error = TimeoutLayer::new(Duration::ZERO).expect_err("refused");
    assert_eq!(error.key(), "budget");
    for (config, key) in [
        (TimeoutConfig::new(second).cap(Duration::ZERO), "cap"),
        (TimeoutConfig::caller_deadline(Duration::ZERO), "cap"),
        (
            TimeoutConfig::new(second).timeout_status(http::StatusCode::OK),
            "timeout_status",
        ),
    ] {
        let error = TimeoutLayer::new(config.clone()).expect_err("refused");
        assert_eq!(error.key(), key, "{error}");
        let policies = Policies::new(Policy::new().timeout_config(config));
        let error = Policies::validate(&policies).expect_err("the policy is refused too");
        assert!(error.to_string().contains(key), "{error}");
    }
    assert!(TimeoutLayer::new(TimeoutConfig::caller_deadline(second)).is_ok());
}

#[cfg(feature = "axum")]
mod policy_stack {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use steadfast::policy::{Policies, Policy, PolicyLayer};
    use steadfast::shed::ShedConfig;
    use tower::ServiceExt;

    /// How many handlers run at once, and the most seen.
    #[derive(Clone, Default)]
    struct Concurrency {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Concurrency {
        async fn hold(&self, time: Duration) {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(time).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
        }

        fn most(&self) -> usize {
            self.most.load(Ordering::SeqCst)
        }
    }

    fn policies(limit: u32) -> Policies {
        Policies::new(Policy::new().no_breaker().shed(ShedConfig::fixed(limit))).route(
            "/explicit",
            Policy::new().no_breaker().shed(ShedConfig::fixed(limit)),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_never_lets_more_requests_in_than_the_limit() {
        // Changing a route's shed settings once built a new limiter while requests in flight
        // kept their slots on the old one: limits 2 and 3 alternating every 2 ms let 8 in.
        let (explicit, defaults) = (Concurrency::default(), Concurrency::default());
        let layer = PolicyLayer::new(policies(2)).unwrap();
        let handle = layer.handle();
        let app = {
            let (explicit, defaults) = (explicit.clone(), defaults.clone());
            Router::new()
                .route(
                    "/explicit",
                    get(move || async move { explicit.hold(Duration::from_millis(5)).await }),
                )
                .route(
                    "/defaults",
                    get(move || async move { defaults.hold(Duration::from_millis(5)).await }),
                )
                .layer(layer)
        };
        let mut calls = Vec::new();
        let (mut served, mut shed) = (0, 0);
        for tick in 0..400u32 {
            for uri in ["/explicit", "/defaults", "/explicit", "/defaults"] {
                let request = Request::get(uri).body(Body::empty()).unwrap();
                calls.push(tokio::spawn(app.clone().oneshot(request)));
            }
            if tick % 4 == 0 {
                handle.reload(policies(2 + (tick / 4) % 2)).unwrap();
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        for call in calls {
            match call.await.unwrap().unwrap().status() {
                StatusCode::OK => served += 1,
                StatusCode::SERVICE_UNAVAILABLE => shed += 1,
                other => panic!("unexpected {other}"),
            }
        }
        assert!(served > 200 && shed > 0, "served {served}, shed {shed}");
        assert!(
            explicit.most() <= 3,
            "explicit route: {} at once",
            explicit.most()
        );
        assert!(
            defaults.most() <= 3,
            "defaults: {} at once",
            defaults.most()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_with_shedding_off_is_never_shed() {
        // "Off" was a fixed limit of 65,535: the 65,536th request in flight was shed.
        const CALLS: usize = 66_000;
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let app = {
            let (gate, inside) = (gate.clone(), inside.clone());
            let policies = Policies::new(Policy::new().no_breaker().no_shed());
            Router::new()
                .route(
                    "/",
                    get(move || {
                        let (gate, inside) = (gate.clone(), inside.clone());
                        async move {
                            inside.fetch_add(1, Ordering::SeqCst);
                            let _permit = gate.acquire().await.unwrap();
                        }
                    }),
                )
                .layer(PolicyLayer::new(policies).unwrap())
        };
        let calls: Vec<_> = (0..CALLS)
            .map(|_| {
                let request = Request::get("/").body(Body::empty()).unwrap();
                tokio::spawn(app.clone().oneshot(request))
            })
            .collect();
        while inside.load(Ordering::SeqCst) < CALLS && calls.iter().all(|c| !c.is_finished()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        gate.add_permits(CALLS);
        let mut served = 0;
        for call in calls {
            let status = call.await.unwrap().unwrap().status();
            assert_eq!(status, StatusCode::OK);
            served += 1;
        }
        assert_eq!(served, CALLS);
    }
}

#[cfg(feature = "axum")]
mod junk_paths {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use metrics_util::debugging::DebuggingRecorder;
    use steadfast::breaker::{BreakerConfig, BreakerLayer, SlidingWindow};
    use steadfast::policy::{Policies, Policy, PolicyLayer, Strict};
    use tower::ServiceExt;

    fn junk(i: usize) -> Request<Body> {
        // Well-formed method names and garbage, alternately.
        let path = if i % 2 == 0 {
            format!("/junk{i}.Service/Method{i}")
        } else {
            format!("/%2e%2e/{i}/../x?y={i}")
        };
        Request::post(path)
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap()
    }

    fn get_request(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn junk_grpc_paths_never_push_a_real_route_into_a_shared_breaker() {
        // Junk gRPC paths once became keys, first come first served up to 1,024 and never
        // evicted: routes first seen afterwards shared one `overflow` breaker, so a failing
        // route then rejected a healthy one.
        let breaker = BreakerConfig::new()
            .sliding_window(SlidingWindow::count(10))
            .minimum_calls(4)
            .open_duration(Duration::from_secs(60));
        let layer = BreakerLayer::new(breaker).unwrap();
        let app = Router::new()
            .route("/healthy", get(|| async { "ok" }))
            .route(
                "/failing",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(layer.clone());
        for i in 0..20_000 {
            let _ = app.clone().oneshot(junk(i)).await.unwrap();
        }
        for _ in 0..10 {
            let _ = app.clone().oneshot(get_request("/failing")).await.unwrap();
        }
        let failing = app.clone().oneshot(get_request("/failing")).await.unwrap();
        assert_eq!(
            failing.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "its breaker is open"
        );
        let healthy = app.clone().oneshot(get_request("/healthy")).await.unwrap();
        assert_eq!(
            healthy.status(),
            StatusCode::OK,
            "the healthy route is untouched"
        );
        let breakers = layer.breakers();
        assert!(
            breakers.len() <= 2 * 1024 + 3,
            "{} breakers",
            breakers.len()
        );
        assert!(breakers.iter().any(|(key, _)| key == "/healthy"));
    }

    #[tokio::test]
    async fn strict_mode_never_labels_metrics_with_a_raw_path() {
        // Requests typed `application/grpc` once put their raw path into
        // `steadfast.policy.unmatched`: 20,000 junk paths made 20,000 label sets.
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let layer = PolicyLayer::new(Policies::new(Policy::new()))
            .unwrap()
            .strict(Strict::Report);
        let app = Router::new()
            .route("/known", get(|| async { "ok" }))
            .layer(layer);
        for i in 0..20_000 {
            let _ = app.clone().oneshot(junk(i)).await.unwrap();
        }
        let _ = app.oneshot(get_request("/known")).await.unwrap();
        let labels: std::collections::BTreeSet<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "steadfast.policy.unmatched")
            .flat_map(|(key, ..)| {
                key.key()
                    .labels()
                    .filter(|label| label.key() == "route")
                    .map(|label| label.value().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            labels.len() <= 2,
            "{} route labels: {labels:?}",
            labels.len()
        );
    }
}

#[cfg(feature = "axum")]
mod panics_and_broken_bodies {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use steadfast::breaker::{BreakerConfig, BreakerLayer, SlidingWindow, State};
    use steadfast::core::{Rejection, RejectionKind};
    use steadfast::policy::{Policies, Policy, PolicyLayer};
    use tower::{BoxError, ServiceExt};

    fn breaker() -> BreakerConfig {
        BreakerConfig::new()
            .sliding_window(SlidingWindow::count(10))
            .minimum_calls(4)
            .open_duration(Duration::from_secs(60))
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_handler_is_answered_500_and_trips_the_breaker() {
        // A panic was seen as a cancelled call: no answer of steadfast's, no failure counted,
        // so a handler that always panics tripped nothing.
        async fn boom() -> &'static str {
            panic!("the handler fell over")
        }
        let policies =
            Policies::new(Policy::new()).route("/boom", Policy::new().breaker(breaker()));
        let app = Router::new()
            .route("/boom", get(boom))
            .layer(PolicyLayer::new(policies).unwrap());
        let mut kinds = Vec::new();
        for _ in 0..6 {
            let request = Request::get("/boom").body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let kind = response
                .extensions()
                .get::<Rejection>()
                .map(Rejection::kind);
            kinds.push((response.status(), kind));
            if response.status() == StatusCode::INTERNAL_SERVER_ERROR {
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(problem["status"], 500);
                assert!(
                    !problem.to_string().contains("fell over"),
                    "the panic stays private"
                );
            }
        }
        let panicked = (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(RejectionKind::Panicked),
        );
        let open = (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(RejectionKind::CircuitOpen),
        );
        assert_eq!(kinds[..4], [panicked; 4]);
        assert_eq!(
            kinds[4..],
            [open; 2],
            "four failures of four trip the breaker"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_fails_after_a_successful_head_counts_as_a_failure() {
        let layer = BreakerLayer::new(breaker().name("dependency")).unwrap();
        let service = layer.layer(tower::service_fn(|_request: Request<Body>| async {
            let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                Ok(Frame::data(Bytes::from_static(b"partial"))),
                Err("reset".into()),
            ];
            Ok::<_, BoxError>(Response::new(StreamBody::new(futures::stream::iter(
                frames,
            ))))
        }));
        for _ in 0..4 {
            let response = service
                .clone()
                .oneshot(Request::new(Body::empty()))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.into_body().collect().await.is_err());
        }
        let (_, handle) = layer.breakers().into_iter().next().unwrap();
        assert_eq!(handle.state(), State::Open);
    }

    use tower::Layer;
}

mod endless_durations {
    use std::convert::Infallible;
    use std::time::Duration;

    use http::{Request, Response};
    use steadfast::breaker::{BreakerConfig, BreakerLayer, SlidingWindow};
    use steadfast::core::ConfigError;
    use steadfast::fault::{FaultConfig, FaultLayer};
    use steadfast::shed::{QueueConfig, ShedConfig, ShedLayer};
    use steadfast::timeout::{TimeoutConfig, TimeoutLayer};
    use tower::{Layer, Service, ServiceExt};

    #[derive(Clone)]
    struct Plain;

    impl Service<Request<()>> for Plain {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new(String::new())))
        }
    }

    /// A service built from `layer` answers (refusing the settings is fine too: never a panic).
    async fn answers<L>(layer: Result<L, ConfigError>, what: &str)
    where
        L: Layer<Plain>,
        L::Service: Service<Request<()>, Error = Infallible> + Clone,
    {
        let Ok(layer) = layer else { return };
        let service = layer.layer(Plain);
        for _ in 0..3 {
            let answered = tokio::time::timeout(
                Duration::from_secs(3600),
                service.clone().oneshot(Request::new(())),
            )
            .await;
            assert!(answered.is_ok(), "{what}: no answer");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_duration_setting_takes_duration_max_without_a_panic() {
        let max = Duration::MAX;
        answers(TimeoutLayer::new(max), "timeout budget").await;
        answers(
            TimeoutLayer::new(TimeoutConfig::new(Duration::from_secs(1)).cap(max)),
            "timeout cap",
        )
        .await;
        answers(
            TimeoutLayer::new(TimeoutConfig::caller_deadline(max)),
            "caller deadline",
        )
        .await;
        for (what, config) in [
            ("open_duration", BreakerConfig::new().open_duration(max)),
            ("open_backoff", BreakerConfig::new().open_backoff(2.0, max)),
            (
                "half_open_max_wait",
                BreakerConfig::new().half_open_max_wait(Some(max)),
            ),
            (
                "slow_call_duration",
                BreakerConfig::new().slow_call_duration(max),
            ),
            (
                "time window",
                BreakerConfig::new().sliding_window(SlidingWindow::time(max)),
            ),
        ] {
            let layer = BreakerLayer::new(config);
            if let Ok(layer) = &layer {
                // Trip it too: the open wait is computed from the setting.
                for (_, handle) in layer.breakers() {
                    handle.trip();
                }
            }
            answers(layer, what).await;
        }
        for (what, config) in [
            ("sample_window", ShedConfig::new().sample_window(max, 10)),
            ("retry_after", ShedConfig::fixed(1).retry_after(max)),
            (
                "queue",
                ShedConfig::fixed(1).queue(QueueConfig {
                    max_wait: max,
                    target_wait: max,
                    interval: max,
                    ..QueueConfig::default()
                }),
            ),
        ] {
            answers(ShedLayer::new(config), what).await;
        }
        answers(
            FaultLayer::new(FaultConfig::new().delay(max, 100.0)),
            "fault delay",
        )
        .await;
    }
}
