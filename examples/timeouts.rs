//! steadfast's timeout layer, end to end over loopback.
//!
//! Starts two Axum services on 127.0.0.1: `checkout`, guarded by a 200 ms budget, and
//! `inventory`, which `checkout` calls with its deadline propagated. Then it calls them the way
//! real clients would, prints what happened, checks it, and exits.
//!
//! ```sh
//! cargo run --example timeouts --features axum
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderName, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use steadfast::core::Deadline;
use steadfast::timeout::{DeadlineFormat, PropagateDeadlineLayer, TimeoutConfig, TimeoutLayer};
use tower::{ServiceBuilder, ServiceExt};

const BUDGET: Duration = Duration::from_millis(200);
const DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-request-timeout-ms");

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The dependency reads the caller's deadline from an HTTP header.
    let inventory = Router::new().route("/stock", get(stock)).layer(
        TimeoutLayer::new(
            TimeoutConfig::new(Duration::from_secs(1))
                .http_deadline_header(DEADLINE_HEADER, DeadlineFormat::Millis),
        )
        .expect("a valid budget"),
    );
    let inventory_addr = serve(inventory).await?;

    let client = Client::builder(TokioExecutor::new()).build_http();
    let checkout = Router::new()
        .route("/fast", get(|| async { "hello" }))
        .route("/slow", get(slow).post(slow))
        .route("/checkout", get(checkout))
        .with_state(Upstream {
            client: client.clone(),
            base: format!("http://{inventory_addr}"),
        })
        .layer(TimeoutLayer::new(BUDGET).expect("a valid budget"));
    let addr = serve(checkout).await?;

    println!(
        "checkout on http://{addr} (budget {BUDGET:?}), inventory on http://{inventory_addr}\n"
    );
    println!(
        "{:<62} {:>6} {:>8}  what happened",
        "request", "status", "elapsed"
    );

    const GRPC: (&str, &str) = ("content-type", "application/grpc");
    let cases = [
        Case::new("GET", "/fast", &[], Expect::Status(StatusCode::OK)),
        Case::new(
            "GET",
            "/slow",
            &[],
            Expect::Status(StatusCode::GATEWAY_TIMEOUT),
        ),
        Case::new("GET", "/checkout", &[], Expect::Status(StatusCode::OK)),
        Case::new(
            "GET",
            "/checkout",
            &[("grpc-timeout", "100m")],
            Expect::Status(StatusCode::OK),
        ),
        Case::new(
            "POST",
            "/slow",
            &[GRPC, ("grpc-timeout", "50m")],
            Expect::Grpc("4"),
        ),
        Case::new(
            "POST",
            "/slow",
            &[GRPC, ("grpc-timeout", "0n")],
            Expect::Grpc("4"),
        ),
    ];
    let mut failures = 0;
    for Case {
        method,
        path,
        headers,
        expect,
    } in cases
    {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let started = Instant::now();
        let response = client.request(request.body(Empty::new())?).await?;
        let elapsed = started.elapsed();
        let status = response.status();
        let grpc_status = response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        let grpc_message = response
            .headers()
            .get("grpc-message")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        let body = response.into_body().collect().await?.to_bytes();
        let what = match &grpc_status {
            Some(code) => format!("grpc-status {code}: {}", grpc_message.unwrap_or_default()),
            None => String::from_utf8_lossy(&body).into_owned(),
        };
        let ok = match expect {
            Expect::Status(expected) => status == expected,
            Expect::Grpc(code) => grpc_status.as_deref() == Some(code),
        };
        failures += usize::from(!ok);
        let label = format!(
            "{method} {path} {}",
            headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "{:<62} {:>6} {:>6}ms  {}{}",
            label,
            status.as_u16(),
            elapsed.as_millis(),
            what,
            if ok { "" } else { "   <-- UNEXPECTED" }
        );
    }
    println!();
    if failures > 0 {
        return Err(format!("{failures} request(s) did not behave as expected").into());
    }
    println!("every request behaved as expected");
    Ok(())
}

/// One request of the demo and what it must get.
struct Case {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    expect: Expect,
}

impl Case {
    fn new(
        method: &'static str,
        path: &'static str,
        headers: &'static [(&'static str, &'static str)],
        expect: Expect,
    ) -> Self {
        Self {
            method,
            path,
            headers,
            expect,
        }
    }
}

enum Expect {
    Status(StatusCode),
    Grpc(&'static str),
}

#[derive(Clone)]
struct Upstream {
    client: HttpClient,
    base: String,
}

/// Work that takes far longer than the budget: cancelled at 200 ms.
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "too late"
}

/// Local work, then a call to inventory that carries what is left of this request's deadline.
async fn checkout(
    State(upstream): State<Upstream>,
    deadline: Deadline,
) -> Result<String, StatusCode> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = ServiceBuilder::new()
        .layer(PropagateDeadlineLayer::new().http_header(DEADLINE_HEADER, DeadlineFormat::Millis))
        .service(upstream.client);
    let mut request = Request::get(format!("{}/stock", upstream.base))
        .body(Empty::new())
        .unwrap();
    request.extensions_mut().insert(deadline);
    let response = client
        .oneshot(request)
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?
        .to_bytes();
    Ok(format!(
        "checkout had {}ms left; {}",
        deadline.remaining().as_millis(),
        String::from_utf8_lossy(&body)
    ))
}

/// Says how much time its caller left it.
async fn stock(deadline: Deadline) -> String {
    format!("inventory was given {}ms", deadline.remaining().as_millis())
}

async fn serve(router: Router) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}
