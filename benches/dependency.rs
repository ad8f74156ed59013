//! Cost of a dependency policy on a call that needs no retry: a bare client against
//! steadfast's `DependencyLayer` (breaker, retry budget and adaptive throttle on; a GET, so its
//! request is kept for a retry; and a POST, which is not) and tower's `Retry` with a policy
//! that clones the request for a retry, in the same run. Run: `cargo bench --bench dependency`.

mod common;

use std::future::{Ready, ready};

use bytes::Bytes;
use common::{bare_any, current_thread, one_thread_with};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use steadfast::dependency::{DependencyConfig, DependencyLayer};
use steadfast::retry::ReplayBody;
use tower::Layer;

fn get() -> Request<Empty<Bytes>> {
    Request::get("http://inventory/items/7")
        .body(Empty::new())
        .unwrap()
}

fn post() -> Request<Empty<Bytes>> {
    Request::post("http://inventory/items")
        .body(Empty::new())
        .unwrap()
}

/// tower's retry policy as its docs write one: up to 2 retries on a 503, cloning the request.
#[derive(Clone)]
struct Attempts(usize);

impl<E> tower::retry::Policy<Request<Empty<Bytes>>, Response<Empty<Bytes>>, E> for Attempts {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Empty<Bytes>>,
        result: &mut Result<Response<Empty<Bytes>>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(response) if response.status() == 503 && self.0 > 0 => {
                self.0 -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &Request<Empty<Bytes>>) -> Option<Request<Empty<Bytes>>> {
        Some(request.clone())
    }
}

fn dependency() -> DependencyLayer {
    DependencyLayer::new(DependencyConfig::new("inventory")).unwrap()
}

fn dependencies(c: &mut Criterion) {
    let current = current_thread();
    let mut group = c.benchmark_group("dependency");
    group.bench_function("bare", |b| {
        b.iter_custom(|n| one_thread_with(&current, bare_any::<Request<Empty<Bytes>>>(), get, n))
    });
    group.bench_function("steadfast-get", |b| {
        b.iter_custom(|n| {
            let client = bare_any::<Request<ReplayBody<Empty<Bytes>>>>();
            one_thread_with(&current, dependency().layer(client), get, n)
        })
    });
    group.bench_function("steadfast-post", |b| {
        b.iter_custom(|n| {
            let client = bare_any::<Request<ReplayBody<Empty<Bytes>>>>();
            one_thread_with(&current, dependency().layer(client), post, n)
        })
    });
    group.bench_function("tower-retry", |b| {
        b.iter_custom(|n| {
            let client = bare_any::<Request<Empty<Bytes>>>();
            one_thread_with(
                &current,
                tower::retry::RetryLayer::new(Attempts(2)).layer(client),
                get,
                n,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, dependencies);
criterion_main!(benches);
