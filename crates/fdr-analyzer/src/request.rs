//! One request, as it happened: `fdr tasks --task-id N` and `--otel-trace-id ID`.
//!
//! [`Requests`] follows the tasks it is given through a trace and keeps, for each, its
//! name, parent, spawn site, OpenTelemetry ids, start and end (wall clock too), polls,
//! scheduling wait and wakes, and its phases in time order: regions, async regions, blocks
//! (lock waits among them), logs and the tasks it spawned. [`Linked`] is the first pass for
//! an OpenTelemetry trace id: the tasks linked to it, and those they spawned after the link.
//!
//! Memory is bounded: at most [`MAX_REQUESTS`] tasks, [`MAX_PHASES`] phases each (later
//! ones are counted), open regions [`MAX_DEPTH`] deep per thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fdr_format::{EventKind, Message, SiteId, StrId, Tables, TaskId, ThreadId};
use serde_json::Value;

use crate::limits::{MAX_DEPTH, Truncated, notes_json, notes_text};
use crate::profile::{REASON_NAMES, reason_index};
use crate::stream::{EndCx, EventCx, Visitor};
use crate::text::{self, dur, esc, hex};

/// Most tasks followed.
pub const MAX_REQUESTS: usize = 64;
/// Most phases kept per task.
pub const MAX_PHASES: usize = 2_000;
/// Most bytes of a log message kept.
const MAX_MESSAGE_BYTES: usize = text::MAX_SHOWN_BYTES;

/// First pass for `--otel-trace-id`: the tasks linked to a trace id, and the tasks they
/// create once linked.
#[derive(Debug)]
pub struct Linked {
    trace_id: [u8; 16],
    /// The tasks found, at most [`MAX_REQUESTS`].
    pub tasks: BTreeSet<TaskId>,
    /// Tasks found past [`MAX_REQUESTS`].
    pub more: u64,
}

impl Linked {
    /// Looks for the tasks of `trace_id`.
    pub fn new(trace_id: [u8; 16]) -> Self {
        Linked {
            trace_id,
            tasks: BTreeSet::new(),
            more: 0,
        }
    }

    fn add(&mut self, t: TaskId) {
        if self.tasks.contains(&t) {
            return;
        }
        if self.tasks.len() >= MAX_REQUESTS {
            self.more += 1;
        } else {
            self.tasks.insert(t);
        }
    }
}

impl Visitor for Linked {
    fn event(&mut self, cx: &EventCx<'_>) {
        match cx.kind {
            EventKind::OtelLink { task, trace_id, .. } if trace_id == self.trace_id => {
                self.add(task)
            }
            EventKind::TaskCreate { task, parent, .. }
            | EventKind::UserTaskBegin { task, parent, .. }
                if self.tasks.contains(&parent) =>
            {
                self.add(task)
            }
            _ => {}
        }
    }
}

/// What a phase is.
#[derive(Debug, Clone, PartialEq)]
pub enum PhaseKind {
    /// A region (on the thread, while the task was current).
    Region,
    /// An async region (across awaits).
    AsyncRegion,
    /// A block: why and where.
    Block {
        /// [`REASON_NAMES`] slot.
        reason: usize,
        /// Where.
        site: SiteId,
    },
    /// A log line: category and message.
    Log {
        /// The message (cut to [`text::MAX_SHOWN_BYTES`]).
        message: String,
    },
    /// One of its polls (async tasks): running on a thread.
    Poll,
    /// A task it spawned.
    Spawn {
        /// The new task.
        task: TaskId,
    },
}

/// One phase of a request.
#[derive(Debug, Clone)]
pub struct Phase {
    /// What it is.
    pub kind: PhaseKind,
    /// Region, log category or spawned task name.
    pub name: StrId,
    /// Start (ns since the trace's start).
    pub start_ns: u64,
    /// Duration; `None` when still open at the end of the trace (or for a log, a spawn).
    pub dur_ns: Option<u64>,
    /// The thread it happened on.
    pub thread: ThreadId,
    /// Regions it is nested in.
    pub depth: u16,
}

/// One task, followed through the trace.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Its id.
    pub task: TaskId,
    /// `async` or `user`; empty when its start was not seen.
    pub kind: &'static str,
    /// Its name (`None`: created before the window).
    pub name: Option<StrId>,
    /// Its parent.
    pub parent: TaskId,
    /// Where it was spawned (async tasks).
    pub site: SiteId,
    /// Its OpenTelemetry links: (trace id, span id).
    pub otel: Vec<([u8; 16], [u8; 8])>,
    /// Created or begun (ns since the trace's start); `None`: before the window.
    pub start_ns: Option<u64>,
    /// First seen, when its start was not.
    pub first_seen_ns: u64,
    /// Dropped or ended; `None`: alive at the end.
    pub end_ns: Option<u64>,
    /// Polls.
    pub polls: u64,
    /// Time polled.
    pub running_ns: u64,
    /// The longest poll.
    pub longest_poll_ns: u64,
    /// Time from a wake (or its creation) to its next poll.
    pub sched_wait_ns: u64,
    /// Wakes.
    pub wakes: u64,
    /// Phases, in order of their start.
    pub phases: Vec<Phase>,
    /// Phases past [`MAX_PHASES`], not kept.
    pub phases_omitted: u64,
    scheduled_at: Option<u64>,
    poll_start: Option<u64>,
}

/// Follows tasks through a trace: see the [module docs](self).
#[derive(Debug, Default)]
pub struct Requests {
    /// The tasks followed, by id.
    pub requests: BTreeMap<TaskId, Request>,
    /// Tasks asked for past [`MAX_REQUESTS`], not followed.
    pub more: u64,
    /// Wall-clock Unix ns of the trace's start, when it has a clock sync.
    pub origin_wall_unix_ns: Option<i128>,
    /// The trace's end (ns since its start).
    pub end_ns: u64,
    /// Names, sites and threads.
    pub tables: Tables,
    /// What the reader left out.
    pub truncated: Vec<Truncated>,
    /// Per thread: open regions of followed tasks (task, phase index).
    open: HashMap<ThreadId, Vec<(TaskId, usize, StrId)>>,
    blocks: HashMap<ThreadId, (TaskId, usize)>,
    async_open: HashMap<u64, (TaskId, usize)>,
}

impl Requests {
    /// Follows `tasks` (at most [`MAX_REQUESTS`]; `more` counts the rest).
    pub fn new(tasks: impl IntoIterator<Item = TaskId>) -> Self {
        let mut r = Requests::default();
        for t in tasks {
            if r.requests.len() >= MAX_REQUESTS {
                r.more += 1;
                continue;
            }
            r.requests.insert(
                t,
                Request {
                    task: t,
                    ..Request::default()
                },
            );
        }
        r
    }

    fn push(
        &mut self,
        task: TaskId,
        kind: PhaseKind,
        name: StrId,
        cx: &EventCx<'_>,
    ) -> Option<usize> {
        let depth = self
            .open
            .get(&cx.thread)
            .map_or(0, |s| s.iter().filter(|o| o.0 == task).count()) as u16;
        let r = self.requests.get_mut(&task)?;
        if r.phases.len() >= MAX_PHASES {
            r.phases_omitted += 1;
            return None;
        }
        r.phases.push(Phase {
            kind,
            name,
            start_ns: cx.ns,
            dur_ns: None,
            thread: cx.thread,
            depth,
        });
        Some(r.phases.len() - 1)
    }

    fn close(&mut self, task: TaskId, i: usize, ns: u64) {
        if let Some(p) = self
            .requests
            .get_mut(&task)
            .and_then(|r| r.phases.get_mut(i))
        {
            p.dur_ns = Some(ns.saturating_sub(p.start_ns));
        }
    }
}

impl Visitor for Requests {
    fn event(&mut self, cx: &EventCx<'_>) {
        let ns = cx.ns;
        if let Some(r) = self.requests.get_mut(&cx.task)
            && r.first_seen_ns == 0
            && r.start_ns.is_none()
        {
            r.first_seen_ns = ns;
        }
        match cx.kind {
            EventKind::TaskCreate {
                task,
                parent,
                name,
                site,
            } => {
                if self.requests.contains_key(&parent) {
                    self.push(parent, PhaseKind::Spawn { task }, name, cx);
                }
                if let Some(r) = self.requests.get_mut(&task) {
                    r.kind = "async";
                    r.name = Some(name);
                    r.parent = parent;
                    r.site = site;
                    r.start_ns = Some(ns);
                    r.scheduled_at = Some(ns);
                }
            }
            EventKind::UserTaskBegin { task, parent, name } => {
                if self.requests.contains_key(&parent) {
                    self.push(parent, PhaseKind::Spawn { task }, name, cx);
                }
                if let Some(r) = self.requests.get_mut(&task) {
                    r.kind = "user";
                    r.name = Some(name);
                    r.parent = parent;
                    r.start_ns = Some(ns);
                }
            }
            EventKind::TaskDrop { task } | EventKind::UserTaskEnd { task } => {
                if let Some(r) = self.requests.get_mut(&task) {
                    r.end_ns = Some(ns);
                }
            }
            EventKind::Wake { task, .. } => {
                if let Some(r) = self.requests.get_mut(&task) {
                    r.wakes += 1;
                    r.scheduled_at.get_or_insert(ns);
                }
            }
            EventKind::PollStart { task } => {
                if self.requests.contains_key(&task) {
                    self.push(task, PhaseKind::Poll, StrId(0), cx);
                }
                if let Some(r) = self.requests.get_mut(&task) {
                    if r.first_seen_ns == 0 && r.start_ns.is_none() {
                        r.first_seen_ns = ns;
                    }
                    r.polls += 1;
                    r.poll_start = Some(ns);
                    if let Some(w) = r.scheduled_at.take() {
                        r.sched_wait_ns = r.sched_wait_ns.saturating_add(ns.saturating_sub(w));
                    }
                }
            }
            EventKind::PollEnd { task, .. } => {
                if let Some(r) = self.requests.get_mut(&task)
                    && let Some(s) = r.poll_start.take()
                {
                    if let Some(p) = r
                        .phases
                        .iter_mut()
                        .rev()
                        .find(|p| p.kind == PhaseKind::Poll && p.start_ns == s)
                    {
                        p.dur_ns = Some(ns.saturating_sub(s));
                    }
                    let d = ns.saturating_sub(s);
                    r.running_ns = r.running_ns.saturating_add(d);
                    r.longest_poll_ns = r.longest_poll_ns.max(d);
                }
            }
            EventKind::OtelLink {
                task,
                trace_id,
                span_id,
            } => {
                if let Some(r) = self.requests.get_mut(&task)
                    && r.otel.len() < 16
                    && !r.otel.contains(&(trace_id, span_id))
                {
                    r.otel.push((trace_id, span_id));
                }
            }
            EventKind::RegionBegin { name } if self.requests.contains_key(&cx.task) => {
                let i = self.push(cx.task, PhaseKind::Region, name, cx);
                let stack = self.open.entry(cx.thread).or_default();
                if let Some(i) = i
                    && stack.len() < MAX_DEPTH
                {
                    stack.push((cx.task, i, name));
                }
            }
            EventKind::RegionEnd { name } => {
                if let Some(stack) = self.open.get_mut(&cx.thread)
                    && let Some(pos) = stack.iter().rposition(|o| o.2 == name)
                {
                    let (task, i, _) = stack[pos];
                    stack.truncate(pos);
                    self.close(task, i, ns);
                }
            }
            EventKind::AsyncRegionBegin { region, task, name } => {
                if let Some(i) = self.push(task, PhaseKind::AsyncRegion, name, cx) {
                    self.async_open.insert(region, (task, i));
                }
            }
            EventKind::AsyncRegionEnd { region, .. } => {
                if let Some((task, i)) = self.async_open.remove(&region) {
                    self.close(task, i, ns);
                }
            }
            EventKind::BlockBegin { reason, site } if self.requests.contains_key(&cx.task) => {
                let kind = PhaseKind::Block {
                    reason: reason_index(reason),
                    site,
                };
                if let Some(i) = self.push(cx.task, kind, StrId(0), cx) {
                    self.blocks.insert(cx.thread, (cx.task, i));
                }
            }
            EventKind::BlockEnd => {
                if let Some((task, i)) = self.blocks.remove(&cx.thread) {
                    self.close(task, i, ns);
                }
            }
            EventKind::Log { category, message } if self.requests.contains_key(&cx.task) => {
                let m = match message {
                    Message::Interned(id) => cx.tables.name(id).into_owned(),
                    Message::Inline(b) => String::from_utf8_lossy(b).into_owned(),
                };
                let mut end = m.len().min(MAX_MESSAGE_BYTES);
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                let kind = PhaseKind::Log {
                    message: m[..end].to_string(),
                };
                self.push(cx.task, kind, category, cx);
            }
            _ => {}
        }
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        self.end_ns = cx.last_ns;
        self.origin_wall_unix_ns = cx.clock.origin_wall_unix_ns;
        crate::limits::read_notes(cx.stats, &mut self.truncated);
        crate::limits::table_notes(cx.tables, &mut self.truncated);
        if self.more > 0 {
            self.truncated.push(Truncated::new(
                "requests",
                self.more,
                MAX_REQUESTS,
                format!(
                    "{} more tasks matched: only the first {MAX_REQUESTS} are shown",
                    self.more
                ),
            ));
        }
        let omitted: u64 = self.requests.values().map(|r| r.phases_omitted).sum();
        if omitted > 0 {
            self.truncated.push(Truncated::new(
                "phases",
                omitted,
                MAX_PHASES,
                format!("{omitted} phases not shown: past {MAX_PHASES} in a task"),
            ));
        }
    }

    fn take_tables(&mut self, tables: Tables) {
        self.tables = tables;
    }
}

impl Requests {
    fn name(&self, id: StrId) -> String {
        text::clip(self.tables.name(id)).into_owned()
    }

    fn site(&self, id: SiteId) -> String {
        match self.tables.site(id) {
            Some(s) => format!("{}:{}:{}", text::clip(s.file.into()), s.line, s.col),
            None => self.tables.site_name(id).into_owned(),
        }
    }

    fn task_name(&self, r: &Request) -> String {
        r.name
            .map_or_else(|| "(created before the window)".into(), |n| self.name(n))
    }

    fn thread(&self, t: ThreadId) -> String {
        match self.tables.thread(t) {
            Some(i) if !i.name.is_empty() => text::clip(i.name.as_str().into()).into_owned(),
            _ => format!("thread {}", t.0),
        }
    }

    fn phase_name(&self, p: &Phase) -> String {
        match &p.kind {
            PhaseKind::Region | PhaseKind::AsyncRegion => self.name(p.name),
            PhaseKind::Block { reason, site } => {
                format!("{} {}", REASON_NAMES[*reason], self.site(*site))
            }
            PhaseKind::Log { message } => format!("[{}] {message}", self.name(p.name)),
            PhaseKind::Spawn { task } => format!("task {} {}", task.0, self.name(p.name)),
            PhaseKind::Poll => String::new(),
        }
    }

    fn kind_name(p: &Phase) -> &'static str {
        match p.kind {
            PhaseKind::Region => "region",
            PhaseKind::AsyncRegion => "async_region",
            PhaseKind::Block { reason, .. } if reason <= 1 => "lock_wait",
            PhaseKind::Block { .. } => "block",
            PhaseKind::Log { .. } => "log",
            PhaseKind::Spawn { .. } => "spawn",
            PhaseKind::Poll => "poll",
        }
    }

    fn start(r: &Request) -> u64 {
        r.start_ns.unwrap_or(r.first_seen_ns)
    }

    /// As text: per task, its header, then its phases, one a line, nested regions indented.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if self.requests.is_empty() {
            s.push_str("no task matched\n");
        }
        let at = |ns: u64| text::at(ns, self.origin_wall_unix_ns);
        for r in self.requests.values() {
            let seen = r.start_ns.is_some() || r.first_seen_ns > 0 || r.polls > 0;
            let head = format!(
                "task {} {} {}",
                r.task.0,
                if r.kind.is_empty() { "-" } else { r.kind },
                esc(&self.task_name(r))
            );
            let _ = writeln!(s, "{}", text::paint(text::Style::Bold, &head));
            if !seen {
                let _ = writeln!(s, "  not in the trace\n");
                continue;
            }
            if r.parent.0 != 0 || r.site.0 != 0 {
                let _ = writeln!(
                    s,
                    "  parent   {}{}",
                    r.parent.0,
                    if r.site.0 != 0 {
                        format!(", spawned at {}", esc(&self.site(r.site)))
                    } else {
                        String::new()
                    }
                );
            }
            for (t, sp) in &r.otel {
                let _ = writeln!(s, "  otel     trace {} span {}", hex(t), hex(sp));
            }
            let start = Self::start(r);
            match r.start_ns {
                Some(ns) => {
                    let _ = writeln!(s, "  start    {}", at(ns));
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  start    before the window (first seen {})",
                        at(r.first_seen_ns)
                    );
                }
            }
            match r.end_ns {
                Some(e) => {
                    let _ = writeln!(
                        s,
                        "  end      {}\n  duration {}{}",
                        at(e),
                        dur(e.saturating_sub(start)),
                        if r.start_ns.is_none() {
                            " (at least)"
                        } else {
                            ""
                        }
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  end      alive at the end of the trace ({} so far)",
                        dur(self.end_ns.saturating_sub(start))
                    );
                }
            }
            if r.kind != "user" {
                let _ = writeln!(
                    s,
                    "  polls    {} (running {}, longest {}), scheduling wait {}, wakes {}",
                    r.polls,
                    dur(r.running_ns),
                    dur(r.longest_poll_ns),
                    dur(r.sched_wait_ns),
                    r.wakes
                );
            }
            if r.phases.is_empty() {
                let _ = writeln!(s, "  no phases (regions, blocks, logs, spawns)\n");
                continue;
            }
            let _ = writeln!(s, "  phases");
            let mut phases: Vec<&Phase> = r.phases.iter().collect();
            phases.sort_by_key(|p| p.start_ns);
            let rows: Vec<Vec<String>> = phases
                .iter()
                .map(|p| {
                    vec![
                        format!("+{}", dur(p.start_ns.saturating_sub(start))),
                        self.origin_wall_unix_ns.map_or_else(
                            || "-".into(),
                            |w| text::wall(w.saturating_add(i128::from(p.start_ns))),
                        ),
                        format!(
                            "{}{}",
                            "  ".repeat(p.depth.min(16) as usize),
                            Self::kind_name(p)
                        ),
                        self.phase_name(p),
                        match (&p.kind, p.dur_ns) {
                            (PhaseKind::Log { .. } | PhaseKind::Spawn { .. }, _) => "".into(),
                            (_, Some(d)) => dur(d),
                            (_, None) => "open at end".into(),
                        },
                        self.thread(p.thread),
                    ]
                })
                .collect();
            let mut table = String::new();
            text::table(
                &mut table,
                &["at", "wall clock", "phase", "name", "duration", "thread"],
                &rows,
            );
            for line in table.lines() {
                let _ = writeln!(s, "    {line}");
            }
            if r.phases_omitted > 0 {
                let _ = writeln!(s, "    ({} more phases not shown)", r.phases_omitted);
            }
            s.push('\n');
        }
        notes_text(&mut s, &self.truncated);
        s
    }

    /// As JSON: `{"tasks": [...], "truncated": [...]}`; times in ns since the trace's
    /// start, with `start_wall_unix_ns` for the wall clock.
    pub fn to_json(&self) -> Value {
        let wall = |ns: u64| {
            self.origin_wall_unix_ns
                .map(|w| w.saturating_add(i128::from(ns)).clamp(0, i64::MAX as i128) as i64)
        };
        let tasks = self
            .requests
            .values()
            .map(|r| {
                let start = Self::start(r);
                let phases = r
                    .phases
                    .iter()
                    .map(|p| {
                        let (reason, site) = match p.kind {
                            PhaseKind::Block { reason, site } => {
                                (Some(REASON_NAMES[reason]), Some(self.site(site)))
                            }
                            _ => (None, None),
                        };
                        PhaseJson {
                            kind: Self::kind_name(p),
                            name: self.phase_name(p),
                            start_ns: p.start_ns,
                            offset_ns: p.start_ns.saturating_sub(start),
                            start_wall_unix_ns: wall(p.start_ns),
                            dur_ns: p.dur_ns,
                            thread: p.thread.0,
                            depth: p.depth,
                            reason,
                            site,
                            task: match p.kind {
                                PhaseKind::Spawn { task } => Some(task.0),
                                _ => None,
                            },
                        }
                    })
                    .collect();
                TaskJson {
                    task: r.task.0,
                    kind: (!r.kind.is_empty()).then_some(r.kind),
                    name: r.name.map(|n| self.tables.name(n).into_owned()),
                    parent: r.parent.0,
                    spawn_site: (r.site.0 != 0).then(|| self.site(r.site)),
                    otel: r
                        .otel
                        .iter()
                        .map(|(t, s)| OtelJson {
                            trace_id: hex(t),
                            span_id: hex(s),
                        })
                        .collect(),
                    start_ns: r.start_ns,
                    first_seen_ns: start,
                    start_wall_unix_ns: wall(start),
                    end_ns: r.end_ns,
                    duration_ns: r.end_ns.map(|e| e.saturating_sub(start)),
                    alive_at_end: r.end_ns.is_none(),
                    created_before_window: r.start_ns.is_none(),
                    polls: r.polls,
                    running_ns: r.running_ns,
                    longest_poll_ns: r.longest_poll_ns,
                    sched_wait_ns: r.sched_wait_ns,
                    wakes: r.wakes,
                    phases,
                    phases_omitted: r.phases_omitted,
                }
            })
            .collect();
        serde_json::to_value(RequestsJson {
            tasks,
            truncated: notes_json(&self.truncated),
        })
        .expect("requests serialize")
    }
}

/// A phase of a request in `fdr tasks --task-id --json`; a block adds its reason and site,
/// a spawn the spawned task.
#[derive(serde::Serialize)]
struct PhaseJson {
    kind: &'static str,
    name: String,
    start_ns: u64,
    offset_ns: u64,
    start_wall_unix_ns: Option<i64>,
    dur_ns: Option<u64>,
    thread: u32,
    depth: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<u64>,
}

/// An OpenTelemetry link of a request.
#[derive(serde::Serialize)]
struct OtelJson {
    trace_id: String,
    span_id: String,
}

/// One request in `fdr tasks --task-id --json`.
#[derive(serde::Serialize)]
struct TaskJson {
    task: u64,
    kind: Option<&'static str>,
    name: Option<String>,
    parent: u64,
    spawn_site: Option<String>,
    otel: Vec<OtelJson>,
    start_ns: Option<u64>,
    first_seen_ns: u64,
    start_wall_unix_ns: Option<i64>,
    end_ns: Option<u64>,
    duration_ns: Option<u64>,
    alive_at_end: bool,
    created_before_window: bool,
    polls: u64,
    running_ns: u64,
    longest_poll_ns: u64,
    sched_wait_ns: u64,
    wakes: u64,
    phases: Vec<PhaseJson>,
    phases_omitted: u64,
}

/// `fdr tasks --task-id --json`.
#[derive(serde::Serialize)]
struct RequestsJson {
    tasks: Vec<TaskJson>,
    truncated: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{ReadOptions, read_slice};
    use fdr_format::BlockReason;
    use fdr_test_support::scenarios::TraceBuilder;

    #[test]
    fn a_request_shows_its_phases_in_order_with_wall_clock_times() {
        let mut b = TraceBuilder::new();
        let th = b.thread("w");
        let (get, db, cat) = (b.string("GET /user"), b.string("db"), b.string("sql"));
        let site = b.site("src/db.rs", 9);
        let (t, other) = (TaskId(5), TaskId(6));
        for task in [t, other] {
            b.push(
                th,
                0,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name: get,
                    site,
                },
            );
        }
        b.push(th, 100, EventKind::PollStart { task: t });
        b.push(
            th,
            110,
            EventKind::OtelLink {
                task: t,
                trace_id: [7; 16],
                span_id: [1; 8],
            },
        );
        b.push(th, 200, EventKind::RegionBegin { name: db });
        b.push(
            th,
            300,
            EventKind::BlockBegin {
                reason: BlockReason::Mutex,
                site,
            },
        );
        b.push(th, 1_300, EventKind::BlockEnd);
        b.push(
            th,
            1_400,
            EventKind::Log {
                category: cat,
                message: Message::Inline(b"select 1"),
            },
        );
        b.push(th, 5_200, EventKind::RegionEnd { name: db });
        b.push(
            th,
            5_300,
            EventKind::PollEnd {
                task: t,
                ready: true,
            },
        );
        b.push(th, 5_400, EventKind::TaskDrop { task: t });
        let trace = b.build();

        let mut l = Linked::new([7; 16]);
        read_slice(&trace, &mut l, ReadOptions::default()).unwrap();
        assert_eq!(l.tasks.iter().copied().collect::<Vec<_>>(), vec![t]);

        let mut r = Requests::new(l.tasks);
        read_slice(&trace, &mut r, ReadOptions::default()).unwrap();
        let q = &r.requests[&t];
        assert_eq!((q.start_ns, q.end_ns, q.polls), (Some(0), Some(5_400), 1));
        let kinds: Vec<_> = q.phases.iter().map(Requests::kind_name).collect();
        assert_eq!(kinds, ["poll", "region", "lock_wait", "log"]);
        assert_eq!(q.phases[0].dur_ns, Some(5_200));
        assert_eq!(q.phases[1].dur_ns, Some(5_000));
        assert_eq!(q.phases[2].dur_ns, Some(1_000));
        assert_eq!(q.phases[2].depth, 1);
        let text = r.to_text();
        assert!(text.contains("task 5 async GET /user"), "{text}");
        assert!(text.contains("duration 5.4us"), "{text}");
        assert!(text.contains("2025-06-15T15:06:40."), "{text}");
        assert!(text.contains("mutex src/db.rs:9:5"), "{text}");
        let v = r.to_json();
        assert_eq!(v["tasks"][0]["phases"][2]["kind"], "lock_wait");
        assert_eq!(v["tasks"][0]["otel"][0]["trace_id"], hex(&[7; 16]));
    }
}
