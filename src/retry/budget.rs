//! The retry budget: a share of recent calls, plus a small floor, that retries may spend.

use std::sync::Arc;

use super::config::{BudgetConfig, ConfigError};
use crate::core::clock;
use crate::core::tally::Tally;

/// Buckets of the budget's sliding window.
const BUCKETS: usize = 10;

/// A retry budget shared by every caller of one dependency: clones share it.
///
/// Each call deposits [`BudgetConfig::ratio`] of a retry; each retry withdraws one. Over the
/// window, retries may number at most `ratio × calls + min_per_second × window`. Lock-free:
/// one compare-and-swap per deposit and per withdrawal.
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{BudgetConfig, RetryBudget};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let budget = RetryBudget::new(BudgetConfig::new().ratio(0.1).min_per_second(0)).unwrap();
/// for _ in 0..100 {
///     budget.deposit();
/// }
/// let retries = (0..100).filter(|_| budget.try_withdraw()).count();
/// assert_eq!(retries, 10);
/// assert_eq!(budget.snapshot().retries, 10);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BudgetConfig,
    /// Calls (first count) and retries (second count).
    tally: Tally,
    floor: u64,
}

/// What a [`RetryBudget`] holds now.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BudgetSnapshot {
    /// Calls made over the window (first attempts).
    pub calls: u64,
    /// Retries spent over the window.
    pub retries: u64,
    /// Retries still allowed over the window.
    pub available: u64,
}

impl RetryBudget {
    /// A budget with these settings.
    ///
    /// # Errors
    /// A [`ConfigError`] from [`BudgetConfig::validate`].
    pub fn new(config: BudgetConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let floor = u64::from(config.min_per_second).saturating_mul(config.window.as_secs());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                tally: Tally::new(config.window, BUCKETS),
                floor,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &BudgetConfig {
        &self.inner.config
    }

    /// Counts one call (a first attempt), which earns `ratio` of a retry.
    pub fn deposit(&self) {
        self.deposit_at(clock::now());
    }

    /// [`deposit`](Self::deposit) at an instant the caller has already read.
    pub(crate) fn deposit_at(&self, now: clock::Instant) {
        self.inner.tally.add(now, 1, 0);
    }

    /// Spends one retry if the budget has one; returns whether it did.
    pub fn try_withdraw(&self) -> bool {
        let inner = &*self.inner;
        inner.tally.try_add_second(clock::now(), |sums| {
            sums.second < inner.allowance(sums.first)
        })
    }

    /// The window's calls, retries and what is left.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let sums = self.inner.tally.sums(clock::now());
        BudgetSnapshot {
            calls: sums.first,
            retries: sums.second,
            available: self.inner.allowance(sums.first).saturating_sub(sums.second),
        }
    }
}

impl Inner {
    fn allowance(&self, calls: u64) -> u64 {
        // Exact below 2^53 calls; the tally saturates far below that.
        let earned = (calls as f64 * self.config.ratio) as u64;
        earned.saturating_add(self.floor)
    }
}
