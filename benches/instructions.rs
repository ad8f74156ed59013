//! Hot paths for the CI instruction-count guard (`.ci/instructions`), without a timing harness:
//! `instructions <path> <calls>` runs `calls` requests through one hot path and exits. Run
//! under `valgrind --tool=callgrind`, the difference between two call counts is the exact
//! number of instructions per call: repeatable whatever else the machine is doing.

mod common;

use std::time::Duration;

use common::{bare, current_thread};
use steadfast::breaker::{BreakerConfig, BreakerHandle, BreakerLayer};
use steadfast::observe::ObserveLayer;
use steadfast::policy::{Policies, PolicyLayer};
use steadfast::shed::{ShedConfig, ShedHandle, ShedLayer};
use steadfast::timeout::TimeoutLayer;
use tower::{Layer, ServiceBuilder};

/// The hot paths, by name.
const PATHS: [&str; 10] = [
    "bare",
    "timeout",
    "breaker",
    "shed",
    "observe",
    "stack",
    "policy",
    "dependency",
    "dependency-unmapped",
    "dependency-get",
];

/// A POST through a dependency policy, made as the work of a request's caller (the reality
/// map attributes it), with the map on or off.
fn dependency_in_request(runtime: &tokio::runtime::Runtime, map: bool, calls: u64) {
    use bytes::Bytes;
    use http_body_util::Empty;
    use steadfast::core::{Caller, RequestBody};
    use steadfast::dependency::{DependencyConfig, DependencyLayer};
    use steadfast::policy::Policy;
    use tower::ServiceExt;

    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let handler = {
        let seen = seen.clone();
        tower::service_fn(move |_: http::Request<RequestBody<Empty<Bytes>>>| {
            *seen.lock().unwrap() = Caller::current();
            std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(
                Empty::<Bytes>::new(),
            )))
        })
    };
    let service = PolicyLayer::new(Policies::new(Policy::new()))
        .unwrap()
        .layer(handler);
    runtime
        .block_on(service.oneshot(http::Request::new(Empty::new())))
        .unwrap();
    let caller = seen.lock().unwrap().expect("a caller");
    let client = DependencyLayer::new(DependencyConfig::new("inventory").reality_map(map))
        .unwrap()
        .layer(common::bare_any());
    let post = || {
        let mut request = http::Request::new(Empty::<Bytes>::new());
        *request.method_mut() = http::Method::POST;
        request
    };
    runtime.block_on(caller.scope(common::calls_with(client, post, calls)));
}

/// A GET through a dependency policy: an idempotent call, whose request is kept for a retry.
fn dependency_get(runtime: &tokio::runtime::Runtime, calls: u64) {
    use bytes::Bytes;
    use http_body_util::Empty;
    use steadfast::dependency::{DependencyConfig, DependencyLayer};

    let client = DependencyLayer::new(DependencyConfig::new("inventory"))
        .unwrap()
        .layer(common::bare_any());
    let get = || {
        http::Request::get("http://inventory/items/7")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    runtime.block_on(common::calls_with(client, get, calls));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(Ok(calls))) =
        (args.first(), args.get(1).map(|calls| calls.parse::<u64>()))
    else {
        // `cargo bench` runs every bench with its own flags: nothing to do here.
        eprintln!("usage: instructions <{}> <calls>", PATHS.join("|"));
        return;
    };
    let runtime = current_thread();
    macro_rules! run {
        ($service:expr) => {{
            common::one_thread(&runtime, $service, calls);
        }};
    }
    match path.as_str() {
        "bare" => run!(bare()),
        "timeout" => run!(
            TimeoutLayer::new(Duration::from_secs(30))
                .unwrap()
                .layer(bare())
        ),
        "breaker" => {
            let breaker = BreakerHandle::new(BreakerConfig::new().name("guard")).unwrap();
            run!(BreakerLayer::shared(breaker).layer(bare()))
        }
        "shed" => {
            run!(ShedLayer::shared(ShedHandle::new(ShedConfig::fixed(1000)).unwrap()).layer(bare()))
        }
        "observe" => run!(ObserveLayer::new().layer(bare())),
        "stack" => {
            let breaker = BreakerHandle::new(BreakerConfig::new().name("guard")).unwrap();
            let stack = ServiceBuilder::new()
                .layer(ObserveLayer::new())
                .layer(BreakerLayer::shared(breaker))
                .layer(ShedLayer::shared(
                    ShedHandle::new(ShedConfig::fixed(1000)).unwrap(),
                ))
                .layer(TimeoutLayer::new(Duration::from_secs(30)).unwrap())
                .service(bare());
            run!(stack)
        }
        // The default policy: the same layers, Gradient2 shedding, looked up per request (with
        // an HTTP body type, which the contract check needs when its feature is on).
        "policy" => drop(common::one_thread_with(
            &runtime,
            PolicyLayer::new(Policies::default())
                .unwrap()
                .layer(common::bare_any()),
            || http::Request::new(http_body_util::Empty::<bytes::Bytes>::new()),
            calls,
        )),
        "dependency" => dependency_in_request(&runtime, true, calls),
        "dependency-unmapped" => dependency_in_request(&runtime, false, calls),
        "dependency-get" => dependency_get(&runtime, calls),
        other => {
            eprintln!("unknown hot path {other}; one of {}", PATHS.join(", "));
            std::process::exit(2);
        }
    }
}
