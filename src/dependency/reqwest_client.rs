//! reqwest's client as a Tower service under a dependency policy (feature `reqwest`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Service;

use crate::retry::ReplayBody;

type ClientFuture = <reqwest::Client as Service<reqwest::Request>>::Future;

/// reqwest's [`Client`](reqwest::Client) as a `Service<http::Request<ReplayBody<B>>>`, so that a
/// [`DependencyLayer`](super::DependencyLayer) can wrap it (reqwest's own request type keeps its
/// extensions private, which the policy's layers need). It answers
/// `http::Response<reqwest::Body>` and fails with [`reqwest::Error`]; a request reqwest cannot
/// take (an invalid URL) fails as that error, without a call.
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use steadfast::dependency::{DependencyConfig, DependencyLayer, ReqwestClient};
/// use tower::{Layer, ServiceExt};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let inventory = DependencyLayer::new(DependencyConfig::new("inventory"))?
///     .layer(ReqwestClient::new(reqwest::Client::new()));
/// let request = http::Request::get("http://inventory.internal/items/7").body(Full::new(Bytes::new()))?;
/// let response: http::Response<reqwest::Body> = inventory.oneshot(request).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    /// Wraps a client (clones share its connection pool).
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// The client.
    pub fn get_ref(&self) -> &reqwest::Client {
        &self.client
    }

    /// The client, mutably.
    pub fn get_mut(&mut self) -> &mut reqwest::Client {
        &mut self.client
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> reqwest::Client {
        self.client
    }
}

impl<B> Service<http::Request<ReplayBody<B>>> for ReqwestClient
where
    B: Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + Sync,
{
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = ReqwestFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), reqwest::Error>> {
        Service::<reqwest::Request>::poll_ready(&mut self.client, cx)
    }

    fn call(&mut self, request: http::Request<ReplayBody<B>>) -> ReqwestFuture {
        match reqwest::Request::try_from(request.map(reqwest::Body::wrap)) {
            Ok(request) => ReqwestFuture {
                kind: Kind::Sending {
                    future: self.client.call(request),
                },
            },
            Err(error) => ReqwestFuture {
                kind: Kind::Refused { error: Some(error) },
            },
        }
    }
}

pin_project! {
    /// The response future of [`ReqwestClient`].
    pub struct ReqwestFuture {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        Sending { #[pin] future: ClientFuture },
        Refused { error: Option<reqwest::Error> },
    }
}

impl std::fmt::Debug for ReqwestFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestFuture").finish_non_exhaustive()
    }
}

impl Future for ReqwestFuture {
    type Output = Result<http::Response<reqwest::Body>, reqwest::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Sending { future } => future.poll(cx).map_ok(http::Response::from),
            KindProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .expect("ReqwestFuture polled after completion"))),
        }
    }
}
