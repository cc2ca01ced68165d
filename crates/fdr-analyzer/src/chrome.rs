//! `fdr export --format chrome-json`: the Trace Event format (JSON object form), which
//! Perfetto UI, chrome://tracing and speedscope open.
//!
//! Written as the trace streams: a complete (`X`) event when a region, poll, user task,
//! block or park ends, an instant (`i`) event per log, and metadata (`M`) events naming the
//! process and threads at the end. `ts` and `dur` are microseconds since the trace start;
//! `pid` is the recorded process id, `tid` fdr's thread id.
//!
//! Memory follows the open slices (at most [`MAX_DEPTH`] per thread and
//! [`MAX_OPEN_SPAN_BYTES`] in all) and the live tasks' names (at most [`MAX_LIVE_TASKS`]);
//! what is left out is counted in [`ChromeExport::truncated`].

use std::collections::HashMap;
use std::io::Write;

use fdr_format::{BlockReason, EventKind, Message, ProcessInfo, SiteId, StrId, TaskId, ThreadId};
use serde::Serialize;

use crate::limits::{
    MAX_DEPTH, MAX_LIVE_TASKS, MAX_OPEN_SPAN_BYTES, StackBudget, Truncated, read_notes,
    table_notes, task_names_note,
};
use crate::stream::{EndCx, EventCx, Visitor};

#[derive(Default)]
struct Open {
    regions: Vec<(StrId, u64)>,
    polls: Vec<(TaskId, u64)>,
    user: Vec<(TaskId, StrId, u64)>,
    block: Option<(BlockReason, SiteId, u64)>,
    park: Option<u64>,
}

/// Streams a trace out as Chrome Trace Event JSON.
pub struct ChromeExport<W: Write> {
    out: W,
    pid: u32,
    program: String,
    first: bool,
    /// The event being written (reused: one allocation for the whole export).
    line: Vec<u8>,
    open: HashMap<ThreadId, Open>,
    task_names: HashMap<TaskId, StrId>,
    stacks: StackBudget,
    unopened: u64,
    unnamed: u64,
    /// Events written.
    pub written: u64,
    /// What the export left out to stay within its memory limits, known at the end.
    pub truncated: Vec<Truncated>,
    /// First write error (writing stops there).
    pub error: Option<std::io::Error>,
}

impl<W: Write> std::fmt::Debug for ChromeExport<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromeExport")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 1000.0 * 1000.0).round() / 1000.0
}

impl<W: Write> ChromeExport<W> {
    /// An exporter writing to `out`.
    pub fn new(out: W) -> Self {
        ChromeExport {
            out,
            pid: 0,
            program: String::new(),
            first: true,
            line: Vec::new(),
            open: HashMap::new(),
            task_names: HashMap::new(),
            stacks: StackBudget::default(),
            unopened: 0,
            unnamed: 0,
            written: 0,
            truncated: Vec::new(),
            error: None,
        }
    }

    /// The writer, after the trace ended.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn raw(&mut self, s: &str) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(s.as_bytes())
        {
            self.error = Some(e);
        }
    }

    fn emit<A: Serialize>(&mut self, ev: &Event<'_, A>) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        line.extend_from_slice(if self.first { b"\n" } else { b",\n" });
        self.first = false;
        serde_json::to_writer(&mut line, ev).expect("an event of strings and numbers serializes");
        if self.error.is_none()
            && let Err(e) = self.out.write_all(&line)
        {
            self.error = Some(e);
        }
        self.line = line;
        self.written += 1;
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per slice kind, all fields needed"
    )]
    fn complete<A: Serialize>(
        &mut self,
        name: &str,
        cat: &str,
        tid: ThreadId,
        start: u64,
        end: u64,
        args: A,
    ) {
        self.emit(&Event {
            args,
            cat: Some(cat),
            dur: Some(us(end.saturating_sub(start))),
            name,
            ph: "X",
            pid: self.pid,
            s: None,
            tid: tid.0,
            ts: Some(us(start)),
        });
    }
}

/// One Trace Event, its keys in the order a JSON object with sorted keys writes them
/// (the order the export has always had).
#[derive(Serialize)]
struct Event<'a, A> {
    args: A,
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    name: &'a str,
    ph: &'a str,
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'a str>,
    tid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<f64>,
}

#[derive(Serialize)]
struct TaskArgs {
    task: u64,
}

#[derive(Serialize)]
struct PollArgs {
    ready: bool,
    task: u64,
}

#[derive(Serialize)]
struct BlockArgs<'a> {
    site: &'a str,
    task: u64,
}

#[derive(Serialize)]
struct NoArgs {}

#[derive(Serialize)]
struct LogArgs<'a> {
    message: &'a str,
    task: u64,
}

#[derive(Serialize)]
struct LossArgs<'a> {
    events: u64,
    reason: &'a str,
}

#[derive(Serialize)]
struct NameArgs<'a> {
    name: &'a str,
}

/// A metadata (`M`) event naming the process or a thread.
fn metadata<'a>(what: &'a str, pid: u32, tid: u32, name: &'a str) -> Event<'a, NameArgs<'a>> {
    Event {
        args: NameArgs { name },
        cat: None,
        dur: None,
        name: what,
        ph: "M",
        pid,
        s: None,
        tid,
        ts: None,
    }
}

impl<W: Write> Visitor for ChromeExport<W> {
    fn start(&mut self, info: &ProcessInfo) {
        self.pid = info.pid;
        self.program = info.program.clone();
        self.raw("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
    }

    fn event(&mut self, cx: &EventCx<'_>) {
        let t = cx.tables;
        let ns = cx.ns;
        let tid = cx.thread;
        let o = self.open.entry(tid).or_default();
        let stacks = &mut self.stacks;
        // A begin's guard pushes it onto its stack; the arm counts a begin it could not.
        match cx.kind {
            EventKind::RegionBegin { name } if !stacks.push(&mut o.regions, (name, ns)) => {
                self.unopened += 1;
            }
            EventKind::RegionEnd { name } => {
                if let Some(pos) = o.regions.iter().rposition(|r| r.0 == name) {
                    let start = o.regions[pos].1;
                    stacks.truncate(&mut o.regions, pos);
                    let n = t.name(name).into_owned();
                    self.complete(&n, "region", tid, start, ns, TaskArgs { task: cx.task.0 });
                }
            }
            EventKind::PollStart { task } if !stacks.push(&mut o.polls, (task, ns)) => {
                self.unopened += 1;
            }
            EventKind::PollEnd { task, ready } => {
                if let Some(pos) = o.polls.iter().rposition(|p| p.0 == task) {
                    let start = o.polls[pos].1;
                    stacks.truncate(&mut o.polls, pos);
                    let name = self
                        .task_names
                        .get(&task)
                        .map_or_else(|| format!("task {}", task.0), |n| t.name(*n).into_owned());
                    self.complete(
                        &format!("poll {name}"),
                        "poll",
                        tid,
                        start,
                        ns,
                        PollArgs {
                            ready,
                            task: task.0,
                        },
                    );
                }
            }
            EventKind::UserTaskBegin { task, name, .. }
                if !stacks.push(&mut o.user, (task, name, ns)) =>
            {
                self.unopened += 1;
            }
            EventKind::UserTaskEnd { task } => {
                if let Some(pos) = o.user.iter().rposition(|p| p.0 == task) {
                    let (_, name, start) = o.user[pos];
                    stacks.truncate(&mut o.user, pos);
                    let n = t.name(name).into_owned();
                    self.complete(&n, "task", tid, start, ns, TaskArgs { task: task.0 });
                }
            }
            EventKind::BlockBegin { reason, site } => o.block = Some((reason, site, ns)),
            EventKind::BlockEnd => {
                if let Some((reason, site, start)) = o.block.take() {
                    let s = t.site_name(site).into_owned();
                    self.complete(
                        &format!("blocked: {}", reason.as_str()),
                        "block",
                        tid,
                        start,
                        ns,
                        BlockArgs {
                            site: &s,
                            task: cx.task.0,
                        },
                    );
                }
            }
            EventKind::Park => o.park = Some(ns),
            EventKind::Unpark => {
                if let Some(start) = o.park.take() {
                    self.complete("parked", "park", tid, start, ns, NoArgs {});
                }
            }
            EventKind::TaskCreate { task, name, .. } => {
                if self.task_names.len() < MAX_LIVE_TASKS || self.task_names.contains_key(&task) {
                    self.task_names.insert(task, name);
                } else {
                    self.unnamed += 1;
                }
            }
            EventKind::TaskDrop { task } => {
                self.task_names.remove(&task);
            }
            EventKind::Log { category, message } => {
                let m = match message {
                    Message::Interned(id) => t.name(id).into_owned(),
                    Message::Inline(b) => String::from_utf8_lossy(b).into_owned(),
                };
                let name = t.name(category);
                self.emit(&Event {
                    args: LogArgs {
                        message: &m,
                        task: cx.task.0,
                    },
                    cat: Some("log"),
                    dur: None,
                    name: &name,
                    ph: "i",
                    pid: self.pid,
                    s: Some("t"),
                    tid: tid.0,
                    ts: Some(us(ns)),
                });
            }
            EventKind::Loss { reason, events, .. } => {
                self.emit(&Event {
                    args: LossArgs {
                        events,
                        reason: reason.as_str(),
                    },
                    cat: Some("loss"),
                    dur: None,
                    name: "events lost",
                    ph: "i",
                    pid: self.pid,
                    s: Some("p"),
                    tid: tid.0,
                    ts: Some(us(ns)),
                });
            }
            _ => {}
        }
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        let pid = self.pid;
        let program = if self.program.is_empty() {
            "fdr trace".to_string()
        } else {
            self.program.clone()
        };
        self.emit(&metadata("process_name", pid, 0, &program));
        let mut threads: Vec<ThreadId> = self.open.keys().copied().collect();
        threads.sort();
        for tid in threads {
            let name = cx
                .tables
                .thread(tid)
                .map(|i| i.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("thread {}", tid.0));
            self.emit(&metadata("thread_name", pid, tid.0, &name));
        }
        read_notes(cx.stats, &mut self.truncated);
        if self.unopened > 0 {
            self.truncated.push(Truncated::new(
                "open_slices",
                self.unopened,
                MAX_DEPTH,
                format!(
                    "{} slices not written: nested over {MAX_DEPTH} deep on a thread, or past {} MiB of open slices",
                    self.unopened,
                    MAX_OPEN_SPAN_BYTES >> 20
                ),
            ));
        }
        self.truncated.extend(task_names_note(
            self.unnamed,
            "their polls are named `task ID`",
        ));
        table_notes(cx.tables, &mut self.truncated);
        self.raw("\n]}\n");
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e);
        }
    }
}
