//! A gRPC service on tonic with steadfast's policies, built in code (no `protoc` needed: the
//! messages are UTF-8 strings through a hand-written codec).
//!
//! It starts `shop.Inventory` on 127.0.0.1 behind `Server::builder().layer(PolicyLayer)`, one
//! policy per gRPC method (the method path is the route), plus a contract for the methods'
//! metadata and message sizes. Then a tonic client drives it through a short script that shows
//! each protection answering in gRPC terms, checks it, and exits.
//!
//! ```sh
//! cargo run --example tonic_service --all-features
//! ```

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderName;
use http::uri::PathAndQuery;
use steadfast::breaker::{BreakerConfig, SlidingWindow};
use steadfast::contract::{Contract, ContractConfig, GrpcMethod};
use steadfast::policy::{Policies, Policy, PolicyLayer};
use steadfast::shed::ShedConfig;
use tonic::server::NamedService;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};

#[path = "../tests/common/grpc.rs"]
mod grpc;
use grpc::StringCodec;

/// `shop.Inventory`: `Lookup` answers at once, `Reserve` takes 200 ms, `Restock` fails while
/// the warehouse is down.
#[derive(Clone, Default)]
struct Inventory {
    warehouse_down: Arc<AtomicBool>,
}

impl NamedService for Inventory {
    const NAME: &'static str = "shop.Inventory";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Inventory {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let mut grpc = tonic::server::Grpc::new(StringCodec);
        let down = self.warehouse_down.load(Ordering::SeqCst);
        Box::pin(async move {
            Ok(match request.uri().path() {
                "/shop.Inventory/Lookup" => {
                    let lookup = tower::service_fn(|request: Request<String>| async move {
                        Ok::<_, Status>(Response::new(format!("{}: 7 in stock", request.get_ref())))
                    });
                    grpc.unary(lookup, request).await
                }
                "/shop.Inventory/Reserve" => {
                    let reserve = tower::service_fn(|request: Request<String>| async move {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<_, Status>(Response::new(format!("reserved {}", request.get_ref())))
                    });
                    grpc.unary(reserve, request).await
                }
                "/shop.Inventory/Restock" if down => Status::internal("warehouse down").into_http(),
                "/shop.Inventory/Restock" => {
                    let restock = tower::service_fn(|_: Request<String>| async move {
                        Ok::<_, Status>(Response::new("restocked".to_owned()))
                    });
                    grpc.unary(restock, request).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// One unary call; its answer or its status code, and how long it took.
async fn call(
    client: &mut tonic::client::Grpc<Channel>,
    method: &str,
    message: &str,
    tenant: Option<&str>,
) -> (Result<String, Code>, Duration) {
    let mut request = Request::new(message.to_owned());
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-tenant", tenant.parse().expect("ASCII"));
    }
    let path = PathAndQuery::try_from(format!("/shop.Inventory/{method}")).expect("a path");
    let started = Instant::now();
    client.ready().await.expect("the channel is ready");
    let result = client
        .unary::<_, String, _>(request, path, StringCodec)
        .await
        .map(Response::into_inner)
        .map_err(|status| status.code());
    let took = started.elapsed();
    let shown = match &result {
        Ok(answer) => answer.clone(),
        Err(code) => format!("{code:?}"),
    };
    println!(
        "  {method:<8} {:>7.1} ms  {shown}",
        took.as_secs_f64() * 1e3
    );
    (result, took)
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
    // One policy per method; the method path is the route.
    let policies = Policies::new(Policy::new().timeout(Duration::from_secs(2)))
        .route(
            "/shop.Inventory/Reserve",
            Policy::new()
                .timeout(Duration::from_millis(500))
                .shed(ShedConfig::fixed(2)),
        )
        .route(
            "/shop.Inventory/Restock",
            Policy::new().breaker(
                BreakerConfig::new()
                    .sliding_window(SlidingWindow::count(10))
                    .minimum_calls(3)
                    .open_duration(Duration::from_secs(30)),
            ),
        );
    // The contract: every call names its tenant; lookups are small.
    let tenant = HeaderName::from_static("x-tenant");
    let contract = Contract::builder()
        .grpc_method(
            "/shop.Inventory/Lookup",
            GrpcMethod::new()
                .require_metadata(tenant.clone())
                .max_message_bytes(64),
        )
        .grpc_method(
            "/shop.Inventory/Reserve",
            GrpcMethod::new().require_metadata(tenant.clone()),
        )
        .grpc_method(
            "/shop.Inventory/Restock",
            GrpcMethod::new().require_metadata(tenant),
        )
        .build()?;
    let layer = PolicyLayer::with_contract(policies, contract, ContractConfig::default())?;

    let inventory = Inventory::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(inventory.clone())
            .serve_with_incoming(incoming),
    );
    println!("shop.Inventory on http://{addr}");
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = tonic::client::Grpc::new(channel);
    let acme = Some("acme");

    println!("\n1. Normal calls");
    let (lookup, _) = call(&mut client, "Lookup", "ABC-123", acme).await;
    check(lookup.is_ok(), "a lookup is answered")?;

    println!(
        "\n2. Contract: metadata and message size, answered as INVALID_ARGUMENT / RESOURCE_EXHAUSTED"
    );
    let (missing, _) = call(&mut client, "Lookup", "ABC-123", None).await;
    check(
        missing == Err(Code::InvalidArgument),
        "a call without x-tenant is refused",
    )?;
    let (too_big, _) = call(&mut client, "Lookup", &"X".repeat(100), acme).await;
    check(
        too_big == Err(Code::ResourceExhausted),
        "a 100-byte lookup is too large",
    )?;

    println!("\n3. Deadlines: the caller's grpc-timeout shortens the method's 500 ms budget");
    let mut hurried = Request::new("ABC-123".to_owned());
    hurried.set_timeout(Duration::from_millis(50));
    hurried.metadata_mut().insert("x-tenant", "acme".parse()?);
    client.ready().await?;
    let started = Instant::now();
    let status = client
        .unary::<_, String, _>(
            hurried,
            PathAndQuery::from_static("/shop.Inventory/Reserve"),
            StringCodec,
        )
        .await
        .map(Response::into_inner)
        .map_err(|status| status.code());
    println!(
        "  Reserve  {:>7.1} ms  {status:?}",
        started.elapsed().as_secs_f64() * 1e3
    );
    check(
        matches!(status, Err(Code::DeadlineExceeded | Code::Cancelled))
            && started.elapsed() < Duration::from_millis(200),
        "given up at the caller's 50 ms, not after 200 ms of work",
    )?;

    // Let the hurried call's server side finish before the burst.
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("\n4. Overload: 6 reservations at once against a limit of 2");
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { call(&mut client, "Reserve", "ABC-123", acme).await.0 })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await?);
    }
    let served = outcomes.iter().filter(|o| o.is_ok()).count();
    let shed = outcomes
        .iter()
        .filter(|o| **o == Err(Code::Unavailable))
        .count();
    // At most 2 at once; on a busy machine the calls may not all arrive together.
    check(
        served >= 1 && shed >= 1 && served + shed == 6,
        "the excess is shed with UNAVAILABLE, the rest served",
    )?;

    println!("\n5. A failing method: its breaker opens; the other methods are unaffected");
    inventory.warehouse_down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let (failed, _) = call(&mut client, "Restock", "ABC-123", acme).await;
        check(
            failed == Err(Code::Internal),
            "the handler's failure passes through",
        )?;
    }
    let (open, took) = call(&mut client, "Restock", "ABC-123", acme).await;
    check(
        open == Err(Code::Unavailable) && took < Duration::from_millis(100),
        "Restock fails fast with UNAVAILABLE",
    )?;
    let (lookup, _) = call(&mut client, "Lookup", "ABC-123", acme).await;
    check(lookup.is_ok(), "Lookup still works")?;

    server.abort();
    println!("\nall protections acted as expected");
    Ok(())
}
