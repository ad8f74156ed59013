//! The knee limit's state machine: one window of measurements in, the next limit out.
//!
//! Pure arithmetic over plain numbers, so that it can be tested on its own (the unit tests and
//! property tests below) and run by whichever thread closes a window. The module docs of
//! [`shed`](super) explain the algorithm and every constant.
//!
//! Long because of its unit tests (about a third of the file).

use super::config::Knee;
use crate::core::{Criticality, PerClass};

/// The windows over which a falling limit is compared with latency: when the limit fell below
/// [`FELL`] of what it was and latency stayed above [`FLAT`] of what it was (above the knee it
/// falls with the limit), latency does not depend on concurrency there, so the limit is below
/// the knee and that latency is the no-load latency (the service became slower).
const HISTORY: usize = 3;
const FELL: f64 = 0.75;
const FLAT: f64 = 0.85;
/// A probe divides the limit by this: from 1.5 times the knee, to half of it, below the knee
/// even when the no-load latency it started from was twice too high.
const PROBE_DEPTH: f64 = 3.0;
/// Completed requests, admitted during a probe, that a probe needs.
const PROBE_SAMPLES: u64 = 5;
/// A probe that measured this close to the no-load latency it started with confirms it.
const CONFIRMED: f64 = 0.1;
/// How many times the probe interval may double while probes agree.
const MAX_PROBE_BACKOFF: u32 = 4;
/// How fast the no-load latency follows latency upward while the service is healthy, and
/// downward always: a low estimate of a noisy latency.
const BASE_DRIFT: f64 = 0.05;
const BASE_FALL: f64 = 0.5;
/// Warming up lasts this many windows, and at most the longest window.
const WARMUP_WINDOWS: u32 = 8;
/// While warming up, in-flight beyond this many times throughput x latency is a backlog.
const WARM_BACKLOG: f64 = 5.0;
/// Latency this many times the tolerated level for [`HISTORY`] windows, while the limit holds
/// what is in flight (no backlog draining), cannot be the fixed point of a right no-load
/// latency (there latency sits at the tolerated level): the no-load latency is raised so that
/// this latency is tolerated.
const STUCK: f64 = 2.0;
/// A congested streak is overload once in-flight has grown by this factor (plus [`GROWTH_SLACK`])
/// since it began, or while requests are rejected.
const GROWTH: f64 = 1.25;
const GROWTH_SLACK: f64 = 2.0;
/// Latency within this multiple of the no-load latency: nothing queues.
const NO_QUEUE: f64 = 1.1;
/// Chance is this many standard errors: of a window's average latency (from its samples'
/// spread), and of an in-flight count (the square root of it, as for arrivals at random).
const NOISE: f64 = 2.0;
/// Probes run only while requests' latencies vary by at most this fraction of their average
/// (standard deviation over mean): a pool of fixed-time work, not random service times.
const STEADY: f64 = 0.25;
/// A backlog: what is in flight would take this many times the congested latency to complete
/// at the measured throughput, and is more than [`BACKLOG_SLACK`] requests.
const BACKLOG: f64 = 4.0;
const BACKLOG_SLACK: f64 = 8.0;
/// Congestion is acted on once it has lasted this long (half CoDel's interval): a burst that
/// drains sooner is absorbed.
const STANDING: u64 = 50_000_000;
/// Room kept for a higher class: its recent demand in slots times this, plus half its square
/// root (arrivals bunch: a small demand needs relatively more room), rounded.
const RESERVE_MARGIN: f64 = 1.25;
/// A class's reserve falls by at most a tenth from one window to the next: it follows the
/// peaks of its demand, which arrives in bunches.
const RESERVE_DECAY: f64 = 0.9;
/// In-flight must stay level (within [`LEVEL`], plus [`GROWTH_SLACK`]) over the last [`TREND`]
/// readings, one a window but at most one per [`TREND_STEP`] (so over at least half a second),
/// before a rise in latency may raise the no-load latency.
const TREND: usize = 6;
const TREND_STEP: u64 = 100_000_000;
const LEVEL: f64 = 1.1;
/// After an overload, the limit holds while the service is calm for this long (and at least
/// [`CALM_WINDOWS`] windows) before it relaxes: load that hovers at capacity rejects in some
/// windows and not in others, and must not see its limit doubled by the calm ones.
const CALM: u64 = 1_000_000_000;
const CALM_WINDOWS: u64 = 5;
/// A congested streak's latency is taken as the highest over its first 300 ms; once the
/// streak has lasted a second, latency still [`LEVEL`] above it is a queue creeping up.
const SETTLE: u64 = 300_000_000;
const CREEP: u64 = 1_000_000_000;

/// What one window measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct WindowStats {
    /// When the window closed, in nanoseconds on the limiter's clock.
    pub(crate) now: u64,
    /// Its length, in nanoseconds.
    pub(crate) elapsed: u64,
    /// The part of it since the latest busy spell began, if one began in it (else its length):
    /// throughput and congestion are measured over it.
    pub(crate) busy: u64,
    /// Completed (or cancelled) requests, and the sum of their latencies in nanoseconds.
    pub(crate) samples: u64,
    pub(crate) rtt_sum: u64,
    /// The sum of their squared latencies, in microseconds squared.
    pub(crate) rtt_squares: u64,
    /// Requests rejected in the window.
    pub(crate) rejected: u64,
    /// Requests in flight when the window began and when it closed, and the most at once.
    pub(crate) inflight_start: u64,
    pub(crate) inflight_end: u64,
    pub(crate) peak: u64,
    /// Requests by class (completed or rejected), lowest class first.
    pub(crate) demand: PerClass<u64>,
    /// Requests admitted after the current probe began that completed, and their latencies.
    pub(crate) probe_samples: u64,
    pub(crate) probe_rtt_sum: u64,
}

/// What the limiter applies after a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Step {
    pub(crate) limit: f64,
    /// The next window's length, in nanoseconds.
    pub(crate) window: u64,
    /// When the probe in progress began (requests admitted since then are its samples).
    pub(crate) probe_since: Option<u64>,
    /// Slots kept for each class's recent demand, lowest class first.
    pub(crate) reserves: PerClass<u32>,
    /// The window's average latency and the no-load latency, in nanoseconds.
    pub(crate) rtt: f64,
    pub(crate) base: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Probe {
    since: u64,
    limit: f64,
    /// The limit before the probe.
    before: f64,
}

/// The knee limit between windows.
#[derive(Clone, Debug)]
pub(crate) struct KneeState {
    config: Knee,
    /// The longest window (the shedder's `sample_window`), in nanoseconds.
    max_window: u64,
    limit: f64,
    /// The no-load latency in nanoseconds; 0 until the first window.
    base: f64,
    /// Completions per nanosecond in the last window that was not a probe.
    throughput: f64,
    /// (limit, latency) of the last windows in which the limit bound and fell, oldest first.
    falling: Vec<(f64, f64)>,
    /// Consecutive windows stuck far above the tolerated latency.
    stuck: u32,
    /// Windows seen.
    windows: u32,
    /// Whether still warming up, and when the first request came.
    warming: bool,
    first_request: u64,
    /// Consecutive congested windows, and the in-flight count and time when they began.
    congested: u32,
    streak_inflight: u64,
    streak_since: u64,
    /// The highest latency over the streak's first [`SETTLE`].
    streak_rtt: f64,
    probe: Option<Probe>,
    /// While the limit binds, when the next periodic probe is due.
    next_probe: u64,
    backoff: u32,
    /// Whether a probe has confirmed the no-load latency since it last changed.
    confirmed: bool,
    reserves: PerClass<f64>,
    /// In flight and latency at the last [`TREND`] readings, oldest first: a queue that grows
    /// slowly (load just over capacity) shows here before latency leaves the tolerated range.
    trend: [(u64, f64); TREND],
    /// When the current run of calm windows (nothing rejected, latency tolerated) began, while
    /// the limit is below its initial value.
    calm_since: Option<u64>,
    /// When [`trend`](Self::trend) last took a value.
    trend_at: u64,
}

impl KneeState {
    pub(crate) fn new(config: Knee, max_window: u64) -> Self {
        Self {
            config,
            max_window,
            limit: f64::from(config.initial),
            base: 0.0,
            throughput: 0.0,
            falling: Vec::with_capacity(HISTORY),
            stuck: 0,
            windows: 0,
            warming: true,
            first_request: 0,
            congested: 0,
            streak_inflight: 0,
            streak_since: 0,
            streak_rtt: 0.0,
            probe: None,
            next_probe: 0,
            backoff: 0,
            confirmed: false,
            reserves: [0.0; Criticality::COUNT],
            trend: [(0, f64::INFINITY); TREND],
            calm_since: None,
            trend_at: 0,
        }
    }

    /// Whether in-flight and latency have stayed level over the last [`TREND`] readings: a
    /// slower service shows one step up in latency, then a level; a queue keeps growing (in
    /// a small pool, by latency alone).
    fn level(&self, inflight: u64, rtt: f64, noise: f64) -> bool {
        let (oldest, oldest_rtt) = self.trend[0];
        inflight as f64 <= LEVEL * oldest as f64 + GROWTH_SLACK + NOISE * (oldest as f64).sqrt()
            && rtt <= LEVEL * oldest_rtt + noise
    }

    /// Until a probe confirms the no-load latency, probes come five times as often.
    fn probe_interval(&self) -> u64 {
        let interval = crate::core::clock::nanos(self.config.probe_interval);
        if self.confirmed {
            interval.saturating_mul(1 << self.backoff)
        } else {
            interval / 5
        }
    }

    /// The length of the next window.
    pub(crate) fn window(&self) -> u64 {
        let min = crate::core::clock::nanos(self.config.min_window);
        let rtts = self.base * f64::from(self.config.window_rtts);
        (rtts as u64).clamp(min, self.max_window.max(min))
    }

    /// Back to the initial limit: used when the service went idle after its last window and a
    /// request finds the old limit, which nothing has confirmed since.
    pub(crate) fn relax(&mut self) -> f64 {
        self.limit = self.limit.max(f64::from(self.config.initial));
        self.falling.clear();
        self.congested = 0;
        self.probe = None;
        self.limit
    }

    /// The limit under overload: `headroom` times the concurrency the service completes at its
    /// no-load latency (Little's law: throughput x latency), plus one, so that a small pool has
    /// a request ready for each connection that frees.
    fn knee_limit(&self, throughput: f64) -> f64 {
        self.config.headroom * throughput * self.base + 1.0
    }

    /// How fast the no-load latency follows latency up: quickly over the first windows (the
    /// first requests to complete are the fast ones, so the first windows read low), slowly
    /// after.
    fn drift(&self) -> f64 {
        if self.warming { BASE_FALL } else { BASE_DRIFT }
    }

    fn clamp(&self, limit: f64) -> f64 {
        limit.clamp(f64::from(self.config.min), f64::from(self.config.max))
    }

    fn step(&self, rtt: f64) -> Step {
        Step {
            limit: self.limit,
            window: self.window(),
            probe_since: self.probe.map(|probe| probe.since),
            reserves: self
                .reserves
                .map(|reserve| reserve.round().min(f64::from(u16::MAX)) as u32),
            rtt,
            base: self.base,
        }
    }

    /// The room each class's recent demand needs: requests per nanosecond times how long each
    /// holds a slot (the window's latency, at most twice the no-load latency).
    fn update_reserves(&mut self, stats: &WindowStats, rtt: f64) {
        let hold = if self.base > 0.0 {
            rtt.min(2.0 * self.base)
        } else {
            rtt
        };
        for (reserve, &demand) in self.reserves.iter_mut().zip(&stats.demand) {
            let needed = if demand == 0 {
                0.0
            } else {
                let slots = demand as f64 / stats.elapsed.max(1) as f64 * hold;
                slots * RESERVE_MARGIN + 0.5 * slots.sqrt()
            };
            *reserve = needed.max(*reserve * RESERVE_DECAY);
            if *reserve < 0.1 {
                *reserve = 0.0;
            }
        }
    }

    /// Takes one window's measurements; returns what to apply.
    pub(crate) fn on_window(&mut self, stats: &WindowStats) -> Step {
        let rtt = (stats.rtt_sum as f64 / stats.samples.max(1) as f64).max(1.0);
        // How far the window's average may stray by chance: NOISE standard errors of it. Zero
        // for a service whose latency does not vary; for random service times it keeps chance
        // from reading as congestion, and from pulling the no-load latency down.
        let (noise, spread) = {
            let n = stats.samples.max(1) as f64;
            let mean_micros = rtt / 1_000.0;
            let variance = (stats.rtt_squares as f64 / n - mean_micros * mean_micros).max(0.0);
            let deviation = variance.sqrt() * 1_000.0;
            (NOISE * deviation / n.sqrt(), deviation / rtt)
        };
        self.update_reserves(stats, rtt);
        if let Some(probe) = self.probe {
            self.continue_probe(probe, stats);
            return self.step(rtt);
        }
        let limiting = stats.rejected > 0;
        let throughput = stats.samples as f64 / stats.busy.max(1) as f64;
        if self.base == 0.0 {
            // The first window: a first guess at the no-load latency (high rather than low: a
            // high one costs latency until a probe corrects it, a low one would shed a
            // healthy service).
            self.base = rtt;
            self.first_request = stats.now.saturating_sub(stats.elapsed);
            self.throughput = throughput;
            self.next_probe = stats.now.saturating_add(self.probe_interval());
            return self.step(rtt);
        }
        self.windows += 1;
        // Warming up until the traffic has run for a few latencies: before, the requests that
        // have completed are the fast ones (the slow ones are still running), and latency
        // reads low. Meanwhile the no-load latency follows the latency; overload is judged
        // against the lowest latency seen.
        let warming = self.warming
            && self.windows <= WARMUP_WINDOWS
            && stats.now.saturating_sub(self.first_request) < self.max_window;
        self.warming = warming;
        if rtt + noise < self.base {
            // Down quickly, not at once, and only as far as chance could not explain.
            self.base += BASE_FALL * (rtt + noise - self.base);
        }
        // In flight now, at the throughput just measured, takes far longer than the no-load
        // latency to complete: a backlog is building faster than latency can show (the
        // requests completing now were admitted before it began).
        let backlog = stats.inflight_end as f64
            > (BACKLOG * self.config.tolerance * self.base * throughput).max(BACKLOG_SLACK);
        let congested = backlog || rtt - noise > self.config.tolerance * self.base;
        let limit = self.limit;
        let mut next = limit;
        if !congested {
            self.congested = 0;
            if limiting && (stats.peak as f64) + 1.0 < limit {
                // Requests were refused, but in-flight never came near the limit: lower
                // classes kept out to leave room for higher ones. The limit did not bind, and
                // what is in flight says nothing about the knee: it holds.
            } else if limiting {
                // The limit binds and latency is fine: below the knee, or at it. Below, the
                // service completes what it is given at its no-load latency, and the estimate
                // grows by the headroom each window; at the knee it holds.
                next = limit.max(self.knee_limit(throughput));
                if rtt <= NO_QUEUE * self.base {
                    // Nothing queues at all: one more, in case what is in flight was held down
                    // by something else (a probe just ended).
                    next = next.max(limit + 1.0);
                }
            } else {
                // Healthy: let the limit relax once calm has lasted (at once if the limit was
                // never cut), and follow the latency up slowly while in-flight stays level.
                let since = *self
                    .calm_since
                    .get_or_insert(stats.now.saturating_sub(stats.elapsed));
                let calm = limit >= f64::from(self.config.initial)
                    || stats.now.saturating_sub(since)
                        >= CALM.max(CALM_WINDOWS.saturating_mul(self.window()));
                if calm {
                    next = (limit * 2.0).max(2.0 * stats.peak as f64);
                }
                if self.warming || self.level(stats.inflight_end, rtt, noise) {
                    self.base += self.drift() * (rtt - self.base);
                }
            }
        } else {
            if self.congested == 0 {
                self.streak_inflight = stats.inflight_start;
                self.streak_since = stats.now.saturating_sub(stats.busy);
                self.streak_rtt = rtt;
            }
            self.congested += 1;
            let lasted = stats.now.saturating_sub(self.streak_since);
            if lasted <= SETTLE {
                // A slower service's latency steps up within this; a queue's keeps climbing.
                self.streak_rtt = self.streak_rtt.max(rtt);
            }
            // A queue that drains within the interval is a burst, absorbed (CoDel's rule).
            let standing = lasted >= STANDING;
            // Load just over capacity: a queue that builds too slowly for in-flight to show
            // it at once, but whose latency is still climbing long after the streak began.
            let creeping = lasted >= CREEP
                && stats.inflight_end >= self.streak_inflight
                && rtt > LEVEL * self.streak_rtt + noise;
            // While warming up, in-flight grows towards its level anyway and the no-load
            // latency is still settling: overload is in-flight far beyond what completes at
            // the latency measured (Little's law), a backlog that no ramp explains.
            // Still growing in this window: a burst that has arrived only drains.
            let rising = stats.inflight_end >= stats.inflight_start;
            let growing = standing
                && rising
                && if warming {
                    stats.inflight_end as f64 > WARM_BACKLOG * throughput * rtt + BACKLOG_SLACK
                } else {
                    backlog
                        || creeping
                        || (self.congested >= 2
                            && stats.inflight_end as f64
                                > GROWTH * self.streak_inflight as f64
                                    + GROWTH_SLACK
                                    + NOISE * (self.streak_inflight as f64).sqrt())
                };
            if limiting || growing {
                self.warming = false;
                // Overload: as many in flight as the service completes at its no-load latency,
                // plus headroom.
                next = self.knee_limit(throughput);
            } else {
                // Latency rose with nothing queueing up: the service got slower (or is warming
                // up), it is not overloaded; the limit holds, and the no-load latency follows
                // once in-flight and latency have settled. Not while a limit set by an overload
                // holds: latency under it includes the queue it allows.
                let cut = limit < f64::from(self.config.initial);
                if self.warming || (!cut && self.level(stats.inflight_end, rtt, noise)) {
                    self.base += self.drift() * (rtt - self.base);
                }
            }
        }
        if limiting || congested {
            self.calm_since = None;
        }
        if stats.now.saturating_sub(self.trend_at) >= TREND_STEP {
            self.trend.rotate_left(1);
            self.trend[TREND - 1] = (stats.inflight_end, rtt);
            self.trend_at = stats.now;
        }
        let next = self.clamp(next);
        let held = stats.inflight_end as f64 <= limit + 1.0;
        if limiting && held && rtt > STUCK * self.config.tolerance * self.base {
            self.stuck += 1;
            if self.stuck >= HISTORY as u32 {
                self.base = rtt / self.config.tolerance;
                self.confirmed = false;
                self.stuck = 0;
            }
        } else {
            self.stuck = 0;
        }
        if limiting && next < limit {
            if self.falling.len() == HISTORY {
                self.falling.remove(0);
            }
            self.falling.push((limit, rtt));
            let (first_limit, first_rtt) = self.falling[0];
            if self.falling.len() == HISTORY && next < FELL * first_limit && rtt >= FLAT * first_rtt
            {
                // Latency held while the limit fell: it is the no-load latency now.
                self.base = self.falling.iter().map(|&(_, rtt)| rtt).sum::<f64>() / HISTORY as f64;
                self.falling.clear();
                self.backoff = 0;
                self.confirmed = false;
            }
        } else {
            self.falling.clear();
        }
        self.limit = next;
        self.throughput = throughput;
        if !limiting {
            self.next_probe = stats.now.saturating_add(self.probe_interval());
        } else if stats.now >= self.next_probe {
            let probe_limit = self.clamp(self.limit / PROBE_DEPTH);
            // A small limit (a pool of 2 or 3) costs more to probe than a probe can learn there;
            // the initial limit was never set from a knee.
            // Nor a service whose latency varies much from request to request: the first
            // requests of a probe to complete are its fastest, which would read as a lower
            // no-load latency.
            let steady = spread <= STEADY;
            // Nor while classes above the lowest one in demand need more room than the probe
            // leaves: it would refuse their requests (and they, admitted past lower classes,
            // would keep the probe from getting below the knee).
            let lowest = stats.demand.iter().position(|&demand| demand > 0);
            let above: f64 = lowest.map_or(0.0, |lowest| self.reserves[lowest + 1..].iter().sum());
            if steady
                && above <= probe_limit
                && probe_limit <= self.limit - 3.0
                && self.limit < f64::from(self.config.initial)
            {
                self.probe = Some(Probe {
                    since: stats.now,
                    limit: probe_limit,
                    before: self.limit,
                });
                self.limit = probe_limit;
            } else {
                self.next_probe = stats.now.saturating_add(self.probe_interval());
            }
        }
        self.step(rtt)
    }

    fn continue_probe(&mut self, probe: Probe, stats: &WindowStats) {
        let done = stats.probe_samples >= PROBE_SAMPLES;
        let stale = stats.now.saturating_sub(probe.since) > 8 * self.max_window;
        if !done && !stale {
            self.limit = probe.limit;
            return;
        }
        self.probe = None;
        self.falling.clear();
        self.congested = 0;
        let measured = (stats.probe_rtt_sum as f64 / stats.probe_samples.max(1) as f64).max(1.0);
        if stats.probe_samples == 0 || (measured - self.base).abs() <= CONFIRMED * self.base {
            // Confirmed (or nothing learnt): back to where it was.
            if self.confirmed {
                self.backoff = (self.backoff + 1).min(MAX_PROBE_BACKOFF);
            }
            self.confirmed = stats.probe_samples > 0;
            self.limit = probe.before;
        } else {
            self.backoff = 0;
            self.confirmed = false;
            self.base = measured;
            // From the throughput before the probe, at the no-load latency now known.
            let target = self.knee_limit(self.throughput);
            self.limit = self.clamp(target.max(probe.limit));
        }
        self.next_probe = stats.now.saturating_add(self.probe_interval());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn state() -> KneeState {
        KneeState::new(Knee::default(), 1_000 * MS)
    }

    /// A window of `elapsed` ms in which `samples` requests completed in `rtt` ms each.
    fn window(now: u64, elapsed: u64, samples: u64, rtt: u64) -> WindowStats {
        WindowStats {
            now: now * MS,
            elapsed: elapsed * MS,
            busy: elapsed * MS,
            samples,
            rtt_sum: samples * rtt * MS,
            demand: [0, 0, samples, 0],
            ..WindowStats::default()
        }
    }

    /// Past its warm-up: 20 healthy windows of 100 ms at a 50 ms latency, 400 completions each.
    fn warm() -> (KneeState, u64) {
        let mut knee = state();
        for i in 1..=20 {
            knee.on_window(&WindowStats {
                peak: 30,
                inflight_start: 200,
                inflight_end: 200,
                ..window(i * 100, 100, 400, 50)
            });
        }
        (knee, 2_000)
    }

    #[test]
    fn a_healthy_service_keeps_a_generous_limit() {
        let (knee, _) = warm();
        assert_eq!(knee.limit, 10_000.0);
        assert!((knee.base - 50.0 * MS as f64).abs() < 1.0, "{}", knee.base);
    }

    #[test]
    fn overload_cuts_to_headroom_times_throughput_times_no_load_latency() {
        let (mut knee, now) = warm();
        // 400 completions per 100 ms at a 50 ms no-load latency: 200 in flight at the knee; a
        // backlog of 2000 is building.
        let step = knee.on_window(&WindowStats {
            inflight_start: 200,
            inflight_end: 2_000,
            peak: 2_000,
            ..window(now + 100, 100, 400, 120)
        });
        assert!((step.limit - 301.0).abs() < 1e-6, "{}", step.limit);
    }

    #[test]
    fn slower_latency_without_queueing_is_not_overload() {
        let (mut knee, now) = warm();
        for i in 1..20 {
            let step = knee.on_window(&WindowStats {
                inflight_start: 40,
                inflight_end: 41,
                peak: 45,
                ..window(now + i * 100, 100, 200, 100)
            });
            assert_eq!(step.limit, 10_000.0);
        }
    }

    #[test]
    fn a_limit_falling_while_latency_holds_learns_the_new_no_load_latency() {
        let (mut knee, mut now) = warm();
        knee.limit = 300.0;
        // The service became twice as slow (100 ms); the limit binds (rejections) and falls,
        // latency does not: below the knee.
        for inflight in [300u64, 200, 150, 120] {
            now += 100;
            knee.on_window(&WindowStats {
                rejected: 100,
                inflight_start: inflight,
                inflight_end: inflight,
                peak: inflight,
                ..window(now, 100, inflight, 100)
            });
        }
        assert!(
            (knee.base - 100.0 * MS as f64).abs() < 1.0,
            "base {}",
            knee.base
        );
    }

    #[test]
    fn a_probe_halves_the_limit_and_measures_the_no_load_latency_again() {
        let (mut knee, mut now) = warm();
        knee.limit = 300.0;
        // Overloaded at the fixed point for longer than the first probe interval (2 s).
        let mut probe = None;
        for _ in 0..30 {
            now += 100;
            let step = knee.on_window(&WindowStats {
                rejected: 1_000,
                inflight_start: 300,
                inflight_end: 300,
                peak: 300,
                ..window(now, 100, 400, 74)
            });
            if step.probe_since.is_some() {
                probe = Some(step);
                break;
            }
        }
        let probe = probe.expect("a probe while the limit binds");
        assert!(
            (probe.limit - 100.0).abs() < 1.0,
            "a third: {}",
            probe.limit
        );
        // The probe measured 40 ms: the no-load latency was too high.
        let step = knee.on_window(&WindowStats {
            rejected: 1_000,
            probe_samples: 20,
            probe_rtt_sum: 20 * 40 * MS,
            ..window(now + 100, 100, 300, 60)
        });
        assert_eq!(step.probe_since, None);
        assert!(
            (knee.base - 40.0 * MS as f64).abs() < 1.0,
            "base {}",
            knee.base
        );
    }

    #[test]
    fn reserves_follow_the_demand_of_each_class() {
        let mut knee = state();
        let step = knee.on_window(&WindowStats {
            demand: [800, 0, 200, 0],
            ..window(1000, 1000, 1000, 50)
        });
        // 200 requests a second holding a slot for 50 ms: 10 slots, +25%, + half its root.
        assert_eq!(step.reserves[2], 14);
        assert_eq!(step.reserves[3], 0);
        let step = knee.on_window(&window(2000, 1000, 1000, 50));
        assert_eq!(step.reserves[2], 66, "1000 a second, all of class 2");
        assert_eq!(
            step.reserves[0], 48,
            "a tenth less: no demand in this window"
        );
    }

    proptest! {
        #[test]
        fn the_limit_stays_within_bounds_and_the_window_positive(
            windows in proptest::collection::vec(
                (1u64..2_000, 0u64..5_000, 1u64..10_000, 0u64..100, 0u64..20_000, 0u64..20_000, 0u64..20),
                1..300,
            ),
        ) {
            let mut knee = state();
            let mut now = 0;
            for (elapsed, samples, rtt, rejected, start, end, probe) in windows {
                now += elapsed * MS;
                let step = knee.on_window(&WindowStats {
                    now,
                    elapsed: elapsed * MS,
                    busy: elapsed * MS,
                    samples,
                    rtt_sum: samples.saturating_mul(rtt * MS),
                    rtt_squares: samples.saturating_mul(rtt * rtt * 1_000_000),
                    rejected,
                    inflight_start: start,
                    inflight_end: end,
                    peak: start.max(end),
                    demand: [samples / 2, 0, samples - samples / 2, rejected],
                    probe_samples: probe,
                    probe_rtt_sum: probe * rtt * MS,
                });
                prop_assert!((2.0..=10_000.0).contains(&step.limit), "{}", step.limit);
                prop_assert!(step.window >= 20 * MS && step.window <= 1_000 * MS);
                prop_assert!(step.base.is_finite() && step.base >= 1.0);
            }
        }
    }
}
