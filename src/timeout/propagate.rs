//! Client side: pass the remaining deadline on to the next service, and fail fast without it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, Request, Response};
use tower::{Layer, Service};

use super::config::DeadlineFormat;
use super::future::ResponseFuture;
use crate::core::clock::Instant;
use crate::core::grpc::{self, GRPC_TIMEOUT};
use crate::core::labels;
use crate::core::route::RouteLabel;
use crate::core::{
    Deadline, Origin, Protocol, ProtocolResponses, Rejection, RejectionKind, ResponseBody,
    TypedErrors,
};

#[derive(Clone, Debug)]
struct PropagateConfig {
    http_header: Option<(HeaderName, DeadlineFormat)>,
    enforce: bool,
}

/// Applies [`PropagateDeadline`] to an outbound client service (a hyper client, a tonic
/// `Channel`, any `Service<http::Request<_>>`).
///
/// For each outgoing request that carries a [`Deadline`] in its extensions:
/// - no time left: the request is not sent; the caller gets the `DeadlineExpired` rejection
///   (504 problem+json or gRPC `DEADLINE_EXCEEDED`; with [`typed_errors`](Self::typed_errors),
///   [`crate::Error::Rejected`]);
/// - gRPC requests get `grpc-timeout` set to the time left (or kept, if the request already
///   carries a shorter one);
/// - other HTTP requests get the [configured header](Self::http_header), if any;
/// - the call itself is bounded by the deadline (turn off with [`enforce`](Self::enforce)).
///
/// A request without a `Deadline` passes untouched.
pub struct PropagateDeadlineLayer<M = ProtocolResponses> {
    config: Arc<PropagateConfig>,
    _mode: PhantomData<fn() -> M>,
}

impl PropagateDeadlineLayer {
    /// Propagation with the defaults: `grpc-timeout` on gRPC requests, no header on plain HTTP
    /// requests, the deadline enforced on the call.
    pub fn new() -> Self {
        Self {
            config: Arc::new(PropagateConfig {
                http_header: None,
                enforce: true,
            }),
            _mode: PhantomData,
        }
    }
}

impl Default for PropagateDeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> PropagateDeadlineLayer<M> {
    /// Write the remaining time on plain HTTP requests in this header and format, for example
    /// `x-request-timeout-ms` with [`DeadlineFormat::Millis`] to reach a service whose
    /// [`TimeoutConfig::http_deadline_header`](super::TimeoutConfig::http_deadline_header) reads it.
    pub fn http_header(mut self, name: HeaderName, format: DeadlineFormat) -> Self {
        Arc::make_mut(&mut self.config).http_header = Some((name, format));
        self
    }

    /// Whether to bound the outbound call by the deadline as well as announcing it. Default: `true`.
    pub fn enforce(mut self, enforce: bool) -> Self {
        Arc::make_mut(&mut self.config).enforce = enforce;
        self
    }

    /// Answer with [`crate::Error::Rejected`] instead of a synthetic response.
    pub fn typed_errors(self) -> PropagateDeadlineLayer<TypedErrors> {
        PropagateDeadlineLayer {
            config: self.config,
            _mode: PhantomData,
        }
    }
}

impl<S, M> Layer<S> for PropagateDeadlineLayer<M> {
    type Service = PropagateDeadline<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateDeadline {
            inner,
            config: self.config.clone(),
            _mode: PhantomData,
        }
    }
}

impl<M> Clone for PropagateDeadlineLayer<M> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            _mode: PhantomData,
        }
    }
}

impl<M> fmt::Debug for PropagateDeadlineLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropagateDeadlineLayer")
            .field("config", &self.config)
            .finish()
    }
}

/// Writes the request's remaining deadline on outbound calls; see [`PropagateDeadlineLayer`].
pub struct PropagateDeadline<S, M = ProtocolResponses> {
    inner: S,
    config: Arc<PropagateConfig>,
    _mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for PropagateDeadline<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            _mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for PropagateDeadline<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropagateDeadline")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, M> PropagateDeadline<S, M> {
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

    fn call_with<B>(&mut self, mut request: Request<B>) -> ResponseFuture<S::Future, M>
    where
        S: Service<Request<B>>,
    {
        let protocol = Protocol::of(request.headers());
        let route = RouteLabel::of(request.extensions());
        let method = labels::method(request.method());
        let deadline = match self.announce(&mut request, protocol) {
            Ok(deadline) => deadline,
            Err(rejection) => return ResponseFuture::rejected(rejection, protocol, route, method),
        };
        let enforced = deadline.filter(|_| self.config.enforce);
        ResponseFuture::running(
            self.inner.call(request),
            enforced,
            None,
            protocol,
            route,
            method,
            Origin::PropagateDeadline,
            RejectionKind::Timeout.default_status(),
        )
    }

    /// Writes the remaining time on the request; returns the deadline, if it has one.
    fn announce<B>(
        &self,
        request: &mut Request<B>,
        protocol: Protocol,
    ) -> Result<Option<Instant>, Rejection> {
        let Some(deadline) = Deadline::of(request) else {
            return Ok(None);
        };
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            return Err(
                Rejection::new(RejectionKind::DeadlineExpired, Origin::PropagateDeadline)
                    .with_detail("no time left before the deadline; the call was not sent"),
            );
        }
        write_time_left(
            request.headers_mut(),
            protocol,
            self.config.http_header.as_ref(),
            remaining,
        );
        Ok(Some(deadline.instant()))
    }
}

/// Writes the time an outbound call has left: `grpc-timeout` on gRPC calls (keeping a shorter
/// one the caller set on the call itself), else `http_header` in its format, if there is one.
/// Shared by [`PropagateDeadline`] and the dependency policy's attempts.
pub(crate) fn write_time_left(
    headers: &mut http::HeaderMap,
    protocol: Protocol,
    http_header: Option<&(HeaderName, DeadlineFormat)>,
    left: std::time::Duration,
) {
    match (protocol, http_header) {
        (Protocol::Grpc, _) => {
            let announced = headers
                .get(GRPC_TIMEOUT)
                .and_then(|value| grpc::parse_timeout(value.as_bytes()).ok())
                .map_or(left, |existing| existing.min(left));
            headers.insert(GRPC_TIMEOUT, grpc::encode_timeout(announced));
        }
        (Protocol::Http, Some((name, format))) => {
            headers.insert(name.clone(), format.encode(left));
        }
        (Protocol::Http, None) => {}
    }
}

impl<S, B, ResBody> Service<Request<B>> for PropagateDeadline<S, ProtocolResponses>
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.call_with(request)
    }
}

impl<S, B> Service<Request<B>> for PropagateDeadline<S, TypedErrors>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = crate::core::Error<S::Error>;
    type Future = ResponseFuture<S::Future, TypedErrors>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(crate::core::Error::Inner)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.call_with(request)
    }
}
