//! `fdr export --format perfetto`: a native Perfetto trace, the protobuf `Trace` message
//! (a stream of `TracePacket`s), which Perfetto UI and `trace_processor` open.
//!
//! Written as the trace streams, one packet per event, in the reader's time order (but
//! the OS state slices, written when their interval closes):
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
//!   shows absolute times;
//! - with the OS view (the trace's OS samples and stacks): an `OS state` track under each
//!   sampled thread whose slices say where each interval between two samples went
//!   (`running`, `runnable`, `sleeping`, `blocked`, with the on-CPU, run-queue and off-CPU
//!   ns), and every stack as a callstack sample of its thread at the moment it was taken
//!   (its event's time less its age, `crate::sampled`), symbolized where the binary is found
//!   (see `os.rs`).
//!
//! The parts live in their own modules: `packets` (packets, interning, track events),
//! `tracks` (process, thread and task tracks, the clock snapshot), `slices` (nested
//! slices on thread tracks), `counters` (metric counter tracks), `os` (thread states and
//! callstacks), `proto` (the protobuf writer) and `field` (Perfetto's field numbers).
//!
//! Event names, categories, argument names and repeated argument strings (sites, static
//! log messages) are interned on the one packet sequence (`interned_data` with
//! `sequence_flags`), so a name costs its bytes once. Timestamps are nanoseconds since the
//! trace's first event, converted from ticks by the reader's [`Clock`](crate::Clock), as
//! the chrome-json export does.
//!
//! Memory follows live threads, open slices (at most 256 deep per thread and
//! [`MAX_OPEN_SPAN_BYTES`] in all), live tasks (at most [`MAX_LIVE_TASKS`] named) and
//! distinct names (at most 65 536 interned per table and [`MAX_INTERNED_BYTES`](crate::limits::MAX_INTERNED_BYTES) of them;
//! more are written inline), never the trace length; what is left out is counted in
//! [`PerfettoExport::truncated`].
//!
//! Field numbers are Perfetto's (`protos/perfetto/trace/trace_packet.proto`,
//! `track_event/track_event.proto`, `track_event/track_descriptor.proto`,
//! `track_event/process_descriptor.proto`, `track_event/thread_descriptor.proto`,
//! `track_event/counter_descriptor.proto`, `track_event/debug_annotation.proto`,
//! `interned_data/interned_data.proto`, `profiling/profile_common.proto`,
//! `profiling/profile_packet.proto`).

use std::collections::HashMap;
use std::io::Write;

use fdr_format::{EventKind, Message, ProcessInfo, StrId, TaskId, ThreadId};

use crate::limits::{
    MAX_LIVE_TASKS, MAX_OPEN_SPAN_BYTES, StackBudget, Truncated, read_notes, table_notes,
    task_names_note,
};
use crate::stream::{EndCx, EventCx, Visitor};

use field::{event as fe, interned as fi, packet as fp};
use packets::{ARG_NAMES, Arg, CATEGORIES, Cat, Ev, Interner, Val, entry};
use proto::ProtoWriter;
use slices::{BLOCKED, Open, task_args};
use tracks::{TaskTrack, ThreadTrack, thread_name};

mod counters;
mod field;
mod os;
mod packets;
pub mod proto;
mod slices;
mod tracks;

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
/// A thread's `OS state` track (a child of its thread track) uuid is this plus fdr's
/// thread id.
pub const OS_STATE_TRACK_UUID_BASE: u64 = 1 << 39;

/// Most strings interned per table; past it (or past [`MAX_INTERNED_BYTES`] of them),
/// names and values are written inline.
const MAX_INTERNED: usize = 1 << 16;
/// Most counter tracks (one per metric name, [`MAX_INTERNED_BYTES`] of names at most);
/// samples of further metrics are dropped.
const MAX_COUNTERS: usize = 4096;

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
    os: os::OsState,
    symbolizer: fdr_symbolize::Symbolizer,
    /// Thread-state slices written (one per interval between two OS samples of a thread).
    pub thread_states: u64,
    /// Callstack samples written (every stack the trace holds, but those left out).
    pub stack_samples: u64,
    /// Of those, samples of the CPU-time profiling timer.
    pub cpu_samples: u64,
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
            os: os::OsState::default(),
            symbolizer: fdr_symbolize::Symbolizer::new(fdr_symbolize::Options::default()),
            thread_states: 0,
            stack_samples: 0,
            cpu_samples: 0,
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

    /// Binaries to symbolize the stacks' frames with, matched by build id (the paths the
    /// recorded process saw are tried after these); a frame whose binary is not found
    /// keeps its module and offset.
    pub fn with_binaries(mut self, binaries: Vec<std::path::PathBuf>) -> Self {
        self.symbolizer = fdr_symbolize::Symbolizer::new(fdr_symbolize::Options {
            binaries,
            ..fdr_symbolize::Options::default()
        });
        self
    }

    /// The writer, after the trace ended.
    pub fn into_inner(self) -> W {
        self.out
    }
}

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
                self.async_region_begin(region, task, name, ns, t);
            }
            EventKind::AsyncRegionEnd { region, task } => self.async_region_end(region, task, ns),
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
            EventKind::Metric { name, value } => self.metric(name, value, ns, t),
            EventKind::OsSample {
                thread,
                cpu_ns,
                runq_ns,
                state,
                ..
            } => self.os_sample(thread, ns, (cpu_ns, runq_ns, state), t),
            EventKind::Stack {
                thread,
                cause,
                frames,
                age_ticks,
                ..
            } => {
                let taken = crate::sampled::taken_ns(ns, age_ticks, cx.clock);
                self.os_stack(thread, (ns, taken), cause, frames, t)
            }
            EventKind::ThreadStart | EventKind::ThreadEnd => {}
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
        self.truncated.extend(task_names_note(
            self.unnamed,
            "their polls and wakes are named `task ID`",
        ));
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
        if self.os.dropped_samples > 0 {
            self.truncated.push(Truncated::new(
                "stack_samples",
                self.os.dropped_samples,
                MAX_INTERNED,
                format!(
                    "{} stack samples not written: past {MAX_INTERNED} distinct frames, callstacks, mappings or profile strings",
                    self.os.dropped_samples
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
