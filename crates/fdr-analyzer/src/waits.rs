//! Async waits: what a task awaits, for how long, and what woke it.
//!
//! An await is the interval between a poll of an async task that returned `Pending` and the
//! first wake of that task after it. It is classified by what issued the wake:
//!
//! - [`Waker::Driver`]: the runtime's I/O or timer driver. The recorder writes the wake on
//!   the waking thread with the task current there; a wake with no task current on a runtime
//!   worker that is parked (between its park and unpark) or between two polls (the driver's
//!   maintenance turns) is the driver's. A thread is a worker once it has parked or polled a
//!   task.
//! - [`Waker::Task`]: another task, by name, with that task's innermost async region (its
//!   phase) at the wake; `child` when the waker is a task the waiting task created (a join).
//!   A wake right after a task completed on the thread, with no task current (a join
//!   handle's waker, woken by the runtime as the task finishes), is that task's.
//! - [`Waker::SelfWake`]: the task woke itself (a yield).
//! - [`Waker::Thread`]: a thread that is no runtime worker (a blocking pool thread, a std
//!   thread), with no task current.
//! - [`Waker::Unknown`]: the task was polled again with no wake recorded (its waker was not
//!   fdr's, or the wake was lost).
//!
//! A wake that arrives while the task is being polled ends no await: the task is scheduled
//! again as soon as that poll returns. The time between the wake and the next poll is
//! scheduling delay, not an await. Awaits are counted per waiting task name, its innermost
//! async region when the await began, and the waker, in log-bucketed histograms (at most
//! [`MAX_STATS_KEYS`] keys; past them, waits are counted as left out).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use fdr_format::{StrId, TaskId, ThreadId};

use crate::hist::Histogram;
use crate::limits::MAX_STATS_KEYS;

/// Async regions kept open per task (deeper ones are not tracked as phases).
pub const MAX_TASK_PHASES: usize = 16;
/// A wake with no task current on a thread this soon after a task completed there is the
/// completion's (a join handle's waker, woken by the runtime as the task finishes).
pub const COMPLETION_WAKE_NS: u64 = 200_000;
/// Distinct waiting tasks remembered per key (past it, `waiters` is a lower bound).
pub const MAX_WAITERS_COUNTED: usize = 32;
/// The phase of a task inside no async region. No trace defines this id (the recorder's
/// string ids stay below 2^20).
pub const NO_PHASE: StrId = StrId(u32::MAX - 1);

/// What ended an await.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Waker {
    /// The runtime's I/O or timer driver.
    Driver,
    /// Another task.
    Task {
        /// Its name.
        name: StrId,
        /// Its innermost async region at the wake ([`NO_PHASE`]: none).
        phase: StrId,
        /// The waker is a task the waiting task created (the wait was a join).
        child: bool,
    },
    /// The task woke itself.
    SelfWake,
    /// A thread that is no runtime worker, with no task current.
    Thread(ThreadId),
    /// No wake was recorded.
    Unknown,
}

/// The class of a [`Waker`], as the views group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WakerClass {
    /// The runtime's I/O or timer driver.
    Driver,
    /// Another task (or the task itself).
    Task,
    /// A foreign thread (blocking pool, std thread).
    Thread,
    /// No wake recorded.
    Unknown,
}

impl WakerClass {
    /// Every class, in display order.
    pub const ALL: [WakerClass; 4] = [
        WakerClass::Driver,
        WakerClass::Task,
        WakerClass::Thread,
        WakerClass::Unknown,
    ];

    /// `driver`, `task`, `thread` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            WakerClass::Driver => "driver",
            WakerClass::Task => "task",
            WakerClass::Thread => "thread",
            WakerClass::Unknown => "unknown",
        }
    }

    /// What the class means, for text output.
    pub fn describe(self) -> &'static str {
        match self {
            WakerClass::Driver => "the runtime's I/O or timer driver",
            WakerClass::Task => "another task",
            WakerClass::Thread => "a thread outside the runtime",
            WakerClass::Unknown => "no recorded wake",
        }
    }
}

impl Waker {
    /// Its class.
    pub fn class(self) -> WakerClass {
        match self {
            Waker::Driver => WakerClass::Driver,
            Waker::Task { .. } | Waker::SelfWake => WakerClass::Task,
            Waker::Thread(_) => WakerClass::Thread,
            Waker::Unknown => WakerClass::Unknown,
        }
    }
}

/// Per waiting task name, its phase and the waker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WaitKey {
    /// The waiting task's name.
    pub task: StrId,
    /// Its innermost async region when the await began ([`NO_PHASE`]: none).
    pub phase: StrId,
    /// What woke it.
    pub waker: Waker,
}

impl Waker {
    /// Its variant and fields in two words (equal wakers give equal words).
    #[inline]
    fn words(self) -> (u64, u64) {
        match self {
            Waker::Driver => (0, 0),
            Waker::Task { name, phase, child } => (
                1 | u64::from(child) << 8 | u64::from(name.0) << 32,
                u64::from(phase.0),
            ),
            Waker::SelfWake => (2, 0),
            Waker::Thread(t) => (3 | u64::from(t.0) << 32, 0),
            Waker::Unknown => (4, 0),
        }
    }
}

/// Hashed as its two words (`Waker::words`): fewer writes than the derived hash's one
/// per field (an await's key is hashed once per await).
impl std::hash::Hash for Waker {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (a, b) = self.words();
        h.write_u64(a);
        h.write_u64(b);
    }
}

/// Hashed as three words: the task's name and phase in one, the waker's two.
impl std::hash::Hash for WaitKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(u64::from(self.task.0) | u64::from(self.phase.0) << 32);
        self.waker.hash(h);
    }
}

/// Awaits of one [`WaitKey`].
#[derive(Debug, Clone, Default)]
pub struct WaitStats {
    /// Await durations.
    pub hist: Histogram,
    /// Start of the longest (ns since trace start).
    pub longest_at_ns: u64,
    /// Distinct waiting tasks (at most [`MAX_WAITERS_COUNTED`] are told apart).
    pub waiters: u64,
    seen: Vec<TaskId>,
}

impl WaitStats {
    fn record(&mut self, waiter: TaskId, start_ns: u64, dur_ns: u64) {
        if dur_ns >= self.hist.max() {
            self.longest_at_ns = start_ns;
        }
        self.hist.record(dur_ns);
        if self.seen.len() < MAX_WAITERS_COUNTED && !self.seen.contains(&waiter) {
            self.seen.push(waiter);
            self.waiters += 1;
        }
    }
}

/// Tasks still awaiting at the end of the window, per name and phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenWaits {
    /// How many.
    pub count: u64,
    /// The longest await so far (ns).
    pub longest_ns: u64,
}

/// A task's await state, kept with the task while it lives.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskWait {
    /// The await in progress: its start and the phase then.
    pending: Option<(u64, StrId)>,
    /// A wake arrived during the current poll.
    woken_in_poll: bool,
    /// The task that created this one.
    pub(crate) parent: TaskId,
    /// Open async regions, innermost last: (region id, name).
    phases: Vec<(u64, StrId)>,
    /// When its last poll ended.
    last_poll_end: Option<u64>,
    /// The wake that ended its last await, while it waits to be polled: when, and by what.
    woken: Option<(u64, Waker)>,
}

impl TaskWait {
    /// The innermost open async region's name (0: none).
    pub(crate) fn phase(&self) -> StrId {
        self.phases.last().map_or(NO_PHASE, |p| p.1)
    }

    /// The window restarts at `from_ns`: an await in progress counts from there.
    pub(crate) fn clip(&mut self, from_ns: u64) {
        if let Some(p) = &mut self.pending {
            p.0 = p.0.max(from_ns);
        }
    }

    /// A poll ended: `Pending` starts an await unless the task was woken during the poll.
    pub(crate) fn poll_end(&mut self, ready: bool, ns: u64) {
        self.last_poll_end = Some(ns);
        self.pending = if ready || self.woken_in_poll {
            None
        } else {
            Some((ns, self.phase()))
        };
        self.woken_in_poll = false;
    }

    /// An async region of this task began.
    pub(crate) fn region_begin(&mut self, region: u64, name: StrId) -> bool {
        if self.phases.len() >= MAX_TASK_PHASES {
            return false;
        }
        self.phases.push((region, name));
        true
    }

    /// An async region of this task ended (and any opened inside it).
    pub(crate) fn region_end(&mut self, region: u64) {
        if let Some(i) = self.phases.iter().rposition(|p| p.0 == region) {
            self.phases.truncate(i);
        }
    }
}

/// A thread's part in classifying wakes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ThreadWake {
    /// The thread parked or polled a task: a runtime worker.
    pub(crate) worker: bool,
    /// The last task that completed or was dropped here outside a poll, while no poll has
    /// started since: (task, its name, its parent, when).
    pub(crate) last_done: Option<(TaskId, StrId, TaskId, u64)>,
}

/// Live tasks listed at most (oldest first); the rest are counted.
pub const MAX_ALIVE_LISTED: usize = 1_000;

/// What a task alive at the end of the window was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliveState {
    /// Being polled since (ns).
    Running(u64),
    /// Awaiting since (ns), in a phase.
    Awaiting(u64, StrId),
    /// Woken (by what, when), waiting for a worker.
    Scheduled(u64, Waker),
    /// Never polled in the trace, or its state is unknown.
    Unknown,
}

/// A task alive at the end of the window (`fdr tasks --alive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliveTask {
    /// Its id.
    pub task: TaskId,
    /// Its name.
    pub name: StrId,
    /// Its spawn site.
    pub site: fdr_format::SiteId,
    /// When it was created, or first seen when the trace does not hold its creation (ns).
    pub since_ns: u64,
    /// The trace holds its creation.
    pub created_in_trace: bool,
    /// When its last poll ended.
    pub last_poll_ns: Option<u64>,
    /// What it was doing.
    pub state: AliveState,
}

impl TaskWait {
    /// The task's state at `end_ns`, given whether it is in a poll (since when).
    pub(crate) fn alive_state(&self, poll_start: Option<u64>) -> AliveState {
        if let Some(s) = poll_start {
            AliveState::Running(s)
        } else if let Some((since, phase)) = self.pending {
            AliveState::Awaiting(since, phase)
        } else if let Some((at, by)) = self.woken {
            AliveState::Scheduled(at, by)
        } else {
            AliveState::Unknown
        }
    }

    /// When its last poll ended.
    pub(crate) fn last_poll_end(&self) -> Option<u64> {
        self.last_poll_end
    }
}

/// Every await of a trace, per waiting task name, phase and waker.
#[derive(Debug, Clone, Default)]
pub struct Waits {
    index: crate::fasthash::FastMap<WaitKey, usize>,
    stats: Vec<(WaitKey, WaitStats)>,
    /// The entry of `stats` the last await was counted in: consecutive awaits often share
    /// a key (one kind of task woken by one driver), found again without hashing. Checked
    /// against the entry's key before use, so it needs no care when `stats` is rebuilt.
    last: usize,
    /// Names of tasks that polled other traced tasks inside their polls (hosts, such as a
    /// connection task polling its requests): their awaits repeat their guests'.
    pub hosts: BTreeSet<StrId>,
    /// Tasks still awaiting at the end, per name and phase.
    pub open: BTreeMap<(StrId, StrId), OpenWaits>,
    /// Awaits not counted: their key had no entry left.
    pub left_out: u64,
    /// Async region begins not tracked as phases (nested too deep in a task).
    pub phases_left_out: u64,
    /// Tasks alive at the end of the window, oldest first (at most [`MAX_ALIVE_LISTED`]).
    pub alive: Vec<AliveTask>,
    /// Tasks alive at the end past [`MAX_ALIVE_LISTED`], not listed.
    pub alive_unlisted: u64,
}

impl Waits {
    /// Awaits per key, in no particular order.
    pub fn stats(&self) -> &[(WaitKey, WaitStats)] {
        &self.stats
    }

    /// Counts an await of `waiter` (named `task`, in `phase`) that began at `start_ns` and
    /// was ended by `waker` at `end_ns`.
    fn record(
        &mut self,
        task: StrId,
        phase: StrId,
        waker: Waker,
        waiter: TaskId,
        start_ns: u64,
        end_ns: u64,
    ) {
        let key = WaitKey { task, phase, waker };
        let i = if self.stats.get(self.last).is_some_and(|s| s.0 == key) {
            self.last
        } else {
            match self.index.get(&key) {
                Some(&i) => i,
                None if self.stats.len() >= MAX_STATS_KEYS => {
                    self.left_out += 1;
                    return;
                }
                None => {
                    self.stats.push((key, WaitStats::default()));
                    self.index.insert(key, self.stats.len() - 1);
                    self.stats.len() - 1
                }
            }
        };
        self.last = i;
        self.stats[i]
            .1
            .record(waiter, start_ns, end_ns.saturating_sub(start_ns));
    }

    /// A poll of `task` starts: an await still pending had no recorded wake.
    pub(crate) fn poll_start(&mut self, task: TaskId, name: StrId, w: &mut TaskWait, ns: u64) {
        if let Some((since, phase)) = w.pending.take() {
            self.record(name, phase, Waker::Unknown, task, since, ns);
        }
        w.woken_in_poll = false;
        w.woken = None;
    }

    /// `task` was woken by `waker`; `in_poll`: it is being polled now. Returns the length
    /// of the await the wake ended, if it ended one.
    pub(crate) fn wake(
        &mut self,
        task: TaskId,
        name: StrId,
        w: &mut TaskWait,
        in_poll: bool,
        waker: Waker,
        ns: u64,
    ) -> Option<u64> {
        if in_poll {
            w.woken_in_poll = true;
            return None;
        }
        let (since, phase) = w.pending.take()?;
        self.record(name, phase, waker, task, since, ns);
        w.woken = Some((ns, waker));
        Some(ns.saturating_sub(since))
    }

    /// A task polled `guest` inside its own poll: it hosts other tasks.
    pub(crate) fn host(&mut self, name: StrId) {
        if self.hosts.len() < MAX_STATS_KEYS {
            self.hosts.insert(name);
        }
    }

    /// A task alive at the end of the window is still awaiting since `since`.
    pub(crate) fn open(&mut self, name: StrId, w: &TaskWait, end_ns: u64) {
        let Some((since, phase)) = w.pending else {
            return;
        };
        let key = (name, phase);
        if self.open.len() >= MAX_STATS_KEYS && !self.open.contains_key(&key) {
            self.left_out += 1;
            return;
        }
        let o = self.open.entry(key).or_default();
        o.count += 1;
        o.longest_ns = o.longest_ns.max(end_ns.saturating_sub(since));
    }

    /// Wakes by a thread that turned out to be a runtime worker are the driver's.
    pub(crate) fn resolve_threads(&mut self, is_worker: impl Fn(ThreadId) -> bool) {
        let old = std::mem::take(&mut self.stats);
        self.index.clear();
        for (mut k, s) in old {
            if let Waker::Thread(t) = k.waker
                && is_worker(t)
            {
                k.waker = Waker::Driver;
            }
            match self.index.get(&k) {
                Some(&i) => {
                    let into = &mut self.stats[i].1;
                    if s.hist.max() >= into.hist.max() {
                        into.longest_at_ns = s.longest_at_ns;
                    }
                    into.hist.merge(&s.hist);
                    for t in s.seen {
                        if into.seen.len() < MAX_WAITERS_COUNTED && !into.seen.contains(&t) {
                            into.seen.push(t);
                            into.waiters += 1;
                        }
                    }
                }
                None => {
                    self.index.insert(k, self.stats.len());
                    self.stats.push((k, s));
                }
            }
        }
    }

    /// Forgets every await counted so far (the window restarts); tasks keep their state.
    pub(crate) fn reset(&mut self) {
        self.index.clear();
        self.stats.clear();
        self.open.clear();
        self.left_out = 0;
    }

    /// Per waiting task name and waker class, all phases and wakers of the class merged.
    pub fn by_class(&self) -> BTreeMap<(StrId, WakerClass), Histogram> {
        let mut out: BTreeMap<(StrId, WakerClass), Histogram> = BTreeMap::new();
        for (k, s) in &self.stats {
            out.entry((k.task, k.waker.class()))
                .or_default()
                .merge(&s.hist);
        }
        out
    }
}

/// How a waker reads in text: `driver`, `task NAME in PHASE`, `thread NAME`, ...
pub fn waker_text(p: &crate::Profile, w: Waker) -> String {
    match w {
        Waker::Driver => "driver (I/O or timer)".into(),
        Waker::Task { name, phase, child } => {
            let mut s = format!("task {}", p.name(name));
            if phase != NO_PHASE {
                s.push_str(&format!(" in {}", p.name(phase)));
            }
            if child {
                s.push_str(" (its child)");
            }
            s
        }
        Waker::SelfWake => "itself (a yield)".into(),
        Waker::Thread(t) => format!("thread {}", p.thread_name(t)),
        Waker::Unknown => "unknown (no wake recorded)".into(),
    }
}

/// A waker as `--json` outputs carry it: its class, and who it was (fields by class).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WakerRow<'a> {
    /// `driver`, `task`, `self`, `thread` or `unknown`.
    pub class: &'static str,
    /// The waking task's name (`self` for a yield).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<Cow<'a, str>>,
    /// The waking task's innermost async region (present, maybe null, for a task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Option<Cow<'a, str>>>,
    /// The waking task is one the waiting task created (for a task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<bool>,
    /// The waking thread's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<Cow<'a, str>>,
}

fn waker_json(p: &crate::Profile, w: Waker) -> WakerRow<'_> {
    let mut v = WakerRow {
        class: w.class().as_str(),
        task: None,
        phase: None,
        child: None,
        thread: None,
    };
    match w {
        Waker::Task { name, phase, child } => {
            v.task = Some(p.name(name));
            v.phase = Some((phase != NO_PHASE).then(|| p.name(phase)));
            v.child = Some(child);
        }
        Waker::SelfWake => v.task = Some(Cow::Borrowed("self")),
        Waker::Thread(t) => v.thread = Some(p.thread_name(t)),
        Waker::Driver | Waker::Unknown => {}
    }
    v
}

fn phase_name(p: &crate::Profile, phase: StrId) -> String {
    if phase == NO_PHASE {
        "-".into()
    } else {
        p.name(phase).into_owned()
    }
}

/// The awaits of a profile, most total time first.
fn ranked(p: &crate::Profile) -> Vec<&(WaitKey, WaitStats)> {
    let mut rows: Vec<_> = p.waits.stats().iter().collect();
    rows.sort_by(|a, b| {
        b.1.hist
            .sum()
            .cmp(&a.1.hist.sum())
            .then_with(|| a.0.cmp(&b.0))
    });
    rows
}

/// `{"waits": [per task name, phase and waker, most total time first], "open": [tasks still
/// awaiting at the end], "truncated": [...]}`.
pub fn waits_json(p: &crate::Profile) -> serde_json::Value {
    /// One (task, phase, waker) row.
    #[derive(serde::Serialize)]
    struct Row<'a> {
        task: Cow<'a, str>,
        phase: Option<Cow<'a, str>>,
        waker: WakerRow<'a>,
        count: u64,
        total_ns: u64,
        p50_ns: u64,
        p99_ns: u64,
        max_ns: u64,
        longest_at_ns: u64,
        waiters: u64,
        host: bool,
    }
    /// Awaits still open at the end.
    #[derive(serde::Serialize)]
    struct Open<'a> {
        task: Cow<'a, str>,
        phase: Option<Cow<'a, str>>,
        count: u64,
        longest_ns: u64,
    }
    /// `fdr waits --json`.
    #[derive(serde::Serialize)]
    struct Waits<'a> {
        window: serde_json::Value,
        waits: Vec<Row<'a>>,
        open: Vec<Open<'a>>,
        truncated: serde_json::Value,
    }
    let waits = ranked(p)
        .into_iter()
        .map(|(k, s)| Row {
            task: p.name(k.task),
            phase: (k.phase != NO_PHASE).then(|| p.name(k.phase)),
            waker: waker_json(p, k.waker),
            count: s.hist.count(),
            total_ns: s.hist.sum(),
            p50_ns: s.hist.p50(),
            p99_ns: s.hist.p99(),
            max_ns: s.hist.max(),
            longest_at_ns: s.longest_at_ns,
            waiters: s.waiters,
            host: p.waits.hosts.contains(&k.task),
        })
        .collect();
    let open = p
        .waits
        .open
        .iter()
        .map(|((task, phase), o)| Open {
            task: p.name(*task),
            phase: (*phase != NO_PHASE).then(|| p.name(*phase)),
            count: o.count,
            longest_ns: o.longest_ns,
        })
        .collect();
    serde_json::to_value(Waits {
        window: p.window.to_json(),
        waits,
        open,
        truncated: crate::limits::notes_json(&p.truncated()),
    })
    .expect("waits serialize")
}

/// `fdr waits` as text: a table of awaits, then the tasks still awaiting at the end.
pub fn waits_text(p: &crate::Profile) -> String {
    use crate::text::dur;
    let mut out = format!("{}\n", p.window);
    let rows: Vec<Vec<String>> = ranked(p)
        .into_iter()
        .map(|(k, s)| {
            let mut task = p.name(k.task).into_owned();
            if p.waits.hosts.contains(&k.task) {
                task.push_str(" (host)");
            }
            vec![
                task,
                phase_name(p, k.phase),
                waker_text(p, k.waker),
                s.hist.count().to_string(),
                dur(s.hist.sum()),
                dur(s.hist.p50()),
                dur(s.hist.p99()),
                dur(s.hist.max()),
                s.waiters.to_string(),
            ]
        })
        .collect();
    crate::text::table(
        &mut out,
        &[
            "task", "phase", "woken by", "awaits", "total", "p50", "p99", "max", "tasks",
        ],
        &rows,
    );
    if !p.waits.open.is_empty() {
        out.push_str("\nstill awaiting at the end\n");
        let rows: Vec<Vec<String>> = p
            .waits
            .open
            .iter()
            .map(|((task, phase), o)| {
                vec![
                    p.name(*task).into_owned(),
                    phase_name(p, *phase),
                    o.count.to_string(),
                    dur(o.longest_ns),
                ]
            })
            .collect();
        crate::text::table(&mut out, &["task", "phase", "tasks", "longest"], &rows);
    }
    if !p.waits.hosts.is_empty() {
        out.push_str(
            "(host): its tasks poll other traced tasks inside their polls, so their awaits repeat those tasks'\n",
        );
    }
    crate::limits::notes_text(&mut out, &p.truncated());
    out
}

/// Per waker class, a task name's awaits: `{"driver": {"count", "total_ns", "p50_ns",
/// "p99_ns"}, ...}` (classes with none left out).
pub(crate) fn class_json(
    by: &BTreeMap<(StrId, WakerClass), Histogram>,
    task: StrId,
) -> serde_json::Value {
    /// One class's awaits.
    #[derive(serde::Serialize)]
    struct Class {
        count: u64,
        total_ns: u64,
        p50_ns: u64,
        p99_ns: u64,
    }
    let classes: BTreeMap<&'static str, Class> = WakerClass::ALL
        .iter()
        .filter_map(|c| {
            let h = by.get(&(task, *c))?;
            Some((
                c.as_str(),
                Class {
                    count: h.count(),
                    total_ns: h.sum(),
                    p50_ns: h.p50(),
                    p99_ns: h.p99(),
                },
            ))
        })
        .collect();
    serde_json::to_value(classes).expect("classes serialize")
}

/// Per waker class, a task name's awaits as one cell: `driver 40ms/52ms, task 3ms/9ms`
/// (p50/p99), or `-`.
pub(crate) fn class_cell(by: &BTreeMap<(StrId, WakerClass), Histogram>, task: StrId) -> String {
    let cells: Vec<String> = WakerClass::ALL
        .iter()
        .filter_map(|c| {
            by.get(&(task, *c)).map(|h| {
                format!(
                    "{} {}/{}",
                    c.as_str(),
                    crate::text::dur(h.p50()),
                    crate::text::dur(h.p99())
                )
            })
        })
        .collect();
    if cells.is_empty() {
        "-".into()
    } else {
        cells.join(", ")
    }
}

fn alive_state_text(p: &crate::Profile, s: AliveState, end: u64) -> String {
    use crate::text::dur;
    match s {
        AliveState::Running(since) => format!("running for {}", dur(end.saturating_sub(since))),
        AliveState::Awaiting(since, phase) => {
            let mut t = format!("awaiting for {}", dur(end.saturating_sub(since)));
            if phase != NO_PHASE {
                t.push_str(&format!(" in {}", p.name(phase)));
            }
            t
        }
        AliveState::Scheduled(at, by) => format!(
            "woken by {} {} ago, waiting for a worker",
            waker_text(p, by),
            dur(end.saturating_sub(at))
        ),
        AliveState::Unknown => "not polled in the window".into(),
    }
}

/// `fdr tasks --alive` as JSON: `{"window", "alive": [oldest first], "unlisted", "truncated"}`.
pub fn alive_json(p: &crate::Profile, limit: usize) -> serde_json::Value {
    /// One live task.
    #[derive(serde::Serialize)]
    struct Row<'a> {
        task: u64,
        name: Cow<'a, str>,
        spawn_site: Cow<'a, str>,
        age_ns: u64,
        created_in_trace: bool,
        last_poll_end_ns: Option<u64>,
        state: &'static str,
        state_since_ns: Option<u64>,
        phase: Option<Cow<'a, str>>,
        woken_by: Option<WakerRow<'a>>,
    }
    /// `fdr tasks --alive --json`.
    #[derive(serde::Serialize)]
    struct Alive<'a> {
        window: serde_json::Value,
        alive: Vec<Row<'a>>,
        unlisted: u64,
        truncated: serde_json::Value,
    }
    let end = p.window.to_ns;
    let alive = p
        .waits
        .alive
        .iter()
        .take(limit)
        .map(|a| {
            let (state, since, waker) = match a.state {
                AliveState::Running(s) => ("running", Some(s), None),
                AliveState::Awaiting(s, _) => ("awaiting", Some(s), None),
                AliveState::Scheduled(s, by) => ("scheduled", Some(s), Some(waker_json(p, by))),
                AliveState::Unknown => ("unknown", None, None),
            };
            Row {
                task: a.task.0,
                name: p.name(a.name),
                spawn_site: p.site_name(a.site),
                age_ns: end.saturating_sub(a.since_ns),
                created_in_trace: a.created_in_trace,
                last_poll_end_ns: a.last_poll_ns,
                state,
                state_since_ns: since,
                phase: match a.state {
                    AliveState::Awaiting(_, ph) if ph != NO_PHASE => Some(p.name(ph)),
                    _ => None,
                },
                woken_by: waker,
            }
        })
        .collect();
    serde_json::to_value(Alive {
        window: p.window.to_json(),
        alive,
        unlisted: p.waits.alive_unlisted + p.waits.alive.len().saturating_sub(limit) as u64,
        truncated: crate::limits::notes_json(&p.truncated()),
    })
    .expect("live tasks serialize")
}

/// `fdr tasks --alive` as text: one row per live task, oldest first.
pub fn alive_text(p: &crate::Profile, limit: usize) -> String {
    use crate::text::dur;
    let end = p.window.to_ns;
    let mut out = format!("{}\n", p.window);
    let rows: Vec<Vec<String>> = p
        .waits
        .alive
        .iter()
        .take(limit)
        .map(|a| {
            vec![
                a.task.0.to_string(),
                p.name(a.name).into_owned(),
                format!(
                    "{}{}",
                    if a.created_in_trace { "" } else { ">= " },
                    dur(end.saturating_sub(a.since_ns))
                ),
                a.last_poll_ns.map_or("-".into(), |l| {
                    format!("{} ago", dur(end.saturating_sub(l)))
                }),
                alive_state_text(p, a.state, end),
                p.site_name(a.site).into_owned(),
            ]
        })
        .collect();
    crate::text::table(
        &mut out,
        &["id", "task", "age", "last poll", "state", "spawn site"],
        &rows,
    );
    let unlisted = p.waits.alive_unlisted + p.waits.alive.len().saturating_sub(limit) as u64;
    if unlisted > 0 {
        out.push_str(&format!("({unlisted} more alive, not listed)\n"));
    }
    if p.waits
        .alive
        .iter()
        .take(limit)
        .any(|a| !a.created_in_trace)
    {
        out.push_str("(age >= : created before the trace; it does not hold the task's creation)\n");
    }
    crate::limits::notes_text(&mut out, &p.truncated());
    out
}
