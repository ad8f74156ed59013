//! A value a reload replaces while services read it on every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

/// The value in force, and how many reloads made it. A service keeps the value it last saw
/// with its count ([`Seen`]) and compares the count, one atomic load per request, loading the
/// value again only after a reload.
pub(crate) struct Reloadable<T> {
    value: ArcSwap<T>,
    reloads: AtomicU64,
}

/// A value as a service last saw it, with the reload count it was taken at.
pub(crate) type Seen<T> = (u64, Arc<T>);

impl<T> Reloadable<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            value: ArcSwap::from_pointee(value),
            reloads: AtomicU64::new(0),
        }
    }

    /// The value in force, for a reader that does not keep it.
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.value.load()
    }

    /// Replaces the value for every reader.
    pub(crate) fn store(&self, value: T) {
        self.value.store(Arc::new(value));
        self.reloads.fetch_add(1, Ordering::Release);
    }

    /// The value in force with its reload count (the value stored before the count moved,
    /// or a later one).
    pub(crate) fn snapshot(&self) -> Seen<T> {
        let reloads = self.reloads.load(Ordering::Acquire);
        (reloads, self.value.load_full())
    }

    /// Whether `seen` is out of date; if so it is brought up to date.
    #[inline]
    pub(crate) fn refresh(&self, seen: &mut Seen<T>) -> bool {
        if self.reloads.load(Ordering::Acquire) == seen.0 {
            return false;
        }
        *seen = self.snapshot();
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_a_reload_at_its_next_read_and_not_before() {
        let current = Reloadable::new(1);
        let mut seen = current.snapshot();
        assert!(!current.refresh(&mut seen));
        assert_eq!(*seen.1, 1);
        current.store(2);
        assert_eq!(*seen.1, 1, "what a reader holds is not swapped under it");
        assert!(current.refresh(&mut seen));
        assert_eq!(*seen.1, 2);
        assert!(!current.refresh(&mut seen));
        assert_eq!(**current.load(), 2);
    }
}
