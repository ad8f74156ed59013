//! Cargo features only add: a service written for the policy layer compiles, and behaves,
//! the same with and without any feature (the feature loop in `.ci/run` builds this file
//! under each feature alone). The inner service's request is `Request<RequestBody<B>>`
//! whichever features are on, and the policy's future and body are opaque types.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use steadfast::core::RequestBody;
use steadfast::policy::{Policies, PolicyBody, PolicyFuture, PolicyLayer, PolicyService};
use tower::{Layer, Service, ServiceExt};

/// One handler type for every feature set: it reads the body and echoes it.
async fn echo(
    request: Request<RequestBody<Full<Bytes>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Ok(Response::new(Full::new(body)))
}

type Echo = tower::util::ServiceFn<
    fn(
        Request<RequestBody<Full<Bytes>>>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>,
    >,
>;

fn echo_service() -> Echo {
    tower::service_fn(|request| Box::pin(echo(request)))
}

/// The types a user may name are the same in every feature set.
fn named(
    service: &mut PolicyService<Echo>,
    request: Request<Full<Bytes>>,
) -> PolicyFuture<Echo, Full<Bytes>> {
    service.call(request)
}

#[tokio::test]
async fn the_same_handler_serves_under_the_policy_in_every_feature_set() {
    let mut service = PolicyLayer::new(Policies::default())
        .unwrap()
        .layer(echo_service());
    service.ready().await.unwrap();
    let response: Response<PolicyBody<Full<Bytes>>> = named(
        &mut service,
        Request::new(Full::new(Bytes::from_static(b"hello"))),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");
}
