//! The overload and dependency-failure experiments: steadfast's default policy against no
//! protection and against tower's static limit, on a real Axum server over loopback, under an
//! open-loop load.
//!
//! **Overload, across capacities.** The handler needs one of N connections of a simulated pool
//! for T: pools of 2 x 100 ms, 8 x 20 ms, 64 x 50 ms and 256 x 200 ms, so capacities from 20 to
//! 1,280 requests per second. An open-loop generator sends at a constant rate (0.5x to 10x the
//! capacity) and measures each latency from the *intended* send time, so queueing cannot hide (no
//! coordinated omission), into HDR histograms. Scenarios: no protection; tower's
//! `ConcurrencyLimit` + `LoadShed` with a well-chosen limit (N) and a badly chosen one (10 N);
//! steadfast's default policy, which is told nothing about the capacity; the same with a fifth of
//! the traffic critical and the rest sheddable (stock thresholds). Goodput counts successes within
//! the route's objective (5 T). Then: bursts of 200 concurrent requests on a fast route from idle,
//! and a step from 0.5x to 4x.
//!
//! **Dependency failure.** At 200 requests per second, a route calls a dependency that is
//! healthy, then slow (2 s), then failing, then healthy again, with and without steadfast's
//! protection: a 300 ms deadline on the route and a dependency policy (`DependencyLayer`:
//! breaker, the deadline propagated, retries under a budget, throttling) on its client. It reports when the breaker opened, how fast the
//! fast failures were, how many calls were wasted on the broken dependency, and how long the
//! route took to recover.
//!
//! Writes a table to stdout and a chart per pool to `target/overload-<N>x<T>.svg`.
//!
//! ```sh
//! cargo run --release --example overload --all-features            # about 6 minutes
//! cargo run --release --example overload --all-features -- --short # CI: one pool, about 1 min
//! # --seconds <per cell> (default 2), --pools 8x20,64x50, --only <scenario name part>,
//! # --experiment overload|failure|all (default all)
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
use steadfast::breaker::{BreakerConfig, BreakerEvent, SlidingWindow};
use steadfast::core::{Deadline, RejectionKind};
use steadfast::dependency::{DependencyConfig, DependencyLayer};
use steadfast::policy::{Policies, Policy, PolicyLayer};
use steadfast::retry::ReplayBody;
use steadfast::shed::{Criticality, ShedConfig};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

/// A request still unanswered this long after its intended send time is given up.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
const CRITICALITY_HEADER: &str = "x-criticality";

/// A simulated resource: `size` connections, each call holding one for `ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pool {
    size: usize,
    ms: u64,
}

impl Pool {
    const MATRIX: [Pool; 4] = [
        Pool { size: 2, ms: 100 },
        Pool { size: 8, ms: 20 },
        Pool { size: 64, ms: 50 },
        Pool { size: 256, ms: 200 },
    ];

    fn service_time(self) -> Duration {
        Duration::from_millis(self.ms)
    }

    fn capacity(self) -> f64 {
        self.size as f64 / self.service_time().as_secs_f64()
    }

    /// The route's latency objective: five times the service time.
    fn objective(self) -> Duration {
        self.service_time() * 5
    }

    fn name(self) -> String {
        format!("{} x {} ms", self.size, self.ms)
    }
}

#[derive(Clone)]
struct Resource {
    connections: Arc<Semaphore>,
    service_time: Duration,
}

/// The simulated resource: waiters queue without bound, as they do on a real pool.
async fn work(State(resource): State<Resource>) -> &'static str {
    let _connection = resource
        .connections
        .acquire()
        .await
        .expect("the pool is never closed");
    tokio::time::sleep(resource.service_time).await;
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
            Scenario::TowerLimitGood => "tower limit N + load shed",
            Scenario::TowerLimitBad => "tower limit 10 N + load shed",
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

    fn app(self, pool: Pool) -> Router {
        let resource = Resource {
            connections: Arc::new(Semaphore::new(pool.size)),
            service_time: pool.service_time(),
        };
        let router = Router::new().route("/work", get(work)).with_state(resource);
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
            Scenario::TowerLimitGood => router.route_layer(tower_limit(pool.size)),
            Scenario::TowerLimitBad => router.route_layer(tower_limit(10 * pool.size)),
            Scenario::Steadfast => {
                router.layer(PolicyLayer::new(Policies::default()).expect("defaults"))
            }
            Scenario::SteadfastMixed => {
                // The stock thresholds: only the header that carries the class is configured.
                let shed = ShedConfig::new().criticality_header(
                    http::HeaderName::from_static(CRITICALITY_HEADER),
                    Criticality::Critical,
                );
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
    objective: Duration,
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
async fn open_loop(
    client: &HttpClient,
    url: &str,
    rate: f64,
    seconds: f64,
    mixed: bool,
    objective: Duration,
) -> Run {
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
        objective,
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
                if latency <= run.objective {
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
fn svg(pool: Pool, results: &[(Scenario, Vec<Run>)]) -> String {
    let (width, height, left, bottom, top, right) = (720.0, 420.0, 70.0, 50.0, 30.0, 230.0);
    let capacity = pool.capacity();
    let x_max = results
        .iter()
        .flat_map(|(_, runs)| runs.iter().map(|run| run.offered))
        .fold(capacity * 4.0, f64::max);
    let y_max = capacity * 1.2;
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
        r#"<text x="{left}" y="18" font-size="14">{}: goodput (successes within {} ms per second) against offered load</text>"#,
        pool.name(),
        pool.objective().as_millis()
    );
    let steps = (x_max / capacity).round().max(1.0) as u32;
    for i in 0..=steps {
        let value = capacity * f64::from(i);
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
        y(capacity),
        x(x_max),
        y(capacity) - 4.0
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

const LOADS: [f64; 5] = [0.5, 1.0, 2.0, 4.0, 10.0];

fn header() {
    println!(
        "{:<28} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "scenario",
        "load",
        "offered",
        "good%",
        "goodput",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "rejected",
        "rej p99",
        "failed"
    );
}

fn print_run(name: &str, factor: f64, capacity: f64, run: &Run) {
    let sent = run.critical.1 + run.sheddable.1;
    println!(
        "{:<28} {:>5.1}x {:>8.0} {:>5.0}% {:>8.0} {:>8} {:>8} {:>8} {:>7.1}% {:>7} {:>7}",
        name,
        factor,
        run.offered,
        100.0 * run.goodput() / capacity,
        run.goodput(),
        ms(&run.success, 0.5),
        ms(&run.success, 0.99),
        ms(&run.success, 0.999),
        100.0 * run.rejected as f64 / sent.max(1) as f64,
        ms(&run.rejection_latency, 0.99),
        run.failed,
    );
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build_http()
}

async fn overload(
    seconds: f64,
    pools: &[Pool],
    only: Option<&str>,
) -> Result<Vec<(Pool, Vec<(Scenario, Vec<Run>)>)>, Box<dyn Error>> {
    let mut all = Vec::new();
    for &pool in pools {
        let capacity = pool.capacity();
        println!(
            "\nOverload: pool of {} = capacity {capacity:.0} req/s, objective {} ms, {seconds} s per cell",
            pool.name(),
            pool.objective().as_millis()
        );
        header();
        let mut results = Vec::new();
        let chosen = Scenario::ALL
            .into_iter()
            .filter(|scenario| only.is_none_or(|only| scenario.name().contains(only)));
        for scenario in chosen {
            let mut runs = Vec::new();
            for factor in LOADS {
                // A fresh server per cell, warmed up at half the capacity (connections, and the
                // adaptive limit's first windows), as a service runs before overload comes.
                let addr = serve(scenario.app(pool)).await?;
                let url = format!("http://{addr}/work");
                // A fresh client per cell: its idle connections go with it, so that a full run
                // never holds thousands of sockets to the servers of earlier cells.
                let client = client();
                let mixed = scenario == Scenario::SteadfastMixed;
                let warm = (10.0 * pool.service_time().as_secs_f64()).max(1.0);
                open_loop(&client, &url, capacity * 0.5, warm, mixed, pool.objective()).await;
                let run = open_loop(
                    &client,
                    &url,
                    capacity * factor,
                    seconds,
                    mixed,
                    pool.objective(),
                )
                .await;
                print_run(scenario.name(), factor, capacity, &run);
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
        all.push((pool, results));
    }
    Ok(all)
}

/// Bursts of 200 concurrent requests on a fast (2 ms), healthy route, from idle.
async fn bursts() -> Result<(), Box<dyn Error>> {
    let pool = Pool {
        size: 100_000,
        ms: 2,
    };
    let addr = serve(Scenario::Steadfast.app(pool)).await?;
    let url = format!("http://{addr}/work");
    let client = client();
    let (mut rejected, mut served, mut failed) = (0, 0, 0);
    for _ in 0..5 {
        let calls = (0..200).map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let request = Request::get(url)
                    .body(Empty::new())
                    .expect("a valid request");
                send(&client, request).await
            })
        });
        for call in futures_join(calls).await {
            match call {
                Some(status) if status.is_success() => served += 1,
                Some(StatusCode::SERVICE_UNAVAILABLE) => rejected += 1,
                _ => failed += 1,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "\nBursts: 5 x 200 concurrent requests on a healthy 2 ms route, from idle, under the default policy: {served} served, {rejected} rejected, {failed} failed"
    );
    Ok(())
}

async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.expect("the task finishes"));
    }
    out
}

/// A step from 0.5x to 4x: goodput second by second under the default policy.
async fn step(pool: Pool, before: f64, after: f64) -> Result<(), Box<dyn Error>> {
    let capacity = pool.capacity();
    let addr = serve(Scenario::Steadfast.app(pool)).await?;
    let url = format!("http://{addr}/work");
    let client = client();
    open_loop(
        &client,
        &url,
        capacity * 0.5,
        before,
        false,
        pool.objective(),
    )
    .await;
    let mut line = String::new();
    let mut first_good = None;
    for second in 0..after as u32 {
        let run = open_loop(&client, &url, capacity * 4.0, 1.0, false, pool.objective()).await;
        let share = run.goodput() / capacity;
        if share >= 0.9 && first_good.is_none() {
            first_good = Some(second);
        }
        let _ = write!(line, " {:.0}%", 100.0 * share);
    }
    println!(
        "\nStep from 0.5x to 4x on {} under the default policy, goodput per second after the step:{line}; at 90% of capacity from second {}",
        pool.name(),
        first_good.map_or("never".into(), |second| second.to_string())
    );
    Ok(())
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

/// The dependency's client: its answer's status, or a typed error (the client's, or the
/// dependency policy's refusal of a call it did not send).
type DependencyClient = BoxCloneSyncService<
    Request<Empty<Bytes>>,
    StatusCode,
    steadfast::Error<hyper_util::client::legacy::Error>,
>;

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
        // The dependency policy failed fast (open breaker, throttled): nothing was sent.
        Err(steadfast::Error::Rejected(rejection))
            if matches!(
                rejection.kind(),
                RejectionKind::CircuitOpen | RejectionKind::Throttled
            ) =>
        {
            StatusCode::SERVICE_UNAVAILABLE
        }
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
    // The dependency policy: breaker, deadline, retries under a budget, throttling.
    let policy = DependencyLayer::new(
        DependencyConfig::new("dependency").breaker(Some(
            BreakerConfig::new()
                .sliding_window(SlidingWindow::count(50))
                .minimum_calls(20)
                .open_duration(Duration::from_secs(1))
                .half_open_permits(5),
        )),
    )?;
    let breaker = policy
        .handle()
        .breaker()
        .expect("the policy has a breaker")
        .clone();
    let mut events = breaker.subscribe();
    let client: DependencyClient = if protected {
        let hyper: Client<HttpConnector, ReplayBody<Empty<Bytes>>> =
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1024)
                .build_http();
        let stack = ServiceBuilder::new().layer(policy).service(hyper);
        BoxCloneSyncService::new(stack.map_response(|response| response.status()))
    } else {
        let hyper: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build_http();
        BoxCloneSyncService::new(
            hyper
                .map_response(|response| response.status())
                .map_err(steadfast::Error::Inner),
        )
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
        "with a dependency policy + deadline"
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
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let seconds: f64 = flag("--seconds")
        .and_then(|text| text.parse().ok())
        .unwrap_or(if short { 1.0 } else { 2.0 });
    let seconds = seconds.clamp(0.5, 60.0);
    let only = flag("--only");
    let experiment = flag("--experiment").unwrap_or_else(|| "all".into());
    let pools: Vec<Pool> = match flag("--pools") {
        Some(list) => list
            .split(',')
            .filter_map(|item| {
                let (size, ms) = item.split_once('x')?;
                Some(Pool {
                    size: size.trim().parse().ok()?,
                    ms: ms.trim().parse().ok()?,
                })
            })
            .collect(),
        None if short => vec![Pool { size: 8, ms: 20 }],
        None => Pool::MATRIX.to_vec(),
    };

    if experiment == "failure" {
        return failure(short).await;
    }
    let results = overload(seconds, &pools, only.as_deref()).await?;
    for (pool, results) in &results {
        let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("target/overload-{}x{}.svg", pool.size, pool.ms));
        std::fs::create_dir_all(chart.parent().expect("a parent"))?;
        std::fs::write(&chart, svg(*pool, results))?;
        println!("chart: {}", chart.display());
    }
    bursts().await?;
    step(
        pools[0],
        if short { 1.0 } else { 3.0 },
        if short { 3.0 } else { 8.0 },
    )
    .await?;
    if experiment == "overload" {
        return Ok(());
    }
    failure(short).await
}
