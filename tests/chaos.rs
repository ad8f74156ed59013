//! The chaos suite: real Axum servers on loopback behind the policy stack, hit with handler
//! panics, client disconnects, HTTP/2 stream resets, failing request and response bodies,
//! reload storms under load, junk-path floods, and a soak under all of them at once. Each test
//! is bounded in count and time, prints its figures, and asserts that every request got an
//! answer, that nothing leaked (in flight and queued back to zero) and, for the soak, that
//! memory stayed flat.
//!
//! `CHAOS_SOAK_SECS` sets the soak's length (default 10; CI runs 60:
//! `CHAOS_SOAK_SECS=60 cargo test --release --all-features --test chaos -- --nocapture`).
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::fault::FaultConfig;
use steadfast::policy::{Policies, Policy, PolicyHandle, PolicyLayer};
use steadfast::shed::{QueueConfig, ShedConfig};
use tower::BoxError;

/// Handlers running now: a guard counts each one in and out, also when its future is dropped.
#[derive(Clone, Default)]
struct Running(Arc<AtomicUsize>);

struct Inside(Arc<AtomicUsize>);

impl Running {
    fn enter(&self) -> Inside {
        self.0.fetch_add(1, Ordering::SeqCst);
        Inside(self.0.clone())
    }

    fn now(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn policies(slow_limit: u32) -> Policies {
    Policies::new(Policy::new().timeout(Duration::from_secs(2)))
        .route(
            "/slow",
            Policy::new().shed(ShedConfig::fixed(slow_limit).queue(QueueConfig::default())),
        )
        .route(
            "/drill",
            Policy::new().fault(
                FaultConfig::new()
                    .delay(Duration::from_millis(5), 10.0)
                    .abort(StatusCode::SERVICE_UNAVAILABLE, 10.0),
            ),
        )
}

fn app(running: &Running, layer: PolicyLayer) -> Router {
    let handler = |running: Running, work: fn() -> Option<Duration>| {
        move || {
            let running = running.clone();
            async move {
                let _inside = running.enter();
                if let Some(time) = work() {
                    tokio::time::sleep(time).await;
                }
                "ok"
            }
        }
    };
    let panicking = {
        let running = running.clone();
        move || {
            let running = running.clone();
            async move {
                let _inside = running.enter();
                if running.now() < usize::MAX {
                    panic!("chaos: the handler panics");
                }
                "never"
            }
        }
    };
    let broken_body = {
        let running = running.clone();
        move || {
            let running = running.clone();
            async move {
                let _inside = running.enter();
                let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                    Ok(Frame::data(Bytes::from_static(b"{\"partial\":"))),
                    Err("chaos: the response body fails".into()),
                ];
                axum::response::Response::new(Body::new(StreamBody::new(futures::stream::iter(
                    frames,
                ))))
            }
        }
    };
    let upload = {
        let running = running.clone();
        move |body: Bytes| {
            let running = running.clone();
            async move {
                let _inside = running.enter();
                format!("{} bytes", body.len())
            }
        }
    };
    Router::new()
        .route("/ok", get(handler(running.clone(), || None)))
        .route(
            "/slow",
            get(handler(running.clone(), || Some(Duration::from_millis(20)))),
        )
        .route("/drill", get(handler(running.clone(), || None)))
        .route("/panic", get(panicking))
        .route("/broken", get(broken_body))
        .route("/upload", post(upload))
        .layer(layer)
}

struct Server {
    addr: SocketAddr,
    handle: PolicyHandle,
    running: Running,
}

/// Keeps the deliberate panics out of the output (others still print).
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .unwrap_or_default();
            if !message.starts_with("chaos:") {
                default(info);
            }
        }));
    });
}

async fn serve() -> Server {
    quiet_panics();
    let layer = PolicyLayer::new(policies(16)).unwrap();
    let handle = layer.handle();
    let running = Running::default();
    let router = app(&running, layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server {
        addr,
        handle,
        running,
    }
}

type Http = Client<HttpConnector, Full<Bytes>>;

fn http1() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

fn http2() -> Http {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

fn get_request(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// What happened to the requests a test sent.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    by_status: [AtomicU64; 6],
    cancelled: AtomicU64,
    broken_bodies: AtomicU64,
    transport_errors: AtomicU64,
}

impl Tally {
    fn answered(&self, status: StatusCode) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.by_status[usize::from(status.as_u16() / 100)].fetch_add(1, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn print(&self, name: &str, elapsed: Duration) {
        println!(
            "chaos {name}: sent {} answered {} (2xx {} 4xx {} 5xx {}) cancelled by the client {} \
             broken bodies {} transport errors {} in {:.1}s",
            Self::get(&self.sent),
            Self::get(&self.answered),
            Self::get(&self.by_status[2]),
            Self::get(&self.by_status[4]),
            Self::get(&self.by_status[5]),
            Self::get(&self.cancelled),
            Self::get(&self.broken_bodies),
            Self::get(&self.transport_errors),
            elapsed.as_secs_f64(),
        );
    }

    /// Every request the client did not cancel got an answer.
    fn assert_all_answered(&self) {
        assert_eq!(
            Self::get(&self.sent),
            Self::get(&self.answered) + Self::get(&self.cancelled),
            "every request is answered or was cancelled by its client"
        );
        assert_eq!(Self::get(&self.transport_errors), 0, "no transport errors");
    }
}

/// Sends one request and reads its body; `cancel_after` drops it mid-flight (a disconnect on
/// HTTP/1, a stream reset on HTTP/2).
async fn exchange(
    client: &Http,
    request: Request<Full<Bytes>>,
    cancel_after: Option<Duration>,
    tally: &Tally,
) {
    tally.sent.fetch_add(1, Ordering::Relaxed);
    let broken = request.uri().path() == "/broken";
    let call = async {
        match client.request(request).await {
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(_) => tally.answered(status),
                    Err(_) => {
                        // The head arrived: answered, but its body broke on the way.
                        tally.answered(status);
                        tally.broken_bodies.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            // A body that fails before the head is flushed closes the connection (HTTP/1) or
            // resets the stream (HTTP/2): the client sees the response broken, as it should.
            Err(_) if broken => {
                tally.answered.fetch_add(1, Ordering::Relaxed);
                tally.broken_bodies.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                eprintln!("transport error: {error:?}");
                tally.transport_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    match cancel_after {
        Some(after) => {
            if tokio::time::timeout(after, call).await.is_err() {
                tally.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => call.await,
    }
}

/// Waits (a bounded time) for the handlers and every limiter to drain, then asserts they did.
async fn assert_drained(server: &Server) {
    let started = Instant::now();
    loop {
        let limiters = server.handle.limiters();
        let busy: Vec<_> = limiters
            .iter()
            .map(|(name, limiter)| (name.clone(), limiter.snapshot()))
            .filter(|(_, snapshot)| snapshot.in_flight > 0 || snapshot.queued > 0)
            .collect();
        if busy.is_empty() && server.running.now() == 0 {
            println!(
                "  drained: {} limiters, 0 in flight, 0 queued, 0 handlers running",
                limiters.len()
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still busy after 10 s: {busy:?}, {} handlers running",
            server.running.now()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `per_task` requests from each of `tasks` concurrent clients; `make` picks each one.
async fn load(
    tasks: usize,
    per_task: usize,
    client: Http,
    tally: Arc<Tally>,
    make: impl Fn(usize) -> (Request<Full<Bytes>>, Option<Duration>) + Send + Sync + 'static,
) {
    let make = Arc::new(make);
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let (client, tally, make) = (client.clone(), tally.clone(), make.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    let (request, cancel) = make(task * per_task + i);
                    exchange(&client, request, cancel, &tally).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panics_are_answered_500_and_leak_nothing() {
    let server = serve().await;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let addr = server.addr;
    load(8, 250, http1(), tally.clone(), move |i| {
        let path = if i % 2 == 0 { "/panic" } else { "/ok" };
        (get_request(addr, path), None)
    })
    .await;
    tally.print("panics", started.elapsed());
    tally.assert_all_answered();
    assert_eq!(Tally::get(&tally.by_status[5]), 1000, "each panic is a 500");
    assert_eq!(Tally::get(&tally.by_status[2]), 1000);
    assert_drained(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_storms_and_stream_resets_leak_no_slot() {
    let server = serve().await;
    let addr = server.addr;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    load(16, 250, http1(), tally.clone(), move |i| {
        // Most are cut off while the handler sleeps; some finish.
        let cancel = (i % 5 != 0).then(|| Duration::from_millis(1 + (i % 7) as u64));
        (get_request(addr, "/slow"), cancel)
    })
    .await;
    tally.print("disconnects (HTTP/1)", started.elapsed());
    tally.assert_all_answered();
    assert!(Tally::get(&tally.cancelled) > 1000, "the storm happened");
    assert_drained(&server).await;

    // HTTP/2 stream resets: one connection per client task, at a pace below hyper's own
    // rapid-reset guard (which answers a flood of resets with GOAWAY, by design).
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|task| {
            let tally = tally.clone();
            tokio::spawn(async move {
                let client = http2();
                for i in 0..150 {
                    let cancel = (i % 2 == 0).then(|| Duration::from_millis(1 + (i % 5) as u64));
                    exchange(&client, get_request(addr, "/slow"), cancel, &tally).await;
                    if i % 2 == 0 {
                        tokio::time::sleep(Duration::from_millis(2 + task)).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    tally.print("stream resets (HTTP/2)", started.elapsed());
    tally.assert_all_answered();
    assert!(Tally::get(&tally.cancelled) > 300, "the resets happened");
    assert_drained(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_request_and_response_bodies_are_answered() {
    let server = serve().await;
    let addr = server.addr;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    load(8, 100, http1(), tally.clone(), move |_| {
        (get_request(addr, "/broken"), None)
    })
    .await;
    tally.print("failing response bodies", started.elapsed());
    tally.assert_all_answered();
    assert_eq!(
        Tally::get(&tally.broken_bodies),
        800,
        "the client sees each body break"
    );

    // Request bodies that fail half-way: the client's body stream errors, hyper resets the
    // request; the handler never gets a complete body.
    let client: Client<HttpConnector, StreamBody<_>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut reset = 0;
    for _ in 0..300 {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"first half"))),
            Err(std::io::Error::other("chaos: the request body fails")),
        ];
        let request = Request::post(format!("http://{addr}/upload"))
            .body(StreamBody::new(futures::stream::iter(frames)))
            .unwrap();
        match client.request(request).await {
            Ok(response) => assert_ne!(response.status(), StatusCode::OK, "never a success"),
            Err(_) => reset += 1,
        }
    }
    println!("chaos failing request bodies: 300 sent, {reset} cut off by the client's error");
    assert_drained(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_storms_under_load_lose_no_request() {
    let server = serve().await;
    let addr = server.addr;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let reloads = {
        let handle = server.handle.clone();
        tokio::spawn(async move {
            for i in 0..1_000u32 {
                handle.reload(policies(4 + i % 13)).unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    load(16, 200, http1(), tally.clone(), move |i| {
        let path = ["/slow", "/ok", "/drill"][i % 3];
        (get_request(addr, path), None)
    })
    .await;
    reloads.await.unwrap();
    tally.print("reload storm (1,000 reloads)", started.elapsed());
    tally.assert_all_answered();
    assert_drained(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_path_floods_grow_nothing() {
    let server = serve().await;
    let addr = server.addr;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    load(8, 1_250, http1(), tally.clone(), move |i| {
        let request = Request::post(format!("http://{addr}/junk{i}.Svc/M{i}"))
            .header("content-type", "application/grpc")
            .body(Full::new(Bytes::new()))
            .unwrap();
        (request, None)
    })
    .await;
    tally.print("junk paths", started.elapsed());
    tally.assert_all_answered();
    let limiters = server.handle.limiters().len();
    println!("  limiters after 10,000 junk paths: {limiters}");
    assert!(limiters <= 2 * 1024 + 8, "{limiters} limiters");
    // A real route still has its own limiter and is served.
    let ok = http1().request(get_request(addr, "/ok")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_drained(&server).await;
}

/// The resident set size of this process, in bytes (Linux).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_under_mixed_faults_keeps_memory_flat_and_answers_everything() {
    let seconds: u64 = std::env::var("CHAOS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(4, 600);
    let server = serve().await;
    let addr = server.addr;
    let tally = Arc::new(Tally::default());
    let soak_ends = Instant::now() + Duration::from_secs(seconds);
    let warm_until = Instant::now() + Duration::from_secs(seconds / 4);
    let reloads = {
        let handle = server.handle.clone();
        tokio::spawn(async move {
            let mut i = 0u32;
            while Instant::now() < soak_ends {
                handle.reload(policies(4 + i % 13)).unwrap();
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            i
        })
    };
    let rss_before = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..12)
        .map(|task| {
            let (tally, rss_before) = (tally.clone(), rss_before.clone());
            let client = if task % 3 == 0 { http2() } else { http1() };
            tokio::spawn(async move {
                let mut i = task;
                while Instant::now() < soak_ends {
                    if task == 0
                        && Instant::now() >= warm_until
                        && rss_before.load(Ordering::SeqCst) == 0
                    {
                        rss_before.store(rss().unwrap_or(0).max(1), Ordering::SeqCst);
                    }
                    let (path, cancel) = match i % 10 {
                        0 => ("/panic", None),
                        1 => ("/broken", None),
                        2 | 3 => ("/slow", (i % 4 == 0).then_some(Duration::from_millis(3))),
                        4 => ("/drill", None),
                        5 => ("/junk", None),
                        _ => ("/ok", None),
                    };
                    let request = if path == "/junk" {
                        Request::post(format!("http://{addr}/j{i}.S/M"))
                            .header("content-type", "application/grpc")
                            .body(Full::new(Bytes::new()))
                            .unwrap()
                    } else {
                        get_request(addr, path)
                    };
                    exchange(&client, request, cancel, &tally).await;
                    i += 12;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let reloaded = reloads.await.unwrap();
    assert_drained(&server).await;
    let before = rss_before.load(Ordering::SeqCst);
    let after = rss().unwrap_or(0);
    tally.print(
        &format!("soak ({seconds}s, {reloaded} reloads)"),
        Duration::from_secs(seconds),
    );
    println!(
        "  RSS after warm-up {:.1} MiB, at the end {:.1} MiB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    tally.assert_all_answered();
    assert!(Tally::get(&tally.answered) > 1_000, "the soak ran");
    if before > 1 && after > 0 {
        assert!(
            after <= before + 24 * 1048576,
            "memory grew from {before} to {after} bytes"
        );
    }
}
