//! Model checks of the limiter's admission and release under concurrent requests.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::limiter::Admission;
use crate::core::Criticality;

fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(test);
}

#[test]
fn admission_never_exceeds_the_limit() {
    model(|| {
        let admission = Arc::new(Admission::new(
            1,
            [0.0; Criticality::COUNT],
            [1.0; Criticality::COUNT],
        ));
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (admission, admitted) = (admission.clone(), admitted.clone());
                thread::spawn(move || {
                    if admission
                        .try_acquire(Criticality::Critical, 0)
                        .is_admitted()
                    {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 1);
        assert_eq!(admission.in_flight(), 1);
    });
}

#[test]
fn releases_racing_admissions_leave_counts_consistent() {
    model(|| {
        let admission = Arc::new(Admission::new(
            1,
            [0.0; Criticality::COUNT],
            [1.0; Criticality::COUNT],
        ));
        assert!(
            admission
                .try_acquire(Criticality::Critical, 0)
                .is_admitted()
        );
        let releaser = {
            let admission = admission.clone();
            thread::spawn(move || admission.release(Criticality::Critical))
        };
        let second = admission.try_acquire(Criticality::Sheddable, 0);
        releaser.join().unwrap();
        let expected = u64::from(second.is_admitted());
        assert_eq!(admission.in_flight(), expected);
        assert_eq!(admission.in_flight_of(Criticality::Critical), 0);
        assert_eq!(admission.in_flight_of(Criticality::Sheddable), expected);
    });
}

#[test]
fn a_retired_limiter_and_its_successor_never_pass_the_new_limit_together() {
    // A reload replaces a limiter while requests race to it: the old one is retired first, and
    // the new one counts what the old still has in flight.
    model(|| {
        let old = Arc::new(Admission::new(
            1,
            [0.0; Criticality::COUNT],
            [1.0; Criticality::COUNT],
        ));
        let new = Arc::new(Admission::new(
            1,
            [0.0; Criticality::COUNT],
            [1.0; Criticality::COUNT],
        ));
        let racer = {
            let old = old.clone();
            thread::spawn(move || old.try_acquire(Criticality::Critical, 0))
        };
        old.retire();
        let fresh = new.try_acquire(Criticality::Critical, old.in_flight());
        let raced = racer.join().unwrap();
        let admitted = usize::from(raced.is_admitted()) + usize::from(fresh.is_admitted());
        assert!(admitted <= 1, "{raced:?} and {fresh:?}");
        assert!(
            fresh.is_admitted() || raced.is_admitted(),
            "one of them is served"
        );
    });
}
