//! The hot paths allocate nothing per call: a counting global allocator watches 1,000 calls.
//!
//! One test per binary, and only the test's own thread is counted (the code under test runs
//! on it, in a current-thread runtime): the test harness's other threads allocate now and then,
//! which made the counts flaky (4 stray allocations in about one run in four).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::ready;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use steadfast::breaker::{BreakerConfig, BreakerHandle, BreakerLayer, SlidingWindow};
use steadfast::core::RequestBody;
use steadfast::policy::{Policies, Policy, PolicyBody, PolicyLayer};
use steadfast::timeout::{TimeoutConfig, TimeoutLayer};
use tower::{Layer, Service, ServiceExt};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the thread whose allocations are counted.
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHED.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn bare() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    tower::service_fn(|_: Request<()>| ready(Ok(Response::new(()))))
}

/// Allocations made by 1,000 calls, after a warm-up call (which may register metrics).
async fn allocations_per_1000_calls<S>(service: S) -> usize
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    allocations_per_1000_calls_with(service, || Request::new(())).await
}

/// As [`allocations_per_1000_calls`], with requests made by `request`.
async fn allocations_per_1000_calls_with<S, R>(mut service: S, request: fn() -> R) -> usize
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    service
        .ready()
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..1000 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        std::hint::black_box(response);
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

type Body = http_body_util::Empty<bytes::Bytes>;

/// A trivial service under the policy stack with `policy` as its defaults.
fn policy(
    policy: Policy,
) -> impl Service<Request<Body>, Response = Response<PolicyBody<Body>>, Error = Infallible> {
    PolicyLayer::new(Policies::new(policy))
        .unwrap()
        .layer(tower::service_fn(|_: Request<RequestBody<Body>>| {
            ready(Ok::<_, Infallible>(Response::new(Body::new())))
        }))
}

/// As [`allocations_per_1000_calls`], for services that take a request body.
async fn allocations_per_1000_body_calls<S>(service: S) -> usize
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    allocations_per_1000_calls_with(service, || Request::new(Body::new())).await
}

#[tokio::test]
async fn hot_paths_do_not_allocate() {
    WATCHED.set(true);
    let config = BreakerConfig::new().sliding_window(SlidingWindow::count(100));
    let shared = BreakerLayer::shared(BreakerHandle::new(config.clone().name("alloc")).unwrap());
    assert_eq!(
        allocations_per_1000_calls(shared.layer(bare())).await,
        0,
        "shared breaker, closed"
    );

    let per_route = BreakerLayer::new(config.clone()).unwrap();
    assert_eq!(
        allocations_per_1000_calls(per_route.layer(bare())).await,
        0,
        "per-route breaker, closed"
    );

    let time_window = BreakerLayer::new(
        config
            .sliding_window(SlidingWindow::time(Duration::from_secs(10)))
            .slow_call_duration(Duration::from_secs(1)),
    )
    .unwrap();
    assert_eq!(
        allocations_per_1000_calls(time_window.layer(bare())).await,
        0,
        "time window with slow calls"
    );

    let unpublished =
        TimeoutLayer::new(TimeoutConfig::new(Duration::from_secs(1)).publish_deadline(false))
            .unwrap();
    assert_eq!(
        allocations_per_1000_calls(unpublished.layer(bare())).await,
        0,
        "timeout, deadline unpublished"
    );

    // The whole policy stack (observe, guard, breaker, timeout, adaptive shedding, fault,
    // contract off, panics caught), its deadline unpublished: nothing.
    let unpublished = Policy::new()
        .timeout_config(TimeoutConfig::new(Duration::from_secs(1)).publish_deadline(false));
    assert_eq!(
        allocations_per_1000_body_calls(policy(unpublished)).await,
        0,
        "policy, deadline unpublished"
    );
    // The default policy publishes its deadline (as the request's current one, not in the
    // extensions): nothing either.
    assert_eq!(
        allocations_per_1000_body_calls(policy(Policy::new())).await,
        0,
        "default policy"
    );
    // A policy with every part on (a breaker, a fixed limit): nothing.
    let everything = Policy::new()
        .breaker(BreakerConfig::new())
        .shed(steadfast::shed::ShedConfig::fixed(100));
    assert_eq!(
        allocations_per_1000_body_calls(policy(everything)).await,
        0,
        "policy with a breaker and a fixed limit"
    );

    // The layer around a whole router (no `MatchedPath`): the path is matched against the
    // policies' templates, and the route named without an allocation.
    let outside = PolicyLayer::new(Policies::new(Policy::new()).route(
        "/items/{id}",
        Policy::new().timeout(Duration::from_millis(500)),
    ))
    .unwrap()
    .layer(tower::service_fn(|_: Request<RequestBody<Body>>| {
        ready(Ok::<_, Infallible>(Response::new(Body::new())))
    }));
    let matched = || {
        let mut request = Request::new(Body::new());
        *request.uri_mut() = http::Uri::from_static("/items/7");
        request
    };
    assert_eq!(
        allocations_per_1000_calls_with(outside, matched).await,
        0,
        "policy outside the router, its route matched by the layer"
    );

    // The standalone shedders (the knee default, a fixed limit) and the observer (no
    // recorder, no subscriber): nothing.
    let knee = steadfast::shed::ShedLayer::new(steadfast::shed::ShedConfig::new()).unwrap();
    assert_eq!(
        allocations_per_1000_calls(knee.layer(bare())).await,
        0,
        "shed, knee"
    );
    let fixed = steadfast::shed::ShedLayer::new(steadfast::shed::ShedConfig::fixed(100)).unwrap();
    assert_eq!(
        allocations_per_1000_calls(fixed.layer(bare())).await,
        0,
        "shed, fixed"
    );
    let observe = steadfast::observe::ObserveLayer::new();
    assert_eq!(
        allocations_per_1000_calls(observe.layer(bare())).await,
        0,
        "observe"
    );

    // A dependency policy (breaker, budget, throttle, client metrics) on a call that needs no
    // retry: nothing. A POST is not kept for a retry; a GET is (its head cloned).
    let dependency = || {
        steadfast::dependency::DependencyLayer::new(steadfast::dependency::DependencyConfig::new(
            "alloc",
        ))
        .unwrap()
        .layer(tower::service_fn(
            |_: Request<steadfast::retry::ReplayBody<Body>>| {
                ready(Ok::<_, Infallible>(Response::new(())))
            },
        ))
    };
    // (Requests made without the builder, whose URI parsing allocates.)
    let post = allocations_per_1000_calls_with(dependency(), || {
        let mut request = Request::new(Body::new());
        *request.method_mut() = http::Method::POST;
        request
    })
    .await as f64
        / 1000.0;
    let get = allocations_per_1000_calls_with(dependency(), || Request::new(Body::new())).await
        as f64
        / 1000.0;
    eprintln!("dependency policy: {post} allocations per POST, {get} per GET");
    assert!(post <= 0.0, "dependency POST: {post} allocations per call");
    // (A GET with headers also clones its header map to keep it for a retry.)
    assert!(get <= 0.0, "dependency GET: {get} allocations per call");

    // A handler under the policy that calls a dependency: the reality map's attribution (the
    // caller named on the thread, the route → dependency edge) adds nothing.
    let client = dependency();
    let calling = PolicyLayer::new(Policies::new(Policy::new()))
        .unwrap()
        .layer(tower::service_fn(move |_: Request<RequestBody<Body>>| {
            let client = client.clone();
            async move {
                let mut request = Request::new(Body::new());
                *request.method_mut() = http::Method::POST;
                client.oneshot(request).await.unwrap();
                Ok::<_, Infallible>(Response::new(Body::new()))
            }
        }));
    let with_call = allocations_per_1000_body_calls(calling).await as f64 / 1000.0;
    let alone = allocations_per_1000_body_calls(policy(Policy::new())).await as f64 / 1000.0;
    eprintln!("policy request calling a dependency: {with_call} allocations, {alone} without");
    assert!(
        with_call <= alone,
        "attribution allocates: {with_call} per request with a dependency call, {alone} without"
    );

    // A timeout that publishes its deadline (the default), to a handler that reads it: nothing.
    let published = TimeoutLayer::new(Duration::from_secs(1))
        .unwrap()
        .layer(tower::service_fn(|_: Request<()>| {
            assert!(steadfast::core::Deadline::current().is_some());
            ready(Ok::<_, Infallible>(Response::new(())))
        }))
        .ready_oneshot()
        .await
        .unwrap();
    assert_eq!(
        allocations_per_1000_calls(published).await,
        0,
        "timeout, deadline published"
    );
}
