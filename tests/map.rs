//! The reality map: outbound calls attributed to the inbound route that made them, across
//! awaits, nested calls and spawned work handed the caller; the map's numbers, its critical
//! path and ranking, its JSON schema, and its diagrams.
//!
//! Every test uses routes and dependencies of its own: the map is one per process.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use steadfast::core::{Caller, Criticality};
use steadfast::dependency::{DependencyConfig, DependencyLayer, HedgeConfig, HedgeDelay};
use steadfast::map::{self, MapSnapshot};
use steadfast::policy::{Objective, Policies, Policy, PolicyLayer};
use steadfast::retry::{ReplayBody, RetryConfig};
use tower::{Layer, Service, ServiceExt};

type Body = ReplayBody<Empty<Bytes>>;

/// A client answering each call with the next status of `script` (then its last) after `delay`.
fn scripted(
    script: Vec<u16>,
    delay: Duration,
) -> impl Service<Request<Body>, Response = Response<()>, Error = std::io::Error, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let next = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    tower::service_fn(move |_request: Request<Body>| {
        let index = next.fetch_add(1, Ordering::SeqCst);
        let status = script[index.min(script.len() - 1)];
        async move {
            tokio::time::sleep(delay).await;
            Ok(Response::builder().status(status).body(()).unwrap())
        }
    })
}

/// A dependency client named `name` under its policy, answering 200.
fn dependency(
    config: DependencyConfig,
    script: Vec<u16>,
    delay: Duration,
) -> impl Service<
    Request<Empty<Bytes>>,
    Response = Response<()>,
    Error = steadfast::Error<std::io::Error>,
    Future: Send,
> + Clone
+ Send
+ Sync
+ 'static {
    DependencyLayer::new(config)
        .unwrap()
        .layer(scripted(script, delay))
}

fn get_request(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri).body(Empty::new()).unwrap()
}

async fn call<S>(client: &S) -> u16
where
    S: Service<Request<Empty<Bytes>>, Response = Response<()>> + Clone,
{
    match client
        .clone()
        .oneshot(get_request("http://dependency/"))
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

async fn send(app: &Router, path: &str) -> u16 {
    let request = Request::get(path).body(axum::body::Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

fn policy_layer(policies: Policies) -> PolicyLayer {
    PolicyLayer::new(policies).unwrap()
}

#[cfg_attr(
    not(feature = "axum"),
    ignore = "routes are named from Axum's `MatchedPath`: needs the `axum` feature"
)]
#[tokio::test(start_paused = true)]
async fn calls_across_awaits_nested_helpers_and_joins_belong_to_the_route() {
    let payments = dependency(
        DependencyConfig::new("t1-payments"),
        vec![200],
        Duration::from_millis(5),
    );
    let stock = dependency(
        DependencyConfig::new("t1-stock"),
        vec![200],
        Duration::from_millis(1),
    );

    async fn nested<S>(client: S)
    where
        S: Service<Request<Empty<Bytes>>, Response = Response<()>> + Clone,
    {
        // A helper calling a helper that calls the dependency, after awaits of its own.
        tokio::time::sleep(Duration::from_millis(2)).await;
        async {
            tokio::task::yield_now().await;
            call(&client).await
        }
        .await;
    }

    let app = Router::new()
        .route(
            "/t1/checkout",
            get({
                let payments = payments.clone();
                let stock = stock.clone();
                move || async move {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    call(&payments).await;
                    nested(payments.clone()).await;
                    tokio::join!(call(&stock), call(&stock));
                    "ok"
                }
            }),
        )
        .route("/t1/health", get(|| async { "ok" }))
        .layer(policy_layer(Policies::new(Policy::new())));
    for _ in 0..3 {
        assert_eq!(send(&app, "/t1/checkout").await, 200);
    }
    assert_eq!(send(&app, "/t1/health").await, 200);
    // A call outside any request belongs to the `(none)` route.
    call(&stock).await;

    let map = map::snapshot();
    let edge = map.edge("/t1/checkout", "t1-payments").unwrap();
    assert_eq!(edge.calls, 6);
    assert_eq!(edge.calls_per_request, 2.0);
    assert_eq!(edge.errors, 0);
    // 5 ms each, read to within a quarter.
    assert!(
        (5.0..=6.25).contains(&edge.latency_ms.p50),
        "{:?}",
        edge.latency_ms
    );
    assert_eq!(map.edge("/t1/checkout", "t1-stock").unwrap().calls, 6);
    assert_eq!(map.edge("(none)", "t1-stock").unwrap().calls, 1);
    assert!(map.edge("/t1/health", "t1-stock").is_none());
    assert_eq!(map.route("/t1/health").unwrap().requests, 1);
    assert_eq!(map.route("/t1/checkout").unwrap().requests, 3);
    assert!(
        Caller::current().is_none(),
        "no caller leaks out of a request"
    );
}

#[cfg_attr(
    not(feature = "axum"),
    ignore = "routes are named from Axum's `MatchedPath`: needs the `axum` feature"
)]
#[tokio::test(start_paused = true)]
async fn spawned_work_belongs_to_the_route_when_the_handler_hands_its_caller_on() {
    let audit = dependency(DependencyConfig::new("t2-audit"), vec![200], Duration::ZERO);
    let app = Router::new()
        .route(
            "/t2/order",
            get(move || {
                let audit = audit.clone();
                async move {
                    let caller = Caller::current().expect("a handler under a policy has a caller");
                    assert_eq!(caller.route(), "/t2/order");
                    let handed = tokio::spawn(caller.scope({
                        let audit = audit.clone();
                        async move { call(&audit).await }
                    }));
                    let forgotten = tokio::spawn({
                        let audit = audit.clone();
                        async move { call(&audit).await }
                    });
                    let in_a_closure =
                        caller.run(|| audit.clone().oneshot(get_request("http://a/")));
                    let _ = tokio::join!(handed, forgotten, in_a_closure);
                    "ok"
                }
            }),
        )
        .layer(policy_layer(Policies::new(Policy::new())));
    assert_eq!(send(&app, "/t2/order").await, 200);
    let map = map::snapshot();
    assert_eq!(map.edge("/t2/order", "t2-audit").unwrap().calls, 2);
    assert_eq!(map.edge("(none)", "t2-audit").unwrap().calls, 1);
}

#[cfg_attr(
    not(feature = "axum"),
    ignore = "routes are named from Axum's `MatchedPath`: needs the `axum` feature"
)]
#[tokio::test(start_paused = true)]
async fn retries_hedges_failures_and_refusals_are_counted_on_their_edge() {
    let flaky = dependency(
        DependencyConfig::new("t3-flaky").breaker(None),
        // The first call fails once and is retried; the second fails for good (502 is final).
        vec![503, 200, 502],
        Duration::ZERO,
    );
    let hedge = HedgeConfig::new().delay(HedgeDelay::Fixed(Duration::from_millis(1)));
    let slow = dependency(
        DependencyConfig::new("t3-slow").hedge(Some(hedge)),
        vec![200],
        Duration::from_millis(10),
    );
    let broken_layer = DependencyLayer::new(DependencyConfig::new("t3-broken")).unwrap();
    broken_layer.handle().breaker().unwrap().force_open();
    let broken = broken_layer.layer(scripted(vec![200], Duration::ZERO));
    let app = Router::new()
        .route(
            "/t3/page",
            get(move || {
                let (flaky, slow, broken) = (flaky.clone(), slow.clone(), broken.clone());
                async move {
                    assert_eq!(call(&flaky).await, 200);
                    assert_eq!(call(&flaky).await, 502);
                    assert_eq!(call(&slow).await, 200);
                    assert_eq!(call(&broken).await, 0);
                    "ok"
                }
            }),
        )
        .layer(policy_layer(Policies::new(Policy::new())));
    assert_eq!(send(&app, "/t3/page").await, 200);
    let map = map::snapshot();
    let flaky = map.edge("/t3/page", "t3-flaky").unwrap();
    assert_eq!((flaky.calls, flaky.retries, flaky.errors), (2, 1, 1));
    assert_eq!(flaky.error_ratio, 0.5);
    assert_eq!(flaky.refused, 0);
    let slow = map.edge("/t3/page", "t3-slow").unwrap();
    assert_eq!((slow.calls, slow.hedges, slow.retries), (1, 1, 0));
    let broken = map.edge("/t3/page", "t3-broken").unwrap();
    assert_eq!((broken.calls, broken.errors, broken.refused), (1, 1, 1));
    let dependency = map.dependency("t3-broken").unwrap();
    assert_eq!(dependency.breaker.as_deref(), Some("forced_open"));
    assert_eq!(
        map.dependency("t3-slow").unwrap().breaker.as_deref(),
        Some("closed")
    );
    assert_eq!(map.dependency("t3-flaky").unwrap().breaker, None);
}

#[tokio::test(start_paused = true)]
async fn the_critical_path_and_the_ranking_follow_the_routes_classes_and_error_budgets() {
    let reports = dependency(
        DependencyConfig::new("t4-reports"),
        vec![200],
        Duration::ZERO,
    );
    let payments = dependency(
        DependencyConfig::new("t4-payments"),
        vec![200],
        Duration::ZERO,
    );
    // Failing often, called only by a sheddable route: its burn outweighs its class.
    let recommendations = dependency(
        DependencyConfig::new("t4-recommendations").breaker(None),
        vec![500],
        Duration::ZERO,
    );
    let app = Router::new()
        .route(
            "/t4/checkout",
            get({
                let payments = payments.clone();
                move || async move {
                    call(&payments).await;
                    "ok"
                }
            }),
        )
        .route(
            "/t4/export",
            get({
                let (reports, payments, recommendations) =
                    (reports.clone(), payments.clone(), recommendations.clone());
                move || async move {
                    call(&reports).await;
                    call(&payments).await;
                    call(&recommendations).await;
                    "ok"
                }
            }),
        )
        .layer(policy_layer(
            Policies::new(Policy::new())
                .route(
                    "/t4/checkout",
                    Policy::new()
                        .criticality(Criticality::CriticalPlus)
                        .objective(Objective {
                            availability: 99.5,
                            ..Objective::default()
                        }),
                )
                .route(
                    "/t4/export",
                    Policy::new().criticality(Criticality::Sheddable),
                ),
        ));
    for _ in 0..10 {
        send(&app, "/t4/checkout").await;
        send(&app, "/t4/export").await;
    }
    let map = map::snapshot();
    let checkout = map.route("/t4/checkout").unwrap();
    assert_eq!(checkout.criticality, Criticality::CriticalPlus);
    assert_eq!(checkout.availability_objective, Some(99.5));
    assert!(checkout.critical);
    let export = map.route("/t4/export").unwrap();
    assert_eq!(export.criticality, Criticality::Sheddable);
    assert!(!export.critical);
    // Used by a critical route: critical, whoever else calls it.
    assert!(map.dependency("t4-payments").unwrap().critical);
    assert!(!map.dependency("t4-reports").unwrap().critical);
    assert!(!map.dependency("t4-recommendations").unwrap().critical);
    assert!(map.edge("/t4/checkout", "t4-payments").unwrap().critical);
    assert!(!map.edge("/t4/export", "t4-payments").unwrap().critical);
    let rank = |name: &str| map.dependency(name).unwrap().rank;
    // 10 × 8 + 10 × 1 for payments; 10 × 1 × (1 + 1000) for recommendations; 10 for reports.
    assert!(rank("t4-recommendations") < rank("t4-payments"));
    assert!(rank("t4-payments") < rank("t4-reports"));
    let ranks: Vec<usize> = map.dependencies.iter().map(|d| d.rank).collect();
    assert_eq!(ranks, (1..=ranks.len()).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn grpc_methods_are_routes() {
    let inventory = dependency(
        DependencyConfig::new("t5-inventory"),
        vec![200],
        Duration::ZERO,
    );
    let service = tower::service_fn(move |_request: Request<_>| {
        let inventory = inventory.clone();
        async move {
            call(&inventory).await;
            let response = Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "0")
                .body(String::new())
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    let service = policy_layer(Policies::new(Policy::new())).layer(service);
    let request = Request::post("/t5.Shop/Buy")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap();
    let _ = service.oneshot(request).await.unwrap();
    let map = map::snapshot();
    assert_eq!(map.edge("t5.Shop/Buy", "t5-inventory").unwrap().calls, 1);
}

/// The JSON keys, level by level, as the module docs promise them.
#[cfg_attr(
    not(feature = "axum"),
    ignore = "routes are named from Axum's `MatchedPath`: needs the `axum` feature"
)]
#[tokio::test(start_paused = true)]
async fn the_json_schema_is_stable_and_round_trips() {
    let ledger = dependency(
        DependencyConfig::new("t6-ledger"),
        vec![200],
        Duration::ZERO,
    );
    let app = Router::new()
        .route(
            "/t6/pay",
            get(move || {
                let ledger = ledger.clone();
                async move {
                    call(&ledger).await;
                    "ok"
                }
            }),
        )
        .layer(policy_layer(Policies::new(Policy::new())));
    send(&app, "/t6/pay").await;
    let map = map::snapshot();
    let json: serde_json::Value = serde_json::from_str(&map.to_json()).unwrap();
    let keys = |value: &serde_json::Value| -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    let set = |keys: &[&str]| -> BTreeSet<String> { keys.iter().map(|k| k.to_string()).collect() };
    assert_eq!(
        keys(&json),
        set(&["schema", "routes", "dependencies", "edges", "dropped_edges"])
    );
    assert_eq!(json["schema"], 1);
    assert_eq!(
        keys(&json["routes"][0]),
        set(&[
            "route",
            "criticality",
            "availability_objective",
            "requests",
            "critical"
        ])
    );
    assert_eq!(
        keys(&json["dependencies"][0]),
        set(&[
            "name",
            "declared",
            "breaker",
            "in_flight",
            "calls",
            "errors",
            "error_ratio",
            "critical",
            "impact",
            "rank"
        ])
    );
    let edge = json["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|edge| edge["route"] == "/t6/pay")
        .unwrap();
    assert_eq!(
        keys(edge),
        set(&[
            "route",
            "dependency",
            "calls",
            "calls_per_request",
            "errors",
            "refused",
            "error_ratio",
            "retries",
            "hedges",
            "latency_ms",
            "criticality",
            "availability_objective",
            "critical"
        ])
    );
    assert_eq!(keys(&edge["latency_ms"]), set(&["p50", "p90", "p99"]));
    assert_eq!(edge["criticality"], "critical");
    assert_eq!(edge["availability_objective"], 99.9);

    assert_eq!(MapSnapshot::from_json(&map.to_json()).unwrap(), map);
    let future = map.to_json().replacen("\"schema\": 1", "\"schema\": 2", 1);
    let error = MapSnapshot::from_json(&future).unwrap_err().to_string();
    assert!(error.contains("schema 2"), "{error}");
    assert!(MapSnapshot::from_json("{\"schema\": 1}").is_err());
}

#[cfg_attr(
    not(feature = "axum"),
    ignore = "routes are named from Axum's `MatchedPath`: needs the `axum` feature"
)]
#[tokio::test(start_paused = true)]
async fn diagrams_escape_every_name_and_graphviz_reads_them() {
    let odd = dependency(
        DependencyConfig::new("t7-\"quoted\" <b>|#1\\"),
        vec![200],
        Duration::ZERO,
    );
    let app = Router::new()
        .route(
            "/t7/{id}/items",
            get(move || {
                let odd = odd.clone();
                async move {
                    call(&odd).await;
                    "ok"
                }
            }),
        )
        .layer(policy_layer(Policies::new(Policy::new())));
    send(&app, "/t7/42/items").await;
    let map = map::snapshot().filter(|edge| edge.route.starts_with("/t7/"));
    assert_eq!(map.edges.len(), 1);

    let mermaid = map.to_mermaid();
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(mermaid.contains("/t7/{id}/items"), "{mermaid}");
    assert!(
        mermaid.contains("==>"),
        "a critical edge is drawn thick: {mermaid}"
    );
    for line in mermaid.lines().skip(1) {
        // Each label is one quoted string: the name's own quotes, bars and brackets are
        // entities.
        let quotes = line.matches('"').count();
        assert!(quotes == 0 || quotes == 2, "{line}");
        assert!(!line.contains("<b>"), "{line}");
    }
    assert!(mermaid.contains("#quot;quoted#quot;"), "{mermaid}");
    // For Mermaid's own parser in CI (`.ci/run` parses this file with `.ci/mermaid-parse.mjs`).
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("map-test.mmd"),
        &mermaid,
    )
    .unwrap();

    let dot = map.to_dot();
    assert!(dot.contains("\\\"quoted\\\""), "{dot}");
    graphviz_accepts(&dot);
}

/// Renders `dot` with Graphviz when it is installed (CI installs it and sets
/// `STEADFAST_REQUIRE_DOT=1`).
fn graphviz_accepts(dot: &str) {
    use std::io::Write;
    let child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            assert!(
                std::env::var_os("STEADFAST_REQUIRE_DOT").is_none(),
                "graphviz is required: {error}"
            );
            eprintln!("graphviz not installed: the DOT output is not rendered");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "dot rejected the map: {}\n{dot}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("<svg"));
}

#[tokio::test(start_paused = true)]
async fn the_handler_serves_json_mermaid_and_dot() {
    let app = Router::new().route("/steadfast/map", get(map::handler));
    for (query, content_type, start) in [
        ("", "application/json", "{"),
        ("?format=json", "application/json", "{"),
        (
            "?format=mermaid",
            "text/plain; charset=utf-8",
            "flowchart LR",
        ),
        (
            "?format=dot",
            "text/vnd.graphviz; charset=utf-8",
            "digraph steadfast",
        ),
    ] {
        let request = Request::get(format!("/steadfast/map{query}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(response.headers()["content-type"], content_type);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            std::str::from_utf8(&body).unwrap().starts_with(start),
            "{query}"
        );
    }
    let request = Request::get("/steadfast/map?format=svg")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.oneshot(request).await.unwrap().status(), 400);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_leaves_no_caller_behind() {
    let app = Router::new()
        .route(
            "/t9/boom",
            get(|| async {
                if Caller::current().is_some() {
                    panic!("boom");
                }
                "no caller"
            }),
        )
        .layer(policy_layer(Policies::new(Policy::new())));
    assert_eq!(send(&app, "/t9/boom").await, 500);
    assert!(Caller::current().is_none());
}

#[tokio::test(start_paused = true)]
async fn reloading_a_dependency_keeps_its_edges() {
    let layer = DependencyLayer::new(DependencyConfig::new("t10-cache")).unwrap();
    let client = layer.layer(scripted(vec![200], Duration::ZERO));
    call(&client).await;
    layer
        .handle()
        .reload(DependencyConfig::new("t10-cache").retry(Some(RetryConfig::new().max_retries(1))))
        .unwrap();
    call(&client).await;
    let map = map::snapshot();
    assert_eq!(map.edge("(none)", "t10-cache").unwrap().calls, 2);
    assert!(map.dependency("t10-cache").unwrap().declared);
}

/// Strict mode for dependencies: a name the policy file does not declare gets the default
/// policy, reported or refused, and the map lists it for CI.
#[cfg(feature = "config")]
#[tokio::test(start_paused = true)]
async fn undeclared_dependencies_are_reported_or_refused_and_listed() {
    use steadfast::core::{RejectionKind, Strict};
    use steadfast::policy::PolicyFile;

    let file = PolicyFile::parse(
        r#"
        [dependencies.t11-declared]
        retry.enabled = false
        "#,
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counting = {
        let calls = calls.clone();
        tower::service_fn(move |_request: Request<Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::io::Error>(Response::new(())) }
        })
    };
    let declared = file
        .dependency_layer_or_default("t11-declared", Strict::Refuse)
        .unwrap();
    assert!(declared.handle().config().is_declared());
    assert_eq!(call(&declared.layer(counting.clone())).await, 200);

    let reported = file
        .dependency_layer_or_default("t11-ghost", Strict::Report)
        .unwrap();
    assert!(!reported.handle().config().is_declared());
    assert_eq!(call(&reported.layer(counting.clone())).await, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let refused = file
        .dependency_layer_or_default("t11-phantom", Strict::Refuse)
        .unwrap()
        .layer(counting.clone());
    let Err(steadfast::Error::Rejected(rejection)) =
        refused.oneshot(get_request("http://phantom/")).await
    else {
        panic!("strict mode refuses a call to an undeclared dependency");
    };
    assert_eq!(rejection.kind(), RejectionKind::Misconfigured);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the refused call was not sent"
    );

    // Made but never called: not listed.
    let _quiet = file
        .dependency_layer_or_default("t11-quiet", Strict::Report)
        .unwrap();
    let undeclared = map::undeclared();
    assert!(
        undeclared.contains(&"t11-ghost".to_owned()),
        "{undeclared:?}"
    );
    assert!(
        undeclared.contains(&"t11-phantom".to_owned()),
        "{undeclared:?}"
    );
    assert!(
        !undeclared
            .iter()
            .any(|name| name == "t11-declared" || name == "t11-quiet")
    );
    let map = map::snapshot();
    assert!(!map.dependency("t11-ghost").unwrap().declared);
    assert!(map.to_mermaid().contains("UNDECLARED"));
}

#[tokio::test(start_paused = true)]
async fn a_dependency_can_stay_off_the_map() {
    let quiet = dependency(
        DependencyConfig::new("t12-off-map").reality_map(false),
        vec![200],
        Duration::ZERO,
    );
    call(&quiet).await;
    assert!(map::snapshot().dependency("t12-off-map").is_none());
}

/// The map's edges reach Prometheus as `steadfast.dependency.calls{route, dependency, outcome}`,
/// for the dashboard's table of edges.
#[cfg_attr(
    not(feature = "axum"),
    ignore = "routes are named from Axum's `MatchedPath`: needs the `axum` feature"
)]
#[test]
fn edges_are_counted_as_metrics_by_route_dependency_and_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let shipping = dependency(
                DependencyConfig::new("t13-shipping")
                    .breaker(None)
                    .retry(None),
                vec![200, 500, 200],
                Duration::ZERO,
            );
            let app = Router::new()
                .route(
                    "/t13/ship",
                    get(move || {
                        let shipping = shipping.clone();
                        async move {
                            call(&shipping).await;
                            "ok"
                        }
                    }),
                )
                .layer(policy_layer(Policies::new(Policy::new())));
            for _ in 0..3 {
                send(&app, "/t13/ship").await;
            }
        });
    });
    let mut counts = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != "steadfast.dependency.calls" {
            continue;
        }
        let labels: std::collections::BTreeMap<_, _> = key
            .key()
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect();
        assert_eq!(labels["route"], "/t13/ship");
        assert_eq!(labels["dependency"], "t13-shipping");
        if let DebugValue::Counter(count) = value {
            counts.insert(labels["outcome"].clone(), count);
        }
    }
    assert_eq!(counts.get("ok"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("failed"), Some(&1), "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn calls_outside_requests_put_nothing_on_the_critical_path() {
    let cron = dependency(
        DependencyConfig::new("t14-nightly-export"),
        vec![200],
        Duration::ZERO,
    );
    call(&cron).await;
    let map = map::snapshot();
    assert!(!map.dependency("t14-nightly-export").unwrap().critical);
    assert!(!map.edge("(none)", "t14-nightly-export").unwrap().critical);
    assert!(!map.route("(none)").unwrap().critical);
}
