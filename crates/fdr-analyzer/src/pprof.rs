//! The pprof export (`fdr export --format pprof`): a trace's CPU samples (and, on request,
//! its long-scope stacks) as a symbolized, gzipped pprof profile, through `fdr-pprof`.
//!
//! A stack sample is placed when it was taken (its event's time minus its age, see
//! [`crate::sampled`]) and labelled with the task polled (or the user task running) on its
//! thread at that moment, which a sample recorded after its poll ended still finds; a sample
//! can be kept only inside a time window or only for tasks whose name contains a text, both
//! judged at that moment. The CPU profiling rate records always reach the collector,
//! whatever the filters.
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
use crate::sampled::{
    MAX_ENDED_RUNS_PER_THREAD, MAX_OPEN_RUNS_PER_THREAD, RunningAt, TaskTimeline, taken_ns,
};

use crate::stream::{Clock, EndCx, EventCx, Visitor};
pub use fdr_pprof::{Options as ProfileOptions, Profile};
pub use fdr_symbolize::Options as SymbolizeOptions;

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
    /// Per thread, which task ran when.
    running: TaskTimeline,
    names: HashMap<TaskId, StrId>,
    info: ProcessInfo,
    tables: Tables,
    clock: Option<Clock>,
    last_ns: u64,
    /// Stack samples left out by the window or the task filter.
    pub filtered_out: u64,
    truncated: Vec<Truncated>,
    unnamed: u64,
    /// Samples taken before the task runs kept for their thread.
    forgotten: u64,
}

impl PprofExport {
    /// An export with these filters.
    pub fn new(opts: PprofOptions) -> Self {
        PprofExport {
            collector: Collector::new(opts.profile.clone()),
            opts,
            running: TaskTimeline::new(MAX_THREADS),
            names: HashMap::new(),
            info: ProcessInfo::default(),
            tables: Tables::new(),
            clock: None,
            last_ns: 0,
            filtered_out: 0,
            truncated: Vec::new(),
            unnamed: 0,
            forgotten: 0,
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
                self.running.begin(cx.thread, task, cx.ns);
            }
            EventKind::PollEnd { task, .. } | EventKind::UserTaskEnd { task } => {
                self.running.end(cx.thread, task, cx.ns);
            }
            _ => {}
        }
    }

    /// The name of the task running on `thread` at `ns`, if one was and its name is known.
    fn task_at(&mut self, thread: ThreadId, ns: u64, tables: &Tables) -> Option<String> {
        let task = match self.running.at(thread, ns) {
            RunningAt::Task(t) => t,
            RunningAt::Forgotten => {
                self.forgotten += 1;
                return None;
            }
            RunningAt::Idle | RunningAt::Unknown => return None,
        };
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
        let (too_deep, untracked) = (self.running.too_deep, self.running.untracked);
        if too_deep > 0 {
            self.truncated.push(Truncated::new(
                "task_depth",
                too_deep,
                MAX_OPEN_RUNS_PER_THREAD,
                format!(
                    "{too_deep} task begins nested over {MAX_OPEN_RUNS_PER_THREAD} deep on a thread: samples inside them name the task around them"
                ),
            ));
        }
        if untracked > 0 {
            self.truncated.push(Truncated::new(
                "threads",
                untracked,
                MAX_THREADS,
                format!(
                    "{untracked} polls on threads past {MAX_THREADS} are not followed: their samples have no task"
                ),
            ));
        }
        if self.forgotten > 0 {
            self.truncated.push(Truncated::new(
                "sample_tasks",
                self.forgotten,
                MAX_ENDED_RUNS_PER_THREAD,
                format!(
                    "{} samples were taken before the last {MAX_ENDED_RUNS_PER_THREAD} polls of their thread that ended before they were recorded: they carry no task label",
                    self.forgotten
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
            EventKind::Stack {
                thread, age_ticks, ..
            } => {
                let at = taken_ns(cx.ns, age_ticks, cx.clock);
                let in_window = self.opts.from_ns.is_none_or(|f| at >= f)
                    && self.opts.to_ns.is_none_or(|t| at <= t);
                let task = self.task_at(thread, at, cx.tables);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReadOptions, read_slice};
    use fdr_format::SampleCause;
    use fdr_test_support::scenarios::TraceBuilder;

    const MS: u64 = 1_000_000;

    /// Task `alpha` polls 10-30 ms and `beta` 40-100 ms on one thread; a CPU sample taken
    /// at 20 ms (inside alpha's poll) is recorded at 50 ms, while beta runs.
    fn late_sample_trace() -> Vec<u8> {
        let mut b = TraceBuilder::new();
        let worker = b.thread("worker");
        let sampler = b.thread(fdr_pprof::SAMPLER_THREAD_NAME);
        let site = b.site("src/main.rs", 3);
        let rate = b.string(fdr_format::event::METRIC_CPU_PROFILE_HZ);
        for (task, name) in [(TaskId(1), "alpha"), (TaskId(2), "beta")] {
            let name = b.string(name);
            b.task(worker, 0, task, name, site);
        }
        b.push(
            sampler,
            MS,
            EventKind::Metric {
                name: rate,
                value: 100.0,
            },
        );
        b.poll(worker, 10 * MS, 30 * MS, TaskId(1), false);
        b.poll(worker, 40 * MS, 100 * MS, TaskId(2), true);
        b.stack(
            sampler,
            50 * MS,
            worker,
            SampleCause::CpuTimer,
            &[0x1000, 0x2000],
            Some(30 * MS),
        );
        b.build()
    }

    /// (samples kept, samples filtered out) of the export with `opts`.
    fn kept(opts: PprofOptions) -> (u64, u64) {
        let mut x = PprofExport::new(opts);
        let out = read_slice(&late_sample_trace(), &mut x, ReadOptions::default()).unwrap();
        assert!(out.error.is_none(), "{:?}", out.error);
        (x.stats().cpu_samples, x.filtered_out)
    }

    /// A sample recorded after the poll it was taken in ended belongs to that poll's task
    /// and to the moment it was taken, for the task filter and the time window alike.
    #[test]
    fn a_late_sample_is_filtered_by_when_and_where_it_was_taken() {
        let task = |t: &str| PprofOptions {
            task: Some(t.into()),
            ..PprofOptions::default()
        };
        assert_eq!(kept(task("alpha")), (1, 0));
        assert_eq!(kept(task("beta")), (0, 1));
        let window = |from: u64, to: u64| PprofOptions {
            from_ns: Some(from * MS),
            to_ns: Some(to * MS),
            ..PprofOptions::default()
        };
        assert_eq!(kept(window(15, 25)), (1, 0));
        assert_eq!(kept(window(45, 60)), (0, 1));
    }
}
