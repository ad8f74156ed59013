//! Closed-state cost of a circuit breaker: a bare service against steadfast's breaker and
//! tower-resilience's, in the same configuration (count window of 100 calls, 50% threshold,
//! 100 minimum calls), on one thread and with two worker threads hammering one breaker.
//! Run: `cargo bench --bench breaker`.

mod common;

use common::{bare, current_thread, one_thread, two_threads, two_workers};
use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::breaker::{BreakerConfig, BreakerHandle, BreakerLayer, SlidingWindow};
use tower::Layer;

fn config() -> BreakerConfig {
    BreakerConfig::new()
        .sliding_window(SlidingWindow::count(100))
        .minimum_calls(100)
        .failure_rate_threshold(50.0)
}

fn steadfast_shared() -> BreakerLayer {
    BreakerLayer::shared(BreakerHandle::new(config().name("bench")).unwrap())
}

fn steadfast_per_route() -> BreakerLayer {
    BreakerLayer::new(config()).unwrap()
}

fn tower_resilience() -> tower_resilience_circuitbreaker::CircuitBreakerLayer {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(100)
        .build()
        .unwrap()
}

fn breakers(c: &mut Criterion) {
    let current = current_thread();
    let mut group = c.benchmark_group("breaker");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| one_thread(&current, bare(), n))
    });
    group.bench_function("steadfast-shared", |b| {
        b.iter_custom(|n| one_thread(&current, steadfast_shared().layer(bare()), n))
    });
    group.bench_function("steadfast-per-route", |b| {
        b.iter_custom(|n| one_thread(&current, steadfast_per_route().layer(bare()), n))
    });
    group.bench_function("tower-resilience", |b| {
        b.iter_custom(|n| one_thread(&current, tower_resilience().layer(bare()), n))
    });
    group.finish();

    let runtime = two_workers();
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
