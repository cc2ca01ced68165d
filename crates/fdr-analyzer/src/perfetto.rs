//! `fdr export --format perfetto`: a native Perfetto trace, the protobuf `Trace` message
//! (a stream of `TracePacket`s), which Perfetto UI and `trace_processor` open.
//!
//! Written as the trace streams, one packet per event, in the reader's time order:
//!
//! - a process track (`ProcessDescriptor`: pid, program) and, the first time a thread
//!   shows up, its thread track (`ThreadDescriptor`: pid, fdr's thread id, name); names
//!   that changed are written again at the end;
//! - slices on the thread track: regions, polls (`poll <task name>`), user tasks, blocking
//!   (`blocked: mutex|io|sleep|…`, with the site) and park, begun when they begin and ended
//!   when they end. A thread's slices always nest: an end whose begin is not the innermost
//!   open slice also ends the slices opened inside it, and slices still open when the
//!   trace ends are ended there (those ends carry `unfinished: true`);
//! - instants on the thread track for logs (named by category, with the message) and
//!   wakes (`wake <task name>`), each wake starting a flow that ends at the woken task's
//!   next poll, so the UI draws who woke whom;
//! - a process-scoped instant per recorder loss, and a counter track per metric (the
//!   recorder's periodic samples: `fdr_polls_total`, `fdr_lock_wait_seconds{quantile=..}`,
//!   the application's registered values, tokio's workers);
//! - an async track per task (a child of the process track, named by the task, so the UI
//!   groups a name's tasks): the task's life from create to drop, and its async regions
//!   on a child track (`phases`); its polls are on the threads that ran them (their `task`
//!   argument and the wake flows lead there), not written twice;
//! - the OpenTelemetry trace and span ids of a linked task (and of the tasks created under
//!   it) as `otel trace id` / `otel span id` arguments of its polls and its life;
//! - a clock snapshot relating the trace's time to the wall clock (`REALTIME`), so the UI
//!   shows absolute times.
//!
//! Event names, categories, argument names and repeated argument strings (sites, static
//! log messages) are interned on the one packet sequence (`interned_data` with
//! `sequence_flags`), so a name costs its bytes once. Timestamps are nanoseconds since the
//! trace's first event, converted from ticks by the reader's [`Clock`](crate::Clock), as
//! the chrome-json export does.
//!
//! Memory follows live threads, open slices (at most 256 deep per thread and
//! [`MAX_OPEN_SPAN_BYTES`] in all), live tasks (at most [`MAX_LIVE_TASKS`] named) and
//! distinct names (at most 65 536 interned per table and [`MAX_INTERNED_BYTES`] of them;
//! more are written inline), never the trace length; what is left out is counted in
//! [`PerfettoExport::truncated`].
//!
//! Field numbers are Perfetto's (`protos/perfetto/trace/trace_packet.proto`,
//! `track_event/track_event.proto`, `track_event/track_descriptor.proto`,
//! `track_event/process_descriptor.proto`, `track_event/thread_descriptor.proto`,
//! `track_event/counter_descriptor.proto`, `track_event/debug_annotation.proto`,
//! `interned_data/interned_data.proto`, `profiling/profile_common.proto`).

use std::collections::HashMap;
use std::io::Write;

use fdr_format::{EventKind, Message, ProcessInfo, StrId, Tables, TaskId, ThreadId};

use crate::limits::{
    MAX_INTERNED_BYTES, MAX_LIVE_TASKS, MAX_OPEN_SPAN_BYTES, StackBudget, Truncated, read_notes,
    table_notes,
};
use crate::stream::{EndCx, EventCx, Visitor};

/// A minimal protobuf encoder: varints, fixed-width and length-delimited fields, nested
/// messages with their length fixed up after they are written.
pub mod proto {
    /// Wire type of varint fields.
    pub const WIRE_VARINT: u8 = 0;
    /// Wire type of 64-bit fixed-width fields (`fixed64`, `double`).
    pub const WIRE_I64: u8 = 1;
    /// Wire type of length-delimited fields (strings, bytes, messages).
    pub const WIRE_LEN: u8 = 2;

    /// Appends `v` as an unsigned LEB128 varint.
    #[inline]
    pub fn push_varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    /// A message being encoded into a byte buffer.
    #[derive(Debug, Default, Clone)]
    pub struct ProtoWriter {
        buf: Vec<u8>,
    }

    impl ProtoWriter {
        /// An empty writer.
        pub fn new() -> Self {
            ProtoWriter::default()
        }

        /// The encoded bytes.
        pub fn bytes(&self) -> &[u8] {
            &self.buf
        }

        /// Empties the writer, keeping its buffer.
        pub fn clear(&mut self) {
            self.buf.clear();
        }

        /// Whether nothing was written.
        pub fn is_empty(&self) -> bool {
            self.buf.is_empty()
        }

        fn key(&mut self, field: u32, wire: u8) {
            push_varint(&mut self.buf, (u64::from(field) << 3) | u64::from(wire));
        }

        /// A `uint32`/`uint64`/enum field.
        pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
            self.key(field, WIRE_VARINT);
            push_varint(&mut self.buf, v);
            self
        }

        /// An `int32`/`int64` field (two's complement: a negative value takes ten bytes).
        pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
            self.uint(field, v as u64)
        }

        /// A `bool` field.
        pub fn boolean(&mut self, field: u32, v: bool) -> &mut Self {
            self.uint(field, u64::from(v))
        }

        /// A `fixed64` field.
        pub fn fixed64(&mut self, field: u32, v: u64) -> &mut Self {
            self.key(field, WIRE_I64);
            self.buf.extend_from_slice(&v.to_le_bytes());
            self
        }

        /// A `double` field.
        pub fn double(&mut self, field: u32, v: f64) -> &mut Self {
            self.fixed64(field, v.to_bits())
        }

        /// A `bytes` field.
        pub fn bytes_field(&mut self, field: u32, v: &[u8]) -> &mut Self {
            self.key(field, WIRE_LEN);
            push_varint(&mut self.buf, v.len() as u64);
            self.buf.extend_from_slice(v);
            self
        }

        /// A `string` field.
        pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
            self.bytes_field(field, v.as_bytes())
        }

        /// Appends fields already encoded (by another writer).
        pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
            self.buf.extend_from_slice(encoded);
            self
        }

        /// A nested message field whose body `body` writes. One byte is reserved for its
        /// length; a body of 128 bytes or more moves over to make room for a longer one.
        pub fn message(&mut self, field: u32, body: impl FnOnce(&mut Self)) -> &mut Self {
            self.key(field, WIRE_LEN);
            let at = self.buf.len();
            self.buf.push(0);
            body(self);
            let len = self.buf.len() - at - 1;
            if len < 0x80 {
                self.buf[at] = len as u8;
            } else {
                let mut prefix = Vec::with_capacity(10);
                push_varint(&mut prefix, len as u64);
                self.buf.splice(at..at + 1, prefix);
            }
            self
        }
    }
}

use proto::ProtoWriter;

/// Field numbers, each from the Perfetto `.proto` file its module names.
mod field {
    /// `protos/perfetto/trace/trace.proto`: `Trace`.
    pub(super) mod trace {
        pub(crate) const PACKET: u32 = 1;
    }
    /// `protos/perfetto/trace/trace_packet.proto`: `TracePacket`.
    pub(super) mod packet {
        pub(crate) const CLOCK_SNAPSHOT: u32 = 6;
        pub(crate) const TIMESTAMP: u32 = 8;
        pub(crate) const TRUSTED_PACKET_SEQUENCE_ID: u32 = 10;
        pub(crate) const TRACK_EVENT: u32 = 11;
        pub(crate) const INTERNED_DATA: u32 = 12;
        pub(crate) const SEQUENCE_FLAGS: u32 = 13;
        pub(crate) const TRACK_DESCRIPTOR: u32 = 60;
        pub(crate) const FIRST_PACKET_ON_SEQUENCE: u32 = 87;
        /// `SequenceFlags.SEQ_INCREMENTAL_STATE_CLEARED`.
        pub(crate) const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
        /// `SequenceFlags.SEQ_NEEDS_INCREMENTAL_STATE`.
        pub(crate) const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
    }
    /// `protos/perfetto/trace/clock_snapshot.proto`: `ClockSnapshot`, its `Clock`, and
    /// `protos/perfetto/common/builtin_clock.proto`: `BuiltinClock`.
    pub(super) mod clock {
        pub(crate) const CLOCKS: u32 = 1;
        pub(crate) const PRIMARY_TRACE_CLOCK: u32 = 2;
        pub(crate) const CLOCK_ID: u32 = 1;
        pub(crate) const TIMESTAMP: u32 = 2;
        pub(crate) const REALTIME: u64 = 1;
        pub(crate) const BOOTTIME: u64 = 6;
    }
    /// `protos/perfetto/trace/track_event/track_descriptor.proto`: `TrackDescriptor`.
    pub(super) mod track {
        pub(crate) const UUID: u32 = 1;
        pub(crate) const NAME: u32 = 2;
        pub(crate) const PROCESS: u32 = 3;
        pub(crate) const THREAD: u32 = 4;
        pub(crate) const PARENT_UUID: u32 = 5;
        pub(crate) const COUNTER: u32 = 8;
    }
    /// `protos/perfetto/trace/track_event/process_descriptor.proto`: `ProcessDescriptor`.
    pub(super) mod process {
        pub(crate) const PID: u32 = 1;
        pub(crate) const PROCESS_NAME: u32 = 6;
    }
    /// `protos/perfetto/trace/track_event/thread_descriptor.proto`: `ThreadDescriptor`.
    pub(super) mod thread {
        pub(crate) const PID: u32 = 1;
        pub(crate) const TID: u32 = 2;
        pub(crate) const THREAD_NAME: u32 = 5;
    }
    /// `protos/perfetto/trace/track_event/track_event.proto`: `TrackEvent`.
    pub(super) mod event {
        pub(crate) const CATEGORY_IIDS: u32 = 3;
        pub(crate) const DEBUG_ANNOTATIONS: u32 = 4;
        pub(crate) const TYPE: u32 = 9;
        pub(crate) const NAME_IID: u32 = 10;
        pub(crate) const TRACK_UUID: u32 = 11;
        pub(crate) const NAME: u32 = 23;
        pub(crate) const DOUBLE_COUNTER_VALUE: u32 = 44;
        pub(crate) const FLOW_IDS: u32 = 47;
        pub(crate) const TERMINATING_FLOW_IDS: u32 = 48;
        /// `Type.TYPE_SLICE_BEGIN`.
        pub(crate) const TYPE_SLICE_BEGIN: u64 = 1;
        /// `Type.TYPE_SLICE_END`.
        pub(crate) const TYPE_SLICE_END: u64 = 2;
        /// `Type.TYPE_INSTANT`.
        pub(crate) const TYPE_INSTANT: u64 = 3;
        /// `Type.TYPE_COUNTER`.
        pub(crate) const TYPE_COUNTER: u64 = 4;
    }
    /// `protos/perfetto/trace/track_event/debug_annotation.proto`: `DebugAnnotation`.
    pub(super) mod annotation {
        pub(crate) const NAME_IID: u32 = 1;
        pub(crate) const BOOL_VALUE: u32 = 2;
        pub(crate) const UINT_VALUE: u32 = 3;
        pub(crate) const STRING_VALUE: u32 = 6;
        pub(crate) const STRING_VALUE_IID: u32 = 17;
    }
    /// `protos/perfetto/trace/interned_data/interned_data.proto`: `InternedData`; its
    /// entries (`EventCategory`, `EventName`, `DebugAnnotationName` in track_event.proto and
    /// debug_annotation.proto, `InternedString` in profiling/profile_common.proto) all
    /// have `iid = 1` and the string as field 2.
    pub(super) mod interned {
        pub(crate) const EVENT_CATEGORIES: u32 = 1;
        pub(crate) const EVENT_NAMES: u32 = 2;
        pub(crate) const DEBUG_ANNOTATION_NAMES: u32 = 3;
        pub(crate) const DEBUG_ANNOTATION_STRING_VALUES: u32 = 29;
        pub(crate) const ENTRY_IID: u32 = 1;
        pub(crate) const ENTRY_STRING: u32 = 2;
    }
}

use field::{annotation as fa, event as fe, interned as fi, packet as fp};

/// The packet sequence every packet of the export belongs to.
pub const SEQUENCE_ID: u32 = 1;
/// The process track's uuid.
pub const PROCESS_TRACK_UUID: u64 = 1;
/// A thread's track uuid is this plus fdr's thread id.
pub const THREAD_TRACK_UUID_BASE: u64 = 16;
/// A metric's counter track uuid is this plus the metric's index (in order of appearance).
pub const COUNTER_TRACK_UUID_BASE: u64 = 1 << 40;
/// A task's async track uuid is this plus twice the task's index (in order of appearance);
/// its phases track (async regions) is the next uuid.
pub const TASK_TRACK_UUID_BASE: u64 = 1 << 41;

/// Most strings interned per table; past it (or past [`MAX_INTERNED_BYTES`] of them),
/// names and values are written inline.
const MAX_INTERNED: usize = 1 << 16;
/// Most counter tracks (one per metric name, [`MAX_INTERNED_BYTES`] of names at most);
/// samples of further metrics are dropped.
const MAX_COUNTERS: usize = 4096;

/// Event categories, interned in the first packet as iids 1, 2, ….
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cat {
    Region = 1,
    Poll,
    Task,
    Block,
    Park,
    Log,
    Wake,
    Loss,
    AsyncRegion,
}

const CATEGORIES: [&str; 9] = [
    "region",
    "poll",
    "task",
    "block",
    "park",
    "log",
    "wake",
    "loss",
    "async_region",
];

/// Argument names, interned in the first packet as iids 1, 2, ….
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    Task = 1,
    Ready,
    Site,
    Message,
    WokenTask,
    WakerTask,
    Reason,
    Events,
    Bytes,
    Thread,
    Unfinished,
    OtelTrace,
    OtelSpan,
    SpawnSite,
}

const ARG_NAMES: [&str; 14] = [
    "task",
    "ready",
    "site",
    "message",
    "woken task",
    "waker task",
    "reason",
    "events",
    "bytes",
    "thread",
    "unfinished",
    "otel trace id",
    "otel span id",
    "spawn site",
];

/// An argument value.
#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    Uint(u64),
    Bool(bool),
    /// A string that repeats (a site, a static message): interned.
    Interned(&'a str),
    /// A string that may not repeat (a formatted message): written inline.
    Inline(&'a str),
}

/// What a thread's open slice is, to match its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Region(StrId),
    Poll(TaskId),
    User(TaskId),
    Block,
    Park,
}

/// A task's async track: what is open on it and its phases track.
#[derive(Debug)]
struct TaskTrack {
    uuid: u64,
    /// Its life slice is open.
    life_open: bool,
    /// Async regions open on the phases track (region ids), when it was described.
    phases: Option<Vec<u64>>,
    /// OpenTelemetry ids, hex.
    otel: Option<(String, String)>,
}

#[derive(Debug)]
struct ThreadTrack {
    uuid: u64,
    /// The name last written in the thread's descriptor.
    name: String,
    stack: Vec<Open>,
}

/// Strings with an iid each, up to [`MAX_INTERNED`] of them and [`MAX_INTERNED_BYTES`].
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u64>,
    bytes: usize,
}

impl Interner {
    /// The iid of `s`, and whether it is new (to be written in this packet's
    /// interned data); `None` when the table is full.
    fn get(&mut self, s: &str) -> Option<(u64, bool)> {
        if let Some(&id) = self.ids.get(s) {
            return Some((id, false));
        }
        if self.ids.len() >= MAX_INTERNED || self.bytes + s.len() > MAX_INTERNED_BYTES {
            return None;
        }
        let id = self.ids.len() as u64 + 1;
        self.ids.insert(s.to_owned(), id);
        self.bytes += s.len();
        Some((id, true))
    }
}

/// One track event to write.
struct Ev<'a> {
    ns: u64,
    track: u64,
    ty: u64,
    cat: Option<Cat>,
    name: Option<&'a str>,
    args: &'a [(Arg, Val<'a>)],
    flow: Option<u64>,
    terminating_flow: Option<u64>,
    counter: Option<f64>,
}

impl<'a> Ev<'a> {
    fn new(ns: u64, track: u64, ty: u64) -> Self {
        Ev {
            ns,
            track,
            ty,
            cat: None,
            name: None,
            args: &[],
            flow: None,
            terminating_flow: None,
            counter: None,
        }
    }
}

/// Streams a trace out as a Perfetto protobuf trace.
pub struct PerfettoExport<W: Write> {
    out: W,
    packet: ProtoWriter,
    interned: ProtoWriter,
    scratch: String,
    pid: u32,
    threads: HashMap<ThreadId, ThreadTrack>,
    task_names: HashMap<TaskId, StrId>,
    /// The flow each woken task's next poll ends.
    wake_flows: HashMap<TaskId, u64>,
    next_flow_id: u64,
    names: Interner,
    values: Interner,
    counters: HashMap<String, u64>,
    counter_bytes: usize,
    tasks: HashMap<TaskId, TaskTrack>,
    next_task_track: u64,
    clock_written: bool,
    stacks: StackBudget,
    unnamed: u64,
    untracked_tasks: u64,
    /// Slices written on tasks' async tracks (begin and end pairs).
    pub task_slices: u64,
    /// Packets written.
    pub packets: u64,
    /// Slices written (begin and end pairs).
    pub slices: u64,
    /// Slices ended early: at an enclosing slice's end, or at the end of the trace.
    pub unfinished: u64,
    /// Begins not written: nested deeper than 256 on their thread or past the open-slice
    /// bound, or metrics past 4096 names.
    pub dropped: u64,
    /// What the export left out to stay within its memory limits, known at the end.
    pub truncated: Vec<Truncated>,
    /// Ends with no open begin on their thread (its begin came before the trace's window
    /// or was lost), skipped.
    pub unmatched: u64,
    /// Bytes written.
    pub bytes: u64,
    /// First write error (writing stops there).
    pub error: Option<std::io::Error>,
}

impl<W: Write> std::fmt::Debug for PerfettoExport<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfettoExport")
            .field("packets", &self.packets)
            .field("slices", &self.slices)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

fn thread_name(tables: &Tables, tid: ThreadId) -> String {
    tables
        .thread(tid)
        .map(|i| i.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("thread {}", tid.0))
}

impl<W: Write> PerfettoExport<W> {
    /// An exporter writing to `out`.
    pub fn new(out: W) -> Self {
        PerfettoExport {
            out,
            packet: ProtoWriter::new(),
            interned: ProtoWriter::new(),
            scratch: String::new(),
            pid: 0,
            threads: HashMap::new(),
            task_names: HashMap::new(),
            wake_flows: HashMap::new(),
            next_flow_id: 1,
            names: Interner::default(),
            values: Interner::default(),
            counters: HashMap::new(),
            counter_bytes: 0,
            tasks: HashMap::new(),
            next_task_track: 0,
            clock_written: false,
            stacks: StackBudget::default(),
            unnamed: 0,
            untracked_tasks: 0,
            task_slices: 0,
            truncated: Vec::new(),
            packets: 0,
            slices: 0,
            unfinished: 0,
            dropped: 0,
            unmatched: 0,
            bytes: 0,
            error: None,
        }
    }

    /// The writer, after the trace ended.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Frames the packet under construction as a `Trace.packet` field and writes it.
    fn flush_packet(&mut self) {
        let body = self.packet.bytes();
        let mut head = Vec::with_capacity(11);
        head.push(((field::trace::PACKET << 3) | u32::from(proto::WIRE_LEN)) as u8);
        proto::push_varint(&mut head, body.len() as u64);
        if self.error.is_none() {
            let r = self
                .out
                .write_all(&head)
                .and_then(|()| self.out.write_all(body));
            if let Err(e) = r {
                self.error = Some(e);
            }
        }
        self.bytes += (head.len() + body.len()) as u64;
        self.packets += 1;
        self.packet.clear();
    }

    /// A packet holding one track descriptor, written by `body`.
    fn descriptor(&mut self, ns: u64, body: impl FnOnce(&mut ProtoWriter)) {
        self.packet
            .uint(fp::TIMESTAMP, ns)
            .uint(fp::TRUSTED_PACKET_SEQUENCE_ID, u64::from(SEQUENCE_ID))
            .message(fp::TRACK_DESCRIPTOR, body);
        self.flush_packet();
    }

    /// The iid of event name `s`, adding it to this packet's interned data when new.
    fn name_iid(&mut self, s: &str) -> Option<u64> {
        let (id, new) = self.names.get(s)?;
        if new {
            entry(&mut self.interned, fi::EVENT_NAMES, id, s.as_bytes());
        }
        Some(id)
    }

    /// The iid of argument string `s`, adding it to this packet's interned data when new.
    fn value_iid(&mut self, s: &str) -> Option<u64> {
        let (id, new) = self.values.get(s)?;
        if new {
            entry(
                &mut self.interned,
                fi::DEBUG_ANNOTATION_STRING_VALUES,
                id,
                s.as_bytes(),
            );
        }
        Some(id)
    }

    fn write_event(&mut self, ev: &Ev<'_>) {
        // Resolve interned ids first: new entries go into this packet's interned data.
        self.interned.clear();
        let name = ev.name.map(|n| (n, self.name_iid(n)));
        // Events have at most four arguments; a fifth's string would be written inline.
        let mut value_ids = [None; 4];
        for (slot, (_, v)) in value_ids.iter_mut().zip(ev.args) {
            if let Val::Interned(s) = v {
                *slot = self.value_iid(s);
            }
        }
        let p = &mut self.packet;
        p.uint(fp::TIMESTAMP, ev.ns)
            .uint(fp::TRUSTED_PACKET_SEQUENCE_ID, u64::from(SEQUENCE_ID))
            .uint(fp::SEQUENCE_FLAGS, fp::SEQ_NEEDS_INCREMENTAL_STATE);
        if !self.interned.is_empty() {
            let interned = self.interned.bytes();
            p.message(fp::INTERNED_DATA, |m| {
                m.raw(interned);
            });
        }
        p.message(fp::TRACK_EVENT, |m| {
            m.uint(fe::TYPE, ev.ty).uint(fe::TRACK_UUID, ev.track);
            if let Some(c) = ev.cat {
                m.uint(fe::CATEGORY_IIDS, c as u64);
            }
            match name {
                Some((_, Some(iid))) => {
                    m.uint(fe::NAME_IID, iid);
                }
                Some((n, None)) => {
                    m.string(fe::NAME, n);
                }
                None => {}
            }
            for (i, (arg, v)) in ev.args.iter().enumerate() {
                m.message(fe::DEBUG_ANNOTATIONS, |a| {
                    a.uint(fa::NAME_IID, *arg as u64);
                    match *v {
                        Val::Uint(x) => {
                            a.uint(fa::UINT_VALUE, x);
                        }
                        Val::Bool(b) => {
                            a.boolean(fa::BOOL_VALUE, b);
                        }
                        Val::Interned(s) => match value_ids.get(i).copied().flatten() {
                            Some(iid) => {
                                a.uint(fa::STRING_VALUE_IID, iid);
                            }
                            None => {
                                a.string(fa::STRING_VALUE, s);
                            }
                        },
                        Val::Inline(s) => {
                            a.string(fa::STRING_VALUE, s);
                        }
                    }
                });
            }
            if let Some(f) = ev.flow {
                m.fixed64(fe::FLOW_IDS, f);
            }
            if let Some(f) = ev.terminating_flow {
                m.fixed64(fe::TERMINATING_FLOW_IDS, f);
            }
            if let Some(v) = ev.counter {
                m.double(fe::DOUBLE_COUNTER_VALUE, v);
            }
        });
        self.flush_packet();
    }

    /// The thread's track, described on first sight.
    fn thread(&mut self, tid: ThreadId, ns: u64, tables: &Tables) -> u64 {
        if let Some(t) = self.threads.get(&tid) {
            return t.uuid;
        }
        let uuid = THREAD_TRACK_UUID_BASE + u64::from(tid.0);
        let name = thread_name(tables, tid);
        self.describe_thread(ns, uuid, tid, &name);
        self.threads.insert(
            tid,
            ThreadTrack {
                uuid,
                name,
                stack: Vec::new(),
            },
        );
        uuid
    }

    fn describe_thread(&mut self, ns: u64, uuid: u64, tid: ThreadId, name: &str) {
        let pid = self.pid;
        self.descriptor(ns, |d| {
            d.uint(field::track::UUID, uuid)
                .message(field::track::THREAD, |t| {
                    t.int(field::thread::PID, i64::from(pid as i32))
                        .int(field::thread::TID, i64::from(tid.0))
                        .string(field::thread::THREAD_NAME, name);
                });
        });
    }

    /// Begins a slice on `tid`'s track.
    fn begin_slice(&mut self, tid: ThreadId, open: Open, ev: &Ev<'_>) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        if !self.stacks.push(&mut t.stack, open) {
            self.dropped += 1;
            return;
        }
        self.write_event(ev);
    }

    /// Ends the innermost open slice `open` on `tid`'s track (and any opened inside it).
    fn end_slice(&mut self, tid: ThreadId, open: Open, ns: u64, args: &[(Arg, Val<'_>)]) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        let Some(pos) = t.stack.iter().rposition(|o| *o == open) else {
            self.unmatched += 1;
            return;
        };
        let inner = t.stack.len() - pos - 1;
        self.stacks.truncate(&mut t.stack, pos);
        let track = t.uuid;
        for _ in 0..inner {
            self.end_unfinished(track, ns);
        }
        let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_END);
        ev.args = args;
        self.write_event(&ev);
        self.slices += 1;
    }

    fn end_unfinished(&mut self, track: u64, ns: u64) {
        let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_END);
        ev.args = &[(Arg::Unfinished, Val::Bool(true))];
        self.write_event(&ev);
        self.slices += 1;
        self.unfinished += 1;
    }

    /// `<prefix><task name>`, or `<prefix>task <id>` for a task whose creation the trace
    /// lacks, built in the scratch string (the caller gives it back).
    fn task_label(&mut self, prefix: &str, task: TaskId, tables: &Tables) -> String {
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        s.push_str(prefix);
        match self.task_names.get(&task) {
            Some(n) => s.push_str(&tables.name(*n)),
            None => {
                use std::fmt::Write as _;
                let _ = write!(s, "task {}", task.0);
            }
        }
        s
    }

    /// The clock snapshot: trace time `ns` is wall-clock `wall_unix_ns` (REALTIME).
    fn clock_snapshot(&mut self, ns: u64, wall_unix_ns: i128) {
        use field::clock as fc;
        let wall = u64::try_from(wall_unix_ns).unwrap_or(0);
        self.packet
            .uint(fp::TRUSTED_PACKET_SEQUENCE_ID, u64::from(SEQUENCE_ID))
            .message(fp::CLOCK_SNAPSHOT, |c| {
                c.message(fc::CLOCKS, |k| {
                    k.uint(fc::CLOCK_ID, fc::BOOTTIME).uint(fc::TIMESTAMP, ns);
                })
                .message(fc::CLOCKS, |k| {
                    k.uint(fc::CLOCK_ID, fc::REALTIME).uint(fc::TIMESTAMP, wall);
                })
                .uint(fc::PRIMARY_TRACE_CLOCK, fc::BOOTTIME);
            });
        self.flush_packet();
    }

    /// The task's async track, described and its life begun on first sight (`None` past
    /// [`MAX_LIVE_TASKS`] tracked at once).
    fn task_track(
        &mut self,
        task: TaskId,
        ns: u64,
        tables: &Tables,
        site: Option<fdr_format::SiteId>,
        otel: Option<(String, String)>,
    ) -> Option<u64> {
        if let Some(t) = self.tasks.get(&task) {
            return Some(t.uuid);
        }
        if task == TaskId::NONE {
            return None;
        }
        if self.tasks.len() >= MAX_LIVE_TASKS {
            self.untracked_tasks += 1;
            return None;
        }
        let uuid = TASK_TRACK_UUID_BASE + 2 * self.next_task_track;
        self.next_task_track += 1;
        let label = self.task_label("", task, tables);
        self.descriptor(ns, |d| {
            d.uint(field::track::UUID, uuid)
                .uint(field::track::PARENT_UUID, PROCESS_TRACK_UUID)
                .string(field::track::NAME, &label);
        });
        let site_name = site.map(|s| tables.site_name(s));
        let mut args = vec![(Arg::Task, Val::Uint(task.0))];
        if let Some(sn) = &site_name {
            args.push((Arg::SpawnSite, Val::Interned(sn)));
        }
        if let Some((t, sp)) = &otel {
            args.push((Arg::OtelTrace, Val::Inline(t)));
            args.push((Arg::OtelSpan, Val::Inline(sp)));
        }
        let mut ev = Ev::new(ns, uuid, fe::TYPE_SLICE_BEGIN);
        ev.cat = Some(Cat::Task);
        ev.name = Some(&label);
        ev.args = &args;
        self.write_event(&ev);
        self.scratch = label;
        self.tasks.insert(
            task,
            TaskTrack {
                uuid,
                life_open: true,
                phases: None,
                otel,
            },
        );
        Some(uuid)
    }

    /// Ends a slice on a task's track (or its phases track).
    fn end_task_slice(&mut self, track: u64, ns: u64, args: &[(Arg, Val<'_>)]) {
        let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_END);
        ev.args = args;
        self.write_event(&ev);
        self.task_slices += 1;
    }

    /// Ends everything open on a task's tracks: its phases (cut short), then its
    /// life (`unfinished` when the trace ends first).
    fn finish_task(&mut self, task: TaskId, ns: u64, unfinished: bool) {
        let Some(t) = self.tasks.remove(&task) else {
            return;
        };
        let cut = [(Arg::Unfinished, Val::Bool(true))];
        if let Some(open) = &t.phases {
            for _ in open {
                self.end_task_slice(t.uuid + 1, ns, &cut);
            }
        }
        if t.life_open {
            let mut args: Vec<(Arg, Val<'_>)> = Vec::new();
            if let Some((tr, sp)) = &t.otel {
                args.push((Arg::OtelTrace, Val::Inline(tr)));
                args.push((Arg::OtelSpan, Val::Inline(sp)));
            }
            if unfinished {
                args.push((Arg::Unfinished, Val::Bool(true)));
            }
            self.end_task_slice(t.uuid, ns, &args);
        }
    }
}

/// An interned-data entry: `{iid = 1, name/str = 2}`.
fn entry(w: &mut ProtoWriter, table: u32, iid: u64, s: &[u8]) {
    w.message(table, |e| {
        e.uint(fi::ENTRY_IID, iid).bytes_field(fi::ENTRY_STRING, s);
    });
}

/// `args` without its last entry (a task argument) when `task` is none.
fn task_args<'s, 'a>(task: TaskId, args: &'s [(Arg, Val<'a>)]) -> &'s [(Arg, Val<'a>)] {
    if task == TaskId::NONE {
        &args[..args.len() - 1]
    } else {
        args
    }
}

/// Blocking slice names by reason (wire value; 7: unknown), as chrome-json names them.
const BLOCKED: [&str; 8] = [
    "blocked: mutex",
    "blocked: rwlock",
    "blocked: condvar",
    "blocked: channel",
    "blocked: io",
    "blocked: sleep",
    "blocked: other",
    "blocked: unknown",
];

impl<W: Write> Visitor for PerfettoExport<W> {
    fn start(&mut self, info: &ProcessInfo) {
        self.pid = info.pid;
        let program = if info.program.is_empty() {
            "fdr trace"
        } else {
            info.program.as_str()
        };
        // The first packet: clears the sequence's incremental state, interns the fixed
        // categories and argument names, and describes the process track.
        let p = &mut self.packet;
        p.uint(fp::TIMESTAMP, 0)
            .uint(fp::TRUSTED_PACKET_SEQUENCE_ID, u64::from(SEQUENCE_ID))
            .uint(
                fp::SEQUENCE_FLAGS,
                fp::SEQ_INCREMENTAL_STATE_CLEARED | fp::SEQ_NEEDS_INCREMENTAL_STATE,
            )
            .boolean(fp::FIRST_PACKET_ON_SEQUENCE, true)
            .message(fp::INTERNED_DATA, |m| {
                for (i, c) in CATEGORIES.iter().enumerate() {
                    entry(m, fi::EVENT_CATEGORIES, i as u64 + 1, c.as_bytes());
                }
                for (i, a) in ARG_NAMES.iter().enumerate() {
                    entry(m, fi::DEBUG_ANNOTATION_NAMES, i as u64 + 1, a.as_bytes());
                }
            })
            .message(fp::TRACK_DESCRIPTOR, |d| {
                d.uint(field::track::UUID, PROCESS_TRACK_UUID).message(
                    field::track::PROCESS,
                    |pd| {
                        pd.int(field::process::PID, i64::from(info.pid as i32))
                            .string(field::process::PROCESS_NAME, program);
                    },
                );
            });
        self.flush_packet();
    }

    fn event(&mut self, cx: &EventCx<'_>) {
        if self.error.is_some() {
            return;
        }
        let t = cx.tables;
        let ns = cx.ns;
        let tid = cx.thread;
        if !self.clock_written {
            self.clock_written = true;
            if let Some(wall) = cx.clock.origin_wall_unix_ns {
                // The trace's time 0 is its first event, at `origin_wall_unix_ns`.
                self.clock_snapshot(0, wall);
            }
        }
        let track = self.thread(tid, ns, t);
        match cx.kind {
            EventKind::RegionBegin { name } => {
                let n = t.name(name);
                let args = [(Arg::Task, Val::Uint(cx.task.0))];
                let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_BEGIN);
                ev.cat = Some(Cat::Region);
                ev.name = Some(&n);
                ev.args = task_args(cx.task, &args);
                self.begin_slice(tid, Open::Region(name), &ev);
            }
            EventKind::RegionEnd { name } => self.end_slice(tid, Open::Region(name), ns, &[]),
            EventKind::PollStart { task } => {
                // A task created before the trace gets its track at its first poll.
                self.task_track(task, ns, t, None, None);
                let otel = self.tasks.get(&task).and_then(|x| x.otel.clone());
                let label = self.task_label("poll ", task, t);
                let flow = self.wake_flows.remove(&task);
                let mut args = vec![(Arg::Task, Val::Uint(task.0))];
                if let Some((tr, sp)) = &otel {
                    args.push((Arg::OtelTrace, Val::Interned(tr)));
                    args.push((Arg::OtelSpan, Val::Interned(sp)));
                }
                let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_BEGIN);
                ev.cat = Some(Cat::Poll);
                ev.name = Some(&label);
                ev.args = &args;
                ev.terminating_flow = flow;
                self.begin_slice(tid, Open::Poll(task), &ev);
                self.scratch = label;
            }
            EventKind::PollEnd { task, ready } => {
                self.end_slice(tid, Open::Poll(task), ns, &[(Arg::Ready, Val::Bool(ready))]);
            }
            EventKind::UserTaskBegin { task, name, .. } => {
                let n = t.name(name);
                let args = [(Arg::Task, Val::Uint(task.0))];
                let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_BEGIN);
                ev.cat = Some(Cat::Task);
                ev.name = Some(&n);
                ev.args = &args;
                self.begin_slice(tid, Open::User(task), &ev);
            }
            EventKind::UserTaskEnd { task } => self.end_slice(tid, Open::User(task), ns, &[]),
            EventKind::BlockBegin { reason, site } => {
                let s = t.site_name(site);
                let args = [
                    (Arg::Site, Val::Interned(&s)),
                    (Arg::Task, Val::Uint(cx.task.0)),
                ];
                let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_BEGIN);
                ev.cat = Some(Cat::Block);
                ev.name = Some(BLOCKED[usize::from(reason.to_wire().min(7))]);
                ev.args = task_args(cx.task, &args);
                self.begin_slice(tid, Open::Block, &ev);
            }
            EventKind::BlockEnd => self.end_slice(tid, Open::Block, ns, &[]),
            EventKind::Park => {
                let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_BEGIN);
                ev.cat = Some(Cat::Park);
                ev.name = Some("parked");
                self.begin_slice(tid, Open::Park, &ev);
            }
            EventKind::Unpark => self.end_slice(tid, Open::Park, ns, &[]),
            EventKind::TaskCreate {
                task,
                parent,
                name,
                site,
            } => {
                if self.task_names.len() < MAX_LIVE_TASKS || self.task_names.contains_key(&task) {
                    self.task_names.insert(task, name);
                } else {
                    self.unnamed += 1;
                }
                // A task created under a linked one belongs to the same request.
                let otel = self.tasks.get(&parent).and_then(|p| p.otel.clone());
                self.finish_task(task, ns, true);
                self.task_track(task, ns, t, Some(site), otel);
            }
            EventKind::TaskDrop { task } => {
                self.finish_task(task, ns, false);
                self.task_names.remove(&task);
                self.wake_flows.remove(&task);
            }
            EventKind::OtelLink {
                task,
                trace_id,
                span_id,
            } => {
                if let Some(tt) = self.tasks.get_mut(&task) {
                    tt.otel = Some((crate::text::hex(&trace_id), crate::text::hex(&span_id)));
                }
            }
            EventKind::AsyncRegionBegin { region, task, name } => {
                let Some(u) = self.task_track(task, ns, t, None, None) else {
                    return;
                };
                let Some(tt) = self.tasks.get_mut(&task) else {
                    return;
                };
                let first = tt.phases.is_none();
                let open = tt.phases.get_or_insert_with(Vec::new);
                if open.len() >= crate::limits::MAX_DEPTH {
                    self.dropped += 1;
                    return;
                }
                open.push(region);
                if first {
                    self.descriptor(ns, |d| {
                        d.uint(field::track::UUID, u + 1)
                            .uint(field::track::PARENT_UUID, u)
                            .string(field::track::NAME, "phases");
                    });
                }
                let n = t.name(name);
                let args = [(Arg::Task, Val::Uint(task.0))];
                let mut ev = Ev::new(ns, u + 1, fe::TYPE_SLICE_BEGIN);
                ev.cat = Some(Cat::AsyncRegion);
                ev.name = Some(&n);
                ev.args = &args;
                self.write_event(&ev);
            }
            EventKind::AsyncRegionEnd { region, task } => {
                let Some(tt) = self.tasks.get_mut(&task) else {
                    return;
                };
                let u = tt.uuid + 1;
                let Some(open) = tt.phases.as_mut() else {
                    return;
                };
                let Some(pos) = open.iter().rposition(|r| *r == region) else {
                    self.unmatched += 1;
                    return;
                };
                let inner = open.len() - pos - 1;
                open.truncate(pos);
                for _ in 0..inner {
                    self.end_task_slice(u, ns, &[(Arg::Unfinished, Val::Bool(true))]);
                }
                self.end_task_slice(u, ns, &[]);
            }
            EventKind::Wake { task, waker } => {
                let label = self.task_label("wake ", task, t);
                // The first wake since the task's last poll starts the flow its next
                // poll ends; later wakes before that poll are instants only.
                let flow = if self.wake_flows.contains_key(&task)
                    || self.wake_flows.len() >= MAX_LIVE_TASKS
                {
                    None
                } else {
                    let id = self.next_flow_id;
                    self.next_flow_id += 1;
                    self.wake_flows.insert(task, id);
                    Some(id)
                };
                let args = [
                    (Arg::WokenTask, Val::Uint(task.0)),
                    (Arg::WakerTask, Val::Uint(waker.0)),
                ];
                let mut ev = Ev::new(ns, track, fe::TYPE_INSTANT);
                ev.cat = Some(Cat::Wake);
                ev.name = Some(&label);
                ev.args = task_args(waker, &args);
                ev.flow = flow;
                self.write_event(&ev);
                self.scratch = label;
            }
            EventKind::Log { category, message } => {
                let cat = t.name(category);
                let text = match message {
                    Message::Interned(id) => t.name(id),
                    Message::Inline(b) => String::from_utf8_lossy(b),
                };
                // A static message repeats: intern it; a formatted one is written inline.
                let m = match message {
                    Message::Interned(id) if t.string(id).is_some() => Val::Interned(&text),
                    _ => Val::Inline(&text),
                };
                let args = [(Arg::Message, m), (Arg::Task, Val::Uint(cx.task.0))];
                let mut ev = Ev::new(ns, track, fe::TYPE_INSTANT);
                ev.cat = Some(Cat::Log);
                ev.name = Some(&cat);
                ev.args = task_args(cx.task, &args);
                self.write_event(&ev);
            }
            EventKind::Loss {
                reason,
                events,
                bytes,
            } => {
                let args = [
                    (Arg::Reason, Val::Interned(reason.as_str())),
                    (Arg::Events, Val::Uint(events)),
                    (Arg::Bytes, Val::Uint(bytes)),
                    (Arg::Thread, Val::Uint(u64::from(tid.0))),
                ];
                let mut ev = Ev::new(ns, PROCESS_TRACK_UUID, fe::TYPE_INSTANT);
                ev.cat = Some(Cat::Loss);
                ev.name = Some("events lost");
                ev.args = &args;
                self.write_event(&ev);
            }
            EventKind::Metric { name, value } => {
                let n = t.name(name);
                let uuid = match self.counters.get(n.as_ref()) {
                    Some(&u) => u,
                    None if self.counters.len() >= MAX_COUNTERS
                        || self.counter_bytes + n.len() > MAX_INTERNED_BYTES =>
                    {
                        self.dropped += 1;
                        return;
                    }
                    None => {
                        let u = COUNTER_TRACK_UUID_BASE + self.counters.len() as u64;
                        self.counters.insert(n.to_string(), u);
                        self.counter_bytes += n.len();
                        self.descriptor(ns, |d| {
                            d.uint(field::track::UUID, u)
                                .uint(field::track::PARENT_UUID, PROCESS_TRACK_UUID)
                                .string(field::track::NAME, &n)
                                .message(field::track::COUNTER, |_| {});
                        });
                        u
                    }
                };
                let mut ev = Ev::new(ns, uuid, fe::TYPE_COUNTER);
                ev.counter = Some(value);
                self.write_event(&ev);
            }
            // OS samples and stacks are not exported yet.
            EventKind::ThreadStart
            | EventKind::ThreadEnd
            | EventKind::OsSample { .. }
            | EventKind::Stack { .. } => {}
        }
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        let mut tasks: Vec<(u64, TaskId)> = self.tasks.iter().map(|(k, v)| (v.uuid, *k)).collect();
        tasks.sort();
        for (_, task) in tasks {
            self.finish_task(task, cx.last_ns, true);
        }
        let mut tids: Vec<ThreadId> = self.threads.keys().copied().collect();
        tids.sort();
        for tid in tids {
            let Some(t) = self.threads.get_mut(&tid) else {
                continue;
            };
            let open = t.stack.len();
            self.stacks.release(&mut t.stack);
            let track = t.uuid;
            let name = thread_name(cx.tables, tid);
            let renamed = name != t.name;
            if renamed {
                t.name = name.clone();
            }
            for _ in 0..open {
                self.end_unfinished(track, cx.last_ns);
            }
            if renamed {
                self.describe_thread(cx.last_ns, track, tid, &name);
            }
        }
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e);
        }
        read_notes(cx.stats, &mut self.truncated);
        if self.dropped > 0 {
            self.truncated.push(Truncated::new(
                "open_slices",
                self.dropped,
                crate::limits::MAX_DEPTH,
                format!(
                    "{} slices or metric samples not written: nested over {} deep on a thread, past {} MiB of open slices, or past {MAX_COUNTERS} metric names",
                    self.dropped,
                    crate::limits::MAX_DEPTH,
                    MAX_OPEN_SPAN_BYTES >> 20
                ),
            ));
        }
        if self.unnamed > 0 {
            self.truncated.push(Truncated::new(
                "task_names",
                self.unnamed,
                MAX_LIVE_TASKS,
                format!(
                    "{} tasks created while {MAX_LIVE_TASKS} were alive: their polls and wakes are named `task ID`",
                    self.unnamed
                ),
            ));
        }
        if self.untracked_tasks > 0 {
            self.truncated.push(Truncated::new(
                "task_tracks",
                self.untracked_tasks,
                MAX_LIVE_TASKS,
                format!(
                    "{} task events without a task track: {MAX_LIVE_TASKS} tasks had tracks open",
                    self.untracked_tasks
                ),
            ));
        }
        table_notes(cx.tables, &mut self.truncated);
    }
}

#[cfg(test)]
mod tests {
    use super::proto::{ProtoWriter, push_varint};
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        push_varint(&mut b, v);
        b
    }

    #[test]
    fn varints_are_leb128() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(
            varint(u64::MAX),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn fields_encode_as_the_protobuf_encoding_guide_shows() {
        // The guide's own examples: field 1 = 150, field 2 = "testing", and field 3
        // holding a message whose field 1 = 150.
        let mut w = ProtoWriter::new();
        w.uint(1, 150);
        assert_eq!(w.bytes(), [0x08, 0x96, 0x01]);
        w.clear();
        w.string(2, "testing");
        assert_eq!(w.bytes(), b"\x12\x07testing");
        w.clear();
        w.message(3, |m| {
            m.uint(1, 150);
        });
        assert_eq!(w.bytes(), [0x1a, 0x03, 0x08, 0x96, 0x01]);
        // int32 -1 is ten bytes of two's complement; bool is a varint.
        w.clear();
        w.int(1, -1).boolean(2, true);
        assert_eq!(
            w.bytes(),
            [
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x10, 0x01
            ]
        );
        // fixed64 field 47 (key 47 << 3 | 1 = 377) and double field 44 (key 353).
        w.clear();
        w.fixed64(47, 0x0102).double(44, 1.5);
        assert_eq!(
            w.bytes(),
            [
                0xf9, 0x02, 0x02, 0x01, 0, 0, 0, 0, 0, 0, //
                0xe1, 0x02, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f,
            ]
        );
    }

    #[test]
    fn a_long_nested_message_gets_a_longer_length() {
        // Body: field 1, 197 bytes = 0x0a, varint 197 (0xc5 0x01), 197 bytes: 200 bytes,
        // so the outer length is varint 200 = 0xc8 0x01, nested twice.
        let mut w = ProtoWriter::new();
        w.message(5, |m| {
            m.message(1, |m| {
                m.bytes_field(1, &[0xab; 197]);
            })
            .uint(2, 1);
        });
        let mut want = vec![0x2a, 0xcd, 0x01, 0x0a, 0xc8, 0x01, 0x0a, 0xc5, 0x01];
        want.extend([0xab; 197]);
        want.extend([0x10, 0x01]);
        assert_eq!(w.bytes(), want.as_slice());
    }

    #[test]
    fn track_event_packets_have_hand_computed_bytes() {
        let mut x = PerfettoExport::new(Vec::new());
        // A slice end at 1000 ns on track 17.
        x.write_event(&Ev::new(1000, 17, fe::TYPE_SLICE_END));
        // An instant with a new interned name "x", category 6 (log), a bool argument.
        let mut ev = Ev::new(2, 17, fe::TYPE_INSTANT);
        ev.cat = Some(Cat::Log);
        ev.name = Some("x");
        ev.args = &[(Arg::Ready, Val::Bool(true))];
        x.write_event(&ev);
        // The same name again: no interned data, the same iid.
        ev.args = &[];
        x.write_event(&ev);
        assert_eq!(x.packets, 3);
        #[rustfmt::skip]
        let want: &[u8] = &[
            // Trace.packet (1), 13 bytes.
            0x0a, 0x0d,
            0x40, 0xe8, 0x07, // timestamp (8) = 1000
            0x50, 0x01,       // trusted_packet_sequence_id (10) = 1
            0x68, 0x02,       // sequence_flags (13) = SEQ_NEEDS_INCREMENTAL_STATE
            0x5a, 0x04,       // track_event (11), 4 bytes
            0x48, 0x02,       //   type (9) = TYPE_SLICE_END
            0x58, 0x11,       //   track_uuid (11) = 17
            // Trace.packet, 31 bytes.
            0x0a, 0x1f,
            0x40, 0x02, 0x50, 0x01, 0x68, 0x02,
            0x62, 0x07,       // interned_data (12), 7 bytes
            0x12, 0x05,       //   event_names (2), 5 bytes
            0x08, 0x01,       //     iid (1) = 1
            0x12, 0x01, b'x', //     name (2) = "x"
            0x5a, 0x0e,       // track_event, 14 bytes
            0x48, 0x03,       //   type = TYPE_INSTANT
            0x58, 0x11,       //   track_uuid = 17
            0x18, 0x06,       //   category_iids (3) = 6
            0x50, 0x01,       //   name_iid (10) = 1
            0x22, 0x04,       //   debug_annotations (4), 4 bytes
            0x08, 0x02,       //     name_iid (1) = 2 ("ready")
            0x10, 0x01,       //     bool_value (2) = true
            // Trace.packet, 16 bytes.
            0x0a, 0x10,
            0x40, 0x02, 0x50, 0x01, 0x68, 0x02,
            0x5a, 0x08, 0x48, 0x03, 0x58, 0x11, 0x18, 0x06, 0x50, 0x01,
        ];
        assert_eq!(x.bytes, want.len() as u64);
        assert_eq!(x.into_inner(), want);
    }

    #[test]
    fn names_past_the_interning_limit_are_written_inline() {
        let mut i = Interner::default();
        for n in 0..MAX_INTERNED {
            assert_eq!(i.get(&n.to_string()), Some((n as u64 + 1, true)));
        }
        assert_eq!(i.get("0"), Some((1, false)));
        assert_eq!(i.get("one too many"), None);
    }

    #[test]
    fn a_write_error_is_kept_and_writing_stops() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::StorageFull.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut x = PerfettoExport::new(Full);
        let trace = fdr_format::testing::sample_trace();
        crate::read_slice(&trace, &mut x, crate::ReadOptions::default()).unwrap();
        let e = x.error.expect("the first write fails");
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
    }
}
