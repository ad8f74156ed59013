//! Admission cost of load shedding: a bare service against steadfast's shedder (fixed and
//! adaptive limits) and its peers, with the limit never reached, on one thread and with two
//! worker threads sharing one limiter. Run: `cargo bench --bench shed`.
//!
//! Peers: tower's `ConcurrencyLimit(1000)` + `LoadShed`, tower-acc's Gradient2 and
//! tower-resilience's adaptive AIMD limiter (both of which make callers wait instead of
//! rejecting; measured alone, as in `shared/ANCHORS.md`).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use steadfast::shed::{ShedConfig, ShedLayer};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

type Answer = Ready<Result<Response<Empty<Bytes>>, Infallible>>;

/// A service whose response is ready at once: the cost measured is the layer's alone.
fn bare()
-> impl Service<Request<()>, Response = Response<Empty<Bytes>>, Error = Infallible, Future = Answer>
+ Clone {
    tower::service_fn(|_: Request<()>| ready(Ok(Response::new(Empty::new()))))
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

/// One thread: `iterations` calls on a current-thread runtime.
fn one_thread<S>(runtime: &tokio::runtime::Runtime, service: S, iterations: u64) -> Duration
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        let start = Instant::now();
        calls(service, iterations).await;
        start.elapsed()
    })
}

/// Two worker threads, each making `iterations` calls through clones of one service.
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

fn fixed() -> ShedLayer {
    ShedLayer::shared(ShedConfig::fixed(1000)).unwrap()
}

fn adaptive() -> ShedLayer {
    ShedLayer::shared(ShedConfig::new()).unwrap()
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
        group.bench_function("steadfast-gradient2", |b| {
            b.iter_custom(|n| run!(adaptive().layer(bare()), n))
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
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    variants!(c.benchmark_group("shed"), one_thread, &current);
    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    variants!(c.benchmark_group("shed_2w"), two_threads, &workers);
}

criterion_group!(benches, shedders);
criterion_main!(benches);
