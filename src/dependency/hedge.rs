//! Hedging: a second attempt when the first is slower than the dependency usually is.
//!
//! Long because of its unit tests (about a sixth of the file).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use metrics::SharedString;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use crate::core::ConfigError;
use crate::core::clock::{self, Instant};
use crate::core::map::Edge;
use crate::core::sync::{AtomicU64, Ordering};
use crate::core::telemetry;
use crate::retry::{ReplayBody, RetryBudget};

/// When to send the second attempt of a hedged call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HedgeDelay {
    /// This percentile (0–100, exclusive) of the dependency's recent latencies.
    Percentile(f64),
    /// A fixed delay.
    Fixed(Duration),
}

/// Hedging of a dependency's idempotent calls (opt-in): when the first attempt has not
/// answered after the [delay](Self::delay), a second one is sent; the first answer wins and the
/// other attempt is cancelled. Each hedge spends one retry from the dependency's budget, so
/// hedging can add at most the budget's share of calls.
///
/// Defaults: the 95th percentile of the latencies of the last 10 to 20 seconds (a hedge for
/// the slowest 5 %: Dean and Barroso's "The Tail at Scale"), no hedge before 100 latencies are
/// known (a percentile of fewer says little), and never earlier than 1 ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeConfig {
    pub(crate) delay: HedgeDelay,
    pub(crate) min_samples: u32,
    pub(crate) min_delay: Duration,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl HedgeConfig {
    /// The defaults above.
    pub const fn new() -> Self {
        Self {
            delay: HedgeDelay::Percentile(95.0),
            min_samples: 100,
            min_delay: Duration::from_millis(1),
        }
    }

    /// When to hedge. Default the 95th percentile.
    pub fn delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// Latencies needed before a percentile delay is used. Default 100.
    pub fn min_samples(mut self, samples: u32) -> Self {
        self.min_samples = samples;
        self
    }

    /// The shortest delay. Default 1 ms.
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.delay {
            HedgeDelay::Percentile(percentile) if !(percentile > 0.0 && percentile < 100.0) => {
                Err(ConfigError::new(
                    "hedge.delay",
                    format!("a percentile between 0 and 100, got {percentile}"),
                ))
            }
            HedgeDelay::Fixed(delay) if delay.is_zero() || delay > Duration::from_secs(3_600) => {
                Err(ConfigError::new(
                    "hedge.delay",
                    format!("above zero and at most 1 h, got {delay:?}"),
                ))
            }
            _ if self.min_delay > Duration::from_secs(3_600) => Err(ConfigError::new(
                "hedge.min_delay",
                format!("at most 1 h, got {:?}", self.min_delay),
            )),
            _ => Ok(()),
        }
    }
}

/// Latency buckets: the first ends at 100 µs, each next one 2^(1/4) (about 19 %) wider, the
/// last (number 63) at about 5.5 s and open above.
const BUCKETS: usize = 64;
const FIRST_NANOS: f64 = 100_000.0;
/// The histogram keeps two generations of this length: percentiles cover 10 to 20 seconds.
const GENERATION: Duration = Duration::from_secs(10);
/// A percentile is recomputed once every this many calls (and cached in between).
const RECOMPUTE_EVERY: u64 = 32;
const NO_DELAY: u64 = u64::MAX;

fn bucket_of(latency: Duration) -> usize {
    let nanos = clock::nanos(latency) as f64;
    if nanos <= FIRST_NANOS {
        return 0;
    }
    ((nanos / FIRST_NANOS).log2() * 4.0)
        .ceil()
        .min((BUCKETS - 1) as f64) as usize
}

fn upper_of(bucket: usize) -> Duration {
    Duration::from_nanos((FIRST_NANOS * (bucket as f64 / 4.0).exp2()) as u64)
}

/// A latency histogram of two rotating generations, lock-free (atomic counts). A generation is
/// zeroed by the first call that finds it stale; a count landing in the moment between is lost,
/// which a percentile over hundreds of calls does not notice.
struct Histogram {
    generations: [Generation; 2],
    origin: Instant,
}

struct Generation {
    epoch: AtomicU64,
    counts: [AtomicU64; BUCKETS],
}

impl Generation {
    fn new() -> Self {
        Self {
            epoch: AtomicU64::new(u64::MAX),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Histogram {
    fn new() -> Self {
        Self {
            generations: [Generation::new(), Generation::new()],
            origin: clock::now(),
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        clock::nanos(now.saturating_duration_since(self.origin)) / clock::nanos(GENERATION)
    }

    fn record(&self, now: Instant, latency: Duration) {
        let epoch = self.epoch(now);
        let generation = &self.generations[(epoch % 2) as usize];
        let seen = generation.epoch.load(Ordering::Acquire);
        if seen != epoch
            && generation
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for count in &generation.counts {
                count.store(0, Ordering::Relaxed);
            }
        }
        generation.counts[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper end of the bucket holding the `percentile`, over the current and the previous
    /// generation; `None` below `min_samples`.
    fn percentile(&self, now: Instant, percentile: f64, min_samples: u32) -> Option<Duration> {
        let epoch = self.epoch(now);
        let mut counts = [0u64; BUCKETS];
        for generation in &self.generations {
            let at = generation.epoch.load(Ordering::Acquire);
            if at == epoch || at.checked_add(1) == Some(epoch) {
                for (sum, count) in counts.iter_mut().zip(&generation.counts) {
                    *sum += count.load(Ordering::Relaxed);
                }
            }
        }
        let total: u64 = counts.iter().sum();
        if total == 0 || total < u64::from(min_samples) {
            return None;
        }
        let rank = ((percentile / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(upper_of(bucket));
            }
        }
        Some(upper_of(BUCKETS - 1))
    }
}

/// The hedging state of one dependency policy.
pub(crate) struct Hedging {
    config: HedgeConfig,
    histogram: Histogram,
    cached: AtomicU64,
    calls: AtomicU64,
}

impl Hedging {
    pub(crate) fn new(config: HedgeConfig) -> Self {
        Self {
            config,
            histogram: Histogram::new(),
            cached: AtomicU64::new(NO_DELAY),
            calls: AtomicU64::new(0),
        }
    }

    /// The delay after which a call started `now` is hedged, if it is.
    fn delay(&self, now: Instant) -> Option<Duration> {
        let delay = match self.config.delay {
            HedgeDelay::Fixed(delay) => Some(delay),
            HedgeDelay::Percentile(percentile) => {
                if self.calls.fetch_add(1, Ordering::Relaxed) % RECOMPUTE_EVERY == 0 {
                    let delay = self
                        .histogram
                        .percentile(now, percentile, self.config.min_samples);
                    self.cached
                        .store(delay.map_or(NO_DELAY, clock::nanos), Ordering::Relaxed);
                }
                match self.cached.load(Ordering::Relaxed) {
                    NO_DELAY => None,
                    nanos => Some(Duration::from_nanos(nanos)),
                }
            }
        };
        delay.map(|delay| delay.max(self.config.min_delay))
    }

    fn record(&self, started: Instant) {
        if matches!(self.config.delay, HedgeDelay::Percentile(_)) {
            let now = clock::now();
            self.histogram
                .record(now, now.saturating_duration_since(started));
        }
    }
}

/// What a hedged call needs besides its service: the state, the budget, the metric label.
#[derive(Clone)]
pub(crate) struct HedgeContext {
    pub(crate) hedging: Option<std::sync::Arc<Hedging>>,
    pub(crate) budget: RetryBudget,
    pub(crate) label: SharedString,
}

/// Sends a second attempt of a slow idempotent call: see [`HedgeConfig`]. Public only as a
/// type parameter of the dependency policy's response future.
#[derive(Clone)]
pub struct Hedge<S> {
    pub(crate) inner: S,
    // Shared: a retry clones the service on every call.
    pub(crate) context: std::sync::Arc<HedgeContext>,
}

impl<S> Hedge<S> {
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

impl<S: fmt::Debug> fmt::Debug for Hedge<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Service<Request<ReplayBody<B>>> for Hedge<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    B: Body,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = HedgeFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReplayBody<B>>) -> Self::Future {
        // Each primary attempt after the first is a retry (a hedge's copy is sent below).
        if request
            .extensions()
            .get::<crate::retry::ResendCount>()
            .is_some()
        {
            super::service::with_edge(Edge::retried);
        }
        let Some(hedging) = &self.context.hedging else {
            return HedgeFuture::single(self.inner.call(request));
        };
        let started = clock::now();
        let delay = hedging.delay(started);
        let copy = delay.and_then(|_| {
            let body = request.body().try_clone()?;
            let mut copy = Request::new(body);
            *copy.method_mut() = request.method().clone();
            *copy.uri_mut() = request.uri().clone();
            *copy.version_mut() = request.version();
            *copy.headers_mut() = request.headers().clone();
            *copy.extensions_mut() = request.extensions().clone();
            Some(copy)
        });
        let record = Some((hedging.clone(), started));
        let primary = self.inner.call(request);
        let hedged = match (copy, delay) {
            (Some(copy), Some(delay)) => Some(Box::pin(Hedged {
                secondary: None,
                timer: tokio::time::sleep(delay),
                spare: Some((self.inner.clone(), copy)),
                context: self.context.clone(),
            })),
            _ => None,
        };
        HedgeFuture {
            primary,
            hedged,
            record,
        }
    }
}

pin_project! {
    /// The future of a possibly hedged call.
    pub struct HedgeFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
        B: Body,
    {
        #[pin]
        primary: S::Future,
        // Boxed: only a call that may be hedged pays for the second attempt's room.
        hedged: Option<Pin<Box<Hedged<S, B>>>>,
        record: Option<(std::sync::Arc<Hedging>, Instant)>,
    }
}

pin_project! {
    struct Hedged<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
        B: Body,
    {
        #[pin]
        secondary: Option<S::Future>,
        #[pin]
        timer: Sleep,
        spare: Option<(S, Request<ReplayBody<B>>)>,
        context: std::sync::Arc<HedgeContext>,
    }
}

impl<S, B> HedgeFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    fn single(primary: S::Future) -> Self {
        Self {
            primary,
            hedged: None,
            record: None,
        }
    }
}

impl<S, B> fmt::Debug for HedgeFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeFuture")
            .field(
                "hedged",
                &self
                    .hedged
                    .as_ref()
                    .is_some_and(|hedged| hedged.secondary.is_some()),
            )
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Future for HedgeFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    B: Body,
{
    type Output = Result<Response<RB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.primary.poll(cx) {
            if let (Ok(_), Some((hedging, started))) = (&result, this.record.as_ref()) {
                hedging.record(*started);
            }
            return Poll::Ready(result);
        }
        let Some(hedged) = this.hedged.as_mut() else {
            return Poll::Pending;
        };
        let mut hedged = hedged.as_mut().project();
        loop {
            if let Some(secondary) = hedged.secondary.as_mut().as_pin_mut() {
                // The first answer wins; the other attempt is dropped with this future.
                return secondary.poll(cx);
            }
            let Some((service, _)) = hedged.spare.as_mut() else {
                return Poll::Pending;
            };
            if hedged.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            match service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    // The spare client cannot take a call: no hedge; the primary answers.
                    *hedged.spare = None;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) => {}
            }
            let (mut service, copy) = hedged.spare.take().expect("checked above");
            if !hedged.context.budget.try_withdraw() {
                return Poll::Pending;
            }
            metrics::counter!(telemetry::HEDGES.name, "dependency" => hedged.context.label.clone())
                .increment(1);
            super::service::with_edge(Edge::hedged);
            hedged.secondary.set(Some(service.call(copy)));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_latencies() {
        for micros in [1u64, 100, 101, 250, 1_000, 10_000, 123_456, 5_000_000] {
            let latency = Duration::from_micros(micros);
            let bucket = bucket_of(latency);
            assert!(
                upper_of(bucket) >= latency,
                "{latency:?} in bucket {bucket}"
            );
            if bucket > 0 {
                assert!(
                    upper_of(bucket - 1) < latency,
                    "{latency:?} in bucket {bucket}"
                );
            }
        }
        assert_eq!(bucket_of(Duration::from_secs(3_600)), BUCKETS - 1);
        assert_eq!(bucket_of(Duration::MAX), BUCKETS - 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_percentile_follows_recent_latencies_only() {
        let histogram = Histogram::new();
        let now = clock::now();
        for call in 0..1_000u64 {
            let millis = if call % 20 == 0 { 100 } else { 10 };
            histogram.record(now, Duration::from_millis(millis));
        }
        let p95 = histogram.percentile(now, 95.0, 100).unwrap();
        assert!(
            p95 >= Duration::from_millis(10) && p95 < Duration::from_millis(12),
            "{p95:?}"
        );
        let p99 = histogram.percentile(now, 99.0, 100).unwrap();
        assert!(
            p99 >= Duration::from_millis(100) && p99 < Duration::from_millis(120),
            "{p99:?}"
        );
        assert_eq!(histogram.percentile(now, 95.0, 2_000), None);
        // Twenty seconds on, those latencies have left both generations.
        tokio::time::advance(Duration::from_secs(21)).await;
        assert_eq!(histogram.percentile(clock::now(), 95.0, 1), None);
        histogram.record(clock::now(), Duration::from_millis(3));
        let p = histogram.percentile(clock::now(), 95.0, 1).unwrap();
        assert!(
            p >= Duration::from_millis(3) && p < Duration::from_millis(4),
            "{p:?}"
        );
    }

    #[test]
    fn settings_are_checked() {
        for (config, key) in [
            (
                HedgeConfig::new().delay(HedgeDelay::Percentile(0.0)),
                "hedge.delay",
            ),
            (
                HedgeConfig::new().delay(HedgeDelay::Percentile(100.0)),
                "hedge.delay",
            ),
            (
                HedgeConfig::new().delay(HedgeDelay::Percentile(f64::NAN)),
                "hedge.delay",
            ),
            (
                HedgeConfig::new().delay(HedgeDelay::Fixed(Duration::ZERO)),
                "hedge.delay",
            ),
            (
                HedgeConfig::new().min_delay(Duration::MAX),
                "hedge.min_delay",
            ),
        ] {
            assert_eq!(config.validate().unwrap_err().key(), key);
        }
        assert!(HedgeConfig::new().validate().is_ok());
    }
}
