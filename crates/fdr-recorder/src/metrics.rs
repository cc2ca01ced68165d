//! Runtime metrics, live and lock-free: scheduling latency, poll duration, lock wait, task
//! counts, and the recorder's own counters.
//!
//! Each thread that records a metric owns a [`ThreadMetrics`]: log-bucketed histograms and
//! counters in relaxed atomics that only the owning thread writes (a load and a store, no
//! read-modify-write, no lock). [`metrics`] sums every live thread's cells and those of the
//! threads that exited (folded, once, into a retired set when the thread's storage is torn
//! down). The registry lock is taken only when a thread registers or exits, and on read.
//!
//! Histograms count clock ticks ([`crate::now_ticks`]) and convert to nanoseconds on read.
//! Buckets are a power of two split into 8 (a value's bucket is within 12.5% of it); a
//! percentile is its bucket's upper bound, capped at the largest value seen.
#![allow(
    unsafe_code,
    reason = "the hot path reaches a thread's cells through a cached raw pointer"
)]

use std::cell::{Cell, OnceCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::stats::Stats;
use crate::sync::lock;

/// Sub-buckets per power of two, as a shift.
const SUB_BITS: u32 = 3;
/// Buckets of a histogram: every `u64` has one.
pub const HISTOGRAM_BUCKETS: usize = ((64 - SUB_BITS as usize) << SUB_BITS) + (1 << SUB_BITS);

/// The bucket of `v`: exact below 8, then 8 per power of two.
#[inline(always)]
fn bucket(v: u64) -> usize {
    if v < (1 << SUB_BITS) {
        v as usize
    } else {
        let e = 63 - v.leading_zeros();
        let sub = (v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        (((e - SUB_BITS + 1) << SUB_BITS) as u64 | sub) as usize
    }
}

/// The smallest value in bucket `i`.
fn bucket_low(i: usize) -> u64 {
    let sub_count = 1usize << SUB_BITS;
    if i < sub_count {
        i as u64
    } else {
        let e = (i >> SUB_BITS) as u32 + SUB_BITS - 1;
        let sub = (i & (sub_count - 1)) as u64;
        ((1u64 << SUB_BITS) | sub) << (e - SUB_BITS)
    }
}

/// The largest value in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    if i + 1 >= HISTOGRAM_BUCKETS {
        u64::MAX
    } else {
        bucket_low(i + 1) - 1
    }
}

/// Adds to a cell only this thread writes: a plain load and store, no locked instruction.
#[inline(always)]
fn bump(cell: &AtomicU64, by: u64) {
    cell.store(
        cell.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// A thread's histogram: its count is the sum of its buckets, added up on read, so a value
/// costs one bucket, the sum and the max.
struct Histogram {
    buckets: [AtomicU64; HISTOGRAM_BUCKETS],
    sum: AtomicU64,
    max: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Owner thread only.
    #[inline(always)]
    fn record(&self, v: u64) {
        bump(&self.buckets[bucket(v)], 1);
        bump(&self.sum, v);
        if v > self.max.load(Ordering::Relaxed) {
            self.max.store(v, Ordering::Relaxed);
        }
    }

    /// Adds `self` into `into` (any thread; `into` is written under the registry lock).
    fn add_to(&self, into: &mut HistogramTicks) {
        for (o, b) in into.buckets.iter_mut().zip(&self.buckets) {
            let n = b.load(Ordering::Relaxed);
            *o += n;
            into.count += n;
        }
        into.sum = into.sum.wrapping_add(self.sum.load(Ordering::Relaxed));
        into.max = into.max.max(self.max.load(Ordering::Relaxed));
    }
}

/// A histogram's cells, summed, in ticks.
#[derive(Clone)]
struct HistogramTicks {
    buckets: Box<[u64; HISTOGRAM_BUCKETS]>,
    count: u64,
    sum: u64,
    max: u64,
}

impl HistogramTicks {
    fn new() -> Self {
        HistogramTicks {
            buckets: Box::new([0; HISTOGRAM_BUCKETS]),
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    fn add(&mut self, o: &HistogramTicks) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
        self.count += o.count;
        self.sum = self.sum.wrapping_add(o.sum);
        self.max = self.max.max(o.max);
    }
}

/// The histograms, in [`MetricsSnapshot::histograms`] order.
#[derive(Clone, Copy)]
pub(crate) enum Hist {
    SchedLatency = 0,
    PollDuration = 1,
    LockWait = 2,
}
const HISTOGRAMS: usize = 3;

/// The counters (polls are the poll-duration histogram's count, not a counter).
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    TasksSpawned = 0,
    TasksCompleted = 1,
    TasksDropped = 2,
    Wakes = 3,
}
const COUNTERS: usize = 4;

/// One thread's metric cells (written by that thread only).
pub(crate) struct ThreadMetrics {
    hists: [Histogram; HISTOGRAMS],
    counters: [AtomicU64; COUNTERS],
}

impl ThreadMetrics {
    fn new() -> Self {
        ThreadMetrics {
            hists: std::array::from_fn(|_| Histogram::new()),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    #[inline(always)]
    pub(crate) fn hist(&self, h: Hist, ticks: u64) {
        self.hists[h as usize].record(ticks);
    }

    #[inline(always)]
    pub(crate) fn count(&self, c: Counter, by: u64) {
        bump(&self.counters[c as usize], by);
    }
}

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

/// Owns this thread's cells; folds them into the retired sums when the thread's storage is
/// torn down.
struct Slot(OnceCell<Arc<ThreadMetrics>>);

impl Drop for Slot {
    fn drop(&mut self) {
        // From now on this thread records no metric (see `with_thread`).
        CELLS.set(DEAD);
        let Some(m) = self.0.take() else { return };
        let mut r = lock(&REGISTRY);
        if r.retired_hists.is_empty() {
            r.retired_hists = (0..HISTOGRAMS).map(|_| HistogramTicks::new()).collect();
        }
        for (h, into) in m.hists.iter().zip(r.retired_hists.iter_mut()) {
            h.add_to(into);
        }
        for (c, into) in m.counters.iter().zip(r.retired_counters.iter_mut()) {
            *into += c.load(Ordering::Relaxed);
        }
        r.live.retain(|x| !Arc::ptr_eq(x, &m));
    }
}

/// `CELLS` of a thread whose storage is being torn down.
const DEAD: *const ThreadMetrics = std::ptr::dangling();

thread_local! {
    /// This thread's cells, owned by `SLOT`; null until the first metric, [`DEAD`] once
    /// `SLOT` is dropped. A const cell with no destructor: reaching it is one load, with no
    /// check of the thread-local's state.
    static CELLS: Cell<*const ThreadMetrics> = const { Cell::new(std::ptr::null()) };
    static SLOT: Slot = const { Slot(OnceCell::new()) };
}

/// Registers this thread's cells; null if its storage is being torn down.
#[cold]
#[inline(never)]
fn register() -> *const ThreadMetrics {
    SLOT.try_with(|s| {
        let m = s.0.get_or_init(|| {
            let m = Arc::new(ThreadMetrics::new());
            lock(&REGISTRY).live.push(m.clone());
            m
        });
        let p = Arc::as_ptr(m);
        CELLS.set(p);
        p
    })
    .unwrap_or(std::ptr::null())
}

/// Runs `f` with this thread's metric cells (registering them on first use); does nothing
/// while the thread's storage is being torn down. Returns whether `f` ran.
#[inline(always)]
pub(crate) fn with_thread(f: impl FnOnce(&ThreadMetrics)) -> bool {
    let mut p = CELLS.get();
    if p.is_null() || p == DEAD {
        if p == DEAD {
            return false;
        }
        p = register();
        if p.is_null() {
            return false;
        }
    }
    // SAFETY: `p` came from `Arc::as_ptr` of the cells `SLOT` owns on this thread; `SLOT`
    // sets `CELLS` to `DEAD` before it drops them, so while `CELLS` holds `p` they are alive.
    // The cells are atomics: a shared reference is all `f` gets.
    f(unsafe { &*p });
    true
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
    /// The histograms with their export names (unit last).
    pub fn histograms(&self) -> [(&'static str, &HistogramSnapshot); HISTOGRAMS] {
        [
            ("sched_latency_ns", &self.sched_latency_ns),
            ("poll_duration_ns", &self.poll_duration_ns),
            ("lock_wait_ns", &self.lock_wait_ns),
        ]
    }

    /// The counters and gauges with their export names.
    pub fn counters(&self) -> [(&'static str, u64); 9] {
        let r = &self.recorder;
        [
            ("tasks_spawned", self.tasks_spawned),
            ("tasks_completed", self.tasks_completed),
            ("tasks_alive", self.tasks_alive),
            ("polls", self.polls),
            ("wakes", self.wakes),
            ("recorder_events", r.events),
            ("recorder_bytes", r.bytes),
            ("recorder_lost_events", r.lost_events()),
            ("recorder_lost_bytes", r.lost.iter().map(|l| l.bytes).sum()),
        ]
    }
}

/// Reads the runtime metrics: sums every thread's cells (live and exited). Lock-free for
/// the threads that record; takes the registry lock briefly.
pub fn metrics() -> MetricsSnapshot {
    let mut hists: Vec<HistogramTicks> = (0..HISTOGRAMS).map(|_| HistogramTicks::new()).collect();
    let mut counters = [0u64; COUNTERS];
    {
        let r = lock(&REGISTRY);
        for m in &r.live {
            for (h, into) in m.hists.iter().zip(hists.iter_mut()) {
                h.add_to(into);
            }
            for (c, into) in m.counters.iter().zip(counters.iter_mut()) {
                *into += c.load(Ordering::Relaxed);
            }
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

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for i in 0..HISTOGRAM_BUCKETS {
            assert!(bucket_low(i) <= bucket_high(i), "bucket {i}");
            if i > 0 {
                assert_eq!(bucket_low(i), last + 1, "bucket {i} follows {}", i - 1);
            }
            assert_eq!(bucket(bucket_low(i)), i);
            assert_eq!(bucket(bucket_high(i)), i);
            last = bucket_high(i);
        }
        assert_eq!(last, u64::MAX);
        for v in [0, 7, 8, 9, 1000, 123_456_789, u64::MAX / 3] {
            let b = bucket(v);
            assert!(bucket_low(b) <= v && v <= bucket_high(b));
            // Within 12.5% of the value.
            assert!((bucket_high(b) - bucket_low(b)) as f64 <= v as f64 / 8.0 + 1.0);
        }
    }

    #[test]
    fn percentiles_merge_threads_live_and_exited() {
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
