//! Cost of a dependency policy on a call that needs no retry: a bare client against
//! steadfast's `DependencyLayer` (breaker, retry budget and adaptive throttle on; a GET, so its
//! request is kept for a retry; and a POST, which is not) and tower's `Retry` with a policy
//! that clones the request for a retry, in the same run. Also the reality map's attribution:
//! a POST made inside a request (a caller named on the thread) with the map on, against the
//! same with `reality_map(false)`. Run: `cargo bench --bench dependency`.

mod common;

use std::future::{Ready, ready};

use bytes::Bytes;
use common::{bare_any, calls_with, current_thread, one_thread_with};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use steadfast::core::{Caller, RequestBody};
use steadfast::dependency::{DependencyConfig, DependencyLayer};
use steadfast::policy::{Policies, Policy, PolicyLayer};
use steadfast::retry::ReplayBody;
use tower::{Layer, ServiceExt};

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

/// The caller of a request served under a policy, taken from its handler.
fn caller(runtime: &tokio::runtime::Runtime) -> Caller {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let handler = {
        let seen = seen.clone();
        tower::service_fn(move |_: Request<RequestBody<Empty<Bytes>>>| {
            *seen.lock().unwrap() = Caller::current();
            ready(Ok::<_, std::convert::Infallible>(Response::new(Empty::<
                Bytes,
            >::new(
            ))))
        })
    };
    let service = PolicyLayer::new(Policies::new(Policy::new()))
        .unwrap()
        .layer(handler);
    runtime
        .block_on(service.oneshot(Request::get("/bench/route").body(Empty::new()).unwrap()))
        .unwrap();
    seen.lock()
        .unwrap()
        .expect("a handler under a policy has a caller")
}

/// As [`one_thread_with`], with the calls made as `caller`'s work.
fn in_request<S>(
    runtime: &tokio::runtime::Runtime,
    caller: Caller,
    service: S,
    iterations: u64,
) -> std::time::Duration
where
    S: tower::Service<Request<Empty<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(caller.scope(async {
        let start = std::time::Instant::now();
        calls_with(service, post, iterations).await;
        start.elapsed()
    }))
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
    let caller = caller(&current);
    group.bench_function("steadfast-post-in-request", |b| {
        b.iter_custom(|n| {
            let client = bare_any::<Request<ReplayBody<Empty<Bytes>>>>();
            in_request(&current, caller, dependency().layer(client), n)
        })
    });
    group.bench_function("steadfast-post-in-request-off-map", |b| {
        b.iter_custom(|n| {
            let client = bare_any::<Request<ReplayBody<Empty<Bytes>>>>();
            let layer =
                DependencyLayer::new(DependencyConfig::new("inventory-off-map").reality_map(false))
                    .unwrap();
            in_request(&current, caller, layer.layer(client), n)
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
