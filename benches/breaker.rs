//! Closed-state cost of a circuit breaker: a bare service against steadfast's breaker and
//! tower-resilience's, in the same configuration (count window of 100 calls, 50% threshold,
//! 100 minimum calls), on one thread and with two worker threads hammering one breaker.
//! Run: `cargo bench --bench breaker`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use steadfast::breaker::{BreakerConfig, BreakerHandle, CircuitBreakerLayer, SlidingWindow};
use tower::{Layer, Service, ServiceExt};

type Answer = Ready<Result<Response<Empty<Bytes>>, Infallible>>;

/// A service whose response is ready at once: the cost measured is the layer's alone.
fn bare()
-> impl Service<Request<()>, Response = Response<Empty<Bytes>>, Error = Infallible, Future = Answer>
+ Clone {
    tower::service_fn(|_: Request<()>| ready(Ok(Response::new(Empty::new()))))
}

fn config() -> BreakerConfig {
    BreakerConfig::new()
        .sliding_window(SlidingWindow::count(100))
        .minimum_calls(100)
        .failure_rate_threshold(50.0)
}

fn steadfast_shared() -> CircuitBreakerLayer {
    CircuitBreakerLayer::shared(BreakerHandle::new(config().name("bench")).unwrap())
}

fn steadfast_per_route() -> CircuitBreakerLayer {
    CircuitBreakerLayer::new(config()).unwrap()
}

fn tower_resilience() -> tower_resilience_circuitbreaker::CircuitBreakerLayer {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(100)
        .build()
        .unwrap()
}

async fn calls<S>(mut service: S, iterations: u64)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..iterations {
        let ready = service.ready().await.unwrap();
        black_box(ready.call(black_box(Request::new(()))).await.unwrap());
    }
}

/// One thread: `iterations` calls on one current-thread runtime.
fn one_thread<S>(service: S, iterations: u64) -> Duration
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let start = Instant::now();
        calls(service, iterations).await;
        start.elapsed()
    })
}

/// Two worker threads, each making `iterations` calls through clones of one service: the wall
/// time per call each worker sees while the other hammers the same breaker.
fn two_threads<S>(runtime: &tokio::runtime::Runtime, service: S, iterations: u64) -> Duration
where
    S: Service<Request<()>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        let start = Instant::now();
        let workers: Vec<_> = (0..2)
            .map(|_| tokio::spawn(calls(service.clone(), iterations)))
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        start.elapsed()
    })
}

fn breakers(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker");
    group.bench_function("bare", |b| b.iter_custom(|n| one_thread(bare(), n)));
    group.bench_function("steadfast-shared", |b| {
        b.iter_custom(|n| one_thread(steadfast_shared().layer(bare()), n))
    });
    group.bench_function("steadfast-per-route", |b| {
        b.iter_custom(|n| one_thread(steadfast_per_route().layer(bare()), n))
    });
    group.bench_function("tower-resilience", |b| {
        b.iter_custom(|n| one_thread(tower_resilience().layer(bare()), n))
    });
    group.finish();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("breaker_2w");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| two_threads(&runtime, bare(), n))
    });
    group.bench_function("steadfast-shared", |b| {
        b.iter_custom(|n| two_threads(&runtime, steadfast_shared().layer(bare()), n))
    });
    group.bench_function("steadfast-per-route", |b| {
        b.iter_custom(|n| two_threads(&runtime, steadfast_per_route().layer(bare()), n))
    });
    group.bench_function("tower-resilience", |b| {
        b.iter_custom(|n| two_threads(&runtime, tower_resilience().layer(bare()), n))
    });
    group.finish();
}

criterion_group!(benches, breakers);
criterion_main!(benches);
