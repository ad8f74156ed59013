//! Cost of the full default stack: a bare service against `PolicyLayer` with the default
//! policy (observe, timeout, the knee's adaptive shedding, the strict-mode guard and fault
//! injection as pass-throughs, no breaker and no contract, as the defaults have none: one
//! fused future), no metrics recorder, and against the closest
//! tower / tower-http stack (tower-http `TraceLayer`, tower `Timeout`, `ConcurrencyLimit` +
//! `LoadShed`), in one run, on one thread and on two worker threads sharing one route. Run:
//! `cargo bench --all-features --bench policy`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{bare_any, current_thread, one_thread_with, two_threads_with, two_workers};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::Empty;
use steadfast::policy::{Policies, PolicyLayer};
use tower::{Layer, ServiceBuilder};

fn request() -> Request<Empty<Bytes>> {
    Request::new(Empty::new())
}

fn stacks(c: &mut Criterion) {
    let runtime = current_thread();
    let mut group = c.benchmark_group("policy");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| one_thread_with(&runtime, bare_any(), request, n))
    });
    group.bench_function("steadfast-default-policy", |b| {
        let layer = PolicyLayer::new(Policies::default()).unwrap();
        b.iter_custom(|n| one_thread_with(&runtime, layer.layer(bare_any()), request, n))
    });
    group.bench_function("tower-trace+timeout+limit+loadshed", |b| {
        let stack = ServiceBuilder::new()
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .timeout(Duration::from_secs(15))
            .load_shed()
            .concurrency_limit(100)
            .service(bare_any());
        b.iter_custom(|n| one_thread_with(&runtime, stack.clone(), request, n))
    });
    group.finish();

    // Two worker threads through clones of one service, every call on the same route: the
    // wall time per call each worker sees while the other hammers the same state.
    let runtime = two_workers();
    let mut group = c.benchmark_group("policy_2w");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| two_threads_with(&runtime, bare_any(), request, n))
    });
    group.bench_function("steadfast-default-policy", |b| {
        let layer = PolicyLayer::new(Policies::default()).unwrap();
        b.iter_custom(|n| two_threads_with(&runtime, layer.layer(bare_any()), request, n))
    });
    group.bench_function("tower-trace+timeout+limit+loadshed", |b| {
        let stack = ServiceBuilder::new()
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .timeout(Duration::from_secs(15))
            .load_shed()
            .concurrency_limit(100)
            .service(bare_any());
        b.iter_custom(|n| two_threads_with(&runtime, stack.clone(), request, n))
    });
    group.finish();
}

criterion_group!(benches, stacks);
criterion_main!(benches);
