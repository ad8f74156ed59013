//! Admission cost of load shedding: a bare service against steadfast's shedder (fixed and
//! adaptive limits) and its peers, with the limit never reached, on one thread and with two
//! worker threads sharing one limiter. Run: `cargo bench --bench shed`.
//!
//! Peers: tower's `ConcurrencyLimit(1000)` + `LoadShed`, tower-acc's Gradient2 and
//! tower-resilience's adaptive AIMD limiter (both of which make callers wait instead of
//! rejecting; measured alone, as in `shared/ANCHORS.md`).

mod common;

use common::{bare, current_thread, one_thread, two_threads, two_workers};
use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::shed::{ShedConfig, ShedHandle, ShedLayer};
use tower::{Layer, ServiceBuilder};

fn fixed() -> ShedLayer {
    ShedLayer::shared(ShedHandle::new(ShedConfig::fixed(1000)).unwrap())
}

/// The default: the knee limit.
fn adaptive() -> ShedLayer {
    ShedLayer::shared(ShedHandle::new(ShedConfig::new()).unwrap())
}

fn gradient2() -> ShedLayer {
    ShedLayer::shared(
        ShedHandle::new(
            ShedConfig::new().algorithm(steadfast::shed::LimitAlgorithm::Gradient2(
                Default::default(),
            )),
        )
        .unwrap(),
    )
}

fn per_route() -> ShedLayer {
    ShedLayer::new(ShedConfig::fixed(1000)).unwrap()
}

macro_rules! variants {
    ($group:expr, $run:ident, $runtime:expr) => {{
        let mut group = $group;
        let runtime = $runtime;
        macro_rules! run {
            ($service:expr, $n:expr) => {
                $run(runtime, $service, $n)
            };
        }
        group.bench_function("bare", |b| b.iter_custom(|n| run!(bare(), n)));
        group.bench_function("steadfast-fixed", |b| {
            b.iter_custom(|n| run!(fixed().layer(bare()), n))
        });
        group.bench_function("steadfast-fixed-per-route", |b| {
            b.iter_custom(|n| run!(per_route().layer(bare()), n))
        });
        group.bench_function("steadfast-knee", |b| {
            b.iter_custom(|n| run!(adaptive().layer(bare()), n))
        });
        group.bench_function("steadfast-gradient2", |b| {
            b.iter_custom(|n| run!(gradient2().layer(bare()), n))
        });
        group.bench_function("tower-limit-loadshed", |b| {
            b.iter_custom(|n| {
                run!(
                    ServiceBuilder::new()
                        .load_shed()
                        .concurrency_limit(1000)
                        .service(bare()),
                    n
                )
            })
        });
        group.bench_function("tower-acc-gradient2", |b| {
            b.iter_custom(|n| {
                run!(
                    tower_acc::ConcurrencyLimitLayer::new(tower_acc::Gradient2::default())
                        .layer(bare()),
                    n
                )
            })
        });
        group.bench_function("tower-resilience-aimd", |b| {
            b.iter_custom(|n| {
                let algorithm = tower_resilience_adaptive::Aimd::builder().build().unwrap();
                run!(
                    tower_resilience_adaptive::AdaptiveLimiterLayer::new(algorithm).layer(bare()),
                    n
                )
            })
        });
        group.finish();
    }};
}

fn shedders(c: &mut Criterion) {
    let current = current_thread();
    variants!(c.benchmark_group("shed"), one_thread, &current);
    let workers = two_workers();
    variants!(c.benchmark_group("shed_2w"), two_threads, &workers);
}

criterion_group!(benches, shedders);
criterion_main!(benches);
