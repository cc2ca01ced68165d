//! Streaming capture (Go's `trace.Start` / `Stop`): every chunk sealed while a capture runs
//! is written to its writer, with incremental tables before the chunks that need them, and
//! at the stop the committed part of every live thread's chunk.
//!
//! The writing runs on the capture's own thread, never the collector's: the collector only
//! queues the chunks it collects for the capture (pinned, through the capture's lease), so a
//! slow writer never delays collection. A capture whose writer falls behind falls behind:
//! past [`CAPTURE_PENDING_MAX`] queued chunks it drops new ones, and when writers need a
//! queued chunk that left the ring, the collector takes it back; either way the capture
//! counts it lost (`LossReason::CaptureBehind`, in the trace and in `stats()`), and neither
//! the flight ring nor the writers lose anything to it.

use std::any::Any;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::Thread;
use std::time::{Duration, Instant};

use fdr_format::{LossReason, ProcessInfo, TableEncoder, ThreadId, TraceWriter};

use crate::chunk::{ChunkMeta, ChunkPtr, Lease};
use crate::error::Error;
use crate::intern::{self, TableMark};
use crate::state::{Held, Reader, Shared, ThreadEntry, shared};
use crate::sync::lock;
use crate::trace::{self, Expect};

/// Most sealed chunks waiting for the capture's writer; past this the capture drops
/// chunks and counts them (`LossReason::CaptureBehind`), so a slow writer never holds
/// more than this or stalls the recorder. (Queued chunks stay in the flight ring as long
/// as it keeps them; the collector takes back any that left it when writers need them.)
pub const CAPTURE_PENDING_MAX: usize = 256;
/// How often a capture repeats a clock-sync record.
const CLOCK_EVERY: Duration = Duration::from_secs(1);
/// Longest wait of the capture's thread between two looks at its queue (the collector
/// wakes it sooner when it queues chunks, and the stop wakes it at once).
const CAPTURE_WAIT: Duration = Duration::from_millis(100);

/// A writer a capture streams to.
pub(crate) trait Sink: Write + Send {
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<W: Write + Send + 'static> Sink for W {
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

type Done = Result<Box<dyn Any + Send>, Error>;

/// The capture's state under the core lock.
pub(crate) struct CaptureCtl {
    pending: VecDeque<Held>,
    announce: Vec<(u32, u64, String)>,
    announced: HashSet<u32>,
    stop: bool,
    /// The pins of the queued chunks (and, at the stop, of the live ones).
    lease: Arc<Lease>,
    /// The capture's thread, once it runs (woken when chunks are queued or at the stop).
    writer: Option<Thread>,
}

impl std::fmt::Debug for CaptureCtl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureCtl")
            .field("pending", &self.pending.len())
            .field("stop", &self.stop)
            .finish()
    }
}

impl CaptureCtl {
    /// Offers a sealed chunk (under the core lock): pinned and queued, or dropped and counted.
    pub(crate) fn offer(
        &mut self,
        c: ChunkPtr,
        meta: ChunkMeta,
        threads: &std::collections::BTreeMap<u32, ThreadEntry>,
        sh: &Shared,
    ) {
        // A chunk drained before the capture's thread begins (a collector round, an exiting
        // thread or a snapshot may drain first) is queued too: it may hold events recorded
        // after `capture()` returned, which must not be missed.
        if self.pending.len() >= CAPTURE_PENDING_MAX {
            let chunk = c.get();
            sh.stats.lose(
                LossReason::CaptureBehind,
                chunk.seal_info().events,
                chunk.committed() as u64,
                1,
            );
            return;
        }
        c.get().pin();
        let h = Held { chunk: c, meta };
        self.lease.adopt(h.inc());
        if self.announced.insert(meta.thread)
            && let Some(e) = threads.get(&meta.thread)
        {
            self.announce.push((meta.thread, e.os_tid, e.name.clone()));
        }
        self.pending.push_back(h);
    }

    /// Wakes the capture's thread if chunks wait for it.
    pub(crate) fn wake_if_pending(&self) {
        if !self.pending.is_empty()
            && let Some(t) = &self.writer
        {
            t.unpark();
        }
    }

    /// The thread left the registry; a later thread never reuses its id.
    pub(crate) fn forget_thread(&mut self, _id: u32) {}
}

/// The capture's thread's side of a running capture.
struct CaptureRun {
    out: Option<TraceWriter<Box<dyn Sink>>>,
    error: Option<io::Error>,
    written: u64,
    mark: TableMark,
    expect: HashMap<u32, Expect>,
    last_clock: Instant,
    lease: Arc<Lease>,
}

impl CaptureRun {
    fn begin(
        sink: Box<dyn Sink>,
        lease: Arc<Lease>,
        info: &ProcessInfo,
        threads: &[(u32, u64, String)],
    ) -> Self {
        let mut run = CaptureRun {
            out: None,
            error: None,
            written: 0,
            mark: TableMark::default(),
            expect: HashMap::new(),
            last_clock: Instant::now(),
            lease,
        };
        match TraceWriter::new(sink, info) {
            Ok(mut w) => {
                let mut t = TableEncoder::new();
                run.mark = trace::full_table(&mut t, threads);
                match w.write_table(&t, true) {
                    Ok(()) => run.out = Some(w),
                    Err(e) => run.error = Some(e),
                }
            }
            Err(e) => run.error = Some(e),
        }
        run
    }

    fn write(&mut self, batch: &[Held], announce: &[(u32, u64, String)], live: &[Held]) {
        if let Some(w) = &mut self.out {
            let r = write_chunks(
                w,
                &mut self.mark,
                &mut self.expect,
                &mut self.last_clock,
                &self.lease,
                batch,
                announce,
                live,
            );
            if let Err(e) = r {
                self.written = w.bytes_written();
                self.error = Some(e);
                self.out = None;
            }
        }
        // Whatever was not written (the writer failed, or stopped earlier) is let go.
        for h in batch.iter().chain(live) {
            self.lease.release(h.inc());
        }
    }

    fn finish(mut self) -> Done {
        match (self.out.take(), self.error.take()) {
            (Some(w), None) => {
                let written = w.bytes_written();
                match w.finish() {
                    Ok(sink) => Ok(sink.into_any()),
                    Err(source) => Err(Error::Io { written, source }),
                }
            }
            (_, Some(source)) => Err(Error::Io {
                written: self.written,
                source,
            }),
            (None, None) => Err(Error::NotStarted),
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the capture's state, split to borrow apart"
)]
fn write_chunks(
    w: &mut TraceWriter<Box<dyn Sink>>,
    mark: &mut TableMark,
    expect: &mut HashMap<u32, Expect>,
    last_clock: &mut Instant,
    lease: &Lease,
    batch: &[Held],
    announce: &[(u32, u64, String)],
    live: &[Held],
) -> io::Result<()> {
    let mut t = TableEncoder::new();
    *mark = intern::encode_since(*mark, &mut t);
    mark.modules = crate::os::encode_modules(&mut t, Some(mark.modules));
    for (id, os_tid, name) in announce {
        t.thread(ThreadId(*id), *os_tid, name);
    }
    if last_clock.elapsed() >= CLOCK_EVERY {
        t.clock(&crate::clock::clock_sync());
        *last_clock = Instant::now();
    }
    if !t.is_empty() {
        w.write_table(&t, false)?;
    }
    for (i, h) in batch.iter().chain(live).enumerate() {
        let sealed = i < batch.len();
        if let Some(prev) = expect.get(&h.meta.thread) {
            trace::write_gap(w, h, prev, LossReason::CaptureBehind)?;
        }
        match lease.read(h.inc()) {
            Ok(r) => {
                let bytes = r.bytes();
                w.write_events(ThreadId(h.meta.thread), h.meta.seq, h.meta.base_ts, bytes)?;
                let (len, seal) = (bytes.len(), r.chunk().seal_info());
                if sealed {
                    if seal.last {
                        expect.remove(&h.meta.thread);
                    } else {
                        expect.insert(h.meta.thread, Expect::after(&h.meta, &seal, len));
                    }
                }
            }
            // Writers needed it before the capture got to it: lost to the capture (counted
            // when the collector took it back).
            Err(what) => {
                let next = trace::write_revoked(w, h, &what, LossReason::CaptureBehind)?;
                if what.last {
                    expect.remove(&h.meta.thread);
                } else {
                    expect.insert(h.meta.thread, next);
                }
            }
        }
    }
    Ok(())
}

/// The capture's thread: writes the table, then the queued chunks as the collector queues
/// them, and at the stop the live chunks and the end marker; then hands the writer back.
fn run_capture(sink: Box<dyn Sink>, lease: Arc<Lease>) -> Done {
    let sh = shared();
    let threads = {
        let mut core = lock(&sh.core);
        let records = core.thread_records();
        if let Some(ctl) = &mut core.capture {
            // The table announces these threads; chunks queued before it announced theirs
            // already (threads that may have left since).
            ctl.announce.retain(|a| !records.iter().any(|r| r.0 == a.0));
            ctl.announced.extend(records.iter().map(|r| r.0));
        }
        records
    };
    let info = lock(&sh.process).clone();
    let mut run = CaptureRun::begin(sink, lease.clone(), &info, &threads);
    // Bounded by the stop: every pass takes what is queued, and the stop ends the loop.
    loop {
        let (batch, announce, stopping) = {
            let mut core = lock(&sh.core);
            match &mut core.capture {
                Some(ctl) if Arc::ptr_eq(&ctl.lease, &lease) => (
                    ctl.pending.drain(..).collect::<Vec<_>>(),
                    std::mem::take(&mut ctl.announce),
                    ctl.stop,
                ),
                _ => (Vec::new(), Vec::new(), true),
            }
        };
        run.write(&batch, &announce, &[]);
        if stopping {
            break;
        }
        std::thread::park_timeout(CAPTURE_WAIT);
    }
    // The stop: every live thread's committed events, and what was sealed meanwhile.
    let live = trace::pin_live(sh, &lease);
    let (batch, announce) = {
        let mut core = lock(&sh.core);
        sh.collect(&mut core);
        let ours = matches!(&core.capture, Some(ctl) if Arc::ptr_eq(&ctl.lease, &lease));
        let ctl = if ours { core.capture.take() } else { None };
        crate::refresh_enabled(&core);
        match ctl {
            Some(mut ctl) => (
                ctl.pending.drain(..).collect::<Vec<_>>(),
                std::mem::take(&mut ctl.announce),
            ),
            None => (Vec::new(), Vec::new()),
        }
    };
    let (batch, live) = trace::merge_live(batch, live);
    // Live chunks belong to threads the capture may not have announced yet.
    let mut announce = announce;
    {
        let core = lock(&sh.core);
        for h in &live {
            if !announce.iter().any(|a| a.0 == h.meta.thread)
                && let Some(e) = core.threads.get(&h.meta.thread)
            {
                announce.push((h.meta.thread, e.os_tid, e.name.clone()));
            }
        }
    }
    run.write(&batch, &announce, &live);
    run.finish()
}

/// The capture's thread's last act, even if its writer panicked: the capture ends (a new
/// one may start), its lease goes and the pins it still holds with it.
struct CaptureEnd(Arc<Lease>);

impl Drop for CaptureEnd {
    fn drop(&mut self) {
        let sh = shared();
        let mut core = lock(&sh.core);
        if matches!(&core.capture, Some(ctl) if Arc::ptr_eq(&ctl.lease, &self.0)) {
            core.capture = None;
            crate::refresh_enabled(&core);
        }
        core.remove_lease(&self.0);
        drop(core);
        self.0.release_all();
    }
}

/// A running capture; stop it (or drop it) to end the trace cleanly.
#[must_use = "dropping the guard stops the capture"]
pub struct CaptureGuard<W> {
    done: Option<Receiver<Done>>,
    _writer: PhantomData<fn() -> W>,
}

impl<W> std::fmt::Debug for CaptureGuard<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureGuard").finish_non_exhaustive()
    }
}

/// Starts streaming every event recorded from now on to `writer`, from a thread of the
/// capture's own, alongside the flight recorder. One capture at a time: a second gets
/// [`Error::CaptureInProgress`]. A writer slower than the events never slows the recorder:
/// the capture drops what it cannot keep up with and counts it (see the module docs).
pub fn capture<W: Write + Send + 'static>(writer: W) -> Result<CaptureGuard<W>, Error> {
    let sh = shared();
    if sh.collector.get().is_none() {
        return Err(Error::NotStarted);
    }
    let (tx, rx) = sync_channel(1);
    let lease = Arc::new(Lease::new());
    {
        let mut core = lock(&sh.core);
        if core.capture.is_some() {
            return Err(Error::CaptureInProgress);
        }
        core.capture = Some(CaptureCtl {
            pending: VecDeque::new(),
            announce: Vec::new(),
            announced: HashSet::new(),
            stop: false,
            lease: lease.clone(),
            writer: None,
        });
        core.add_lease(Reader::Capture, lease.clone());
        crate::refresh_enabled(&core);
    }
    let sink: Box<dyn Sink> = Box::new(writer);
    let l2 = lease.clone();
    let spawned = std::thread::Builder::new()
        .name("fdr-capture".into())
        .spawn(move || {
            crate::cost::register_thread(crate::cost::Role::Capture);
            let end = CaptureEnd(l2.clone());
            let done = std::panic::catch_unwind(AssertUnwindSafe(|| run_capture(sink, l2)))
                .unwrap_or_else(|_| {
                    Err(Error::Io {
                        written: 0,
                        source: io::Error::other("the capture's writer panicked"),
                    })
                });
            drop(end);
            let _ = tx.send(done);
        });
    match spawned {
        Ok(handle) => {
            let mut core = lock(&sh.core);
            if let Some(ctl) = &mut core.capture
                && Arc::ptr_eq(&ctl.lease, &lease)
            {
                ctl.writer = Some(handle.thread().clone());
                // Chunks may have been queued before it was known.
                ctl.wake_if_pending();
            }
        }
        Err(e) => {
            drop(CaptureEnd(lease));
            return Err(Error::Spawn(e));
        }
    }
    Ok(CaptureGuard {
        done: Some(rx),
        _writer: PhantomData,
    })
}

impl<W: 'static> CaptureGuard<W> {
    /// Stops the capture: its thread writes what is queued and the committed part of every
    /// live thread's chunk, then the end marker. Returns the writer.
    pub fn stop(mut self) -> Result<W, Error> {
        let rx = self.done.take().ok_or(Error::NotStarted)?;
        let any = request_stop(rx)?;
        any.downcast::<W>()
            .map(|b| *b)
            .map_err(|_| Error::NotStarted)
    }
}

fn request_stop(rx: Receiver<Done>) -> Done {
    let sh = shared();
    {
        let mut core = lock(&sh.core);
        if let Some(ctl) = &mut core.capture {
            ctl.stop = true;
            if let Some(t) = &ctl.writer {
                t.unpark();
            }
        }
    }
    rx.recv().unwrap_or(Err(Error::NotStarted))
}

impl<W> Drop for CaptureGuard<W> {
    fn drop(&mut self) {
        if let Some(rx) = self.done.take() {
            let _ = request_stop(rx);
        }
    }
}

/// Whether a capture is running.
pub fn capture_running() -> bool {
    lock(&shared().core).capture.is_some()
}
