//! The report's timeline: which lanes the findings involve, and every slice of those lanes.
//!
//! One state machine (`Slicer`) turns events into slices (polls, regions, blocks, parks,
//! user tasks on thread lanes; task lives, polls, blocks and async regions on task lanes);
//! a first pass scores every lane by its time inside the findings' windows (`Scores`),
//! a second keeps every slice of the chosen lanes (`Keep`). Memory is bounded: lanes
//! scored, tasks named and slices kept each have a cap, and past the slice cap the kept
//! time range narrows around the findings, so what the page holds is complete within the
//! range it states.

use std::collections::{HashMap, HashSet};

use fdr_format::{EventKind, SiteId, StrId, TaskId, ThreadId};

use crate::limits::{MAX_LIVE_TASKS, StackBudget};
use crate::stream::{EndCx, EventCx, Visitor};

/// Slices a report holds at most (about 40 bytes each in memory, 30 in the page).
pub const MAX_REPORT_SLICES: usize = 200_000;
/// Thread lanes a report draws at most.
pub const MAX_THREAD_LANES: usize = 12;
/// Task lanes a report draws at most.
pub const MAX_TASK_LANES: usize = 12;
/// Lanes scored at most (others are not candidates).
const MAX_SCORED_LANES: usize = 200_000;
/// Open scopes tracked per thread, and open async regions per task; all of them share
/// one [`StackBudget`] besides.
const MAX_OPEN: usize = 64;
/// Metric names a report keeps.
pub const MAX_METRICS: usize = 64;
/// Points kept per metric (every other one is thinned out past it).
const MAX_METRIC_POINTS: usize = 2048;

/// Where a slice is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// A recording thread.
    Thread(ThreadId),
    /// An async task.
    Task(TaskId),
}

/// What a slice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A poll of an async task.
    Poll,
    /// A region.
    Region,
    /// A block (lock wait, blocking call).
    Block,
    /// An idle executor worker.
    Park,
    /// A user task.
    UserTask,
    /// An async task's life, create to drop.
    TaskLife,
    /// An async region (a task's phase across awaits).
    AsyncRegion,
}

impl Kind {
    /// Its name in the page.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Poll => "poll",
            Kind::Region => "region",
            Kind::Block => "block",
            Kind::Park => "park",
            Kind::UserTask => "user_task",
            Kind::TaskLife => "task",
            Kind::AsyncRegion => "async_region",
        }
    }
}

/// What a slice is named by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Name {
    /// A string of the trace (region, task name).
    Str(StrId),
    /// A block: its reason (wire value) and site.
    Block(u8, SiteId),
    /// A task created before the trace's window.
    Unseen,
    /// A parked worker.
    Parked,
}

/// One slice.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    /// Its lane.
    pub lane: Lane,
    /// What it is.
    pub kind: Kind,
    /// Nesting depth in its lane (0 outermost).
    pub depth: u8,
    /// Its name.
    pub name: Name,
    /// Start, ns since the trace's first event.
    pub start_ns: u64,
    /// Duration.
    pub dur_ns: u64,
    /// Cut short: its end is the trace's end, or an enclosing scope's.
    pub unfinished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Poll(TaskId),
    User(TaskId),
    Region(StrId),
    Block(u8, SiteId, TaskId),
}

#[derive(Default)]
struct ThreadState {
    open: Vec<(Open, u64)>,
    parked: Option<u64>,
}

struct TaskState {
    name: Name,
    start_ns: u64,
    poll: Option<u64>,
    regions: Vec<(u64, StrId, u64)>,
}

/// Turns events into slices, handed to a sink.
pub(crate) struct Slicer<S> {
    threads: HashMap<ThreadId, ThreadState>,
    tasks: HashMap<TaskId, TaskState>,
    /// The bytes of every open-scope stack above: a trace of many threads (or tasks) with
    /// scopes that never end fills it, not [`MAX_OPEN`] on each.
    stacks: StackBudget,
    /// Scopes not tracked (nested too deep, past the stacks' budget, too many tasks).
    pub(crate) untracked: u64,
    pub(crate) sink: S,
}

/// Receives slices.
pub(crate) trait Sink {
    fn slice(&mut self, s: Slice);
}

impl<S: Sink> Slicer<S> {
    pub(crate) fn new(sink: S) -> Self {
        Slicer {
            threads: HashMap::new(),
            tasks: HashMap::new(),
            stacks: StackBudget::default(),
            untracked: 0,
            sink,
        }
    }

    fn task(&mut self, task: TaskId, ns: u64) -> Option<&mut TaskState> {
        Self::task_in(&mut self.tasks, &mut self.untracked, task, ns)
    }

    /// [`Slicer::task`] on its fields, for a caller that holds another of them.
    fn task_in<'t>(
        tasks: &'t mut HashMap<TaskId, TaskState>,
        untracked: &mut u64,
        task: TaskId,
        ns: u64,
    ) -> Option<&'t mut TaskState> {
        if task == TaskId::NONE {
            return None;
        }
        if !tasks.contains_key(&task) {
            if tasks.len() >= MAX_LIVE_TASKS {
                *untracked += 1;
                return None;
            }
            tasks.insert(
                task,
                TaskState {
                    name: Name::Unseen,
                    start_ns: ns,
                    poll: None,
                    regions: Vec::new(),
                },
            );
        }
        tasks.get_mut(&task)
    }

    fn push(&mut self, thread: ThreadId, open: Open, ns: u64) {
        let t = self.threads.entry(thread).or_default();
        if t.open.len() >= MAX_OPEN || !self.stacks.push(&mut t.open, (open, ns)) {
            self.untracked += 1;
        }
    }

    /// Ends the innermost open `open` on `thread` (and what was opened inside it).
    fn pop(&mut self, thread: ThreadId, open: Open, ns: u64) {
        let Some(t) = self.threads.get_mut(&thread) else {
            return;
        };
        let Some(pos) = t.open.iter().rposition(|o| o.0 == open) else {
            return;
        };
        let ended: Vec<(usize, Open, u64)> = t.open[pos..]
            .iter()
            .enumerate()
            .map(|(i, &(o, s))| (pos + i, o, s))
            .collect();
        self.stacks.truncate(&mut t.open, pos);
        for (depth, o, start) in ended.into_iter().rev() {
            let unfinished = depth != pos;
            self.emit_thread(thread, depth, o, start, ns, unfinished);
        }
    }

    fn emit_thread(
        &mut self,
        thread: ThreadId,
        depth: usize,
        o: Open,
        start: u64,
        end: u64,
        unfinished: bool,
    ) {
        let (kind, name) = match o {
            Open::Poll(task) => (
                Kind::Poll,
                self.tasks.get(&task).map_or(Name::Unseen, |t| t.name),
            ),
            Open::User(task) => (
                Kind::UserTask,
                self.tasks.get(&task).map_or(Name::Unseen, |t| t.name),
            ),
            Open::Region(n) => (Kind::Region, Name::Str(n)),
            Open::Block(r, site, task) => {
                if task != TaskId::NONE && self.tasks.contains_key(&task) {
                    self.sink.slice(Slice {
                        lane: Lane::Task(task),
                        kind: Kind::Block,
                        depth: 2,
                        name: Name::Block(r, site),
                        start_ns: start,
                        dur_ns: end.saturating_sub(start),
                        unfinished,
                    });
                }
                (Kind::Block, Name::Block(r, site))
            }
        };
        self.sink.slice(Slice {
            lane: Lane::Thread(thread),
            kind,
            depth: depth.min(u8::MAX as usize) as u8,
            name,
            start_ns: start,
            dur_ns: end.saturating_sub(start),
            unfinished,
        });
    }

    fn task_slice(
        &mut self,
        task: TaskId,
        kind: Kind,
        depth: u8,
        name: Name,
        (start, end): (u64, u64),
        unfinished: bool,
    ) {
        self.sink.slice(Slice {
            lane: Lane::Task(task),
            kind,
            depth,
            name,
            start_ns: start,
            dur_ns: end.saturating_sub(start),
            unfinished,
        });
    }

    fn finish_task(&mut self, task: TaskId, ns: u64, unfinished: bool) {
        let Some(mut t) = self.tasks.remove(&task) else {
            return;
        };
        let regions = self.stacks.take(&mut t.regions);
        if let Some(p) = t.poll {
            self.task_slice(task, Kind::Poll, 1, t.name, (p, ns), true);
        }
        for (i, &(_, n, s)) in regions.iter().enumerate().rev() {
            self.task_slice(
                task,
                Kind::AsyncRegion,
                3 + i.min(8) as u8,
                Name::Str(n),
                (s, ns),
                true,
            );
        }
        self.task_slice(
            task,
            Kind::TaskLife,
            0,
            t.name,
            (t.start_ns, ns),
            unfinished,
        );
    }

    pub(crate) fn event(&mut self, cx: &EventCx<'_>) {
        let ns = cx.ns;
        let th = cx.thread;
        match cx.kind {
            EventKind::TaskCreate { task, name, .. } => {
                if let Some(t) = self.task(task, ns) {
                    t.name = Name::Str(name);
                    t.start_ns = ns;
                }
            }
            EventKind::TaskDrop { task } => self.finish_task(task, ns, false),
            EventKind::PollStart { task } => {
                if let Some(t) = self.task(task, ns) {
                    t.poll = Some(ns);
                }
                self.push(th, Open::Poll(task), ns);
            }
            EventKind::PollEnd { task, .. } => {
                if let Some(t) = self.tasks.get_mut(&task)
                    && let Some(p) = t.poll.take()
                {
                    let name = t.name;
                    self.task_slice(task, Kind::Poll, 1, name, (p, ns), false);
                }
                self.pop(th, Open::Poll(task), ns);
            }
            EventKind::UserTaskBegin { task, name, .. } => {
                if let Some(t) = self.task(task, ns) {
                    t.name = Name::Str(name);
                }
                self.push(th, Open::User(task), ns);
            }
            EventKind::UserTaskEnd { task } => {
                self.pop(th, Open::User(task), ns);
                if let Some(mut t) = self.tasks.remove(&task) {
                    self.stacks.release(&mut t.regions);
                }
            }
            EventKind::RegionBegin { name } => self.push(th, Open::Region(name), ns),
            EventKind::RegionEnd { name } => self.pop(th, Open::Region(name), ns),
            EventKind::BlockBegin { reason, site } => {
                self.push(th, Open::Block(reason.to_wire(), site, cx.task), ns)
            }
            EventKind::BlockEnd => {
                let top = self
                    .threads
                    .get(&th)
                    .and_then(|t| t.open.iter().rev().find(|o| matches!(o.0, Open::Block(..))))
                    .map(|o| o.0);
                if let Some(o) = top {
                    self.pop(th, o, ns);
                }
            }
            EventKind::Park => self.threads.entry(th).or_default().parked = Some(ns),
            EventKind::Unpark => {
                if let Some(s) = self.threads.get_mut(&th).and_then(|t| t.parked.take()) {
                    self.sink.slice(Slice {
                        lane: Lane::Thread(th),
                        kind: Kind::Park,
                        depth: 0,
                        name: Name::Parked,
                        start_ns: s,
                        dur_ns: ns.saturating_sub(s),
                        unfinished: false,
                    });
                }
            }
            EventKind::AsyncRegionBegin { region, task, name } => {
                let stacks = &mut self.stacks;
                let tasks = &mut self.tasks;
                if let Some(t) = Self::task_in(tasks, &mut self.untracked, task, ns)
                    && (t.regions.len() >= MAX_OPEN
                        || !stacks.push(&mut t.regions, (region, name, ns)))
                {
                    self.untracked += 1;
                }
            }
            EventKind::AsyncRegionEnd { region, task } => {
                let Some(t) = self.tasks.get_mut(&task) else {
                    return;
                };
                let Some(pos) = t.regions.iter().rposition(|r| r.0 == region) else {
                    return;
                };
                let ended: Vec<(u64, StrId, u64)> = t.regions[pos..].to_vec();
                self.stacks.truncate(&mut t.regions, pos);
                for (i, (_, n, s)) in ended.into_iter().enumerate().rev() {
                    let depth = 3 + (pos + i).min(8) as u8;
                    self.task_slice(
                        task,
                        Kind::AsyncRegion,
                        depth,
                        Name::Str(n),
                        (s, ns),
                        i != 0,
                    );
                }
            }
            _ => {}
        }
    }

    pub(crate) fn end(&mut self, last_ns: u64) {
        let mut threads: Vec<ThreadId> = self.threads.keys().copied().collect();
        threads.sort();
        for th in threads {
            let Some(t) = self.threads.get_mut(&th) else {
                continue;
            };
            let open = self.stacks.take(&mut t.open);
            let parked = t.parked.take();
            for (depth, (o, s)) in open.into_iter().enumerate().rev() {
                self.emit_thread(th, depth, o, s, last_ns, true);
            }
            if let Some(s) = parked {
                self.sink.slice(Slice {
                    lane: Lane::Thread(th),
                    kind: Kind::Park,
                    depth: 0,
                    name: Name::Parked,
                    start_ns: s,
                    dur_ns: last_ns.saturating_sub(s),
                    unfinished: true,
                });
            }
        }
        let mut tasks: Vec<TaskId> = self.tasks.keys().copied().collect();
        tasks.sort();
        for t in tasks {
            self.finish_task(t, last_ns, true);
        }
    }
}

/// Time of one lane inside the findings' windows, by what it was doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneScore {
    /// Blocked (lock waits, blocking calls).
    pub blocked_ns: u64,
    /// Polled.
    pub polled_ns: u64,
    /// In regions and user tasks.
    pub other_ns: u64,
}

impl LaneScore {
    /// Blocked time weighs most, then polls: what a finding is about.
    pub fn weight(&self) -> u64 {
        self.blocked_ns
            .saturating_mul(3)
            .saturating_add(self.polled_ns.saturating_mul(2))
            .saturating_add(self.other_ns)
    }
}

/// Scores lanes by their time inside `windows`.
pub(crate) struct Scores {
    pub(crate) windows: Vec<(u64, u64)>,
    pub(crate) lanes: HashMap<Lane, LaneScore>,
}

impl Sink for Scores {
    fn slice(&mut self, s: Slice) {
        let end = s.start_ns.saturating_add(s.dur_ns);
        let inside: u64 = self
            .windows
            .iter()
            .map(|&(a, b)| end.min(b).saturating_sub(s.start_ns.max(a)))
            .fold(0, u64::saturating_add);
        if inside == 0 || matches!(s.kind, Kind::Park | Kind::TaskLife) {
            return;
        }
        if self.lanes.len() >= MAX_SCORED_LANES && !self.lanes.contains_key(&s.lane) {
            return;
        }
        let e = self.lanes.entry(s.lane).or_default();
        match s.kind {
            Kind::Block => e.blocked_ns = e.blocked_ns.saturating_add(inside),
            Kind::Poll => e.polled_ns = e.polled_ns.saturating_add(inside),
            _ => e.other_ns = e.other_ns.saturating_add(inside),
        }
    }
}

/// Keeps every slice of the chosen lanes, within [`MAX_REPORT_SLICES`]: past it, the
/// slices farthest from `center` go, and the kept range narrows to what stayed.
pub(crate) struct Keep {
    pub(crate) lanes: HashSet<Lane>,
    pub(crate) center: u64,
    /// Slices farther than this from `center` are not kept.
    pub(crate) radius: u64,
    pub(crate) slices: Vec<Slice>,
    /// Slices of the chosen lanes left out (outside the kept range).
    pub(crate) left_out: u64,
    /// More slices than the bound cross `center` itself: no range is whole, and no
    /// further slice is kept.
    pub(crate) overflowed: bool,
}

impl Keep {
    fn distance(&self, s: &Slice) -> u64 {
        let end = s.start_ns.saturating_add(s.dur_ns);
        if s.start_ns <= self.center && self.center <= end {
            0
        } else if end < self.center {
            self.center - end
        } else {
            s.start_ns - self.center
        }
    }
}

impl Sink for Keep {
    fn slice(&mut self, s: Slice) {
        if !self.lanes.contains(&s.lane) {
            return;
        }
        if self.overflowed || self.distance(&s) > self.radius {
            self.left_out += 1;
            return;
        }
        self.slices.push(s);
        if self.slices.len() > MAX_REPORT_SLICES {
            let keep = MAX_REPORT_SLICES * 3 / 4;
            let center = self.center;
            let dist = |s: &Slice| {
                let end = s.start_ns.saturating_add(s.dur_ns);
                if s.start_ns <= center && center <= end {
                    0
                } else if end < center {
                    center - end
                } else {
                    s.start_ns - center
                }
            };
            self.slices.select_nth_unstable_by_key(keep - 1, dist);
            // Everything as near as the farthest kept stays, so the range is whole.
            let r = dist(&self.slices[keep - 1]);
            self.radius = r;
            let before = self.slices.len();
            self.slices.retain(|s| dist(s) <= r);
            self.left_out += (before - self.slices.len()) as u64;
            if self.slices.len() > MAX_REPORT_SLICES && r > 0 {
                // Ties at the radius: narrow by one more nanosecond.
                self.radius = r - 1;
                let r = self.radius;
                let before = self.slices.len();
                self.slices.retain(|s| dist(s) <= r);
                self.left_out += (before - self.slices.len()) as u64;
            }
            if self.slices.len() > MAX_REPORT_SLICES {
                // Too many slices cross the center itself: keep the bound's worth, stop.
                self.radius = 0;
                self.left_out += (self.slices.len() - keep) as u64;
                self.slices.truncate(keep);
                self.overflowed = true;
            }
        }
    }
}

impl<S: Sink> Visitor for Slicer<S> {
    fn event(&mut self, cx: &EventCx<'_>) {
        Slicer::event(self, cx);
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        Slicer::end(self, cx.last_ns);
    }
}

/// A metric's samples over time.
#[derive(Debug, Clone, Default)]
pub struct MetricSeries {
    /// Points `(ns since the trace's first event, value)`, oldest first.
    pub points: Vec<(u64, f64)>,
    /// Points thinned out to stay within the bound.
    pub thinned: u64,
}

/// The first pass's other findings: the wall clock and the metric samples.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub(crate) origin_wall_unix_ns: Option<i128>,
    pub(crate) metrics: std::collections::BTreeMap<String, MetricSeries>,
    pub(crate) metrics_left_out: u64,
}

impl Visitor for Meta {
    fn event(&mut self, cx: &EventCx<'_>) {
        let EventKind::Metric { name, value } = cx.kind else {
            return;
        };
        let n = cx.tables.name(name);
        if !self.metrics.contains_key(n.as_ref()) && self.metrics.len() >= MAX_METRICS {
            self.metrics_left_out += 1;
            return;
        }
        let series = self.metrics.entry(n.into_owned()).or_default();
        if series.points.len() >= MAX_METRIC_POINTS {
            let mut i = 0;
            let before = series.points.len();
            series.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            series.thinned += (before - series.points.len()) as u64;
        }
        series.points.push((cx.ns, value));
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        self.origin_wall_unix_ns = cx.clock.origin_wall_unix_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_OPEN_SPAN_BYTES;
    use crate::stream::{ReadOptions, read_slice};
    use fdr_test_support::scenarios::TraceBuilder;

    /// Counts slices.
    struct Count(u64);
    impl Sink for Count {
        fn slice(&mut self, _: Slice) {
            self.0 += 1;
        }
    }

    /// Bytes the slicer's open-scope stacks hold.
    fn held(s: &Slicer<Count>) -> usize {
        let threads: usize = s.threads.values().map(|t| t.open.capacity()).sum();
        let tasks: usize = s.tasks.values().map(|t| t.regions.capacity()).sum();
        threads * size_of::<(Open, u64)>() + tasks * size_of::<(u64, StrId, u64)>()
    }

    /// Scopes that never end on many threads, and async regions that never end in many
    /// tasks: their stacks share one budget instead of each holding [`MAX_OPEN`], and each
    /// one left out is counted; what was tracked is still drawn, cut at the end.
    #[test]
    fn open_scopes_on_many_threads_and_tasks_share_one_budget() {
        let mut b = TraceBuilder::new();
        let names: Vec<StrId> = (0..MAX_OPEN).map(|i| b.string(&format!("r{i}"))).collect();
        let (threads, tasks) = (5_000u64, 2_000u64);
        for t in 0..threads {
            let th = b.thread(&format!("t{t}"));
            for (i, &name) in names.iter().enumerate() {
                b.push(th, t * 1_000 + i as u64, EventKind::RegionBegin { name });
            }
        }
        let th = b.thread("poller");
        for k in 1..=tasks {
            let task = TaskId(k);
            let at = 10_000_000 + k * 1_000;
            b.push(th, at, EventKind::PollStart { task });
            for (i, &name) in names.iter().enumerate() {
                let region = k * 1_000 + i as u64;
                b.push(
                    th,
                    at + 1,
                    EventKind::AsyncRegionBegin { region, task, name },
                );
            }
            b.push(th, at + 2, EventKind::PollEnd { task, ready: false });
        }
        let bytes = b.write_to(Vec::new()).unwrap();
        let mut s = Slicer::new(Count(0));
        // Read without its end, which draws and drops what is still open.
        struct Events<'s>(&'s mut Slicer<Count>);
        impl Visitor for Events<'_> {
            fn event(&mut self, cx: &EventCx<'_>) {
                self.0.event(cx);
            }
        }
        read_slice(&bytes, &mut Events(&mut s), ReadOptions::default()).unwrap();
        let bytes_held = held(&s);
        assert!(
            bytes_held <= MAX_OPEN_SPAN_BYTES,
            "{bytes_held} bytes of open scopes held"
        );
        let opened = (threads + tasks) * MAX_OPEN as u64;
        assert!(
            s.untracked > 0 && s.untracked < opened,
            "{} of {opened} left out",
            s.untracked
        );
        let polls = s.sink.0;
        s.end(u64::MAX / 2);
        let drawn = s.sink.0 - polls;
        // Every tracked scope is drawn at the end (with its task's life and thread lanes).
        assert!(
            drawn >= opened - s.untracked,
            "{drawn} drawn, {} tracked",
            opened - s.untracked
        );
        assert_eq!(held(&s), 0);
    }
}
