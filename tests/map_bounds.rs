//! The reality map's memory is bounded whatever the traffic: junk paths and junk gRPC methods
//! cannot grow it. Its own test binary: it fills the process-wide map to its bounds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use steadfast::core::RequestBody;
use steadfast::dependency::{DependencyConfig, DependencyLayer};
use steadfast::policy::{Policies, Policy, PolicyLayer};
use steadfast::retry::ReplayBody;
use tower::{Layer, Service, ServiceExt};

/// Bytes allocated and not yet freed, by the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Body = Empty<Bytes>;

#[tokio::test(flavor = "current_thread")]
async fn junk_paths_and_methods_cannot_grow_the_map() {
    let client = DependencyLayer::new(DependencyConfig::new("bounds-store"))
        .unwrap()
        .layer(tower::service_fn(|_: Request<ReplayBody<Body>>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    // The layer around a bare service (no router): every path is the request's own.
    let service = PolicyLayer::new(Policies::new(Policy::new()))
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
    let junk = |i: usize| {
        let builder = if i % 2 == 0 {
            Request::get(format!("/junk/{i}/{}", "x".repeat(i % 50)))
        } else {
            // A well-formed gRPC method name nobody serves.
            Request::post(format!("/junk{i}.Service/Method{i}"))
                .header("content-type", "application/grpc")
        };
        builder.body(Body::new()).unwrap()
    };
    let send = |i: usize| {
        let mut service = service.clone();
        async move {
            let response = service.ready().await.unwrap().call(junk(i)).await.unwrap();
            drop(response);
        }
    };
    // Fill every bound first: 1,024 gRPC method names take their own place, no more.
    for i in 0..4_000 {
        send(i).await;
    }
    let filled = LIVE.load(Ordering::Relaxed);
    for i in 4_000..14_000 {
        send(i).await;
    }
    let grown = LIVE.load(Ordering::Relaxed) - filled;
    eprintln!("10,000 more junk requests: {grown} bytes more live memory");
    assert!(
        grown < 64 * 1024,
        "10,000 distinct junk paths and methods grew live memory by {grown} bytes"
    );

    let map = steadfast::map::snapshot();
    assert!(
        map.routes.len() <= 1024 + 3,
        "{} routes in the map",
        map.routes.len()
    );
    let unmatched = map.edge("unmatched", "bounds-store").unwrap();
    // Every junk HTTP path, and the gRPC methods beyond the bound, share one route.
    assert!(unmatched.calls >= 7_000, "{unmatched:?}");
    let calls: u64 = map
        .edges
        .iter()
        .filter(|edge| edge.dependency == "bounds-store")
        .map(|edge| edge.calls)
        .sum();
    assert_eq!(calls, 14_000, "every call is counted, on some edge");

    // Dependency policies are bounded too (they come from code, but a loop could make many).
    let layers: Vec<_> = (0..300)
        .map(|i| DependencyLayer::new(DependencyConfig::new(format!("bounds-{i}"))).unwrap())
        .collect();
    let map = steadfast::map::snapshot();
    assert!(map.dependencies.len() <= 256, "{}", map.dependencies.len());
    drop(layers);
}
