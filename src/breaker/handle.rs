//! The breaker itself, behind a cloneable handle: state, figures, control and events.
//!
//! Long on purpose: the breaker's whole public surface (state, figures, control, events), each
//! documented with an example.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, SharedString};
use tokio::sync::broadcast;

use super::config::{BreakerConfig, ConfigError, SlidingWindow};
use super::state::{HalfOpenProgress, Machine, Permit, Refusal, State, Transition, Verdict};
use super::window::{CountWindow, TimeWindow, Window, WindowSnapshot};
use crate::core::clock::nanos;
use crate::core::clock::{self, Instant};
use crate::core::telemetry;

/// A circuit breaker, shared by every service and handle cloned from it.
///
/// The layer makes one per route by default; make one yourself to share it across routes or
/// clients ([`BreakerLayer::shared`](super::BreakerLayer::shared)), or to watch and
/// steer it from an admin endpoint:
///
/// ```
/// use steadfast::breaker::{BreakerConfig, BreakerHandle, State};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let breaker = BreakerHandle::new(BreakerConfig::new().name("inventory")).unwrap();
/// let mut events = breaker.subscribe();
/// breaker.force_open();
/// assert_eq!(breaker.state(), State::ForcedOpen);
/// assert_eq!(events.recv().await.unwrap().transition.to, State::ForcedOpen);
/// breaker.reset();
/// assert_eq!(breaker.state(), State::Closed);
/// # }
/// ```
#[derive(Clone)]
pub struct BreakerHandle {
    inner: Arc<Inner>,
}

struct Inner {
    machine: Machine,
    /// The breaker's clock starts here: the machine counts nanoseconds from it.
    base: Instant,
    slow_nanos: Option<u64>,
    measures_time: bool,
    automatic: bool,
    events: broadcast::Sender<BreakerEvent>,
    name: OnceLock<SharedString>,
    metrics: OnceLock<CallMetrics>,
}

/// Metric handles, registered once per breaker so that a call costs no label building.
struct CallMetrics {
    success: Counter,
    failure: Counter,
    ignored: Counter,
    cancelled: Counter,
    not_permitted: Counter,
    state: Gauge,
}

/// A state change, as broadcast to [`BreakerHandle::subscribe`]rs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BreakerEvent {
    /// The breaker's name.
    pub breaker: SharedString,
    /// From which state to which, and why.
    pub transition: Transition,
    /// When, on tokio's clock.
    pub at: Instant,
}

/// What a breaker knows right now.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The current state.
    pub state: State,
    /// The figures of the sliding window.
    pub window: WindowSnapshot,
    /// The failure rate (percent) the breaker judges by, or `None` while the window holds
    /// fewer calls than the minimum (Resilience4j reports `-1` there): "not enough calls yet"
    /// is told apart from a 0 % rate.
    pub failure_rate: Option<f64>,
    /// The slow-call rate (percent), `None` under the same condition.
    pub slow_call_rate: Option<f64>,
    /// The probes' progress while half-open: permits in use, probes completed, failed and slow.
    pub half_open: Option<HalfOpenProgress>,
    /// Trips since the breaker was last closed by successful probes or a reset.
    pub consecutive_opens: u64,
    /// How long until an open breaker lets probes through.
    pub open_for: Option<Duration>,
}

impl BreakerHandle {
    /// A breaker with these settings, for [`BreakerLayer::shared`](super::BreakerLayer::shared).
    ///
    /// # Errors
    ///
    /// The first setting [`BreakerConfig::validate`] refuses.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let name = config.name.clone().map(SharedString::from);
        Ok(Self::from_valid(&config, name))
    }

    /// A breaker from validated settings, under `name` if given (otherwise named on first use).
    pub(crate) fn from_valid(config: &BreakerConfig, name: Option<SharedString>) -> Self {
        let window = match config.window {
            SlidingWindow::Count(size) => Window::Count(CountWindow::new(size)),
            SlidingWindow::Time { buckets, bucket } => {
                Window::Time(TimeWindow::new(buckets, nanos(bucket)))
            }
        };
        let handle = Self {
            inner: Arc::new(Inner {
                measures_time: config.slow_call_duration.is_some()
                    || matches!(window, Window::Time(_)),
                machine: Machine::new(config.settings(), window),
                base: clock::now(),
                slow_nanos: config.slow_call_duration.map(nanos),
                automatic: config.automatic_half_open,
                events: broadcast::channel(64).0,
                name: OnceLock::new(),
                metrics: OnceLock::new(),
            }),
        };
        if let Some(name) = name {
            handle.name_once(|| name);
        }
        handle
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.inner.machine.state()
    }

    /// The state and the window's figures.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = self.now();
        let machine = &self.inner.machine;
        let window = machine.snapshot(now);
        let (failure_rate, slow_call_rate) = machine.rates(&window);
        BreakerSnapshot {
            state: self.state(),
            window,
            failure_rate,
            slow_call_rate,
            half_open: machine.half_open_progress(),
            consecutive_opens: self.inner.machine.consecutive_opens(),
            open_for: self
                .inner
                .machine
                .open_until()
                .map(|until| Duration::from_nanos(until.saturating_sub(now))),
        }
    }

    /// The breaker's name, once known.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.get().map(|name| &**name)
    }

    /// Reject every call until [`reset`](Self::reset); the window starts empty.
    pub fn force_open(&self) {
        self.force(State::ForcedOpen, false);
    }

    /// Trip now, as if the failure threshold had been reached: open for the open duration, then
    /// probe.
    pub fn trip(&self) {
        self.force(State::Open, false);
    }

    /// Go half-open now (Resilience4j's `transitionToHalfOpenState`): the probes decide, within
    /// the half-open maximum wait.
    pub fn half_open(&self) {
        self.force(State::HalfOpen, false);
    }

    /// Close now (Resilience4j's `transitionToClosedState`): an empty window; the open backoff
    /// is kept, so a breaker closed by hand that trips again waits as long as it would have.
    pub fn close(&self) {
        self.force(State::Closed, false);
    }

    /// Let every call through, recording nothing (an empty window), never tripping, until
    /// [`reset`](Self::reset), as Resilience4j's disabled state.
    pub fn disable(&self) {
        self.force(State::Disabled, false);
    }

    /// Measure and compute the rates from an empty window, never trip, until
    /// [`reset`](Self::reset).
    pub fn metrics_only(&self) {
        self.force(State::MetricsOnly, false);
    }

    /// Back to closed with an empty window and no backoff. Any timer armed for the previous
    /// state is disarmed (it checks the state's generation before acting).
    pub fn reset(&self) {
        self.force(State::Closed, true);
    }

    /// State changes from now on. A receiver that falls more than 64 events behind loses the
    /// oldest (see `tokio::sync::broadcast`).
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.inner.events.subscribe()
    }

    fn force(&self, state: State, forget_backoff: bool) {
        self.inner
            .machine
            .force(state, forget_backoff, self.now(), &mut |transition| {
                self.announce(transition)
            });
    }

    /// Nanoseconds on the breaker's clock.
    fn now(&self) -> u64 {
        nanos(clock::now().saturating_duration_since(self.inner.base))
    }

    /// Sets the name if none is set yet, and registers the metrics under it. Cheap once done:
    /// one check of a `OnceLock`.
    pub(crate) fn name_once(&self, name: impl FnOnce() -> SharedString) {
        if self.inner.metrics.get().is_some() {
            return;
        }
        let name = self.inner.name.get_or_init(name);
        self.inner.metrics.get_or_init(|| {
            let calls = |outcome: &'static str| {
                metrics::counter!(telemetry::BREAKER_CALLS.name, "breaker" => name.clone(), "outcome" => outcome)
            };
            let metrics = CallMetrics {
                success: calls("success"),
                failure: calls("failure"),
                ignored: calls("ignored"),
                cancelled: calls("cancelled"),
                not_permitted: metrics::counter!(telemetry::BREAKER_NOT_PERMITTED.name, "breaker" => name.clone()),
                state: metrics::gauge!(telemetry::BREAKER_STATE.name, "breaker" => name.clone()),
            };
            metrics.state.set(self.state().as_gauge());
            metrics
        });
    }

    /// Asks permission for one call, outside any Tower service (Resilience4j's
    /// `tryAcquirePermission`): the [`Breaker`](super::Breaker) service itself
    /// goes through this.
    ///
    /// Record how the call went on the permit it returns; a permit dropped unrecorded gives
    /// its place back and counts for nothing (a cancelled call).
    ///
    /// # Errors
    ///
    /// [`NotPermitted`] while the breaker is open (or half-open with every probe taken), with
    /// how long to wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::breaker::{BreakerConfig, BreakerHandle, SlidingWindow, State};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let breaker = BreakerHandle::new(
    ///     BreakerConfig::new().sliding_window(SlidingWindow::count(4)).minimum_calls(4),
    /// )
    /// .unwrap();
    /// for _ in 0..4 {
    ///     let permit = breaker.try_acquire().unwrap();
    ///     permit.failure_after(Duration::from_millis(5));
    /// }
    /// assert_eq!(breaker.state(), State::Open);
    /// let refused = breaker.try_acquire().unwrap_err();
    /// assert_eq!(refused.state(), State::Open);
    /// assert!(refused.retry_after().is_some());
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<BreakerPermit, NotPermitted> {
        self.name_once(|| SharedString::const_str("unnamed"));
        self.clone().acquire().map_err(|(refused, _)| refused)
    }

    /// Asks to make a call; the handle moves into the permit (no reference count touched), or
    /// comes back with the refusal.
    pub(crate) fn acquire(self) -> Result<BreakerPermit, (NotPermitted, Self)> {
        match self.admit(|| self.inner.measures_time.then(clock::now)) {
            Ok(call) => Ok(BreakerPermit {
                call: Some(call),
                breaker: self,
            }),
            Err(refused) => Err((refused, self)),
        }
    }

    /// Asks to make a call whose duration the caller measures itself, without a permit that
    /// holds the handle: the caller settles it with [`settle_call`](Self::settle_call) or gives
    /// it back with [`cancel_call`](Self::cancel_call) (a dependency policy, whose attempt
    /// holds the breaker already).
    pub(crate) fn admit_call(&self) -> Result<Call, NotPermitted> {
        self.name_once(|| SharedString::const_str("unnamed"));
        self.admit(|| None)
    }

    /// The state machine's answer to a call, started at `started()` if it is let through; a
    /// refusal is counted.
    #[inline]
    fn admit(&self, started: impl FnOnce() -> Option<Instant>) -> Result<Call, NotPermitted> {
        match self
            .inner
            .machine
            .acquire(|| self.now(), &mut |transition| self.announce(transition))
        {
            Ok(permit) => Ok(Call {
                permit,
                started: started(),
            }),
            Err(refusal) => {
                if let Some(metrics) = self.inner.metrics.get() {
                    metrics.not_permitted.increment(1);
                }
                Err(NotPermitted {
                    refusal,
                    state: self.state(),
                })
            }
        }
    }

    /// Records how a call of [`admit_call`](Self::admit_call) went, after `duration`.
    pub(crate) fn settle_call(&self, call: Call, failure: bool, duration: Duration) {
        let verdict = if failure {
            Verdict::Failure
        } else {
            Verdict::Success
        };
        self.complete(call, verdict, Some(duration));
    }

    /// Gives back a call of [`admit_call`](Self::admit_call) that was cancelled.
    pub(crate) fn cancel_call(&self, call: Call) {
        self.cancel(call);
    }

    /// Records how an admitted call went, measured from its admission (or as `duration`).
    fn complete(&self, call: Call, verdict: Verdict, duration: Option<Duration>) {
        let duration = duration.or_else(|| {
            call.started
                .map(|started| clock::now().saturating_duration_since(started))
        });
        let slow = match (duration, self.inner.slow_nanos) {
            (Some(duration), Some(slow)) => nanos(duration) > slow,
            _ => false,
        };
        let micros = duration.map_or(0, |duration| {
            u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
        });
        self.inner.machine.record(
            call.permit,
            verdict,
            slow,
            micros,
            || self.now(),
            &mut |transition| self.announce(transition),
        );
        if let Some(metrics) = self.inner.metrics.get() {
            match verdict {
                Verdict::Success => metrics.success.increment(1),
                Verdict::Failure => metrics.failure.increment(1),
                Verdict::Ignored => metrics.ignored.increment(1),
            }
        }
    }

    /// A call was dropped before it finished: it gives its permit back and counts for nothing.
    fn cancel(&self, call: Call) {
        self.inner.machine.release(call.permit);
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.cancelled.increment(1);
        }
    }

    fn announce(&self, transition: Transition) {
        let name = self
            .inner
            .name
            .get()
            .cloned()
            .unwrap_or(SharedString::const_str("unnamed"));
        if transition.to == State::Open {
            tracing::warn!(
                breaker = &*name,
                from = transition.from.as_str(),
                to = transition.to.as_str(),
                reason = transition.reason.as_str(),
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                breaker = &*name,
                from = transition.from.as_str(),
                to = transition.to.as_str(),
                reason = transition.reason.as_str(),
                "circuit breaker changed state"
            );
        }
        metrics::counter!(
            telemetry::BREAKER_TRANSITIONS.name,
            "breaker" => name.clone(),
            "from" => transition.from.as_str(),
            "to" => transition.to.as_str(),
        )
        .increment(1);
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.state.set(transition.to.as_gauge());
        }
        let _ = self.inner.events.send(BreakerEvent {
            breaker: name,
            transition,
            at: clock::now(),
        });
        // The half-open maximum wait has its own timer whatever the automatic setting (a stuck
        // half-open ends on time, and the next open interval starts when it should); the end of
        // an open wait wakes the breaker only with automatic half-open.
        if self.inner.automatic || transition.to == State::HalfOpen {
            self.arm_timer();
        }
    }

    /// Wakes the breaker when its state may end by time alone, at the due instant.
    fn arm_timer(&self) {
        let (Some(deadline), Ok(runtime)) = (
            self.inner.machine.next_deadline(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let generation = self.inner.machine.generation();
        let weak = Arc::downgrade(&self.inner);
        // At the deadline. The timer wheel may fire up to a millisecond late; the transition is
        // dated at the due instant all the same (see `Machine::wake`), so that lateness never
        // accumulates from one state to the next.
        let due = deadline;
        let at = crate::core::clock::saturating_add(
            self.inner.base,
            Duration::from_nanos(due.saturating_add(1)),
        );
        runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(inner) = weak.upgrade() {
                let handle = BreakerHandle { inner };
                handle
                    .inner
                    .machine
                    .wake(generation, due, &mut |transition| {
                        handle.announce(transition)
                    });
            }
        });
    }
}

/// An admitted call: its permit, and when it started if the breaker measures durations.
#[derive(Debug)]
pub(crate) struct Call {
    permit: Permit,
    started: Option<Instant>,
}

/// Permission for one call, from [`BreakerHandle::try_acquire`].
///
/// Record the call's outcome with one of the consuming methods; the duration is measured
/// from the permission (or given). Dropped unrecorded (the call was cancelled, a future
/// dropped, a handler panicked past it), the permit is given back and counts for nothing, so
/// a half-open breaker's probe place is never lost.
#[must_use = "record the call's outcome on the permit; dropping it counts the call as cancelled"]
pub struct BreakerPermit {
    breaker: BreakerHandle,
    call: Option<Call>,
}

impl BreakerPermit {
    /// The call succeeded.
    pub fn success(self) {
        self.finish(Verdict::Success, None);
    }

    /// The call failed.
    pub fn failure(self) {
        self.finish(Verdict::Failure, None);
    }

    /// The call's outcome is not the service's doing (another layer refused it, the caller's
    /// input was bad): it is not counted, and a probe's place is given back.
    pub fn ignore(self) {
        self.finish(Verdict::Ignored, None);
    }

    /// The call succeeded and took `duration` (for the slow-call rate and the window's total
    /// duration), as Resilience4j's `onSuccess(duration)`.
    pub fn success_after(self, duration: Duration) {
        self.finish(Verdict::Success, Some(duration));
    }

    /// The call failed after `duration`, as Resilience4j's `onError(duration, …)`.
    pub fn failure_after(self, duration: Duration) {
        self.finish(Verdict::Failure, Some(duration));
    }

    /// Gives the permission back without recording anything (Resilience4j's
    /// `releasePermission`); the same as dropping the permit.
    pub fn release(self) {
        drop(self);
    }

    /// The breaker this permit belongs to.
    pub fn breaker(&self) -> &BreakerHandle {
        &self.breaker
    }

    fn finish(mut self, verdict: Verdict, duration: Option<Duration>) {
        self.settle(verdict, duration);
    }

    /// Records the outcome, once: a permit settled already (or dropped after) does nothing.
    pub(crate) fn settle(&mut self, verdict: Verdict, duration: Option<Duration>) {
        if let Some(call) = self.call.take() {
            self.breaker.complete(call, verdict, duration);
        }
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.breaker.cancel(call);
        }
    }
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("breaker", &self.breaker.name())
            .field(
                "probe",
                &self
                    .call
                    .as_ref()
                    .is_some_and(|call| call.permit.is_probe()),
            )
            .finish()
    }
}

/// A call refused by [`BreakerHandle::try_acquire`] (Resilience4j's
/// `CallNotPermittedException`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotPermitted {
    refusal: Refusal,
    state: State,
}

impl NotPermitted {
    /// The breaker's state when it refused: open, forced open, or half-open with every probe
    /// place taken.
    pub fn state(&self) -> State {
        self.state
    }

    /// When a call may be let through again, if known (an open breaker's remaining wait; not
    /// known when forced open).
    pub fn retry_after(&self) -> Option<Duration> {
        self.refusal.retry_after_nanos.map(Duration::from_nanos)
    }

    pub(crate) fn refusal(&self) -> Refusal {
        self.refusal
    }
}

impl fmt::Display for NotPermitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the circuit breaker is {} and does not permit the call",
            self.state
        )
    }
}

impl std::error::Error for NotPermitted {}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}
