//! A small shop on Axum with steadfast's policies, from `examples/service/policies.toml`.
//!
//! It starts two services on 127.0.0.1: the shop, whose routes each get their policy from the
//! file (timeouts, breakers, load shedding, contract checks against
//! `examples/service/openapi.yaml`, instrumentation), and an inventory service the shop calls
//! under the file's dependency policy (deadline propagation, circuit breaker, retries under a
//! budget); search calls a recommendations dependency, in process. Then it drives them through
//! a short script that shows each protection acting, prints what happened, checks it, prints
//! the reality map of what the shop really called (Mermaid), and exits. `/metrics` serves the
//! Prometheus exposition, `/steadfast/map` the map.
//!
//! ```sh
//! cargo run --example axum_service --all-features            # the script, then exit
//! cargo run --example axum_service --all-features -- --serve # then keep serving on :3000
//! ```

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use steadfast::breaker::State as BreakerState;
use steadfast::core::Deadline;
use steadfast::policy::PolicyFile;
use steadfast::retry::ReplayBody;
use steadfast::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

const POLICIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/service/policies.toml"
);

/// What the inventory service does: answer, answer slowly, or fail.
#[derive(Clone, Default)]
struct Inventory(Arc<AtomicU8>);

const HEALTHY: u8 = 0;
const SLOW: u8 = 1;
const FAILING: u8 = 2;

impl Inventory {
    fn set(&self, mode: u8) {
        self.0.store(mode, Ordering::SeqCst);
    }
}

async fn stock(State(inventory): State<Inventory>) -> Response {
    match inventory.0.load(Ordering::SeqCst) {
        SLOW => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "in stock".into_response()
        }
        FAILING => (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response(),
        _ => "in stock".into_response(),
    }
}

/// hyper's client under the inventory's dependency policy: the dependency's own response, or
/// a typed error (`steadfast::Error::Rejected` for a call the policy did not send or gave up).
type InventoryClient = BoxCloneSyncService<
    Request<Empty<Bytes>>,
    http::Response<hyper::body::Incoming>,
    steadfast::Error<hyper_util::client::legacy::Error>,
>;

/// An in-process recommendations client under its dependency policy.
type RecommendationsClient = BoxCloneSyncService<
    Request<Empty<Bytes>>,
    http::Response<String>,
    steadfast::Error<std::convert::Infallible>,
>;

#[derive(Clone)]
struct Shop {
    inventory: InventoryClient,
    inventory_url: String,
    recommendations: RecommendationsClient,
}

/// Checks stock with the inventory service, within what is left of this request's deadline.
async fn checkout(State(shop): State<Shop>, deadline: Option<Deadline>) -> Response {
    let mut request = Request::get(format!("{}/stock", shop.inventory_url))
        .body(Empty::new())
        .expect("a valid request");
    if let Some(deadline) = deadline {
        request.extensions_mut().insert(deadline);
    }
    match shop.inventory.oneshot(request).await {
        Ok(response) if response.status().is_success() => "ordered".into_response(),
        Ok(_) => (StatusCode::BAD_GATEWAY, "inventory failed").into_response(),
        // The policy did not send the call, or gave up on it: its breaker is open, or the
        // deadline ran out on the way. Nothing forged: the error says which.
        Err(steadfast::Error::Rejected(rejection)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("inventory unavailable ({})", rejection.kind()),
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_GATEWAY, "inventory unreachable").into_response(),
    }
}

async fn search(State(shop): State<Shop>) -> &'static str {
    let request = Request::get("http://recommendations/for-you")
        .body(Empty::new())
        .expect("a valid request");
    // Best effort: search answers without recommendations.
    let _ = shop.recommendations.oneshot(request).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    "results"
}

async fn create_order(Json(order): Json<Value>) -> (StatusCode, Json<Value>) {
    let mut order = order;
    order["id"] = json!(1);
    (StatusCode::CREATED, Json(order))
}

async fn serve(app: Router, port: u16) -> Result<std::net::SocketAddr, Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// A plain HTTP client for the script, with no protection of its own.
struct Caller {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

struct Answer {
    status: StatusCode,
    took: Duration,
    body: String,
}

impl Caller {
    async fn call(&self, method: &str, path: &str, body: Option<(&str, &str)>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let payload = match body {
            Some((content_type, body)) => {
                request = request.header("content-type", content_type);
                Bytes::from(body.to_owned())
            }
            None => Bytes::new(),
        };
        let started = Instant::now();
        let response = self
            .client
            .request(request.body(Full::new(payload)).expect("a valid request"))
            .await
            .expect("the shop answers");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        Answer {
            status,
            took: started.elapsed(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn show(&self, method: &str, path: &str, body: Option<(&str, &str)>) -> Answer {
        let answer = self.call(method, path, body).await;
        // A problem+json body is shown by its title and first violation.
        let mut text = match serde_json::from_str::<Value>(&answer.body) {
            Ok(problem) if problem.get("title").is_some() => {
                let violation = &problem["violations"][0];
                match violation.get("pointer") {
                    Some(pointer) => format!(
                        "{} ({} {} ...)",
                        problem["title"].as_str().unwrap_or_default(),
                        pointer.as_str().unwrap_or_default(),
                        violation["keyword"].as_str().unwrap_or_default()
                    ),
                    None => problem["title"].as_str().unwrap_or_default().to_owned(),
                }
            }
            _ => answer.body.replace('\n', " "),
        };
        if text.len() > 90 {
            text.truncate(90);
            text.push('…');
        }
        println!(
            "  {method:<4} {path:<12} {:>3} {:>7.1} ms  {text}",
            answer.status.as_u16(),
            answer.took.as_secs_f64() * 1e3
        );
        answer
    }

    /// `n` requests at once; how many got each status.
    async fn burst(self: &Arc<Self>, n: usize, path: &'static str) -> Vec<StatusCode> {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let caller = self.clone();
                tokio::spawn(async move { caller.call("GET", path, None).await.status })
            })
            .collect();
        let mut statuses = Vec::new();
        for call in calls {
            statuses.push(call.await.expect("the call finishes"));
        }
        statuses
    }
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

fn check(condition: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if condition {
        println!("  ✓ {what}");
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let keep_serving = std::env::args().any(|arg| arg == "--serve");
    // Every series carries the shop's version, for the release alerts.
    let builder = steadfast::observe::prometheus::with_service_version(
        PrometheusBuilder::new(),
        env!("CARGO_PKG_VERSION"),
    );
    let prometheus: PrometheusHandle =
        steadfast::observe::prometheus::recommended(builder)?.install_recorder()?;

    // The inventory service: its own timeout reads the deadline the shop propagates.
    let inventory = Inventory::default();
    let inventory_app = Router::new()
        .route("/stock", get(stock))
        .with_state(inventory.clone())
        .layer(TimeoutLayer::new(Duration::from_secs(5)).expect("a valid budget"));
    let inventory_addr = serve(inventory_app, 0).await?;

    // The shop's clients, each under its dependency policy from the file: hyper for the
    // inventory, and an in-process recommendations service.
    let policies = PolicyFile::load(POLICIES)?;
    let inventory_policy = policies.dependency_layer("inventory")?;
    let inventory_client = inventory_policy
        .layer(Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Empty<Bytes>>>());
    let recommendations_client =
        policies
            .dependency_layer("recommendations")?
            .layer(tower::service_fn(
                |_request: Request<ReplayBody<Empty<Bytes>>>| async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new("for you".to_owned()))
                },
            ));

    // The shop: every route under its policy from the file.
    let layer = policies.into_layer()?;
    let reload = layer.handle();
    let shop = Router::new()
        .route("/checkout", post(checkout))
        .route("/search", get(search))
        .route("/orders", post(create_order))
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        )
        .route("/steadfast/map", get(steadfast::map::handler))
        .with_state(Shop {
            inventory: BoxCloneSyncService::new(inventory_client),
            inventory_url: format!("http://{inventory_addr}"),
            recommendations: BoxCloneSyncService::new(recommendations_client),
        })
        .layer(layer);
    let port = if keep_serving { 3000 } else { 0 };
    let addr = serve(shop, port).await?;
    println!(
        "shop on http://{addr}, inventory on http://{inventory_addr}, policies from {POLICIES}"
    );

    let caller = Arc::new(Caller {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{addr}"),
    });

    println!("\n1. Normal traffic");
    check(
        caller.show("POST", "/checkout", None).await.status == StatusCode::OK,
        "checkout works",
    )?;
    check(
        caller.show("GET", "/search", None).await.status == StatusCode::OK,
        "search works",
    )?;
    let order = caller
        .show(
            "POST",
            "/orders",
            Some(("application/json", r#"{"sku":"ABC-123","quantity":2}"#)),
        )
        .await;
    check(
        order.status == StatusCode::CREATED,
        "a valid order is created",
    )?;

    println!("\n2. The inventory slows down: checkout's 300 ms budget, propagated to the call");
    inventory.set(SLOW);
    for _ in 0..2 {
        let answer = caller.show("POST", "/checkout", None).await;
        // Whichever gives up first at the deadline answers: the call to the inventory (503
        // from the handler) or the shop's own timeout (504). Either way, at 300 ms.
        check(
            answer.status.is_server_error() && answer.took < Duration::from_millis(900),
            "an answer at the budget, not after the inventory's full second",
        )?;
    }

    println!("\n3. The inventory fails: the client-side breaker opens and fails fast");
    inventory.set(FAILING);
    for _ in 0..8 {
        caller.show("POST", "/checkout", None).await;
    }
    let inventory_breaker = inventory_policy
        .handle()
        .breaker()
        .expect("the inventory policy has a breaker");
    check(
        inventory_breaker.state() == BreakerState::Open,
        "the inventory breaker is open",
    )?;
    let fast = caller.show("POST", "/checkout", None).await;
    check(
        fast.status == StatusCode::SERVICE_UNAVAILABLE && fast.body.contains("circuit_open"),
        "checkout answers at once without calling the inventory",
    )?;

    println!("\n   ...it recovers; after the open interval, probes close the breaker");
    inventory.set(HEALTHY);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        caller.show("POST", "/checkout", None).await;
    }
    check(
        inventory_breaker.state() == BreakerState::Closed,
        "the inventory breaker is closed again",
    )?;

    println!("\n4. Overload: 16 searches at once against a limit of 4 (sheddable traffic)");
    let statuses = caller.burst(16, "/search").await;
    println!(
        "  {} answered, {} shed with 503 + Retry-After",
        count(&statuses, StatusCode::OK),
        count(&statuses, StatusCode::SERVICE_UNAVAILABLE)
    );
    check(
        count(&statuses, StatusCode::SERVICE_UNAVAILABLE) > 0
            && count(&statuses, StatusCode::OK) >= 4,
        "the excess is shed at once, the rest served",
    )?;

    println!("\n5. Contract: requests checked against examples/service/openapi.yaml");
    let bad = caller
        .show(
            "POST",
            "/orders",
            Some(("application/json", r#"{"sku":"abc","quantity":0,"note":1}"#)),
        )
        .await;
    check(
        bad.status == StatusCode::UNPROCESSABLE_ENTITY,
        "an invalid order is 422 with its violations",
    )?;
    let wrong_type = caller
        .show("POST", "/orders", Some(("text/plain", "2 of ABC-123")))
        .await;
    check(
        wrong_type.status == StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "the wrong media type is 415",
    )?;

    println!("\n6. Hot reload: the search limit raised from 4 to 8, no restart");
    let text = std::fs::read_to_string(POLICIES)?.replace("shed.limit = 4", "shed.limit = 8");
    let dir = std::env::temp_dir().join(format!("steadfast-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("policies.toml"), text)?;
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/service/openapi.yaml"),
        dir.join("openapi.yaml"),
    )?;
    reload.reload_file(PolicyFile::load(dir.join("policies.toml"))?)?;
    let _ = std::fs::remove_dir_all(&dir);
    let statuses = caller.burst(16, "/search").await;
    println!(
        "  {} answered, {} shed",
        count(&statuses, StatusCode::OK),
        count(&statuses, StatusCode::SERVICE_UNAVAILABLE)
    );
    check(
        count(&statuses, StatusCode::OK) >= 8,
        "at least 8 searches served at once now",
    )?;

    println!("\n7. What Prometheus sees (/metrics, steadfast's rejections)");
    let metrics = caller.call("GET", "/metrics", None).await.body;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("steadfast_rejections_total"))
    {
        println!("  {line}");
    }
    check(
        metrics.contains("http_server_request_duration_seconds_bucket"),
        "request durations are exported",
    )?;
    check(
        metrics.contains(r#"layer="shed",reason="overloaded",route="/search",method="GET"}"#),
        "the method-specific search policy sheds on the route /search (its requests' label) and the method GET",
    )?;
    check(
        metrics.contains(&format!(
            "service_version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "every series carries the service version",
    )?;

    println!("\n8. The reality map: what the shop really called, from live traffic");
    let map = steadfast::map::snapshot().filter(|edge| edge.route != "(none)");
    println!("```mermaid\n{}```", map.to_mermaid());
    let inventory_entry = map
        .dependency("inventory")
        .ok_or("inventory is on the map")?;
    let checkout = map
        .edge("/checkout", "inventory")
        .ok_or("checkout calls the inventory")?;
    println!(
        "  /checkout → inventory: {} calls, {:.1} per request, {:.0}% failed or refused, p99 {:.0} ms",
        checkout.calls,
        checkout.calls_per_request,
        checkout.error_ratio * 100.0,
        checkout.latency_ms.p99
    );
    check(
        inventory_entry.critical && inventory_entry.rank == 1,
        "the flaky inventory is on the critical path, ranked first by impact",
    )?;
    check(
        map.dependency("recommendations")
            .is_some_and(|dependency| !dependency.critical),
        "recommendations, called only by sheddable search, is off the critical path",
    )?;
    let served = caller.call("GET", "/steadfast/map?format=dot", None).await;
    check(
        served.body.starts_with("digraph steadfast"),
        "/steadfast/map serves it (JSON, Mermaid or DOT)",
    )?;

    if keep_serving {
        println!("\nserving on http://{addr} (Ctrl-C to stop)");
        tokio::signal::ctrl_c().await?;
    }
    println!("\nall protections acted as expected");
    Ok(())
}
