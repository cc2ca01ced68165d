//! The pprof export (`fdr export --format pprof`): a trace's CPU samples (and, on request,
//! its long-scope stacks) as a symbolized, gzipped pprof profile, through `fdr-pprof`.
//!
//! The trace streams in time order, so each stack sample is labelled with the task polled
//! (or the user task running) on its thread at that moment, and a sample can be kept only
//! inside a time window or only for tasks whose name contains a text. The CPU profiling
//! rate records always reach the collector, whatever the filters.
//!
//! ```no_run
//! use fdr_analyzer::pprof::{PprofExport, PprofOptions};
//! use fdr_analyzer::{ReadOptions, read_file};
//!
//! let mut x = PprofExport::new(PprofOptions {
//!     task: Some("http GET".into()),
//!     ..PprofOptions::default()
//! });
//! read_file(std::path::Path::new("dump.fdr"), &mut x, ReadOptions::default())?;
//! let (profile, truncated) = x.finish();
//! std::fs::write("cpu.pb.gz", &profile.gzipped)?;
//! for t in &truncated {
//!     eprintln!("truncated: {}", t.note);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;

use fdr_format::{EventKind, ProcessInfo, StrId, Tables, TaskId, ThreadId};
use fdr_pprof::Collector;

use crate::limits::{
    MAX_LIVE_TASKS, MAX_THREADS, Truncated, read_notes, table_notes, task_names_note,
};

use crate::stream::{Clock, EndCx, EventCx, Visitor};
pub use fdr_pprof::{Options as ProfileOptions, Profile};
pub use fdr_symbolize::Options as SymbolizeOptions;

/// Deepest task nesting followed per thread (polls inside polls, user tasks).
const MAX_TASK_DEPTH: usize = 64;

/// What the export keeps.
#[derive(Debug, Clone, Default)]
pub struct PprofOptions {
    /// Only samples taken while a task whose name contains this ran on their thread.
    pub task: Option<String>,
    /// Only samples at or after this time, ns since the trace's first event.
    pub from_ns: Option<u64>,
    /// Only samples at or before this time, ns since the trace's first event.
    pub to_ns: Option<u64>,
    /// The profile's contents and symbolization (long-scope stacks, binaries to use).
    pub profile: ProfileOptions,
}

/// Streams a trace into a pprof profile; [`PprofExport::finish`] encodes it.
#[derive(Debug)]
pub struct PprofExport {
    opts: PprofOptions,
    collector: Collector,
    /// Per thread, the tasks running (innermost last).
    running: HashMap<ThreadId, Vec<TaskId>>,
    names: HashMap<TaskId, StrId>,
    info: ProcessInfo,
    tables: Tables,
    clock: Option<Clock>,
    last_ns: u64,
    /// Stack samples left out by the window or the task filter.
    pub filtered_out: u64,
    truncated: Vec<Truncated>,
    unnamed: u64,
    untracked: u64,
    too_deep: u64,
}

impl PprofExport {
    /// An export with these filters.
    pub fn new(opts: PprofOptions) -> Self {
        PprofExport {
            collector: Collector::new(opts.profile.clone()),
            opts,
            running: HashMap::new(),
            names: HashMap::new(),
            info: ProcessInfo::default(),
            tables: Tables::new(),
            clock: None,
            last_ns: 0,
            filtered_out: 0,
            truncated: Vec::new(),
            unnamed: 0,
            untracked: 0,
            too_deep: 0,
        }
    }

    fn follow_tasks(&mut self, cx: &EventCx<'_>) {
        match cx.kind {
            EventKind::TaskCreate { task, name, .. }
            | EventKind::UserTaskBegin { task, name, .. } => {
                if self.names.len() < MAX_LIVE_TASKS || self.names.contains_key(&task) {
                    self.names.insert(task, name);
                } else {
                    self.unnamed += 1;
                }
            }
            EventKind::TaskDrop { task } => {
                self.names.remove(&task);
            }
            _ => {}
        }
        match cx.kind {
            EventKind::PollStart { task } | EventKind::UserTaskBegin { task, .. } => {
                if self.running.len() >= MAX_THREADS && !self.running.contains_key(&cx.thread) {
                    self.untracked += 1;
                    return;
                }
                let s = self.running.entry(cx.thread).or_default();
                if s.len() < MAX_TASK_DEPTH {
                    s.push(task);
                } else {
                    self.too_deep += 1;
                }
            }
            EventKind::PollEnd { task, .. } | EventKind::UserTaskEnd { task } => {
                if let Some(s) = self.running.get_mut(&cx.thread)
                    && let Some(pos) = s.iter().rposition(|&t| t == task)
                {
                    s.truncate(pos);
                }
            }
            _ => {}
        }
    }

    /// The name of the task running on `thread`, if one is and its name is known.
    fn task_on(&self, thread: ThreadId, tables: &Tables) -> Option<String> {
        let task = *self.running.get(&thread)?.last()?;
        let name = self.names.get(&task)?;
        Some(tables.name(*name).into_owned())
    }

    /// Encodes the profile (symbolizing its addresses through the trace's modules), with
    /// what the reading left out past the analyzer's bounds. The profile's window is the
    /// one asked for, within the trace.
    pub fn finish(mut self) -> (Profile, Vec<Truncated>) {
        let from = self.opts.from_ns.unwrap_or(0).min(self.last_ns);
        let to = self.opts.to_ns.unwrap_or(u64::MAX).min(self.last_ns);
        let window = self.clock.and_then(|c| {
            let start = c.origin_wall_unix_ns? + i128::from(from);
            Some((
                start.clamp(0, i64::MAX as i128) as i64,
                to.saturating_sub(from).min(i64::MAX as u64) as i64,
            ))
        });
        self.truncated.extend(task_names_note(
            self.unnamed,
            "their samples carry no task label",
        ));
        if self.too_deep > 0 {
            self.truncated.push(Truncated::new(
                "task_depth",
                self.too_deep,
                MAX_TASK_DEPTH,
                format!(
                    "{} task begins nested over {MAX_TASK_DEPTH} deep on a thread: samples inside them name the task around them",
                    self.too_deep
                ),
            ));
        }
        if self.untracked > 0 {
            self.truncated.push(Truncated::new(
                "threads",
                self.untracked,
                MAX_THREADS,
                format!(
                    "{} polls on threads past {MAX_THREADS} are not followed: their samples have no task",
                    self.untracked
                ),
            ));
        }
        let p = self.collector.finish(&self.tables, &self.info, window);
        (p, self.truncated)
    }

    /// CPU samples and long-scope stacks seen, and what was left out (before
    /// [`PprofExport::finish`]).
    pub fn stats(&self) -> fdr_pprof::CollectStats {
        self.collector.stats()
    }
}

impl Visitor for PprofExport {
    fn start(&mut self, info: &ProcessInfo) {
        self.info = info.clone();
    }

    fn event(&mut self, cx: &EventCx<'_>) {
        self.follow_tasks(cx);
        if !self.collector.wants(&cx.kind, cx.tables) {
            return;
        }
        let task = match cx.kind {
            EventKind::Stack { thread, .. } => {
                let in_window = self.opts.from_ns.is_none_or(|f| cx.ns >= f)
                    && self.opts.to_ns.is_none_or(|t| cx.ns <= t);
                let task = self.task_on(thread, cx.tables);
                let task_ok = match &self.opts.task {
                    None => true,
                    Some(want) => task.as_deref().is_some_and(|t| t.contains(want.as_str())),
                };
                if !in_window || !task_ok {
                    self.filtered_out += 1;
                    return;
                }
                task
            }
            _ => None,
        };
        self.collector
            .event(cx.ts, &cx.kind, cx.tables, task.as_deref());
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        self.last_ns = cx.last_ns;
        self.clock = Some(*cx.clock);
        read_notes(cx.stats, &mut self.truncated);
        table_notes(cx.tables, &mut self.truncated);
    }

    fn take_tables(&mut self, tables: Tables) {
        self.tables = tables;
    }
}
