//! The one clock every layer reads.
//!
//! Time comes from [`tokio::time`], never from `std::time::Instant` directly, so that a test can
//! pause the runtime's clock (`#[tokio::test(start_paused = true)]`) and advance it by hand.

pub use tokio::time::Instant;

use std::cell::Cell;

thread_local! {
    /// The instant a policy stack took at a request's entry, while its layers admit it.
    static ENTRY: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The current instant on tokio's clock (the paused clock inside paused-time tests).
///
/// While a policy stack admits a request (the synchronous `call` of its layers, before the
/// inner service's future runs), this is the one instant the stack read at entry: the
/// observer, the timeout, the breaker and the shedder start their clocks together, at the
/// cost of one read.
#[inline]
pub fn now() -> Instant {
    ENTRY.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Pins [`now`] to `instant` on this thread until the scope is dropped (panics included).
pub(crate) fn enter(instant: Instant) -> EntryScope {
    EntryScope {
        previous: ENTRY.with(|entry| entry.replace(Some(instant))),
    }
}

/// The pinned entry instant of [`enter`]; dropping it restores what was there before.
pub(crate) struct EntryScope {
    previous: Option<Instant>,
}

impl Drop for EntryScope {
    fn drop(&mut self) {
        ENTRY.with(|entry| entry.set(self.previous));
    }
}

/// About thirty years: what "no deadline in sight" means when an addition would overflow.
const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(86_400 * 365 * 30);

/// `instant + duration`, saturating at a far-future instant instead of panicking on overflow.
#[inline]
pub(crate) fn saturating_add(instant: Instant, duration: std::time::Duration) -> Instant {
    instant
        .checked_add(duration)
        .or_else(|| instant.checked_add(FAR_FUTURE))
        .unwrap_or(instant)
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
#[inline]
pub(crate) fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

pin_project_lite::pin_project! {
    /// A deadline's timer, armed only once the future it bounds is pending: a response that is
    /// ready at once costs no timer (a `Sleep` registers with the runtime's driver).
    #[project = TimerProj]
    pub(crate) enum Timer {
        // Not armed yet; `None` means there is no deadline to enforce.
        Idle { deadline: Option<Instant> },
        Armed { #[pin] sleep: tokio::time::Sleep },
    }
}

impl Timer {
    /// A timer for `deadline`, if there is one.
    #[inline]
    pub(crate) fn new(deadline: Option<Instant>) -> Self {
        Timer::Idle { deadline }
    }

    /// Whether the deadline has passed, arming the timer on first use; never ready without a
    /// deadline.
    pub(crate) fn poll_expired(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if let TimerProj::Idle { deadline } = self.as_mut().project() {
            let Some(deadline) = *deadline else {
                return std::task::Poll::Pending;
            };
            self.as_mut().set(Timer::Armed {
                sleep: tokio::time::sleep_until(deadline),
            });
        }
        match self.project() {
            TimerProj::Armed { sleep } => std::future::Future::poll(sleep, cx),
            TimerProj::Idle { .. } => std::task::Poll::Pending,
        }
    }
}
