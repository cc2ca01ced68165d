//! `fdr diff A B`: what changed between two traces, normalized so that traces of different
//! lengths and loads compare, and ranked so that a real change comes first.
//!
//! Each trace is read once by a [`Collect`] visitor into a [`DiffSideSet`]: per request
//! (a task name: every async or user task of that name is one request) the tasks created
//! *and* finished inside the window, and per phase (a region, an async region, or a block
//! at a site, inside a request of a task name or outside any task) the spans that began and
//! ended inside the window. What the window's edges cut is left out and counted
//! ([`Excluded`]): tasks created before the window (their name and start are unknown),
//! tasks still alive at its end, every phase of those tasks, and spans open at either edge.
//!
//! [`compare`] then normalizes: a phase inside requests of task name `T` by the requests of
//! `T` (time per request, from the complete requests only), a phase outside tasks by the
//! window (time per second), a request by its mean latency. Rows are ranked by their
//! normalized change weighted by how often it happens: `|Δ per request| × requests per
//! second` (the larger of the two traces' rates) or `|Δ per second|`, both in nanoseconds
//! per second of wall time. A phase that doubles in every request outranks one that was
//! slow once, and the trace lengths cancel out.
//!
//! Entries are matched by name (sites by `file:line:col`), never by id: ids are per trace.

use std::collections::{BTreeMap, HashMap};

use fdr_format::{EventKind, SiteId, StrId, Tables, TaskId, ThreadId};
use serde_json::Value;

use crate::error::AnalyzeError;
use crate::hist::Histogram;
use crate::limits::{
    MAX_DEPTH, MAX_LIVE_TASKS, MAX_OPEN_SPAN_BYTES, MAX_STATS_KEYS, StackBudget, Truncated,
    notes_json, notes_text,
};
use crate::profile::{REASON_NAMES, reason_index};
use crate::stream::{EndCx, EventCx, ReadOptions, ReadOutcome, Visitor};
use crate::text::{self, dur, signed_dur};

/// Phase spans held for live tasks until they finish, across all of them.
const MAX_PENDING_SPANS: usize = 1 << 20;
/// Async regions open at once.
const MAX_OPEN_ASYNC_REGIONS: usize = 100_000;

/// What a phase is: a region (or async region) by name, or a block by reason and site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PhaseId {
    Region(StrId),
    Block(usize, SiteId),
}

#[derive(Debug)]
struct LiveTask {
    name: StrId,
    start_ns: u64,
    /// Created (or begun) inside the window.
    seen_start: bool,
    /// Its phases' spans, kept until it finishes.
    pending: Vec<(PhaseId, u64)>,
}

/// Counts of what the window's edges cut, left out of the comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Excluded {
    /// Tasks whose creation came before the window (finished inside it or not).
    pub tasks_before_start: u64,
    /// Tasks created inside the window and still alive at its end.
    pub tasks_alive_at_end: u64,
    /// Phase spans inside those tasks.
    pub spans_in_edge_tasks: u64,
    /// Spans that began before the window or were still open at its end.
    pub spans_cut: u64,
}

/// Per task name: the requests created and finished inside the window.
#[derive(Debug, Clone, Default)]
struct RequestStats {
    complete: Histogram,
    alive_at_end: u64,
}

/// Reads one trace for a diff: see the [module docs](self).
#[derive(Debug, Default)]
pub struct Collect {
    live: HashMap<TaskId, LiveTask>,
    regions: HashMap<ThreadId, Vec<(StrId, u64, TaskId)>>,
    /// The bytes of every thread's region stack together, bounded as the profile's are.
    open_regions: StackBudget,
    blocks: HashMap<ThreadId, (PhaseId, u64, TaskId)>,
    async_regions: HashMap<u64, (StrId, u64, TaskId)>,
    pending_spans: usize,
    requests: BTreeMap<StrId, RequestStats>,
    /// Per (task name, or none), phase.
    phases: BTreeMap<(Option<StrId>, PhaseId), Histogram>,
    excluded: Excluded,
    dropped: Dropped,
    window_ns: u64,
    origin_wall_unix_ns: Option<i128>,
    tables: Tables,
    read_notes: Vec<Truncated>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Dropped {
    tasks: u64,
    spans: u64,
    keys: u64,
    opens: u64,
}

impl Collect {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Files a finished phase span of `task` (or of no task).
    fn span(&mut self, task: TaskId, phase: PhaseId, dur_ns: u64) {
        if task == TaskId::NONE {
            self.record(None, phase, dur_ns);
            return;
        }
        match self.live.get_mut(&task) {
            Some(t) if t.seen_start => {
                if self.pending_spans >= MAX_PENDING_SPANS {
                    self.dropped.spans += 1;
                    return;
                }
                self.pending_spans += 1;
                t.pending.push((phase, dur_ns));
            }
            Some(_) => self.excluded.spans_in_edge_tasks += 1,
            // A task not tracked: past the live-task limit (counted there).
            None => self.dropped.spans += 1,
        }
    }

    fn record(&mut self, task: Option<StrId>, phase: PhaseId, dur_ns: u64) {
        let key = (task, phase);
        if self.phases.len() >= MAX_STATS_KEYS && !self.phases.contains_key(&key) {
            self.dropped.keys += 1;
            return;
        }
        self.phases.entry(key).or_default().record(dur_ns);
    }

    /// A task seen for the first time by an event other than its creation.
    fn seen(&mut self, task: TaskId, ns: u64) {
        if task == TaskId::NONE || self.live.contains_key(&task) {
            return;
        }
        if self.live.len() >= MAX_LIVE_TASKS {
            self.dropped.tasks += 1;
            return;
        }
        self.live.insert(
            task,
            LiveTask {
                name: StrId(0),
                start_ns: ns,
                seen_start: false,
                pending: Vec::new(),
            },
        );
    }

    fn begin(&mut self, task: TaskId, name: StrId, ns: u64) {
        if self.live.len() >= MAX_LIVE_TASKS && !self.live.contains_key(&task) {
            self.dropped.tasks += 1;
            return;
        }
        if let Some(old) = self.live.insert(
            task,
            LiveTask {
                name,
                start_ns: ns,
                seen_start: true,
                pending: Vec::new(),
            },
        ) {
            self.pending_spans -= old.pending.len();
        }
    }

    fn finish(&mut self, task: TaskId, ns: u64) {
        let Some(t) = self.live.remove(&task) else {
            return;
        };
        self.pending_spans -= t.pending.len();
        if !t.seen_start {
            self.excluded.tasks_before_start += 1;
            self.excluded.spans_in_edge_tasks += t.pending.len() as u64;
            return;
        }
        if self.requests.len() >= MAX_STATS_KEYS && !self.requests.contains_key(&t.name) {
            self.dropped.keys += 1;
            return;
        }
        self.requests
            .entry(t.name)
            .or_default()
            .complete
            .record(ns.saturating_sub(t.start_ns));
        for (phase, d) in t.pending {
            self.record(Some(t.name), phase, d);
        }
    }

    /// What the trace contributes to a diff, names resolved.
    pub fn finish_side(self) -> DiffSideSet {
        let t = &self.tables;
        let name = |id: StrId| Name::of(&t.name(id));
        let phase = |p: PhaseId| match p {
            PhaseId::Region(n) => ("region", name(n)),
            PhaseId::Block(r, site) => (
                "block",
                Name::of(&format!(
                    "{} {}",
                    REASON_NAMES[r],
                    match t.site(site) {
                        Some(s) => format!("{}:{}:{}", s.file, s.line, s.col),
                        None => t.site_name(site).into_owned(),
                    }
                )),
            ),
        };
        let mut phases: BTreeMap<PhaseKey, DiffSide> = BTreeMap::new();
        for ((task, p), h) in &self.phases {
            let (what, n) = phase(*p);
            let key = PhaseKey {
                task: task.map(name),
                what,
                name: n,
            };
            // Two ids may share a name: merge them.
            let side = phases.entry(key).or_default();
            side.merge(h);
        }
        let mut requests: BTreeMap<Name, RequestSide> = BTreeMap::new();
        for (n, r) in &self.requests {
            let e = requests.entry(name(*n)).or_default();
            e.complete.merge(&r.complete);
            e.alive_at_end += r.alive_at_end;
        }
        let mut truncated = self.read_notes;
        let d = self.dropped;
        for (what, n, limit, note) in [
            (
                "live_tasks",
                d.tasks,
                MAX_LIVE_TASKS,
                format!(
                    "{} task events not tracked while {MAX_LIVE_TASKS} tasks were alive",
                    d.tasks
                ),
            ),
            (
                "pending_spans",
                d.spans,
                MAX_PENDING_SPANS,
                format!(
                    "{} phase spans not compared: their task was not tracked, or {MAX_PENDING_SPANS} spans of live tasks were held",
                    d.spans
                ),
            ),
            (
                "diff_keys",
                d.keys,
                MAX_STATS_KEYS,
                format!(
                    "{} spans or requests not compared: past {MAX_STATS_KEYS} distinct names",
                    d.keys
                ),
            ),
            (
                "open_spans",
                d.opens,
                MAX_OPEN_ASYNC_REGIONS,
                format!(
                    "{} region begins not tracked: nested over {MAX_DEPTH} deep, past {} MiB of open regions, or past {MAX_OPEN_ASYNC_REGIONS} open async regions",
                    d.opens,
                    MAX_OPEN_SPAN_BYTES >> 20
                ),
            ),
        ] {
            if n > 0 {
                truncated.push(Truncated::new(what, n, limit, note));
            }
        }
        DiffSideSet {
            window_ns: self.window_ns,
            origin_wall_unix_ns: self.origin_wall_unix_ns,
            phases,
            requests,
            excluded: self.excluded,
            truncated,
        }
    }
}

impl Visitor for Collect {
    fn event(&mut self, cx: &EventCx<'_>) {
        let ns = cx.ns;
        match cx.kind {
            EventKind::TaskCreate { task, name, .. }
            | EventKind::UserTaskBegin { task, name, .. } => self.begin(task, name, ns),
            EventKind::TaskDrop { task } | EventKind::UserTaskEnd { task } => self.finish(task, ns),
            EventKind::PollStart { task } | EventKind::Wake { task, .. } => self.seen(task, ns),
            EventKind::RegionBegin { name } => {
                self.seen(cx.task, ns);
                let stack = self.regions.entry(cx.thread).or_default();
                if !self.open_regions.push(stack, (name, ns, cx.task)) {
                    self.dropped.opens += 1;
                }
            }
            EventKind::RegionEnd { name } => {
                let Some(stack) = self.regions.get_mut(&cx.thread) else {
                    self.excluded.spans_cut += 1;
                    return;
                };
                match stack.iter().rposition(|r| r.0 == name) {
                    Some(pos) => {
                        let (name, start, task) = stack[pos];
                        self.open_regions.truncate(stack, pos);
                        self.span(task, PhaseId::Region(name), ns.saturating_sub(start));
                    }
                    None => self.excluded.spans_cut += 1,
                }
            }
            EventKind::AsyncRegionBegin { region, task, name } => {
                self.seen(task, ns);
                if self.async_regions.len() >= MAX_OPEN_ASYNC_REGIONS {
                    self.dropped.opens += 1;
                } else {
                    self.async_regions.insert(region, (name, ns, task));
                }
            }
            EventKind::AsyncRegionEnd { region, .. } => match self.async_regions.remove(&region) {
                Some((name, start, task)) => {
                    self.span(task, PhaseId::Region(name), ns.saturating_sub(start))
                }
                None => self.excluded.spans_cut += 1,
            },
            EventKind::BlockBegin { reason, site } => {
                self.seen(cx.task, ns);
                let p = PhaseId::Block(reason_index(reason), site);
                if self.blocks.insert(cx.thread, (p, ns, cx.task)).is_some() {
                    self.excluded.spans_cut += 1;
                }
            }
            EventKind::BlockEnd => match self.blocks.remove(&cx.thread) {
                Some((p, start, task)) => self.span(task, p, ns.saturating_sub(start)),
                None => self.excluded.spans_cut += 1,
            },
            _ => {}
        }
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        self.window_ns = cx.last_ns;
        self.origin_wall_unix_ns = cx.clock.origin_wall_unix_ns;
        let open = self.regions.values().map(|s| s.len() as u64).sum::<u64>()
            + self.blocks.len() as u64
            + self.async_regions.len() as u64;
        self.excluded.spans_cut += open;
        for (_, t) in std::mem::take(&mut self.live) {
            self.excluded.spans_in_edge_tasks += t.pending.len() as u64;
            if t.seen_start {
                self.excluded.tasks_alive_at_end += 1;
                if let Some(r) = self.requests.get_mut(&t.name) {
                    r.alive_at_end += 1;
                } else if self.requests.len() < MAX_STATS_KEYS {
                    self.requests.entry(t.name).or_default().alive_at_end += 1;
                }
            } else {
                self.excluded.tasks_before_start += 1;
            }
        }
        self.pending_spans = 0;
        crate::limits::read_notes(cx.stats, &mut self.read_notes);
        crate::limits::table_notes(cx.tables, &mut self.read_notes);
    }

    fn take_tables(&mut self, tables: Tables) {
        self.tables = tables;
    }
}

/// A name across traces: as shown (cut to [`text::MAX_SHOWN_BYTES`]) and a hash of it
/// whole, so long names are matched whole but never held whole.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Name {
    shown: String,
    hash: u64,
}

impl Name {
    fn of(full: &str) -> Self {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        full.hash(&mut h);
        Name {
            shown: text::clip(full.into()).into_owned(),
            hash: h.finish(),
        }
    }
}

/// A phase's identity across traces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PhaseKey {
    /// The name of the tasks it ran in, or `None` outside tasks.
    task: Option<Name>,
    /// `region` or `block`.
    what: &'static str,
    /// Region name, or `reason file:line:col`.
    name: Name,
}

/// A distribution of spans as a diff shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSide {
    hist: Histogram,
}

impl DiffSide {
    fn merge(&mut self, h: &Histogram) {
        self.hist.merge(h);
    }

    /// How many.
    pub fn count(&self) -> u64 {
        self.hist.count()
    }

    /// Their total duration (saturating).
    pub fn total_ns(&self) -> u64 {
        self.hist.sum()
    }

    fn json(&self) -> SideJson {
        SideJson {
            count: self.hist.count(),
            total_ns: self.hist.sum(),
            p50_ns: self.hist.p50(),
            p99_ns: self.hist.p99(),
            max_ns: self.hist.max(),
        }
    }
}

/// One task name's requests in one trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestSide {
    /// Lifetimes of the tasks created and finished inside the window.
    pub complete: DiffSide,
    /// Tasks created inside the window, alive at its end (left out).
    pub alive_at_end: u64,
}

/// What one trace contributes to a diff: small (a few numbers per name), so the first
/// trace's is all that is kept while the second is read.
#[derive(Debug, Clone, Default)]
pub struct DiffSideSet {
    /// The window: first to last event.
    pub window_ns: u64,
    /// Wall-clock Unix ns of the window's start, when the trace has a clock sync.
    pub origin_wall_unix_ns: Option<i128>,
    phases: BTreeMap<PhaseKey, DiffSide>,
    requests: BTreeMap<Name, RequestSide>,
    /// What the window's edges cut, left out.
    pub excluded: Excluded,
    /// What the reader and the collector left out to stay within their limits.
    pub truncated: Vec<Truncated>,
}

impl DiffSideSet {
    /// Reads a trace held in memory.
    pub fn of_slice(bytes: &[u8]) -> Result<(Self, ReadOutcome), AnalyzeError> {
        let mut c = Collect::new();
        let out = crate::stream::read_slice(bytes, &mut c, ReadOptions::default())?;
        Ok((c.finish_side(), out))
    }

    fn window_s(&self) -> f64 {
        (self.window_ns as f64 / 1e9).max(1e-9)
    }

    /// Complete requests of `task` per second of window.
    fn rate(&self, task: &Name) -> f64 {
        self.requests
            .get(task)
            .map_or(0.0, |r| r.complete.count() as f64 / self.window_s())
    }
}

/// How a phase row is normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// Per request of its task name (complete requests only).
    Request,
    /// Per second of window (outside tasks).
    Second,
}

impl Per {
    fn as_str(self) -> &'static str {
        match self {
            Per::Request => "request",
            Per::Second => "second",
        }
    }
}

/// One compared phase.
#[derive(Debug, Clone)]
pub struct PhaseRow {
    /// The name of the tasks it ran in (`None`: outside tasks).
    pub task: Option<String>,
    /// `region` or `block`.
    pub what: &'static str,
    /// Region name, or `reason file:line:col`.
    pub name: String,
    /// How it is normalized.
    pub per: Per,
    /// In A.
    pub a: DiffSide,
    /// In B.
    pub b: DiffSide,
    /// A's total per request (or per second), ns; `None` when A has no complete request of
    /// its task name to normalize by.
    pub a_norm_ns: Option<f64>,
    /// B's.
    pub b_norm_ns: Option<f64>,
    /// `|Δ normalized| × requests per second` (or `|Δ per second|`): ns per second of wall
    /// time; 0 when a side cannot be normalized.
    pub score: f64,
}

impl PhaseRow {
    /// B's normalized time minus A's, ns, when both are known.
    pub fn delta_ns(&self) -> Option<f64> {
        Some(self.b_norm_ns? - self.a_norm_ns?)
    }
}

/// One compared request (task name).
#[derive(Debug, Clone)]
pub struct RequestRow {
    /// The task name.
    pub name: String,
    /// In A.
    pub a: RequestSide,
    /// In B.
    pub b: RequestSide,
    /// Complete requests per second of A's window.
    pub a_rate: f64,
    /// Of B's.
    pub b_rate: f64,
    /// `|Δ mean latency| × requests per second` (the larger rate), ns per second; 0 when a
    /// side has no complete request.
    pub score: f64,
}

impl RequestRow {
    fn mean(s: &RequestSide) -> Option<f64> {
        let n = s.complete.count();
        (n > 0).then(|| s.complete.total_ns() as f64 / n as f64)
    }

    /// B's mean latency minus A's, ns, when both have complete requests.
    pub fn delta_mean_ns(&self) -> Option<f64> {
        Some(Self::mean(&self.b)? - Self::mean(&self.a)?)
    }
}

/// Two traces compared.
#[derive(Debug, Clone)]
pub struct Diff {
    /// Phases, largest normalized change first (rows that cannot be compared last).
    pub phases: Vec<PhaseRow>,
    /// Requests, largest normalized change first (rows that cannot be compared last).
    pub requests: Vec<RequestRow>,
    /// A's window, its wall-clock start, what its edges cut and its truncation notes.
    pub a: DiffSideSet,
    /// B's.
    pub b: DiffSideSet,
}

fn by_score<T>(rows: &mut [T], score: impl Fn(&T) -> f64, name: impl Fn(&T) -> String) {
    rows.sort_by(|x, y| {
        score(y)
            .total_cmp(&score(x))
            .then_with(|| name(x).cmp(&name(y)))
    });
}

/// Compares two traces' sides (see the [module docs](self)).
pub fn compare(mut a: DiffSideSet, mut b: DiffSideSet) -> Diff {
    let mut keys: Vec<PhaseKey> = a.phases.keys().cloned().collect();
    keys.extend(
        b.phases
            .keys()
            .filter(|k| !a.phases.contains_key(*k))
            .cloned(),
    );
    let mut phases = Vec::with_capacity(keys.len());
    for k in keys {
        let sa = a.phases.remove(&k).unwrap_or_default();
        let sb = b.phases.remove(&k).unwrap_or_default();
        let (per, na, nb, weight) = match &k.task {
            Some(t) => {
                let norm = |s: &DiffSideSet, side: &DiffSide| {
                    let n = s.requests.get(t).map_or(0, |r| r.complete.count());
                    (n > 0).then(|| side.total_ns() as f64 / n as f64)
                };
                (
                    Per::Request,
                    norm(&a, &sa),
                    norm(&b, &sb),
                    a.rate(t).max(b.rate(t)),
                )
            }
            None => (
                Per::Second,
                Some(sa.total_ns() as f64 / a.window_s()),
                Some(sb.total_ns() as f64 / b.window_s()),
                1.0,
            ),
        };
        let score = match (na, nb) {
            (Some(x), Some(y)) => (y - x).abs() * weight,
            _ => 0.0,
        };
        phases.push(PhaseRow {
            task: k.task.map(|t| t.shown),
            what: k.what,
            name: k.name.shown,
            per,
            a: sa,
            b: sb,
            a_norm_ns: na,
            b_norm_ns: nb,
            score,
        });
    }
    by_score(
        &mut phases,
        |r| r.score,
        |r| format!("{:?}{}", r.task, r.name),
    );
    let mut names: Vec<Name> = a.requests.keys().cloned().collect();
    names.extend(
        b.requests
            .keys()
            .filter(|k| !a.requests.contains_key(*k))
            .cloned(),
    );
    let mut requests: Vec<RequestRow> = names
        .into_iter()
        .map(|n| {
            let ra = a.requests.get(&n).cloned().unwrap_or_default();
            let rb = b.requests.get(&n).cloned().unwrap_or_default();
            let (a_rate, b_rate) = (a.rate(&n), b.rate(&n));
            let mut r = RequestRow {
                name: n.shown,
                a: ra,
                b: rb,
                a_rate,
                b_rate,
                score: 0.0,
            };
            r.score = r
                .delta_mean_ns()
                .map_or(0.0, |d| d.abs() * a_rate.max(b_rate));
            r
        })
        .collect();
    by_score(&mut requests, |r| r.score, |r| r.name.clone());
    Diff {
        phases,
        requests,
        a,
        b,
    }
}

/// A normalized change as a ratio: `+12.3%`, `x4.5` from twice up, `new`, `gone`.
fn change(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a <= 0.0 && b <= 0.0 => "~".into(),
        (Some(a), Some(_)) if a <= 0.0 => "new".into(),
        (Some(_), Some(b)) if b <= 0.0 => "gone".into(),
        (Some(a), Some(b)) if b / a >= 2.0 => format!("x{:.1}", b / a),
        (Some(a), Some(b)) => format!("{:+.1}%", (b / a - 1.0) * 100.0),
        _ => "n/a".into(),
    }
}

fn opt_dur(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| dur(v.max(0.0) as u64))
}

fn opt_signed(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| signed_dur(v as i128))
}

fn p99s(a: &DiffSide, b: &DiffSide) -> String {
    let p = |s: &DiffSide| {
        if s.count() == 0 {
            "-".into()
        } else {
            dur(s.hist.p99())
        }
    };
    format!("{} -> {}", p(a), p(b))
}

fn shown(s: &str) -> String {
    text::clip(s.into()).into_owned()
}

fn window_line(side: &str, s: &DiffSideSet) -> String {
    let from = s
        .origin_wall_unix_ns
        .map(|w| {
            format!(
                " from {} to {}",
                text::wall(w),
                text::wall(w.saturating_add(i128::from(s.window_ns)))
            )
        })
        .unwrap_or_default();
    let e = s.excluded;
    format!(
        "{side}: window {}{from}; left out at its edges: {} tasks created before it, {} alive at its end, {} spans in those tasks, {} spans cut\n",
        dur(s.window_ns),
        e.tasks_before_start,
        e.tasks_alive_at_end,
        e.spans_in_edge_tasks,
        e.spans_cut,
    )
}

impl Diff {
    /// As text: the windows, the phases and the requests (top `top` of each), then what
    /// each trace's reading left out, if anything.
    pub fn to_text(&self, top: usize) -> String {
        let mut out = String::new();
        out.push_str(&window_line("A", &self.a));
        out.push_str(&window_line("B", &self.b));
        out.push('\n');
        out.push_str(&text::paint(
            text::Style::Bold,
            "phases, per request of their task (per second of window outside tasks), largest change first",
        ));
        out.push('\n');
        let cells: Vec<Vec<String>> = self
            .phases
            .iter()
            .take(top)
            .map(|r| {
                vec![
                    r.task.as_deref().map_or_else(|| "-".into(), shown),
                    r.what.into(),
                    shown(&r.name),
                    r.per.as_str().into(),
                    format!("{} -> {}", r.a.count(), r.b.count()),
                    opt_dur(r.a_norm_ns),
                    opt_dur(r.b_norm_ns),
                    opt_signed(r.delta_ns()),
                    change(r.a_norm_ns, r.b_norm_ns),
                    p99s(&r.a, &r.b),
                ]
            })
            .collect();
        text::table(
            &mut out,
            &[
                "task",
                "what",
                "name",
                "per",
                "count A -> B",
                "A",
                "B",
                "delta",
                "change",
                "p99 A -> B",
            ],
            &cells,
        );
        out.push('\n');
        out.push_str(&text::paint(
            text::Style::Bold,
            "requests (tasks created and finished inside the window), largest change first",
        ));
        out.push('\n');
        let cells: Vec<Vec<String>> = self
            .requests
            .iter()
            .take(top)
            .map(|r| {
                let (ma, mb) = (RequestRow::mean(&r.a), RequestRow::mean(&r.b));
                vec![
                    shown(&r.name),
                    format!("{} -> {}", r.a.complete.count(), r.b.complete.count()),
                    format!("{:.1} -> {:.1}", r.a_rate, r.b_rate),
                    format!("{} -> {}", r.a.alive_at_end, r.b.alive_at_end),
                    opt_dur(ma),
                    opt_dur(mb),
                    opt_signed(r.delta_mean_ns()),
                    change(ma, mb),
                    p99s(&r.a.complete, &r.b.complete),
                ]
            })
            .collect();
        text::table(
            &mut out,
            &[
                "task",
                "complete A -> B",
                "per s A -> B",
                "alive at end",
                "mean A",
                "mean B",
                "delta",
                "change",
                "p99 A -> B",
            ],
            &cells,
        );
        for (side, s) in [("A", &self.a), ("B", &self.b)] {
            if !s.truncated.is_empty() {
                out.push_str(&format!("in {side}:\n"));
                notes_text(&mut out, &s.truncated);
            }
        }
        out
    }

    /// As JSON: `{"a": window, "b": window, "phases": [...], "requests": [...]}`, the top
    /// `top` rows of each, largest normalized change first.
    pub fn to_json(&self, top: usize) -> Value {
        let f = |x: Option<f64>| x.map(|v| (v * 10.0).round() / 10.0);
        let window = |s: &'_ DiffSideSet| WindowJson {
            duration_ns: s.window_ns,
            start_wall_unix_ns: s
                .origin_wall_unix_ns
                .map(|x| x.clamp(i64::MIN as i128, i64::MAX as i128) as i64),
            excluded: s.excluded,
            truncated: notes_json(&s.truncated),
        };
        let phases = self
            .phases
            .iter()
            .take(top)
            .map(|r| PhaseJson {
                task: r.task.as_deref(),
                what: r.what,
                name: &r.name,
                per: r.per.as_str(),
                a: r.a.json(),
                b: r.b.json(),
                a_per_ns: f(r.a_norm_ns),
                b_per_ns: f(r.b_norm_ns),
                delta_per_ns: f(r.delta_ns()),
                score_ns_per_s: (r.score * 10.0).round() / 10.0,
            })
            .collect();
        let requests = self
            .requests
            .iter()
            .take(top)
            .map(|r| {
                let side = |s: &RequestSide, rate: f64| RequestSideJson {
                    complete: s.complete.json(),
                    alive_at_end: s.alive_at_end,
                    per_s: (rate * 100.0).round() / 100.0,
                    mean_ns: f(RequestRow::mean(s)),
                };
                RequestJson {
                    name: &r.name,
                    a: side(&r.a, r.a_rate),
                    b: side(&r.b, r.b_rate),
                    delta_mean_ns: f(r.delta_mean_ns()),
                    score_ns_per_s: (r.score * 10.0).round() / 10.0,
                }
            })
            .collect();
        serde_json::to_value(DiffJson {
            a: window(&self.a),
            b: window(&self.b),
            phases,
            requests,
        })
        .expect("a diff serializes")
    }
}

/// One side's spans in `fdr diff --json`.
#[derive(serde::Serialize)]
struct SideJson {
    count: u64,
    total_ns: u64,
    p50_ns: u64,
    p99_ns: u64,
    max_ns: u64,
}

/// One trace's window in `fdr diff --json`.
#[derive(serde::Serialize)]
struct WindowJson {
    duration_ns: u64,
    start_wall_unix_ns: Option<i64>,
    excluded: Excluded,
    truncated: Value,
}

/// A phase row of `fdr diff --json`.
#[derive(serde::Serialize)]
struct PhaseJson<'a> {
    task: Option<&'a str>,
    what: &'static str,
    name: &'a str,
    per: &'static str,
    a: SideJson,
    b: SideJson,
    a_per_ns: Option<f64>,
    b_per_ns: Option<f64>,
    delta_per_ns: Option<f64>,
    score_ns_per_s: f64,
}

/// One trace's requests of a task name in `fdr diff --json`.
#[derive(serde::Serialize)]
struct RequestSideJson {
    #[serde(flatten)]
    complete: SideJson,
    alive_at_end: u64,
    per_s: f64,
    mean_ns: Option<f64>,
}

/// A request row of `fdr diff --json`.
#[derive(serde::Serialize)]
struct RequestJson<'a> {
    name: &'a str,
    a: RequestSideJson,
    b: RequestSideJson,
    delta_mean_ns: Option<f64>,
    score_ns_per_s: f64,
}

/// `fdr diff --json`.
#[derive(serde::Serialize)]
struct DiffJson<'a> {
    a: WindowJson,
    b: WindowJson,
    phases: Vec<PhaseJson<'a>>,
    requests: Vec<RequestJson<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdr_format::BlockReason;
    use fdr_test_support::scenarios::TraceBuilder;

    /// A trace of `n` requests `GET` (each with a `db` region of `db_ns`) over `window_ns`,
    /// plus a `conn` task created before the requests and, if `conn_ends`, dropped at the end.
    fn trace(n: u64, db_ns: u64, conn_ends: bool) -> Vec<u8> {
        let mut b = TraceBuilder::new();
        let th = b.thread("w");
        let (get, db, conn) = (b.string("GET"), b.string("db"), b.string("conn"));
        let site = b.site("src/db.rs", 9);
        let c = TaskId(1);
        b.push(
            th,
            0,
            EventKind::TaskCreate {
                task: c,
                parent: TaskId::NONE,
                name: conn,
                site,
            },
        );
        let mut t = 10;
        for i in 0..n {
            let task = TaskId(100 + i);
            b.push(
                th,
                t,
                EventKind::TaskCreate {
                    task,
                    parent: c,
                    name: get,
                    site,
                },
            );
            b.push(th, t + 1, EventKind::PollStart { task });
            b.push(th, t + 2, EventKind::RegionBegin { name: db });
            b.push(
                th,
                t + 3,
                EventKind::BlockBegin {
                    reason: BlockReason::Io,
                    site,
                },
            );
            b.push(th, t + 4, EventKind::BlockEnd);
            b.push(th, t + 2 + db_ns, EventKind::RegionEnd { name: db });
            b.push(th, t + 3 + db_ns, EventKind::PollEnd { task, ready: true });
            b.push(th, t + 4 + db_ns, EventKind::TaskDrop { task });
            t += 10 + db_ns;
        }
        if conn_ends {
            b.push(th, t, EventKind::TaskDrop { task: c });
        } else {
            b.push(th, t, EventKind::Park);
        }
        b.build()
    }

    #[test]
    fn a_slower_phase_outranks_a_longer_window_and_edge_tasks() {
        // A: 100 requests, db 1000 ns, the connection finishes inside the window; B: 10
        // requests, db 5000 ns, the connection still alive at the end.
        let (a, _) = DiffSideSet::of_slice(&trace(100, 1_000, true)).unwrap();
        let (b, _) = DiffSideSet::of_slice(&trace(10, 5_000, false)).unwrap();
        assert_eq!(b.excluded.tasks_alive_at_end, 1);
        let d = compare(a, b);
        let top = &d.phases[0];
        assert_eq!(
            (top.task.as_deref(), top.name.as_str()),
            (Some("GET"), "db")
        );
        assert_eq!(top.per, Per::Request);
        assert_eq!(top.delta_ns(), Some(4_000.0));
        // The io block did not change per request.
        let io = d.phases.iter().find(|r| r.what == "block").unwrap();
        assert_eq!(io.delta_ns(), Some(0.0));
        // The request's mean latency grew by the db region's change; the connection,
        // complete in A only, is not compared.
        assert_eq!(d.requests[0].name, "GET");
        assert_eq!(d.requests[0].delta_mean_ns(), Some(4_000.0));
        let conn = d.requests.iter().find(|r| r.name == "conn").unwrap();
        assert_eq!(conn.delta_mean_ns(), None);
        assert_eq!(conn.score, 0.0);
        assert_eq!(conn.b.alive_at_end, 1);
        let t = d.to_text(10);
        assert!(t.contains("x5.0"), "{t}");
        let j = d.to_json(10);
        assert_eq!(j["phases"][0]["name"], "db");
        assert_eq!(j["b"]["excluded"]["tasks_alive_at_end"], 1);
    }

    /// Regions that never end on many threads: their stacks share one budget, as the
    /// profile's do, instead of each thread holding its 256 deep.
    #[test]
    fn open_regions_on_many_threads_stay_within_one_budget() {
        let mut b = TraceBuilder::new();
        let names: Vec<StrId> = (0..MAX_DEPTH).map(|i| b.string(&format!("r{i}"))).collect();
        let threads = 2_000u64;
        for t in 0..threads {
            let th = b.thread(&format!("t{t}"));
            for (i, &name) in names.iter().enumerate() {
                b.push(th, t * 1_000 + i as u64, EventKind::RegionBegin { name });
            }
        }
        let bytes = b.write_to(Vec::new()).unwrap();
        let mut c = Collect::new();
        crate::stream::read_slice(&bytes, &mut c, ReadOptions::default()).unwrap();
        let held: usize = c.regions.values().map(|s| s.capacity()).sum();
        let entry = size_of::<(StrId, u64, TaskId)>();
        assert!(
            held * entry <= MAX_OPEN_SPAN_BYTES,
            "{} bytes of open regions held",
            held * entry
        );
        let dropped = c.dropped.opens;
        assert!(
            dropped > 0 && dropped < threads * MAX_DEPTH as u64,
            "{dropped}"
        );
        let side = c.finish_side();
        let note = side
            .truncated
            .iter()
            .find(|n| n.what == "open_spans")
            .unwrap();
        assert_eq!(note.count, dropped);
    }

    #[test]
    fn a_trace_against_itself_changes_nothing() {
        let bytes = trace(20, 3_000, false);
        let (a, _) = DiffSideSet::of_slice(&bytes).unwrap();
        let d = compare(a.clone(), a);
        assert!(
            d.phases
                .iter()
                .all(|r| r.delta_ns().is_none_or(|x| x == 0.0))
        );
        assert!(d.requests.iter().all(|r| r.score == 0.0));
    }
}
