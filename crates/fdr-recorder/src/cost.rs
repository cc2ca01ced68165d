//! The live cost meter and the cost budget: what fdr costs the process, measured while it
//! runs, and the detail it sheds when that is over budget.
//!
//! Every interval of the metrics sampler (`fdr-metrics`, [`Config::metrics_interval`],
//! 1 s by default) the meter reads, never on a recording thread and never per event:
//!
//! - the CPU time of each of fdr's own threads (collector, OS sampler, metrics sampler,
//!   capture writer, tokio watcher, sentinel, admin endpoint; each registers itself with
//!   [`register_thread`] when it starts), from `/proc/self/task/TID/schedstat` (Linux);
//! - the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, every thread);
//! - the events recorded ([`crate::Stats::events`], counted as chunks are sealed) and the
//!   polls and wakes of instrumented tasks (counted whether recorded or not);
//!
//! and estimates the recording threads' own cost of recording as events times a per-event
//! cost it calibrates once, at its first interval, by timing the hot path's work (a clock
//! read, an event encoded, its bytes stored) on its own thread. [`cost`] returns the
//! totals and the last interval's share of the process's CPU (fdr's threads plus the
//! estimate, over the process's CPU time); `/metrics` (fdr-admin) and each incident's
//! sidecar (fdr-sentinel) publish them.
//!
//! # The budget
//!
//! Above the budget ([`set_budget`], default [`DEFAULT_BUDGET`], 1% of the process's CPU)
//! fdr sheds detail, in this order ([`Detail`]):
//!
//! 1. wakes of instrumented tasks ([`Detail::NoWakes`]);
//! 2. then their polls' start and end events as well ([`Detail::NoPolls`]).
//!
//! Task creation and drop, regions, logs, blocks, metric samples and loss records are never
//! shed: a diagnosis stands on them, and what is left over budget after shedding is reported
//! by the share. Metrics (scheduling latency, poll duration, the poll and wake counters) are
//! measured at every level: they are how the meter knows what shed events would cost.
//!
//! The meter picks the least shedding whose projected share (the interval's cost with the
//! shed events' cost added back, or taken out) is within the budget, and, to restore a
//! level, within [`RESTORE_FRACTION`] of it, so detail does not flap. It sheds only what
//! would save at least [`MIN_SAVING_FRACTION`] of the budget and of the excess: with little left to shed (the
//! load fell, or fdr's own threads are what costs in a quiet process) it keeps or restores
//! full detail. Each interval's level
//! is written into the trace as the metric sample `fdr_cost_shed_level` beside
//! `fdr_cost_share` and `fdr_cost_events_per_second` (`docs/FORMAT.md`), and each change as
//! a log in category `fdr.cost`. A change's sample is recorded just after the switch when
//! detail is shed and just before it when detail is restored: between the two samples, every
//! event was recorded at the shed level.
//!
//! The check a recording thread makes is one relaxed load of a byte in the cache line that
//! holds the recording switch ([`crate::enabled`]), which the same poll or wake has just
//! read: no extra cache line per event.
//!
//! [`Config::metrics_interval`]: crate::Config::metrics_interval

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use fdr_format::{TaskId, encode};

use crate::error::{ConfigError, Error, MetricsError};
use crate::metrics::MetricsSnapshot;
use crate::sync::lock;

/// The default budget: fdr's share of the process's CPU above which it sheds detail (1%).
pub const DEFAULT_BUDGET: f64 = 0.01;

/// A shed level is restored only when the projected share with its detail back is within
/// this fraction of the budget.
pub const RESTORE_FRACTION: f64 = 0.8;

/// Detail is shed only when what a level sheds would cost at least this fraction of the
/// budget and of the share's excess over it: in a quiet process fdr's own threads may be
/// most of its CPU time, and shedding polls would barely change the share.
pub const MIN_SAVING_FRACTION: f64 = 0.25;

/// Most of fdr's threads the meter follows at once; a thread registered past it is counted
/// in [`Cost::unmetered_threads`].
pub const MAX_METERED_THREADS: usize = 64;

/// How much detail instrumented tasks record, in the order it is shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Detail {
    /// Everything.
    #[default]
    Full = 0,
    /// Wakes of instrumented tasks are not recorded.
    NoWakes = 1,
    /// Wakes of instrumented tasks are not recorded, and their polls only when they matter
    /// to a diagnosis: a poll at least [`KEEP_POLL_NS`] long, or one inside which something
    /// else is recorded (a region, a log, a block, a task's creation), keeps its start and
    /// end, in the order and at the times a full trace has them; a short poll with nothing
    /// in it leaves no event.
    NoPolls = 2,
}

impl Detail {
    /// Every level, from full detail to the most shed.
    pub const ALL: [Detail; 3] = [Detail::Full, Detail::NoWakes, Detail::NoPolls];

    /// The level as its number (0: full detail), as the trace's `fdr_cost_shed_level`
    /// carries it.
    pub fn level(self) -> u8 {
        self as u8
    }

    fn from_level(level: u8) -> Detail {
        match level {
            0 => Detail::Full,
            1 => Detail::NoWakes,
            _ => Detail::NoPolls,
        }
    }

    /// Events of `wakes` wakes and `polls` polls this level records. (At
    /// [`Detail::NoPolls`] the polls kept whole, long or with events inside, are among the
    /// other events: the projection counts them at both levels, a small overestimate.)
    fn kept(self, wakes: u64, polls: u64) -> u64 {
        match self {
            Detail::Full => wakes + 2 * polls,
            Detail::NoWakes => 2 * polls,
            Detail::NoPolls => 0,
        }
    }
}

/// Whether a wake is recorded at the current level (the caller has checked
/// [`crate::enabled`], which reads the same cache line).
#[inline(always)]
pub(crate) fn record_wakes() -> bool {
    crate::SWITCHES.shed.load(Ordering::Relaxed) < Detail::NoWakes as u8
}

/// A poll at least this long keeps its start and end at every level: while polls are shed
/// a poll's start is deferred, and written (at its own time) only if the poll turns out
/// this long or something is recorded inside it ([`Detail::NoPolls`]). 100 µs: a tenth of
/// the analyzer's long poll, so every poll a diagnosis calls long is kept, and its two
/// events cost at most about 0.01% of the poll.
pub const KEEP_POLL_NS: u64 = 100_000;

/// [`KEEP_POLL_NS`] in event-clock ticks (0 until first asked).
static KEEP_POLL_TICKS: AtomicU64 = AtomicU64::new(0);

/// [`KEEP_POLL_NS`] in event-clock ticks.
#[inline(always)]
pub(crate) fn keep_poll_ticks() -> u64 {
    match KEEP_POLL_TICKS.load(Ordering::Relaxed) {
        0 => keep_poll_ticks_init(),
        t => t,
    }
}

#[cold]
#[inline(never)]
fn keep_poll_ticks_init() -> u64 {
    let ticks_per_sec = crate::clock::calibrate().ticks_per_sec;
    let t = ((KEEP_POLL_NS as f64 * ticks_per_sec / 1e9) as u64).max(1);
    KEEP_POLL_TICKS.store(t, Ordering::Relaxed);
    t
}

/// Whether a poll's start and end are recorded at the current level.
#[inline(always)]
pub(crate) fn record_polls() -> bool {
    crate::SWITCHES.shed.load(Ordering::Relaxed) < Detail::NoPolls as u8
}

/// Which of fdr's threads a metered thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The collector (`fdr-collector`).
    Collector,
    /// The OS view's sampler (`fdr-sampler`).
    Sampler,
    /// The metrics sampler (`fdr-metrics`), which runs this meter.
    Metrics,
    /// A streaming capture's writer (`fdr-capture`).
    Capture,
    /// The tokio runtime watcher (`fdr-tokio-watch`).
    TokioWatch,
    /// The sentinel and its dump writer (`fdr-sentinel`, `fdr-sentinel-dump`).
    Sentinel,
    /// The admin endpoint (`fdr-admin`).
    Admin,
}

impl Role {
    /// Every role, in [`Cost::thread_cpu_ns`] order.
    pub const ALL: [Role; 7] = [
        Role::Collector,
        Role::Sampler,
        Role::Metrics,
        Role::Capture,
        Role::TokioWatch,
        Role::Sentinel,
        Role::Admin,
    ];

    /// Its name, as `/metrics` labels it (`thread="collector"`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Collector => "collector",
            Role::Sampler => "sampler",
            Role::Metrics => "metrics",
            Role::Capture => "capture",
            Role::TokioWatch => "tokio_watch",
            Role::Sentinel => "sentinel",
            Role::Admin => "admin",
        }
    }
}

/// What fdr costs the process, as the meter last read it ([`cost`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    /// Intervals metered so far (0: none yet, and every other field is 0 too but the
    /// budget and the detail).
    pub intervals: u64,
    /// CPU time of fdr's own threads by role, in [`Role::ALL`] order, since they started
    /// (threads that exited included), in ns.
    pub thread_cpu_ns: [u64; 7],
    /// The process's CPU time, every thread, since it started, in ns.
    pub process_cpu_ns: u64,
    /// Events recorded (in sealed chunks) since the recorder started.
    pub events: u64,
    /// The calibrated cost of recording one event on a recording thread, in ns.
    pub per_event_ns: f64,
    /// The recording threads' estimated CPU time spent recording: `events` times
    /// `per_event_ns`.
    pub recording_cpu_ns: u64,
    /// Events recorded per second over the last interval.
    pub events_per_second: f64,
    /// fdr's share of the process's CPU over the last interval: its threads' CPU time plus
    /// the recording estimate, over the process's CPU time (0 with no process CPU time, at
    /// most 1).
    pub share: f64,
    /// The budget ([`set_budget`]).
    pub budget: f64,
    /// The detail recorded now.
    pub detail: Detail,
    /// Times the meter shed more detail.
    pub sheds: u64,
    /// Times the meter restored detail.
    pub restores: u64,
    /// fdr threads registered past [`MAX_METERED_THREADS`], not metered.
    pub unmetered_threads: u64,
}

impl Cost {
    /// CPU time of fdr's threads of `role`, in ns.
    pub fn thread_cpu_ns_of(&self, role: Role) -> u64 {
        Role::ALL
            .iter()
            .position(|r| *r == role)
            .map_or(0, |i| self.thread_cpu_ns[i])
    }

    /// CPU time of all of fdr's threads, in ns.
    pub fn threads_cpu_ns(&self) -> u64 {
        self.thread_cpu_ns.iter().sum()
    }

    /// fdr's CPU time in all: its threads' and the recording estimate, in ns.
    pub fn total_cpu_ns(&self) -> u64 {
        self.threads_cpu_ns() + self.recording_cpu_ns
    }
}

/// A metered thread.
struct Metered {
    role: usize,
    tid: u64,
    /// Its CPU time at the last read.
    last_ns: u64,
}

/// The meter's state.
struct Meter {
    threads: Vec<Metered>,
    /// CPU time of exited threads, by role.
    retired_ns: [u64; 7],
    unmetered: u64,
    budget: f64,
    per_event_ns: Option<f64>,
    /// The previous interval's end: (instant, process CPU, events, wakes, polls, threads' CPU).
    prev: Option<Reading>,
    cost: Cost,
}

#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    process_ns: u64,
    events: u64,
    wakes: u64,
    polls: u64,
    threads_ns: u64,
}

static METER: Mutex<Meter> = Mutex::new(Meter {
    threads: Vec::new(),
    retired_ns: [0; 7],
    unmetered: 0,
    budget: DEFAULT_BUDGET,
    per_event_ns: None,
    prev: None,
    cost: Cost {
        intervals: 0,
        thread_cpu_ns: [0; 7],
        process_cpu_ns: 0,
        events: 0,
        per_event_ns: 0.0,
        recording_cpu_ns: 0,
        events_per_second: 0.0,
        share: 0.0,
        budget: DEFAULT_BUDGET,
        detail: Detail::Full,
        sheds: 0,
        restores: 0,
        unmetered_threads: 0,
    },
});

/// Registers the calling thread as one of fdr's own, of `role`, so the meter counts its
/// CPU time. Called once by each of fdr's threads when it starts (the sentinel's and the
/// admin endpoint's too); a thread registered twice is counted once.
pub fn register_thread(role: Role) {
    let Some(tid) = os_tid() else {
        return;
    };
    let role = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
    let mut m = lock(&METER);
    if m.threads.iter().any(|t| t.tid == tid) {
        return;
    }
    if m.threads.len() >= MAX_METERED_THREADS {
        m.unmetered += 1;
        return;
    }
    m.threads.push(Metered {
        role,
        tid,
        last_ns: 0,
    });
}

/// Sets the budget: fdr's share of the process's CPU above which it sheds detail, in
/// `(0, 1]` (`0.01`: 1%). `1.0` never sheds. Refused (nothing changes) outside that range.
pub fn set_budget(share: f64) -> Result<(), Error> {
    if !(share > 0.0 && share <= 1.0) {
        return Err(Error::Config(ConfigError::Metrics(
            MetricsError::CostBudget { share },
        )));
    }
    let mut m = lock(&METER);
    m.budget = share;
    m.cost.budget = share;
    Ok(())
}

/// The meter's last reading (see the [module docs](self)).
pub fn cost() -> Cost {
    lock(&METER).cost
}

/// The detail recorded now.
pub fn detail() -> Detail {
    Detail::from_level(crate::SWITCHES.shed.load(Ordering::Relaxed))
}

/// Sets the detail recorded now, as the meter does, until its next interval decides again:
/// for benches that measure what a level costs (with the meter off,
/// `Config::metrics_interval: None`, the level stays). Not for services: the meter owns the
/// level.
#[doc(hidden)]
pub fn set_detail_for_bench(detail: Detail) {
    crate::SWITCHES.shed.store(detail as u8, Ordering::Relaxed);
}

/// Meters one interval (the metrics sampler's), given the metrics it read, and applies the
/// budget. Returns the reading and the level it left before, if it changed.
///
/// A change is handed to `stamp` (which records the level's sample) on the side of the
/// switch where the sample holds: after it when shedding, before it when restoring. So
/// every event recorded between a shedding sample and the next restoring one was recorded
/// at the shed level, however long the sampler's thread takes between the two.
pub(crate) fn tick(metrics: &MetricsSnapshot, stamp: impl Fn(Detail)) -> (Cost, Option<Detail>) {
    let mut guard = lock(&METER);
    let m = &mut *guard;
    let per_event_ns = *m.per_event_ns.get_or_insert_with(calibrate_event_ns);
    // fdr's threads, each read once; an exited one (or a reused id: its time went down)
    // moves to the retired sums.
    let mut by_role = m.retired_ns;
    let retired = &mut m.retired_ns;
    m.threads.retain_mut(|t| match thread_cpu_ns(t.tid) {
        Some(ns) if ns >= t.last_ns => {
            t.last_ns = ns;
            by_role[t.role] += ns;
            true
        }
        _ => {
            retired[t.role] += t.last_ns;
            by_role[t.role] += t.last_ns;
            false
        }
    });
    let now = Reading {
        at: Instant::now(),
        process_ns: crate::clock::process_cpu_ns(),
        events: metrics.recorder.events,
        wakes: metrics.wakes,
        polls: metrics.polls,
        threads_ns: by_role.iter().sum(),
    };
    let cost = &mut m.cost;
    cost.intervals += 1;
    cost.thread_cpu_ns = by_role;
    cost.process_cpu_ns = now.process_ns;
    cost.events = now.events;
    cost.per_event_ns = per_event_ns;
    cost.recording_cpu_ns = (now.events as f64 * per_event_ns) as u64;
    cost.budget = m.budget;
    cost.unmetered_threads = m.unmetered;
    let before = detail();
    let mut changed = None;
    if let Some(prev) = m.prev {
        let secs = now.at.duration_since(prev.at).as_secs_f64();
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let events = d(now.events, prev.events);
        cost.events_per_second = if secs > 0.0 { events / secs } else { 0.0 };
        let interval = Interval {
            process_ns: d(now.process_ns, prev.process_ns),
            threads_ns: d(now.threads_ns, prev.threads_ns),
            events,
            wakes: d(now.wakes, prev.wakes),
            polls: d(now.polls, prev.polls),
            per_event_ns,
        };
        // At most the whole: the thread clocks, the process clock and the event counts
        // (taken when chunks are sealed) are read at slightly different moments, so one
        // interval's estimate can exceed what the process spent.
        cost.share = interval.share_at(before, before).min(1.0);
        let after = interval.choose(before, m.budget);
        if after != before {
            if after < before {
                stamp(after);
            }
            crate::SWITCHES.shed.store(after as u8, Ordering::Relaxed);
            if after > before {
                stamp(after);
                cost.sheds += 1;
            } else {
                cost.restores += 1;
            }
            changed = Some(before);
        }
    }
    cost.detail = detail();
    m.prev = Some(now);
    (*cost, changed)
}

/// One interval's figures, as floats.
struct Interval {
    process_ns: f64,
    threads_ns: f64,
    events: f64,
    wakes: f64,
    polls: f64,
    per_event_ns: f64,
}

impl Interval {
    /// The share the interval would have cost at level `at`, recorded at level `now`: the
    /// events `now` recorded of the polls and wakes are replaced by those `at` would have.
    fn share_at(&self, now: Detail, at: Detail) -> f64 {
        if self.process_ns <= 0.0 {
            return 0.0;
        }
        let (w, p) = (self.wakes as u64, self.polls as u64);
        let base = (self.events - now.kept(w, p) as f64).max(0.0);
        let events = base + at.kept(w, p) as f64;
        (self.threads_ns + events * self.per_event_ns) / self.process_ns
    }

    /// The level to record at next, among full detail and the levels whose shed events
    /// would cost at least [`MIN_SAVING_FRACTION`] of the budget and of the excess over
    /// it: the least shedding within
    /// the budget (within [`RESTORE_FRACTION`] of it for less shedding than `now`), the
    /// most if none is; full detail when shedding would save next to nothing (few or no
    /// polls and wakes: the load fell, or fdr's own threads are the cost).
    fn choose(&self, now: Detail, budget: f64) -> Detail {
        let full = self.share_at(now, Detail::Full);
        let excess = (full - budget).max(budget);
        let worth = |l: Detail| {
            l == Detail::Full || full - self.share_at(now, l) >= excess * MIN_SAVING_FRACTION
        };
        let mut most = Detail::Full;
        for l in Detail::ALL.into_iter().filter(|&l| worth(l)) {
            let limit = if l < now {
                budget * RESTORE_FRACTION
            } else {
                budget
            };
            if self.share_at(now, l) <= limit {
                return l;
            }
            most = l;
        }
        most
    }
}

/// The calibrated cost of one event's work on a recording thread, in ns: the fastest of
/// five timings of a loop that reads the clock, encodes a poll start and stores its bytes
/// into a 64 KiB buffer, as the hot path does.
fn calibrate_event_ns() -> f64 {
    const EVENTS: u64 = 20_000;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = [0u8; fdr_format::wire::MAX_SMALL_EVENT_LEN];
    let mut best = f64::INFINITY;
    let mut last = crate::now_ticks();
    for _ in 0..5 {
        let mut pos = 0;
        let t = Instant::now();
        for i in 0..EVENTS {
            let now = crate::now_ticks();
            let n = encode::poll_start(&mut out, now.wrapping_sub(last), TaskId(i + 1));
            last = now;
            if pos + n > buf.len() {
                pos = 0;
            }
            buf[pos..pos + n].copy_from_slice(&out[..n]);
            pos += n;
        }
        std::hint::black_box(&buf);
        best = best.min(t.elapsed().as_nanos() as f64 / EVENTS as f64);
    }
    best
}

/// The calling thread's OS id.
#[cfg(target_os = "linux")]
fn os_tid() -> Option<u64> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn os_tid() -> Option<u64> {
    None
}

/// Thread `tid`'s CPU time in ns (`None`: it exited).
fn thread_cpu_ns(tid: u64) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(process_ns: f64, threads_ns: f64, events: f64, wakes: f64, polls: f64) -> Interval {
        Interval {
            process_ns,
            threads_ns,
            events,
            wakes,
            polls,
            per_event_ns: 10.0,
        }
    }

    #[test]
    fn over_budget_sheds_wakes_first_then_polls() {
        // 1 s of process CPU; 1000 wakes and 1000 polls (3000 events) and 1000 other events
        // at 10 ns: 40 us, 0.004% of it.
        let i = interval(1e9, 0.0, 4000.0, 1000.0, 1000.0);
        assert_eq!(i.choose(Detail::Full, 0.01), Detail::Full);
        // A budget the wakes alone put it over: wakes are shed, polls kept.
        let share_full = i.share_at(Detail::Full, Detail::Full);
        let share_no_wakes = i.share_at(Detail::Full, Detail::NoWakes);
        assert!(share_no_wakes < share_full);
        let budget = (share_full + share_no_wakes) / 2.0;
        assert_eq!(i.choose(Detail::Full, budget), Detail::NoWakes);
        // Below what even shedding both reaches: the most shedding.
        assert_eq!(i.choose(Detail::Full, 1e-9), Detail::NoPolls);
    }

    #[test]
    fn detail_is_restored_only_with_room_and_fully_when_the_load_falls() {
        // Recorded at NoPolls: 1000 other events; 1000 polls and wakes were not recorded.
        let i = interval(1e9, 0.0, 1000.0, 1000.0, 1000.0);
        let full = i.share_at(Detail::NoPolls, Detail::Full);
        assert!((full - 4000.0 * 10.0 / 1e9).abs() < 1e-12, "{full}");
        // Full detail would be just within the budget, not within the restore fraction:
        // not restored.
        assert_ne!(i.choose(Detail::NoPolls, full * 1.01), Detail::Full);
        assert_eq!(i.choose(Detail::NoPolls, full * 2.0), Detail::Full);
        // No polls or wakes: nothing to save, full detail whatever the share.
        let idle = interval(1e6, 5e5, 0.0, 0.0, 0.0);
        assert_eq!(idle.choose(Detail::NoPolls, 0.01), Detail::Full);
    }

    #[test]
    fn a_quiet_process_whose_cost_is_fdrs_threads_keeps_full_detail() {
        // 5 ms of process CPU, 2 ms of it fdr's threads: 40% over a 1% budget. A thousand
        // polls and wakes (30 us of recording) would save 0.6% of it: not worth shedding.
        let quiet = interval(5e6, 2e6, 3000.0, 1000.0, 1000.0);
        assert!(quiet.share_at(Detail::Full, Detail::Full) > 0.01);
        assert_eq!(quiet.choose(Detail::Full, 0.01), Detail::Full);
        assert_eq!(quiet.choose(Detail::NoPolls, 0.01), Detail::Full);
        // The same threads with a flood of polls: those are shed.
        let busy = interval(5e6, 2e6, 300_000.0, 100_000.0, 100_000.0);
        assert_eq!(busy.choose(Detail::Full, 0.01), Detail::NoPolls);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_clock_counts_this_threads_work() {
        let before = crate::clock::process_cpu_ns();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 20 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = crate::clock::process_cpu_ns();
        // The process's CPU time moved forward by this thread's own spin (some of 20 ms).
        assert!(after > before, "{before} -> {after}");
        let own = thread_cpu_ns(os_tid().unwrap()).unwrap();
        assert!(after >= own, "process {after} ns < this thread's {own} ns");
    }

    #[test]
    fn the_calibrated_event_cost_is_positive_and_finite() {
        let ns = calibrate_event_ns();
        assert!(ns.is_finite() && ns > 0.0, "{ns}");
    }
}
