//! Streaming capture (Go's `trace.Start` / `Stop`): the collector writes every chunk sealed
//! while a capture runs to its writer, with incremental tables before the chunks that need
//! them, and at the stop the committed part of every live thread's chunk.

use std::any::Any;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use fdr_format::{LossReason, ProcessInfo, TableEncoder, ThreadId, TraceWriter};

use crate::chunk::{ChunkMeta, ChunkPtr};
use crate::error::Error;
use crate::intern::{self, TableMark};
use crate::state::{Held, Shared, ThreadEntry, shared};
use crate::sync::lock;
use crate::trace::{self, Expect};

/// Most sealed chunks waiting for the capture's writer; past this the capture drops
/// chunks and counts them (`LossReason::CaptureBehind`), so a slow writer never holds
/// more memory than this or stalls the recorder.
pub const CAPTURE_PENDING_MAX: usize = 256;
/// How often a capture repeats a clock-sync record.
const CLOCK_EVERY: Duration = Duration::from_secs(1);

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
    start: Option<(Box<dyn Sink>, SyncSender<Done>)>,
    pending: VecDeque<Held>,
    announce: Vec<(u32, u64, String)>,
    announced: HashSet<u32>,
    stop: bool,
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
        // A chunk drained before the collector begins the capture (the collector's round
        // drains first, and an exiting thread or a snapshot may drain sooner) is queued too:
        // it may hold events recorded after `capture()` returned, which must not be missed.
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
        if self.announced.insert(meta.thread) {
            if let Some(e) = threads.get(&meta.thread) {
                self.announce.push((meta.thread, e.os_tid, e.name.clone()));
            }
        }
        self.pending.push_back(Held { chunk: c, meta });
    }

    /// The thread left the registry; a later thread never reuses its id.
    pub(crate) fn forget_thread(&mut self, _id: u32) {}
}

/// The collector's side of a running capture.
pub(crate) struct CaptureRun {
    out: Option<TraceWriter<Box<dyn Sink>>>,
    error: Option<io::Error>,
    written: u64,
    mark: TableMark,
    expect: HashMap<u32, Expect>,
    last_clock: Instant,
    done: SyncSender<Done>,
}

impl CaptureRun {
    fn begin(
        sink: Box<dyn Sink>,
        done: SyncSender<Done>,
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
            done,
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
        for h in batch.iter().chain(live) {
            h.chunk.get().unpin();
        }
    }

    fn finish(mut self) {
        let result = match (self.out.take(), self.error.take()) {
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
        };
        let _ = self.done.send(result);
    }
}

fn write_chunks(
    w: &mut TraceWriter<Box<dyn Sink>>,
    mark: &mut TableMark,
    expect: &mut HashMap<u32, Expect>,
    last_clock: &mut Instant,
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
        let bytes = h.chunk.get().committed_bytes();
        w.write_events(ThreadId(h.meta.thread), h.meta.seq, h.meta.base_ts, bytes)?;
        if sealed {
            let seal = h.chunk.get().seal_info();
            if seal.last {
                expect.remove(&h.meta.thread);
            } else {
                expect.insert(h.meta.thread, Expect::after(&h.meta, &seal, bytes.len()));
            }
        }
    }
    Ok(())
}

/// One collector round: collect, then feed the capture. Returns the sealed chunks moved.
pub(crate) fn step(sh: &'static Shared, run: &mut Option<CaptureRun>) -> usize {
    let (moved, begin, batch, announce, stopping) = {
        let mut core = lock(&sh.core);
        let moved = sh.collect(&mut core);
        let records = match &core.capture {
            Some(ctl) if ctl.start.is_some() => core.thread_records(),
            _ => Vec::new(),
        };
        match &mut core.capture {
            None => (moved, None, Vec::new(), Vec::new(), false),
            Some(ctl) => {
                let begin = ctl.start.take().map(|(s, tx)| {
                    // The begin's thread records announce these threads; chunks queued before
                    // it announced theirs already (threads that may have left since).
                    ctl.announce.retain(|a| !records.iter().any(|r| r.0 == a.0));
                    ctl.announced.extend(records.iter().map(|r| r.0));
                    (s, tx, records)
                });
                let batch: Vec<Held> = ctl.pending.drain(..).collect();
                let announce = std::mem::take(&mut ctl.announce);
                (moved, begin, batch, announce, ctl.stop)
            }
        }
    };
    if let Some((sink, tx, threads)) = begin {
        let info = lock(&sh.process).clone();
        *run = Some(CaptureRun::begin(sink, tx, &info, &threads));
    }
    match run {
        Some(r) => r.write(&batch, &announce, &[]),
        None => batch.iter().for_each(|h| h.chunk.get().unpin()),
    }
    if stopping {
        let live = trace::pin_live(sh);
        let (batch, announce) = {
            let mut core = lock(&sh.core);
            sh.collect(&mut core);
            let ctl = core.capture.take();
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
                if !announce.iter().any(|a| a.0 == h.meta.thread) {
                    if let Some(e) = core.threads.get(&h.meta.thread) {
                        announce.push((h.meta.thread, e.os_tid, e.name.clone()));
                    }
                }
            }
        }
        match run.take() {
            Some(mut r) => {
                r.write(&batch, &announce, &live);
                r.finish();
            }
            None => batch
                .iter()
                .chain(&live)
                .for_each(|h| h.chunk.get().unpin()),
        }
    }
    moved
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

/// Starts streaming every event recorded from now on to `writer`, from the collector thread,
/// alongside the flight recorder. One capture at a time: a second gets
/// [`Error::CaptureInProgress`].
pub fn capture<W: Write + Send + 'static>(writer: W) -> Result<CaptureGuard<W>, Error> {
    let sh = shared();
    if sh.collector.get().is_none() {
        return Err(Error::NotStarted);
    }
    let (tx, rx) = sync_channel(1);
    {
        let mut core = lock(&sh.core);
        if core.capture.is_some() {
            return Err(Error::CaptureInProgress);
        }
        core.capture = Some(CaptureCtl {
            start: Some((Box::new(writer), tx)),
            pending: VecDeque::new(),
            announce: Vec::new(),
            announced: HashSet::new(),
            stop: false,
        });
        crate::refresh_enabled(&core);
    }
    sh.wake_collector();
    Ok(CaptureGuard {
        done: Some(rx),
        _writer: PhantomData,
    })
}

impl<W: 'static> CaptureGuard<W> {
    /// Stops the capture: the collector writes what is pending and the committed part of
    /// every live thread's chunk, then the end marker. Returns the writer.
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
        }
    }
    sh.wake_collector();
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
