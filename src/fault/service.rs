//! The fault injection layer and service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{FaultConfig, InjectedFault};
use crate::core::grpc::{self, Code};
use crate::core::labels;
use crate::core::route::RouteLabel;
use crate::core::{ConfigError, ResponseBody, telemetry};

/// Injects the faults of a [`FaultConfig`] into the requests of the services it wraps.
#[derive(Clone, Debug)]
pub struct FaultLayer {
    config: Option<Arc<FaultConfig>>,
}

impl FaultLayer {
    /// A layer injecting `config`'s faults.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] of [`FaultConfig::validate`].
    pub fn new(config: FaultConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::from_valid(&config))
    }

    pub(crate) fn from_valid(config: &FaultConfig) -> Self {
        Self {
            config: config.is_active().then(|| Arc::new(config.clone())),
        }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Fault<S>;

    fn layer(&self, inner: S) -> Fault<S> {
        Fault {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Injects faults into requests; see the [module docs](super).
#[derive(Clone)]
pub struct Fault<S> {
    inner: S,
    config: Option<Arc<FaultConfig>>,
}

impl<S> Fault<S> {
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

impl<S: fmt::Debug> fmt::Debug for Fault<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fault")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl FaultLayer {
    /// The fault to inject into `request`, if any (counted and logged): for the policy's fused
    /// stack, which runs the delay and the abort itself.
    #[inline]
    pub(crate) fn decide<B>(&self, request: &Request<B>) -> Option<InjectedFault> {
        decide(self.config.as_deref(), request)
    }
}

/// The fault `config` injects into `request`, if any (counted and logged).
fn decide<B>(config: Option<&FaultConfig>, request: &Request<B>) -> Option<InjectedFault> {
    let config = config.filter(|config| {
        config
            .header
            .as_ref()
            .is_none_or(|h| request.headers().contains_key(h))
    })?;
    let delay = config
        .delay
        .filter(|(_, percent)| chosen(*percent))
        .map(|(delay, _)| delay);
    let abort = config
        .abort
        .filter(|(_, percent)| chosen(*percent))
        .map(|(status, _)| status);
    if delay.is_none() && abort.is_none() {
        return None;
    }
    let route = RouteLabel::of(request.extensions());
    for (kind, happened) in [("delay", delay.is_some()), ("abort", abort.is_some())] {
        if happened {
            telemetry::record_fault(kind, route.as_str(), labels::method(request.method()));
        }
    }
    tracing::warn!(
        target: "steadfast::fault",
        route = route.as_str(),
        fault.delay_ms = delay.map(|delay| delay.as_millis() as u64),
        fault.abort_status = abort.map(|status| status.as_u16()),
        "fault injected"
    );
    Some(InjectedFault { delay, abort })
}

/// Whether a request with a `percent` chance is chosen.
fn chosen(percent: f64) -> bool {
    percent >= 100.0 || (percent > 0.0 && fastrand::f64() * 100.0 < percent)
}

impl<S, B, RB> Service<Request<B>> for Fault<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = FaultFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(injected) = decide(self.config.as_deref(), &request) else {
            return FaultFuture::running(self.inner.call(request), None);
        };
        let delay = injected.delay;
        let grpc = grpc::is_grpc(request.headers());
        // The service instance made ready goes with the delayed request; this one keeps a
        // clone, which the caller makes ready before its next call.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        FaultFuture {
            state: State::Delayed {
                delayed: Box::pin(Delayed {
                    sleep: tokio::time::sleep(delay.unwrap_or(Duration::ZERO)),
                    service: Some(ready),
                    request: Some(request),
                }),
            },
            injected: Some(injected),
            grpc,
        }
    }
}

pin_project! {
    /// The response future of [`Fault`].
    pub struct FaultFuture<S: Service<Request<B>>, B> {
        #[pin]
        state: State<S, B>,
        injected: Option<InjectedFault>,
        grpc: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S: Service<Request<B>>, B> {
        // Boxed: the rare case keeps the common pass-through future small.
        Delayed { delayed: Pin<Box<Delayed<S, B>>> },
        Running { #[pin] future: S::Future },
    }
}

pin_project! {
    struct Delayed<S, B> {
        #[pin]
        sleep: tokio::time::Sleep,
        service: Option<S>,
        request: Option<Request<B>>,
    }
}

impl<S: Service<Request<B>>, B> FaultFuture<S, B> {
    fn running(future: S::Future, injected: Option<InjectedFault>) -> Self {
        Self {
            state: State::Running { future },
            injected,
            grpc: false,
        }
    }
}

impl<S: Service<Request<B>>, B> fmt::Debug for FaultFuture<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFuture")
            .field("injected", &self.injected)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Future for FaultFuture<S, B>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Output = Result<Response<ResponseBody<RB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Delayed { delayed } => {
                    let delayed = delayed.as_mut().project();
                    let (sleep, service, request) =
                        (delayed.sleep, delayed.service, delayed.request);
                    ready!(sleep.poll(cx));
                    let injected = this.injected.expect("a delayed request has its fault");
                    if let Some(status) = injected.abort {
                        service.take();
                        request.take();
                        let mut response = aborted(status, *this.grpc);
                        response.extensions_mut().insert(injected);
                        return Poll::Ready(Ok(response));
                    }
                    let mut service = service.take().expect("the request is served once");
                    let request = request.take().expect("the request is served once");
                    let future = service.call(request);
                    this.state.set(State::Running { future });
                }
                StateProj::Running { future } => {
                    let mut response = ready!(future.poll(cx))?.map(ResponseBody::new);
                    if let Some(injected) = this.injected.take() {
                        response.extensions_mut().insert(injected);
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

/// The answer in the service's place: a problem+json with `status`, or for gRPC a trailers-only
/// response with the matching status; both marked `x-steadfast-fault: abort`.
pub(crate) fn aborted<RB>(status: StatusCode, grpc: bool) -> Response<ResponseBody<RB>> {
    let mut response = if grpc {
        let mut response = Response::new(ResponseBody::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(grpc::GRPC_STATUS, grpc_code(status).to_header_value());
        headers.insert(
            grpc::GRPC_MESSAGE,
            HeaderValue::from_static("injected%20fault"),
        );
        response
    } else {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": "Injected fault",
            "status": status.as_u16(),
            "detail": "A fault injected by steadfast's fault layer (a drill).",
        });
        let mut response = Response::new(ResponseBody::full(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    };
    response
        .headers_mut()
        .insert("x-steadfast-fault", HeaderValue::from_static("abort"));
    response
}

/// The gRPC status of an HTTP status, as gRPC's HTTP mapping has it.
fn grpc_code(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}
