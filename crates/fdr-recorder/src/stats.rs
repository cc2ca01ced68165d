//! The recorder's own counters: what it recorded, and what it lost and why.

use std::sync::atomic::{AtomicU64, Ordering};

use fdr_format::LossReason;

/// Loss reasons the recorder counts, in [`Stats::lost`] order.
pub const LOSS_REASONS: [LossReason; 4] = [
    LossReason::RingOverwrite,
    LossReason::CaptureBehind,
    LossReason::PoolExhausted,
    LossReason::Oversize,
];

/// What was lost for one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    /// Events.
    pub events: u64,
    /// Encoded bytes.
    pub bytes: u64,
    /// Whole chunks (0 for events dropped one by one).
    pub chunks: u64,
}

/// A snapshot of the recorder's counters ([`crate::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events in sealed chunks (loss records not counted).
    pub events: u64,
    /// Bytes in sealed chunks.
    pub bytes: u64,
    /// Chunks sealed and collected.
    pub chunks: u64,
    /// Losses by reason, in [`LOSS_REASONS`] order: ring overwrite (the flight window moved
    /// past them), capture behind, pool exhausted (a writer found no free chunk), oversize.
    pub lost: [Lost; 4],
    /// Events recorded on a thread after its thread-local storage was torn down (dropped).
    pub after_thread_exit: u64,
    /// Threads registered so far.
    pub threads: u64,
    /// Threads currently alive and registered.
    pub live_threads: u64,
    /// Chunks allocated (each [`crate::CHUNK_BYTES`]); never more than the budget.
    pub chunks_allocated: u64,
    /// Bytes currently in the flight ring.
    pub ring_bytes: u64,
    /// Snapshots written by [`crate::FlightRecorder::write_to`].
    pub snapshots: u64,
}

impl Stats {
    /// Losses for `reason`.
    pub fn lost_for(&self, reason: LossReason) -> Lost {
        LOSS_REASONS
            .iter()
            .position(|r| *r == reason)
            .map(|i| self.lost[i])
            .unwrap_or_default()
    }

    /// Events lost for any reason.
    pub fn lost_events(&self) -> u64 {
        self.lost.iter().map(|l| l.events).sum()
    }
}

#[derive(Debug, Default)]
pub(crate) struct LostCells {
    events: AtomicU64,
    bytes: AtomicU64,
    chunks: AtomicU64,
}

/// The live counters (updated on cold paths only: sealing, collecting, discarding).
#[derive(Debug, Default)]
pub(crate) struct StatCells {
    pub(crate) events: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) chunks: AtomicU64,
    lost: [LostCells; 4],
    pub(crate) after_thread_exit: AtomicU64,
    pub(crate) threads: AtomicU64,
    pub(crate) snapshots: AtomicU64,
    pub(crate) ring_bytes: AtomicU64,
}

fn index(reason: LossReason) -> usize {
    LOSS_REASONS.iter().position(|r| *r == reason).unwrap_or(3)
}

impl StatCells {
    pub(crate) fn lose(&self, reason: LossReason, events: u64, bytes: u64, chunks: u64) {
        let l = &self.lost[index(reason)];
        l.events.fetch_add(events, Ordering::Relaxed);
        l.bytes.fetch_add(bytes, Ordering::Relaxed);
        l.chunks.fetch_add(chunks, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, live_threads: u64, chunks_allocated: u64) -> Stats {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut lost = [Lost::default(); 4];
        for (o, c) in lost.iter_mut().zip(&self.lost) {
            *o = Lost {
                events: r(&c.events),
                bytes: r(&c.bytes),
                chunks: r(&c.chunks),
            };
        }
        Stats {
            events: r(&self.events),
            bytes: r(&self.bytes),
            chunks: r(&self.chunks),
            lost,
            after_thread_exit: r(&self.after_thread_exit),
            threads: r(&self.threads),
            live_threads,
            chunks_allocated,
            ring_bytes: r(&self.ring_bytes),
            snapshots: r(&self.snapshots),
        }
    }
}
