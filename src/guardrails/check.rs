//! A CI check: every route a team lists is served under a policy of its own.

use std::fmt;

use http::{Method, Request, Response};
use tower::Service;

use crate::core::{Origin, Rejection, RejectionKind};

/// Sends one request to each `(method, path)` through `service`, which must be built with
/// [`PolicyLayer::strict`](crate::policy::PolicyLayer::strict)`(Strict::Refuse)`, and returns
/// those that were refused for having no policy of their own (as `"METHOD path"`).
///
/// Requests carry an empty body; what the handlers answer does not matter, only whether the
/// policy layer let them through.
///
/// # Panics
///
/// If the service fails instead of answering.
pub async fn routes_without_policy<S, B, RB>(service: S, routes: &[(Method, &str)]) -> Vec<String>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: fmt::Debug,
    B: Default,
{
    let mut missing = Vec::new();
    for (method, path) in routes {
        let request = Request::builder()
            .method(method.clone())
            .uri(*path)
            .body(B::default())
            .expect("a valid method and path");
        let mut service = service.clone();
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .expect("the service is ready");
        let response = service.call(request).await.expect("the service answers");
        let refused = response
            .extensions()
            .get::<Rejection>()
            .is_some_and(|rejection| {
                rejection.origin() == Origin::Policy
                    && rejection.kind() == RejectionKind::Misconfigured
            });
        if refused {
            missing.push(format!("{method} {path}"));
        }
    }
    missing
}
