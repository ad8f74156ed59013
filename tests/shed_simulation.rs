//! A deterministic overload simulation on paused time: a handler with a capacity of N concurrent
//! requests and a fixed service time T, driven open-loop at 4x its capacity, behind the adaptive
//! shedder, with one request in five critical.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use steadfast::shed::{Criticality, Gradient2, LimitAlgorithm, ShedConfig, ShedLayer};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const CAPACITY: usize = 40;
const SERVICE_TIME: Duration = Duration::from_millis(250);
/// 4x the capacity of 160 requests a second.
const ARRIVALS_PER_SECOND: u64 = 640;
const RUN: Duration = Duration::from_secs(40);
const WARM_UP: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Tally {
    /// (class, admitted, latency) of requests sent after the warm-up.
    outcomes: Vec<(Criticality, bool, Duration)>,
    limits: Vec<u64>,
}

#[tokio::test(start_paused = true)]
async fn at_four_times_capacity_the_limit_settles_and_critical_traffic_is_served() {
    // The resource: N connections, each call holding one for T; callers beyond N wait for one.
    let pool = Arc::new(Semaphore::new(CAPACITY));
    let handler = tower::service_fn(move |_: Request<()>| {
        let pool = pool.clone();
        async move {
            let _connection = pool.acquire().await.unwrap();
            tokio::time::sleep(SERVICE_TIME).await;
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    });
    let config = ShedConfig::new()
        .algorithm(LimitAlgorithm::Gradient2(Gradient2 {
            initial: 20,
            min: 5,
            max: 400,
            ..Gradient2::default()
        }))
        .guaranteed_share(Criticality::Critical, 0.5);
    let layer = ShedLayer::shared(config).unwrap();
    let limiter = layer.limiters()[0].1.clone();
    let service = layer.layer(handler);

    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let interval = Duration::from_nanos(1_000_000_000 / ARRIVALS_PER_SECOND);
    let mut sent = 0u64;
    let mut requests = Vec::new();
    let mut next_limit_sample = start + WARM_UP;
    while start.elapsed() < RUN {
        let class = if sent % 5 == 0 {
            Criticality::Critical
        } else {
            Criticality::Sheddable
        };
        let mut request = Request::new(());
        request.extensions_mut().insert(class);
        let (service, results) = (service.clone(), tally.clone());
        requests.push(tokio::spawn(async move {
            let sent_at = Instant::now();
            let response = service.oneshot(request).await.unwrap();
            if sent_at.duration_since(start) >= WARM_UP {
                let admitted = response.status() == StatusCode::OK;
                results
                    .lock()
                    .unwrap()
                    .outcomes
                    .push((class, admitted, sent_at.elapsed()));
            }
        }));
        sent += 1;
        if Instant::now() >= next_limit_sample {
            tally.lock().unwrap().limits.push(limiter.snapshot().limit);
            next_limit_sample += Duration::from_secs(1);
        }
        tokio::time::sleep(interval).await;
    }
    for request in requests {
        request.await.unwrap();
    }

    let tally = tally.lock().unwrap();
    let mut latencies: Vec<Duration> = tally
        .outcomes
        .iter()
        .filter(|(_, admitted, _)| *admitted)
        .map(|(_, _, latency)| *latency)
        .collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let rate = |class: Criticality| {
        let of_class: Vec<_> = tally
            .outcomes
            .iter()
            .filter(|(c, ..)| *c == class)
            .collect();
        of_class.iter().filter(|(_, admitted, _)| *admitted).count() as f64 / of_class.len() as f64
    };
    let (critical, sheddable) = (rate(Criticality::Critical), rate(Criticality::Sheddable));
    let (min_limit, max_limit) = (
        *tally.limits.iter().min().unwrap(),
        *tally.limits.iter().max().unwrap(),
    );
    let goodput = latencies.len() as f64 / (RUN - WARM_UP).as_secs_f64();
    println!(
        "limit {min_limit}..{max_limit} (capacity {CAPACITY}), admitted p99 {p99:?} (T {SERVICE_TIME:?}), \
         goodput {goodput:.0}/s (capacity {}/s), success: critical {:.1}%, sheddable {:.1}%",
        CAPACITY as f64 / SERVICE_TIME.as_secs_f64(),
        critical * 100.0,
        sheddable * 100.0
    );
    // Tolerances: the limit stays within [N/2, 1.5 N] after the warm-up (Gradient2 lets latency
    // reach 1.5x its long-term level before it shrinks, so it settles somewhat above N).
    assert!(
        min_limit as usize >= CAPACITY / 2 && max_limit as usize <= CAPACITY * 3 / 2,
        "{min_limit}..{max_limit}"
    );
    assert!(p99 <= SERVICE_TIME * 2, "admitted p99 {p99:?}");
    assert!(critical >= 0.95, "critical success {critical}");
    assert!(
        sheddable < 0.5,
        "sheddable traffic takes the rejections: {sheddable}"
    );
    let capacity = CAPACITY as f64 / SERVICE_TIME.as_secs_f64();
    assert!(
        goodput >= 0.85 * capacity,
        "goodput {goodput:.0}/s of {capacity:.0}/s"
    );
}
