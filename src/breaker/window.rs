//! Sliding windows of call outcomes, lock-free and O(1) per call.
//!
//! Both windows keep a running total beside their slots, so reading the failure and slow-call
//! rates is a couple of atomic loads, however large the window.
//!
//! - The count window swaps the new call into its slot and adds the difference between it and
//!   the call it evicted to the total: nothing at all when the two are alike (a success
//!   replacing a success), which is the steady state of a healthy service.
//! - The time window adds a call to the total before its bucket, and an eviction subtracts
//!   exactly what it took out of a bucket, so the total never goes below the buckets' sum.
//!
//! In both, the total never drifts from the sum of the slots once concurrent calls are done. While
//! two calls race for the same count-window slot (the window wrapped around within one call), a
//! reader may see a total that no sequence of calls could produce; [`WindowSnapshot::is_plausible`]
//! tells, and decisions skip such a snapshot (the next call decides).

use crate::core::sync::{AtomicU64, Ordering};

/// The figures of a window: how many calls it holds and how they went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowSnapshot {
    /// Calls recorded in the window.
    pub calls: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Of those, slow calls (failed or not).
    pub slow_calls: u64,
    /// Of those, slow failures.
    pub slow_failures: u64,
    /// The sum of the calls' durations, in microseconds.
    pub total_duration_micros: u64,
}

impl WindowSnapshot {
    /// Whether the figures could come from real calls (no part larger than its whole).
    pub fn is_plausible(&self) -> bool {
        self.failures <= self.calls
            && self.slow_calls <= self.calls
            && self.slow_failures <= self.slow_calls.min(self.failures)
    }

    /// Failures as a percentage of calls; `None` when the window is empty.
    pub fn failure_rate(&self) -> Option<f64> {
        percent(self.failures, self.calls)
    }

    /// Slow calls as a percentage of calls; `None` when the window is empty.
    pub fn slow_call_rate(&self) -> Option<f64> {
        percent(self.slow_calls, self.calls)
    }
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole != 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// One recorded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) failure: bool,
    pub(crate) slow: bool,
    pub(crate) duration_micros: u64,
}

/// Two 32-bit counters in one word, so that both change in one atomic operation.
/// Packed arithmetic is linear modulo 2^64: as long as each true count stays within 32 bits,
/// adding and subtracting packed deltas gives the packed true counts.
const LOW: u64 = 1;
const HIGH: u64 = 1 << 32;

fn unpack(word: u64) -> (u64, u64) {
    (word & 0xFFFF_FFFF, word >> 32)
}

/// The counters shared by slots, buckets and totals.
#[derive(Debug, Default)]
struct Counters {
    /// Calls (low half) and failures (high half).
    calls: AtomicU64,
    /// Slow calls (low half) and slow failures (high half).
    slow: AtomicU64,
    duration_micros: AtomicU64,
}

/// A record as packed deltas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Delta {
    calls: u64,
    slow: u64,
    duration_micros: u64,
}

impl Delta {
    fn of(record: Record) -> Self {
        let calls = LOW + if record.failure { HIGH } else { 0 };
        let slow = if record.slow { calls } else { 0 };
        Delta {
            calls,
            slow,
            duration_micros: record.duration_micros,
        }
    }
}

impl Counters {
    fn add(&self, delta: Delta) {
        self.calls.fetch_add(delta.calls, Ordering::AcqRel);
        if delta.slow != 0 {
            self.slow.fetch_add(delta.slow, Ordering::AcqRel);
        }
        self.duration_micros
            .fetch_add(delta.duration_micros, Ordering::Relaxed);
    }

    fn subtract(&self, delta: Delta) {
        if delta.calls != 0 {
            self.calls.fetch_sub(delta.calls, Ordering::AcqRel);
        }
        if delta.slow != 0 {
            self.slow.fetch_sub(delta.slow, Ordering::AcqRel);
        }
        if delta.duration_micros != 0 {
            self.duration_micros
                .fetch_sub(delta.duration_micros, Ordering::Relaxed);
        }
    }

    /// Adds `add` and takes away `remove` at once: one operation per counter that changes (a
    /// call replacing one of the same outcome leaves the counts as they were).
    fn replace(&self, add: Delta, remove: Delta) {
        if add.calls != remove.calls {
            self.calls
                .fetch_add(add.calls.wrapping_sub(remove.calls), Ordering::AcqRel);
        }
        if add.slow != remove.slow {
            self.slow
                .fetch_add(add.slow.wrapping_sub(remove.slow), Ordering::AcqRel);
        }
        if add.duration_micros != remove.duration_micros {
            self.duration_micros.fetch_add(
                add.duration_micros.wrapping_sub(remove.duration_micros),
                Ordering::Relaxed,
            );
        }
    }

    /// Empties the counters and returns what they held.
    fn take(&self) -> Delta {
        Delta {
            calls: self.calls.swap(0, Ordering::AcqRel),
            slow: self.slow.swap(0, Ordering::AcqRel),
            duration_micros: self.duration_micros.swap(0, Ordering::Relaxed),
        }
    }

    fn snapshot(&self) -> WindowSnapshot {
        let (calls, failures) = unpack(self.calls.load(Ordering::Acquire));
        let (slow_calls, slow_failures) = unpack(self.slow.load(Ordering::Acquire));
        WindowSnapshot {
            calls,
            failures,
            slow_calls,
            slow_failures,
            total_duration_micros: self.duration_micros.load(Ordering::Relaxed),
        }
    }
}

/// The last `size` calls.
///
/// Each slot holds one call in one word (outcome flags and duration), replaced with a single
/// `swap`, so the evicted call is known exactly.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU64]>,
    cursor: AtomicU64,
    total: Counters,
}

/// Slot encoding: bit 0 = occupied, bit 1 = failure, bit 2 = slow, bits 3.. = duration (µs).
const OCCUPIED: u64 = 1;
const FAILURE: u64 = 2;
const SLOW: u64 = 4;
const DURATION_SHIFT: u32 = 3;
const MAX_SLOT_MICROS: u64 = u64::MAX >> DURATION_SHIFT;

fn encode(record: Record) -> u64 {
    OCCUPIED
        | if record.failure { FAILURE } else { 0 }
        | if record.slow { SLOW } else { 0 }
        | record.duration_micros.min(MAX_SLOT_MICROS) << DURATION_SHIFT
}

fn decode(slot: u64) -> Option<Record> {
    (slot & OCCUPIED != 0).then_some(Record {
        failure: slot & FAILURE != 0,
        slow: slot & SLOW != 0,
        duration_micros: slot >> DURATION_SHIFT,
    })
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        let size = size.max(1) as usize;
        Self {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            cursor: AtomicU64::new(0),
            total: Counters::default(),
        }
    }

    pub(crate) fn record(&self, record: Record) {
        let record = Record {
            duration_micros: record.duration_micros.min(MAX_SLOT_MICROS),
            ..record
        };
        let index = self.cursor.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let evicted = self.slots[index as usize].swap(encode(record), Ordering::AcqRel);
        // The total changes by the difference: a success replacing a success moves only the
        // duration sum. (Between the swap and this, the total still holds the evicted call: a
        // count that was true a moment ago.)
        self.total.replace(
            Delta::of(record),
            decode(evicted).map(Delta::of).unwrap_or_default(),
        );
    }

    pub(crate) fn snapshot(&self) -> WindowSnapshot {
        self.total.snapshot()
    }

    pub(crate) fn reset(&self) {
        for slot in self.slots.iter() {
            if let Some(evicted) = decode(slot.swap(0, Ordering::AcqRel)) {
                self.total.subtract(Delta::of(evicted));
            }
        }
    }
}

/// The calls of the last `buckets` intervals of `bucket_nanos` each, the current one included.
///
/// A bucket knows the interval (epoch) it counts. The first call of a new interval claims the
/// interval's bucket with a compare-and-swap on its epoch and empties it; when time has jumped
/// ahead, the claimer also claims the buckets of the skipped intervals, so no stale bucket stays
/// in the total. That sweep runs once per interval, so a call costs O(1) amortized.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    bucket_nanos: u64,
    /// The latest interval whose buckets have all been claimed.
    swept: AtomicU64,
    total: Counters,
}

#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    counters: Counters,
}

impl TimeWindow {
    pub(crate) fn new(buckets: u32, bucket_nanos: u64) -> Self {
        Self {
            buckets: (0..buckets.max(1)).map(|_| Bucket::default()).collect(),
            bucket_nanos: bucket_nanos.max(1),
            swept: AtomicU64::new(0),
            total: Counters::default(),
        }
    }

    fn epoch(&self, now_nanos: u64) -> u64 {
        now_nanos / self.bucket_nanos
    }

    fn bucket(&self, epoch: u64) -> &Bucket {
        &self.buckets[(epoch % self.buckets.len() as u64) as usize]
    }

    /// Makes the bucket count `epoch`, emptying it if it counted an older interval.
    fn claim(&self, epoch: u64) {
        let bucket = self.bucket(epoch);
        let mut seen = bucket.epoch.load(Ordering::Acquire);
        while seen < epoch {
            match bucket.epoch.compare_exchange_weak(
                seen,
                epoch,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.total.subtract(bucket.counters.take());
                    return;
                }
                Err(actual) => seen = actual,
            }
        }
    }

    /// Evicts every interval older than the window ending at `epoch`.
    fn advance(&self, epoch: u64) {
        let swept = self.swept.load(Ordering::Acquire);
        if epoch <= swept
            || self
                .swept
                .compare_exchange(swept, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let first = (swept + 1).max(epoch.saturating_sub(self.buckets.len() as u64 - 1));
        for interval in first..=epoch {
            self.claim(interval);
        }
    }

    pub(crate) fn record(&self, record: Record, now_nanos: u64) {
        let epoch = self.epoch(now_nanos);
        self.advance(epoch);
        self.claim(epoch);
        let delta = Delta::of(record);
        self.total.add(delta);
        self.bucket(epoch).counters.add(delta);
    }

    pub(crate) fn snapshot(&self, now_nanos: u64) -> WindowSnapshot {
        self.advance(self.epoch(now_nanos));
        self.total.snapshot()
    }

    pub(crate) fn reset(&self) {
        for bucket in self.buckets.iter() {
            self.total.subtract(bucket.counters.take());
        }
    }
}

/// The window a breaker measures with.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn record(&self, record: Record, now_nanos: u64) {
        match self {
            Window::Count(window) => window.record(record),
            Window::Time(window) => window.record(record, now_nanos),
        }
    }

    pub(crate) fn snapshot(&self, now_nanos: u64) -> WindowSnapshot {
        match self {
            Window::Count(window) => window.snapshot(),
            Window::Time(window) => window.snapshot(now_nanos),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Window::Count(window) => window.reset(),
            Window::Time(window) => window.reset(),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn call(failure: bool, slow: bool, duration_micros: u64) -> Record {
        Record {
            failure,
            slow,
            duration_micros,
        }
    }

    fn model_snapshot<'a>(records: impl Iterator<Item = &'a Record>) -> WindowSnapshot {
        let mut snapshot = WindowSnapshot::default();
        for record in records {
            snapshot.calls += 1;
            snapshot.failures += u64::from(record.failure);
            snapshot.slow_calls += u64::from(record.slow);
            snapshot.slow_failures += u64::from(record.slow && record.failure);
            snapshot.total_duration_micros += record.duration_micros;
        }
        snapshot
    }

    #[test]
    fn count_window_keeps_the_last_n_calls() {
        let window = CountWindow::new(3);
        window.record(call(true, false, 10));
        window.record(call(true, true, 20));
        window.record(call(false, false, 30));
        assert_eq!(
            window.snapshot(),
            WindowSnapshot {
                calls: 3,
                failures: 2,
                slow_calls: 1,
                slow_failures: 1,
                total_duration_micros: 60
            }
        );
        window.record(call(false, false, 40)); // evicts the first failure
        assert_eq!(
            window.snapshot(),
            WindowSnapshot {
                calls: 3,
                failures: 1,
                slow_calls: 1,
                slow_failures: 1,
                total_duration_micros: 90
            }
        );
        window.reset();
        assert_eq!(window.snapshot(), WindowSnapshot::default());
    }

    #[test]
    fn time_window_forgets_old_intervals() {
        let second = 1_000_000_000;
        let window = TimeWindow::new(3, second);
        window.record(call(true, false, 1), 0);
        window.record(call(false, false, 1), second);
        window.record(call(false, false, 1), 2 * second + 5);
        assert_eq!(window.snapshot(2 * second + 9).calls, 3);
        assert_eq!(
            window.snapshot(3 * second).failures,
            0,
            "the first interval left the window"
        );
        assert_eq!(window.snapshot(3 * second).calls, 2);
        assert_eq!(
            window.snapshot(100 * second),
            WindowSnapshot::default(),
            "a long silence empties it"
        );
    }

    #[test]
    fn rates_are_percentages() {
        let snapshot = WindowSnapshot {
            calls: 8,
            failures: 2,
            slow_calls: 4,
            ..Default::default()
        };
        assert_eq!(snapshot.failure_rate(), Some(25.0));
        assert_eq!(snapshot.slow_call_rate(), Some(50.0));
        assert_eq!(WindowSnapshot::default().failure_rate(), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Call(Record),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), any::<bool>(), 0u64..1_000_000).prop_map(|(f, s, d)| Op::Call(call(f, s, d))),
            1 => (0u64..5_000_000_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn count_window_matches_a_queue_of_the_last_n(size in 1u32..20, ops in proptest::collection::vec(op(), 0..300)) {
            let window = CountWindow::new(size);
            let mut model = VecDeque::new();
            for op in ops {
                if let Op::Call(record) = op {
                    window.record(record);
                    model.push_back(record);
                    if model.len() > size as usize {
                        model.pop_front();
                    }
                }
                prop_assert_eq!(window.snapshot(), model_snapshot(model.iter()));
            }
        }

        #[test]
        fn time_window_matches_calls_in_the_last_intervals(
            buckets in 1u32..12,
            bucket_millis in 1u64..2_000,
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let bucket_nanos = bucket_millis * 1_000_000;
            let window = TimeWindow::new(buckets, bucket_nanos);
            let mut model: Vec<(u64, Record)> = Vec::new();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Call(record) => {
                        window.record(record, now);
                        model.push((now / bucket_nanos, record));
                    }
                    Op::Advance(nanos) => now += nanos,
                }
                let current = now / bucket_nanos;
                let in_window = model.iter().filter(|(epoch, _)| epoch + u64::from(buckets) > current).map(|(_, r)| r);
                prop_assert_eq!(window.snapshot(now), model_snapshot(in_window));
            }
        }
    }
}
