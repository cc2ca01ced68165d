//! The recorder's own counters: what it recorded, what aged out of the flight window, and
//! what it lost and why.
//!
//! Aging is not loss. The flight ring drops its oldest chunks by design, to stay within
//! `max_bytes` and `min_age`: those events are counted in [`Stats::aged_out`]. Loss is what
//! a user wanted and did not get: events a writer discarded because no free chunk was
//! there, chunks a capture dropped because its writer fell behind, events too large to
//! record ([`Stats::lost`], by reason). Both are written into traces as loss records with
//! their reason (ring overwrite for aging), so a reader tells them apart too.

use std::sync::atomic::{AtomicU64, Ordering};

use fdr_format::LossReason;

/// Loss reasons the recorder counts as lost, in [`Stats::lost`] order. Ring overwrite (the
/// flight window aging) is counted apart, in [`Stats::aged_out`].
pub const LOSS_REASONS: [LossReason; 3] = [
    LossReason::CaptureBehind,
    LossReason::PoolExhausted,
    LossReason::Oversize,
];

/// Events lost (or aged out) for one reason.
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
    /// Events that aged out of the flight window by design: the ring dropped its oldest
    /// chunks to stay within `max_bytes` or `min_age`, or emptied when the flight recorder
    /// was restarted. Not a loss; in traces, ring-overwrite loss records.
    pub aged_out: Lost,
    /// Losses by reason, in [`LOSS_REASONS`] order: capture behind (a capture's writer fell
    /// behind and the capture dropped chunks), pool exhausted (a writer found no free chunk
    /// and discarded), oversize (an event too large to record).
    pub lost: [Lost; 3],
    /// Events recorded on a thread after its thread-local storage was torn down (dropped).
    pub after_thread_exit: u64,
    /// Events recorded from inside the recorder's own work on the same thread (a global
    /// allocator or a panic hook that records while the recorder allocates or panics):
    /// dropped, never written.
    pub reentrant: u64,
    /// Threads registered so far.
    pub threads: u64,
    /// Threads currently alive and registered.
    pub live_threads: u64,
    /// Chunks allocated (each [`crate::CHUNK_BYTES`]); never more than the budget.
    pub chunks_allocated: u64,
    /// Bytes currently in the flight ring.
    pub ring_bytes: u64,
    /// Snapshots written by [`crate::FlightRecorder::write_to`] and
    /// [`crate::FlightRecorder::write_incident_to`].
    pub snapshots: u64,
    /// Snapshots refused with [`crate::Error::SnapshotInProgress`]: too many were being
    /// written at once.
    pub snapshots_refused: u64,
    /// Snapshots being written now (both kinds).
    pub snapshots_running: u64,
    /// Chunks a snapshot in progress gave back before writing them: they had left the
    /// window and writers needed them, so the snapshot reports them as aged out (a
    /// ring-overwrite loss record) instead of holding memory the writers need.
    pub snapshot_chunks_released: u64,
}

impl Stats {
    /// Losses for `reason`; ring overwrite is not a loss (see [`Stats::aged_out`]) and
    /// reads as none here.
    pub fn lost_for(&self, reason: LossReason) -> Lost {
        LOSS_REASONS
            .iter()
            .position(|r| *r == reason)
            .map(|i| self.lost[i])
            .unwrap_or_default()
    }

    /// Events lost, for any reason (aging out of the flight window is not a loss).
    pub fn lost_events(&self) -> u64 {
        self.lost.iter().map(|l| l.events).sum()
    }

    /// Bytes of events lost, for any reason.
    pub fn lost_bytes(&self) -> u64 {
        self.lost.iter().map(|l| l.bytes).sum()
    }

    /// Events that aged out of the flight window ([`Stats::aged_out`]).
    pub fn aged_out_events(&self) -> u64 {
        self.aged_out.events
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
    aged_out: LostCells,
    lost: [LostCells; 3],
    pub(crate) after_thread_exit: AtomicU64,
    pub(crate) reentrant: AtomicU64,
    pub(crate) threads: AtomicU64,
    pub(crate) snapshots: AtomicU64,
    pub(crate) snapshots_refused: AtomicU64,
    pub(crate) snapshot_chunks_released: AtomicU64,
    pub(crate) ring_bytes: AtomicU64,
}

impl LostCells {
    fn add(&self, events: u64, bytes: u64, chunks: u64) {
        self.events.fetch_add(events, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.chunks.fetch_add(chunks, Ordering::Relaxed);
    }

    fn read(&self) -> Lost {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Lost {
            events: r(&self.events),
            bytes: r(&self.bytes),
            chunks: r(&self.chunks),
        }
    }
}

impl StatCells {
    /// Counts events dropped for `reason`: ring overwrite as aged out, any other as lost
    /// (a reason the recorder does not use counts as oversize, the last).
    pub(crate) fn lose(&self, reason: LossReason, events: u64, bytes: u64, chunks: u64) {
        let cells = if reason == LossReason::RingOverwrite {
            &self.aged_out
        } else {
            let i = LOSS_REASONS
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(LOSS_REASONS.len() - 1);
            &self.lost[i]
        };
        cells.add(events, bytes, chunks);
    }

    pub(crate) fn read(
        &self,
        live_threads: u64,
        chunks_allocated: u64,
        snapshots_running: u64,
    ) -> Stats {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            events: r(&self.events),
            bytes: r(&self.bytes),
            chunks: r(&self.chunks),
            aged_out: self.aged_out.read(),
            lost: std::array::from_fn(|i| self.lost[i].read()),
            after_thread_exit: r(&self.after_thread_exit),
            reentrant: r(&self.reentrant),
            threads: r(&self.threads),
            live_threads,
            chunks_allocated,
            ring_bytes: r(&self.ring_bytes),
            snapshots: r(&self.snapshots),
            snapshots_refused: r(&self.snapshots_refused),
            snapshots_running,
            snapshot_chunks_released: r(&self.snapshot_chunks_released),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_overwrite_counts_as_aged_out_and_every_other_reason_as_lost() {
        let cells = StatCells::default();
        cells.lose(LossReason::RingOverwrite, 100, 1000, 1);
        cells.lose(LossReason::PoolExhausted, 3, 30, 0);
        cells.lose(LossReason::CaptureBehind, 5, 50, 1);
        cells.lose(LossReason::Oversize, 1, 9000, 0);
        let s = cells.read(0, 0, 0);
        assert_eq!(s.aged_out_events(), 100);
        assert_eq!(s.aged_out.bytes, 1000);
        assert_eq!(s.lost_events(), 9);
        assert_eq!(s.lost_bytes(), 9080);
        assert_eq!(s.lost_for(LossReason::CaptureBehind).chunks, 1);
        assert_eq!(s.lost_for(LossReason::PoolExhausted).events, 3);
        assert_eq!(s.lost_for(LossReason::RingOverwrite), Lost::default());
    }
}
