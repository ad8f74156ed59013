//! A bounded wait for a slot, for requests that arrive when the limiter is full.
//!
//! Waiters are kept in one lane per class; a released slot goes to the highest class waiting.
//! Within a lane the oldest waiter is served first while the queue keeps draining, and the
//! newest once a queue has formed (adaptive LIFO: under sustained overload the newest request
//! is the one whose caller is most likely still waiting). How long a request may wait follows
//! CoDel: if the queue has not been empty within the last `interval`, only `target_wait`,
//! otherwise `max_wait`; and never past the request's own deadline.

use crate::core::PerClass;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use super::limiter::Slot;
use crate::core::Criticality;
use crate::core::clock::nanos;
use crate::core::sync::{AtomicU64, Ordering};

/// The settings of the wait queue. Defaults from Facebook's "Fail at Scale" (CoDel 5 ms /
/// 100 ms) and Netflix's LIFO backlog (100 requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The most requests waiting at once; beyond, requests are rejected. Default 100.
    pub max_len: usize,
    /// How long a request may wait while the queue keeps draining. Default 100 ms; at most an
    /// hour.
    pub max_wait: Duration,
    /// How long a request may wait once a standing queue has formed. Default 5 ms; at most an
    /// hour.
    pub target_wait: Duration,
    /// A queue that has not been empty for this long is a standing queue. Default 100 ms; at
    /// most an hour.
    pub interval: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_len: 100,
            max_wait: Duration::from_millis(100),
            target_wait: Duration::from_millis(5),
            interval: Duration::from_millis(100),
        }
    }
}

pub(crate) type SlotSender = oneshot::Sender<Slot>;

pub(crate) struct Queue {
    config: QueueConfig,
    /// Live waiters; read without the lock, so a release with nobody waiting takes no lock.
    waiting: AtomicU64,
    lanes: Mutex<PerClass<VecDeque<SlotSender>>>,
    /// When the queue was last empty, in nanoseconds on the limiter's clock.
    last_empty: AtomicU64,
}

/// Why a request could not wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoWait {
    Full,
}

impl Queue {
    pub(crate) fn new(config: QueueConfig) -> Self {
        Self {
            config,
            waiting: AtomicU64::new(0),
            lanes: Mutex::new(Default::default()),
            last_empty: AtomicU64::new(0),
        }
    }

    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    pub(crate) fn len(&self) -> u64 {
        self.waiting.load(Ordering::Acquire)
    }

    /// Whether a standing queue has formed: not empty within the last interval.
    fn standing(&self, now: u64) -> bool {
        self.has_waiters()
            && now.saturating_sub(self.last_empty.load(Ordering::Acquire))
                > nanos(self.config.interval)
    }

    /// Joins the queue in `class`'s lane: the receiver of the slot and the longest wait allowed
    /// by the queue (the caller applies the deadline).
    pub(crate) fn join(
        &self,
        class: Criticality,
        now: u64,
    ) -> Result<(oneshot::Receiver<Slot>, Duration), NoWait> {
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        if before as usize >= self.config.max_len {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(NoWait::Full);
        }
        if before == 0 {
            self.last_empty.store(now, Ordering::Release);
        }
        let wait = if self.standing(now) {
            self.config.target_wait
        } else {
            self.config.max_wait
        };
        let (sender, receiver) = oneshot::channel();
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())[class.index()]
        .push_back(sender);
        Ok((receiver, wait))
    }

    /// A waiter stopped waiting, whatever the reason (served, timed out, cancelled).
    pub(crate) fn leave(&self, now: u64) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.last_empty.store(now, Ordering::Release);
        }
    }

    /// The next waiter to serve among the classes `accept` allows: the highest class first,
    /// oldest first unless a standing queue has formed. Waiters that gave up are dropped.
    pub(crate) fn next(
        &self,
        now: u64,
        accept: impl Fn(Criticality) -> bool,
    ) -> Option<(Criticality, SlotSender)> {
        let lifo = self.standing(now);
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for class in Criticality::ALL.into_iter().rev() {
            let lane = &mut lanes[class.index()];
            lane.retain(|sender| !sender.is_closed());
            if lane.is_empty() || !accept(class) {
                continue;
            }
            let sender = if lifo {
                lane.pop_back()
            } else {
                lane.pop_front()
            };
            if let Some(sender) = sender {
                return Some((class, sender));
            }
        }
        None
    }
}
