//! The instrumentation service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;
use tracing::Span;

use super::future::{Active, ObserveBody, Request as Measured, ResponseFuture, RouteMetrics};
use super::layer::Shared;
use super::span;
use crate::core::clock;
use crate::core::grpc;
use crate::core::keyed::{KeyCache, RouteKey};
use crate::core::labels;

/// Measures every request and wraps it in a server span; see the [module docs](super).
pub struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
    cache: ObserveCache,
}

/// The route last looked up by an observer, kept between its requests.
pub(crate) type ObserveCache = Arc<KeyCache<Arc<RouteMetrics>>>;

impl<S> Observe<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self::with_cache(inner, shared, Arc::default())
    }

    /// With a route cache kept by the caller: the policy stack, which builds its services per
    /// request, keeps one per policy (a fresh one per request cost an allocation and never hit).
    pub(crate) fn with_cache(inner: S, shared: Arc<Shared>, cache: ObserveCache) -> Self {
        Self {
            inner,
            shared,
            cache,
        }
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

impl<S: Clone> Clone for Observe<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ObserveBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let grpc = grpc::is_grpc(request.headers());
        let Started {
            measured,
            span,
            active,
        } = start(
            &self.shared,
            &self.cache,
            &request,
            grpc,
            RouteKey::of(&request, grpc),
        );
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, measured, span, active)
    }
}

/// What the observer keeps of a request from its arrival: its labels and start, its span and
/// the active-requests gauge it holds.
pub(crate) struct Started {
    pub(crate) measured: Measured,
    pub(crate) span: Span,
    pub(crate) active: Option<Active>,
}

/// Starts observing `request` (`grpc`: its protocol, and `route`, read once by the caller).
#[inline]
pub(crate) fn start<B>(
    shared: &Shared,
    cache: &ObserveCache,
    request: &Request<B>,
    grpc: bool,
    route: RouteKey<'_>,
) -> Started {
    let started = clock::now();
    let method_index = labels::method_index(request.method());
    let method = labels::METHODS[method_index];
    let https = request.uri().scheme_str() == Some("https");
    let scheme = if https { "https" } else { "http" };
    let version_index = labels::version_index(request.version());
    let version = labels::VERSIONS[version_index];
    // Never the raw path: the router's template, the gRPC method, or one fallback; and at
    // most a bounded number of distinct values (the rest share `overflow`).
    let route = match route {
        RouteKey::Template(template) => shared.routes.get_cached(template, cache),
        RouteKey::GrpcMethod(method) => shared.routes.get_method(method),
        RouteKey::Unmatched => shared.unmatched.clone(),
    };
    // One span per request: the one a layer further out opened for it (tower-http's
    // `TraceLayer` with `server_span`, or an outer observer), else a span of its own. With
    // no subscriber at all, no span: nothing would record it (and tracing's `log` feature
    // would otherwise format it for `log` on every enter, record and exit).
    let span = span::current().unwrap_or_else(|| {
        if !tracing::dispatcher::has_been_set() {
            Span::none()
        } else if grpc {
            span::grpc_span()
        } else {
            span::http_span(method, scheme, version)
        }
    });
    if !span.is_disabled() {
        // `{method} {route}` for HTTP, the method path for gRPC (tracing-opentelemetry
        // takes the span's name from `otel.name`).
        if grpc {
            span.record("rpc.method", &*route.label);
            span.record("otel.name", &*route.label);
        } else {
            span.record("http.route", &*route.label);
            span.record("otel.name", format!("{method} {}", route.label));
        }
    }
    let active = (!grpc).then(|| Active::start(&shared.active, method_index, https));
    let key = method_index as u32 | u32::from(https) << 4 | (version_index as u32) << 5;
    Started {
        measured: Measured {
            started,
            route,
            key,
            grpc,
        },
        span,
        active,
    }
}
