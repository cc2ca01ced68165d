//! Pieces both trace writers share (the flight snapshot and the capture): the full table,
//! pinning live chunks, per-thread ordering, and loss records for gaps.

use std::collections::HashSet;
use std::io::{self, Write};

use fdr_format::{BatchEncoder, EventKind, LossReason, TableEncoder, ThreadId, TraceWriter};

use crate::chunk::{ChunkMeta, Incarnation, Lease, Revoked, SealInfo};
use crate::intern::{self, TableMark};
use crate::state::{Held, Shared};
use crate::sync::lock;

/// Writes the whole table (strings, sites, the given threads, the modules the OS view knows,
/// a clock sync) into `t`.
pub(crate) fn full_table(t: &mut TableEncoder, threads: &[(u32, u64, String)]) -> TableMark {
    let mut mark = intern::encode_since(TableMark::default(), t);
    for (id, os_tid, name) in threads {
        t.thread(ThreadId(*id), *os_tid, name);
    }
    mark.modules = crate::os::encode_modules(t, None);
    t.clock(&crate::clock::clock_sync());
    mark
}

/// What a thread's next chunk should start from, if nothing was lost in between.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Expect {
    pub(crate) events: u64,
    pub(crate) bytes: u64,
    pub(crate) discards: u64,
}

impl Expect {
    pub(crate) fn after(meta: &ChunkMeta, seal: &SealInfo, len: usize) -> Self {
        Expect {
            events: meta.events_before + seal.events,
            bytes: meta.bytes_before + len as u64,
            discards: meta.discards_before + seal.discards,
        }
    }
}

/// Writes one batch holding one loss record.
pub(crate) fn write_loss<W: Write>(
    w: &mut TraceWriter<W>,
    thread: u32,
    seq: u32,
    base_ts: u64,
    reason: LossReason,
    events: u64,
    bytes: u64,
) -> io::Result<()> {
    let mut buf = [0u8; 64];
    let mut b = BatchEncoder::new(&mut buf, base_ts);
    let kind = EventKind::Loss {
        reason,
        events,
        bytes,
    };
    // 64 bytes always hold one loss record (at most 1 + 1 + 3 varints).
    if b.push(base_ts, &kind).is_ok() {
        w.write_events(ThreadId(thread), seq, base_ts, b.payload())?;
    }
    Ok(())
}

/// If chunks are missing between `prev` and `h`, writes loss records for them: `reason`
/// for the events in the missing chunks, `PoolExhausted` for discards they reported.
pub(crate) fn write_gap<W: Write>(
    w: &mut TraceWriter<W>,
    h: &Held,
    prev: &Expect,
    reason: LossReason,
) -> io::Result<()> {
    let events = h.meta.events_before.saturating_sub(prev.events);
    let bytes = h.meta.bytes_before.saturating_sub(prev.bytes);
    let discards = h.meta.discards_before.saturating_sub(prev.discards);
    let seq = h.meta.seq.wrapping_sub(1);
    if events > 0 {
        write_loss(w, h.meta.thread, seq, h.meta.base_ts, reason, events, bytes)?;
    }
    if discards > 0 {
        let r = LossReason::PoolExhausted;
        write_loss(w, h.meta.thread, seq, h.meta.base_ts, r, discards, 0)?;
    }
    Ok(())
}

/// Pins the current chunk of every registered thread and hands the pins to `lease`.
pub(crate) fn pin_live(sh: &Shared, lease: &Lease) -> Vec<Held> {
    let slots: Vec<_> = lock(&sh.core)
        .threads
        .values()
        .map(|e| e.shared.clone())
        .collect();
    slots
        .iter()
        .filter_map(|t| t.handoff.slot().pin_current())
        .map(|c| {
            let h = Held::of(c);
            lease.adopt(h.inc());
            h
        })
        .collect()
}

/// Sorts sealed and live chunks per thread by sequence, dropping live entries that are the
/// same use of a chunk as a sealed one (it was sealed and collected after it was pinned;
/// the lease holds one pin for both). Returns (sealed, live), each sorted.
pub(crate) fn merge_live(mut sealed: Vec<Held>, live: Vec<Held>) -> (Vec<Held>, Vec<Held>) {
    let seen: HashSet<Incarnation> = sealed.iter().map(Held::inc).collect();
    let kept: Vec<Held> = live
        .into_iter()
        .filter(|h| !seen.contains(&h.inc()))
        .collect();
    sealed.sort_by_key(|h| (h.meta.thread, h.meta.seq));
    (sealed, kept)
}

/// Writes loss records for a chunk a reader pinned but could not write (the collector took
/// its pin back): `reason` for its events, `PoolExhausted` for the discards it reported.
/// Returns what the thread's next chunk should start from.
pub(crate) fn write_revoked<W: Write>(
    w: &mut TraceWriter<W>,
    h: &Held,
    what: &Revoked,
    reason: LossReason,
) -> io::Result<Expect> {
    let (thread, seq, base) = (h.meta.thread, h.meta.seq, h.meta.base_ts);
    if what.events > 0 {
        write_loss(w, thread, seq, base, reason, what.events, what.bytes)?;
    }
    if what.discards > 0 {
        let r = LossReason::PoolExhausted;
        write_loss(w, thread, seq, base, r, what.discards, 0)?;
    }
    Ok(Expect {
        events: h.meta.events_before + what.events,
        bytes: h.meta.bytes_before + what.bytes,
        discards: h.meta.discards_before + what.discards,
    })
}
