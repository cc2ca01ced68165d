//! A dump as Parquet tables, in one streaming pass: [`export_file`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fdr_analyzer::limits::{
    MAX_DEPTH, MAX_LIVE_TASKS, MAX_OPEN_SPAN_BYTES, MAX_THREADS, StackBudget,
};
use fdr_analyzer::sampled::{
    MAX_ENDED_RUNS_PER_THREAD, MAX_OPEN_RUNS_PER_THREAD, RunningAt, TaskTimeline, taken_ns,
};
use fdr_analyzer::stream::{EndCx, EventCx, ReadOptions, ReadOutcome, Visitor};
use fdr_analyzer::{Profile, ProfileOptions, diagnose, read_file};
use fdr_format::{
    BlockReason, EventKind, Message, ProcessInfo, SiteId, StrId, Tables, TaskId, ThreadId,
};

use crate::error::ExportError;
use crate::schema::{self, TABLES, TableDef};
use crate::table::{Identity, ROW_GROUP_ROWS, TableFile, V};

/// What to export and under which names.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The dump's id: the files' name (`DIR/TABLE/DUMP_ID.parquet`) and every row's
    /// `dump_id`.
    pub dump_id: String,
    /// The incident's id, when the dump is the sentinel's incident.
    pub incident_id: Option<String>,
    /// The host, instead of the trace header's.
    pub host: Option<String>,
    /// The service, instead of the trace header's.
    pub service: Option<String>,
    /// Rows in a row group at most (`None`: [`crate::table::ROW_GROUP_ROWS`]).
    pub row_group_rows: Option<usize>,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// Each table written: its name, file and rows.
    pub tables: Vec<(&'static str, PathBuf, u64)>,
    /// Rows in all tables.
    pub rows: u64,
    /// The read: the header, counts and, for a damaged dump, where reading stopped (the
    /// tables hold everything before it).
    pub read: ReadOutcome,
    /// What was left out to keep memory bounded, one sentence each.
    pub left_out: Vec<String>,
}

/// Whether `id` can name the files of a dump (the sentinel's incident ids can).
pub fn valid_dump_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Exports the dump at `trace` into `dir`: one Parquet file per table,
/// `dir/TABLE/DUMP_ID.parquet` (`stack_samples` only when the dump has stacks), each
/// written under a temporary name and renamed into place when whole.
///
/// One pass over the dump feeds the tables and the diagnosis (the `findings` table);
/// memory is bounded by the analyzer's limits and the writer's row groups, not by the
/// dump's size. A damaged dump is exported up to the damage; [`ExportSummary::read`]
/// says where it stopped.
pub fn export_file(
    trace: &Path,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    if !valid_dump_id(&opts.dump_id) {
        return Err(ExportError::BadDumpId(opts.dump_id.clone()));
    }
    if let Some(i) = &opts.incident_id
        && !valid_dump_id(i)
    {
        return Err(ExportError::BadDumpId(i.clone()));
    }
    // Directories this export makes, removed again (when still empty) if it fails.
    let mut made = Vec::new();
    for d in std::iter::once(dir.to_path_buf()).chain(TABLES.iter().map(|t| dir.join(t.name))) {
        if !d.exists() {
            made.push(d);
        }
    }
    let r = export_into(trace, dir, opts);
    if r.is_err() {
        for d in made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
    r
}

fn export_into(
    trace: &Path,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let mut files = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        files.push(TableFile::create(
            t,
            dir,
            &opts.dump_id,
            opts.row_group_rows.unwrap_or(ROW_GROUP_ROWS).max(1),
        )?);
    }
    let mut x = Exporter::new(files, opts.clone());
    let mut profile = Profile::new(ProfileOptions::default());
    let read = read_file(trace, &mut (&mut x, &mut profile), ReadOptions::default())?;
    if let Some(e) = x.error.take() {
        return Err(e);
    }
    x.finish_rows(&read, &profile)?;
    let left_out = x.left_out();
    let id = x.id.clone();
    let mut tables = Vec::new();
    let mut rows = 0;
    for (def, f) in TABLES.iter().zip(x.files.drain(..)) {
        let n = f.rows;
        if let Some(path) = f.finish(&id)? {
            rows += n;
            tables.push((def.name, path, n));
        }
    }
    Ok(ExportSummary {
        tables,
        rows,
        read,
        left_out,
    })
}

/// The index of each table's file, in [`TABLES`] order.
mod ix {
    pub(super) const DUMPS: usize = 0;
    pub(super) const TASKS: usize = 1;
    pub(super) const POLLS: usize = 2;
    pub(super) const AWAITS: usize = 3;
    pub(super) const REGIONS: usize = 4;
    pub(super) const BLOCKS: usize = 5;
    pub(super) const LOGS: usize = 6;
    pub(super) const WAKES: usize = 7;
    pub(super) const METRIC_SAMPLES: usize = 8;
    pub(super) const STACK_SAMPLES: usize = 9;
    pub(super) const FINDINGS: usize = 10;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Async,
    User,
}

/// A task while it lives.
#[derive(Debug, Clone, Copy)]
struct Task {
    /// `None`: its creation is not in the dump.
    kind: Option<Kind>,
    parent: TaskId,
    name: Option<StrId>,
    site: SiteId,
    created_ns: Option<u64>,
    polls: u64,
    running_ns: u64,
    poll_start: Option<u64>,
    /// A wake seen during its current poll: when, by which task and thread.
    woken_in_poll: Option<(u64, TaskId, ThreadId)>,
    /// The await in progress: its start, and its wake once seen.
    wait: Option<Await>,
}

#[derive(Debug, Clone, Copy)]
struct Await {
    start_ns: u64,
    woken: Option<(u64, TaskId, ThreadId)>,
}

impl Task {
    fn unseen() -> Task {
        Task {
            kind: None,
            parent: TaskId::NONE,
            name: None,
            site: SiteId(0),
            created_ns: None,
            polls: 0,
            running_ns: 0,
            poll_start: None,
            woken_in_poll: None,
            wait: None,
        }
    }
}

/// A thread's open scopes.
#[derive(Debug, Default)]
struct Thread {
    poll: Option<(TaskId, u64)>,
    regions: Vec<(StrId, u64, TaskId)>,
    block: Option<(BlockReason, SiteId, u64, TaskId)>,
}

struct AsyncRegion {
    name: StrId,
    task: TaskId,
    thread: ThreadId,
    start_ns: u64,
}

/// The visitor behind [`export_file`].
struct Exporter {
    files: Vec<TableFile>,
    opts: ExportOptions,
    id: Identity,
    info: ProcessInfo,
    tasks: HashMap<TaskId, Task>,
    threads: HashMap<ThreadId, Thread>,
    /// The bytes of every thread's region stack together.
    open_regions: StackBudget,
    async_regions: HashMap<u64, AsyncRegion>,
    /// Per thread, which task ran when: a stack sample is recorded after it was taken
    /// (its age), and names the task its thread ran then.
    running: TaskTimeline,
    /// Stack samples taken before the task runs kept for their thread: no task named.
    forgotten_samples: u64,
    /// The first write error; later events are ignored.
    error: Option<ExportError>,
    /// Tasks, threads and async regions past the limits, regions past the depth limit.
    over_tasks: u64,
    over_threads: u64,
    over_regions: u64,
    /// Ends without a begin in the dump (cut by the dump's start).
    unmatched_ends: u64,
    end_ns: u64,
    wall_origin_unix_ns: Option<i128>,
    string_buf: String,
}

fn opt_task(t: TaskId) -> Option<u64> {
    (t != TaskId::NONE).then_some(t.0)
}

fn ns(x: u64) -> Option<i64> {
    Some(i64::try_from(x).unwrap_or(i64::MAX))
}

fn thread_ns(t: ThreadId) -> Option<i64> {
    Some(i64::from(t.0))
}

impl Exporter {
    fn new(files: Vec<TableFile>, opts: ExportOptions) -> Exporter {
        let id = Identity {
            dump_id: opts.dump_id.clone(),
            incident_id: opts.incident_id.clone(),
            ..Identity::default()
        };
        Exporter {
            files,
            opts,
            id,
            info: ProcessInfo::default(),
            tasks: HashMap::new(),
            threads: HashMap::new(),
            open_regions: StackBudget::default(),
            async_regions: HashMap::new(),
            running: TaskTimeline::new(MAX_THREADS),
            forgotten_samples: 0,
            error: None,
            over_tasks: 0,
            over_threads: 0,
            over_regions: 0,
            unmatched_ends: 0,
            end_ns: 0,
            wall_origin_unix_ns: None,
            string_buf: String::new(),
        }
    }

    fn push(&mut self, table: usize, row: &[V<'_>]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.files[table].push(&self.id, row) {
            self.error = Some(e);
        }
    }

    /// The task's entry, made (unseen) when there is room.
    fn task_entry(&mut self, task: TaskId) -> Option<&mut Task> {
        if task == TaskId::NONE {
            return None;
        }
        bounded_entry(
            &mut self.tasks,
            task,
            MAX_LIVE_TASKS,
            &mut self.over_tasks,
            Task::unseen,
        )
    }

    fn thread_entry(&mut self, thread: ThreadId) -> Option<&mut Thread> {
        bounded_entry(
            &mut self.threads,
            thread,
            MAX_THREADS,
            &mut self.over_threads,
            Thread::default,
        )
    }

    fn name_of(&self, task: TaskId) -> Option<StrId> {
        self.tasks.get(&task).and_then(|t| t.name)
    }

    fn task_row(&mut self, tables: &Tables, id: TaskId, t: &Task, ended_ns: Option<u64>) {
        let name = t.name.map(|n| tables.name(n));
        let site = (t.site != SiteId(0)).then(|| tables.site_name(t.site));
        let kind = t.kind.map(|k| match k {
            Kind::Async => "async",
            Kind::User => "user",
        });
        self.push(
            ix::TASKS,
            &[
                V::U64(Some(id.0)),
                V::U64(opt_task(t.parent)),
                V::Str(kind),
                V::Str(name.as_deref()),
                V::Str(site.as_deref()),
                V::I64(t.created_ns.and_then(ns)),
                V::I64(ended_ns.and_then(ns)),
                V::I64(ns(t.polls)),
                V::I64(ns(t.running_ns)),
            ],
        );
    }

    fn await_row(
        &mut self,
        tables: &Tables,
        task: TaskId,
        name: Option<StrId>,
        a: Await,
        polled: Option<u64>,
    ) {
        let name = name.map(|n| tables.name(n));
        let woken_ns = a.woken.map(|w| w.0);
        self.push(
            ix::AWAITS,
            &[
                V::U64(Some(task.0)),
                V::Str(name.as_deref()),
                V::I64(ns(a.start_ns)),
                V::I64(woken_ns.and_then(ns)),
                V::I64(polled.and_then(ns)),
                V::I64(woken_ns.and_then(|w| ns(w.saturating_sub(a.start_ns)))),
                V::I64(
                    woken_ns
                        .zip(polled)
                        .and_then(|(w, p)| ns(p.saturating_sub(w))),
                ),
                V::U64(a.woken.and_then(|w| opt_task(w.1))),
                V::I64(a.woken.and_then(|w| thread_ns(w.2))),
            ],
        );
    }

    fn event_inner(&mut self, cx: &EventCx<'_>) {
        let (t, thread, tables) = (cx.ns, cx.thread, cx.tables);
        self.end_ns = self.end_ns.max(t);
        match cx.kind {
            EventKind::PollStart { task } | EventKind::UserTaskBegin { task, .. } => {
                self.running.begin(thread, task, t);
            }
            EventKind::PollEnd { task, .. } | EventKind::UserTaskEnd { task } => {
                self.running.end(thread, task, t);
            }
            _ => {}
        }
        match cx.kind {
            EventKind::TaskCreate {
                task,
                parent,
                name,
                site,
            } => self.create(task, parent, name, site, Kind::Async, t),
            EventKind::UserTaskBegin { task, parent, name } => {
                self.create(task, parent, name, SiteId(0), Kind::User, t)
            }
            EventKind::UserTaskEnd { task } | EventKind::TaskDrop { task } => {
                if let Some(mut tk) = self.tasks.remove(&task) {
                    if let Some(a) = tk.wait.take() {
                        self.await_row(tables, task, tk.name, a, None);
                    }
                    self.task_row(tables, task, &tk, Some(t));
                } else {
                    self.unmatched_ends += 1;
                }
            }
            EventKind::PollStart { task } => {
                let mut done = None;
                if let Some(tk) = self.task_entry(task) {
                    tk.polls += 1;
                    tk.poll_start = Some(t);
                    tk.woken_in_poll = None;
                    done = tk.wait.take().map(|a| (a, tk.name));
                }
                if let Some((a, name)) = done {
                    self.await_row(tables, task, name, a, Some(t));
                }
                if let Some(th) = self.thread_entry(thread) {
                    th.poll = Some((task, t));
                }
            }
            EventKind::PollEnd { task, ready } => {
                let mut start = match self.threads.get_mut(&thread).and_then(|th| th.poll.take()) {
                    Some((p, s)) if p == task => Some(s),
                    _ => None,
                };
                let mut name = None;
                if let Some(tk) = self.task_entry(task) {
                    start = start.or(tk.poll_start);
                    tk.poll_start = None;
                    if let Some(s) = start {
                        tk.running_ns = tk.running_ns.saturating_add(t.saturating_sub(s));
                    }
                    if !ready {
                        let woken = tk.woken_in_poll.take().map(|(_, by, th)| (t, by, th));
                        tk.wait = Some(Await { start_ns: t, woken });
                    }
                    name = tk.name;
                }
                let Some(start) = start else {
                    self.unmatched_ends += 1;
                    return;
                };
                let name = name.map(|n| tables.name(n));
                self.push(
                    ix::POLLS,
                    &[
                        V::U64(Some(task.0)),
                        V::Str(name.as_deref()),
                        V::I64(thread_ns(thread)),
                        V::I64(ns(start)),
                        V::I64(ns(t)),
                        V::I64(ns(t.saturating_sub(start))),
                        V::Bool(ready),
                    ],
                );
            }
            EventKind::Wake { task, waker } => {
                let mut in_poll = false;
                let mut name = None;
                if let Some(tk) = self.task_entry(task) {
                    name = tk.name;
                    if tk.poll_start.is_some() {
                        in_poll = true;
                        tk.woken_in_poll.get_or_insert((t, waker, thread));
                    } else if let Some(a) = &mut tk.wait {
                        a.woken.get_or_insert((t, waker, thread));
                    }
                }
                let waker_name = self.name_of(waker).map(|n| tables.name(n));
                let name = name.map(|n| tables.name(n));
                self.push(
                    ix::WAKES,
                    &[
                        V::I64(ns(t)),
                        V::U64(Some(task.0)),
                        V::Str(name.as_deref()),
                        V::U64(opt_task(waker)),
                        V::Str(waker_name.as_deref()),
                        V::I64(thread_ns(thread)),
                        V::Bool(in_poll),
                    ],
                );
            }
            EventKind::RegionBegin { name } => {
                let task = cx.task;
                // `thread_entry`'s look-up, borrowing the threads apart from the budget.
                let th = bounded_entry(
                    &mut self.threads,
                    thread,
                    MAX_THREADS,
                    &mut self.over_threads,
                    Thread::default,
                );
                if let Some(th) = th
                    && !self.open_regions.push(&mut th.regions, (name, t, task))
                {
                    self.over_regions += 1;
                }
            }
            EventKind::RegionEnd { name } => {
                let Some(th) = self.threads.get_mut(&thread) else {
                    self.unmatched_ends += 1;
                    return;
                };
                let Some(pos) = th.regions.iter().rposition(|r| r.0 == name) else {
                    self.unmatched_ends += 1;
                    return;
                };
                // Regions opened inside it and never closed end with it, unrecorded.
                let (_, start, task) = th.regions[pos];
                self.open_regions.truncate(&mut th.regions, pos);
                let region = tables.name(name);
                let task_name = self.name_of(task).map(|n| tables.name(n));
                self.push(
                    ix::REGIONS,
                    &[
                        V::Str(Some("sync")),
                        V::Str(Some(&region)),
                        V::U64(opt_task(task)),
                        V::Str(task_name.as_deref()),
                        V::I64(thread_ns(thread)),
                        V::U64(None),
                        V::I64(ns(pos as u64)),
                        V::I64(ns(start)),
                        V::I64(ns(t)),
                        V::I64(ns(t.saturating_sub(start))),
                    ],
                );
            }
            EventKind::AsyncRegionBegin { region, task, name } => {
                if self.async_regions.len() < MAX_LIVE_TASKS {
                    self.async_regions.insert(
                        region,
                        AsyncRegion {
                            name,
                            task,
                            thread,
                            start_ns: t,
                        },
                    );
                } else {
                    self.over_regions += 1;
                }
            }
            EventKind::AsyncRegionEnd { region, .. } => {
                let Some(r) = self.async_regions.remove(&region) else {
                    self.unmatched_ends += 1;
                    return;
                };
                let name = tables.name(r.name);
                let task_name = self.name_of(r.task).map(|n| tables.name(n));
                self.push(
                    ix::REGIONS,
                    &[
                        V::Str(Some("async")),
                        V::Str(Some(&name)),
                        V::U64(opt_task(r.task)),
                        V::Str(task_name.as_deref()),
                        V::I64(thread_ns(r.thread)),
                        V::U64(Some(region)),
                        V::I64(Some(0)),
                        V::I64(ns(r.start_ns)),
                        V::I64(ns(t)),
                        V::I64(ns(t.saturating_sub(r.start_ns))),
                    ],
                );
            }
            EventKind::BlockBegin { reason, site } => {
                let task = cx.task;
                if let Some(th) = self.thread_entry(thread) {
                    th.block = Some((reason, site, t, task));
                }
            }
            EventKind::BlockEnd => {
                let Some((reason, site, start, task)) =
                    self.threads.get_mut(&thread).and_then(|th| th.block.take())
                else {
                    self.unmatched_ends += 1;
                    return;
                };
                let site = tables.site_name(site);
                let task_name = self.name_of(task).map(|n| tables.name(n));
                self.push(
                    ix::BLOCKS,
                    &[
                        V::Str(Some(reason.as_str())),
                        V::Bool(matches!(
                            reason,
                            BlockReason::Mutex | BlockReason::RwLock | BlockReason::Condvar
                        )),
                        V::Str(Some(&site)),
                        V::U64(opt_task(task)),
                        V::Str(task_name.as_deref()),
                        V::I64(thread_ns(thread)),
                        V::I64(ns(start)),
                        V::I64(ns(t)),
                        V::I64(ns(t.saturating_sub(start))),
                    ],
                );
            }
            EventKind::Log { category, message } => {
                let mut msg = std::mem::take(&mut self.string_buf);
                msg.clear();
                match message {
                    Message::Interned(id) => msg.push_str(&tables.name(id)),
                    Message::Inline(b) => msg.push_str(&String::from_utf8_lossy(b)),
                }
                let category = tables.name(category);
                let task_name = self.name_of(cx.task).map(|n| tables.name(n));
                self.push(
                    ix::LOGS,
                    &[
                        V::I64(ns(t)),
                        V::I64(thread_ns(thread)),
                        V::U64(opt_task(cx.task)),
                        V::Str(task_name.as_deref()),
                        V::Str(Some(&category)),
                        V::Str(Some(&msg)),
                    ],
                );
                self.string_buf = msg;
            }
            EventKind::Metric { name, value } => {
                let name = tables.name(name);
                self.push(
                    ix::METRIC_SAMPLES,
                    &[
                        V::I64(ns(t)),
                        V::I64(thread_ns(thread)),
                        V::Str(Some(&name)),
                        V::F64(value),
                    ],
                );
            }
            EventKind::Stack {
                thread: sampled,
                cause,
                truncated,
                frames,
                age_ticks,
            } => {
                // Placed where it was taken: the poll it fell in may have ended since.
                let taken = taken_ns(t, age_ticks, cx.clock);
                let task = match self.running.at(sampled, taken) {
                    RunningAt::Task(task) => task,
                    RunningAt::Forgotten => {
                        self.forgotten_samples += 1;
                        TaskId::NONE
                    }
                    RunningAt::Idle | RunningAt::Unknown => TaskId::NONE,
                };
                let task_name = self.name_of(task).map(|n| tables.name(n));
                self.push(
                    ix::STACK_SAMPLES,
                    &[
                        V::I64(ns(taken)),
                        V::I64(thread_ns(sampled)),
                        V::U64(opt_task(task)),
                        V::Str(task_name.as_deref()),
                        V::Str(Some(cause.as_str())),
                        V::Bool(truncated),
                        V::Frames(frames),
                    ],
                );
            }
            _ => {}
        }
    }

    fn create(
        &mut self,
        task: TaskId,
        parent: TaskId,
        name: StrId,
        site: SiteId,
        kind: Kind,
        t: u64,
    ) {
        if let Some(tk) = self.task_entry(task) {
            tk.kind = Some(kind);
            tk.parent = parent;
            tk.name = Some(name);
            tk.site = site;
            tk.created_ns = Some(t);
        }
    }

    /// The rows written after the pass: tasks alive at the end, open awaits, the dump's
    /// row and the findings.
    fn finish_rows(&mut self, read: &ReadOutcome, profile: &Profile) -> Result<(), ExportError> {
        let tables = &profile.tables;
        let mut alive: Vec<(TaskId, Task)> = self.tasks.drain().collect();
        alive.sort_unstable_by_key(|(id, _)| *id);
        for (id, mut tk) in alive {
            if let Some(a) = tk.wait.take() {
                self.await_row(tables, id, tk.name, a, None);
            }
            self.task_row(tables, id, &tk, None);
        }
        let info = read.info.clone();
        let opt_unix = |x: u64| (x != 0).then(|| i64::try_from(x).unwrap_or(i64::MAX));
        let wall = self.wall_origin_unix_ns.and_then(|w| i64::try_from(w).ok());
        let read_error = read.error.as_ref().map(|e| e.to_string());
        self.push(
            ix::DUMPS,
            &[
                V::Str(Some(&info.service_version)),
                V::Str(Some(&info.program)),
                V::I64(Some(i64::from(info.pid))),
                V::I64(opt_unix(info.process_start_unix_ns)),
                V::I64(opt_unix(info.start_unix_ns)),
                V::I64(wall),
                V::Str(Some(&info.fdr_version)),
                V::Str(Some(&info.build_id)),
                V::I64(ns(self.end_ns)),
                V::I64(ns(read.stats.events)),
                V::Str(read_error.as_deref()),
            ],
        );
        let diagnosis = diagnose(profile);
        for (rank, f) in diagnosis.findings().enumerate() {
            let evidence = f.evidence.join("\n");
            self.push(
                ix::FINDINGS,
                &[
                    V::I64(ns(rank as u64 + 1)),
                    V::Str(Some(f.rule)),
                    V::Str(Some(f.severity.as_str())),
                    V::F64(f.score),
                    V::Str(Some(&f.title)),
                    V::Str(Some(&evidence)),
                    V::I64(f.window_ns.and_then(|w| ns(w.0))),
                    V::I64(f.window_ns.and_then(|w| ns(w.1))),
                    V::Str(Some(&f.fix)),
                ],
            );
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn left_out(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.over_tasks > 0 {
            v.push(format!(
                "{} events of tasks past {MAX_LIVE_TASKS} live ones: their rows lack names and counts",
                self.over_tasks
            ));
        }
        if self.over_threads > 0 {
            v.push(format!(
                "{} events of threads past {MAX_THREADS}: their polls, regions and blocks have no rows",
                self.over_threads
            ));
        }
        if self.over_regions > 0 {
            v.push(format!(
                "{} regions nested deeper than {MAX_DEPTH}, past {} MiB of open regions or past {MAX_LIVE_TASKS} open async regions: no rows",
                self.over_regions,
                MAX_OPEN_SPAN_BYTES >> 20
            ));
        }
        if self.forgotten_samples > 0 {
            v.push(format!(
                "{} stack samples were taken before the last {MAX_ENDED_RUNS_PER_THREAD} task runs of their thread that ended before they were recorded: their rows name no task",
                self.forgotten_samples
            ));
        }
        if self.running.too_deep > 0 {
            v.push(format!(
                "{} task runs nested over {MAX_OPEN_RUNS_PER_THREAD} deep on a thread: stack samples inside them name the task around them",
                self.running.too_deep
            ));
        }
        if self.running.untracked > 0 {
            v.push(format!(
                "{} task runs on threads past {MAX_THREADS} are not followed: their stack samples name no task",
                self.running.untracked
            ));
        }
        v
    }
}

impl Visitor for Exporter {
    fn start(&mut self, info: &ProcessInfo) {
        self.info = info.clone();
        self.id.host = self.opts.host.clone().unwrap_or_else(|| info.host.clone());
        self.id.service = self
            .opts
            .service
            .clone()
            .unwrap_or_else(|| info.service.clone());
    }

    fn event(&mut self, cx: &EventCx<'_>) {
        if self.wall_origin_unix_ns.is_none() {
            self.wall_origin_unix_ns = cx.clock.origin_wall_unix_ns;
        }
        if self.error.is_none() {
            self.event_inner(cx);
        }
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        self.end_ns = self.end_ns.max(cx.last_ns);
        if self.wall_origin_unix_ns.is_none() {
            self.wall_origin_unix_ns = cx.clock.origin_wall_unix_ns;
        }
    }
}

/// The table definitions, for callers that name them.
pub fn table_def(name: &str) -> Option<&'static TableDef> {
    schema::TABLES.into_iter().find(|t| t.name == name)
}

/// `map`'s entry for `key`, made with `make` while the map holds fewer than `max`; past that
/// a new key is counted in `over` and gets none.
fn bounded_entry<'a, K: std::hash::Hash + Eq, T>(
    map: &'a mut HashMap<K, T>,
    key: K,
    max: usize,
    over: &mut u64,
    make: impl FnOnce() -> T,
) -> Option<&'a mut T> {
    let full = map.len() >= max;
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(o) => Some(o.into_mut()),
        std::collections::hash_map::Entry::Vacant(_) if full => {
            *over += 1;
            None
        }
        std::collections::hash_map::Entry::Vacant(v) => Some(v.insert(make())),
    }
}
