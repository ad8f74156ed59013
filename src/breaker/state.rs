//! The breaker's state machine: one atomic word changed by compare-and-swap, no lock.
//!
//! The word holds the state, the half-open permits in use and a generation that every transition
//! increments. A permit remembers the generation it was granted in; an outcome from an earlier
//! generation (a call admitted before the breaker tripped, finishing after) is ignored, so it
//! can neither close a breaker nor count as a probe.
//!
//! Timestamps (open until, half-open since) and the probe tally live beside the word, tagged with
//! the generation they belong to: the winner of a transition writes them after its
//! compare-and-swap, and a reader that finds another generation's tag treats them as not yet
//! written. A stale write from a delayed thread is thereby harmless.
//!
//! All times are nanoseconds on the breaker's own clock (from its creation), passed in by the
//! caller, so the machine runs the same under paused tokio time and under `loom`.
//!
//! Long on purpose: the state word, the tagged timestamps and every transition form one
//! compare-and-swap protocol, checked as a whole by the loom models.

use super::window::{Record, Window, WindowSnapshot};
use crate::core::sync::{AtomicU64, Ordering};

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls pass and are measured; the breaker trips when the window's rates cross a threshold.
    Closed,
    /// Calls are rejected at once until the open duration has passed.
    Open,
    /// A bounded number of probe calls pass; their outcome closes or re-opens the breaker.
    HalfOpen,
    /// Calls pass and are measured; the breaker never trips. Set by hand.
    Disabled,
    /// Calls are always rejected. Set by hand.
    ForcedOpen,
    /// Calls pass and are measured, and the rates are computed, but the breaker never trips.
    /// Set by hand, to observe a breaker's settings before enforcing them.
    MetricsOnly,
}

impl State {
    const ALL: [State; 6] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::Disabled,
        State::ForcedOpen,
        State::MetricsOnly,
    ];

    /// A short, stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Disabled => "disabled",
            State::ForcedOpen => "forced_open",
            State::MetricsOnly => "metrics_only",
        }
    }

    /// The value of the state gauge: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open,
    /// 5 metrics only.
    pub fn as_gauge(self) -> f64 {
        f64::from(self as u8)
    }

    fn measures(self) -> bool {
        // As in Resilience4j: a disabled breaker records nothing (its window stays empty).
        matches!(self, State::Closed | State::MetricsOnly)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// Layout of the state word: state (3 bits) | permits in use (16 bits) | generation (45 bits).
const STATE_BITS: u32 = 3;
const PERMIT_BITS: u32 = 16;
const PERMIT_SHIFT: u32 = STATE_BITS;
const GENERATION_SHIFT: u32 = STATE_BITS + PERMIT_BITS;
/// The most probes a half-open breaker can allow.
pub(crate) const MAX_PERMITS: u32 = (1 << PERMIT_BITS) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Word {
    state: State,
    permits: u32,
    generation: u64,
}

impl Word {
    fn pack(self) -> u64 {
        self.state as u64
            | u64::from(self.permits) << PERMIT_SHIFT
            | self.generation << GENERATION_SHIFT
    }

    fn unpack(word: u64) -> Self {
        let state = State::ALL[(word & ((1 << STATE_BITS) - 1)) as usize];
        let permits = ((word >> PERMIT_SHIFT) & u64::from(MAX_PERMITS)) as u32;
        Word {
            state,
            permits,
            generation: word >> GENERATION_SHIFT,
        }
    }

    fn next(self, state: State) -> Word {
        Word {
            state,
            permits: 0,
            generation: self.generation + 1,
        }
    }
}

/// A timestamp or tally tagged with the low 8 bits of the generation it belongs to.
///
/// Timestamps are microseconds on the breaker's clock in the low 56 bits: the breaker's clock is
/// nanoseconds in a `u64` (saturating at about 584 years), and every such instant fits in 56 bits
/// of microseconds (about 2,284 years), so a stored timestamp can never wrap. (With 48 bits it
/// wrapped after 8.9 years of uptime and the breaker then spun between open and half-open.) The
/// tag only tells a value of the current state from one left by an earlier state; a reader
/// would have to miss 256 transitions between two adjacent loads to be fooled.
const TAG_SHIFT: u32 = 56;
const VALUE_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// The generation bits a tag keeps.
const TAG_MASK: u64 = 0xFF;

fn tag(generation: u64) -> u64 {
    (generation & TAG_MASK) << TAG_SHIFT
}

const NANOS_PER_MICRO: u64 = 1_000;

/// A breaker-clock instant (nanoseconds) as stored microseconds, rounded down: never wraps
/// (see [`TAG_SHIFT`]).
fn to_micros(nanos: u64) -> u64 {
    nanos / NANOS_PER_MICRO
}

/// The same, rounded up: for an instant that must have passed (the end of an open wait).
fn to_micros_up(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_MICRO)
}

/// Stored microseconds back to nanoseconds, saturating.
fn from_micros(micros: u64) -> u64 {
    micros.saturating_mul(NANOS_PER_MICRO)
}

fn tagged_value(word: u64, generation: u64) -> Option<u64> {
    (word & !VALUE_MASK == tag(generation)).then_some(word & VALUE_MASK)
}

/// The half-open probes' tally, in the low 48 bits of its (tagged) word: completed, failures
/// and slow calls, 16 bits each from the bottom. Half-open permits are at most
/// [`MAX_PERMITS`] (16 bits), so no count can carry into the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ProbeTally(u64);

impl ProbeTally {
    const COUNT_BITS: u32 = 16;
    const COUNT_MASK: u64 = (1 << Self::COUNT_BITS) - 1;
    const COMPLETED_SHIFT: u32 = 0;
    const FAILURES_SHIFT: u32 = Self::COUNT_BITS;
    const SLOW_SHIFT: u32 = 2 * Self::COUNT_BITS;

    /// What one completed probe adds.
    fn probe(failure: bool, slow: bool) -> u64 {
        1 << Self::COMPLETED_SHIFT
            | u64::from(failure) << Self::FAILURES_SHIFT
            | u64::from(slow) << Self::SLOW_SHIFT
    }

    fn count(self, shift: u32) -> u32 {
        ((self.0 >> shift) & Self::COUNT_MASK) as u32
    }

    fn completed(self) -> u32 {
        self.count(Self::COMPLETED_SHIFT)
    }

    fn failures(self) -> u32 {
        self.count(Self::FAILURES_SHIFT)
    }

    fn slow(self) -> u32 {
        self.count(Self::SLOW_SHIFT)
    }
}

/// The breaker's settings, resolved to nanoseconds.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) failure_rate_threshold: f64,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) minimum_calls: u64,
    pub(crate) open_nanos: u64,
    pub(crate) open_backoff: f64,
    pub(crate) open_max_nanos: u64,
    pub(crate) open_jitter: f64,
    pub(crate) half_open_permits: u32,
    pub(crate) half_open_max_wait_nanos: Option<u64>,
}

/// A change of state, for events and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
}

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransitionReason {
    /// The failure rate reached its threshold.
    FailureRate,
    /// The slow-call rate reached its threshold.
    SlowCallRate,
    /// The open duration passed.
    OpenDurationElapsed,
    /// The probes went well.
    ProbesSucceeded,
    /// The probes failed (or were too slow).
    ProbesFailed,
    /// The half-open state lasted longer than its maximum wait.
    HalfOpenMaxWait,
    /// Someone called a control method on the handle.
    Manual,
}

impl TransitionReason {
    /// A short, stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailureRate => "failure_rate",
            Self::SlowCallRate => "slow_call_rate",
            Self::OpenDurationElapsed => "open_duration_elapsed",
            Self::ProbesSucceeded => "probes_succeeded",
            Self::ProbesFailed => "probes_failed",
            Self::HalfOpenMaxWait => "half_open_max_wait",
            Self::Manual => "manual",
        }
    }
}

/// How far the probes of a half-open breaker have got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HalfOpenProgress {
    /// The probes allowed: once this many have completed, they decide.
    pub permits: u32,
    /// Permits in use now: probes admitted and not yet finished (completed, cancelled or not
    /// the service's doing).
    pub in_flight: u32,
    /// Probes completed (successes and failures).
    pub completed: u32,
    /// Of those, failures.
    pub failures: u32,
    /// Of those, slow calls (failed or not).
    pub slow: u32,
}

/// Permission for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }
}

/// Admission refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// When a call may be admitted again, if known.
    pub(crate) retry_after_nanos: Option<u64>,
}

/// What became of a call, for the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure,
    /// Not the service's doing (another layer's rejection): the call is not counted, and a
    /// probe's permit is given back.
    Ignored,
}

#[derive(Debug)]
pub(crate) struct Machine {
    word: AtomicU64,
    /// Microseconds, tagged with the generation of the open state.
    open_until: AtomicU64,
    /// Microseconds, tagged with the generation of the half-open state.
    half_open_since: AtomicU64,
    /// Tagged with the generation of the half-open state.
    probes: AtomicU64,
    consecutive_opens: AtomicU64,
    window: Window,
    settings: Settings,
}

impl Machine {
    pub(crate) fn new(settings: Settings, window: Window) -> Self {
        Self {
            word: AtomicU64::new(
                Word {
                    state: State::Closed,
                    permits: 0,
                    generation: 1,
                }
                .pack(),
            ),
            open_until: AtomicU64::new(0),
            half_open_since: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            consecutive_opens: AtomicU64::new(0),
            window,
            settings,
        }
    }

    pub(crate) fn state(&self) -> State {
        Word::unpack(self.word.load(Ordering::Acquire)).state
    }

    pub(crate) fn snapshot(&self, now: u64) -> WindowSnapshot {
        self.window.snapshot(now)
    }

    pub(crate) fn consecutive_opens(&self) -> u64 {
        self.consecutive_opens.load(Ordering::Acquire)
    }

    /// Asks to make a call. `clock` gives the time; it is read only where the state needs it,
    /// never in the closed state.
    pub(crate) fn acquire(
        &self,
        clock: impl Fn() -> u64,
        emit: &mut impl FnMut(Transition),
    ) -> Result<Permit, Refusal> {
        loop {
            let current = self.word.load(Ordering::Acquire);
            let word = Word::unpack(current);
            match word.state {
                State::Closed | State::Disabled | State::MetricsOnly => {
                    return Ok(Permit {
                        generation: word.generation,
                        probe: false,
                    });
                }
                State::ForcedOpen => {
                    return Err(Refusal {
                        retry_after_nanos: None,
                    });
                }
                State::Open => {
                    let now = clock();
                    let until =
                        tagged_value(self.open_until.load(Ordering::Acquire), word.generation)
                            .map(from_micros);
                    match until {
                        // The open wait must be strictly exceeded.
                        Some(until) if now > until => {
                            let next = word.next(State::HalfOpen);
                            self.enter(
                                current,
                                next,
                                now,
                                TransitionReason::OpenDurationElapsed,
                                emit,
                            );
                        }
                        Some(until) => {
                            return Err(Refusal {
                                retry_after_nanos: Some(until - now),
                            });
                        }
                        // Just opened; the winner has not written the time yet.
                        None => {
                            return Err(Refusal {
                                retry_after_nanos: Some(self.settings.open_nanos),
                            });
                        }
                    }
                }
                State::HalfOpen => {
                    let now = clock();
                    if self.half_open_expired(word, now) {
                        self.trip(current, now, TransitionReason::HalfOpenMaxWait, emit);
                        continue;
                    }
                    if word.permits >= self.settings.half_open_permits {
                        return Err(Refusal {
                            retry_after_nanos: Some(1_000_000_000),
                        });
                    }
                    let taken = Word {
                        permits: word.permits + 1,
                        ..word
                    }
                    .pack();
                    if self
                        .word
                        .compare_exchange(current, taken, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return Ok(Permit {
                            generation: word.generation,
                            probe: true,
                        });
                    }
                }
            }
        }
    }

    fn half_open_expired(&self, word: Word, now: u64) -> bool {
        let Some(max_wait) = self.settings.half_open_max_wait_nanos else {
            return false;
        };
        tagged_value(
            self.half_open_since.load(Ordering::Acquire),
            word.generation,
        )
        .is_some_and(|since_micros| now.saturating_sub(from_micros(since_micros)) > max_wait)
    }

    /// Records the outcome of a call admitted with `permit`. `clock` gives the time it finished;
    /// it is read only by a time window or a transition.
    pub(crate) fn record(
        &self,
        permit: Permit,
        verdict: Verdict,
        slow: bool,
        duration_micros: u64,
        clock: impl Fn() -> u64,
        emit: &mut impl FnMut(Transition),
    ) {
        let current = self.word.load(Ordering::Acquire);
        let word = Word::unpack(current);
        if word.generation != permit.generation {
            return;
        }
        if verdict == Verdict::Ignored {
            if permit.probe {
                self.release(permit);
            }
            return;
        }
        let failure = verdict == Verdict::Failure;
        if permit.probe {
            self.record_probe(word, failure, slow, clock(), emit);
            return;
        }
        if !word.state.measures() {
            return;
        }
        let now = match self.window {
            Window::Time(_) => clock(),
            Window::Count(_) => 0,
        };
        self.window.record(
            Record {
                failure,
                slow,
                duration_micros,
            },
            now,
        );
        if word.state != State::Closed {
            return;
        }
        let snapshot = self.window.snapshot(now);
        // Thresholds are above zero: a window without failures or slow calls cannot trip.
        if (snapshot.failures == 0 && snapshot.slow_calls == 0)
            || snapshot.calls < self.settings.minimum_calls
            || !snapshot.is_plausible()
        {
            return;
        }
        // Thresholds are reached at equality, as Resilience4j users expect.
        let (failure_rate, slow_call_rate) = self.rates(&snapshot);
        if failure_rate.is_some_and(|rate| rate >= self.settings.failure_rate_threshold) {
            self.trip(current, clock(), TransitionReason::FailureRate, emit);
        } else if slow_call_rate.is_some_and(|rate| rate >= self.settings.slow_call_rate_threshold)
        {
            self.trip(current, clock(), TransitionReason::SlowCallRate, emit);
        }
    }

    /// Gives back a probe's permit: its call was cancelled or not the service's doing.
    pub(crate) fn release(&self, permit: Permit) {
        if !permit.probe {
            return;
        }
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let word = Word::unpack(current);
            if word.generation != permit.generation
                || word.state != State::HalfOpen
                || word.permits == 0
            {
                return;
            }
            let released = Word {
                permits: word.permits - 1,
                ..word
            }
            .pack();
            match self
                .word
                .compare_exchange(current, released, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn record_probe(
        &self,
        word: Word,
        failure: bool,
        slow: bool,
        now: u64,
        emit: &mut impl FnMut(Transition),
    ) {
        let delta = ProbeTally::probe(failure, slow);
        let mut seen = self.probes.load(Ordering::Acquire);
        let tally = loop {
            // A tally of another generation is stale: this probe starts the count.
            let base = tagged_value(seen, word.generation).unwrap_or(0);
            let updated = tag(word.generation) | (base + delta);
            match self.probes.compare_exchange_weak(
                seen,
                updated,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break ProbeTally(base + delta),
                Err(actual) => seen = actual,
            }
        };
        let completed = tally.completed();
        if completed < self.settings.half_open_permits {
            return;
        }
        let failure_rate = f64::from(tally.failures()) * 100.0 / f64::from(completed);
        let slow_rate = f64::from(tally.slow()) * 100.0 / f64::from(completed);
        let failed = failure_rate >= self.settings.failure_rate_threshold
            || slow_rate >= self.settings.slow_call_rate_threshold;
        // The last probe decides, against whatever permits are in use now.
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let now_word = Word::unpack(current);
            if now_word.generation != word.generation || now_word.state != State::HalfOpen {
                return;
            }
            let done = if failed {
                self.trip(current, now, TransitionReason::ProbesFailed, emit)
            } else {
                // The window starts fresh on the way to closed.
                self.window.reset();
                self.consecutive_opens.store(0, Ordering::Release);
                self.enter(
                    current,
                    now_word.next(State::Closed),
                    now,
                    TransitionReason::ProbesSucceeded,
                    emit,
                )
            };
            if done {
                return;
            }
            current = self.word.load(Ordering::Acquire);
        }
    }

    /// Moves from the state in `current` to open, if nobody moved first. Returns whether it did.
    fn trip(
        &self,
        current: u64,
        now: u64,
        reason: TransitionReason,
        emit: &mut impl FnMut(Transition),
    ) -> bool {
        let next = Word::unpack(current).next(State::Open);
        self.enter(current, next, now, reason, emit)
    }

    /// The open duration of the `opens`-th consecutive trip: exponential backoff, capped,
    /// with jitter derived from the generation (deterministic for tests, spread across trips).
    fn open_duration(&self, opens: u64, generation: u64) -> u64 {
        let settings = &self.settings;
        let exponent = opens.saturating_sub(1).min(64) as i32;
        let backed_off = settings.open_nanos as f64 * settings.open_backoff.powi(exponent);
        let capped = backed_off.min(settings.open_max_nanos as f64);
        let jittered = if settings.open_jitter > 0.0 {
            // [0, 1), the same for a generation (deterministic in tests), spread across trips.
            let unit = fastrand::Rng::with_seed(generation).f64();
            capped * (1.0 + settings.open_jitter * (2.0 * unit - 1.0))
        } else {
            capped
        };
        jittered.max(0.0) as u64
    }

    /// Compare-and-swap from `current` to `next`; the winner writes the new state's timestamps
    /// and reports the transition.
    fn enter(
        &self,
        current: u64,
        next: Word,
        now: u64,
        reason: TransitionReason,
        emit: &mut impl FnMut(Transition),
    ) -> bool {
        if self
            .word
            .compare_exchange(current, next.pack(), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let from = Word::unpack(current).state;
        match next.state {
            State::Open => {
                let opens = self.consecutive_opens.fetch_add(1, Ordering::AcqRel) + 1;
                let until = now.saturating_add(self.open_duration(opens, next.generation));
                self.open_until.store(
                    tag(next.generation) | to_micros_up(until),
                    Ordering::Release,
                );
            }
            State::HalfOpen => {
                self.half_open_since
                    .store(tag(next.generation) | to_micros(now), Ordering::Release);
                // Start the tally unless the first probe already did.
                let _ = self
                    .probes
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |seen| {
                        tagged_value(seen, next.generation)
                            .is_none()
                            .then(|| tag(next.generation))
                    });
            }
            _ => {}
        }
        emit(Transition {
            from,
            to: next.state,
            reason,
        });
        true
    }

    /// Moves to `state` by hand, from whatever state the breaker is in. As in Resilience4j,
    /// every state entered by hand but open and half-open starts with an empty window;
    /// `forget_backoff` also forgets the consecutive opens (a reset, not a close).
    pub(crate) fn force(
        &self,
        state: State,
        forget_backoff: bool,
        now: u64,
        emit: &mut impl FnMut(Transition),
    ) {
        if !matches!(state, State::Open | State::HalfOpen) {
            self.window.reset();
        }
        if forget_backoff {
            self.consecutive_opens.store(0, Ordering::Release);
        }
        // A manual trip to open counts as a trip: it sets the open duration and backs off.
        loop {
            let current = self.word.load(Ordering::Acquire);
            if self.enter(
                current,
                Word::unpack(current).next(state),
                now,
                TransitionReason::Manual,
                emit,
            ) {
                return;
            }
        }
    }

    /// The instant (nanoseconds) until which the breaker stays open, if it is open.
    pub(crate) fn open_until(&self) -> Option<u64> {
        let word = Word::unpack(self.word.load(Ordering::Acquire));
        (word.state == State::Open)
            .then(|| tagged_value(self.open_until.load(Ordering::Acquire), word.generation))
            .flatten()
            .map(from_micros)
    }

    /// The failure and slow-call rates of `snapshot`, or `None` while the window holds fewer
    /// calls than the minimum (as Resilience4j's `-1`): "not enough calls yet" is not a 0 % rate.
    pub(crate) fn rates(&self, snapshot: &WindowSnapshot) -> (Option<f64>, Option<f64>) {
        if snapshot.calls == 0 || snapshot.calls < self.settings.minimum_calls {
            return (None, None);
        }
        (snapshot.failure_rate(), snapshot.slow_call_rate())
    }

    /// How far a half-open breaker's probes have got, if it is half-open.
    pub(crate) fn half_open_progress(&self) -> Option<HalfOpenProgress> {
        let word = Word::unpack(self.word.load(Ordering::Acquire));
        if word.state != State::HalfOpen {
            return None;
        }
        let tally = ProbeTally(
            tagged_value(self.probes.load(Ordering::Acquire), word.generation).unwrap_or(0),
        );
        // The word counts the places taken (a completed probe keeps its place, a cancelled
        // one gives it back); those not completed yet are in flight.
        let completed = tally.completed();
        Some(HalfOpenProgress {
            permits: self.settings.half_open_permits,
            in_flight: word.permits.saturating_sub(completed),
            completed,
            failures: tally.failures(),
            slow: tally.slow(),
        })
    }

    /// The generation of the current state: a timer armed for one state checks it before acting.
    pub(crate) fn generation(&self) -> u64 {
        Word::unpack(self.word.load(Ordering::Acquire)).generation
    }

    /// Moves an open breaker whose wait has passed to half-open without waiting for a call,
    /// if it is still in `generation`. For the automatic transition timer.
    ///
    /// `now` is the due instant the timer was set for (it fires then or a little later): the
    /// transition is dated then, and a wait that has reached it counts as exceeded, so timed
    /// transitions neither land late nor drift from one state to the next.
    pub(crate) fn wake(&self, generation: u64, now: u64, emit: &mut impl FnMut(Transition)) {
        let current = self.word.load(Ordering::Acquire);
        let word = Word::unpack(current);
        if word.generation != generation {
            return;
        }
        match word.state {
            State::Open => {
                let until = tagged_value(self.open_until.load(Ordering::Acquire), generation)
                    .map(from_micros);
                if until.is_some_and(|until| now >= until) {
                    self.enter(
                        current,
                        word.next(State::HalfOpen),
                        now,
                        TransitionReason::OpenDurationElapsed,
                        emit,
                    );
                }
            }
            State::HalfOpen if self.half_open_expired(word, now.saturating_add(1)) => {
                self.trip(current, now, TransitionReason::HalfOpenMaxWait, emit);
            }
            _ => {}
        }
    }

    /// When the current state may end by time alone: open until, or half-open max wait.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let word = Word::unpack(self.word.load(Ordering::Acquire));
        match word.state {
            State::Open => self.open_until(),
            State::HalfOpen => {
                let since = tagged_value(
                    self.half_open_since.load(Ordering::Acquire),
                    word.generation,
                )?;
                Some(from_micros(since).saturating_add(self.settings.half_open_max_wait_nanos?))
            }
            _ => None,
        }
    }
}
