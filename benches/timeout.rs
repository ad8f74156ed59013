//! Happy-path cost of a timeout layer: a bare service against steadfast and its peers, in one run.
//!
//! Each iteration is `ready().await` + `call().await` on an `http::Request<()>` whose response is
//! ready at once, on a current-thread tokio runtime (the setting of the peer figures in
//! `shared/ANCHORS.md`). Run: `cargo bench --bench timeout`.

mod common;

use std::time::Duration;

use common::{bare, current_thread, one_thread_with};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::Layer;

const BUDGET: Duration = Duration::from_secs(30);

/// A request with no extensions, as in the peers' figures in `shared/ANCHORS.md`.
fn plain_request() -> Request<()> {
    Request::new(())
}

/// A request that already carries an extension, as every request inside an Axum router does
/// (`MatchedPath`, `OriginalUri`): publishing the `Deadline` then costs one allocation, not three.
fn axum_like_request() -> Request<()> {
    #[derive(Clone)]
    struct RouterExtension(#[allow(dead_code)] u64);
    let mut request = Request::new(());
    request.extensions_mut().insert(RouterExtension(1));
    request
}

fn compare(c: &mut Criterion, group_name: &str, request: fn() -> Request<()>) {
    let runtime = current_thread();
    let mut group = c.benchmark_group(group_name);
    group.bench_function("bare", |b| {
        b.iter_custom(|n| one_thread_with(&runtime, bare(), request, n))
    });
    group.bench_function("steadfast", |b| {
        let layer = steadfast::timeout::TimeoutLayer::new(BUDGET).unwrap();
        b.iter_custom(|n| one_thread_with(&runtime, layer.layer(bare()), request, n))
    });
    group.bench_function("steadfast-unpublished", |b| {
        let config = steadfast::timeout::TimeoutConfig::new(BUDGET).publish_deadline(false);
        let layer = steadfast::timeout::TimeoutLayer::new(config).unwrap();
        b.iter_custom(|n| one_thread_with(&runtime, layer.layer(bare()), request, n))
    });
    group.bench_function("tower", |b| {
        let layer = tower::timeout::TimeoutLayer::new(BUDGET);
        b.iter_custom(|n| one_thread_with(&runtime, layer.layer(bare()), request, n))
    });
    group.bench_function("tower-http", |b| {
        #[allow(deprecated)]
        let layer = tower_http::timeout::TimeoutLayer::new(BUDGET);
        b.iter_custom(|n| one_thread_with(&runtime, layer.layer(bare()), request, n))
    });
    group.finish();
}

fn timeouts(c: &mut Criterion) {
    compare(c, "timeout", plain_request);
    compare(c, "timeout_axum_like", axum_like_request);
}

criterion_group!(benches, timeouts);
criterion_main!(benches);
