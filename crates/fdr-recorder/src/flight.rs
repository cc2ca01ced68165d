//! The flight recorder (Go 1.25's `FlightRecorder`, made sharp): the newest chunks in a
//! ring bounded by `max_bytes`, written out on demand without stopping writers.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::atomic::Ordering;

use fdr_format::{LossReason, TableEncoder, TraceWriter};

use crate::error::Error;
use crate::state::{FlightConfig, Held, shared};
use crate::sync::lock;
use crate::trace::{self, Expect};

/// The process's flight recorder (a handle; all handles share one ring).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlightRecorder(());

/// The flight recorder.
pub fn flight() -> FlightRecorder {
    FlightRecorder(())
}

/// Releases the snapshot flag and unpins whatever a snapshot still holds.
struct SnapshotGuard {
    held: Vec<Held>,
    next: usize,
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        for h in &self.held[self.next..] {
            h.chunk.get().unpin();
        }
        shared().snapshot_busy.store(false, Ordering::Release);
    }
}

impl FlightRecorder {
    /// Starts keeping a window of recent events (the recorder must be started). Restarting
    /// with a new configuration empties the ring (its chunks are counted as overwritten).
    pub fn start(&self, config: FlightConfig) -> Result<(), Error> {
        config.check().map_err(Error::Config)?;
        let sh = shared();
        if sh.collector.get().is_none() {
            return Err(Error::NotStarted);
        }
        let mut core = lock(&sh.core);
        core.clear_ring(sh);
        sh.max_chunks.store(config.chunks(), Ordering::Relaxed);
        core.flight = Some(config);
        // Stock the pool now rather than at the collector's next round.
        sh.collect(&mut core);
        crate::refresh_enabled(&core);
        Ok(())
    }

    /// Stops keeping new events; the window kept so far can still be written.
    pub fn stop(&self) {
        let sh = shared();
        let mut core = lock(&sh.core);
        core.flight = None;
        crate::refresh_enabled(&core);
    }

    /// Whether the flight recorder is keeping events.
    pub fn enabled(&self) -> bool {
        lock(&shared().core).flight.is_some()
    }

    /// The active configuration.
    pub fn config(&self) -> Option<FlightConfig> {
        lock(&shared().core).flight
    }

    /// Writes the window (every chunk in the ring, and the committed part of every live
    /// thread's current chunk) as a trace that decodes on its own. Writers keep recording;
    /// the ring is not cleared. Returns the bytes written.
    ///
    /// One snapshot at a time: a concurrent call gets [`Error::SnapshotInProgress`] at once.
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<u64, Error> {
        let sh = shared();
        if sh.collector.get().is_none() {
            return Err(Error::NotStarted);
        }
        if sh
            .snapshot_busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(Error::SnapshotInProgress);
        }
        let mut guard = SnapshotGuard {
            held: Vec::new(),
            next: 0,
        };
        // 1. The ring as it is now (collecting first), pinned.
        let mut threads = BTreeMap::new();
        let gone = {
            let mut core = lock(&sh.core);
            sh.collect(&mut core);
            pin_ring(&core.ring, &mut guard.held, &mut HashSet::new());
            for r in core.thread_records() {
                threads.insert(r.0, r);
            }
            core.gone
        };
        // 2. Every live thread's current chunk.
        let live = trace::pin_live(sh);
        // 3. Chunks sealed meanwhile (a thread that sealed its chunk after step 1 posted it
        //    to its mailbox, or the overflow queue, before we could see its next chunk, so
        //    collecting again finds it).
        {
            let mut core = lock(&sh.core);
            sh.collect(&mut core);
            let mut seen: HashSet<_> = guard.held.iter().map(|h| h.chunk).collect();
            pin_ring(&core.ring, &mut guard.held, &mut seen);
            for r in core.thread_records() {
                threads.insert(r.0, r);
            }
        }
        let sealed = std::mem::take(&mut guard.held);
        let (sealed, live) = trace::merge_live(sealed, live);
        // Per thread: sealed chunks by sequence, then its live chunk.
        let mut all = sealed;
        all.extend(live);
        all.sort_by_key(|h| (h.meta.thread, h.meta.seq));
        guard.held = all;

        let info = lock(&sh.process).clone();
        let threads: Vec<_> = threads.into_values().collect();
        let result = write_window(out, &info, &threads, &mut guard, gone);
        sh.stats.snapshots.fetch_add(1, Ordering::Relaxed);
        result
    }
}

fn pin_ring(
    ring: &std::collections::VecDeque<crate::chunk::ChunkPtr>,
    held: &mut Vec<Held>,
    seen: &mut HashSet<crate::chunk::ChunkPtr>,
) {
    for &c in ring {
        if seen.insert(c) {
            c.get().pin();
            held.push(Held {
                chunk: c,
                meta: c.get().meta(),
            });
        }
    }
}

fn write_window<W: Write>(
    out: &mut W,
    info: &fdr_format::ProcessInfo,
    threads: &[(u32, u64, String)],
    guard: &mut SnapshotGuard,
    gone: crate::state::Gone,
) -> Result<u64, Error> {
    let counting = Counting { inner: out, n: 0 };
    let mut w =
        TraceWriter::new(counting, info).map_err(|source| Error::Io { written: 0, source })?;
    let io = |w: &TraceWriter<Counting<'_, W>>, source| Error::Io {
        written: w.bytes_written(),
        source,
    };
    let mut t = TableEncoder::new();
    trace::full_table(&mut t, threads);
    w.write_table(&t, true).map_err(|e| io(&w, e))?;
    let mut prev: Option<(u32, Expect)> = None;
    while guard.next < guard.held.len() {
        let h = guard.held[guard.next];
        let expect = match prev {
            Some((t, e)) if t == h.meta.thread => e,
            _ => Expect::default(),
        };
        trace::write_gap(&mut w, &h, &expect, LossReason::RingOverwrite).map_err(|e| io(&w, e))?;
        let chunk = h.chunk.get();
        let bytes = chunk.committed_bytes();
        w.write_events(
            fdr_format::ThreadId(h.meta.thread),
            h.meta.seq,
            h.meta.base_ts,
            bytes,
        )
        .map_err(|e| io(&w, e))?;
        prev = Some((
            h.meta.thread,
            Expect::after(&h.meta, &chunk.seal_info(), bytes.len()),
        ));
        let last_of_thread = guard
            .held
            .get(guard.next + 1)
            .is_none_or(|n| n.meta.thread != h.meta.thread);
        if last_of_thread {
            write_exit_discards(&mut w, &h).map_err(|e| io(&w, e))?;
        }
        // Unpin as we go, so the collector can recycle what the snapshot has written.
        chunk.unpin();
        guard.next += 1;
    }
    if gone.events > 0 {
        trace::write_loss(
            &mut w,
            0,
            0,
            0,
            LossReason::RingOverwrite,
            gone.events,
            gone.bytes,
        )
        .map_err(|e| io(&w, e))?;
    }
    if gone.discards > 0 {
        trace::write_loss(&mut w, 0, 1, 0, LossReason::PoolExhausted, gone.discards, 0)
            .map_err(|e| io(&w, e))?;
    }
    let written = w.bytes_written();
    let c = w.finish().map_err(|source| Error::Io { written, source })?;
    Ok(c.n)
}

/// Counts the bytes written through it.
struct Counting<'a, W> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Discards a thread made after its last chunk (it exited with no free chunk).
fn write_exit_discards<W: Write>(w: &mut TraceWriter<W>, h: &Held) -> std::io::Result<()> {
    let core = lock(&shared().core);
    let Some(e) = core.threads.get(&h.meta.thread) else {
        return Ok(());
    };
    let d = e.shared.exit_discards.load(Ordering::Relaxed);
    let b = e.shared.exit_discard_bytes.load(Ordering::Relaxed);
    drop(core);
    if d > 0 {
        let seq = h.meta.seq.wrapping_add(1);
        trace::write_loss(
            w,
            h.meta.thread,
            seq,
            h.meta.base_ts,
            LossReason::PoolExhausted,
            d,
            b,
        )?;
    }
    Ok(())
}
