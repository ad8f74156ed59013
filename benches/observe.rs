//! Cost of instrumentation: a bare service against steadfast's `ObserveLayer` (no recorder, and
//! the Prometheus recorder with the recommended buckets), tower-http's `TraceLayer` (no
//! subscriber) and axum-prometheus, in one run. Run: `cargo bench --bench observe`.
//!
//! axum-prometheus installs a global recorder, so it runs last: the cases before it measure
//! with no global recorder, and steadfast's Prometheus case uses a thread-local one.

mod common;

use common::{bare, current_thread, one_thread, one_thread_with};
use criterion::{Criterion, criterion_group, criterion_main};
use metrics_exporter_prometheus::PrometheusBuilder;
use steadfast::observe::ObserveLayer;
use tower::Layer;

fn observers(c: &mut Criterion) {
    let runtime = current_thread();
    let mut group = c.benchmark_group("observe");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| one_thread(&runtime, bare(), n))
    });
    group.bench_function("steadfast-no-recorder", |b| {
        b.iter_custom(|n| one_thread(&runtime, ObserveLayer::new().layer(bare()), n))
    });
    group.bench_function("steadfast-prometheus", |b| {
        let builder =
            steadfast::observe::prometheus::recommended(PrometheusBuilder::new()).unwrap();
        let recorder = builder.build_recorder();
        b.iter_custom(|n| {
            let _guard = metrics::set_default_local_recorder(&recorder);
            one_thread(&runtime, ObserveLayer::new().layer(bare()), n)
        })
    });
    group.bench_function("tower-http-trace", |b| {
        let request = || http::Request::new(http_body_util::Empty::<bytes::Bytes>::new());
        let traced = tower_http::trace::TraceLayer::new_for_http().layer(common::bare_any());
        b.iter_custom(|n| one_thread_with(&runtime, traced.clone(), request, n))
    });
    // Built once: it installs a global recorder (which may be set only once per process) and
    // spawns its upkeep task on the runtime; criterion calls a bench's closure more than once.
    let axum_prometheus = {
        let _entered = runtime.enter();
        axum_prometheus::PrometheusMetricLayer::pair().0
    };
    group.bench_function("axum-prometheus", |b| {
        b.iter_custom(|n| one_thread(&runtime, axum_prometheus.clone().layer(bare()), n))
    });
    group.finish();
}

criterion_group!(benches, observers);
criterion_main!(benches);
