//! Two counts over a sliding window of time, lock-free: the retry budget (requests and retries)
//! and the adaptive throttle (attempts and accepts) both keep one.
//!
//! The window is a ring of buckets. Each bucket is one atomic word holding the bucket's epoch
//! (which slice of time it counts) and its two counts, so that moving a bucket to a new slice
//! and counting in it is one compare-and-swap: no count is lost when two threads meet at a
//! slice boundary.

use std::time::Duration;

use super::clock::{self, Instant};
use super::sync::{AtomicU64, Ordering};

/// Bits of the epoch (the slice number, modulo 2^24) in a bucket's word.
const EPOCH_BITS: u32 = 24;
/// Bits of each count: up to 1,048,575 per bucket; counts saturate there.
const COUNT_BITS: u32 = 20;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const EPOCH_MASK: u64 = (1 << EPOCH_BITS) - 1;

/// A bucket's word: `epoch | first << 24 | second << 44`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Word(u64);

impl Word {
    fn new(epoch: u64, first: u64, second: u64) -> Self {
        Word(
            (epoch & EPOCH_MASK)
                | (first.min(COUNT_MAX) << EPOCH_BITS)
                | (second.min(COUNT_MAX) << (EPOCH_BITS + COUNT_BITS)),
        )
    }

    fn epoch(self) -> u64 {
        self.0 & EPOCH_MASK
    }

    fn first(self) -> u64 {
        (self.0 >> EPOCH_BITS) & COUNT_MAX
    }

    fn second(self) -> u64 {
        (self.0 >> (EPOCH_BITS + COUNT_BITS)) & COUNT_MAX
    }

    /// The counts if the word belongs to `epoch`, else zero (a bucket from an older slice).
    fn counts_in(self, epoch: u64) -> (u64, u64) {
        if self.epoch() == epoch & EPOCH_MASK {
            (self.first(), self.second())
        } else {
            (0, 0)
        }
    }
}

/// Two counts (`first`, `second`) summed over the last `window` of tokio's clock.
#[derive(Debug)]
pub(crate) struct Tally {
    buckets: Box<[AtomicU64]>,
    slice_nanos: u64,
    origin: Instant,
}

/// The sums of a [`Tally`]'s two counts over its window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    pub(crate) first: u64,
    pub(crate) second: u64,
}

impl Tally {
    /// A window of `window` split into `buckets` slices (at least one; a slice is at least 1 µs).
    pub(crate) fn new(window: Duration, buckets: usize) -> Self {
        let buckets = buckets.max(1);
        let slice_nanos = (clock::nanos(window) / buckets as u64).max(1_000);
        Self {
            buckets: (0..buckets)
                .map(|_| AtomicU64::new(Word::new(0, 0, 0).0))
                .collect(),
            slice_nanos,
            origin: clock::now(),
        }
    }

    /// The slice `now` falls in, counted from the tally's creation.
    fn epoch(&self, now: Instant) -> u64 {
        clock::nanos(now.saturating_duration_since(self.origin)) / self.slice_nanos
    }

    fn bucket(&self, epoch: u64) -> &AtomicU64 {
        &self.buckets[(epoch % self.buckets.len() as u64) as usize]
    }

    /// Adds to the counts of the slice `now` falls in.
    pub(crate) fn add(&self, now: Instant, first: u64, second: u64) {
        let epoch = self.epoch(now);
        self.update(epoch, first, second, |_, _| true);
    }

    /// Adds `first` and `second` to the slice `epoch`'s bucket if `allow` says yes to its
    /// counts as the compare-and-swap sees them; returns whether it did.
    fn update(
        &self,
        epoch: u64,
        first: u64,
        second: u64,
        allow: impl Fn(u64, u64) -> bool,
    ) -> bool {
        let bucket = self.bucket(epoch);
        let mut current = Word(bucket.load(Ordering::Relaxed));
        loop {
            let (a, b) = current.counts_in(epoch);
            if !allow(a, b) {
                return false;
            }
            let next = Word::new(epoch, a.saturating_add(first), b.saturating_add(second));
            match bucket.compare_exchange_weak(
                current.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = Word(seen),
            }
        }
    }

    /// The sums over the window that ends at `now`.
    pub(crate) fn sums(&self, now: Instant) -> Sums {
        self.sums_except(self.epoch(now), None)
    }

    fn sums_except(&self, epoch: u64, skip: Option<u64>) -> Sums {
        let len = self.buckets.len() as u64;
        let mut sums = Sums::default();
        for back in 0..len.min(epoch + 1) {
            let slice = epoch - back;
            if Some(slice) == skip {
                continue;
            }
            let (a, b) = Word(self.bucket(slice).load(Ordering::Acquire)).counts_in(slice);
            sums.first += a;
            sums.second += b;
        }
        sums
    }

    /// Adds one to the second count if `allow` says yes to the window's sums (the current
    /// slice read in the same compare-and-swap that counts it); returns whether it did.
    pub(crate) fn try_add_second(&self, now: Instant, allow: impl Fn(Sums) -> bool) -> bool {
        let epoch = self.epoch(now);
        let others = self.sums_except(epoch, Some(epoch));
        self.update(epoch, 0, 1, |a, b| {
            allow(Sums {
                first: others.first + a,
                second: others.second + b,
            })
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test(start_paused = true)]
    async fn counts_leave_the_window_as_time_passes() {
        let tally = Tally::new(Duration::from_secs(10), 10);
        tally.add(clock::now(), 5, 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        tally.add(clock::now(), 3, 0);
        assert_eq!(
            tally.sums(clock::now()),
            Sums {
                first: 8,
                second: 1
            }
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            tally.sums(clock::now()),
            Sums {
                first: 3,
                second: 0
            }
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(tally.sums(clock::now()), Sums::default());
        // Years later the ring still counts what is recent, and only that.
        tokio::time::advance(Duration::from_secs(86_400 * 365 * 3)).await;
        tally.add(clock::now(), 2, 2);
        assert_eq!(
            tally.sums(clock::now()),
            Sums {
                first: 2,
                second: 2
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_second_count_is_added_only_when_allowed() {
        let tally = Tally::new(Duration::from_secs(1), 4);
        tally.add(clock::now(), 10, 0);
        let mut taken = 0;
        while tally.try_add_second(clock::now(), |sums| sums.second < sums.first / 5) {
            taken += 1;
        }
        assert_eq!(taken, 2);
        assert_eq!(tally.sums(clock::now()).second, 2);
    }

    #[test]
    fn counts_saturate_instead_of_spilling_into_the_next_field() {
        let word = Word::new(7, COUNT_MAX + 10, 3);
        assert_eq!(
            (word.epoch(), word.first(), word.second()),
            (7, COUNT_MAX, 3)
        );
    }

    proptest! {
        /// Against a model that keeps every event: the tally's sums are exactly the events of
        /// the slices still in the window.
        #[test]
        fn sums_match_a_model(events in proptest::collection::vec((0u64..3_000, 0u64..4, 0u64..4), 1..80)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            runtime.block_on(async {
                let tally = Tally::new(Duration::from_millis(1_000), 10);
                let mut at = 0u64;
                let mut model: Vec<(u64, u64, u64)> = Vec::new();
                for (step, first, second) in events {
                    at += step;
                    tokio::time::advance(Duration::from_millis(step)).await;
                    tally.add(clock::now(), first, second);
                    model.push((at / 100, first, second));
                    let now_slice = at / 100;
                    let (a, b) = model.iter().filter(|(slice, _, _)| slice + 10 > now_slice).fold((0, 0), |(a, b), (_, x, y)| (a + x, b + y));
                    prop_assert_eq!(tally.sums(clock::now()), Sums { first: a, second: b });
                }
                Ok(())
            })?;
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`.
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn a_guarded_count_is_never_taken_twice_and_no_count_is_lost() {
        loom::model(|| {
            let tally = Arc::new(Tally::new(Duration::from_secs(10), 2));
            let now = clock::now();
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let tally = tally.clone();
                    thread::spawn(move || {
                        tally.add(now, 1, 0);
                        tally.try_add_second(now, |sums| sums.second < 1)
                    })
                })
                .collect();
            let taken = threads
                .into_iter()
                .map(|thread| thread.join().unwrap())
                .filter(|taken| *taken)
                .count();
            assert_eq!(taken, 1);
            assert_eq!(
                tally.sums(now),
                Sums {
                    first: 2,
                    second: 1
                }
            );
        });
    }
}
