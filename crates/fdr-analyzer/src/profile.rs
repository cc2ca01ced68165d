//! One streaming pass that profiles tasks, regions, blocking and scheduling: the data
//! behind `fdr tasks`, `regions`, `blocking`, `sched`, `diagnose`, `diff` and `report`.
//!
//! State is kept per live entity (thread, task, open region, open block) and per distinct
//! name or site; finished entities fold into histograms. Memory follows what is alive, not
//! the trace length, within the bounds of [`crate::limits`]: past one, what is left out is
//! counted and [`Profile::truncated`] says so. Times and counts from the trace add up
//! saturating, so no value a trace holds can overflow them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use fdr_format::{BlockReason, SiteId, StrId, Tables, TaskId, ThreadId};

use crate::fasthash::FastMap;
use crate::hist::Histogram;
use crate::limits::{
    MAX_LIVE_TASKS, MAX_OPEN_SPAN_BYTES, MAX_STATS_KEYS, MAX_THREADS, StackBudget, Truncated,
};
use crate::stream::{EndCx, EventCx, ReadStats, Visitor};

mod events;
mod slots;
use crate::text;
use crate::waits::{COMPLETION_WAKE_NS, NO_PHASE, TaskWait, ThreadWake, Waits, Waker};
use crate::window::WindowMark;

/// A poll at least this long is a long poll (the async task held its worker thread).
pub const LONG_POLL_NS: u64 = 1_000_000;
/// Points kept of the live-task series (older points are thinned).
const SERIES_POINTS: usize = 512;
/// Task names whose filter result is remembered; past it, the filter is evaluated again.
const MAX_FILTER_CACHE: usize = 1 << 16;

/// What to profile.
#[derive(Debug, Clone, Default)]
pub struct ProfileOptions {
    /// Only tasks whose name contains this.
    pub name: Option<String>,
    /// Only tasks linked (or whose parent is linked) to this OpenTelemetry trace id.
    pub otel_trace_id: Option<[u8; 16]>,
    /// Longest polls kept (default 10 when 0).
    pub top: usize,
    /// Timeline slices kept for the report (0: none). When more arrive, the shortest are
    /// dropped, so the kept ones span the whole trace.
    pub timeline_slices: usize,
    /// Where the stacks' binaries are found ([`crate::osview`]).
    pub symbols: fdr_symbolize::Options,
    /// The part of the trace the figures cover ([`crate::window`]).
    pub window: crate::window::WindowSpec,
}

/// Count and duration distribution of spans (regions, blocks, tasks).
#[derive(Debug, Clone, Default)]
pub struct SpanStats {
    /// Durations in ns (count, total, percentiles, max).
    pub hist: Histogram,
    /// First instant one started (ns since trace start).
    pub first_ns: u64,
    /// The longest one's start (ns since trace start).
    pub longest_at_ns: u64,
}

impl SpanStats {
    #[inline]
    fn record(&mut self, start_ns: u64, dur_ns: u64) {
        if self.hist.count() == 0 {
            self.first_ns = start_ns;
        }
        if dur_ns >= self.hist.max() {
            self.longest_at_ns = start_ns;
        }
        self.hist.record(dur_ns);
    }
}

/// Count, total and longest of spans, without their distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanTotals {
    /// How many.
    pub count: u64,
    /// Their total duration (saturating).
    pub total_ns: u64,
    /// The longest.
    pub max_ns: u64,
}

impl SpanTotals {
    fn record(&mut self, dur_ns: u64) {
        self.count += 1;
        self.total_ns = self.total_ns.saturating_add(dur_ns);
        self.max_ns = self.max_ns.max(dur_ns);
    }
}

/// The entry of `key` in `map`, made when the map holds fewer than [`MAX_STATS_KEYS`];
/// `None` (and `dropped` counted) past that.
fn stats_entry<'m, K: Ord, V: Default>(
    map: &'m mut BTreeMap<K, V>,
    key: K,
    dropped: &mut u64,
) -> Option<&'m mut V> {
    if map.len() >= MAX_STATS_KEYS && !map.contains_key(&key) {
        *dropped += 1;
        return None;
    }
    Some(map.entry(key).or_default())
}

/// Whether a task is an async task or a user task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKind {
    /// An async task (polled by an executor).
    Async,
    /// A user task (a logical operation on a thread).
    User,
}

impl TaskKind {
    /// `async` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Async => "async",
            TaskKind::User => "user",
        }
    }
}

/// Index of a block reason in per-reason arrays (unknown reasons share the last slot).
pub fn reason_index(r: BlockReason) -> usize {
    match r {
        BlockReason::Unknown(_) => 7,
        r => r.to_wire() as usize,
    }
}

/// Names of the per-reason slots.
pub const REASON_NAMES: [&str; 8] = [
    "mutex", "rwlock", "condvar", "channel", "io", "sleep", "other", "unknown",
];

/// Per task name: how many ran, how long, and where their time went.
#[derive(Debug, Clone, Default)]
pub struct TaskStats {
    /// Finished tasks' lifetimes (create to drop, or begin to end).
    pub lifetime: SpanStats,
    /// Time polled or running, minus blocked.
    pub running_ns: u64,
    /// Time between a wake (or spawn) and the next poll start.
    pub sched_wait_ns: u64,
    /// Time blocked, by [`REASON_NAMES`] slot.
    pub blocked_ns: [u64; 8],
    /// Time alive but neither running, waiting to be scheduled, nor blocked (awaiting).
    pub idle_ns: u64,
    /// Polls of these tasks.
    pub polls: u64,
    /// Tasks still alive at the end of the trace.
    pub alive_at_end: u64,
    /// Tasks alive at the end that were created inside the trace.
    pub created_alive_at_end: u64,
    /// A spawn site of these tasks (the first seen).
    pub site: SiteId,
}

impl TaskStats {
    /// Total blocked time.
    pub fn blocked_total_ns(&self) -> u64 {
        self.blocked_ns.iter().fold(0, |a, &b| a.saturating_add(b))
    }
}

/// One long poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRecord {
    /// Duration.
    pub dur_ns: u64,
    /// Start (ns since trace start).
    pub start_ns: u64,
    /// The task.
    pub task: TaskId,
    /// The task's name.
    pub name: StrId,
    /// Its spawn site.
    pub site: SiteId,
    /// The thread it ran on.
    pub thread: ThreadId,
}

/// Per recording thread.
#[derive(Debug, Clone, Default)]
pub struct ThreadStats {
    /// First and last event (ns since trace start).
    pub first_ns: u64,
    /// Last event.
    pub last_ns: u64,
    /// Time with a task current (polling or inside a user task), blocked time included.
    pub active_ns: u64,
    /// Time blocked (whether or not a task was current).
    pub blocked_ns: u64,
    /// Time blocked while a task was current.
    pub blocked_active_ns: u64,
    /// Time blocked on a mutex or rwlock.
    pub blocked_lock_ns: u64,
    /// Time parked (an idle executor worker).
    pub parked_ns: u64,
    /// Parks.
    pub parks: u64,
    /// Longest stretch with a task current: duration, start, outermost task.
    pub longest_active: (u64, u64, TaskId, StrId),
    /// From when its task state is known (`None`: its history was cut inside a task and
    /// shows no task begin or end, park or unpark yet; see [`crate::threads`]).
    pub known_from_ns: Option<u64>,
    // --- live state ---
    pub(crate) depth: u32,
    pub(crate) active_since: u64,
    outer_task: TaskId,
    outer_name: StrId,
    pub(crate) parked_since: Option<u64>,
    pub(crate) block: Option<OpenBlock>,
    pub(crate) poll: Option<(TaskId, u64)>,
    pub(crate) regions: Vec<(StrId, u64)>,
    pub(crate) wake: ThreadWake,
    /// Its park cycle in progress, for [`crate::wake_delay`].
    pub(crate) cycle: crate::wake_delay::Cycle,
    /// The thread recorded something other than a loss record.
    pub(crate) data: bool,
    /// The window's moves this state has caught up with ([`crate::window::WindowMark`]).
    pub(crate) window_moves: u64,
}

impl ThreadStats {
    /// Active time minus time blocked while active.
    pub fn busy_ns(&self) -> u64 {
        self.active_ns.saturating_sub(self.blocked_active_ns)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenBlock {
    reason: BlockReason,
    site: SiteId,
    pub(crate) start: u64,
    task: TaskId,
    in_poll: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct LiveTask {
    kind: TaskKind,
    name: StrId,
    site: SiteId,
    start_ns: u64,
    pub(crate) created_here: bool,
    pub(crate) running_ns: u64,
    pub(crate) wait_ns: u64,
    pub(crate) blocked_ns: [u64; 8],
    pub(crate) polls: u64,
    pub(crate) scheduled_at: Option<u64>,
    pub(crate) poll_start: Option<u64>,
    otel: Option<[u8; 16]>,
    pub(crate) wait: TaskWait,
    /// The window's moves this state has caught up with ([`crate::window::WindowMark`]).
    pub(crate) window_moves: u64,
}

impl LiveTask {
    /// A task seen first now: `window_moves` is set where the map takes it
    /// ([`Profile::insert_task`], [`live_entry`]).
    fn new(kind: TaskKind, name: StrId, site: SiteId, start_ns: u64, created_here: bool) -> Self {
        LiveTask {
            kind,
            name,
            site,
            start_ns,
            created_here,
            running_ns: 0,
            wait_ns: 0,
            blocked_ns: [0; 8],
            polls: 0,
            scheduled_at: None,
            poll_start: None,
            otel: None,
            wait: TaskWait::default(),
            window_moves: 0,
        }
    }
}

/// What a timeline slice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceKind {
    /// An async task's poll.
    Poll,
    /// A region.
    Region,
    /// A block.
    Block,
    /// A parked (idle) worker.
    Park,
    /// A user task.
    UserTask,
    /// An async task's life, create to drop.
    TaskLife,
}

impl SliceKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SliceKind::Poll => "poll",
            SliceKind::Region => "region",
            SliceKind::Block => "block",
            SliceKind::Park => "park",
            SliceKind::UserTask => "user_task",
            SliceKind::TaskLife => "task",
        }
    }
}

/// Which lane a slice is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LaneId {
    /// A recording thread.
    Thread(ThreadId),
    /// A task.
    Task(TaskId),
}

/// A timeline slice.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    /// Lane.
    pub lane: LaneId,
    /// What it is.
    pub kind: SliceKind,
    /// A name (region, task) or 0.
    pub name: StrId,
    /// For blocks: why and where.
    pub block: Option<(BlockReason, SiteId)>,
    /// Start (ns since trace start).
    pub start_ns: u64,
    /// Duration.
    pub dur_ns: u64,
}

/// A thinned time series of `(ns, value)`.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Points, oldest first.
    pub points: Vec<(u64, u64)>,
    interval_ns: u64,
    last_ns: Option<u64>,
}

impl Series {
    fn push(&mut self, ns: u64, v: u64) {
        if self.interval_ns == 0 {
            self.interval_ns = 10_000;
        }
        if let Some(l) = self.last_ns
            && ns < l.saturating_add(self.interval_ns)
        {
            if let Some(p) = self.points.last_mut() {
                p.1 = v;
            }
            return;
        }
        if self.points.len() >= SERIES_POINTS {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.interval_ns = self.interval_ns.saturating_mul(2);
        }
        self.points.push((ns, v));
        self.last_ns = Some(ns);
    }
}

/// The name of a task whose creation the trace does not hold: it was created before the
/// flight-recorder window began. No trace defines this id (the recorder's ids are dense from 0).
pub const UNSEEN_NAME: StrId = StrId(u32::MAX);

/// The profile of a trace.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    opts: ProfileOptions,
    /// The OS view: long polls, regions and blocks split into on-CPU, waiting for a CPU
    /// and off-CPU, and their stacks.
    pub os: crate::osview::OsView,
    /// Events by kind.
    pub kinds: [u64; fdr_format::EVENT_KIND_COUNT],
    /// Nanoseconds from the first to the last event.
    pub duration_ns: u64,
    /// Wall-clock Unix nanoseconds of the first event (time 0 of every time in the
    /// profile), when the trace has a clock sync.
    pub origin_wall_unix_ns: Option<i128>,
    /// Per thread (filled when the trace ends; while it streams, the threads are kept
    /// where the event handlers find them by index).
    pub threads: BTreeMap<ThreadId, ThreadStats>,
    /// Per task kind and name (at most [`MAX_STATS_KEYS`]).
    pub tasks: BTreeMap<(TaskKind, StrId), TaskStats>,
    /// Per region name (at most [`MAX_STATS_KEYS`]).
    pub regions: BTreeMap<StrId, SpanStats>,
    /// Per blocking site and reason slot (at most [`MAX_STATS_KEYS`]).
    pub blocking: BTreeMap<(SiteId, usize), SpanStats>,
    /// Blocks that happened during an async task's poll, per site and reason slot (the
    /// keys of [`Profile::blocking`] only).
    pub blocking_in_poll: BTreeMap<(SiteId, usize), SpanTotals>,
    /// Scheduling latency: wake (or spawn) to poll start.
    pub sched_latency: Histogram,
    /// The worst scheduling latency: (latency, poll start ns, task, name).
    pub worst_latency: (u64, u64, TaskId, StrId),
    /// Poll durations.
    pub poll_duration: Histogram,
    /// Longest polls, longest first.
    pub longest_polls: Vec<PollRecord>,
    /// Polls at least [`LONG_POLL_NS`] long: count and total.
    pub long_polls: (u64, u64),
    /// Loss records by reason: (records, events, bytes).
    pub loss: BTreeMap<&'static str, (u64, u64, u64)>,
    /// When loss was recorded: first and last (ns).
    pub loss_window_ns: Option<(u64, u64)>,
    /// Batches missing from thread sequences.
    pub missing_batches: u64,
    /// Live tasks created inside the trace, over time.
    pub live_series: Series,
    /// Async tasks created, dropped.
    pub created_dropped: (u64, u64),
    /// Oldest task alive at the end: (age ns, name, site).
    pub oldest_alive: Option<(u64, StrId, SiteId)>,
    /// Timeline slices (when asked for).
    pub slices: Vec<Slice>,
    /// Slices shorter than this were dropped to stay within the limit (as long as
    /// this, some may have been).
    pub slice_min_ns: u64,
    /// Slices dropped to stay within the limit.
    pub slices_dropped: u64,
    /// Tables at the end of the trace (to resolve names).
    pub tables: Tables,
    /// Events delivered out of order.
    pub late_events: u64,
    /// Tasks skipped by the filters.
    pub filtered_out: u64,
    /// What the reader read, and left out (threads past its limit).
    pub read: ReadStats,
    /// Async waits: per waiting task name, phase and waker ([`crate::waits`]).
    pub waits: Waits,
    /// Per-wake run-queue waits of runtime workers and the driver awaits they delayed
    /// ([`crate::wake_delay`]).
    pub wake_delay: crate::wake_delay::WakeDelay,
    /// The window the figures cover.
    pub window: crate::window::Window,
    /// How many times the window's start has moved ([`Profile::window_mark`]).
    pub(crate) window_moves: u64,
    /// Per thread while the trace streams, in order of first event.
    pub(crate) stream_threads: Vec<(ThreadId, ThreadStats)>,
    /// Index of each thread in `stream_threads`.
    thread_slots: slots::ThreadSlots,
    /// Index in `stream_threads` of the thread of the event being handled (the event
    /// handlers' thread).
    pub(crate) cur_slot: usize,
    pub(crate) live: FastMap<TaskId, LiveTask>,
    pub(crate) live_created: u64,
    wanted: FastMap<StrId, bool>,
    pub(crate) open_regions: StackBudget,
    left_out: LeftOut,
}

/// What the profile left out to stay within [`crate::limits`].
#[derive(Debug, Clone, Copy, Default)]
struct LeftOut {
    /// Events of threads past [`MAX_THREADS`] (when the reader did not already skip them).
    thread_events: u64,
    /// Tasks not tracked because [`MAX_LIVE_TASKS`] were alive.
    tasks: u64,
    /// Finished tasks whose name had no entry left in [`Profile::tasks`].
    task_names: u64,
    /// Regions whose name had no entry left in [`Profile::regions`].
    region_names: u64,
    /// Blocks whose site had no entry left in [`Profile::blocking`].
    blocking_sites: u64,
    /// Region begins not kept open: too deep, or past the open-span bound.
    regions_unopened: u64,
}

impl Profile {
    /// An empty profile.
    pub fn new(opts: ProfileOptions) -> Self {
        Profile {
            opts,
            ..Profile::default()
        }
    }

    #[inline]
    fn slice(&mut self, s: Slice) {
        if self.opts.timeline_slices != 0 {
            self.keep_slice(s);
        }
    }

    fn keep_slice(&mut self, s: Slice) {
        let cap = self.opts.timeline_slices;
        if s.dur_ns < self.slice_min_ns {
            self.slices_dropped += 1;
            return;
        }
        self.slices.push(s);
        if self.slices.len() > cap {
            // Keep the longest 3/4 of the cap (by one linear selection, whatever the
            // durations), and from now on drop slices shorter than the shortest kept.
            let keep = (cap * 3 / 4).max(1);
            self.slices
                .select_nth_unstable_by(keep - 1, |a, b| b.dur_ns.cmp(&a.dur_ns));
            self.slice_min_ns = self.slice_min_ns.max(self.slices[keep - 1].dur_ns);
            self.slices_dropped += (self.slices.len() - keep) as u64;
            self.slices.truncate(keep);
        }
    }

    /// Whether tasks named `name` pass the name filter (all do without one: no call).
    #[inline(always)]
    fn wanted(&mut self, name: StrId, tables: &Tables) -> bool {
        self.opts.name.is_none() || self.wanted_by_filter(name, tables)
    }

    /// [`Profile::wanted`] with a name filter.
    fn wanted_by_filter(&mut self, name: StrId, tables: &Tables) -> bool {
        let Some(f) = &self.opts.name else {
            return true;
        };
        if let Some(&w) = self.wanted.get(&name) {
            return w;
        }
        let w = tables.name(name).contains(f.as_str());
        if self.wanted.len() < MAX_FILTER_CACHE {
            self.wanted.insert(name, w);
        }
        w
    }

    /// What woke `woken`: the waking task `waker` (none: classified by the waking thread's
    /// state, see [`crate::waits`]).
    fn waker_of(&self, woken: TaskId, waker: TaskId, thread: ThreadId, ns: u64) -> Waker {
        if waker != TaskId::NONE {
            if waker == woken {
                return Waker::SelfWake;
            }
            return match self.live.get(&waker) {
                Some(w) => Waker::Task {
                    name: w.name,
                    phase: w.wait.phase(),
                    child: w.wait.parent == woken,
                },
                None => Waker::Task {
                    name: UNSEEN_NAME,
                    phase: NO_PHASE,
                    child: false,
                },
            };
        }
        let Some(th) = self.thread(thread) else {
            return Waker::Thread(thread);
        };
        if th.parked_since.is_some() {
            return Waker::Driver;
        }
        if th.depth == 0 {
            if let Some((_, name, parent, at)) = th.wake.last_done
                && ns.saturating_sub(at) <= COMPLETION_WAKE_NS
            {
                return Waker::Task {
                    name,
                    phase: NO_PHASE,
                    child: parent == woken,
                };
            }
            if th.wake.worker {
                return Waker::Driver;
            }
        }
        Waker::Thread(thread)
    }

    /// Starts tracking a task created (or begun) now; false when it is not tracked. Inlined,
    /// and put in through the map's entry (whose insert is inlined too, where `insert`
    /// is not), so that the task's state is built where the map keeps it, not copied there.
    #[inline(always)]
    fn insert_task(&mut self, task: TaskId, mut t: LiveTask) -> bool {
        if self.live.len() >= MAX_LIVE_TASKS && !self.live.contains_key(&task) {
            self.left_out.tasks += 1;
            return false;
        }
        let mark = self.window_mark();
        t.window_moves = mark.moves;
        match self.live.entry(task) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(t);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let old = o.get_mut();
                if old.caught_up(mark).created_here {
                    self.live_created -= 1;
                }
                *old = t;
            }
        }
        true
    }

    /// Takes `task` out of the live set (if it is there), first handing it to `f`, caught
    /// up with the window, where the map holds it: a task's state is a few hundred bytes,
    /// which moving it out of the map copied (a sixth of a task drop's time). The map is
    /// set aside meanwhile: `f` sees an empty live set.
    #[inline]
    fn remove_live(&mut self, task: TaskId, f: impl FnOnce(&mut Self, &LiveTask)) {
        let mut live = std::mem::take(&mut self.live);
        if let std::collections::hash_map::Entry::Occupied(mut e) = live.entry(task) {
            let mark = self.window_mark();
            f(self, e.get_mut().caught_up(mark));
            e.remove();
        }
        self.live = live;
    }

    /// Folds a finished task, being taken out of the live set ([`Profile::remove_live`]),
    /// into the per-name figures.
    fn finish_removed(&mut self, task: TaskId, t: &LiveTask, end_ns: u64, tables: &Tables) {
        if t.created_here {
            self.live_created -= 1;
            self.live_series.push(end_ns, self.live_created);
        }
        if let Some(want) = self.opts.otel_trace_id
            && t.otel != Some(want)
        {
            self.filtered_out += 1;
            return;
        }
        if !self.wanted(t.name, tables) {
            self.filtered_out += 1;
            return;
        }
        let life = end_ns.saturating_sub(t.start_ns);
        let blocked = t.blocked_ns.iter().fold(0u64, |a, &b| a.saturating_add(b));
        let running = match t.kind {
            TaskKind::Async => t.running_ns,
            TaskKind::User => life.saturating_sub(blocked.saturating_add(t.wait_ns)),
        };
        let Some(s) = stats_entry(
            &mut self.tasks,
            (t.kind, t.name),
            &mut self.left_out.task_names,
        ) else {
            return;
        };
        if s.site.0 == 0 {
            s.site = t.site;
        }
        s.lifetime.record(t.start_ns, life);
        s.running_ns = s.running_ns.saturating_add(running);
        s.sched_wait_ns = s.sched_wait_ns.saturating_add(t.wait_ns);
        if blocked > 0 {
            for (a, b) in s.blocked_ns.iter_mut().zip(t.blocked_ns) {
                *a = a.saturating_add(b);
            }
        }
        let accounted = running.saturating_add(t.wait_ns).saturating_add(blocked);
        s.idle_ns = s.idle_ns.saturating_add(life.saturating_sub(accounted));
        s.polls = s.polls.saturating_add(t.polls);
        if t.kind == TaskKind::Async && t.created_here {
            self.slice(Slice {
                lane: LaneId::Task(task),
                kind: SliceKind::TaskLife,
                name: t.name,
                block: None,
                start_ns: t.start_ns,
                dur_ns: life,
            });
        }
    }

    fn top_poll(&mut self, p: PollRecord) {
        let top = if self.opts.top == 0 {
            10
        } else {
            self.opts.top
        };
        if self.longest_polls.len() >= top
            && self
                .longest_polls
                .last()
                .is_some_and(|l| l.dur_ns >= p.dur_ns)
        {
            return;
        }
        let at = self.longest_polls.partition_point(|x| x.dur_ns >= p.dur_ns);
        self.longest_polls.insert(at, p);
        self.longest_polls.truncate(top);
    }

    /// A name for display: the table's string (cut to [`text::MAX_SHOWN_BYTES`]), or what
    /// [`UNSEEN_NAME`] stands for.
    pub fn name(&self, id: StrId) -> Cow<'_, str> {
        if id == UNSEEN_NAME {
            Cow::Borrowed("(created before the window)")
        } else {
            text::clip(self.tables.name(id))
        }
    }

    /// A name whole, as the tables define it (or what [`UNSEEN_NAME`] stands for).
    pub fn name_full(&self, id: StrId) -> Cow<'_, str> {
        if id == UNSEEN_NAME {
            Cow::Borrowed("(created before the window)")
        } else {
            self.tables.name(id)
        }
    }

    /// A call site for display, `file:line:col` (the file cut to
    /// [`text::MAX_SHOWN_BYTES`]), or `site #id` / `-` when unknown or absent.
    pub fn site_name(&self, id: SiteId) -> Cow<'_, str> {
        match self.tables.site(id) {
            Some(s) => Cow::Owned(format!(
                "{}:{}:{}",
                text::clip(s.file.into()),
                s.line,
                s.col
            )),
            None => self.tables.site_name(id),
        }
    }

    /// A thread's name for display (cut to [`text::MAX_SHOWN_BYTES`]), or `thread N`.
    pub fn thread_name(&self, t: ThreadId) -> Cow<'_, str> {
        match self.tables.thread(t) {
            Some(i) if !i.name.is_empty() => text::clip(Cow::Borrowed(&i.name)),
            _ => Cow::Owned(format!("thread {}", t.0)),
        }
    }

    /// What this profile left out to stay within [`crate::limits`] (none for a trace
    /// within them): threads, tasks, names and sites, open regions, table definitions.
    pub fn truncated(&self) -> Vec<Truncated> {
        let mut out = Vec::new();
        crate::limits::read_notes(&self.read, &mut out);
        let l = self.left_out;
        if l.thread_events > 0 {
            out.push(Truncated::new(
                "thread_events",
                l.thread_events,
                MAX_THREADS,
                format!(
                    "{} events of threads past the first {MAX_THREADS} not profiled",
                    l.thread_events
                ),
            ));
        }
        if l.tasks > 0 {
            out.push(Truncated::new(
                "live_tasks",
                l.tasks,
                MAX_LIVE_TASKS,
                format!(
                    "{} task events not tracked while {MAX_LIVE_TASKS} tasks were alive: their tasks are missing from per-task times, lifetimes and scheduling latency",
                    l.tasks
                ),
            ));
        }
        for (what, n, kind) in [
            ("task_names", l.task_names, "finished tasks"),
            ("region_names", l.region_names, "regions"),
            ("blocking_sites", l.blocking_sites, "blocks"),
        ] {
            if n > 0 {
                out.push(Truncated::new(
                    what,
                    n,
                    MAX_STATS_KEYS,
                    format!(
                        "{n} {kind} not counted: their {} had no entry left (at most {MAX_STATS_KEYS})",
                        what.replace('_', " ")
                    ),
                ));
            }
        }
        if l.regions_unopened > 0 {
            out.push(Truncated::new(
                "open_regions",
                l.regions_unopened,
                crate::limits::MAX_DEPTH,
                format!(
                    "{} region begins not tracked: nested over {} deep on a thread, or past {} MiB of open regions",
                    l.regions_unopened,
                    crate::limits::MAX_DEPTH,
                    MAX_OPEN_SPAN_BYTES >> 20
                ),
            ));
        }
        out.extend(self.os.truncated());
        crate::limits::table_notes(&self.tables, &mut out);
        out
    }

    /// Thread `t`'s parked time from its first event to `ns`.
    fn parked_at(&self, t: ThreadId, ns: u64) -> u64 {
        let mark = self.window_mark();
        self.thread(t).map_or(0, |t| {
            // As it reads once caught up with the window's moves.
            let (parked, since) = if t.window_moves == mark.moves {
                (t.parked_ns, t.parked_since)
            } else {
                (0, t.parked_since.map(|p| p.max(mark.from_ns)))
            };
            parked.saturating_add(since.map_or(0, |p| ns.saturating_sub(p)))
        })
    }

    /// The options this profile was built with.
    pub fn options(&self) -> &ProfileOptions {
        &self.opts
    }

    /// Number of recording threads that recorded events.
    pub fn thread_count(&self) -> usize {
        self.threads.len().max(self.stream_threads.len())
    }

    /// Where thread `t` is in `stream_threads`: the current event's thread without a
    /// lookup.
    #[inline]
    fn thread_slot(&self, t: ThreadId) -> Option<usize> {
        match self.stream_threads.get(self.cur_slot) {
            Some((id, _)) if *id == t => Some(self.cur_slot),
            _ => self.thread_slots.get(t),
        }
    }

    /// Thread `t`'s figures while the trace streams.
    #[inline]
    pub(crate) fn thread(&self, t: ThreadId) -> Option<&ThreadStats> {
        self.thread_slot(t).map(|i| &self.stream_threads[i].1)
    }

    /// The slot of thread `t`, made on first sight (the first event's time `ns`); `None`
    /// past [`MAX_THREADS`].
    #[inline]
    pub(crate) fn admit_thread(&mut self, t: ThreadId, ns: u64) -> Option<usize> {
        let i = match self.thread_slot(t) {
            Some(i) => i,
            None if self.stream_threads.len() >= MAX_THREADS => return None,
            None => {
                self.stream_threads.push((
                    t,
                    ThreadStats {
                        first_ns: ns,
                        window_moves: self.window_moves,
                        ..ThreadStats::default()
                    },
                ));
                self.thread_slots.insert(t, self.stream_threads.len() - 1);
                self.stream_threads.len() - 1
            }
        };
        self.cur_slot = i;
        Some(i)
    }
}

/// The live task `task`, seen now for the first time if need be (created before the
/// window); `None` when it is not tracked ([`MAX_LIVE_TASKS`] are alive).
fn live_entry<'a>(
    live: &'a mut FastMap<TaskId, LiveTask>,
    left_out: &mut LeftOut,
    mark: WindowMark,
    task: TaskId,
    kind: TaskKind,
    ns: u64,
) -> Option<&'a mut LiveTask> {
    if live.len() >= MAX_LIVE_TASKS && !live.contains_key(&task) {
        left_out.tasks += 1;
        return None;
    }
    Some(
        live.entry(task)
            .or_insert_with(|| LiveTask {
                window_moves: mark.moves,
                ..LiveTask::new(kind, UNSEEN_NAME, SiteId(0), ns, false)
            })
            .caught_up(mark),
    )
}

impl Profile {
    /// Moves the window's start as events arrive ([`crate::window`]); false when the event
    /// falls after the window's end. `k` is the event's [`fdr_format::EventKind::index`].
    fn follow_window(&mut self, ns: u64, k: usize) -> bool {
        use crate::window::{IDLE_GAP_NS, Start, WindowSpec};
        match self.opts.window {
            WindowSpec::All => {}
            WindowSpec::Range { from_ns, to_ns } => {
                if to_ns.is_some_and(|t| ns > t) {
                    return false;
                }
                if ns >= from_ns && self.window.start != Start::Asked {
                    self.reset_at(from_ns, Start::Asked);
                }
            }
            WindowSpec::Active => {
                // (A thread whose history was cut restarts the window at its first data,
                // in `event`, where its entry is at hand.)
                if events::WORK_KINDS >> k & 1 != 0 {
                    let last = self
                        .window
                        .last_work_ns
                        .unwrap_or(self.window.from_ns)
                        .max(self.window.from_ns);
                    if ns.saturating_sub(last) >= IDLE_GAP_NS {
                        self.reset_at(ns, Start::AfterIdle);
                        self.window.idle_ns = ns - last;
                    }
                    self.window.last_work_ns = Some(ns);
                }
            }
        }
        true
    }
}

impl Visitor for Profile {
    fn event(&mut self, cx: &EventCx<'_>) {
        self.on_event(cx);
    }

    fn gap(&mut self, _thread: ThreadId, missing: u64) {
        self.missing_batches = self.missing_batches.saturating_add(missing);
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        use crate::window::{IDLE_GAP_NS, WindowSpec};
        self.thread_slots = slots::ThreadSlots::default();
        let mark = self.window_mark();
        for (_, th) in &mut self.stream_threads {
            th.caught_up(mark);
        }
        for t in self.live.values_mut() {
            t.caught_up(mark);
        }
        let threads = std::mem::take(&mut self.stream_threads);
        self.threads.extend(threads);
        self.origin_wall_unix_ns = cx.clock.origin_wall_unix_ns;
        self.read = *cx.stats;
        let mut end = cx.last_ns;
        match self.opts.window {
            WindowSpec::Range {
                to_ns: Some(to), ..
            } => end = end.min(to),
            WindowSpec::Active => {
                // An idle tail does not dilute the window either.
                if let Some(last) = self.window.last_work_ns
                    && end.saturating_sub(last) >= IDLE_GAP_NS
                {
                    end = last.max(self.window.from_ns);
                }
            }
            _ => {}
        }
        self.window.spec = self.opts.window;
        self.window.to_ns = end.max(self.window.from_ns);
        self.window.trace_ns = cx.last_ns;
        self.duration_ns = end;
        for th in self.threads.values_mut() {
            th.last_ns = th.last_ns.min(end).max(th.first_ns.min(end));
            th.first_ns = th.first_ns.min(th.last_ns);
        }
        // Close what is still open at the end, so totals cover the whole window.
        for th in self.threads.values_mut() {
            if th.depth > 0 {
                let d = end.saturating_sub(th.active_since);
                th.active_ns = th.active_ns.saturating_add(d);
                if d > th.longest_active.0 {
                    th.longest_active = (d, th.active_since, th.outer_task, th.outer_name);
                }
            }
            if let Some(s) = th.parked_since.take() {
                th.parked_ns = th.parked_ns.saturating_add(end.saturating_sub(s));
            }
            if let Some(b) = th.block.take() {
                let d = end.saturating_sub(b.start);
                th.blocked_ns = th.blocked_ns.saturating_add(d);
                if th.depth > 0 {
                    th.blocked_active_ns = th.blocked_active_ns.saturating_add(d);
                }
                if reason_index(b.reason) <= 1 {
                    th.blocked_lock_ns = th.blocked_lock_ns.saturating_add(d);
                }
            }
            self.open_regions.release(&mut th.regions);
        }
        let threads = &self.threads;
        self.waits
            .resolve_threads(|t| threads.get(&t).is_some_and(|t| t.wake.worker));
        let mut oldest: Option<(u64, StrId, SiteId)> = None;
        let live = std::mem::take(&mut self.live);
        let mut alive: Vec<crate::waits::AliveTask> = live
            .iter()
            .filter(|(_, t)| t.kind == TaskKind::Async)
            .map(|(id, t)| crate::waits::AliveTask {
                task: *id,
                name: t.name,
                site: t.site,
                since_ns: t.start_ns,
                created_in_trace: t.name != UNSEEN_NAME,
                last_poll_ns: t.wait.last_poll_end(),
                state: t.wait.alive_state(t.poll_start),
            })
            .collect();
        alive.sort_by_key(|a| (a.since_ns, a.task));
        self.waits.alive_unlisted =
            alive.len().saturating_sub(crate::waits::MAX_ALIVE_LISTED) as u64;
        alive.truncate(crate::waits::MAX_ALIVE_LISTED);
        self.waits.alive = alive;
        for t in live.values() {
            if self.opts.otel_trace_id.is_some_and(|w| t.otel != Some(w))
                || !self.wanted(t.name, cx.tables)
            {
                continue;
            }
            self.waits.open(t.name, &t.wait, end);
            let Some(s) = stats_entry(
                &mut self.tasks,
                (t.kind, t.name),
                &mut self.left_out.task_names,
            ) else {
                continue;
            };
            s.alive_at_end += 1;
            if t.created_here {
                s.created_alive_at_end += 1;
                if s.site.0 == 0 {
                    s.site = t.site;
                }
                let age = end.saturating_sub(t.start_ns);
                if oldest.is_none_or(|o| age > o.0) {
                    oldest = Some((age, t.name, t.site));
                }
            }
        }
        self.oldest_alive = oldest;
        drop(live);
        self.live_series.push(end, self.live_created);
        if let Some(p) = self.live_series.points.last_mut() {
            p.0 = end;
        }
        self.slices.sort_by_key(|s| (s.lane, s.start_ns));
    }

    fn take_tables(&mut self, tables: Tables) {
        self.os.finish(&tables, &self.opts.symbols);
        self.tables = tables;
    }
}
