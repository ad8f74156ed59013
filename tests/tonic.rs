//! Real tonic clients and servers over loopback: the server layer answers a tonic client in
//! gRPC terms, and the client layer propagates the deadline through a tonic `Channel`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use steadfast::core::Deadline;
use steadfast::timeout::{PropagateDeadlineLayer, TimeoutLayer};
use tonic::server::NamedService;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tower::Layer;

mod common;
use common::grpc::StringCodec;

/// `demo.Clock`: `Sleep` sleeps for the milliseconds in its message; `Timeout` answers with the
/// `grpc-timeout` it received and the milliseconds its `Deadline` left it, as `header;millis`.
#[derive(Clone, Default)]
struct ClockService {
    calls: Arc<AtomicUsize>,
}

impl NamedService for ClockService {
    const NAME: &'static str = "demo.Clock";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for ClockService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut grpc = tonic::server::Grpc::new(StringCodec);
        Box::pin(async move {
            let response = match request.uri().path() {
                "/demo.Clock/Sleep" => {
                    let sleep = tower::service_fn(|request: Request<String>| async move {
                        let millis: u64 = request
                            .get_ref()
                            .parse()
                            .map_err(|_| Status::invalid_argument("millis"))?;
                        tokio::time::sleep(Duration::from_millis(millis)).await;
                        Ok::<_, Status>(Response::new("awake".to_owned()))
                    });
                    grpc.unary(sleep, request).await
                }
                "/demo.Clock/Timeout" => {
                    let echo = tower::service_fn(|request: Request<String>| async move {
                        let timeout = request
                            .metadata()
                            .get("grpc-timeout")
                            .map(|value| value.to_str().unwrap().to_owned());
                        let left =
                            Deadline::current().map(|deadline| deadline.remaining().as_millis());
                        Ok::<_, Status>(Response::new(format!(
                            "{};{}",
                            timeout.unwrap_or_default(),
                            left.unwrap_or_default()
                        )))
                    });
                    grpc.unary(echo, request).await
                }
                "/demo.Clock/Fail" => Status::internal("broken").into_http(),
                // Unavailable on odd calls (counted over every method), served on even ones.
                "/demo.Clock/Flaky" => {
                    if calls % 2 == 1 {
                        Status::unavailable("busy").into_http()
                    } else {
                        let echo = tower::service_fn(|request: Request<String>| async move {
                            Ok::<_, Status>(Response::new(request.into_inner()))
                        });
                        grpc.unary(echo, request).await
                    }
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

async fn start_server(service: ClockService, budget: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        Server::builder()
            .layer(TimeoutLayer::new(budget).unwrap())
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    addr
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn path(method: &str) -> PathAndQuery {
    PathAndQuery::try_from(format!("/demo.Clock/{method}")).unwrap()
}

const BUDGET: Duration = Duration::from_secs(2);

/// Sends `Timeout` and returns what the server saw: the header and the time its deadline left.
async fn timeout_seen<T>(
    client: &mut tonic::client::Grpc<T>,
    request: Request<String>,
) -> (String, u64)
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    client.ready().await.map_err(Into::into).unwrap();
    let answer = client
        .unary::<_, String, _>(request, path("Timeout"), StringCodec)
        .await
        .unwrap()
        .into_inner();
    let (header, millis) = answer.split_once(';').unwrap();
    (header.to_owned(), millis.parse().unwrap())
}

#[tokio::test]
async fn a_tonic_client_gets_deadline_exceeded_from_the_server_layer() {
    // The server's budget runs out first; the client itself sets no timeout.
    let addr = start_server(ClockService::default(), Duration::from_millis(50)).await;
    let mut client = tonic::client::Grpc::new(channel(addr).await);

    let request = Request::new("5000".to_owned());
    client.ready().await.unwrap();
    let status = client
        .unary::<_, String, _>(request, path("Sleep"), StringCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(
        status.message(),
        "the request did not complete before its deadline"
    );

    // A fast call under the same layer succeeds.
    client.ready().await.unwrap();
    let response = client
        .unary::<_, String, _>(Request::new("0".to_owned()), path("Sleep"), StringCodec)
        .await
        .unwrap();
    assert_eq!(response.into_inner(), "awake");
}

#[tokio::test]
async fn the_server_honours_a_tonic_clients_timeout() {
    let addr = start_server(ClockService::default(), BUDGET).await;
    let mut client = tonic::client::Grpc::new(channel(addr).await);
    let mut request = Request::new(String::new());
    request.set_timeout(Duration::from_millis(300));
    let (header, left) = timeout_seen(&mut client, request).await;
    assert!(!header.is_empty());
    assert!(
        left <= 300 && left > 200,
        "the handler's deadline left {left} ms"
    );
}

#[tokio::test]
async fn a_tonic_channel_carries_the_propagated_deadline() {
    let addr = start_server(ClockService::default(), BUDGET).await;
    let mut client =
        tonic::client::Grpc::new(PropagateDeadlineLayer::new().layer(channel(addr).await));

    let mut request = Request::new(String::new());
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(300)));
    let (header, left) = timeout_seen(&mut client, request).await;
    let announced = steadfast::core::grpc::parse_timeout(header.as_bytes()).unwrap();
    assert!(
        announced <= Duration::from_millis(300) && announced > Duration::from_millis(200),
        "{announced:?}"
    );
    assert!(
        left <= 300 && left > 200,
        "the server's deadline left {left} ms"
    );
}

#[tokio::test]
async fn a_spent_deadline_fails_fast_on_a_tonic_channel_without_sending() {
    let service = ClockService::default();
    let addr = start_server(service.clone(), BUDGET).await;
    let mut client =
        tonic::client::Grpc::new(PropagateDeadlineLayer::new().layer(channel(addr).await));

    let mut request = Request::new(String::new());
    request
        .extensions_mut()
        .insert(Deadline::at(tokio::time::Instant::now()));
    client.ready().await.unwrap();
    let status = client
        .unary::<_, String, _>(request, path("Timeout"), StringCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(service.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_breaker_per_grpc_method_behind_a_tonic_server() {
    use steadfast::breaker::{BreakerConfig, BreakerLayer, SlidingWindow};
    let breakers = BreakerLayer::new(
        BreakerConfig::new()
            .sliding_window(SlidingWindow::count(4))
            .minimum_calls(3),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        Server::builder()
            .layer(breakers.clone())
            .add_service(ClockService::default())
            .serve_with_incoming(incoming),
    );
    let mut client = tonic::client::Grpc::new(channel(addr).await);

    for _ in 0..3 {
        client.ready().await.unwrap();
        let status = client
            .unary::<_, String, _>(Request::new(String::new()), path("Fail"), StringCodec)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal);
    }
    client.ready().await.unwrap();
    let status = client
        .unary::<_, String, _>(Request::new(String::new()), path("Fail"), StringCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("circuit breaker is open"));

    // Another method has its own breaker, and its successes (status in the trailers) count.
    for _ in 0..3 {
        client.ready().await.unwrap();
        let reply = client
            .unary::<_, String, _>(Request::new("0".to_owned()), path("Sleep"), StringCodec)
            .await
            .unwrap();
        assert_eq!(reply.into_inner(), "awake");
    }
    let mut seen: Vec<_> = breakers
        .breakers()
        .into_iter()
        .map(|(key, breaker)| (key, breaker.snapshot()))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(seen[0].0, "demo.Clock/Fail");
    assert_eq!(seen[0].1.window.failures, 3);
    assert_eq!(seen[1].0, "demo.Clock/Sleep");
    // The last success is recorded when its body ends, which the client has already read.
    assert_eq!((seen[1].1.window.calls, seen[1].1.window.failures), (3, 0));
}

/// A tonic `Channel` under a dependency policy: the channel takes tonic's body, so the policy's
/// `ReplayBody` is wrapped back into one (`map_request`); the generated (or generic) client is
/// built on the result.
#[tokio::test]
async fn a_tonic_channel_under_a_dependency_policy_retries_an_idempotent_method() {
    use steadfast::dependency::{DependencyConfig, DependencyLayer};
    use steadfast::retry::{ReplayBody, RetryConfig};
    use tower::ServiceExt as _;

    let service = ClockService::default();
    let calls = service.calls.clone();
    let addr = start_server(service, BUDGET).await;
    let channel =
        channel(addr)
            .await
            .map_request(|request: http::Request<ReplayBody<tonic::body::Body>>| {
                request.map(tonic::body::Body::new)
            });
    let config = DependencyConfig::new("clock").retry(Some(
        RetryConfig::new().idempotent_grpc_method("/demo.Clock/Flaky"),
    ));
    let policy = DependencyLayer::new(config).unwrap();
    let mut client = tonic::client::Grpc::new(policy.layer(channel));
    client.ready().await.unwrap();
    let answer = client
        .unary::<_, String, _>(Request::new("seven".to_owned()), path("Flaky"), StringCodec)
        .await
        .unwrap();
    assert_eq!(answer.into_inner(), "seven");
    // UNAVAILABLE, then served.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(policy.handle().snapshot().retry.budget.retries, 1);

    // A method not listed as idempotent is not retried: the caller gets the UNAVAILABLE.
    let channel = self::channel(addr).await.map_request(
        |request: http::Request<ReplayBody<tonic::body::Body>>| request.map(tonic::body::Body::new),
    );
    let policy = DependencyLayer::new(DependencyConfig::new("clock")).unwrap();
    let mut client = tonic::client::Grpc::new(policy.layer(channel));
    client.ready().await.unwrap();
    let status = client
        .unary::<_, String, _>(Request::new("x".to_owned()), path("Flaky"), StringCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
