//! The flight recorder (Go 1.25's `FlightRecorder`, made sharp): the newest chunks in a
//! ring bounded by `max_bytes`, written out on demand without stopping writers, by several
//! snapshots at once if need be, none of which holds memory the writers need.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fdr_format::{LossReason, TableEncoder, TraceWriter};

use crate::chunk::{ChunkPtr, Incarnation, Lease};
use crate::error::Error;
use crate::state::{FlightConfig, Held, Reader, shared};
use crate::sync::lock;
use crate::trace::{self, Expect};

/// The process's flight recorder (a handle; all handles share one ring).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlightRecorder(());

/// The flight recorder.
pub fn flight() -> FlightRecorder {
    FlightRecorder(())
}

/// `write_to` snapshots written at once; one more gets [`Error::SnapshotInProgress`].
pub const MAX_SNAPSHOTS: usize = 4;
/// `write_incident_to` snapshots written at once (besides any `write_to`); one more gets
/// [`Error::SnapshotInProgress`].
pub const MAX_INCIDENT_SNAPSHOTS: usize = 16;

/// A snapshot's slot and lease: gives the slot back, and the pins it still holds, when the
/// snapshot is done (or fails, or panics).
struct SnapshotGuard {
    lease: Arc<Lease>,
    running: &'static AtomicUsize,
}

impl SnapshotGuard {
    /// Takes one of `max` slots counted by `running`, or refuses.
    fn take(running: &'static AtomicUsize, max: usize) -> Result<Self, Error> {
        let sh = shared();
        running
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| {
                sh.stats.snapshots_refused.fetch_add(1, Ordering::Relaxed);
                Error::SnapshotInProgress
            })?;
        let lease = Arc::new(Lease::new());
        lock(&sh.core).add_lease(Reader::Snapshot, lease.clone());
        Ok(SnapshotGuard { lease, running })
    }
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        lock(&shared().core).remove_lease(&self.lease);
        self.lease.release_all();
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FlightRecorder {
    /// Starts keeping a window of recent events (the recorder must be started). Restarting
    /// with a new configuration empties the ring (its chunks are counted as aged out).
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
    /// Snapshots run side by side: up to [`MAX_SNAPSHOTS`] `write_to` calls at once, and
    /// one more gets [`Error::SnapshotInProgress`] at once (counted in
    /// [`crate::Stats::snapshots_refused`]). Incident dumps use
    /// [`FlightRecorder::write_incident_to`], which no `write_to` can crowd out.
    ///
    /// A snapshot never holds memory the writers need, however slow `out` is: it pins the
    /// window's chunks when it starts; when writers need a chunk that left the window before
    /// the snapshot got to it, the collector takes it back, and the snapshot writes a
    /// ring-overwrite loss record in its place (counted in
    /// [`crate::Stats::snapshot_chunks_released`]). So a stalled `out` keeps one chunk (the
    /// one being written) and costs the writers nothing, and the snapshot still ends as a
    /// whole trace once `out` accepts its bytes.
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<u64, Error> {
        snapshot(out, &shared().snapshots_running, MAX_SNAPSHOTS)
    }

    /// Writes the window as [`FlightRecorder::write_to`] does, for an incident (the
    /// sentinel's dump, the panic dump): it runs beside every other snapshot, however many
    /// `write_to` calls are running and however slow their writers (an admin download, a
    /// user's snapshot), and is never refused because of them. Only when
    /// [`MAX_INCIDENT_SNAPSHOTS`] incident snapshots are being written at once does one more
    /// get [`Error::SnapshotInProgress`]. Like any snapshot, it never holds memory the
    /// writers need: a chunk that leaves the window before it is written is a ring-overwrite
    /// loss record in the dump.
    pub fn write_incident_to<W: Write>(&self, out: &mut W) -> Result<u64, Error> {
        let sh = shared();
        snapshot(out, &sh.incident_snapshots_running, MAX_INCIDENT_SNAPSHOTS)
    }
}

/// A snapshot (see [`FlightRecorder::write_to`]) in one of `max` slots `running` counts.
fn snapshot<W: Write>(
    out: &mut W,
    running: &'static AtomicUsize,
    max: usize,
) -> Result<u64, Error> {
    let sh = shared();
    if sh.collector.get().is_none() {
        return Err(Error::NotStarted);
    }
    let guard = SnapshotGuard::take(running, max)?;
    let lease = &guard.lease;
    // 1. The ring as it is now (collecting first), pinned.
    let mut threads = BTreeMap::new();
    let mut sealed = Vec::new();
    let mut seen = HashSet::new();
    let gone = {
        let mut core = lock(&sh.core);
        sh.collect(&mut core);
        pin_ring(&core.ring, lease, &mut sealed, &mut seen);
        for r in core.thread_records() {
            threads.insert(r.0, r);
        }
        core.gone
    };
    // 2. Every live thread's current chunk.
    let live = trace::pin_live(sh, lease);
    // 3. Chunks sealed meanwhile (a thread that sealed its chunk after step 1 posted it to
    //    its mailbox, or the overflow queue, before we could see its next chunk, so
    //    collecting again finds it).
    {
        let mut core = lock(&sh.core);
        sh.collect(&mut core);
        pin_ring(&core.ring, lease, &mut sealed, &mut seen);
        for r in core.thread_records() {
            threads.insert(r.0, r);
        }
    }
    let (sealed, live) = trace::merge_live(sealed, live);
    // Per thread: sealed chunks by sequence, then its live chunk.
    let mut all = sealed;
    all.extend(live);
    all.sort_by_key(|h| (h.meta.thread, h.meta.seq));

    let info = lock(&sh.process).clone();
    let threads: Vec<_> = threads.into_values().collect();
    let result = write_window(out, &info, &threads, lease, &all, gone);
    sh.stats.snapshots.fetch_add(1, Ordering::Relaxed);
    result
}

/// Pins the ring's chunks not pinned yet (by their use, `seen`), for the snapshot's lease.
fn pin_ring(
    ring: &std::collections::VecDeque<ChunkPtr>,
    lease: &Lease,
    held: &mut Vec<Held>,
    seen: &mut HashSet<Incarnation>,
) {
    for &c in ring {
        let h = Held::of(c);
        if seen.insert(h.inc()) {
            c.get().pin();
            // A live chunk pinned since and collected now: the lease keeps one pin for
            // both, and `merge_live` keeps this entry.
            lease.adopt(h.inc());
            held.push(h);
        }
    }
}

fn write_window<W: Write>(
    out: &mut W,
    info: &fdr_format::ProcessInfo,
    threads: &[(u32, u64, String)],
    lease: &Lease,
    held: &[Held],
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
    for (i, h) in held.iter().enumerate() {
        let expect = match prev {
            Some((t, e)) if t == h.meta.thread => e,
            _ => Expect::default(),
        };
        trace::write_gap(&mut w, h, &expect, LossReason::RingOverwrite).map_err(|e| io(&w, e))?;
        // The chunk is read through the lease: the collector leaves it alone meanwhile.
        let next = match lease.read(h.inc()) {
            Ok(r) => {
                let bytes = r.bytes();
                w.write_events(
                    fdr_format::ThreadId(h.meta.thread),
                    h.meta.seq,
                    h.meta.base_ts,
                    bytes,
                )
                .map_err(|e| io(&w, e))?;
                Expect::after(&h.meta, &r.chunk().seal_info(), bytes.len())
            }
            // It left the window and writers needed it before we got to it.
            Err(what) => trace::write_revoked(&mut w, h, &what, LossReason::RingOverwrite)
                .map_err(|e| io(&w, e))?,
        };
        prev = Some((h.meta.thread, next));
        let last_of_thread = held
            .get(i + 1)
            .is_none_or(|n| n.meta.thread != h.meta.thread);
        if last_of_thread {
            write_exit_discards(&mut w, h).map_err(|e| io(&w, e))?;
        }
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
