//! Load shedding behaviour, on paused time with scripted inner services.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use futures::poll;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use steadfast::core::grpc::Code;
use steadfast::core::{Origin, Rejection, RejectionKind};
use steadfast::shed::{
    Aimd, Criticality, Gradient2, Knee, LimitAlgorithm, Shed, ShedConfig, ShedHandle, ShedLayer,
};
use tower::{Layer, Service, ServiceExt};

/// An inner service answering `status` after `delay`, both set by the test.
#[derive(Clone)]
struct Script {
    status: Arc<AtomicU16>,
    delay_micros: Arc<AtomicU64>,
}

impl Script {
    fn new(delay: Duration) -> Self {
        Self {
            status: Arc::new(AtomicU16::new(200)),
            delay_micros: Arc::new(AtomicU64::new(delay.as_micros() as u64)),
        }
    }

    fn delay(&self, delay: Duration) {
        self.delay_micros
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    fn service(
        &self,
    ) -> impl Service<
        Request<String>,
        Response = Response<String>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static {
        let script = self.clone();
        tower::service_fn(move |_: Request<String>| {
            let status = script.status.load(Ordering::SeqCst);
            let delay = Duration::from_micros(script.delay_micros.load(Ordering::SeqCst));
            async move {
                tokio::time::sleep(delay).await;
                let mut response = Response::new(String::new());
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                Ok(response)
            }
        })
    }
}

fn request(class: Option<Criticality>) -> Request<String> {
    let mut request = Request::get("/work").body(String::new()).unwrap();
    if let Some(class) = class {
        request.extensions_mut().insert(class);
    }
    request
}

type Service_<S> = Shed<S>;

/// Polls a call once: whether it was admitted and is now in flight (its handler pending).
fn started<F: std::future::Future + Unpin>(call: &mut F) -> bool {
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    std::pin::Pin::new(call).poll(&mut cx).is_pending()
}

fn shed<S>(config: ShedConfig, inner: S) -> (Service_<S>, ShedLayer) {
    let layer = ShedLayer::shared(ShedHandle::new(config).unwrap());
    (layer.layer(inner), layer)
}

fn snapshot(layer: &ShedLayer) -> steadfast::shed::ShedSnapshot {
    layer.limiters()[0].1.snapshot()
}

#[tokio::test(start_paused = true)]
async fn a_fixed_limit_sheds_the_excess_with_503_problem_json() {
    let script = Script::new(Duration::from_millis(100));
    let (service, layer) = shed(ShedConfig::fixed(2), script.service());
    let mut in_flight: Vec<_> = (0..2)
        .map(|_| Box::pin(service.clone().oneshot(request(None))))
        .collect();
    for call in &mut in_flight {
        assert!(poll!(call.as_mut()).is_pending());
    }
    assert_eq!(snapshot(&layer).in_flight, 2);

    let response = service.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let rejection = response.extensions().get::<Rejection>().unwrap();
    assert_eq!(
        (rejection.kind(), rejection.origin()),
        (RejectionKind::Overloaded, Origin::Shed)
    );
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["status"], 503);

    tokio::time::advance(Duration::from_millis(100)).await;
    for call in in_flight {
        assert_eq!(call.await.unwrap().status(), 200);
    }
    assert_eq!(snapshot(&layer).in_flight, 0);
    assert_eq!(service.oneshot(request(None)).await.unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn grpc_calls_get_unavailable_or_resource_exhausted() {
    let script = Script::new(Duration::from_secs(1));
    for (config, code) in [
        (ShedConfig::fixed(1), "14"),
        (ShedConfig::fixed(1).grpc_code(Code::ResourceExhausted), "8"),
    ] {
        let (service, _) = shed(config, script.service());
        let mut first = Box::pin(service.clone().oneshot(request(None)));
        assert!(poll!(first.as_mut()).is_pending());
        let grpc = Request::post("/pkg.S/M")
            .header("content-type", "application/grpc")
            .body(String::new())
            .unwrap();
        let response = service.oneshot(grpc).await.unwrap();
        assert_eq!(response.headers()["grpc-status"], code);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_futures_at_any_point_never_leaks_a_slot() {
    let script = Script::new(Duration::from_millis(10));
    let (service, layer) = shed(ShedConfig::fixed(8), script.service());
    // A deterministic spread of drop points: before the first poll, while pending, after some time.
    for round in 0u64..50 {
        let mut calls: Vec<_> = (0..8)
            .map(|_| Box::pin(service.clone().oneshot(request(None))))
            .collect();
        for (index, call) in calls.iter_mut().enumerate() {
            if (index as u64 + round) % 3 != 0 {
                let _ = poll!(call.as_mut());
            }
        }
        tokio::time::advance(Duration::from_millis(round % 15)).await;
        let keep = (round % 8) as usize;
        let finished: Vec<_> = calls.drain(..keep).collect();
        drop(calls);
        for call in finished {
            let _ = call.await;
        }
        assert_eq!(snapshot(&layer).in_flight, 0, "round {round}");
    }
}

#[tokio::test(start_paused = true)]
async fn lower_classes_are_shed_first() {
    let script = Script::new(Duration::from_secs(1));
    let (service, layer) = shed(ShedConfig::fixed(10), script.service());
    let mut held = Vec::new();
    let mut admit = |class| {
        let mut call = Box::pin(service.clone().oneshot(request(Some(class))));
        let admitted = started(&mut call);
        held.push(call);
        admitted
    };
    // Sheddable traffic gets 90% of the limit, sheddable-plus 95%, critical all of it.
    let sheddable: Vec<bool> = (0..10).map(|_| admit(Criticality::Sheddable)).collect();
    assert_eq!(sheddable.iter().filter(|admitted| **admitted).count(), 9);
    assert!(admit(Criticality::SheddablePlus), "9 < 9.5");
    assert!(!admit(Criticality::SheddablePlus), "10 in flight");
    assert!(!admit(Criticality::Critical), "the limit is reached");
    assert_eq!(snapshot(&layer).in_flight_by_class, [9, 1, 0, 0]);
}

/// Under an adaptive limit a higher class is not kept out by lower classes' requests in flight
/// (they may fill the limit, admitted before an overload was seen); a fixed limit bounds the
/// total (`lower_classes_are_shed_first`).
#[tokio::test(start_paused = true)]
async fn under_an_adaptive_limit_lower_classes_in_flight_do_not_keep_a_higher_one_out() {
    let script = Script::new(Duration::from_secs(1));
    let knee = Knee {
        initial: 10,
        ..Knee::default()
    };
    let (service, layer) = shed(
        ShedConfig::new().algorithm(LimitAlgorithm::Knee(knee)),
        script.service(),
    );
    let mut held = Vec::new();
    let mut admit = |class| {
        let mut call = Box::pin(service.clone().oneshot(request(Some(class))));
        let admitted = started(&mut call);
        held.push(call);
        admitted
    };
    let sheddable: Vec<bool> = (0..10).map(|_| admit(Criticality::Sheddable)).collect();
    assert_eq!(sheddable.iter().filter(|admitted| **admitted).count(), 9);
    // Critical requests count only critical ones (and those above): 10 of them.
    let critical: Vec<bool> = (0..11).map(|_| admit(Criticality::Critical)).collect();
    assert_eq!(critical.iter().filter(|admitted| **admitted).count(), 10);
    assert!(
        !admit(Criticality::Sheddable),
        "the limit is still full for them"
    );
    assert!(
        admit(Criticality::CriticalPlus),
        "above critical: its own count is 0"
    );
    assert_eq!(snapshot(&layer).in_flight_by_class, [9, 0, 10, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_guaranteed_share_is_kept_for_its_class_and_borrowed_while_idle() {
    let script = Script::new(Duration::from_secs(1));
    let config = ShedConfig::fixed(10)
        .guaranteed_share(Criticality::Critical, 0.5)
        .admit_below(Criticality::Sheddable, 1.0);
    let (service, layer) = shed(config, script.service());
    let mut held = Vec::new();
    let mut try_class = |class, count| {
        let mut admitted = 0;
        for _ in 0..count {
            let mut call = Box::pin(service.clone().oneshot(request(Some(class))));
            if started(&mut call) {
                admitted += 1;
            }
            held.push(call);
        }
        admitted
    };
    // Critical is idle: sheddable borrows the whole limit.
    assert_eq!(try_class(Criticality::Sheddable, 12), 10);
    // Critical arrives: its share is still its own, past the limit.
    assert_eq!(try_class(Criticality::Critical, 8), 5);
    assert_eq!(try_class(Criticality::Sheddable, 3), 0);
    assert_eq!(snapshot(&layer).in_flight_by_class, [10, 0, 5, 0]);
}

#[tokio::test(start_paused = true)]
async fn criticality_comes_from_extensions_then_a_capped_header_then_the_default() {
    let script = Script::new(Duration::from_secs(1));
    let config = ShedConfig::fixed(10)
        .default_criticality(Criticality::Sheddable)
        .criticality_header("x-criticality".parse().unwrap(), Criticality::Critical);
    let (service, layer) = shed(config, script.service());
    let with_header = |value: &str| {
        Request::get("/")
            .header("x-criticality", value)
            .body(String::new())
            .unwrap()
    };
    let mut held = Vec::new();
    for request in [
        with_header("CRITICAL_PLUS"),  // capped at critical
        with_header("sheddable_plus"), // taken as is
        with_header("urgent!!"),       // unreadable: the default
        request(None),                 // nothing: the default
        {
            let mut request = with_header("sheddable");
            request.extensions_mut().insert(Criticality::CriticalPlus); // trusted code wins
            request
        },
    ] {
        let mut call = Box::pin(service.clone().oneshot(request));
        assert!(poll!(call.as_mut()).is_pending());
        held.push(call);
    }
    assert_eq!(snapshot(&layer).in_flight_by_class, [2, 1, 1, 1]);
}

/// Keeps `concurrency` requests in flight for `windows` sample windows of 1 s.
async fn drive<S>(service: &S, concurrency: usize, windows: u32)
where
    S: Service<Request<String>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(windows));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    let _ = service.clone().oneshot(request(None)).await;
                    // Rejected at once: do not spin on the rejection.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn aimd_grows_while_busy_and_backs_off_on_drops() {
    let script = Script::new(Duration::from_millis(10));
    let config = ShedConfig::new().algorithm(LimitAlgorithm::Aimd(Aimd {
        initial: 10,
        min: 5,
        max: 100,
        ..Aimd::default()
    }));
    let (service, layer) = shed(config, script.service());
    drive(&service, 30, 5).await;
    let grown = snapshot(&layer).limit;
    assert!(
        grown > 10,
        "busy at the limit: grows by one per window, got {grown}"
    );

    script.status.store(503, Ordering::SeqCst);
    drive(&service, 30, 3).await;
    let shrunk = snapshot(&layer).limit;
    assert!(shrunk < grown, "drops back off: {grown} -> {shrunk}");

    // Idle (far below half the limit): no growth, once the window with the drops has closed.
    script.status.store(200, Ordering::SeqCst);
    drive(&service, 1, 2).await;
    let before = snapshot(&layer).limit;
    drive(&service, 1, 5).await;
    assert_eq!(snapshot(&layer).limit, before);
}

#[tokio::test(start_paused = true)]
async fn gradient2_shrinks_when_latency_rises_and_recovers_when_it_falls() {
    let script = Script::new(Duration::from_millis(10));
    let config = ShedConfig::new().algorithm(LimitAlgorithm::Gradient2(Gradient2 {
        initial: 40,
        min: 5,
        max: 200,
        ..Gradient2::default()
    }));
    let (service, layer) = shed(config, script.service());
    drive(&service, 50, 12).await;
    let steady = snapshot(&layer).limit;
    assert!(
        steady > 40,
        "steady latency while busy: the limit grows, got {steady}"
    );

    script.delay(Duration::from_millis(40));
    drive(&service, 50, 4).await;
    let slowed = snapshot(&layer).limit;
    assert!(
        slowed < steady,
        "latency 4x: the limit shrinks, {steady} -> {slowed}"
    );

    script.delay(Duration::from_millis(10));
    drive(&service, 50, 12).await;
    assert!(
        snapshot(&layer).limit > slowed,
        "latency back to normal: it grows again"
    );
}

mod queue {
    use super::*;
    use steadfast::core::Deadline;
    use steadfast::shed::QueueConfig;

    /// An inner service that records the order in which requests start (by their `u32` id).
    fn recording(
        delay: Duration,
        order: Arc<std::sync::Mutex<Vec<u32>>>,
    ) -> impl Service<
        Request<String>,
        Response = Response<String>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |request: Request<String>| {
            let order = order.clone();
            async move {
                order
                    .lock()
                    .unwrap()
                    .push(*request.extensions().get::<u32>().unwrap_or(&u32::MAX));
                tokio::time::sleep(delay).await;
                Ok(Response::new(String::new()))
            }
        })
    }

    fn numbered(id: u32, class: Criticality) -> Request<String> {
        let mut request = request(Some(class));
        request.extensions_mut().insert(id);
        request
    }

    fn patient() -> QueueConfig {
        QueueConfig {
            max_len: 100,
            max_wait: Duration::from_secs(10),
            target_wait: Duration::from_secs(10),
            interval: Duration::from_millis(100),
        }
    }

    async fn run_all<S>(
        service: &S,
        requests: Vec<Request<String>>,
    ) -> Vec<tokio::task::JoinHandle<StatusCode>>
    where
        S: Service<
                Request<String>,
                Response = Response<steadfast::core::ResponseBody<String>>,
                Error = Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send,
    {
        let mut handles = Vec::new();
        for request in requests {
            let service = service.clone();
            handles.push(tokio::spawn(async move {
                service.oneshot(request).await.unwrap().status()
            }));
            tokio::task::yield_now().await;
        }
        handles
    }

    #[tokio::test(start_paused = true)]
    async fn fifo_while_draining_then_lifo_once_a_queue_has_formed() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (service, _) = shed(
            ShedConfig::fixed(1).queue(patient()),
            recording(Duration::from_millis(50), order.clone()),
        );
        let requests = (0..7)
            .map(|id| numbered(id, Criticality::Critical))
            .collect();
        for handle in run_all(&service, requests).await {
            assert_eq!(handle.await.unwrap(), 200);
        }
        // 1 and 2 start at 50 and 100 ms, while the queue is younger than the 100 ms interval;
        // from 150 ms a standing queue has formed and the newest is served first.
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 6, 5, 4, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn higher_classes_are_served_first_from_the_queue() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (service, _) = shed(
            ShedConfig::fixed(1).queue(patient()),
            recording(Duration::from_millis(10), order.clone()),
        );
        let requests = vec![
            numbered(0, Criticality::Critical),
            numbered(1, Criticality::Sheddable),
            numbered(2, Criticality::SheddablePlus),
            numbered(3, Criticality::CriticalPlus),
        ];
        for handle in run_all(&service, requests).await {
            assert_eq!(handle.await.unwrap(), 200);
        }
        assert_eq!(*order.lock().unwrap(), [0, 3, 2, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn codel_waits_long_while_draining_and_short_once_a_queue_stands() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (service, _) = shed(
            ShedConfig::fixed(1).queue(QueueConfig::default()),
            recording(Duration::from_secs(10), order),
        );
        let hog = run_all(&service, vec![numbered(0, Criticality::Critical)]).await;

        let started = tokio::time::Instant::now();
        let first = run_all(&service, vec![numbered(1, Criticality::Critical)]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = run_all(&service, vec![numbered(2, Criticality::Critical)]).await;
        tokio::time::sleep(Duration::from_millis(70)).await;
        // The queue has not been empty for 120 ms: a standing queue, so only 5 ms of patience.
        let third_joined = tokio::time::Instant::now();
        let third = run_all(&service, vec![numbered(3, Criticality::Critical)]).await;

        assert_eq!(third.into_iter().next().unwrap().await.unwrap(), 503);
        assert_eq!(third_joined.elapsed(), Duration::from_millis(5));
        assert_eq!(first.into_iter().next().unwrap().await.unwrap(), 503);
        assert_eq!(second.into_iter().next().unwrap().await.unwrap(), 503);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(150),
            "the second waited 100 ms from 50 ms"
        );
        drop(hog);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_cannot_be_met_is_rejected_at_once_and_bounds_the_wait() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (service, layer) = shed(
            ShedConfig::fixed(1).queue(patient()),
            recording(Duration::from_millis(100), order),
        );
        // Learn the service time: 100 ms.
        for handle in run_all(&service, vec![numbered(0, Criticality::Critical)]).await {
            handle.await.unwrap();
        }
        let hog = run_all(&service, vec![numbered(1, Criticality::Critical)]).await;

        let mut hopeless = numbered(2, Criticality::Critical);
        hopeless
            .extensions_mut()
            .insert(Deadline::after(Duration::from_millis(80)));
        let joined = tokio::time::Instant::now();
        let response = service.clone().oneshot(hopeless).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(
            joined.elapsed(),
            Duration::ZERO,
            "no time to be served: rejected at once"
        );
        assert!(
            response
                .extensions()
                .get::<Rejection>()
                .unwrap()
                .detail()
                .contains("deadline")
        );

        // 130 ms left, 100 ms of service: at most 30 ms of waiting.
        let mut hurried = numbered(3, Criticality::Critical);
        hurried
            .extensions_mut()
            .insert(Deadline::after(Duration::from_millis(130)));
        let response = service.clone().oneshot(hurried).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(joined.elapsed(), Duration::from_millis(30));
        assert_eq!(snapshot(&layer).queued, 0);
        drop(hog);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_rejects_at_once() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let config = ShedConfig::fixed(1).queue(QueueConfig {
            max_len: 2,
            ..patient()
        });
        let (service, layer) = shed(config, recording(Duration::from_secs(1), order));
        let waiting = run_all(
            &service,
            (0..3)
                .map(|id| numbered(id, Criticality::Critical))
                .collect(),
        )
        .await;
        assert_eq!(snapshot(&layer).queued, 2);
        let response = service
            .clone()
            .oneshot(numbered(9, Criticality::Critical))
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert!(
            response
                .extensions()
                .get::<Rejection>()
                .unwrap()
                .detail()
                .contains("queue is full")
        );
        drop(waiting);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_waiters_leak_neither_slots_nor_places() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (service, layer) = shed(
            ShedConfig::fixed(2).queue(patient()),
            recording(Duration::from_millis(20), order),
        );
        for round in 0u64..30 {
            let mut calls: Vec<_> = (0..6)
                .map(|id| Box::pin(service.clone().oneshot(numbered(id, Criticality::Critical))))
                .collect();
            for call in calls.iter_mut() {
                let _ = poll!(call.as_mut());
            }
            tokio::time::advance(Duration::from_millis(round % 45)).await;
            let keep = (round % 6) as usize;
            let finished: Vec<_> = calls.drain(..keep).collect();
            drop(calls);
            for call in finished {
                let _ = call.await;
            }
            let snapshot = snapshot(&layer);
            assert_eq!(
                (snapshot.in_flight, snapshot.queued),
                (0, 0),
                "round {round}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn metrics_name_the_limiter_class_and_reason() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let script = Script::new(Duration::from_millis(10));
    let config = ShedConfig::new()
        .algorithm(LimitAlgorithm::Aimd(Aimd {
            initial: 1,
            min: 1,
            max: 10,
            ..Aimd::default()
        }))
        .sample_window(Duration::from_millis(100), 1)
        .name("search");
    let (service, _) = shed(config, script.service());
    let mut held = Box::pin(service.clone().oneshot(request(None)));
    assert!(poll!(held.as_mut()).is_pending());
    assert_eq!(
        service
            .clone()
            .oneshot(request(Some(Criticality::Sheddable)))
            .await
            .unwrap()
            .status(),
        503
    );
    held.await.unwrap();
    tokio::time::advance(Duration::from_millis(100)).await;
    service.clone().oneshot(request(None)).await.unwrap();

    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == name
                    && labels.iter().all(|(k, v)| {
                        key.key()
                            .labels()
                            .any(|label| label.key() == *k && label.value() == *v)
                    })
            })
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        value(
            "steadfast.shed.rejected",
            &[
                ("limiter", "search"),
                ("class", "sheddable"),
                ("reason", "limit")
            ]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert!(matches!(
        value("steadfast.shed.limit", &[("limiter", "search")]),
        Some(DebugValue::Gauge(_))
    ));
    assert!(matches!(
        value(
            "steadfast.shed.rtt",
            &[("limiter", "search"), ("window", "short")]
        ),
        Some(DebugValue::Gauge(_))
    ));
    assert!(
        value(
            "steadfast.rejections",
            &[("layer", "shed"), ("reason", "overloaded")]
        )
        .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn an_endless_queue_wait_is_refused_and_a_long_one_neither_panics_nor_leaks_a_place() {
    use steadfast::shed::QueueConfig;
    // Duration::MAX once passed validation; the shedder then panicked adding it to an instant
    // after counting the waiter, and the queue kept a phantom entry for good.
    for field in ["max_wait", "target_wait", "interval"] {
        let mut queue = QueueConfig::default();
        match field {
            "max_wait" => queue.max_wait = Duration::MAX,
            "target_wait" => {
                queue.max_wait = Duration::MAX;
                queue.target_wait = Duration::MAX;
            }
            _ => queue.interval = Duration::MAX,
        }
        let error = ShedHandle::new(ShedConfig::fixed(1).queue(queue)).expect_err("refused");
        assert!(error.to_string().contains("queue."), "{error}");
    }

    let script = Script::new(Duration::from_millis(100));
    let queue = QueueConfig {
        max_wait: Duration::from_secs(3600),
        target_wait: Duration::from_secs(3600),
        ..QueueConfig::default()
    };
    let (service, layer) = shed(ShedConfig::fixed(1).queue(queue), script.service());
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(service.clone().oneshot(Request::new(String::new()))))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    let snapshot = snapshot(&layer);
    assert_eq!((snapshot.queued, snapshot.in_flight), (0, 0));
}
