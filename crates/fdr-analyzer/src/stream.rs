//! The streaming event API: every event of a trace, in time order, with its thread, the
//! task current on that thread, and the tables that resolve its ids.
//!
//! Batches are read one at a time (from a file through a buffered reader, or from a slice),
//! kept in a bounded reorder window, and merged across threads by timestamp. Memory follows
//! the window and the live threads, never the trace length.
//!
//! ```
//! use fdr_analyzer::stream::{read_slice, EventCx, ReadOptions, Visitor};
//! use fdr_format::EventKind;
//!
//! struct CountRegions(u64);
//! impl Visitor for CountRegions {
//!     fn event(&mut self, cx: &EventCx<'_>) {
//!         if let EventKind::RegionBegin { .. } = cx.kind {
//!             self.0 += 1;
//!         }
//!     }
//! }
//! let bytes = fdr_format::testing::sample_trace();
//! let mut v = CountRegions(0);
//! let outcome = read_slice(&bytes, &mut v, ReadOptions::default()).unwrap();
//! assert!(outcome.error.is_none());
//! assert!(v.0 > 0);
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use fdr_format::decode::{Input, ReadInput};
use fdr_format::{
    Batch, ClockSync, DecodeError, Decoder, Event, EventKind, Message, ProcessInfo, StackFrames,
    Tables, TaskId, ThreadId,
};

use crate::error::{AnalyzeError, TraceError};

/// Converts event-clock ticks to nanoseconds since the start of the trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Tick value of the trace's first event (time 0 of every analysis).
    pub origin_ticks: u64,
    /// Nanoseconds per tick (from the trace's clock sync; 1.0 when it has none).
    pub ns_per_tick: f64,
    /// Wall-clock Unix nanoseconds of `origin_ticks`, when the trace has a clock sync.
    pub origin_wall_unix_ns: Option<i128>,
}

impl Clock {
    fn new(origin_ticks: u64, sync: Option<&ClockSync>) -> Self {
        Clock {
            origin_ticks,
            ns_per_tick: sync.map_or(1.0, |c| 1e9 / c.ticks_per_sec),
            origin_wall_unix_ns: sync.map(|c| c.wall_ns(origin_ticks)),
        }
    }

    /// Nanoseconds from the trace's first event to `ticks` (0 for anything earlier).
    #[inline]
    pub fn ns(&self, ticks: u64) -> u64 {
        (ticks.saturating_sub(self.origin_ticks) as f64 * self.ns_per_tick) as u64
    }

    /// A tick count as nanoseconds.
    #[inline]
    pub fn dur_ns(&self, ticks: u64) -> u64 {
        (ticks as f64 * self.ns_per_tick) as u64
    }
}

/// One event as a visitor sees it.
#[derive(Debug, Clone, Copy)]
pub struct EventCx<'a> {
    /// The recording thread.
    pub thread: ThreadId,
    /// Timestamp in clock ticks.
    pub ts: u64,
    /// Nanoseconds since the trace's first event.
    pub ns: u64,
    /// What happened.
    pub kind: EventKind<'a>,
    /// The task current on the thread: for a poll start or user-task begin, the task that
    /// starts; for a poll end or user-task end, the task that ends; otherwise the innermost
    /// task between a poll start and its end or a user-task begin and its end
    /// ([`TaskId::NONE`] when none).
    pub task: TaskId,
    /// The event arrived after later events of other threads had been delivered (its
    /// batch came too late for the reorder window). Analyses should not assume order.
    pub late: bool,
    /// Strings, sites, threads and clocks defined so far.
    pub tables: &'a Tables,
    /// Tick-to-nanosecond conversion.
    pub clock: &'a Clock,
}

/// What the reader tells a visitor when the trace ends (or stops at damage).
#[derive(Debug, Clone, Copy)]
pub struct EndCx<'a> {
    /// Timestamp of the last event, in ticks.
    pub last_ts: u64,
    /// Nanoseconds from the first to the last event.
    pub last_ns: u64,
    /// Final tables.
    pub tables: &'a Tables,
    /// Tick-to-nanosecond conversion.
    pub clock: &'a Clock,
    /// What was read.
    pub stats: &'a ReadStats,
}

/// Receives a trace's events in time order. Every method but [`Visitor::event`] has an
/// empty default.
pub trait Visitor {
    /// The file header, before anything else.
    fn start(&mut self, _info: &ProcessInfo) {}
    /// One event.
    fn event(&mut self, cx: &EventCx<'_>);
    /// A thread's batch sequence skipped `missing` batches: its events in between are lost.
    fn gap(&mut self, _thread: ThreadId, _missing: u64) {}
    /// The end of the trace (also called when reading stops at damage).
    fn end(&mut self, _cx: &EndCx<'_>) {}
}

impl<V: Visitor + ?Sized> Visitor for &mut V {
    fn start(&mut self, info: &ProcessInfo) {
        (**self).start(info)
    }
    fn event(&mut self, cx: &EventCx<'_>) {
        (**self).event(cx)
    }
    fn gap(&mut self, thread: ThreadId, missing: u64) {
        (**self).gap(thread, missing)
    }
    fn end(&mut self, cx: &EndCx<'_>) {
        (**self).end(cx)
    }
}

/// Runs several visitors over one pass.
impl<A: Visitor, B: Visitor> Visitor for (A, B) {
    fn start(&mut self, info: &ProcessInfo) {
        self.0.start(info);
        self.1.start(info);
    }
    fn event(&mut self, cx: &EventCx<'_>) {
        self.0.event(cx);
        self.1.event(cx);
    }
    fn gap(&mut self, thread: ThreadId, missing: u64) {
        self.0.gap(thread, missing);
        self.1.gap(thread, missing);
    }
    fn end(&mut self, cx: &EndCx<'_>) {
        self.0.end(cx);
        self.1.end(cx);
    }
}

/// Progress of a read, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes read so far.
    pub bytes: u64,
    /// Total bytes, when known.
    pub total_bytes: Option<u64>,
}

/// How to read.
pub struct ReadOptions<'p> {
    /// Bytes of event batches held for reordering across threads (default 32 MiB).
    /// A batch that arrives after the window has moved past its events is delivered with
    /// [`EventCx::late`] set.
    pub window_bytes: usize,
    /// Called every few megabytes.
    pub progress: Option<&'p mut dyn FnMut(Progress)>,
}

impl Default for ReadOptions<'_> {
    fn default() -> Self {
        ReadOptions {
            window_bytes: 32 << 20,
            progress: None,
        }
    }
}

impl std::fmt::Debug for ReadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOptions")
            .field("window_bytes", &self.window_bytes)
            .finish_non_exhaustive()
    }
}

/// Counts of what was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Whole batches read.
    pub batches: u64,
    /// Event batches read.
    pub event_batches: u64,
    /// Events delivered.
    pub events: u64,
    /// Bytes read, through the end of the last whole batch.
    pub bytes: u64,
    /// Events delivered out of time order (see [`EventCx::late`]).
    pub late_events: u64,
    /// Batches missing from threads' sequences.
    pub missing_batches: u64,
    /// Events of kinds this reader does not know, skipped.
    pub skipped_unknown: u64,
}

/// The result of reading a whole trace, or as much of it as was whole.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    /// The file header.
    pub info: ProcessInfo,
    /// What was read.
    pub stats: ReadStats,
    /// Why reading stopped early, if it did; everything before was delivered.
    pub error: Option<TraceError>,
}

/// A decoder reading a trace file through a buffer.
pub(crate) type FileDecoder = Decoder<ReadInput<BufReader<File>>>;

/// A decoder over the trace file at `path`, with the file's size when known.
pub(crate) fn open_trace(path: &Path) -> Result<(FileDecoder, Option<u64>), AnalyzeError> {
    let file = File::open(path).map_err(|e| AnalyzeError::Open {
        path: path.display().to_string(),
        source: e,
    })?;
    let total = file.metadata().ok().map(|m| m.len());
    let decoder = Decoder::from_reader(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| AnalyzeError::Header(TraceError::new(e, ReadStats::default())))?;
    Ok((decoder, total))
}

/// Reads the trace at `path` into `visitor`.
///
/// Fails only if the file cannot be opened or its header is unreadable; damage later on
/// is reported in [`ReadOutcome::error`] after everything before it was delivered.
pub fn read_file(
    path: &Path,
    visitor: &mut dyn Visitor,
    opts: ReadOptions<'_>,
) -> Result<ReadOutcome, AnalyzeError> {
    let (decoder, total) = open_trace(path)?;
    Ok(drive(decoder, total, visitor, opts))
}

/// Reads a trace held in memory into `visitor`.
pub fn read_slice(
    bytes: &[u8],
    visitor: &mut dyn Visitor,
    opts: ReadOptions<'_>,
) -> Result<ReadOutcome, AnalyzeError> {
    let decoder = Decoder::new(bytes)
        .map_err(|e| AnalyzeError::Header(TraceError::new(e, ReadStats::default())))?;
    Ok(drive(decoder, Some(bytes.len() as u64), visitor, opts))
}

/// One event decoded ahead of delivery; an inline message or a stack's frames are kept as
/// a range of the payload (and the frame count).
#[derive(Clone, Copy)]
struct Pending {
    ts: u64,
    kind: EventKind<'static>,
    inline: (u32, u32),
    frames: u16,
}

struct QueuedBatch {
    payload: Vec<u8>,
    offset: u64,
    base_ts: u64,
}

#[derive(Default)]
struct Lane {
    thread: ThreadId,
    queue: VecDeque<QueuedBatch>,
    /// The front batch, decoded.
    front: Vec<Pending>,
    front_payload: Vec<u8>,
    front_pos: usize,
    in_heap: bool,
    stack: Vec<TaskId>,
    next_seq: Option<u32>,
}

/// Deepest task nesting tracked per thread; deeper begins are counted, not stacked.
const MAX_TASK_DEPTH: usize = 256;

struct Merger {
    lanes: Vec<Lane>,
    by_thread: HashMap<ThreadId, usize>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    buffered_bytes: usize,
    emitted_ts: u64,
    clock: Option<Clock>,
    stats: ReadStats,
    error: Option<DecodeError>,
}

impl Merger {
    fn lane(&mut self, thread: ThreadId) -> usize {
        if let Some(&i) = self.by_thread.get(&thread) {
            return i;
        }
        let i = self.lanes.len();
        self.lanes.push(Lane {
            thread,
            ..Lane::default()
        });
        self.by_thread.insert(thread, i);
        i
    }

    /// Decodes lane `i`'s next queued batch into its front, and schedules it.
    fn load_front(&mut self, i: usize) {
        loop {
            let lane = &mut self.lanes[i];
            let Some(b) = lane.queue.pop_front() else {
                return;
            };
            self.buffered_bytes -= b.payload.len();
            lane.front.clear();
            lane.front_pos = 0;
            let eb = fdr_format::EventBatch {
                offset: b.offset,
                thread: lane.thread,
                seq: 0,
                base_ts: b.base_ts,
                payload: &b.payload,
            };
            let mut events = eb.events();
            for e in &mut events {
                match e {
                    Ok(Event { ts, kind }) => {
                        let frames = match kind {
                            EventKind::Stack { frames, .. } => frames.len() as u16,
                            _ => 0,
                        };
                        let (kind, inline) = detach(kind, &b.payload);
                        lane.front.push(Pending {
                            ts,
                            kind,
                            inline,
                            frames,
                        });
                    }
                    Err(e) => {
                        // The batch's checksum matched, so this is a writer bug or crafted
                        // input: keep the events before it, report it, read no further.
                        if self.error.is_none() {
                            self.error = Some(e);
                        }
                        break;
                    }
                }
            }
            self.stats.skipped_unknown += events.skipped_unknown();
            lane.front_payload = b.payload;
            if let Some(p) = lane.front.first() {
                self.heap.push(Reverse((p.ts, i)));
                lane.in_heap = true;
                return;
            }
        }
    }

    fn push_batch(
        &mut self,
        thread: ThreadId,
        seq: u32,
        base_ts: u64,
        offset: u64,
        payload: &[u8],
    ) -> u64 {
        let i = self.lane(thread);
        let lane = &mut self.lanes[i];
        let missing = match lane.next_seq {
            Some(n) if seq > n => (seq - n) as u64,
            _ => 0,
        };
        lane.next_seq = Some(seq.wrapping_add(1));
        lane.queue.push_back(QueuedBatch {
            payload: payload.to_vec(),
            offset,
            base_ts,
        });
        self.buffered_bytes += payload.len();
        if !self.lanes[i].in_heap {
            self.load_front(i);
        }
        missing
    }

    /// Delivers events in time order while `keep_going` says so.
    fn emit(
        &mut self,
        tables: &Tables,
        visitor: &mut dyn Visitor,
        keep_going: &dyn Fn(&Merger) -> bool,
    ) {
        while keep_going(self) {
            let Some(Reverse((_, i))) = self.heap.pop() else {
                return;
            };
            let clock = *self.clock.get_or_insert_with(|| {
                let first = self.lanes[i].front[self.lanes[i].front_pos].ts;
                Clock::new(first, tables.clock())
            });
            let lane = &mut self.lanes[i];
            let p = lane.front[lane.front_pos];
            lane.front_pos += 1;
            let kind = match p.kind {
                EventKind::Log { category, .. } if is_inline(&p.kind) => {
                    let (s, n) = (p.inline.0 as usize, p.inline.1 as usize);
                    EventKind::Log {
                        category,
                        message: Message::Inline(&lane.front_payload[s..s + n]),
                    }
                }
                EventKind::Stack {
                    thread,
                    cause,
                    truncated,
                    ..
                } => {
                    let (s, n) = (p.inline.0 as usize, p.inline.1 as usize);
                    let bytes = &lane.front_payload[s..s + n];
                    EventKind::Stack {
                        thread,
                        cause,
                        truncated,
                        // Decoded and validated before it was detached.
                        frames: StackFrames::from_encoded(bytes, p.frames as usize)
                            .unwrap_or(StackFrames::EMPTY),
                    }
                }
                k => k,
            };
            let ts = p.ts;
            let late = ts < self.emitted_ts;
            self.emitted_ts = self.emitted_ts.max(ts);
            let task = apply_task(&mut lane.stack, &kind);
            self.stats.events += 1;
            self.stats.late_events += late as u64;
            visitor.event(&EventCx {
                thread: lane.thread,
                ts,
                ns: clock.ns(ts),
                kind,
                task,
                late,
                tables,
                clock: &clock,
            });
            if lane.front_pos < lane.front.len() {
                let next = lane.front[lane.front_pos].ts;
                self.heap.push(Reverse((next, i)));
            } else {
                lane.in_heap = false;
                self.load_front(i);
            }
        }
    }
}

fn is_inline(k: &EventKind<'_>) -> bool {
    matches!(
        k,
        EventKind::Log {
            message: Message::Inline(_),
            ..
        }
    )
}

/// Replaces a borrowed inline message by its range in `payload`.
fn detach(kind: EventKind<'_>, payload: &[u8]) -> (EventKind<'static>, (u32, u32)) {
    match kind {
        EventKind::Log {
            category,
            message: Message::Inline(text),
        } => {
            let start = text.as_ptr() as usize - payload.as_ptr() as usize;
            (
                EventKind::Log {
                    category,
                    message: Message::Inline(&[]),
                },
                (start as u32, text.len() as u32),
            )
        }
        EventKind::RegionBegin { name } => (EventKind::RegionBegin { name }, (0, 0)),
        EventKind::RegionEnd { name } => (EventKind::RegionEnd { name }, (0, 0)),
        EventKind::Log {
            category,
            message: Message::Interned(m),
        } => (
            EventKind::Log {
                category,
                message: Message::Interned(m),
            },
            (0, 0),
        ),
        EventKind::ThreadStart => (EventKind::ThreadStart, (0, 0)),
        EventKind::ThreadEnd => (EventKind::ThreadEnd, (0, 0)),
        EventKind::TaskCreate {
            task,
            parent,
            name,
            site,
        } => (
            EventKind::TaskCreate {
                task,
                parent,
                name,
                site,
            },
            (0, 0),
        ),
        EventKind::PollStart { task } => (EventKind::PollStart { task }, (0, 0)),
        EventKind::PollEnd { task, ready } => (EventKind::PollEnd { task, ready }, (0, 0)),
        EventKind::Wake { task, waker } => (EventKind::Wake { task, waker }, (0, 0)),
        EventKind::TaskDrop { task } => (EventKind::TaskDrop { task }, (0, 0)),
        EventKind::UserTaskBegin { task, parent, name } => {
            (EventKind::UserTaskBegin { task, parent, name }, (0, 0))
        }
        EventKind::UserTaskEnd { task } => (EventKind::UserTaskEnd { task }, (0, 0)),
        EventKind::BlockBegin { reason, site } => (EventKind::BlockBegin { reason, site }, (0, 0)),
        EventKind::BlockEnd => (EventKind::BlockEnd, (0, 0)),
        EventKind::Metric { name, value } => (EventKind::Metric { name, value }, (0, 0)),
        EventKind::OtelLink {
            task,
            trace_id,
            span_id,
        } => (
            EventKind::OtelLink {
                task,
                trace_id,
                span_id,
            },
            (0, 0),
        ),
        EventKind::Loss {
            reason,
            events,
            bytes,
        } => (
            EventKind::Loss {
                reason,
                events,
                bytes,
            },
            (0, 0),
        ),
        EventKind::Park => (EventKind::Park, (0, 0)),
        EventKind::Unpark => (EventKind::Unpark, (0, 0)),
        EventKind::OsSample {
            thread,
            cause,
            cpu_ns,
            runq_ns,
            timeslices,
            state,
        } => (
            EventKind::OsSample {
                thread,
                cause,
                cpu_ns,
                runq_ns,
                timeslices,
                state,
            },
            (0, 0),
        ),
        EventKind::Stack {
            thread,
            cause,
            truncated,
            frames,
        } => {
            let bytes = frames.encoded();
            let start = bytes.as_ptr() as usize - payload.as_ptr() as usize;
            (
                EventKind::Stack {
                    thread,
                    cause,
                    truncated,
                    frames: StackFrames::EMPTY,
                },
                (start as u32, bytes.len() as u32),
            )
        }
        EventKind::AsyncRegionBegin { region, task, name } => {
            (EventKind::AsyncRegionBegin { region, task, name }, (0, 0))
        }
        EventKind::AsyncRegionEnd { region, task } => {
            (EventKind::AsyncRegionEnd { region, task }, (0, 0))
        }
    }
}

/// Updates a thread's task stack for `kind`; returns the task the event belongs to.
fn apply_task(stack: &mut Vec<TaskId>, kind: &EventKind<'_>) -> TaskId {
    match *kind {
        EventKind::PollStart { task } | EventKind::UserTaskBegin { task, .. } => {
            if stack.len() < MAX_TASK_DEPTH {
                stack.push(task);
            }
            task
        }
        EventKind::PollEnd { task, .. } | EventKind::UserTaskEnd { task } => {
            if let Some(pos) = stack.iter().rposition(|&t| t == task) {
                stack.truncate(pos);
            }
            task
        }
        _ => stack.last().copied().unwrap_or(TaskId::NONE),
    }
}

fn drive<I: Input>(
    mut decoder: Decoder<I>,
    total_bytes: Option<u64>,
    visitor: &mut dyn Visitor,
    mut opts: ReadOptions<'_>,
) -> ReadOutcome {
    let info = decoder.process_info().clone();
    visitor.start(&info);
    let mut tables = Tables::new();
    let mut m = Merger {
        lanes: Vec::new(),
        by_thread: HashMap::new(),
        heap: BinaryHeap::new(),
        buffered_bytes: 0,
        emitted_ts: 0,
        clock: None,
        stats: ReadStats::default(),
        error: None,
    };
    let window = opts.window_bytes.max(1);
    let mut last_progress = 0u64;
    loop {
        let bytes_before = decoder.stats().bytes;
        let Some(batch) = decoder.next_batch() else {
            break;
        };
        match batch {
            Err(e) => {
                m.error = Some(e);
                break;
            }
            Ok(Batch::Table(t)) => {
                if let Err(e) = tables.apply(&t) {
                    m.error = Some(e);
                    break;
                }
            }
            Ok(Batch::Events(b)) => {
                m.stats.event_batches += 1;
                let missing = m.push_batch(b.thread, b.seq, b.base_ts, b.offset, b.payload);
                if missing > 0 {
                    m.stats.missing_batches += missing;
                    visitor.gap(b.thread, missing);
                }
            }
        }
        m.stats.batches += 1;
        m.stats.bytes = decoder.stats().bytes.max(bytes_before);
        if m.buffered_bytes > window {
            m.emit(&tables, visitor, &|m| m.buffered_bytes > window / 2);
        }
        if m.error.is_some() {
            break;
        }
        if let Some(p) = opts.progress.as_mut()
            && m.stats.bytes - last_progress >= 4 << 20
        {
            last_progress = m.stats.bytes;
            p(Progress {
                bytes: m.stats.bytes,
                total_bytes,
            });
        }
    }
    m.emit(&tables, visitor, &|_| true);
    let clock = m.clock.unwrap_or_else(|| Clock::new(0, tables.clock()));
    let last_ts = m.emitted_ts;
    visitor.end(&EndCx {
        last_ts,
        last_ns: clock.ns(last_ts),
        tables: &tables,
        clock: &clock,
        stats: &m.stats,
    });
    if let Some(p) = opts.progress.as_mut() {
        p(Progress {
            bytes: m.stats.bytes,
            total_bytes,
        });
    }
    let stats = m.stats;
    ReadOutcome {
        info,
        stats,
        error: m.error.map(|e| TraceError::new(e, stats)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdr_format::testing::sample_trace;

    struct Collect(Vec<(u64, ThreadId, TaskId, bool)>);
    impl Visitor for Collect {
        fn event(&mut self, cx: &EventCx<'_>) {
            self.0.push((cx.ts, cx.thread, cx.task, cx.late));
        }
    }

    #[test]
    fn events_arrive_in_time_order_with_their_task() {
        let bytes = sample_trace();
        let mut c = Collect(Vec::new());
        let out = read_slice(&bytes, &mut c, ReadOptions::default()).unwrap();
        assert!(out.error.is_none());
        assert_eq!(out.stats.events, 6000);
        assert!(c.0.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(c.0.iter().all(|e| !e.3));
        // Every sample event happens inside a user task.
        assert!(c.0.iter().all(|e| e.2 != TaskId::NONE));
    }

    #[test]
    fn a_small_window_still_delivers_every_event() {
        let bytes = sample_trace();
        let mut c = Collect(Vec::new());
        let opts = ReadOptions {
            window_bytes: 1,
            progress: None,
        };
        let out = read_slice(&bytes, &mut c, opts).unwrap();
        assert_eq!(out.stats.events, 6000);
        // The sample writes each thread's batches in turn, so a one-byte window must
        // deliver some of them late, and say so.
        assert!(out.stats.late_events > 0);
    }

    #[test]
    fn damage_stops_with_offset_after_delivering_the_prefix() {
        let mut bytes = sample_trace();
        let cut = bytes.len() / 2;
        bytes.truncate(cut);
        let mut c = Collect(Vec::new());
        let out = read_slice(&bytes, &mut c, ReadOptions::default()).unwrap();
        let err = out.error.expect("a cut trace is an error");
        assert!(err.offset <= cut as u64 && err.offset > 0);
        assert_eq!(c.0.len() as u64, out.stats.events);
        assert!(out.stats.events > 1000);
        assert!(err.to_string().contains("kept"));
    }
}
