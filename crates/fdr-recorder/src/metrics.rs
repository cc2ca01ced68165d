//! Runtime metrics, live and lock-free: scheduling latency, poll duration, lock wait, task
//! counts, and the recorder's own counters.
//!
//! Each thread that records a metric owns a [`ThreadMetrics`] ([`crate::metric_cells`]):
//! log-bucketed histograms and counters in relaxed atomics that only the owning thread
//! writes (a load and a store, no read-modify-write, no lock). [`metrics`] sums every live thread's cells and those of the
//! threads that exited (folded, once, into a retired set when the thread's storage is torn
//! down). The registry lock is taken only when a thread registers or exits, and on read.
//!
//! Histograms count clock ticks ([`crate::now_ticks`]) and convert to nanoseconds on read.
//! Buckets are a power of two split into 8 (a value's bucket is within 12.5% of it); a
//! percentile is its bucket's upper bound, capped at the largest value seen.

use std::sync::{Arc, Mutex};

pub use crate::metric_cells::HISTOGRAM_BUCKETS;
use crate::metric_cells::{
    COUNTERS, Counter, HISTOGRAMS, Hist, HistogramTicks, ThreadMetrics, bucket_high,
};
use crate::stats::Stats;
use crate::sync::lock;
use crate::tls::{Absent, ThreadArc};

/// Sums of exited threads, and the live threads.
struct Registry {
    live: Vec<Arc<ThreadMetrics>>,
    retired_hists: Vec<HistogramTicks>,
    retired_counters: [u64; COUNTERS],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: Vec::new(),
    retired_hists: Vec::new(),
    retired_counters: [0; COUNTERS],
});

/// Folds this thread's cells into the retired sums when the thread's storage is torn down.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // From now on this thread records no metric (see `with_thread`).
        let Some(m) = CELLS.with(ThreadArc::kill) else {
            return;
        };
        let mut r = lock(&REGISTRY);
        if r.retired_hists.is_empty() {
            r.retired_hists = (0..HISTOGRAMS).map(|_| HistogramTicks::new()).collect();
        }
        let r = &mut *r;
        m.add_to(&mut r.retired_hists, &mut r.retired_counters);
        r.live.retain(|x| !Arc::ptr_eq(x, &m));
    }
}

thread_local! {
    /// This thread's cells, shared with the registry's readers; taken back by `EXIT` when
    /// the thread's storage is torn down. A const pointer with no destructor (`tls`):
    /// reaching it is one load, with no check of the thread-local's state.
    static CELLS: ThreadArc<ThreadMetrics> = const { ThreadArc::new() };
    static EXIT: ExitGuard = const { ExitGuard };
}

/// Registers this thread's cells; `false` if its storage is being torn down.
#[cold]
#[inline(never)]
fn register(cells: &ThreadArc<ThreadMetrics>) -> bool {
    if cells.state() != Err(Absent::Unset) || EXIT.try_with(|_| ()).is_err() {
        return false;
    }
    let m = Arc::new(ThreadMetrics::new());
    lock(&REGISTRY).live.push(m.clone());
    if let Err(m) = cells.set(m) {
        lock(&REGISTRY).live.retain(|x| !Arc::ptr_eq(x, &m));
        return false;
    }
    true
}

/// Runs `f` with this thread's metric cells (registering them on first use); does nothing
/// while the thread's storage is being torn down. Returns whether `f` ran.
#[inline(always)]
pub(crate) fn with_thread(f: impl FnOnce(&ThreadMetrics)) -> bool {
    crate::tls::with_tls(&CELLS, |cells| {
        if cells.state().is_err() && !register(cells) {
            return false;
        }
        cells.with(f).is_ok()
    })
}

/// Records one value into a histogram of this thread.
#[inline]
pub(crate) fn record(h: Hist, ticks: u64) {
    with_thread(|m| m.hist(h, ticks));
}

/// A histogram as read: counts per bucket, sum and max, in nanoseconds.
#[derive(Clone)]
pub struct HistogramSnapshot {
    ticks: HistogramTicks,
    ns_per_tick: f64,
    /// Values recorded.
    pub count: u64,
    /// Sum of the values, in nanoseconds.
    pub sum_ns: u64,
    /// Largest value, in nanoseconds.
    pub max_ns: u64,
}

impl std::fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("count", &self.count)
            .field("sum_ns", &self.sum_ns)
            .field("p50_ns", &self.p50_ns())
            .field("p90_ns", &self.p90_ns())
            .field("p99_ns", &self.p99_ns())
            .field("max_ns", &self.max_ns)
            .finish()
    }
}

impl HistogramSnapshot {
    fn new(ticks: HistogramTicks, ns_per_tick: f64) -> Self {
        let to_ns = |t: u64| (t as f64 * ns_per_tick) as u64;
        HistogramSnapshot {
            count: ticks.count,
            sum_ns: to_ns(ticks.sum),
            max_ns: to_ns(ticks.max),
            ticks,
            ns_per_tick,
        }
    }

    fn to_ns(&self, ticks: u64) -> u64 {
        (ticks as f64 * self.ns_per_tick) as u64
    }

    /// The counts as read, in ticks (for the periodic samples' interval quantiles).
    pub(crate) fn ticks(&self) -> &HistogramTicks {
        &self.ticks
    }

    /// A (fractional) tick count in nanoseconds.
    pub(crate) fn ticks_to_ns(&self, ticks: f64) -> u64 {
        (ticks * self.ns_per_tick) as u64
    }

    /// The value at quantile `q` (0..=1), in nanoseconds: the upper bound of the bucket
    /// holding it, capped at the maximum; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.ticks.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.ticks.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.ticks.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return self.to_ns(bucket_high(i).min(self.ticks.max));
            }
        }
        self.max_ns
    }

    /// Median, in nanoseconds.
    pub fn p50_ns(&self) -> u64 {
        self.quantile_ns(0.5)
    }

    /// 90th percentile, in nanoseconds.
    pub fn p90_ns(&self) -> u64 {
        self.quantile_ns(0.9)
    }

    /// 99th percentile, in nanoseconds.
    pub fn p99_ns(&self) -> u64 {
        self.quantile_ns(0.99)
    }

    /// Mean, in nanoseconds (0 when empty).
    pub fn mean_ns(&self) -> u64 {
        self.sum_ns.checked_div(self.count).unwrap_or(0)
    }

    /// Non-empty buckets as (upper bound in nanoseconds, count), ascending: the shape a
    /// Prometheus histogram exports (cumulate the counts for its `le` buckets).
    pub fn buckets_ns(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ticks
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (self.to_ns(bucket_high(i)), *n))
    }
}

/// The runtime metrics at one moment ([`metrics`]).
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// Scheduling latency: from a task's wake (or its creation) to the start of its next
    /// poll.
    pub sched_latency_ns: HistogramSnapshot,
    /// Duration of each poll of an instrumented task.
    pub poll_duration_ns: HistogramSnapshot,
    /// Time spent waiting for a contended fdr lock (`locks::{Mutex, RwLock}`).
    pub lock_wait_ns: HistogramSnapshot,
    /// Instrumented tasks created.
    pub tasks_spawned: u64,
    /// Instrumented tasks whose future completed.
    pub tasks_completed: u64,
    /// Instrumented tasks created and not yet dropped.
    pub tasks_alive: u64,
    /// Polls of instrumented tasks.
    pub polls: u64,
    /// Wakes of instrumented tasks.
    pub wakes: u64,
    /// The recorder's counters (events, bytes, losses).
    pub recorder: Stats,
}

impl MetricsSnapshot {
    /// The histograms as exported: name (unit last), help text, histogram.
    pub fn histograms(&self) -> [(&'static str, &'static str, &HistogramSnapshot); HISTOGRAMS] {
        [
            (
                "sched_latency_ns",
                "Scheduling latency of instrumented tasks: from a wake (or creation) to the next poll.",
                &self.sched_latency_ns,
            ),
            (
                "poll_duration_ns",
                "Duration of each poll of an instrumented task.",
                &self.poll_duration_ns,
            ),
            (
                "lock_wait_ns",
                "Time spent waiting for a contended fdr lock.",
                &self.lock_wait_ns,
            ),
        ]
    }

    /// The counters and gauges as exported.
    pub fn scalars(&self) -> [Scalar; 11] {
        let r = &self.recorder;
        let counter = |name, help, value| Scalar {
            name,
            help,
            gauge: false,
            value,
        };
        [
            counter(
                "tasks_spawned",
                "Instrumented tasks created.",
                self.tasks_spawned,
            ),
            counter(
                "tasks_completed",
                "Instrumented tasks whose future completed.",
                self.tasks_completed,
            ),
            Scalar {
                gauge: true,
                ..counter(
                    "tasks_alive",
                    "Instrumented tasks created and not yet dropped.",
                    self.tasks_alive,
                )
            },
            counter("polls", "Polls of instrumented tasks.", self.polls),
            counter("wakes", "Wakes of instrumented tasks.", self.wakes),
            counter(
                "recorder_events",
                "Events the recorder collected.",
                r.events,
            ),
            counter(
                "recorder_bytes",
                "Bytes of events the recorder collected.",
                r.bytes,
            ),
            counter(
                "recorder_lost_events",
                "Events the recorder lost: discarded by a writer that found no free chunk, \
                 dropped by a capture whose writer fell behind, or too large to record. \
                 Events that aged out of the flight window are not lost (recorder_aged_out_events).",
                r.lost_events(),
            ),
            counter(
                "recorder_lost_bytes",
                "Bytes of the events the recorder lost (recorder_lost_events).",
                r.lost_bytes(),
            ),
            counter(
                "recorder_aged_out_events",
                "Events that aged out of the flight recorder's window by design: the ring \
                 dropped its oldest chunks to stay within max_bytes or min_age. Not a loss.",
                r.aged_out.events,
            ),
            counter(
                "recorder_aged_out_bytes",
                "Bytes of the events that aged out of the flight window (recorder_aged_out_events).",
                r.aged_out.bytes,
            ),
        ]
    }
}

/// A counter or gauge of [`MetricsSnapshot::scalars`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scalar {
    /// Its export name (unit last).
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// A level that goes up and down (a gauge), not a count that only grows.
    pub gauge: bool,
    /// Its value.
    pub value: u64,
}

/// Reads the runtime metrics: sums every thread's cells (live and exited). Lock-free for
/// the threads that record; takes the registry lock briefly.
pub fn metrics() -> MetricsSnapshot {
    let mut hists: Vec<HistogramTicks> = (0..HISTOGRAMS).map(|_| HistogramTicks::new()).collect();
    let mut counters = [0u64; COUNTERS];
    {
        let r = lock(&REGISTRY);
        for m in &r.live {
            m.add_to(&mut hists, &mut counters);
        }
        for (h, into) in r.retired_hists.iter().zip(hists.iter_mut()) {
            into.add(h);
        }
        for (c, into) in r.retired_counters.iter().zip(counters.iter_mut()) {
            *into += c;
        }
    }
    let ns_per_tick = 1e9 / crate::clock::calibrate().ticks_per_sec;
    let mut it = hists
        .into_iter()
        .map(|h| HistogramSnapshot::new(h, ns_per_tick));
    let mut next = || {
        it.next()
            .unwrap_or_else(|| HistogramSnapshot::new(HistogramTicks::new(), ns_per_tick))
    };
    let c = |k: Counter| counters[k as usize];
    let (sched_latency_ns, poll_duration_ns, lock_wait_ns) = (next(), next(), next());
    MetricsSnapshot {
        polls: poll_duration_ns.count,
        sched_latency_ns,
        poll_duration_ns,
        lock_wait_ns,
        tasks_spawned: c(Counter::TasksSpawned),
        tasks_completed: c(Counter::TasksCompleted),
        tasks_alive: c(Counter::TasksSpawned).saturating_sub(c(Counter::TasksDropped)),
        wakes: c(Counter::Wakes),
        recorder: crate::stats(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// The histograms are process-wide: tests that record into `LockWait` take turns, or one
    /// test's value lands between another's before and after snapshots.
    static LOCK_WAIT_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn percentiles_merge_threads_live_and_exited() {
        let _turn = LOCK_WAIT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // Values on this thread and on one that exits; both count.
        let h = Hist::LockWait;
        let before = metrics();
        for v in 1..=99u64 {
            record(h, v * 1000);
        }
        std::thread::spawn(|| record(Hist::LockWait, 10_000_000))
            .join()
            .unwrap();
        let after = metrics();
        let ns_per_tick = 1e9 / crate::clock::calibrate().ticks_per_sec;
        let got = &after.lock_wait_ns;
        assert_eq!(got.count - before.lock_wait_ns.count, 100);
        // The largest value came from the exited thread.
        assert!(got.max_ns >= (10_000_000.0 * ns_per_tick) as u64 - 1);
        let p50 = got.p50_ns() as f64 / ns_per_tick;
        assert!((40_000.0..=60_000.0).contains(&p50), "p50 {p50} ticks");
    }

    #[test]
    fn a_metric_after_the_threads_cells_are_torn_down_is_dropped_not_written() {
        use std::sync::atomic::AtomicU8;
        let _turn = LOCK_WAIT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // 0: not run; 1: skipped as it should; 2: written through the freed cells.
        static LATE_OUTCOME: AtomicU8 = AtomicU8::new(0);
        struct Late;
        impl Drop for Late {
            fn drop(&mut self) {
                let wrote = with_thread(|m| m.count(Counter::Wakes, 1));
                LATE_OUTCOME.store(if wrote { 2 } else { 1 }, Ordering::Relaxed);
            }
        }
        thread_local! {
            static LATE: Late = const { Late };
        }
        std::thread::spawn(|| {
            // Destructors run in reverse order of first use: `SLOT`'s, then `LATE`'s.
            LATE.with(|_| ());
            record(Hist::LockWait, 1);
        })
        .join()
        .unwrap();
        assert_eq!(LATE_OUTCOME.load(Ordering::Relaxed), 1);
    }
}
