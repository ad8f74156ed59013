//! The breaker's call-level API (`BreakerHandle::try_acquire` and its permit) and its state
//! machine, scenario by scenario as in Resilience4j's tests and docs: one row a scenario, each
//! with its config, its steps, and the state, window and rates expected at the end.

use std::time::Duration;

use steadfast::breaker::{
    BreakerConfig, BreakerHandle, BreakerPermit, SlidingWindow, State, TransitionReason,
};

/// One step of a scenario.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Acquire and record a success that took this many milliseconds.
    Pass(u64),
    /// Acquire and record a failure that took this many milliseconds.
    Fail(u64),
    /// Acquire and record an outcome that is not the service's doing.
    Ignore,
    /// Acquire and drop the permit unrecorded.
    Cancel,
    /// Acquire and keep the permit (recorded by `Finish*` later, in order).
    Hold,
    /// Record the oldest held permit as a success.
    FinishOk,
    /// Record the oldest held permit as a failure.
    FinishFail,
    /// Drop the oldest held permit unrecorded.
    FinishCancel,
    /// Expect the next acquire to be refused.
    Refused,
    /// Let this many milliseconds pass.
    Wait(u64),
    Trip,
    HalfOpen,
    Close,
    Reset,
    Disable,
    MetricsOnly,
    ForceOpen,
}

struct Row {
    name: &'static str,
    config: fn() -> BreakerConfig,
    steps: &'static [Step],
    state: State,
    /// Calls, failures and slow calls in the window at the end.
    window: (u64, u64, u64),
    failure_rate: Option<f64>,
    slow_call_rate: Option<f64>,
    /// Half-open progress at the end: (in flight, completed, failures).
    half_open: Option<(u32, u32, u32)>,
}

/// Window of 10 calls, minimum 4, 50 % thresholds, slow above 1 s, open 10 s, 2 probes.
fn small() -> BreakerConfig {
    BreakerConfig::new()
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(4)
        .slow_call_duration(Duration::from_secs(1))
        .slow_call_rate_threshold(50.0)
        .open_duration(Duration::from_secs(10))
        .half_open_permits(2)
        .half_open_max_wait(Some(Duration::from_secs(30)))
}

fn minimum_above_window() -> BreakerConfig {
    small()
        .sliding_window(SlidingWindow::count(3))
        .minimum_calls(100)
}

fn time_window() -> BreakerConfig {
    small().sliding_window(SlidingWindow::time(Duration::from_secs(10)))
}

fn no_max_wait() -> BreakerConfig {
    small().half_open_max_wait(None)
}

use Step::*;

const ROWS: &[Row] = &[
    Row {
        name: "below the minimum number of calls the rate is unknown, not 0 %",
        config: small,
        steps: &[Fail(1), Fail(1), Fail(1)],
        state: State::Closed,
        window: (3, 3, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "a healthy window reports 0 %",
        config: small,
        steps: &[Pass(1), Pass(1), Pass(1), Pass(1)],
        state: State::Closed,
        window: (4, 0, 0),
        failure_rate: Some(0.0),
        slow_call_rate: Some(0.0),
        half_open: None,
    },
    Row {
        name: "below the threshold it stays closed",
        config: small,
        steps: &[Pass(1), Pass(1), Pass(1), Fail(1), Pass(1)],
        state: State::Closed,
        window: (5, 1, 0),
        failure_rate: Some(20.0),
        slow_call_rate: Some(0.0),
        half_open: None,
    },
    Row {
        name: "the threshold is reached at equality",
        config: small,
        steps: &[Pass(1), Fail(1), Pass(1), Fail(1), Refused],
        state: State::Open,
        window: (4, 2, 0),
        failure_rate: Some(50.0),
        slow_call_rate: Some(0.0),
        half_open: None,
    },
    Row {
        name: "the minimum is capped at a count window's size",
        config: minimum_above_window,
        steps: &[Fail(1), Fail(1), Fail(1), Refused],
        state: State::Open,
        window: (3, 3, 0),
        failure_rate: Some(100.0),
        slow_call_rate: Some(0.0),
        half_open: None,
    },
    Row {
        name: "slow successes trip on the slow-call rate",
        config: small,
        steps: &[Pass(1500), Pass(1), Pass(2000), Pass(1), Refused],
        state: State::Open,
        window: (4, 0, 2),
        failure_rate: Some(0.0),
        slow_call_rate: Some(50.0),
        half_open: None,
    },
    Row {
        name: "a call exactly at the slow-call duration is not slow",
        config: small,
        steps: &[Pass(1000), Pass(1000), Pass(1000), Pass(1000)],
        state: State::Closed,
        window: (4, 0, 0),
        failure_rate: Some(0.0),
        slow_call_rate: Some(0.0),
        half_open: None,
    },
    Row {
        name: "ignored and cancelled calls are not counted",
        config: small,
        steps: &[Fail(1), Ignore, Cancel, Fail(1), Ignore, Pass(1), Cancel],
        state: State::Closed,
        window: (3, 2, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "the open wait must be strictly exceeded",
        config: small,
        steps: &[Trip, Wait(10_000), Refused],
        state: State::Open,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "after the open wait a call is a probe",
        config: small,
        steps: &[Trip, Wait(10_001), Hold],
        state: State::HalfOpen,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: Some((1, 0, 0)),
    },
    Row {
        name: "half-open refuses calls beyond its permits",
        config: small,
        steps: &[HalfOpen, Hold, Hold, Refused],
        state: State::HalfOpen,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: Some((2, 0, 0)),
    },
    Row {
        name: "a cancelled probe gives its place back and counts for nothing",
        config: small,
        steps: &[HalfOpen, Hold, Hold, FinishCancel, Hold],
        state: State::HalfOpen,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: Some((2, 0, 0)),
    },
    Row {
        name: "an ignored probe gives its place back",
        config: small,
        steps: &[HalfOpen, Ignore, Ignore, Hold],
        state: State::HalfOpen,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: Some((1, 0, 0)),
    },
    Row {
        name: "probe progress is visible before they decide",
        config: small,
        steps: &[HalfOpen, Hold, Hold, FinishFail],
        state: State::HalfOpen,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: Some((1, 1, 1)),
    },
    Row {
        name: "successful probes close with an empty window",
        config: small,
        steps: &[
            Fail(1),
            Fail(1),
            Fail(1),
            Fail(1),
            Wait(10_001),
            Pass(1),
            Pass(1),
        ],
        state: State::Closed,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "probes at the failure threshold open again",
        config: small,
        steps: &[HalfOpen, Pass(1), Fail(1), Refused],
        state: State::Open,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "slow probes open again",
        config: small,
        steps: &[HalfOpen, Pass(1), Pass(1500), Refused],
        state: State::Open,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "a stuck half-open opens after its maximum wait",
        config: small,
        steps: &[HalfOpen, Hold, Wait(30_001), Refused, FinishOk],
        state: State::Open,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "without a maximum wait half-open waits for its probes",
        config: no_max_wait,
        steps: &[HalfOpen, Hold, Wait(3_600_000), Hold, Refused],
        state: State::HalfOpen,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: Some((2, 0, 0)),
    },
    Row {
        name: "outcomes of calls admitted before a trip are ignored",
        config: small,
        steps: &[
            Hold,
            Hold,
            Trip,
            FinishFail,
            FinishFail,
            Wait(10_001),
            Pass(1),
            Pass(1),
        ],
        state: State::Closed,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "a time window forgets old calls",
        config: time_window,
        steps: &[Fail(1), Fail(1), Fail(1), Wait(11_000), Pass(1), Fail(1)],
        state: State::Closed,
        window: (2, 1, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "metrics only computes rates and never trips",
        config: small,
        steps: &[
            Fail(1),
            MetricsOnly,
            Fail(1),
            Fail(1),
            Fail(1),
            Fail(1),
            Fail(1),
        ],
        state: State::MetricsOnly,
        window: (5, 5, 0),
        failure_rate: Some(100.0),
        slow_call_rate: Some(0.0),
        half_open: None,
    },
    Row {
        name: "disabled records nothing",
        config: small,
        steps: &[
            Fail(1),
            Disable,
            Fail(1),
            Fail(1),
            Fail(1),
            Fail(1),
            Fail(1),
        ],
        state: State::Disabled,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "forced open refuses whatever the time",
        config: small,
        steps: &[ForceOpen, Wait(3_600_000), Refused],
        state: State::ForcedOpen,
        window: (0, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "close by hand starts an empty window",
        config: small,
        steps: &[Fail(1), Fail(1), Fail(1), Close, Fail(1), Fail(1)],
        state: State::Closed,
        window: (2, 2, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
    Row {
        name: "reset from forced open closes",
        config: small,
        steps: &[ForceOpen, Reset, Pass(1)],
        state: State::Closed,
        window: (1, 0, 0),
        failure_rate: None,
        slow_call_rate: None,
        half_open: None,
    },
];

async fn run(row: &Row) {
    let breaker = BreakerHandle::new((row.config)().name(row.name)).unwrap();
    let mut held: std::collections::VecDeque<BreakerPermit> = Default::default();
    let acquire = |step: Step| {
        breaker
            .try_acquire()
            .unwrap_or_else(|refused| panic!("{}: {step:?} refused: {refused}", row.name))
    };
    for &step in row.steps {
        match step {
            Pass(ms) => acquire(step).success_after(Duration::from_millis(ms)),
            Fail(ms) => acquire(step).failure_after(Duration::from_millis(ms)),
            Ignore => acquire(step).ignore(),
            Cancel => drop(acquire(step)),
            Hold => held.push_back(acquire(step)),
            FinishOk => held.pop_front().expect("a held permit").success(),
            FinishFail => held.pop_front().expect("a held permit").failure(),
            FinishCancel => held.pop_front().expect("a held permit").release(),
            Refused => {
                let refused = breaker.try_acquire().map(drop);
                assert!(refused.is_err(), "{}: expected a refusal", row.name);
            }
            Wait(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
            Trip => breaker.trip(),
            HalfOpen => breaker.half_open(),
            Close => breaker.close(),
            Reset => breaker.reset(),
            Disable => breaker.disable(),
            MetricsOnly => breaker.metrics_only(),
            ForceOpen => breaker.force_open(),
        }
    }
    let snapshot = breaker.snapshot();
    let window = (
        snapshot.window.calls,
        snapshot.window.failures,
        snapshot.window.slow_calls,
    );
    assert_eq!(snapshot.state, row.state, "{}: state", row.name);
    assert_eq!(window, row.window, "{}: window", row.name);
    assert_eq!(
        snapshot.failure_rate, row.failure_rate,
        "{}: failure rate",
        row.name
    );
    assert_eq!(
        snapshot.slow_call_rate, row.slow_call_rate,
        "{}: slow-call rate",
        row.name
    );
    let progress = snapshot
        .half_open
        .map(|progress| (progress.in_flight, progress.completed, progress.failures));
    assert_eq!(progress, row.half_open, "{}: half-open progress", row.name);
}

#[tokio::test(start_paused = true)]
async fn the_state_machine_follows_resilience4j_scenario_by_scenario() {
    for row in ROWS {
        run(row).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_says_why_and_for_how_long() {
    let breaker = BreakerHandle::new(small()).unwrap();
    breaker.trip();
    tokio::time::advance(Duration::from_secs(4)).await;
    let refused = breaker.try_acquire().unwrap_err();
    assert_eq!(refused.state(), State::Open);
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(6)));
    assert!(refused.to_string().contains("open"));

    breaker.force_open();
    let refused = breaker.try_acquire().unwrap_err();
    assert_eq!(
        (refused.state(), refused.retry_after()),
        (State::ForcedOpen, None)
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_progress_counts_slow_probes_and_permits() {
    let breaker = BreakerHandle::new(small().half_open_permits(3)).unwrap();
    breaker.half_open();
    breaker
        .try_acquire()
        .unwrap()
        .success_after(Duration::from_secs(2));
    let progress = breaker.snapshot().half_open.unwrap();
    assert_eq!(
        (progress.permits, progress.in_flight, progress.completed),
        (3, 0, 1)
    );
    assert_eq!((progress.failures, progress.slow), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_permit_measures_its_call_from_admission() {
    let breaker = BreakerHandle::new(small()).unwrap();
    let mut events = breaker.subscribe();
    for _ in 0..4 {
        let permit = breaker.try_acquire().unwrap();
        tokio::time::advance(Duration::from_millis(1500)).await;
        permit.success();
    }
    let event = events.try_recv().unwrap();
    assert_eq!(
        (event.transition.to, event.transition.reason),
        (State::Open, TransitionReason::SlowCallRate)
    );
    assert_eq!(breaker.snapshot().window.total_duration_micros, 6_000_000);
}

#[tokio::test(start_paused = true)]
async fn permits_dropped_across_threads_are_all_given_back() {
    // Many probes' permits dropped on other tasks: none is lost, so half-open admits again.
    let breaker = BreakerHandle::new(small().half_open_permits(64)).unwrap();
    breaker.half_open();
    let permits: Vec<_> = (0..64).map(|_| breaker.try_acquire().unwrap()).collect();
    assert!(breaker.try_acquire().is_err());
    let tasks: Vec<_> = permits
        .into_iter()
        .map(|permit| tokio::spawn(async move { drop(permit) }))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(breaker.snapshot().half_open.unwrap().in_flight, 0);
    assert!(breaker.try_acquire().is_ok());
}
