//! Encoding: hot-path event writers, a batch encoder over a caller's buffer, table records,
//! and [`TraceWriter`], which frames batches into a trace file.
//!
//! The recorder drives the fixed-array writers ([`region_begin`], [`region_end`],
//! [`log_static`], the task writers [`task_create`], [`poll_start`], [`poll_end`], [`wake`],
//! [`task_drop`], and [`event_fixed`] for the rest): each writes one event at the start of
//! an array the caller reserved and returns its length, with no allocation and no bounds
//! checks left to fail. Their varint lengths are chosen by predictable branches
//! (`varint::put_fast`) and an extended kind's head is a constant byte.

use std::io::{self, Write};

use crate::checksum::batch_checksum;
use crate::event::{ClockSync, EventKind, Message, ProcessInfo, SiteId, StrId, TaskId, ThreadId};
use crate::varint::{self, put_fast};
use crate::wire::*;

#[inline(always)]
fn head(operand: u64, code: u8) -> u64 {
    (operand << CODE_BITS) | code as u64
}

/// Writes a region-begin event: `delta` ticks after the previous event, region `name`.
#[inline(always)]
pub fn region_begin(out: &mut [u8; MAX_SMALL_EVENT_LEN], delta: u64, name: StrId) -> usize {
    let n = put_fast(out, 0, delta);
    n + put_fast(out, n, head(name.0 as u64, CODE_REGION_BEGIN))
}

/// Writes a region-end event.
#[inline(always)]
pub fn region_end(out: &mut [u8; MAX_SMALL_EVENT_LEN], delta: u64, name: StrId) -> usize {
    let n = put_fast(out, 0, delta);
    n + put_fast(out, n, head(name.0 as u64, CODE_REGION_END))
}

/// Writes a log event whose message is an interned (static) string.
#[inline(always)]
pub fn log_static(
    out: &mut [u8; MAX_SMALL_EVENT_LEN],
    delta: u64,
    category: StrId,
    message: StrId,
) -> usize {
    let n = put_fast(out, 0, delta);
    let n = n + put_fast(out, n, head(category.0 as u64, CODE_LOG));
    n + put_fast(out, n, (message.0 as u64) << 1)
}

/// The one-byte head of an extended kind below 32 (a varint of `kind << 2 | CODE_EXT`).
const fn ext_head(kind: u64) -> u8 {
    let h = (kind << CODE_BITS) | CODE_EXT as u64;
    assert!(h < 0x80, "an extended kind's head must fit one varint byte");
    h as u8
}

const HEAD_TASK_CREATE: u8 = ext_head(EXT_TASK_CREATE);
const HEAD_POLL_START: u8 = ext_head(EXT_POLL_START);
const HEAD_POLL_END: u8 = ext_head(EXT_POLL_END);
const HEAD_WAKE: u8 = ext_head(EXT_WAKE);
const HEAD_TASK_DROP: u8 = ext_head(EXT_TASK_DROP);

/// Writes a poll-start event: `delta` ticks after the previous event, for `task`.
#[inline(always)]
pub fn poll_start(out: &mut [u8; MAX_SMALL_EVENT_LEN], delta: u64, task: TaskId) -> usize {
    // At most 10 + 1 + 10 bytes.
    let n = put_fast(out, 0, delta);
    out[n] = HEAD_POLL_START;
    n + 1 + put_fast(out, n + 1, task.0)
}

/// Writes a poll-end event; `ready`: the poll returned `Ready`.
#[inline(always)]
pub fn poll_end(
    out: &mut [u8; MAX_SMALL_EVENT_LEN],
    delta: u64,
    task: TaskId,
    ready: bool,
) -> usize {
    // At most 10 + 1 + 10 + 1 bytes.
    let n = put_fast(out, 0, delta);
    out[n] = HEAD_POLL_END;
    let n = n + 1 + put_fast(out, n + 1, task.0);
    out[n] = ready as u8;
    n + 1
}

/// Writes a wake event: `task` was woken by `waker` (`TaskId::NONE`: not a task). Two task
/// ids may take 10 bytes each, so this takes the larger fixed array.
#[inline(always)]
pub fn wake(out: &mut [u8; MAX_FIXED_EVENT_LEN], delta: u64, task: TaskId, waker: TaskId) -> usize {
    // At most 10 + 1 + 10 + 10 bytes.
    let n = put_fast(out, 0, delta);
    out[n] = HEAD_WAKE;
    let n = n + 1 + put_fast(out, n + 1, task.0);
    n + put_fast(out, n, waker.0)
}

/// Writes a task-drop event.
#[inline(always)]
pub fn task_drop(out: &mut [u8; MAX_SMALL_EVENT_LEN], delta: u64, task: TaskId) -> usize {
    let n = put_fast(out, 0, delta);
    out[n] = HEAD_TASK_DROP;
    n + 1 + put_fast(out, n + 1, task.0)
}

/// Writes a task-create event: `task`, child of `parent`, named `name`, spawned at `site`.
#[inline(always)]
pub fn task_create(
    out: &mut [u8; MAX_FIXED_EVENT_LEN],
    delta: u64,
    task: TaskId,
    parent: TaskId,
    name: StrId,
    site: SiteId,
) -> usize {
    // At most 10 + 1 + 10 + 10 + 5 + 5 bytes.
    let n = put_fast(out, 0, delta);
    out[n] = HEAD_TASK_CREATE;
    let n = n + 1 + put_fast(out, n + 1, task.0);
    let n = n + put_fast(out, n, parent.0);
    let n = n + put_fast(out, n, name.0 as u64);
    n + put_fast(out, n, site.0 as u64)
}

/// Bytes a log with an inline message of `msg_len` bytes takes at most.
pub const fn log_inline_max_len(msg_len: usize) -> usize {
    3 * MAX_VARINT_LEN + msg_len
}

/// Writes a log event with an inline (formatted) message into `out`, which must hold at
/// least [`log_inline_max_len`]`(message.len())` bytes; messages longer than
/// [`MAX_STRING_LEN`] are cut. Returns the bytes written, or `None` if `out` is too small.
pub fn log_inline(out: &mut [u8], delta: u64, category: StrId, message: &[u8]) -> Option<usize> {
    let message = &message[..message.len().min(MAX_STRING_LEN)];
    let mut c = Cursor::new(out);
    c.varint(delta)?;
    c.varint(head(category.0 as u64, CODE_LOG))?;
    c.varint(((message.len() as u64) << 1) | 1)?;
    c.bytes(message)?;
    Some(c.pos)
}

/// Writes any event except a log with an inline message (use [`log_inline`]) or a stack
/// (use [`encode_event`] with [`MAX_STACK_EVENT_LEN`] bytes) into a fixed-size array.
/// Returns the length written.
pub fn event_fixed(out: &mut [u8; MAX_FIXED_EVENT_LEN], delta: u64, kind: &EventKind<'_>) -> usize {
    debug_assert!(!matches!(
        kind,
        EventKind::Log {
            message: Message::Inline(_),
            ..
        } | EventKind::Stack { .. }
    ));
    // A fixed event is at most 10 (delta) + 10 (head) + 26 (otel ids) + 10 (task) bytes.
    encode_event(&mut out[..], delta, kind).unwrap_or(0)
}

/// Writes any event into `out`; `None` if it does not fit.
pub fn encode_event(out: &mut [u8], delta: u64, kind: &EventKind<'_>) -> Option<usize> {
    let mut c = Cursor::new(out);
    c.varint(delta)?;
    match *kind {
        EventKind::RegionBegin { name } => c.varint(head(name.0 as u64, CODE_REGION_BEGIN))?,
        EventKind::RegionEnd { name } => c.varint(head(name.0 as u64, CODE_REGION_END))?,
        EventKind::Log { category, message } => {
            c.varint(head(category.0 as u64, CODE_LOG))?;
            match message {
                Message::Interned(id) => c.varint((id.0 as u64) << 1)?,
                Message::Inline(text) => {
                    let text = &text[..text.len().min(MAX_STRING_LEN)];
                    c.varint(((text.len() as u64) << 1) | 1)?;
                    c.bytes(text)?;
                }
            }
        }
        EventKind::ThreadStart => c.ext(EXT_THREAD_START)?,
        EventKind::ThreadEnd => c.ext(EXT_THREAD_END)?,
        EventKind::TaskCreate {
            task,
            parent,
            name,
            site,
        } => {
            c.ext(EXT_TASK_CREATE)?;
            c.varint(task.0)?;
            c.varint(parent.0)?;
            c.varint(name.0 as u64)?;
            c.varint(site.0 as u64)?;
        }
        EventKind::PollStart { task } => {
            c.ext(EXT_POLL_START)?;
            c.varint(task.0)?;
        }
        EventKind::PollEnd { task, ready } => {
            c.ext(EXT_POLL_END)?;
            c.varint(task.0)?;
            c.varint(ready as u64)?;
        }
        EventKind::Wake { task, waker } => {
            c.ext(EXT_WAKE)?;
            c.varint(task.0)?;
            c.varint(waker.0)?;
        }
        EventKind::TaskDrop { task } => {
            c.ext(EXT_TASK_DROP)?;
            c.varint(task.0)?;
        }
        EventKind::UserTaskBegin { task, parent, name } => {
            c.ext(EXT_USER_TASK_BEGIN)?;
            c.varint(task.0)?;
            c.varint(parent.0)?;
            c.varint(name.0 as u64)?;
        }
        EventKind::UserTaskEnd { task } => {
            c.ext(EXT_USER_TASK_END)?;
            c.varint(task.0)?;
        }
        EventKind::BlockBegin { reason, site } => {
            c.ext(EXT_BLOCK_BEGIN)?;
            c.varint(reason.to_wire() as u64)?;
            c.varint(site.0 as u64)?;
        }
        EventKind::BlockEnd => c.ext(EXT_BLOCK_END)?,
        EventKind::Metric { name, value } => {
            c.ext(EXT_METRIC)?;
            c.varint(name.0 as u64)?;
            c.bytes(&value.to_le_bytes())?;
        }
        EventKind::OtelLink {
            task,
            trace_id,
            span_id,
        } => {
            c.ext(EXT_OTEL_LINK)?;
            c.varint(task.0)?;
            c.bytes(&trace_id)?;
            c.bytes(&span_id)?;
        }
        EventKind::Loss {
            reason,
            events,
            bytes,
        } => {
            c.ext(EXT_LOSS)?;
            c.varint(reason.to_wire() as u64)?;
            c.varint(events)?;
            c.varint(bytes)?;
        }
        EventKind::Park => c.ext(EXT_PARK)?,
        EventKind::Unpark => c.ext(EXT_UNPARK)?,
        EventKind::OsSample {
            thread,
            cause,
            cpu_ns,
            runq_ns,
            timeslices,
            state,
        } => c.sized(EXT_OS_SAMPLE, |c| {
            let flags = [
                (cpu_ns.is_some(), OS_HAS_CPU),
                (runq_ns.is_some(), OS_HAS_RUNQ),
                (timeslices.is_some(), OS_HAS_SLICES),
                (state.is_some(), OS_HAS_STATE),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |f, (_, bit)| f | bit);
            c.varint(thread.0 as u64)?;
            c.varint(cause.to_wire() as u64)?;
            c.varint(flags)?;
            for v in [cpu_ns, runq_ns, timeslices].into_iter().flatten() {
                c.varint(v)?;
            }
            if let Some(s) = state {
                c.bytes(&[s])?;
            }
            Some(())
        })?,
        EventKind::Stack {
            thread,
            cause,
            truncated,
            frames,
            age_ticks,
        } => c.sized(EXT_STACK, |c| {
            let mut flags = if truncated { STACK_TRUNCATED } else { 0 };
            if age_ticks.is_some() {
                flags |= STACK_HAS_AGE;
            }
            c.varint(thread.0 as u64)?;
            c.varint(cause.to_wire() as u64)?;
            c.varint(flags)?;
            c.varint(frames.len() as u64)?;
            c.bytes(frames.encoded())?;
            match age_ticks {
                Some(a) => c.varint(a),
                None => Some(()),
            }
        })?,
        EventKind::AsyncRegionBegin { region, task, name } => {
            c.sized(EXT_ASYNC_REGION_BEGIN, |c| {
                c.varint(region)?;
                c.varint(task.0)?;
                c.varint(name.0 as u64)
            })?
        }
        EventKind::AsyncRegionEnd { region, task } => c.sized(EXT_ASYNC_REGION_END, |c| {
            c.varint(region)?;
            c.varint(task.0)
        })?,
    }
    Some(c.pos)
}

/// A bounds-checked writer over a byte slice, for the paths that are not the hottest.
struct Cursor<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Cursor { out, pos: 0 }
    }

    #[inline]
    fn varint(&mut self, v: u64) -> Option<()> {
        let n = varint::len(v);
        let dst = self.out.get_mut(self.pos..self.pos + n)?;
        varint::put_slow(dst, v);
        self.pos += n;
        Some(())
    }

    #[inline]
    fn ext(&mut self, kind: u64) -> Option<()> {
        self.varint(head(kind, CODE_EXT))
    }

    /// A sized extended kind: the head, the body's byte count, the body `body` writes.
    fn sized(&mut self, kind: u64, body: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        // Bodies are bounded (a stack is at most MAX_STACK_FRAMES varints), so their
        // length takes at most three bytes: reserve them, write the body, then close up.
        const RESERVED: usize = 3;
        self.ext(kind)?;
        let len_at = self.pos;
        if self.out.len() < len_at + RESERVED {
            return None;
        }
        self.pos += RESERVED;
        body(self)?;
        let body_len = self.pos - len_at - RESERVED;
        let n = varint::len(body_len as u64);
        if n > RESERVED {
            return None;
        }
        self.out
            .copy_within(len_at + RESERVED..self.pos, len_at + n);
        varint::put_slow(&mut self.out[len_at..], body_len as u64);
        self.pos = len_at + n + body_len;
        Some(())
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        self.out
            .get_mut(self.pos..self.pos + b.len())?
            .copy_from_slice(b);
        self.pos += b.len();
        Some(())
    }
}

/// The batch is full: the event was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("batch buffer full")]
pub struct BatchFull;

/// Encodes one thread's events into a caller-provided buffer, delta-encoding timestamps
/// against the batch base. No allocation.
#[derive(Debug)]
pub struct BatchEncoder<'b> {
    buf: &'b mut [u8],
    len: usize,
    base_ts: u64,
    last_ts: u64,
}

impl<'b> BatchEncoder<'b> {
    /// A batch whose base timestamp is `base_ts`; events must not be earlier
    /// (an earlier timestamp is recorded as `base_ts`, or as the previous event's).
    pub fn new(buf: &'b mut [u8], base_ts: u64) -> Self {
        BatchEncoder {
            buf,
            len: 0,
            base_ts,
            last_ts: base_ts,
        }
    }

    /// Appends an event at `ts`.
    pub fn push(&mut self, ts: u64, kind: &EventKind<'_>) -> Result<(), BatchFull> {
        let delta = ts.saturating_sub(self.last_ts);
        let n = encode_event(&mut self.buf[self.len..], delta, kind).ok_or(BatchFull)?;
        self.len += n;
        self.last_ts = self.last_ts.max(ts);
        Ok(())
    }

    /// The batch's base timestamp.
    pub fn base_ts(&self) -> u64 {
        self.base_ts
    }

    /// The encoded payload so far.
    pub fn payload(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Number of payload bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Builds the payload of a table batch.
#[derive(Debug, Default, Clone)]
pub struct TableEncoder {
    buf: Vec<u8>,
}

impl TableEncoder {
    /// An empty table payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an interned string (cut to [`MAX_STRING_LEN`] bytes).
    pub fn string(&mut self, id: StrId, text: &str) -> &mut Self {
        let bytes = &text.as_bytes()[..text.len().min(MAX_STRING_LEN)];
        self.buf.push(REC_STRING);
        varint::push(&mut self.buf, id.0 as u64);
        varint::push(&mut self.buf, bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Adds a call site.
    pub fn site(&mut self, id: SiteId, file: StrId, line: u32, col: u32) -> &mut Self {
        self.buf.push(REC_SITE);
        for v in [id.0, file.0, line, col] {
            varint::push(&mut self.buf, v as u64);
        }
        self
    }

    /// Adds a thread.
    pub fn thread(&mut self, thread: ThreadId, os_tid: u64, name: &str) -> &mut Self {
        let name = &name.as_bytes()[..name.len().min(MAX_STRING_LEN)];
        self.buf.push(REC_THREAD);
        varint::push(&mut self.buf, thread.0 as u64);
        varint::push(&mut self.buf, os_tid);
        varint::push(&mut self.buf, name.len() as u64);
        self.buf.extend_from_slice(name);
        self
    }

    /// Adds an executable mapping of a module (path cut to [`MAX_STRING_LEN`] bytes, build
    /// id to [`MAX_BUILD_ID_LEN`]).
    pub fn module(
        &mut self,
        start: u64,
        end: u64,
        file_offset: u64,
        path: &[u8],
        build_id: &[u8],
    ) -> &mut Self {
        let path = &path[..path.len().min(MAX_STRING_LEN)];
        let build_id = &build_id[..build_id.len().min(MAX_BUILD_ID_LEN)];
        let mut body = Vec::with_capacity(32 + path.len() + build_id.len());
        for v in [start, end, file_offset, path.len() as u64] {
            varint::push(&mut body, v);
        }
        body.extend_from_slice(path);
        varint::push(&mut body, build_id.len() as u64);
        body.extend_from_slice(build_id);
        self.buf.push(REC_MODULE);
        varint::push(&mut self.buf, body.len() as u64);
        self.buf.extend_from_slice(&body);
        self
    }

    /// Adds a clock sync.
    pub fn clock(&mut self, c: &ClockSync) -> &mut Self {
        self.buf.push(REC_CLOCK);
        varint::push(&mut self.buf, c.ticks);
        varint::push(&mut self.buf, c.mono_ns);
        varint::push(&mut self.buf, c.wall_unix_ns);
        self.buf.extend_from_slice(&c.ticks_per_sec.to_le_bytes());
        self
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Empties the payload, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Builds a batch header; `payload` is what follows it.
pub fn batch_header(
    tag: u8,
    flags: u8,
    thread: ThreadId,
    seq: u32,
    base_ts: u64,
    payload: &[u8],
) -> [u8; BATCH_HEADER_LEN] {
    assert!(
        payload.len() <= MAX_BATCH_PAYLOAD as usize,
        "batch payload over MAX_BATCH_PAYLOAD"
    );
    let mut h = [0u8; BATCH_HEADER_LEN];
    h[0] = tag;
    h[1] = flags;
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..12].copy_from_slice(&thread.0.to_le_bytes());
    h[12..16].copy_from_slice(&seq.to_le_bytes());
    h[16..24].copy_from_slice(&base_ts.to_le_bytes());
    let sum = batch_checksum(&h[..BATCH_HEADER_CHECKED_LEN], payload);
    h[24..28].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Encodes the file header for `info`.
pub fn file_header(info: &ProcessInfo) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&info.pid.to_le_bytes());
    body.extend_from_slice(&info.start_unix_ns.to_le_bytes());
    let text = |body: &mut Vec<u8>, s: &str| {
        let b = &s.as_bytes()[..s.len().min(1024)];
        body.extend_from_slice(&(b.len() as u16).to_le_bytes());
        body.extend_from_slice(b);
    };
    for s in [&info.program, &info.service_version, &info.host] {
        text(&mut body, s);
    }
    // Minor version 2's identity fields, after the first version's.
    text(&mut body, &info.service);
    body.extend_from_slice(&info.process_start_unix_ns.to_le_bytes());
    text(&mut body, &info.fdr_version);
    text(&mut body, &info.build_id);
    let mut out = Vec::with_capacity(FILE_HEADER_FIXED_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
    out.extend_from_slice(&VERSION_MINOR.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let sum = batch_checksum(&[], &out[MAGIC.len()..]);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Frames batches into a trace file: header first, then batches, then the end marker.
///
/// Each batch is written with two `write_all` calls (header, payload) and never buffered
/// whole, so a writer over a socket streams.
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: W,
    batches: u64,
    bytes: u64,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the file header.
    pub fn new(mut out: W, info: &ProcessInfo) -> io::Result<Self> {
        let header = file_header(info);
        out.write_all(&header)?;
        Ok(TraceWriter {
            out,
            batches: 0,
            bytes: header.len() as u64,
        })
    }

    /// Writes a table batch; `full` marks a table boundary (decoding may start here).
    pub fn write_table(&mut self, table: &TableEncoder, full: bool) -> io::Result<()> {
        let flags = if full { TABLE_FLAG_FULL } else { 0 };
        self.write_batch(TAG_TABLE, flags, ThreadId(0), 0, 0, table.payload())
    }

    /// Writes one thread's event batch (`payload` as [`BatchEncoder`] or the recorder built it).
    /// A payload over [`MAX_BATCH_PAYLOAD`] bytes is refused with `InvalidInput`, unwritten.
    pub fn write_events(
        &mut self,
        thread: ThreadId,
        seq: u32,
        base_ts: u64,
        payload: &[u8],
    ) -> io::Result<()> {
        self.write_batch(TAG_EVENTS, 0, thread, seq, base_ts, payload)
    }

    fn write_batch(
        &mut self,
        tag: u8,
        flags: u8,
        thread: ThreadId,
        seq: u32,
        base_ts: u64,
        payload: &[u8],
    ) -> io::Result<()> {
        if payload.len() > MAX_BATCH_PAYLOAD as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "batch payload of {} bytes is over the {MAX_BATCH_PAYLOAD}-byte limit; nothing was written",
                    payload.len()
                ),
            ));
        }
        let h = batch_header(tag, flags, thread, seq, base_ts, payload);
        self.out.write_all(&h)?;
        self.out.write_all(payload)?;
        self.batches += 1;
        self.bytes += (h.len() + payload.len()) as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Batches written so far (not counting the end marker).
    pub fn batches_written(&self) -> u64 {
        self.batches
    }

    /// Writes the end marker, flushes, and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let mut payload = Vec::with_capacity(MAX_VARINT_LEN);
        varint::push(&mut payload, self.batches);
        self.write_batch(TAG_END, 0, ThreadId(0), 0, 0, &payload)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// The underlying writer (for flushing or inspection).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}
