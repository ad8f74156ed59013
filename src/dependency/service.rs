//! The dependency layer: retries around guarded attempts.
//!
//! Long on purpose: the per-attempt pipeline (deadline, throttle, breaker, cap, attempt
//! timeout, measurement) is one future's states and the layer that builds it.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body::Body;
use metrics::SharedString;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::config::{ConfigError, DependencyConfig};
use super::hedge::{Hedge, HedgeContext, Hedging};
use super::measure::{ClientMetrics, Ended, Measure};
use crate::breaker::{BreakerCall, BreakerHandle, BreakerSnapshot};
use crate::core::clock::{self, Instant, Timer};
use crate::core::grpc::{self, Code};
use crate::core::map::{self, CallOutcome, DependencyNode, Edge, Probe, Probed};
use crate::core::reload::{Reloadable, Seen};
use crate::core::{
    Classified, Classify, Deadline, DefaultClassifier, Error, Origin, Protocol, Rejection,
    RejectionKind, Strict, telemetry,
};
use crate::retry::{self, OverTyped, ReplayBody, RetryConfig, RetryHandle, RetrySnapshot};
use crate::throttle::{ThrottleHandle, ThrottleSnapshot};

/// The shared state of one dependency policy: its breaker, throttle, retry budget and
/// concurrency count. Every layer and service made from it (and their clones) share it, and
/// [`reload`](Self::reload) replaces it for all of them.
#[derive(Clone)]
pub struct DependencyHandle {
    current: Arc<Reloadable<Generation>>,
}

/// One version of a policy's state; a reload makes the next.
struct Generation {
    inner: Arc<Shared>,
    retry: RetryHandle,
}

struct Shared {
    config: DependencyConfig,
    breaker: Option<BreakerHandle>,
    throttle: Option<ThrottleHandle>,
    in_flight: AtomicUsize,
    label: SharedString,
    hedging: Option<Arc<Hedging>>,
    metrics: ClientMetrics,
    /// The dependency's node in the reality map (`None` beyond the map's bound).
    node: Option<&'static DependencyNode>,
}

impl Probe for Shared {
    fn probe(&self) -> Probed {
        Probed {
            breaker: self
                .breaker
                .as_ref()
                .map(|breaker| breaker.state().as_str()),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// What a dependency policy shows now.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DependencySnapshot {
    /// The dependency's name.
    pub name: String,
    /// The breaker's state and window, if the policy has a breaker.
    pub breaker: Option<BreakerSnapshot>,
    /// The throttle's counts, if the policy throttles.
    pub throttle: Option<ThrottleSnapshot>,
    /// The retry budget.
    pub retry: RetrySnapshot,
    /// Attempts in flight.
    pub in_flight: usize,
}

impl Generation {
    fn new(config: DependencyConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let breaker = match &config.breaker {
            Some(breaker) => Some(BreakerHandle::new(
                breaker.clone().name(config.name.clone()),
            )?),
            None => None,
        };
        let throttle = config.throttle.map(ThrottleHandle::new).transpose()?;
        let retry = config
            .retry
            .clone()
            .unwrap_or_else(|| RetryConfig::new().max_retries(0))
            .name(config.name.clone());
        let retry = RetryHandle::new(retry)?;
        let label = SharedString::from_shared(Arc::<str>::from(config.name.as_str()));
        let hedging = config.hedge.map(|hedge| Arc::new(Hedging::new(hedge)));
        let node = config
            .reality_map
            .then(|| map::dependency(&config.name))
            .flatten();
        let declared = config.undeclared.is_none();
        let inner = Arc::new(Shared {
            hedging,
            metrics: ClientMetrics::new(label.clone()),
            config,
            breaker,
            throttle,
            in_flight: AtomicUsize::new(0),
            label,
            node,
        });
        if let Some(node) = node {
            let probe: Arc<dyn Probe> = inner.clone();
            node.attach(declared, Arc::downgrade(&probe));
        }
        Ok(Self { inner, retry })
    }

    /// The retry layer around guarded attempts of `client`, under this generation.
    fn build<S>(&self, client: S) -> retry::Retry<Hedge<Attempt<S>>, OverTyped> {
        let attempt = Attempt {
            client,
            shared: self.inner.clone(),
        };
        let hedge = Hedge {
            inner: attempt,
            context: Arc::new(HedgeContext {
                hedging: self.inner.hedging.clone(),
                budget: self.retry.budget().clone(),
                label: self.inner.label.clone(),
            }),
        };
        retry::RetryLayer::shared(self.retry.clone())
            .over_typed()
            .layer(hedge)
    }
}

impl DependencyHandle {
    /// The state of a new policy.
    ///
    /// # Errors
    /// A [`ConfigError`] from [`DependencyConfig::validate`].
    pub fn new(config: DependencyConfig) -> Result<Self, ConfigError> {
        telemetry::describe();
        Ok(Self {
            current: Arc::new(Reloadable::new(Generation::new(config)?)),
        })
    }

    /// Replaces the policy for every service made from this handle: each takes the new one
    /// before its next call (at its next `poll_ready`). The new policy starts fresh — a closed
    /// breaker, an empty throttle window, a full budget, its own concurrency count — as a new
    /// policy should; attempts in flight finish under the old one.
    ///
    /// # Errors
    /// A [`ConfigError`] from [`DependencyConfig::validate`]; the policy in force stays.
    pub fn reload(&self, config: DependencyConfig) -> Result<(), ConfigError> {
        let next = Generation::new(config)?;
        self.current.store(next);
        Ok(())
    }

    /// The settings in force.
    pub fn config(&self) -> DependencyConfig {
        self.current.load().inner.config.clone()
    }

    /// The breaker in force, to watch it or to open and close it by hand.
    pub fn breaker(&self) -> Option<BreakerHandle> {
        self.current.load().inner.breaker.clone()
    }

    /// The adaptive throttle in force.
    pub fn throttle(&self) -> Option<ThrottleHandle> {
        self.current.load().inner.throttle.clone()
    }

    /// The retry policy in force and its budget.
    pub fn retry(&self) -> RetryHandle {
        self.current.load().retry.clone()
    }

    /// Everything the policy holds now.
    pub fn snapshot(&self) -> DependencySnapshot {
        let generation = self.current.load();
        let inner = &generation.inner;
        DependencySnapshot {
            name: inner.config.name.clone(),
            breaker: inner.breaker.as_ref().map(BreakerHandle::snapshot),
            throttle: inner.throttle.as_ref().map(ThrottleHandle::snapshot),
            retry: generation.retry.snapshot(),
            in_flight: inner.in_flight.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for DependencyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DependencyHandle")
            .field("config", &self.current.load().inner.config)
            .finish_non_exhaustive()
    }
}

/// Applies a [`DependencyConfig`] around an outbound client: see the [module docs](super).
#[derive(Clone, Debug)]
pub struct DependencyLayer {
    handle: DependencyHandle,
}

impl DependencyLayer {
    /// A layer with a policy of its own: every client it wraps (and their clones) shares the
    /// policy's breaker, throttle, budget and cap.
    ///
    /// # Errors
    /// A [`ConfigError`] from [`DependencyConfig::validate`].
    pub fn new(config: DependencyConfig) -> Result<Self, ConfigError> {
        Ok(Self::shared(DependencyHandle::new(config)?))
    }

    /// A layer on an existing policy's state.
    pub fn shared(handle: DependencyHandle) -> Self {
        Self { handle }
    }

    /// The policy's state.
    pub fn handle(&self) -> &DependencyHandle {
        &self.handle
    }
}

impl<S> Layer<S> for DependencyLayer {
    type Service = Dependency<S>;

    fn layer(&self, client: S) -> Dependency<S> {
        let seen = self.handle.current.snapshot();
        Dependency {
            inner: seen.1.build(client),
            seen,
            handle: self.handle.clone(),
        }
    }
}

/// An outbound client under a dependency policy: see [`DependencyLayer`].
///
/// It takes `Request<B>` and gives the client `Request<ReplayBody<B>>`; it answers the
/// dependency's `Response<RB>` unchanged, or an [`Error`]: [`Error::Inner`] for the client's
/// own error, [`Error::Rejected`] for a call this process did not send or gave up on.
pub struct Dependency<S> {
    inner: retry::Retry<Hedge<Attempt<S>>, OverTyped>,
    /// The generation `inner` was built under; a reload makes the service rebuild.
    seen: Seen<Generation>,
    handle: DependencyHandle,
}

impl<S: Clone> Clone for Dependency<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            seen: self.seen.clone(),
            handle: self.handle.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Dependency<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dependency")
            .field("client", self.get_ref())
            .field("handle", &self.handle)
            .finish()
    }
}

impl<S> Dependency<S> {
    /// The policy's state.
    pub fn handle(&self) -> &DependencyHandle {
        &self.handle
    }

    /// The client.
    pub fn get_ref(&self) -> &S {
        &self.inner.get_ref().inner.client
    }

    /// The client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner.get_mut().inner.client
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> S {
        self.inner.into_inner().inner.client
    }
}

impl<S, B, RB> Service<Request<B>> for Dependency<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    B: Body + Unpin,
{
    type Response = Response<RB>;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S, B, RB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.handle.current.refresh(&mut self.seen) {
            // Reloaded: the same client under the new policy.
            let client = self.get_ref().clone();
            self.inner = self.seen.1.build(client);
        }
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = &self.seen.1.inner;
        if let Some(strict @ (Strict::Report | Strict::Refuse)) = shared.config.undeclared {
            telemetry::record_undeclared_dependency(&shared.label, strict == Strict::Refuse);
        }
        // The edge of the reality map from the route being served to this dependency.
        let edge = shared
            .node
            .and_then(|dependency| map::current_route().edge(dependency));
        let started = clock::now();
        // The attempt starts at the same instant: one clock read.
        let _entry = clock::enter(started);
        let _edge = EdgeScope::enter(edge);
        let retry = &self.seen.1.retry;
        // Each branch builds the whole future in one expression (no intermediate copies).
        if shared.hedging.is_none() && !retry.eligible(&request) {
            // Never retried nor hedged: the attempt without the retry's copy of the service and
            // its bookkeeping. The call still earns the budget its share.
            retry.budget().deposit_at(started);
            return ResponseFuture {
                call: Call::Once {
                    future: self
                        .inner
                        .get_mut()
                        .inner
                        .call(request.map(ReplayBody::new)),
                },
                edge,
                started,
                _response: PhantomData,
            };
        }
        ResponseFuture {
            call: Call::Retried {
                future: self.inner.call(request),
            },
            edge,
            started,
            _response: PhantomData,
        }
    }
}

thread_local! {
    /// The reality map's edge of the dependency call being polled on this thread, for its
    /// retries and hedges.
    static EDGE: Cell<Option<&'static Edge>> = const { Cell::new(None) };
    /// When the last attempt finished on this thread during the current poll of a call (the
    /// call's end, without reading the clock again), and whether it failed as the caller sees
    /// it.
    static ATTEMPT_END: Cell<Option<(Instant, bool)>> = const { Cell::new(None) };
}

/// Counts on the edge of the call being polled, if any.
#[inline]
pub(super) fn with_edge(count: impl FnOnce(&Edge)) {
    if let Some(edge) = EDGE.with(Cell::get) {
        count(edge);
    }
}

/// Names a call's edge on the thread until dropped.
struct EdgeScope {
    previous: Option<&'static Edge>,
}

impl EdgeScope {
    #[inline]
    fn enter(edge: Option<&'static Edge>) -> Self {
        Self {
            previous: EDGE.with(|current| current.replace(edge)),
        }
    }
}

impl Drop for EdgeScope {
    #[inline]
    fn drop(&mut self) {
        EDGE.with(|current| current.set(self.previous));
    }
}

pin_project! {
    /// The response future of [`Dependency`].
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
        S: Clone,
        B: Body,
    {
        #[pin]
        call: Call<retry::ResponseFuture<Hedge<Attempt<S>>, B, OverTyped>, AttemptFuture<S::Future>>,
        edge: Option<&'static Edge>,
        started: Instant,
        _response: PhantomData<fn() -> RB>,
    }
}

pin_project! {
    /// A call under the retry layer, or one that can only be sent once.
    #[project = CallProj]
    enum Call<R, A> {
        Retried { #[pin] future: R },
        Once { #[pin] future: A },
    }
}

impl<R, A, T> Future for Call<R, A>
where
    R: Future<Output = T>,
    A: Future<Output = T>,
{
    type Output = T;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.project() {
            CallProj::Retried { future } => future.poll(cx),
            CallProj::Once { future } => future.poll(cx),
        }
    }
}

impl<S, B, RB> fmt::Debug for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    B: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    B: Body + Unpin,
{
    type Output = Result<Response<RB>, Error<S::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(edge) = *this.edge else {
            return this.call.poll(cx);
        };
        let result = {
            let _edge = EdgeScope::enter(Some(edge));
            ATTEMPT_END.with(|end| end.set(None));
            ready!(this.call.poll(cx))
        };
        // The last attempt's end if one ended in this poll (a refusal before any did reads the
        // clock).
        let last = ATTEMPT_END.with(Cell::take);
        let end = last.map_or_else(clock::now, |(end, _)| end);
        let outcome = match &result {
            Ok(response) => {
                let failed = last.map_or_else(|| is_failure(response), |(_, failed)| failed);
                if failed {
                    CallOutcome::Failed
                } else {
                    CallOutcome::Ok
                }
            }
            Err(Error::Rejected(rejection)) if rejection.kind() != RejectionKind::Timeout => {
                CallOutcome::Refused
            }
            Err(_) => CallOutcome::Failed,
        };
        edge.finish(end.saturating_duration_since(*this.started), outcome);
        Poll::Ready(result)
    }
}

/// Whether the caller sees a response as a failure: a server error, HTTP or gRPC (a streamed
/// gRPC answer is judged at its head).
fn is_failure<RB>(response: &Response<RB>) -> bool {
    match Classify::<_, ()>::classify_response(&DefaultClassifier::new(), response) {
        Classified::Done(outcome) => outcome.is_failure(),
        Classified::AtEndOfStream => false,
    }
}

/// One guarded attempt: deadline, throttle, breaker, concurrency cap, then the client under
/// the attempt's time limit. Public only as a type parameter of [`ResponseFuture`].
#[derive(Clone)]
pub struct Attempt<S> {
    client: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Attempt<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Admits one attempt, or says why not. `now` is the attempt's start.
    fn admit(
        self: &Arc<Self>,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Result<Guard, Rejection> {
        if self.config.undeclared == Some(Strict::Refuse) {
            return Err(
                Rejection::new(RejectionKind::Misconfigured, Origin::Dependency).with_detail(
                    format!(
                        "`{}` has no declared dependency policy and strict mode refuses it; \
                         the call was not sent",
                        self.config.name
                    ),
                ),
            );
        }
        if deadline.is_some_and(|deadline| deadline <= now) {
            return Err(
                Rejection::new(RejectionKind::DeadlineExpired, Origin::Dependency).with_detail(
                    "no time left before the caller's deadline; the call was not sent",
                ),
            );
        }
        if let Some(throttle) = &self.throttle {
            if let Err(rejection) = throttle.try_admit_at(now) {
                metrics::counter!(telemetry::THROTTLED.name, "dependency" => self.label.clone())
                    .increment(1);
                return Err(rejection);
            }
        }
        let mut guard = Guard {
            shared: self.clone(),
            call: None,
            slot: false,
            started: now,
        };
        if let Some(breaker) = &self.breaker {
            match breaker.admit_call() {
                Ok(call) => guard.call = Some(call),
                Err(refused) => {
                    let mut rejection = Rejection::new(RejectionKind::CircuitOpen, Origin::Breaker)
                        .with_detail(format!(
                            "the breaker of `{}` is {}; the call was not sent",
                            self.config.name,
                            refused.state()
                        ));
                    if let Some(after) = refused.retry_after() {
                        rejection = rejection.with_retry_after(after);
                    }
                    return Err(rejection);
                }
            }
        }
        if let Some(max) = self.config.max_concurrency {
            if self.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                metrics::counter!(telemetry::DEPENDENCY_CAPPED.name, "dependency" => self.label.clone())
                    .increment(1);
                return Err(
                    Rejection::new(RejectionKind::Overloaded, Origin::Dependency).with_detail(
                        format!(
                            "{max} calls to `{}` are in flight, as many as its policy allows",
                            self.config.name
                        ),
                    ),
                );
            }
            guard.slot = true;
        }
        Ok(guard)
    }
}

/// An admitted attempt's breaker permit and concurrency slot; dropped unfinished (the caller
/// gave up), it gives both back and records nothing.
struct Guard {
    shared: Arc<Shared>,
    /// The breaker's call (the breaker is the shared state's: the guard holds it already).
    call: Option<BreakerCall>,
    slot: bool,
    started: Instant,
}

impl Guard {
    /// How long the attempt has taken at `now`.
    fn took(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Records how the attempt went after `took`: `failure` for the breaker, `accepted` for
    /// the throttle.
    fn finish(&mut self, failure: bool, accepted: bool, now: Instant, took: Duration) {
        if let (Some(call), Some(breaker)) = (self.call.take(), &self.shared.breaker) {
            breaker.settle_call(call, failure, took);
        }
        if let Some(throttle) = &self.shared.throttle {
            throttle.record_at(now, accepted);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let (Some(call), Some(breaker)) = (self.call.take(), &self.shared.breaker) {
            breaker.cancel_call(call);
        }
        if self.slot {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<S, B, RB> Service<Request<ReplayBody<B>>> for Attempt<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    B: Body,
{
    type Response = Response<RB>;
    type Error = Error<S::Error>;
    type Future = AttemptFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.client.poll_ready(cx).map_err(Error::Inner)
    }

    #[inline]
    fn call(&mut self, mut request: Request<ReplayBody<B>>) -> Self::Future {
        let now = clock::now();
        let caller = Deadline::of(&request).map(Deadline::instant);
        let guard = match self.shared.admit(now, caller) {
            Ok(guard) => guard,
            Err(rejection) => {
                return AttemptFuture {
                    kind: Kind::Refused {
                        rejection: Some(rejection),
                    },
                };
            }
        };
        let own = self
            .shared
            .config
            .attempt_timeout
            .map(|timeout| clock::saturating_add(now, timeout));
        let limit = match (caller, own) {
            (Some(caller), Some(own)) => Some(caller.min(own)),
            (caller, own) => caller.or(own),
        };
        if let Some(limit) = limit {
            announce(
                &self.shared,
                &mut request,
                limit.saturating_duration_since(now),
            );
        }
        let resend = request
            .extensions()
            .get::<crate::retry::ResendCount>()
            .map_or(0, |count| count.0);
        let measure = self.shared.metrics.start(&request, resend);
        let future = {
            let _entered = measure.span.enter();
            self.client.call(request)
        };
        AttemptFuture {
            kind: Kind::Running {
                future,
                timer: Timer::new(limit),
                guard,
                measure,
            },
        }
    }
}

/// Writes the attempt's time left on the request: `grpc-timeout` (kept if the caller set a
/// shorter one), or the configured HTTP header.
fn announce<B>(shared: &Shared, request: &mut Request<B>, left: Duration) {
    let headers = request.headers_mut();
    let protocol = Protocol::of(headers);
    crate::timeout::write_time_left(
        headers,
        protocol,
        shared.config.deadline_header.as_ref(),
        left,
    );
}

pin_project! {
    /// The future of one guarded attempt.
    pub struct AttemptFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Refused { rejection: Option<Rejection> },
        Running {
            #[pin] future: F,
            #[pin] timer: Timer,
            guard: Guard,
            measure: Measure,
        },
    }
}

impl<F> fmt::Debug for AttemptFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptFuture").finish_non_exhaustive()
    }
}

/// Whether an answer (gRPC or not, its gRPC code at its head, its status) says the dependency
/// refused the call as overload.
fn refused_as_overload(is_grpc: bool, code: Option<Code>, status: StatusCode) -> bool {
    if is_grpc {
        matches!(code, Some(Code::Unavailable | Code::ResourceExhausted))
    } else {
        matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        )
    }
}

impl<F, RB, E> Future for AttemptFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { rejection } => Poll::Ready(Err(Error::Rejected(
                rejection
                    .take()
                    .expect("AttemptFuture polled after completion"),
            ))),
            KindProj::Running {
                future,
                timer,
                guard,
                measure,
            } => {
                let polled = {
                    let _entered = measure.span.enter();
                    future.poll(cx)
                };
                let metrics = &guard.shared.metrics;
                if let Poll::Ready(result) = polled {
                    let now = clock::now();
                    let took = guard.took(now);
                    return Poll::Ready(match result {
                        Ok(response) => {
                            let is_grpc = grpc::is_grpc(response.headers());
                            let code = if is_grpc {
                                Code::from_headers(response.headers())
                            } else {
                                None
                            };
                            let ended = if is_grpc {
                                // A streamed answer's status is in its trailers: OK at its head.
                                Ended::Grpc(code.unwrap_or(Code::Ok))
                            } else {
                                Ended::Http(response.status())
                            };
                            metrics.finish(measure, ended, took);
                            // A refusal as overload is the throttle's business, not a failure
                            // for the breaker: a dependency shedding half its load is working,
                            // and opening on it would refuse the half it can serve.
                            let overload = refused_as_overload(is_grpc, code, response.status());
                            let failed = is_failure(&response);
                            guard.finish(failed && !overload, !overload, now, took);
                            ATTEMPT_END.with(|end| end.set(Some((now, failed))));
                            Ok(response)
                        }
                        Err(error) => {
                            metrics.finish(measure, Ended::Failed, took);
                            guard.finish(true, false, now, took);
                            ATTEMPT_END.with(|end| end.set(Some((now, true))));
                            Err(Error::Inner(error))
                        }
                    });
                }
                ready!(timer.poll_expired(cx));
                let now = clock::now();
                let took = guard.took(now);
                ATTEMPT_END.with(|end| end.set(Some((now, true))));
                guard.shared.metrics.finish(measure, Ended::Timeout, took);
                guard.finish(true, false, now, took);
                Poll::Ready(Err(Error::Rejected(
                    Rejection::new(RejectionKind::Timeout, Origin::Dependency).with_detail(
                        format!(
                            "the attempt to call `{}` ran out of time and was cancelled",
                            guard.shared.config.name
                        ),
                    ),
                )))
            }
        }
    }
}
