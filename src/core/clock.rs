//! The one clock every layer reads.
//!
//! Time comes from [`tokio::time`], never from `std::time::Instant` directly, so that a test can
//! pause the runtime's clock (`#[tokio::test(start_paused = true)]`) and advance it by hand.

pub use tokio::time::Instant;

/// The current instant on tokio's clock (the paused clock inside paused-time tests).
#[inline]
pub fn now() -> Instant {
    Instant::now()
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
