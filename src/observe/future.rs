//! The instrumentation's response future and the end of a streaming gRPC call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Response};
use std::sync::Arc;

use metrics::{Histogram, SharedString};
use pin_project_lite::pin_project;
use tracing::Span;

use crate::core::clock::{self, Instant};
use crate::core::grpc::Code;
use crate::core::labels::{self, Histograms};
use crate::core::telemetry;
use crate::core::{DefaultClassifier, OnEndOfStream, Rejection, TrackedBody};

/// A route's label and the duration histograms of its error-free label sets, registered once
/// so that the common request builds no metric key. (Requests with an `error.type` register
/// their label set each time: errors are the exception.)
pub(crate) struct RouteMetrics {
    pub(crate) label: SharedString,
    histograms: Histograms,
}

impl RouteMetrics {
    pub(crate) fn new(label: SharedString) -> Self {
        Self {
            label,
            histograms: Histograms::default(),
        }
    }

    /// Records `seconds` in the histogram of label set `key`, registered by `register` on
    /// first use.
    fn record(&self, key: u32, seconds: f64, register: impl FnOnce() -> Histogram) {
        self.histograms.record(key, seconds, register);
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Marks the cache keys of gRPC label sets (HTTP keys stay below 2^24).
const GRPC_KEY: u32 = 1 << 31;

/// What is known of a request when it arrives, to label its measurement when it ends.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) started: Instant,
    /// The route template (HTTP) or `pkg.Service/Method` (gRPC), interned and bounded.
    pub(crate) route: Arc<RouteMetrics>,
    /// Method (bits 0-3, an index in `METHODS`), scheme (bit 4: https) and version (bits 5-7,
    /// an index in `VERSIONS`) packed: the labels, and the cache key of an error-free
    /// response but for its status.
    pub(crate) key: u32,
    pub(crate) grpc: bool,
}

impl Request {
    /// The method, scheme and version labels, unpacked from the key.
    fn labels(&self) -> (&'static str, &'static str, &'static str) {
        let method = labels::METHODS[(self.key & 0xF) as usize];
        let scheme = if self.key >> 4 & 1 == 1 {
            "https"
        } else {
            "http"
        };
        let version = labels::VERSIONS[(self.key >> 5 & 0x7) as usize];
        (method, scheme, version)
    }

    fn seconds(&self) -> f64 {
        clock::now()
            .saturating_duration_since(self.started)
            .as_secs_f64()
    }

    fn finish_http(
        &self,
        span: &Span,
        status: Option<http::StatusCode>,
        error: Option<&'static str>,
    ) {
        let seconds = self.seconds();
        let (method, scheme, version) = self.labels();
        let status_label = status.map_or("", labels::status);
        let register = || {
            metrics::histogram!(
                telemetry::HTTP_SERVER_REQUEST_DURATION.name,
                "http.request.method" => method,
                "url.scheme" => scheme,
                "http.route" => self.route.label.clone(),
                "network.protocol.version" => version,
                "http.response.status_code" => status_label,
            )
        };
        match (error, status) {
            (Some(error), _) => metrics::histogram!(
                telemetry::HTTP_SERVER_REQUEST_DURATION.name,
                "http.request.method" => method,
                "url.scheme" => scheme,
                "http.route" => self.route.label.clone(),
                "network.protocol.version" => version,
                "http.response.status_code" => status_label,
                "error.type" => error,
            )
            .record(seconds),
            (None, Some(status)) => {
                let key = self.key | u32::from(status.as_u16()) << 8;
                self.route.record(key, seconds, register)
            }
            (None, None) => register().record(seconds),
        }
        if span.is_disabled() {
            return;
        }
        if let Some(status) = status {
            span.record("http.response.status_code", i64::from(status.as_u16()));
        }
        if let Some(error) = error {
            span.record("error.type", error);
        }
        // 5xx and errors mark the server span as failed; 4xx does not (a rejection of bad
        // input still names its reason in `error.type`).
        if status.is_none_or(|status| status.is_server_error()) {
            span.record("otel.status_code", "ERROR");
        }
    }

    fn finish_grpc(&self, span: &Span, code: Code, error: Option<&'static str>) {
        let seconds = self.seconds();
        match error {
            Some(error) => metrics::histogram!(
                telemetry::RPC_SERVER_CALL_DURATION.name,
                "rpc.system.name" => "grpc",
                "rpc.method" => self.route.label.clone(),
                "rpc.status_code" => code.as_str(),
                "error.type" => error,
            )
            .record(seconds),
            None => self
                .route
                .record(GRPC_KEY | u32::from(code.as_u8()), seconds, || {
                    metrics::histogram!(
                        telemetry::RPC_SERVER_CALL_DURATION.name,
                        "rpc.system.name" => "grpc",
                        "rpc.method" => self.route.label.clone(),
                        "rpc.status_code" => code.as_str(),
                    )
                }),
        }
        if span.is_disabled() {
            return;
        }
        span.record("rpc.status_code", code.as_str());
        if let Some(error) = error {
            span.record("error.type", error);
        }
        if is_server_error(code) {
            span.record("otel.status_code", "ERROR");
        }
    }

    /// The service failed with an error of type `E` (no response).
    pub(crate) fn fail<E>(&self, span: &Span) {
        let kind = std::any::type_name::<E>();
        if self.grpc {
            self.finish_grpc(span, Code::Unknown, Some(kind));
        } else {
            self.finish_http(span, None, Some(kind));
        }
    }

    /// A gRPC call ended with `code`. Its `error.type` is steadfast's rejection reason if it
    /// has one, else the code when the default classification calls it a server error.
    fn finish_grpc_code(&self, span: &Span, code: Code, rejection: Option<&'static str>) {
        let error = rejection.or_else(|| is_server_error(code).then(|| code.as_str()));
        self.finish_grpc(span, code, error);
    }
}

/// Whether a gRPC code is a server error (the OpenTelemetry RPC conventions' list).
fn is_server_error(code: Code) -> bool {
    DefaultClassifier::new()
        .classify_grpc_code(code)
        .is_failure()
}

/// `http.server.active_requests`, held while an HTTP request is served.
pub(crate) struct Active {
    gauge: metrics::Gauge,
}

impl Active {
    pub(crate) fn start(gauges: &ActiveGauges, method: usize, https: bool) -> Self {
        let gauge = gauges[method * 2 + usize::from(https)]
            .get_or_init(|| {
                metrics::gauge!(
                    telemetry::HTTP_SERVER_ACTIVE_REQUESTS.name,
                    "http.request.method" => labels::METHODS[method],
                    "url.scheme" => if https { "https" } else { "http" },
                )
            })
            .clone();
        gauge.increment(1.0);
        Self { gauge }
    }
}

/// The `http.server.active_requests` gauge of each method and scheme, registered on first use:
/// twenty label sets at most, so a request costs no key building.
pub(crate) type ActiveGauges = [std::sync::OnceLock<metrics::Gauge>; 20];

impl Drop for Active {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// A gRPC call whose status is in its trailers: measured when its response body ends.
pub struct EndOfCall {
    request: Request,
    span: Span,
    done: bool,
}

impl OnEndOfStream for EndOfCall {
    fn on_end(mut self, trailers: Option<&HeaderMap>) {
        self.done = true;
        let code = trailers
            .and_then(Code::from_headers)
            .unwrap_or(Code::Unknown);
        self.request.finish_grpc_code(&self.span, code, None);
    }

    fn on_error(mut self) {
        self.done = true;
        self.request
            .finish_grpc(&self.span, Code::Unknown, Some("stream_error"));
    }
}

impl Drop for EndOfCall {
    fn drop(&mut self) {
        if !self.done {
            // The body was dropped before its end: the caller went away.
            self.request
                .finish_grpc(&self.span, Code::Cancelled, Some(Code::Cancelled.as_str()));
        }
    }
}

impl std::fmt::Debug for EndOfCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndOfCall").finish_non_exhaustive()
    }
}

/// The response body of [`Observe`](super::Observe): the inner body, which measures a streaming
/// gRPC call when it ends.
pub type ObserveBody<B> = TrackedBody<B, EndOfCall>;

pin_project! {
    /// The response future of [`Observe`](super::Observe): polls the inner future inside the
    /// request's span and measures the request when its response head is ready.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        request: Option<Request>,
        span: Span,
        active: Option<Active>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, request: Request, span: Span, active: Option<Active>) -> Self {
        Self {
            inner,
            request: Some(request),
            span,
            active,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ObserveBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        let request = this
            .request
            .take()
            .expect("ResponseFuture polled after completion");
        drop(this.active.take());
        let span = this.span.clone();
        Poll::Ready(match result {
            Ok(response) => {
                let pending = finish(request, &span, &response);
                Ok(response.map(|body| TrackedBody::new(body, pending)))
            }
            Err(error) => {
                request.fail::<E>(&span);
                Err(error)
            }
        })
    }
}

/// Measures a request whose response head is ready, or returns the tracker that will once its
/// gRPC status arrives in the trailers.
#[inline(always)]
pub(crate) fn finish<B>(
    request: Request,
    span: &Span,
    response: &Response<B>,
) -> Option<EndOfCall> {
    let rejection = response
        .extensions()
        .get::<Rejection>()
        .map(|rejection| rejection.kind().as_str());
    if request.grpc {
        match Code::from_headers(response.headers()) {
            Some(code) => {
                request.finish_grpc_code(span, code, rejection);
                None
            }
            None => Some(EndOfCall {
                request,
                span: span.clone(),
                done: false,
            }),
        }
    } else {
        let status = response.status();
        let error = rejection.or_else(|| status.is_server_error().then(|| labels::status(status)));
        request.finish_http(span, Some(status), error);
        None
    }
}
