//! The overload and dependency-failure experiments: steadfast against no protection and
//! against tower's static limit, on a real Axum server over loopback, under an open-loop load.
//!
//! **Overload.** The handler needs one of 20 connections of a simulated pool for 50 ms, so the
//! service's capacity is 400 requests per second. An open-loop generator sends at a constant
//! rate (0.5x, 1x, 2x and 4x capacity) and measures each latency from the *intended* send time,
//! so queueing cannot hide (no coordinated omission), into HDR histograms. Scenarios: no
//! protection; tower's `ConcurrencyLimit` + `LoadShed` with a well-chosen limit (20) and a badly
//! chosen one (200); steadfast's default policy; steadfast with a fifth of the traffic critical and
//! the rest sheddable. Goodput counts successes within the route's latency objective (250 ms).
//!
//! **Dependency failure.** At 200 requests per second, a route calls a dependency that is
//! healthy, then slow (2 s), then failing, then healthy again, with and without steadfast's
//! client-side breaker and deadline (300 ms). It reports when the breaker opened, how fast the
//! fast failures were, how many calls were wasted on the broken dependency, and how long the
//! route took to recover.
//!
//! Writes a table to stdout and a chart to `target/overload.svg`.
//!
//! ```sh
//! cargo run --release --example overload --all-features            # about 90 s
//! cargo run --release --example overload --all-features -- --short # CI: about 30 s
//! cargo run --release --example overload --all-features -- --seconds 10   # longer cells
//! # --experiment overload|failure|all (default all), --only <scenario name part>
//! ```

use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use steadfast::breaker::{
    BreakerConfig, BreakerEvent, BreakerHandle, CircuitBreakerLayer, SlidingWindow,
};
use steadfast::core::Deadline;
use steadfast::policy::{Policies, Policy, PolicyLayer};
use steadfast::shed::{Criticality, ShedConfig};
use steadfast::timeout::PropagateDeadlineLayer;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

const POOL: usize = 20;
const SERVICE_TIME: Duration = Duration::from_millis(50);
const CAPACITY: f64 = POOL as f64 / 0.050;
const OBJECTIVE: Duration = Duration::from_millis(250);
/// A request still unanswered this long after its intended send time is given up.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
const CRITICALITY_HEADER: &str = "x-criticality";

/// The simulated resource: a pool of connections, each call holding one for 50 ms. Waiters
/// queue without bound, as they do on a real pool.
async fn work(State(pool): State<Arc<Semaphore>>) -> &'static str {
    let _connection = pool.acquire().await.expect("the pool is never closed");
    tokio::time::sleep(SERVICE_TIME).await;
    "done"
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scenario {
    Unprotected,
    TowerLimitGood,
    TowerLimitBad,
    Steadfast,
    SteadfastMixed,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::Unprotected,
        Scenario::TowerLimitGood,
        Scenario::TowerLimitBad,
        Scenario::Steadfast,
        Scenario::SteadfastMixed,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Unprotected => "no protection",
            Scenario::TowerLimitGood => "tower limit 20 + load shed",
            Scenario::TowerLimitBad => "tower limit 200 + load shed",
            Scenario::Steadfast => "steadfast default policy",
            Scenario::SteadfastMixed => "steadfast, 80% sheddable",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Scenario::Unprotected => "#d62728",
            Scenario::TowerLimitGood => "#7f7f7f",
            Scenario::TowerLimitBad => "#ff7f0e",
            Scenario::Steadfast => "#1f77b4",
            Scenario::SteadfastMixed => "#2ca02c",
        }
    }

    fn app(self) -> Router {
        let pool = Arc::new(Semaphore::new(POOL));
        let router = Router::new().route("/work", get(work)).with_state(pool);
        let tower_limit = |limit: usize| {
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    StatusCode::SERVICE_UNAVAILABLE
                }))
                .load_shed()
                .concurrency_limit(limit)
        };
        match self {
            Scenario::Unprotected => router,
            Scenario::TowerLimitGood => router.route_layer(tower_limit(POOL)),
            Scenario::TowerLimitBad => router.route_layer(tower_limit(10 * POOL)),
            Scenario::Steadfast => {
                router.layer(PolicyLayer::new(Policies::default()).expect("defaults"))
            }
            Scenario::SteadfastMixed => {
                // Critical traffic may always hold up to 80% of the limit, whatever the
                // sheddable traffic holds; sheddable traffic borrows what it leaves idle.
                let shed = ShedConfig::new()
                    .criticality_header(
                        http::HeaderName::from_static(CRITICALITY_HEADER),
                        Criticality::Critical,
                    )
                    .guaranteed_share(Criticality::Critical, 0.8)
                    .admit_below(Criticality::Sheddable, 0.6);
                let policies = Policies::new(Policy::new().shed(shed));
                router.layer(PolicyLayer::new(policies).expect("valid"))
            }
        }
    }
}

async fn serve(app: Router) -> Result<std::net::SocketAddr, Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// What one open-loop run measured.
struct Run {
    offered: f64,
    seconds: f64,
    /// Latencies of successes, in µs from the intended send time.
    success: Histogram<u64>,
    within_objective: u64,
    rejected: u64,
    rejection_latency: Histogram<u64>,
    failed: u64,
    /// Successes and sends of critical requests (mixed scenario).
    critical: (u64, u64),
    sheddable: (u64, u64),
}

impl Run {
    fn goodput(&self) -> f64 {
        self.within_objective as f64 / self.seconds
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// The status of one request, once its body is read; `None` if it failed or took longer than
/// [`CLIENT_TIMEOUT`].
async fn send(client: &HttpClient, request: Request<Empty<Bytes>>) -> Option<StatusCode> {
    let call = async {
        let response = client.request(request).await.ok()?;
        let status = response.status();
        response.into_body().collect().await.ok()?;
        Some(status)
    };
    tokio::time::timeout(CLIENT_TIMEOUT, call)
        .await
        .ok()
        .flatten()
}

/// Sends `rate` requests per second for `seconds` at fixed intended times, each on its own
/// task, and waits for every answer (bounded by [`CLIENT_TIMEOUT`]).
async fn open_loop(client: &HttpClient, url: &str, rate: f64, seconds: f64, mixed: bool) -> Run {
    let total = (rate * seconds).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + interval.mul_f64(i as f64);
        let client = client.clone();
        let url = url.to_owned();
        // Mixed traffic: one request in five is critical (0.8x capacity at 4x load).
        let sheddable = mixed && i % 5 != 0;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(intended).await;
            let mut request = Request::get(url);
            if mixed {
                let class = if sheddable { "sheddable" } else { "critical" };
                request = request.header(CRITICALITY_HEADER, class);
            }
            let request = request.body(Empty::new()).expect("a valid request");
            let answer = send(&client, request).await;
            (answer, intended.elapsed(), sheddable)
        }));
    }
    let mut run = Run {
        offered: rate,
        seconds,
        success: histogram(),
        within_objective: 0,
        rejected: 0,
        rejection_latency: histogram(),
        failed: 0,
        critical: (0, 0),
        sheddable: (0, 0),
    };
    for task in tasks {
        let (answer, latency, sheddable) = task.await.expect("the request task finishes");
        let micros = latency.as_micros().clamp(1, 60_000_000) as u64;
        let class = if sheddable {
            &mut run.sheddable
        } else {
            &mut run.critical
        };
        class.1 += 1;
        match answer {
            Some(status) if status.is_success() => {
                class.0 += 1;
                run.success.record(micros).expect("within bounds");
                if latency <= OBJECTIVE {
                    run.within_objective += 1;
                }
            }
            Some(StatusCode::SERVICE_UNAVAILABLE) => {
                run.rejected += 1;
                run.rejection_latency.record(micros).expect("within bounds");
            }
            _ => run.failed += 1,
        }
    }
    run
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> String {
    if histogram.is_empty() {
        return "-".into();
    }
    format!(
        "{:.1}",
        histogram.value_at_quantile(quantile) as f64 / 1000.0
    )
}

/// The chart: goodput against offered load, one line per scenario.
fn svg(results: &[(Scenario, Vec<Run>)]) -> String {
    let (width, height, left, bottom, top, right) = (720.0, 420.0, 70.0, 50.0, 30.0, 230.0);
    let x_max = CAPACITY * 4.0;
    let y_max = CAPACITY * 1.2;
    let x = |v: f64| left + v / x_max * (width - left - right);
    let y = |v: f64| height - bottom - v / y_max * (height - bottom - top);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        out,
        r#"<text x="{left}" y="18" font-size="14">Goodput (successes within {} ms per second) against offered load</text>"#,
        OBJECTIVE.as_millis()
    );
    for i in 0..=4 {
        let value = CAPACITY * f64::from(i);
        let _ = write!(
            out,
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#ddd"/><text x="{0}" y="{3}" text-anchor="middle">{4:.0}</text>"##,
            x(value),
            y(0.0),
            y(y_max),
            height - bottom + 16.0,
            value
        );
    }
    for i in 0..=6 {
        let value = y_max * f64::from(i) / 6.0;
        let _ = write!(
            out,
            r##"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="#ddd"/><text x="{3}" y="{4}" text-anchor="end">{5:.0}</text>"##,
            x(0.0),
            y(value),
            x(x_max),
            left - 6.0,
            y(value) + 4.0,
            value
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="black" stroke-dasharray="4 3"/><text x="{2}" y="{3}" text-anchor="end">capacity</text>"#,
        x(0.0),
        y(CAPACITY),
        x(x_max),
        y(CAPACITY) - 4.0
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">offered load (requests per second)</text>"#,
        x(x_max / 2.0),
        height - 12.0
    );
    for (index, (scenario, runs)) in results.iter().enumerate() {
        let points: Vec<String> = runs
            .iter()
            .map(|run| format!("{:.1},{:.1}", x(run.offered), y(run.goodput())))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            scenario.color(),
            points.join(" ")
        );
        let legend_y = top + 20.0 + 20.0 * index as f64;
        let _ = write!(
            out,
            r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{3}" stroke-width="3"/><text x="{4}" y="{5}">{6}</text>"#,
            width - right + 15.0,
            legend_y,
            width - right + 40.0,
            scenario.color(),
            width - right + 46.0,
            legend_y + 4.0,
            scenario.name()
        );
    }
    out.push_str("</svg>\n");
    out
}

async fn overload(
    seconds: f64,
    only: Option<&str>,
) -> Result<Vec<(Scenario, Vec<Run>)>, Box<dyn Error>> {
    println!(
        "Overload: pool of {POOL} x {} ms = capacity {CAPACITY:.0} req/s, objective {} ms, {seconds} s per cell\n",
        SERVICE_TIME.as_millis(),
        OBJECTIVE.as_millis()
    );
    println!(
        "{:<28} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "scenario",
        "load",
        "offered",
        "good%",
        "goodput",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "rejected",
        "rej p99"
    );
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(2048)
        .build_http();
    let mut results = Vec::new();
    let chosen = Scenario::ALL
        .into_iter()
        .filter(|scenario| only.is_none_or(|only| scenario.name().contains(only)));
    for scenario in chosen {
        let addr = serve(scenario.app()).await?;
        let url = format!("http://{addr}/work");
        // Warm up connections and, for steadfast, the adaptive limit's first windows.
        open_loop(&client, &url, CAPACITY * 0.5, 0.5, false).await;
        let mut runs = Vec::new();
        for factor in [0.5, 1.0, 2.0, 4.0] {
            let mixed = scenario == Scenario::SteadfastMixed;
            let run = open_loop(&client, &url, CAPACITY * factor, seconds, mixed).await;
            println!(
                "{:<28} {:>5.1}x {:>8.0} {:>5.0}% {:>8.0} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
                scenario.name(),
                factor,
                run.offered,
                100.0 * run.goodput() / CAPACITY,
                run.goodput(),
                ms(&run.success, 0.5),
                ms(&run.success, 0.99),
                ms(&run.success, 0.999),
                run.rejected,
                ms(&run.rejection_latency, 0.99),
                run.failed,
            );
            if mixed {
                let share = |(ok, sent): (u64, u64)| 100.0 * ok as f64 / sent.max(1) as f64;
                println!(
                    "{:<28} critical {:.1}% served, sheddable {:.1}% served",
                    "",
                    share(run.critical),
                    share(run.sheddable)
                );
            }
            runs.push(run);
        }
        results.push((scenario, runs));
    }
    Ok(results)
}

// ------------------------------------------------------------------ dependency failure

const HEALTHY: u8 = 0;
const SLOW: u8 = 1;
const FAILING: u8 = 2;

#[derive(Clone, Default)]
struct Dependency {
    mode: Arc<AtomicU8>,
    calls_while_broken: Arc<AtomicU64>,
}

async fn dependency(State(dep): State<Dependency>) -> impl IntoResponse {
    match dep.mode.load(Ordering::SeqCst) {
        SLOW => {
            dep.calls_while_broken.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(2)).await;
            StatusCode::OK
        }
        FAILING => {
            dep.calls_while_broken.fetch_add(1, Ordering::SeqCst);
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::OK,
    }
}

type DependencyClient =
    BoxCloneSyncService<Request<Empty<Bytes>>, StatusCode, hyper_util::client::legacy::Error>;

#[derive(Clone)]
struct Caller {
    client: DependencyClient,
    url: String,
}

async fn call_dependency(State(caller): State<Caller>, deadline: Option<Deadline>) -> StatusCode {
    let mut request = Request::get(&caller.url)
        .body(Empty::new())
        .expect("a valid request");
    if let Some(deadline) = deadline {
        request.extensions_mut().insert(deadline);
    }
    match caller.client.oneshot(request).await {
        Ok(status) if status.is_success() => StatusCode::OK,
        Ok(StatusCode::SERVICE_UNAVAILABLE) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

struct Phases {
    healthy: Duration,
    slow: Duration,
    failing: Duration,
    recovered: Duration,
}

async fn failure_run(protected: bool, phases: &Phases) -> Result<(), Box<dyn Error>> {
    let dep = Dependency::default();
    let dep_addr = serve(
        Router::new()
            .route("/", get(dependency))
            .with_state(dep.clone()),
    )
    .await?;
    let hyper: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build_http();
    let breaker = BreakerHandle::new(
        BreakerConfig::new()
            .name("dependency")
            .sliding_window(SlidingWindow::count(50))
            .minimum_calls(20)
            .open_duration(Duration::from_secs(1))
            .half_open_permits(5),
    )?;
    let mut events = breaker.subscribe();
    let client: DependencyClient = if protected {
        let stack = ServiceBuilder::new()
            .layer(CircuitBreakerLayer::shared(breaker.clone()))
            .layer(PropagateDeadlineLayer::new())
            .service(hyper);
        BoxCloneSyncService::new(stack.map_response(|response| response.status()))
    } else {
        BoxCloneSyncService::new(hyper.map_response(|response| response.status()))
    };
    let app = Router::new()
        .route("/order", get(call_dependency))
        .with_state(Caller {
            client,
            url: format!("http://{dep_addr}/"),
        });
    let app = if protected {
        let policies = Policies::new(
            Policy::new()
                .timeout(Duration::from_millis(300))
                .no_breaker(),
        );
        app.layer(PolicyLayer::new(policies)?)
    } else {
        app
    };
    let addr = serve(app).await?;
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build_http();
    let url = format!("http://{addr}/order");

    // Drive the phases while a 200 req/s load runs, sampling each second's outcomes.
    let total = phases.healthy + phases.slow + phases.failing + phases.recovered;
    let started = Instant::now();
    let schedule = {
        let dep = dep.clone();
        let (healthy, slow, failing) = (phases.healthy, phases.slow, phases.failing);
        tokio::spawn(async move {
            tokio::time::sleep_until(started + healthy).await;
            dep.mode.store(SLOW, Ordering::SeqCst);
            tokio::time::sleep_until(started + healthy + slow).await;
            dep.mode.store(FAILING, Ordering::SeqCst);
            tokio::time::sleep_until(started + healthy + slow + failing).await;
            dep.mode.store(HEALTHY, Ordering::SeqCst);
        })
    };
    let rate = 200.0;
    let count = (rate * total.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = Vec::with_capacity(count as usize);
    for i in 0..count {
        let intended = started + interval.mul_f64(i as f64);
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(intended).await;
            // The timer may wake this task up to a millisecond late: latency from the intended
            // time includes that, latency from the actual send does not.
            let sent = Instant::now();
            let request = Request::get(url)
                .body(Empty::new())
                .expect("a valid request");
            let status = send(&client, request).await;
            (
                intended - started,
                status,
                intended.elapsed(),
                sent.elapsed(),
            )
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await?);
    }
    schedule.await?;

    let degraded_at = phases.healthy;
    let recovered_at = phases.healthy + phases.slow + phases.failing;
    let mut opened = None;
    let mut closed_again = None;
    while let Ok(event) = events.try_recv() {
        let BreakerEvent { transition, at, .. } = event;
        let at = at.duration_since(started);
        if transition.to == steadfast::breaker::State::Open && opened.is_none() {
            opened = Some(at);
        }
        if transition.to == steadfast::breaker::State::Closed && at > recovered_at {
            closed_again.get_or_insert(at);
        }
    }
    let micros = |latency: &Duration| latency.as_micros().clamp(1, 60_000_000) as u64;
    let mut fast = histogram();
    let mut fast_from_send = histogram();
    let mut during = histogram();
    for (sent, status, latency, from_send) in &outcomes {
        if *sent >= degraded_at && *sent < recovered_at {
            during.record(micros(latency))?;
            if *status == Some(StatusCode::SERVICE_UNAVAILABLE) {
                fast.record(micros(latency))?;
                fast_from_send.record(micros(from_send))?;
            }
        }
    }
    // Recovery: from the dependency's return until every later request succeeds.
    let recovered_by = outcomes
        .iter()
        .filter(|(sent, status, ..)| *sent >= recovered_at && *status != Some(StatusCode::OK))
        .map(|(sent, ..)| *sent - recovered_at)
        .max()
        .unwrap_or_default();
    let label = if protected {
        "with breaker + deadline"
    } else {
        "unprotected"
    };
    println!("\n{label}:");
    println!(
        "  requests during the incident: {}, p50 {} ms, p99 {} ms",
        during.len(),
        ms(&during, 0.5),
        ms(&during, 0.99)
    );
    println!(
        "  calls that reached the broken dependency: {}",
        dep.calls_while_broken.load(Ordering::SeqCst)
    );
    if protected {
        match opened {
            Some(at) if at >= degraded_at => {
                let failing_at = degraded_at + phases.slow;
                let when = if at < failing_at {
                    "while it was slow: calls timing out count as failures".to_owned()
                } else {
                    format!(
                        "{} ms after it started failing",
                        (at - failing_at).as_millis()
                    )
                };
                println!(
                    "  breaker opened {} ms after the dependency degraded ({when})",
                    (at - degraded_at).as_millis()
                );
            }
            _ => println!("  breaker did not open"),
        }
        println!(
            "  fast failures: {}, p50 {} ms, p99 {} ms from the intended send time ({} ms / {} ms from the actual send)",
            fast.len(),
            ms(&fast, 0.5),
            ms(&fast, 0.99),
            ms(&fast_from_send, 0.5),
            ms(&fast_from_send, 0.99)
        );
        match closed_again {
            Some(at) => println!(
                "  breaker closed {} ms after the dependency came back",
                (at - recovered_at).as_millis()
            ),
            None => println!("  breaker did not close again"),
        }
    }
    println!(
        "  recovery: every request succeeds from {} ms after the dependency came back",
        recovered_by.as_millis()
    );
    Ok(())
}

async fn failure(short: bool) -> Result<(), Box<dyn Error>> {
    let phases = if short {
        Phases {
            healthy: Duration::from_secs(1),
            slow: Duration::from_secs(1),
            failing: Duration::from_secs(2),
            recovered: Duration::from_secs(3),
        }
    } else {
        Phases {
            healthy: Duration::from_secs(2),
            slow: Duration::from_secs(2),
            failing: Duration::from_secs(4),
            recovered: Duration::from_secs(4),
        }
    };
    println!(
        "\nDependency failure at 200 req/s: healthy {:?}, slow (2 s per call) {:?}, failing {:?}, recovered {:?}",
        phases.healthy, phases.slow, phases.failing, phases.recovered
    );
    failure_run(false, &phases).await?;
    failure_run(true, &phases).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let short = args.iter().any(|a| a == "--short");
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if short { 1.0 } else { 3.0 });
    let seconds = seconds.clamp(0.5, 60.0);
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let only = flag("--only");
    let experiment = flag("--experiment").unwrap_or_else(|| "all".into());

    if experiment == "failure" {
        return failure(short).await;
    }
    let results = overload(seconds, only.as_deref()).await?;
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/overload.svg");
    std::fs::create_dir_all(chart.parent().expect("a parent"))?;
    std::fs::write(&chart, svg(&results))?;
    println!("\nchart: {}", chart.display());
    if experiment == "overload" {
        return Ok(());
    }
    failure(short).await
}
