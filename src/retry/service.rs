//! The retry layer, its service and its response future.
//!
//! Long on purpose: the layer, the service and the retry future's state machine (backoff,
//! budget, replayed body, pushback) stay together; the states only read well next to each
//! other.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use metrics::SharedString;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::body::ReplayBody;
use super::budget::{BudgetSnapshot, RetryBudget};
use super::config::{ConfigError, RetryConfig};
use super::decide::{self, Verdict};
use crate::core::clock::{self, Instant};
use crate::core::telemetry;
use crate::core::{Deadline, Error, Origin, Rejection, RejectionKind, TypedErrors};

/// A request's own say on whether it may be retried, put in its extensions; it overrides the
/// method rule of [`RetryConfig::methods`].
///
/// ```
/// use steadfast::retry::Retryable;
///
/// let mut request = http::Request::post("http://payments/charge").body(()).unwrap();
/// // This POST carries an idempotency key, so sending it twice is safe.
/// request.extensions_mut().insert(Retryable::Yes);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retryable {
    /// Retry this request under the layer's rules, whatever its method.
    Yes,
    /// Never retry this request.
    No,
}

/// How many times a request has been sent before: put in the extensions of each retry (absent
/// on the first attempt), as OpenTelemetry's `http.request.resend_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResendCount(pub u32);

/// How a [`Retry`] reads its client's errors and says its own.
///
/// [`TypedErrors`] (the default) is for a client whose errors are its own (hyper's, tonic's
/// transport errors): the retry layer answers [`Error<E>`]. [`OverTyped`] is for a client stack
/// that already answers `Error<E>` (steadfast layers in typed-errors mode): the errors are passed
/// on as they are, and a per-attempt `Timeout` rejection among them is retried.
pub trait AttemptErrors<E>: sealed::Sealed {
    /// The error the retry layer answers.
    type Error;
    /// The client's error, passed on.
    fn inner(error: E) -> Self::Error;
    /// The retry layer's own refusal.
    fn rejected(rejection: Rejection) -> Self::Error;
    /// The steadfast rejection the client's error is, if it is one.
    fn rejection(error: &E) -> Option<&Rejection>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::core::TypedErrors {}
    impl Sealed for super::OverTyped {}
}

/// The [`AttemptErrors`] mode for clients that already answer [`Error<E>`]: see there.
#[derive(Clone, Copy, Debug, Default)]
pub struct OverTyped;

impl<E> AttemptErrors<E> for TypedErrors {
    type Error = Error<E>;

    #[inline]
    fn inner(error: E) -> Error<E> {
        Error::Inner(error)
    }

    fn rejected(rejection: Rejection) -> Error<E> {
        Error::Rejected(rejection)
    }

    fn rejection(_: &E) -> Option<&Rejection> {
        None
    }
}

impl<E> AttemptErrors<Error<E>> for OverTyped {
    type Error = Error<E>;

    #[inline]
    fn inner(error: Error<E>) -> Error<E> {
        error
    }

    fn rejected(rejection: Rejection) -> Error<E> {
        Error::Rejected(rejection)
    }

    fn rejection(error: &Error<E>) -> Option<&Rejection> {
        error.rejection()
    }
}

/// The shared state of a retry policy: its settings and its budget. Clones share both.
#[derive(Clone)]
pub struct RetryHandle {
    inner: Arc<Shared>,
}

struct Shared {
    config: RetryConfig,
    budget: RetryBudget,
    label: SharedString,
}

/// What a [`RetryHandle`] tells: its name and its budget's state.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetrySnapshot {
    /// The dependency's name.
    pub name: String,
    /// The budget over its window.
    pub budget: BudgetSnapshot,
}

impl RetryHandle {
    /// A retry policy with its own budget.
    ///
    /// # Errors
    /// A [`ConfigError`] from [`RetryConfig::validate`].
    pub fn new(config: RetryConfig) -> Result<Self, ConfigError> {
        let budget = RetryBudget::new(config.budget)?;
        Self::with_budget(config, budget)
    }

    /// A retry policy spending `budget`, which other policies may share (its settings replace
    /// [`RetryConfig::budget`]).
    ///
    /// # Errors
    /// A [`ConfigError`] from [`RetryConfig::validate`].
    pub fn with_budget(config: RetryConfig, budget: RetryBudget) -> Result<Self, ConfigError> {
        config.validate()?;
        let label = SharedString::from_shared(Arc::<str>::from(config.name.as_str()));
        Ok(Self {
            inner: Arc::new(Shared {
                config,
                budget,
                label,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RetryConfig {
        &self.inner.config
    }

    /// The budget.
    pub fn budget(&self) -> &RetryBudget {
        &self.inner.budget
    }

    /// The name and the budget's state.
    pub fn snapshot(&self) -> RetrySnapshot {
        RetrySnapshot {
            name: self.inner.config.name.clone(),
            budget: self.inner.budget.snapshot(),
        }
    }

    /// Whether `request` may be retried at all (its method, its gRPC method or its own say).
    pub(crate) fn eligible<B>(&self, request: &Request<B>) -> bool {
        let config = &self.inner.config;
        if config.max_retries == 0 {
            return false;
        }
        match request.extensions().get::<Retryable>() {
            Some(Retryable::Yes) => true,
            Some(Retryable::No) => false,
            None => {
                config.methods.contains(request.method())
                    || config
                        .idempotent_grpc
                        .iter()
                        .any(|path| path == request.uri().path())
            }
        }
    }
}

impl fmt::Debug for RetryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryHandle")
            .field("config", &self.inner.config)
            .field("budget", &self.inner.budget)
            .finish()
    }
}

/// Retries outbound calls under a [`RetryConfig`], spending a [`RetryBudget`]: see the
/// [module docs](super).
pub struct RetryLayer<M = TypedErrors> {
    handle: RetryHandle,
    _mode: PhantomData<fn() -> M>,
}

impl RetryLayer {
    /// A layer with its own budget: every service it makes (and their clones) shares it.
    ///
    /// # Errors
    /// A [`ConfigError`] from [`RetryConfig::validate`].
    pub fn new(config: RetryConfig) -> Result<Self, ConfigError> {
        Ok(Self::shared(RetryHandle::new(config)?))
    }

    /// A layer on an existing policy and budget, shared with every other layer made from it.
    pub fn shared(handle: RetryHandle) -> Self {
        Self {
            handle,
            _mode: PhantomData,
        }
    }
}

impl<M> RetryLayer<M> {
    /// The policy's handle.
    pub fn handle(&self) -> &RetryHandle {
        &self.handle
    }

    /// For a client stack that already answers [`Error<E>`]: see [`OverTyped`].
    pub fn over_typed(self) -> RetryLayer<OverTyped> {
        RetryLayer {
            handle: self.handle,
            _mode: PhantomData,
        }
    }
}

impl<M> Clone for RetryLayer<M> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _mode: PhantomData,
        }
    }
}

impl<M> fmt::Debug for RetryLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("handle", &self.handle)
            .finish()
    }
}

impl<S, M> Layer<S> for RetryLayer<M> {
    type Service = Retry<S, M>;

    fn layer(&self, inner: S) -> Retry<S, M> {
        Retry {
            inner,
            handle: self.handle.clone(),
            _mode: PhantomData,
        }
    }
}

/// Retries the calls of its inner client: see [`RetryLayer`].
///
/// The client gets `Request<ReplayBody<B>>`: the request's body kept for a retry, or streamed
/// through once. The client must be `Clone` (a retry calls a clone, as tower's `Retry` does),
/// and the request body `Unpin` (hyper's, Axum's, tonic's and `http-body-util`'s bodies are).
pub struct Retry<S, M = TypedErrors> {
    inner: S,
    handle: RetryHandle,
    _mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for Retry<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            handle: self.handle.clone(),
            _mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for Retry<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("handle", &self.handle)
            .finish()
    }
}

impl<S, M> Retry<S, M> {
    /// A retrying service with its own budget, as [`RetryLayer::new`] makes.
    ///
    /// # Errors
    /// A [`ConfigError`] from [`RetryConfig::validate`].
    pub fn new(inner: S, config: RetryConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            inner,
            handle: RetryHandle::new(config)?,
            _mode: PhantomData,
        })
    }

    /// The policy's handle.
    pub fn handle(&self) -> &RetryHandle {
        &self.handle
    }

    /// The inner client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner client.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB, M> Service<Request<B>> for Retry<S, M>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    B: Body + Unpin,
    M: AttemptErrors<S::Error>,
{
    type Response = Response<RB>;
    type Error = M::Error;
    type Future = ResponseFuture<S, B, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(M::inner)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let handle = self.handle.clone();
        let started = clock::now();
        // The layers inside (a dependency policy's admission) read this instant, not the clock.
        let _entry = clock::enter(started);
        handle.inner.budget.deposit_at(started);
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        if !handle.eligible(&request) {
            let future = service.call(request.map(ReplayBody::stream));
            return ResponseFuture::new(handle, service, None, State::Calling { future }, started);
        }
        let deadline = Deadline::of(&request).map(Deadline::instant);
        let (parts, body) = request.into_parts();
        let max = handle.inner.config.max_replay_bytes;
        if body.is_end_stream() {
            let kept = Kept {
                parts,
                data: Bytes::new(),
                trailers: None,
                deadline,
            };
            let future = service.call(kept.request(0));
            return ResponseFuture::new(
                handle,
                service,
                Some(kept),
                State::Calling { future },
                started,
            );
        }
        if body.size_hint().lower() > max as u64 {
            let future = service.call(Request::from_parts(parts, ReplayBody::stream(body)));
            return ResponseFuture::new(handle, service, None, State::Calling { future }, started);
        }
        let collect = Collect {
            parts,
            body,
            data: BytesMut::new(),
            trailers: None,
            deadline,
        };
        ResponseFuture::new(handle, service, None, State::Collecting, started).collecting(collect)
    }
}

/// A request kept to be sent again.
struct Kept {
    parts: Parts,
    data: Bytes,
    trailers: Option<Box<HeaderMap>>,
    deadline: Option<Instant>,
}

impl Kept {
    /// The request to send; `resend` is how many times it was sent before.
    fn request<B: Body>(&self, resend: u32) -> Request<ReplayBody<B>> {
        let mut request = Request::from_parts(
            self.parts.clone(),
            ReplayBody::full(self.data.clone(), self.trailers.clone()),
        );
        if resend > 0 {
            request.extensions_mut().insert(ResendCount(resend));
        }
        request
    }
}

/// A request body being read before the first attempt.
struct Collect<B> {
    parts: Parts,
    body: B,
    data: BytesMut,
    trailers: Option<Box<HeaderMap>>,
    deadline: Option<Instant>,
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Collecting,
        Calling { #[pin] future: F },
        Waiting { #[pin] sleep: Sleep },
        Readying,
        Done,
    }
}

pin_project! {
    /// The response future of [`Retry`].
    pub struct ResponseFuture<S, B, M>
    where
        S: Service<Request<ReplayBody<B>>>,
        B: Body,
    {
        #[pin]
        state: State<S::Future>,
        handle: RetryHandle,
        service: S,
        kept: Option<Kept>,
        // Boxed: only a call whose body must be read first pays for its room (it allocates for
        // the bytes anyway), and every other call's future stays small.
        collect: Option<Box<Collect<B>>>,
        retries: u32,
        started: Instant,
        _mode: PhantomData<fn() -> M>,
    }
}

impl<S, B, M> ResponseFuture<S, B, M>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    fn new(
        handle: RetryHandle,
        service: S,
        kept: Option<Kept>,
        state: State<S::Future>,
        started: Instant,
    ) -> Self {
        Self {
            state,
            handle,
            service,
            kept,
            collect: None,
            retries: 0,
            started,
            _mode: PhantomData,
        }
    }

    fn collecting(mut self, collect: Collect<B>) -> Self {
        self.collect = Some(Box::new(collect));
        self
    }
}

impl<S, B, M> fmt::Debug for ResponseFuture<S, B, M>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB, M> Future for ResponseFuture<S, B, M>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    B: Body + Unpin,
    M: AttemptErrors<S::Error>,
{
    type Output = Result<Response<RB>, M::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collecting => {
                    let max = this.handle.inner.config.max_replay_bytes;
                    let collect = this.collect.as_mut().expect("collecting holds the body");
                    match ready!(Pin::new(&mut collect.body).poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(mut data) => {
                                let fits = collect.data.len() + data.remaining() <= max;
                                while data.has_remaining() {
                                    let chunk = data.chunk();
                                    collect.data.extend_from_slice(chunk);
                                    let read = chunk.len();
                                    data.advance(read);
                                }
                                if fits {
                                    continue;
                                }
                                // Too large to keep: send what was read, then the rest, once.
                                let Collect {
                                    parts, body, data, ..
                                } = *this.collect.take().expect("collecting holds the body");
                                let body = ReplayBody::prefixed(data.freeze(), body);
                                let future = this.service.call(Request::from_parts(parts, body));
                                this.state.set(State::Calling { future });
                            }
                            Err(frame) => {
                                if let Ok(trailers) = frame.into_trailers() {
                                    collect.trailers = Some(Box::new(trailers));
                                }
                            }
                        },
                        Some(Err(error)) => {
                            // The body broke while it was read: the client gets what was read
                            // and then the error, so that it fails the call; no retry.
                            let Collect { parts, data, .. } =
                                *this.collect.take().expect("collecting holds the body");
                            let body = ReplayBody::failed(data.freeze(), error);
                            let future = this.service.call(Request::from_parts(parts, body));
                            this.state.set(State::Calling { future });
                        }
                        None => {
                            let Collect {
                                parts,
                                data,
                                trailers,
                                deadline,
                                ..
                            } = *this.collect.take().expect("collecting holds the body");
                            let kept = Kept {
                                parts,
                                data: data.freeze(),
                                trailers,
                                deadline,
                            };
                            let future = this.service.call(kept.request(0));
                            *this.kept = Some(kept);
                            *this.started = clock::now();
                            this.state.set(State::Calling { future });
                        }
                    }
                }
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    let Some(kept) = this.kept.as_ref() else {
                        this.state.set(State::Done);
                        return Poll::Ready(result.map_err(M::inner));
                    };
                    let config = &this.handle.inner.config;
                    let verdict = match &result {
                        Ok(response) => decide::response(config, response),
                        Err(error) => decide::error::<_, M>(config, error),
                    };
                    let Verdict::Retry { reason, after } = verdict else {
                        this.state.set(State::Done);
                        return Poll::Ready(result.map_err(M::inner));
                    };
                    if *this.retries >= config.max_retries {
                        this.state.set(State::Done);
                        return Poll::Ready(result.map_err(M::inner));
                    }
                    let wait = match after {
                        Some(after) if after > config.max_retry_after => {
                            this.state.set(State::Done);
                            return Poll::Ready(result.map_err(M::inner));
                        }
                        Some(after) => after,
                        None => config.backoff_for(*this.retries + 1),
                    };
                    let now = clock::now();
                    if let Some(deadline) = kept.deadline {
                        // An attempt is expected to take as long as the last one did.
                        let needed = now
                            .saturating_duration_since(*this.started)
                            .max(Duration::from_millis(1));
                        if clock::saturating_add(now, wait.saturating_add(needed)) > deadline {
                            this.state.set(State::Done);
                            return Poll::Ready(result.map_err(M::inner));
                        }
                    }
                    let label = this.handle.inner.label.clone();
                    if !this.handle.inner.budget.try_withdraw() {
                        metrics::counter!(telemetry::RETRY_BUDGET_EXHAUSTED.name, "dependency" => label)
                            .increment(1);
                        this.state.set(State::Done);
                        let detail = match &result {
                            Ok(response) => format!(
                                "the retry budget of `{}` is spent; the last attempt was answered {}",
                                config.name,
                                response.status().as_u16()
                            ),
                            Err(_) => format!(
                                "the retry budget of `{}` is spent; the last attempt failed ({})",
                                config.name,
                                reason.as_str()
                            ),
                        };
                        return Poll::Ready(Err(M::rejected(
                            Rejection::new(RejectionKind::RetryBudgetExhausted, Origin::Retry)
                                .with_detail(detail),
                        )));
                    }
                    metrics::counter!(telemetry::RETRIES.name, "dependency" => label, "reason" => reason.as_str())
                        .increment(1);
                    drop(result);
                    *this.retries += 1;
                    if wait.is_zero() {
                        this.state.set(State::Readying);
                    } else {
                        this.state.set(State::Waiting {
                            sleep: tokio::time::sleep(wait),
                        });
                    }
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    if let Err(error) = ready!(this.service.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(M::inner(error)));
                    }
                    let kept = this.kept.as_ref().expect("a retry keeps its request");
                    *this.started = clock::now();
                    let future = this.service.call(kept.request(*this.retries));
                    this.state.set(State::Calling { future });
                }
                StateProj::Done => panic!("retry::ResponseFuture polled after completion"),
            }
        }
    }
}
