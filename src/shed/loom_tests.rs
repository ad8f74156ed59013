//! Model checks of the limiter's admission and release under concurrent requests.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::limiter::Admission;
use super::priority::Criticality;

fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(test);
}

#[test]
fn admission_never_exceeds_the_limit() {
    model(|| {
        let admission = Arc::new(Admission::new(1, [0.0; 4], [1.0; 4]));
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (admission, admitted) = (admission.clone(), admitted.clone());
                thread::spawn(move || {
                    if admission.try_acquire(Criticality::Critical).is_some() {
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
        let admission = Arc::new(Admission::new(1, [0.0; 4], [1.0; 4]));
        assert!(admission.try_acquire(Criticality::Critical).is_some());
        let releaser = {
            let admission = admission.clone();
            thread::spawn(move || admission.release(Criticality::Critical))
        };
        let second = admission.try_acquire(Criticality::Sheddable);
        releaser.join().unwrap();
        let expected = u64::from(second.is_some());
        assert_eq!(admission.in_flight(), expected);
        assert_eq!(admission.in_flight_of(Criticality::Critical), 0);
        assert_eq!(admission.in_flight_of(Criticality::Sheddable), expected);
    });
}
