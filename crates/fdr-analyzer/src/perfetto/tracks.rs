//! Tracks: the process, a track per thread (described on first sight, renamed at the end),
//! an async track per task (its life, and its async regions on a `phases` child) with its
//! OpenTelemetry ids, and the clock snapshot to the wall clock.

use std::io::Write;

use fdr_format::{StrId, Tables, TaskId, ThreadId};

use crate::limits::MAX_LIVE_TASKS;

use super::field::{self, event as fe, packet as fp};
use super::packets::{Arg, Cat, Ev, Val};
use super::slices::Open;
use super::{
    PROCESS_TRACK_UUID, PerfettoExport, SEQUENCE_ID, TASK_TRACK_UUID_BASE, THREAD_TRACK_UUID_BASE,
};

/// A task's async track: what is open on it and its phases track.
#[derive(Debug)]
pub(super) struct TaskTrack {
    pub(super) uuid: u64,
    /// Its life slice is open.
    pub(super) life_open: bool,
    /// Async regions open on the phases track (region ids), when it was described.
    pub(super) phases: Option<Vec<u64>>,
    /// OpenTelemetry ids, hex.
    pub(super) otel: Option<(String, String)>,
}

#[derive(Debug)]
pub(super) struct ThreadTrack {
    pub(super) uuid: u64,
    /// The name last written in the thread's descriptor.
    pub(super) name: String,
    pub(super) stack: Vec<Open>,
}

pub(super) fn thread_name(tables: &Tables, tid: ThreadId) -> String {
    tables
        .thread(tid)
        .map(|i| i.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("thread {}", tid.0))
}

impl<W: Write> PerfettoExport<W> {
    /// The thread's track, described on first sight.
    pub(super) fn thread(&mut self, tid: ThreadId, ns: u64, tables: &Tables) -> u64 {
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

    pub(super) fn describe_thread(&mut self, ns: u64, uuid: u64, tid: ThreadId, name: &str) {
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

    /// `<prefix><task name>`, or `<prefix>task <id>` for a task whose creation the trace
    /// lacks, built in the scratch string (the caller gives it back).
    pub(super) fn task_label(&mut self, prefix: &str, task: TaskId, tables: &Tables) -> String {
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
    pub(super) fn clock_snapshot(&mut self, ns: u64, wall_unix_ns: i128) {
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
    pub(super) fn task_track(
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
    pub(super) fn end_task_slice(&mut self, track: u64, ns: u64, args: &[(Arg, Val<'_>)]) {
        let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_END);
        ev.args = args;
        self.write_event(&ev);
        self.task_slices += 1;
    }

    /// Ends everything open on a task's tracks: its phases (cut short), then its
    /// life (`unfinished` when the trace ends first).
    pub(super) fn finish_task(&mut self, task: TaskId, ns: u64, unfinished: bool) {
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

    /// An async region begins on its task's `phases` track (described on first use).
    pub(super) fn async_region_begin(
        &mut self,
        region: u64,
        task: TaskId,
        name: StrId,
        ns: u64,
        t: &Tables,
    ) {
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

    /// An async region ends (and those opened inside it, cut short).
    pub(super) fn async_region_end(&mut self, region: u64, task: TaskId, ns: u64) {
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
}
