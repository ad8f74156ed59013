//! The harness shared by the benches: a bare service and the loops that time it.
//!
//! Each iteration is `ready().await` + `call().await` on an `http::Request<()>` whose response is
//! ready at once, so what is measured is the layer's own cost (the setting of the peer figures
//! in `shared/ANCHORS.md`).

// Each bench compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Service, ServiceExt};

pub type Answer = Ready<Result<Response<Empty<Bytes>>, Infallible>>;

/// A service whose response is ready at once.
pub fn bare()
-> impl Service<Request<()>, Response = Response<Empty<Bytes>>, Error = Infallible, Future = Answer>
+ Clone {
    tower::service_fn(|_: Request<()>| ready(Ok(Response::new(Empty::new()))))
}

/// [`bare`] for any request type.
pub fn bare_any<R>()
-> impl Service<R, Response = Response<Empty<Bytes>>, Error = Infallible, Future = Answer> + Clone {
    tower::service_fn(|_: R| ready(Ok(Response::new(Empty::new()))))
}

async fn calls<S>(service: S, iterations: u64)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    calls_with(service, || Request::new(()), iterations).await
}

pub async fn calls_with<S, R>(mut service: S, request: fn() -> R, iterations: u64)
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..iterations {
        let ready = service.ready().await.unwrap();
        black_box(ready.call(black_box(request())).await.unwrap());
    }
}

/// `iterations` calls on one thread, with requests made by `request`.
pub fn one_thread_with<S, R>(
    runtime: &tokio::runtime::Runtime,
    service: S,
    request: fn() -> R,
    iterations: u64,
) -> Duration
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        let start = Instant::now();
        calls_with(service, request, iterations).await;
        start.elapsed()
    })
}

/// A current-thread runtime, for [`one_thread`].
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A runtime with two worker threads, for [`two_threads`].
pub fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `iterations` calls on one thread.
pub fn one_thread<S>(runtime: &tokio::runtime::Runtime, service: S, iterations: u64) -> Duration
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

/// Two worker threads, each making `iterations` calls through clones of one service: the wall
/// time per call each worker sees while the other hammers the same state.
pub fn two_threads<S>(runtime: &tokio::runtime::Runtime, service: S, iterations: u64) -> Duration
where
    S: Service<Request<()>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    two_threads_with(runtime, service, || Request::new(()), iterations)
}

/// [`two_threads`], with requests made by `request`.
pub fn two_threads_with<S, R>(
    runtime: &tokio::runtime::Runtime,
    service: S,
    request: fn() -> R,
    iterations: u64,
) -> Duration
where
    S: Service<R> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    R: Send + 'static,
{
    runtime.block_on(async {
        let start = Instant::now();
        let workers: Vec<_> = (0..2)
            .map(|_| tokio::spawn(calls_with(service.clone(), request, iterations)))
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        start.elapsed()
    })
}
