//! The server-side timeout service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::Service;

use super::config::TimeoutConfig;
use super::future::ResponseFuture;
use crate::core::Deadline;
use crate::core::clock;
use crate::core::deadline;
use crate::core::labels;
use crate::core::route::RouteLabel;
use crate::core::{
    Origin, Protocol, ProtocolResponses, Rejection, RejectionKind, ResponseBody, TypedErrors,
};

/// Bounds the time an inner service may take, honouring the caller's deadline.
///
/// Built by [`TimeoutLayer`](super::TimeoutLayer); see the [module docs](super).
pub struct Timeout<S, M = ProtocolResponses> {
    inner: S,
    config: Arc<TimeoutConfig>,
    _mode: PhantomData<fn() -> M>,
}

impl<S> Timeout<S> {
    /// Wraps `inner` with a per-request budget and the default settings.
    pub fn new(inner: S, budget: Duration) -> Self {
        Self::with_config(inner, Arc::new(TimeoutConfig::new(budget)))
    }
}

impl<S, M> Timeout<S, M> {
    pub(crate) fn with_config(inner: S, config: Arc<TimeoutConfig>) -> Self {
        Self {
            inner,
            config,
            _mode: PhantomData,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &TimeoutConfig {
        &self.config
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, M> Clone for Timeout<S, M> {
    fn clone(&self) -> Self {
        Self::with_config(self.inner.clone(), self.config.clone())
    }
}

impl<S: fmt::Debug, M> fmt::Debug for Timeout<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Timeout<S, ProtocolResponses>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ProtocolResponses>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let protocol = Protocol::of(request.headers());
        let route = RouteLabel::of(request.extensions());
        let method = labels::method(request.method());
        let published = match admit(&self.config, &request, &route, method) {
            Ok(published) => published,
            Err(rejection) => return ResponseFuture::rejected(rejection, protocol, route, method),
        };
        let deadline = published.deadline;
        let published = published.published;
        let status = self.config.status();
        let future = {
            let _published = deadline::enter(published);
            self.inner.call(request)
        };
        ResponseFuture::running(
            future,
            Some(deadline.instant()),
            published,
            protocol,
            route,
            method,
            Origin::Timeout,
            status,
        )
    }
}

/// A request's deadline, as the timeout sets it.
pub(crate) struct Admitted {
    /// The deadline to enforce.
    pub(crate) deadline: Deadline,
    /// The deadline to publish to the inner service: `None` when publishing is off, or an outer
    /// layer already published an earlier one.
    pub(crate) published: Option<Deadline>,
}

/// The deadline of `request` under `config` (shared with the policy's fused stack), or why it
/// is refused: an invalid deadline header (in reject mode), or no time left on arrival.
#[inline]
pub(crate) fn admit<B>(
    config: &TimeoutConfig,
    request: &Request<B>,
    route: &RouteLabel,
    method: &'static str,
) -> Result<Admitted, Rejection> {
    let now = clock::now();
    let (deadline, earlier) =
        config.deadline_for(now, request.headers(), request.extensions(), route, method)?;
    if deadline.instant() <= now {
        // The caller has already given up: do not start work nobody will receive.
        return Err(
            Rejection::new(RejectionKind::DeadlineExpired, Origin::Timeout)
                .with_detail("the request arrived with no time left before its deadline"),
        );
    }
    // Published as the current deadline while the inner service is called and polled: no
    // `Extensions` insert (three allocations on a request that has none).
    let published = (earlier && config.publishes_deadline()).then_some(deadline);
    Ok(Admitted {
        deadline,
        published,
    })
}

/// The rejection of a request whose deadline passed while it was served.
pub(crate) fn expired(status: http::StatusCode, origin: Origin) -> Rejection {
    Rejection::new(RejectionKind::Timeout, origin)
        .with_status(status)
        .with_detail("the request did not complete before its deadline")
}

/// For any request type: the budget (bounded by the cap) applies; no header is read.
impl<S, Req> Service<Req> for Timeout<S, TypedErrors>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = crate::core::Error<S::Error>;
    type Future = ResponseFuture<S::Future, TypedErrors>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(crate::core::Error::Inner)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let deadline = clock::saturating_add(clock::now(), self.config.bound());
        ResponseFuture::running(
            self.inner.call(request),
            Some(deadline),
            None,
            Protocol::Http,
            RouteLabel::default(),
            "",
            Origin::Timeout,
            self.config.status(),
        )
    }
}
