//! Model checks of the breaker's lock-free state under concurrent calls: every interleaving of
//! the threads below is explored by `loom`.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::state::{Machine, Settings, State, Verdict};
use super::window::{CountWindow, Record, Window};

fn machine(permits: u32, minimum_calls: u64, window: u32) -> Machine {
    let settings = Settings {
        failure_rate_threshold: 50.0,
        slow_call_rate_threshold: 100.0,
        minimum_calls,
        open_nanos: 1_000_000,
        open_backoff: 1.0,
        open_max_nanos: 1_000_000,
        open_jitter: 0.0,
        half_open_permits: permits,
        half_open_max_wait_nanos: None,
    };
    Machine::new(settings, Window::Count(CountWindow::new(window)))
}

fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(test);
}

#[test]
fn concurrent_failures_trip_exactly_once() {
    model(|| {
        let machine = Arc::new(machine(1, 2, 4));
        let transitions = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (machine, transitions) = (machine.clone(), transitions.clone());
                thread::spawn(move || {
                    let mut emit = |_| {
                        transitions.fetch_add(1, Ordering::SeqCst);
                    };
                    if let Ok(permit) = machine.acquire(|| 0, &mut emit) {
                        machine.record(permit, Verdict::Failure, false, 0, || 0, &mut emit);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(machine.state(), State::Open);
        assert_eq!(
            transitions.load(Ordering::SeqCst),
            1,
            "exactly one thread wins the trip"
        );
    });
}

#[test]
fn half_open_never_admits_more_than_its_permits() {
    model(|| {
        let machine = Arc::new(machine(1, 1, 4));
        machine.force(State::HalfOpen, false, 0, &mut |_| {});
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (machine, admitted) = (machine.clone(), admitted.clone());
                thread::spawn(move || {
                    if machine.acquire(|| 1, &mut |_| {}).is_ok() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_cancelled_probe_racing_a_new_one_leaves_a_consistent_permit_count() {
    model(|| {
        let machine = Arc::new(machine(1, 1, 4));
        machine.force(State::HalfOpen, false, 0, &mut |_| {});
        let first = machine.acquire(|| 1, &mut |_| {}).unwrap();
        let releaser = {
            let machine = machine.clone();
            thread::spawn(move || machine.release(first))
        };
        let second = machine.acquire(|| 1, &mut |_| {});
        releaser.join().unwrap();
        // Whether or not the second probe got in, one more may be admitted exactly when it did not.
        let third = machine.acquire(|| 1, &mut |_| {});
        assert!(
            second.is_ok() != third.is_ok(),
            "second {second:?}, third {third:?}"
        );
        assert_eq!(machine.state(), State::HalfOpen);
    });
}

#[test]
fn the_last_probe_and_a_manual_reset_race_to_a_consistent_state() {
    model(|| {
        let machine = Arc::new(machine(1, 1, 4));
        machine.force(State::HalfOpen, false, 0, &mut |_| {});
        let probe = machine.acquire(|| 1, &mut |_| {}).unwrap();
        let prober = {
            let machine = machine.clone();
            thread::spawn(move || {
                machine.record(probe, Verdict::Failure, false, 0, || 2, &mut |_| {})
            })
        };
        machine.force(State::Closed, true, 2, &mut |_| {});
        prober.join().unwrap();
        let state = machine.state();
        assert!(state == State::Closed || state == State::Open, "{state:?}");
        // After a reset to closed, the window is empty unless the failure came later; in every
        // case a closed breaker admits the next call.
        if state == State::Closed {
            assert!(machine.acquire(|| 3, &mut |_| {}).is_ok());
        }
    });
}

#[test]
fn the_count_windows_total_never_drifts_from_its_slots() {
    model(|| {
        let window = Arc::new(CountWindow::new(1));
        let threads: Vec<_> = [true, false]
            .into_iter()
            .map(|failure| {
                let window = window.clone();
                thread::spawn(move || {
                    window.record(Record {
                        failure,
                        slow: false,
                        duration_micros: 1,
                    })
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let snapshot = window.snapshot();
        assert_eq!(snapshot.calls, 1, "{snapshot:?}");
        assert!(snapshot.failures <= 1);
        assert_eq!(snapshot.total_duration_micros, 1);
    });
}
