//! The streaming event API: every event of a trace, in time order, with its thread, the
//! task current on that thread, and the tables that resolve its ids.
//!
//! Batches are read one at a time (from a file through a buffered reader, or from a slice),
//! kept in a bounded reorder window, and merged across threads by timestamp; each thread's
//! batch being delivered is decoded a few dozen events ahead, into a buffer it reuses. Memory follows the window and
//! the live threads, never the trace length: the window counts every payload byte held,
//! the first [`MAX_THREADS`] threads are tracked (later threads'
//! batches are skipped and counted in [`ReadStats`]), and the tables keep what
//! [`TABLE_LIMITS`] allows.
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
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use fdr_format::decode::{Input, ReadInput};
use fdr_format::{
    Batch, ClockSync, DecodeError, Decoder, EventBatch, EventKind, Kind, ProcessInfo, RawEvent,
    TableBatch, Tables, TaskId, ThreadId,
};

use crate::error::{AnalyzeError, TraceError};
use crate::limits::{DistinctCount, MAX_THREADS, StackBudget, TABLE_LIMITS};

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
        scale(ticks.saturating_sub(self.origin_ticks), self.ns_per_tick)
    }

    /// A tick count as nanoseconds.
    #[inline]
    pub fn dur_ns(&self, ticks: u64) -> u64 {
        scale(ticks, self.ns_per_tick)
    }
}

/// `(ticks as f64 * factor) as u64`, through the signed conversions (one instruction each,
/// where the unsigned ones take a dozen) whenever both values fit an `i64`: there the two
/// round and truncate alike, so the result is the same.
#[inline]
fn scale(ticks: u64, factor: f64) -> u64 {
    const TWO_63: f64 = (1u64 << 63) as f64;
    if ticks < 1 << 63 {
        let r = ticks as i64 as f64 * factor;
        if (0.0..TWO_63).contains(&r) {
            return r as i64 as u64;
        }
    }
    (ticks as f64 * factor) as u64
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
    /// The trace's final tables, handed over after [`Visitor::end`] for a visitor that
    /// keeps them (dropped by default), so they are never copied.
    fn take_tables(&mut self, _tables: Tables) {}
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
    fn take_tables(&mut self, tables: Tables) {
        (**self).take_tables(tables)
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
    fn take_tables(&mut self, tables: Tables) {
        self.0.take_tables(tables.clone());
        self.1.take_tables(tables);
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
    /// Bytes of event batches held for reordering across threads (default 32 MiB), the
    /// batches being delivered included. A batch that arrives after the window has moved
    /// past its events is delivered with [`EventCx::late`] set.
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
    /// Distinct threads past the first [`MAX_THREADS`] whose batches were skipped
    /// (counted exactly up to [`MAX_UNTRACKED_THREADS_COUNTED`](crate::limits::MAX_UNTRACKED_THREADS_COUNTED)).
    pub untracked_threads: u64,
    /// Their batches, skipped.
    pub untracked_batches: u64,
    /// Their batches' bytes (headers included).
    pub untracked_bytes: u64,
    /// Task begins (poll starts, user-task begins) not made current on their thread
    /// because it already had [`MAX_DEPTH`](crate::limits::MAX_DEPTH) tasks open, or the
    /// task stacks were at their memory bound.
    pub unstacked_tasks: u64,
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
    Ok((decode_reader(file)?, total))
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
    if crate::pipeline::worth_it(total) {
        return Ok(crate::pipeline::drive(decoder, total, visitor, opts));
    }
    Ok(drive(decoder, total, visitor, opts))
}

/// Reads a trace from any byte stream (standard input, a pipe, a socket) into `visitor`,
/// in one pass: nothing is seeked and memory is bounded as for a file. `total_bytes`, when
/// known, is the stream's length, for progress only.
///
/// Fails only if the header is unreadable; a read error later on is reported in
/// [`ReadOutcome::error`] (its kind [`fdr_format::ErrorKind::Io`]) after everything
/// before it was delivered.
pub fn read_reader<R: Read>(
    reader: R,
    total_bytes: Option<u64>,
    visitor: &mut dyn Visitor,
    opts: ReadOptions<'_>,
) -> Result<ReadOutcome, AnalyzeError> {
    Ok(drive(decode_reader(reader)?, total_bytes, visitor, opts))
}

/// A decoder over a byte stream, through a buffer.
pub(crate) fn decode_reader<R: Read>(
    reader: R,
) -> Result<Decoder<ReadInput<BufReader<R>>>, AnalyzeError> {
    Decoder::from_reader(BufReader::with_capacity(1 << 20, reader))
        .map_err(|e| AnalyzeError::Header(TraceError::new(e, ReadStats::default())))
}

/// Reads a trace held in memory into `visitor`.
pub fn read_slice(
    bytes: &[u8],
    visitor: &mut dyn Visitor,
    opts: ReadOptions<'_>,
) -> Result<ReadOutcome, AnalyzeError> {
    let decoder = Decoder::new(bytes)
        .map_err(|e| AnalyzeError::Header(TraceError::new(e, ReadStats::default())))?;
    let total = Some(bytes.len() as u64);
    if crate::pipeline::worth_it(total) {
        return Ok(crate::pipeline::drive(decoder, total, visitor, opts));
    }
    Ok(drive(decoder, total, visitor, opts))
}

/// A lane's next event, decoded ahead of delivery: a small value whose borrowed bytes (an
/// inline message, a rarer kind's body) are a range of the lane's front payload from where
/// its run was decoded.
pub(crate) type Pending = RawEvent;

struct QueuedBatch {
    payload: Vec<u8>,
    offset: u64,
    base_ts: u64,
}

/// One thread: its queued batches, the batch being delivered (decoded one event ahead),
/// its task stack and its sequence check.
#[derive(Default)]
struct Lane {
    thread: ThreadId,
    queue: VecDeque<QueuedBatch>,
    /// The batch being delivered.
    front: Vec<u8>,
    /// Its header's offset in the input.
    front_offset: u64,
    /// Bytes of it decoded.
    pos: usize,
    /// Where the current run was decoded from: its events' byte ranges start there.
    run_base: usize,
    /// Timestamp of the last event decoded (the next one's delta base).
    ts: u64,
    /// Events of the front batch decoded ahead, in order; `run[run_pos..]` are still to
    /// deliver, and `run[run_pos]` is the lane's next event (a lane with one is in the
    /// heap, unless it is the lane being delivered). Inline payloads are ranges of
    /// `front`, so a run never crosses into the next batch.
    run: Vec<Pending>,
    run_pos: usize,
    /// A malformed event the run stopped at: reported when delivery reaches it, as if it
    /// were decoded one event ahead.
    run_error: Option<DecodeError>,
    stack: Vec<TaskId>,
    next_seq: Option<u32>,
}

/// Events a lane decodes ahead in one run (the first [`RUN_LANES`] lanes; the others one
/// at a time): decoding a run in one loop keeps the decoder's state in registers and the
/// events it writes out of the way of the ones being read. Bounds the runs' memory to
/// `RUN_LANES * RUN_EVENTS` events plus one per other lane.
const RUN_EVENTS: usize = 32;
/// Lanes that decode [`RUN_EVENTS`] events ahead.
const RUN_LANES: usize = 1024;

/// Decodes up to `max` events of `lane`'s front batch into its (empty) run, from its
/// decoding position on.
fn decode_run(lane: &mut Lane, max: usize, skipped_unknown: &mut u64) {
    if lane.run.capacity() < max {
        lane.run.reserve_exact(max);
    }
    lane.run_base = lane.pos;
    let batch = EventBatch {
        offset: lane.front_offset + lane.pos as u64,
        thread: lane.thread,
        seq: 0,
        base_ts: lane.ts,
        payload: &lane.front[lane.pos..],
    };
    let mut events = batch.events();
    let run = &mut lane.run;
    let decoded = events.decode_raw_up_to(max, |e| run.push(e));
    // The batch's checksum matched, so this is a writer bug or crafted input: keep the
    // events before it, report it, read no further (the rest of the batch counts as
    // decoded).
    if let Err(e) = decoded {
        lane.run_error = Some(e);
    }
    lane.pos += events.bytes_decoded();
    lane.ts = events.last_ts();
    *skipped_unknown += events.skipped_unknown();
}

struct Merger {
    lanes: Vec<Lane>,
    by_thread: crate::fasthash::FastMap<ThreadId, usize>,
    untracked: DistinctCount,
    /// Lanes with a next event, by [`heap_key`]: soonest first, ties to the lower lane.
    heap: BinaryHeap<Reverse<u128>>,
    /// Payload bytes queued or being delivered.
    buffered_bytes: usize,
    emitted_ts: u64,
    clock: Option<Clock>,
    stats: ReadStats,
    error: Option<DecodeError>,
    stacks: StackBudget,
    /// Payload buffers of delivered batches, reused for the next ones queued (at most
    /// [`MAX_SPARE_PAYLOADS`], each at most [`MAX_SPARE_PAYLOAD_BYTES`]).
    spare: Vec<Vec<u8>>,
}

/// Delivered batches' buffers kept for reuse.
const MAX_SPARE_PAYLOADS: usize = 8;
/// The largest buffer kept for reuse.
const MAX_SPARE_PAYLOAD_BYTES: usize = 256 << 10;

impl Merger {
    fn new() -> Self {
        Merger {
            lanes: Vec::new(),
            by_thread: Default::default(),
            untracked: DistinctCount::default(),
            heap: BinaryHeap::new(),
            buffered_bytes: 0,
            emitted_ts: 0,
            clock: None,
            stats: ReadStats::default(),
            error: None,
            stacks: StackBudget::default(),
            spare: Vec::new(),
        }
    }

    /// The lane of `thread`, made on first sight; `None` past [`MAX_THREADS`].
    fn lane(&mut self, thread: ThreadId) -> Option<usize> {
        if let Some(&i) = self.by_thread.get(&thread) {
            return Some(i);
        }
        if self.lanes.len() >= MAX_THREADS {
            return None;
        }
        let i = self.lanes.len();
        self.lanes.push(Lane {
            thread,
            ..Lane::default()
        });
        self.by_thread.insert(thread, i);
        Some(i)
    }

    /// Lane `i`'s next event, if it has one decoded.
    #[inline]
    fn head(&self, i: usize) -> Option<&Pending> {
        let lane = &self.lanes[i];
        lane.run.get(lane.run_pos)
    }

    /// Makes lane `i`'s next event ready: decodes a run of them when its run is used up,
    /// moving on to its next queued batch when the front one is done; the lane has no
    /// [`Merger::head`] when it has nothing more.
    #[inline]
    fn advance(&mut self, i: usize) {
        if self.head(i).is_none() {
            self.refill(i);
        }
    }

    /// [`Merger::advance`] past the end of a run.
    #[inline(never)]
    fn refill(&mut self, i: usize) {
        let run_events = if i < RUN_LANES { RUN_EVENTS } else { 1 };
        let lane = &mut self.lanes[i];
        // Bounded: every turn finds an event, decodes at least one byte, or drops a batch.
        loop {
            if lane.run_pos < lane.run.len() {
                return;
            }
            if let Some(e) = lane.run_error.take()
                && self.error.is_none()
            {
                self.error = Some(e);
            }
            if lane.pos < lane.front.len() {
                lane.run.clear();
                lane.run_pos = 0;
                decode_run(lane, run_events, &mut self.stats.skipped_unknown);
                continue;
            }
            self.buffered_bytes -= lane.front.len();
            let done = std::mem::take(&mut lane.front);
            if self.spare.len() < MAX_SPARE_PAYLOADS && done.capacity() <= MAX_SPARE_PAYLOAD_BYTES {
                self.spare.push(done);
            }
            let Some(b) = lane.queue.pop_front() else {
                return;
            };
            lane.front = b.payload;
            lane.front_offset = b.offset;
            lane.pos = 0;
            lane.ts = b.base_ts;
        }
    }

    /// Queues a batch; returns how many batches its thread's sequence skipped.
    fn push_batch(&mut self, b: &EventBatch<'_>) -> u64 {
        let Some(i) = self.lane(b.thread) else {
            self.stats.untracked_threads += u64::from(self.untracked.insert(b.thread.0));
            self.stats.untracked_batches += 1;
            self.stats.untracked_bytes +=
                (fdr_format::wire::BATCH_HEADER_LEN + b.payload.len()) as u64;
            return 0;
        };
        let lane = &mut self.lanes[i];
        let missing = match lane.next_seq {
            Some(n) if b.seq > n => u64::from(b.seq - n),
            _ => 0,
        };
        lane.next_seq = Some(b.seq.wrapping_add(1));
        let mut payload = self.spare.pop().unwrap_or_default();
        payload.clear();
        payload.extend_from_slice(b.payload);
        lane.queue.push_back(QueuedBatch {
            payload,
            offset: b.offset,
            base_ts: b.base_ts,
        });
        self.buffered_bytes += b.payload.len();
        if self.head(i).is_none() {
            self.advance(i);
            if let Some(p) = self.head(i) {
                self.heap.push(Reverse(heap_key(p.ts(), i)));
            }
        }
        missing
    }

    /// Delivers events in time order while `keep_going` says so.
    fn emit(
        &mut self,
        tables: &Tables,
        sync: Option<&ClockSync>,
        visitor: &mut impl Feed,
        keep_going: impl Fn(&Merger) -> bool,
    ) {
        if !keep_going(self) {
            return;
        }
        let Some(Reverse(first)) = self.heap.pop() else {
            return;
        };
        let (first_ts, mut i) = ((first >> 64) as u64, first as u64 as usize);
        // Time 0 is the first event delivered.
        let clock = *self.clock.get_or_insert_with(|| Clock::new(first_ts, sync));
        // Deliver lane `i` for as long as its next event comes before every other lane's
        // (ties go to the lower lane, as the heap orders them); then the heap's first lane
        // takes its place, and lane `i` goes into the heap in the same step (one sift).
        loop {
            {
                let lane = &mut self.lanes[i];
                let Some(p) = lane.run.get(lane.run_pos) else {
                    return;
                };
                let ts = p.ts();
                lane.run_pos += 1;
                let late = ts < self.emitted_ts;
                self.emitted_ts = self.emitted_ts.max(ts);
                let task = apply_task(&mut lane.stack, &mut self.stacks, &mut self.stats, p);
                self.stats.events += 1;
                self.stats.late_events += late as u64;
                visitor.deliver(
                    p,
                    &lane.front[lane.run_base..],
                    &Delivery {
                        thread: lane.thread,
                        ns: clock.ns(ts),
                        task,
                        late,
                        tables,
                        clock: &clock,
                    },
                );
            }
            // Lane `i`'s next event's time, its run refilled first if used up (one look at
            // the lane when it was not).
            let next_ts = match self.head(i) {
                Some(p) => Some(p.ts()),
                None => {
                    self.refill(i);
                    self.head(i).map(Pending::ts)
                }
            };
            let Some(next_ts) = next_ts else {
                // Lane `i` has nothing more for now: the heap's first lane is next.
                if !keep_going(self) {
                    return;
                }
                match self.heap.pop() {
                    Some(Reverse(k)) => i = k as u64 as usize,
                    None => return,
                }
                continue;
            };
            let key = Reverse(heap_key(next_ts, i));
            if !keep_going(self) {
                self.heap.push(key);
                return;
            }
            if let Some(mut first) = self.heap.peek_mut()
                && first.0 < key.0
            {
                i = std::mem::replace(&mut *first, key).0 as u64 as usize;
            }
        }
    }
}

/// Lane `lane`'s place in the merge's heap when its next event is at `ts`: the time, then
/// the lane, in one integer, so that ordering two lanes is one comparison.
#[inline]
fn heap_key(ts: u64, lane: usize) -> u128 {
    (u128::from(ts) << 64) | lane as u128
}

/// Updates a thread's task stack for `event`; returns the task the event belongs to.
#[inline]
fn apply_task(
    stack: &mut Vec<TaskId>,
    budget: &mut StackBudget,
    stats: &mut ReadStats,
    event: &Pending,
) -> TaskId {
    match event.which() {
        Kind::PollStart | Kind::UserTaskBegin => {
            let task = event.task();
            if !budget.push(stack, task) {
                stats.unstacked_tasks += 1;
            }
            task
        }
        Kind::PollEnd | Kind::UserTaskEnd => {
            let task = event.task();
            if let Some(pos) = stack.iter().rposition(|&t| t == task) {
                budget.truncate(stack, pos);
            }
            task
        }
        _ => stack.last().copied().unwrap_or(TaskId::NONE),
    }
}

/// What the reader hands its events and the rest to: by default ([`Visitor`]), it keeps the
/// tables and hands them to the visitor with each event. A reader feeding another thread
/// ([`crate::pipeline`]) keeps only their clock, hands each table batch on in order with
/// the events, and stops when that thread is gone.
pub(crate) trait Feed {
    /// Whether the reader keeps the tables (false: it checks each table batch, as applying
    /// it would, and follows its clock records).
    const KEEP_TABLES: bool = true;
    /// As [`Visitor::start`].
    fn start(&mut self, info: &ProcessInfo);
    /// A table batch, in order with the events delivered (also one the reader then stops at).
    fn table(&mut self, _batch: &TableBatch<'_>) {}
    /// Whether to stop reading (what was read is still delivered).
    fn cancelled(&self) -> bool {
        false
    }
    /// One event: `pending`, whose borrowed bytes are in `bytes`, as `d` says.
    fn deliver(&mut self, pending: &Pending, bytes: &[u8], d: &Delivery<'_>);
    /// As [`Visitor::gap`].
    fn gap(&mut self, thread: ThreadId, missing: u64);
    /// As [`Visitor::end`].
    fn end(&mut self, cx: &EndCx<'_>);
    /// As [`Visitor::take_tables`].
    fn take_tables(&mut self, tables: Tables);
}

/// What [`Feed::deliver`] gets with an event besides the event.
pub(crate) struct Delivery<'a> {
    pub(crate) thread: ThreadId,
    pub(crate) ns: u64,
    pub(crate) task: TaskId,
    pub(crate) late: bool,
    pub(crate) tables: &'a Tables,
    pub(crate) clock: &'a Clock,
}

impl Feed for &mut dyn Visitor {
    fn start(&mut self, info: &ProcessInfo) {
        (**self).start(info)
    }
    #[inline]
    fn deliver(&mut self, pending: &Pending, bytes: &[u8], d: &Delivery<'_>) {
        (**self).event(&EventCx {
            thread: d.thread,
            ts: pending.ts(),
            ns: d.ns,
            kind: pending.kind(bytes),
            task: d.task,
            late: d.late,
            tables: d.tables,
            clock: d.clock,
        });
    }
    fn gap(&mut self, thread: ThreadId, missing: u64) {
        (**self).gap(thread, missing)
    }
    fn end(&mut self, cx: &EndCx<'_>) {
        (**self).end(cx)
    }
    fn take_tables(&mut self, tables: Tables) {
        (**self).take_tables(tables)
    }
}

/// Checks a table batch's records as [`Tables::apply`] would, keeping only the last clock.
fn check_table(batch: &TableBatch<'_>, clock: &mut Option<ClockSync>) -> Result<(), DecodeError> {
    for r in batch.records() {
        if let fdr_format::TableRecord::Clock(c) = r? {
            *clock = Some(c);
        }
    }
    Ok(())
}

pub(crate) fn drive<I: Input, V: Feed>(
    mut decoder: Decoder<I>,
    total_bytes: Option<u64>,
    mut visitor: V,
    mut opts: ReadOptions<'_>,
) -> ReadOutcome {
    let info = decoder.process_info().clone();
    visitor.start(&info);
    let mut tables = Tables::with_limits(TABLE_LIMITS);
    // The clock records' last, when the tables are not kept.
    let mut sync: Option<ClockSync> = None;
    let mut m = Merger::new();
    let window = opts.window_bytes.max(1);
    let mut last_progress = 0u64;
    loop {
        if visitor.cancelled() {
            break;
        }
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
                let applied = if V::KEEP_TABLES {
                    tables.apply(&t)
                } else {
                    check_table(&t, &mut sync)
                };
                visitor.table(&t);
                if let Err(e) = applied {
                    m.error = Some(e);
                    break;
                }
            }
            Ok(Batch::Events(b)) => {
                m.stats.event_batches += 1;
                let missing = m.push_batch(&b);
                if missing > 0 {
                    m.stats.missing_batches += missing;
                    visitor.gap(b.thread, missing);
                }
            }
        }
        m.stats.batches += 1;
        m.stats.bytes = decoder.stats().bytes.max(bytes_before);
        if m.buffered_bytes > window {
            let sync = if V::KEEP_TABLES {
                tables.clock()
            } else {
                sync.as_ref()
            };
            m.emit(&tables, sync, &mut visitor, |m| {
                m.buffered_bytes > window / 2
            });
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
    let sync = if V::KEEP_TABLES {
        tables.clock()
    } else {
        sync.as_ref()
    };
    m.emit(&tables, sync, &mut visitor, |_| true);
    let clock = m.clock.unwrap_or_else(|| Clock::new(0, sync));
    let last_ts = m.emitted_ts;
    visitor.end(&EndCx {
        last_ts,
        last_ns: clock.ns(last_ts),
        tables: &tables,
        clock: &clock,
        stats: &m.stats,
    });
    visitor.take_tables(tables);
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
