//! One thread's metric cells: log-bucketed histograms and counters in relaxed atomics that
//! only the owning thread writes, and their sums as read. [`crate::metrics`] keeps a
//! thread's cells, reaches them from the hot path and merges them on read.
//!
//! Buckets are a power of two split into 8 (a value's bucket is within 12.5% of it).
//!
//! Under `--cfg loom` this module is built for the loom model of the pending poll samples'
//! publication (`src/tests/loom_metrics.rs`).

use crate::sync::{AtomicU64, Ordering, owner_load};

/// Sub-buckets per power of two, as a shift.
const SUB_BITS: u32 = 3;
/// Buckets of a histogram: every `u64` has one.
#[cfg_attr(
    loom,
    allow(unreachable_pub, reason = "re-exported only outside loom builds")
)]
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
pub(crate) fn bucket_high(i: usize) -> u64 {
    if i + 1 >= HISTOGRAM_BUCKETS {
        u64::MAX
    } else {
        bucket_low(i + 1) - 1
    }
}

/// Adds to a cell only this thread writes: a plain load and store, no locked instruction.
#[inline(always)]
fn bump(cell: &AtomicU64, by: u64) {
    cell.store(owner_load(cell).wrapping_add(by), Ordering::Relaxed);
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
        let b = &self.buckets[bucket(v)];
        // Release: a read that sees this count also sees what the thread stored before it
        // (the samples that replaced this one as pending, `ThreadMetrics::poll`).
        b.store(owner_load(b).wrapping_add(1), Ordering::Release);
        bump(&self.sum, v);
        if v > owner_load(&self.max) {
            self.max.store(v, Ordering::Relaxed);
        }
    }

    /// Adds `self` into `into` (any thread; `into` is written under the registry lock).
    fn add_to(&self, into: &mut HistogramTicks) {
        for (o, b) in into.buckets.iter_mut().zip(&self.buckets) {
            let n = b.load(Ordering::Acquire);
            *o += n;
            into.count += n;
        }
        into.sum = into.sum.wrapping_add(self.sum.load(Ordering::Relaxed));
        into.max = into.max.max(self.max.load(Ordering::Relaxed));
    }
}

/// A histogram's cells, summed, in ticks.
#[derive(Clone)]
pub(crate) struct HistogramTicks {
    /// Values per bucket.
    pub(crate) buckets: Box<[u64; HISTOGRAM_BUCKETS]>,
    /// Values recorded (the buckets' sum).
    pub(crate) count: u64,
    /// Sum of the values.
    pub(crate) sum: u64,
    /// Largest value.
    pub(crate) max: u64,
}

impl HistogramTicks {
    /// Empty.
    pub(crate) fn new() -> Self {
        HistogramTicks {
            buckets: Box::new([0; HISTOGRAM_BUCKETS]),
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    /// Adds `o` into `self`.
    pub(crate) fn add(&mut self, o: &HistogramTicks) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
        self.count += o.count;
        self.sum = self.sum.wrapping_add(o.sum);
        self.max = self.max.max(o.max);
    }

    fn add_value(&mut self, v: u64) {
        self.buckets[bucket(v)] += 1;
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
        self.max = self.max.max(v);
    }
}

/// The histograms, in `MetricsSnapshot::histograms` order.
#[derive(Clone, Copy)]
pub(crate) enum Hist {
    /// From a task's wake (or creation) to its next poll.
    SchedLatency = 0,
    /// A poll's duration.
    PollDuration = 1,
    /// A contended lock's wait.
    LockWait = 2,
}
/// Histograms per thread.
pub(crate) const HISTOGRAMS: usize = 3;

/// The counters (polls are the poll-duration histogram's count, not a counter).
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    /// Instrumented tasks created.
    TasksSpawned = 0,
    /// Instrumented tasks whose future completed.
    TasksCompleted = 1,
    /// Instrumented tasks dropped.
    TasksDropped = 2,
    /// Wakes of instrumented tasks.
    Wakes = 3,
}
/// Counters per thread.
pub(crate) const COUNTERS: usize = 4;

/// One thread's metric cells (written by that thread only).
pub(crate) struct ThreadMetrics {
    hists: [Histogram; HISTOGRAMS],
    counters: [AtomicU64; COUNTERS],
    /// The latest poll's samples, scheduling latency and duration, in ticks + 1 (0: none):
    /// not yet in their histograms (see [`ThreadMetrics::poll`]).
    last_poll: [AtomicU64; 2],
}

impl ThreadMetrics {
    /// Cells at zero.
    pub(crate) fn new() -> Self {
        ThreadMetrics {
            hists: std::array::from_fn(|_| Histogram::new()),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            last_poll: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Records a poll's samples: its scheduling latency (when a wake or the task's creation
    /// came before it) and its duration.
    ///
    /// They wait in `last_poll` and the next poll on this thread folds them into the
    /// histograms (a read counts them where they are). A sample's bucket depends on the
    /// clock read that just ended the poll, and updating it there made the rest of the poll
    /// wait on `rdtsc`; the previous poll's buckets are known at once, so their update
    /// overlaps the clock reads. `task.poll_ratio_to_events_floor` (`cargo bench -p
    /// fdr-benches --bench tasks`), ten runs of each build interleaved, a249092 (folded at
    /// once) against bab4926 (deferred): median 1.227 against 1.049.
    ///
    /// The new samples are stored before the old ones are folded, each bucket with
    /// `Release`: a read that sees a folded sample also sees the samples that replaced it,
    /// so it never counts a sample twice (it may miss one being folded at that instant).
    #[inline(always)]
    pub(crate) fn poll(&self, sched: Option<u64>, duration: u64) {
        let [s, d] = &self.last_poll;
        let (old_s, old_d) = (owner_load(s), owner_load(d));
        s.store(sched.map_or(0, |t| t + 1), Ordering::Relaxed);
        d.store(duration + 1, Ordering::Relaxed);
        if old_s != 0 {
            self.hists[Hist::SchedLatency as usize].record(old_s - 1);
        }
        if old_d != 0 {
            self.hists[Hist::PollDuration as usize].record(old_d - 1);
        }
    }

    /// Adds this thread's cells into `hists` and `counters` (any thread; the histograms
    /// first, then the pending poll samples, as [`ThreadMetrics::poll`] needs).
    pub(crate) fn add_to(&self, hists: &mut [HistogramTicks], counters: &mut [u64; COUNTERS]) {
        for (h, into) in self.hists.iter().zip(hists.iter_mut()) {
            h.add_to(into);
        }
        let pending = [Hist::SchedLatency, Hist::PollDuration];
        for (cell, h) in self.last_poll.iter().zip(pending) {
            let v = cell.load(Ordering::Relaxed);
            if v != 0 {
                hists[h as usize].add_value(v - 1);
            }
        }
        for (c, into) in self.counters.iter().zip(counters.iter_mut()) {
            *into += c.load(Ordering::Relaxed);
        }
    }

    /// Records `ticks` into histogram `h` at once.
    #[inline(always)]
    pub(crate) fn hist(&self, h: Hist, ticks: u64) {
        self.hists[h as usize].record(ticks);
    }

    /// Adds `by` to counter `c`.
    #[inline(always)]
    pub(crate) fn count(&self, c: Counter, by: u64) {
        bump(&self.counters[c as usize], by);
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
}
