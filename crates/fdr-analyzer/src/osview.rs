//! The OS view: where the time of each long poll, region and block went (on a CPU, waiting
//! for a CPU, off-CPU) and the stacks captured inside it, from the trace's `OsSample` and
//! `Stack` events (Linux recorders with `Config::os` set).
//!
//! # The split
//!
//! The OS sampler records each thread's cumulative on-CPU time and run-queue wait
//! (`/proc/self/task/TID/schedstat`): every thread periodically, and for a thread silent
//! inside one scope past the sampler's threshold, once when it sees it (`long_scope`) and
//! once when that scope has ended (`scope_end`). Such a pair is an *episode*: its two
//! samples bound an interval inside the long scope (but for its tail after the scope's end,
//! up to one scan), in which the counters' deltas are the thread's on-CPU time and run-queue
//! wait and the rest of the wall time is off-CPU (sleeping or blocked in the kernel).
//!
//! A long scope (at least [`crate::profile::LONG_POLL_NS`]) that holds episodes is
//! *measured*: each episode's deltas are placed inside the scope (the time after the scope's
//! end gets at most its own length of them, first), and the shares found over the covered
//! time are applied to the whole scope. A long poll without an episode (the sampler scans
//! every few ms, so short long polls are often unseen) is *estimated* from the two samples
//! of its thread around it: the thread's on-CPU time and run-queue wait over its time not
//! parked (parks come from the trace's park events). An estimate is only as good as its
//! interval is short; the outputs keep the two apart. With no OS samples at all, nothing is
//! split and every output says "not applicable (no OS data)".
//!
//! # Stacks
//!
//! A `long_scope` stack belongs to the thread's open episode: the sampler signals the
//! thread right after the episode's first sample, so the capture lands inside the scope even
//! when the stack is recorded later. Stacks are kept once per distinct address sequence
//! (at most [`MAX_DISTINCT_STACKS`]) and symbolized when the trace ends
//! through `fdr-symbolize`: from the trace's module records and the binary found by build id
//! (given binaries, search directories, then the path the recorded process saw). When the
//! binary is not there, a frame is shown as its address with the module and offset; that is
//! not an error. The *top user frame* is the innermost frame that is neither the standard
//! library, the runtime, fdr, nor a dependency from a registry.
//!
//! # CPU samples
//!
//! A CPU-timer stack is recorded by the sampler after the timer fired, and carries its age:
//! the sample is placed at the event's time minus that age, and belongs to every long poll,
//! region and block of its thread that holds that time. Samples wait per thread for the long
//! scopes still open when they arrive ([`MAX_CPU_SAMPLES_PER_THREAD`]), and long scopes that
//! closed stay a while for the samples recorded after them ([`MAX_RECENT_SCOPES_PER_THREAD`]),
//! so either order works. Each sample weighs `1 / rate` of CPU time (the trace's
//! `os_cpu_profile_hz` metric). A stack without an age (a trace written before stacks
//! carried one) is counted, not placed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use fdr_format::{BlockReason, SampleCause, SiteId, StackFrames, StrId, Tables, ThreadId};
use fdr_symbolize::{AddressKind, Symbolizer};

use crate::profile::reason_index;

/// Distinct stacks kept; later new ones are counted, not kept.
pub const MAX_DISTINCT_STACKS: usize = 2048;
/// Stacks kept per episode.
const MAX_STACKS_PER_EPISODE: usize = 8;
/// Closed episodes kept per thread for scopes that end later (an outer poll or region).
const MAX_EPISODES_PER_THREAD: usize = 64;
/// Long scopes waiting per thread for an episode to close or for the next sample.
const MAX_PENDING_PER_THREAD: usize = 1024;
/// Symbolized frames kept per stack for display.
const SHOWN_FRAMES: usize = 16;
/// Longest split polls kept with their thread, start, split and stacks (the report's
/// long-poll examples).
pub const MAX_POLL_EXAMPLES: usize = 64;
/// Threads the OS view follows (the profile's bound).
const MAX_OS_THREADS: usize = crate::limits::MAX_THREADS;
/// CPU samples kept per thread for long scopes still open when they arrive; the oldest go
/// first (a scope that closes later than this many samples after its start loses its first
/// ones, which are counted).
pub const MAX_CPU_SAMPLES_PER_THREAD: usize = 1024;
/// Long scopes kept per thread after they closed, for CPU samples recorded after them.
pub const MAX_RECENT_SCOPES_PER_THREAD: usize = 64;
/// CPU samples waiting in every thread's queue together: a trace sampling many threads
/// fills this, not [`MAX_CPU_SAMPLES_PER_THREAD`] on each (32 bytes each).
const MAX_CPU_SAMPLES_HELD: usize = 1 << 17;
/// Closed episodes kept by every thread together (about 112 bytes each).
const MAX_EPISODES_HELD: usize = 1 << 15;
/// Recently closed long scopes kept by every thread together (about 40 bytes each).
const MAX_RECENT_SCOPES_HELD: usize = 1 << 16;
/// Long scopes waiting in every thread together (about 100 bytes each).
const MAX_PENDING_HELD: usize = 1 << 15;
/// The highest CPU profiling rate believed (a trace claiming more is damaged).
const MAX_CPU_RATE_HZ: f64 = 100_000.0;

/// A scope the split is kept for, with its key in the per-key totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeKey {
    /// An async task's poll, by task name.
    Poll(StrId),
    /// A region, by name.
    Region(StrId),
    /// A block, by site and reason slot ([`crate::profile::REASON_NAMES`]).
    Block(SiteId, usize),
}

/// Where a scope's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    /// On a CPU.
    pub on_cpu_ns: u64,
    /// Runnable, waiting for a CPU (preempted or not yet scheduled).
    pub runq_ns: u64,
    /// Off-CPU: sleeping or blocked in the kernel (a lock, a sleep, synchronous I/O).
    pub off_cpu_ns: u64,
}

impl Split {
    fn add(&mut self, o: Split) {
        self.on_cpu_ns = self.on_cpu_ns.saturating_add(o.on_cpu_ns);
        self.runq_ns = self.runq_ns.saturating_add(o.runq_ns);
        self.off_cpu_ns = self.off_cpu_ns.saturating_add(o.off_cpu_ns);
    }

    /// The three parts together.
    pub fn total(&self) -> u64 {
        self.on_cpu_ns
            .saturating_add(self.runq_ns)
            .saturating_add(self.off_cpu_ns)
    }

    /// Where a long scope's time went: waiting for a CPU when, without that wait, it
    /// would not have been long (on-CPU and off-CPU together under
    /// [`crate::profile::LONG_POLL_NS`]): the host preempted it; else off-CPU or on-CPU,
    /// whichever is more.
    pub fn class(&self) -> SplitClass {
        if self.on_cpu_ns.saturating_add(self.off_cpu_ns) < crate::profile::LONG_POLL_NS {
            SplitClass::WaitingForCpu
        } else if self.off_cpu_ns >= self.on_cpu_ns {
            SplitClass::OffCpu
        } else {
            SplitClass::OnCpu
        }
    }

    fn scaled(&self, by: f64) -> Split {
        let s = |x: u64| (x as f64 * by) as u64;
        Split {
            on_cpu_ns: s(self.on_cpu_ns),
            runq_ns: s(self.runq_ns),
            off_cpu_ns: s(self.off_cpu_ns),
        }
    }

    /// `on-CPU x, waiting for a CPU y, off-CPU z`.
    pub fn describe(&self) -> String {
        let t = self.total().max(1) as f64;
        let p = |x: u64| crate::text::pct(x as f64 / t);
        format!(
            "on-CPU {}, waiting for a CPU {}, off-CPU {}",
            p(self.on_cpu_ns),
            p(self.runq_ns),
            p(self.off_cpu_ns)
        )
    }
}

/// Where most of a scope's time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SplitClass {
    /// Mostly on a CPU.
    OnCpu,
    /// Mostly waiting for a CPU: the host preempted the thread.
    WaitingForCpu,
    /// Mostly off-CPU: blocked or sleeping in the kernel.
    OffCpu,
}

impl SplitClass {
    /// `on_cpu`, `waiting_for_cpu`, `off_cpu`.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitClass::OnCpu => "on_cpu",
            SplitClass::WaitingForCpu => "waiting_for_cpu",
            SplitClass::OffCpu => "off_cpu",
        }
    }
}

/// Totals of split scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitTotals {
    /// Scopes.
    pub count: u64,
    /// Their wall time.
    pub wall_ns: u64,
    /// Their split.
    pub split: Split,
    /// Scopes by class: on-CPU, waiting for a CPU, off-CPU.
    pub by_class: [u64; 3],
    /// Wall time by class.
    pub wall_by_class: [u64; 3],
    /// The longest one's duration.
    pub max_ns: u64,
    /// Off-CPU time of the scopes mostly off-CPU.
    pub off_by_class: u64,
    /// On-CPU time of the scopes mostly on a CPU (long on their CPU time alone, not made
    /// long by a wait for a CPU).
    pub on_by_class: u64,
}

impl SplitTotals {
    fn record(&mut self, wall: u64, s: Split) {
        self.count += 1;
        self.wall_ns = self.wall_ns.saturating_add(wall);
        self.split.add(s);
        let c = s.class() as usize;
        self.by_class[c] += 1;
        self.wall_by_class[c] = self.wall_by_class[c].saturating_add(wall);
        match s.class() {
            SplitClass::OffCpu => {
                self.off_by_class = self.off_by_class.saturating_add(s.off_cpu_ns)
            }
            SplitClass::OnCpu => self.on_by_class = self.on_by_class.saturating_add(s.on_cpu_ns),
            SplitClass::WaitingForCpu => {}
        }
        self.max_ns = self.max_ns.max(wall);
    }

    /// Wall time of the scopes of class `c`.
    pub fn wall_of(&self, c: SplitClass) -> u64 {
        self.wall_by_class[c as usize]
    }
}

/// One long poll's split, kept for the longest ones ([`OsView::poll_example`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSplit {
    /// The thread that ran it.
    pub thread: ThreadId,
    /// Its start (ns since trace start).
    pub start_ns: u64,
    /// Its wall time.
    pub wall_ns: u64,
    /// Where that time went.
    pub split: Split,
    /// Measured from an episode of samples inside it (else estimated from the samples
    /// around it).
    pub measured: bool,
    /// The stacks captured inside it (ids into [`OsView::stacks`]), at most eight.
    pub stacks: Vec<u32>,
}

/// One distinct stack and what the long polls it was captured in spent.
#[derive(Debug, Clone, Default)]
pub struct StackStats {
    /// Its addresses, innermost first.
    pub frames: Vec<u64>,
    /// Long polls it was captured in (measured ones).
    pub polls: u64,
    /// Their split, shared among each poll's stacks.
    pub split: Split,
    /// Their longest.
    pub max_poll_ns: u64,
    /// Start of that poll (ns since trace start).
    pub max_poll_at_ns: u64,
    /// Captures of it (any scope, any cause).
    pub captures: u64,
    /// Captures by a CPU-time timer.
    pub cpu_samples: u64,
    /// CPU-timer captures that fell inside a long poll.
    pub poll_cpu_samples: u64,
    /// Their CPU time (each sample `1 / rate`), ns.
    pub poll_cpu_ns: u64,
    /// Symbolized when the trace ended.
    pub info: Option<StackInfo>,
}

/// A stack, symbolized.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackInfo {
    /// The innermost frame of the application's own code: `function at file:line`.
    pub top_user: Option<String>,
    /// Its function, file and line.
    pub top_user_parts: Option<(String, Option<String>, Option<u32>)>,
    /// What the frames inside it show the thread waiting in, if they do: `lock`, `sleep`,
    /// `io`, `condvar`.
    pub waits_in: Option<&'static str>,
    /// The innermost frames, one line each (at most 16).
    pub shown: Vec<String>,
    /// Why frames are not symbolized, if some are not (no module file, another build).
    pub problem: Option<String>,
    /// The innermost frame is in the C library, the dynamic loader or the vDSO: the
    /// thread was in (or entering) a system call, not running the application's code.
    pub in_system_call: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    ns: u64,
    cpu: u64,
    runq: u64,
    /// The thread's parked time so far (from park events).
    parked: u64,
    /// Its scheduler state, if sampled.
    state: Option<u8>,
}

#[derive(Debug, Clone)]
struct Episode {
    start: Sample,
    end: Option<Sample>,
    stacks: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Scope {
    key: ScopeKey,
    /// The thread it ran on.
    thread: ThreadId,
    start: u64,
    end: u64,
    /// The thread's parked time so far at the scope's end.
    parked_end: u64,
}

#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Its open episode must close first.
    Episode,
    /// Not sampled: estimated from the next sample.
    Estimate(Sample),
}

#[derive(Debug, Clone, Default)]
struct ThreadOs {
    last: Option<Sample>,
    open: Option<Episode>,
    closed: VecDeque<Episode>,
    pending: Vec<(Scope, Wait)>,
    /// Scopes in `pending` waiting for the next sample (not for an episode).
    pending_estimates: u32,
    /// CPU samples waiting for long scopes still open: time (ns), stack id, CPU ns.
    cpu: VecDeque<CpuSample>,
    /// Long scopes that closed lately.
    recent: VecDeque<Recent>,
}

/// A long scope that closed, kept for the CPU samples recorded after it.
#[derive(Debug, Clone, Copy)]
struct Recent {
    key: ScopeKey,
    start: u64,
    end: u64,
    /// A CPU sample fell in it.
    sampled: bool,
}

/// A CPU sample placed in time.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at_ns: u64,
    stack: u32,
    cpu_ns: u64,
    /// A long scope took it.
    placed: bool,
}

/// The OS view of a trace, collected by [`crate::Profile`] (its `os` field).
#[derive(Debug, Clone, Default)]
pub struct OsView {
    threads: HashMap<ThreadId, ThreadOs>,
    stack_ids: HashMap<Box<[u64]>, u32>,
    /// Distinct stacks, by id.
    pub stacks: Vec<StackStats>,
    /// OS samples seen.
    pub samples: u64,
    /// Episodes (long scopes the sampler saw) seen.
    pub episodes: u64,
    /// Stack events seen, by cause: long scope, CPU timer, other.
    pub stack_events: [u64; 3],
    /// Stacks that arrived with no open episode on their thread (not attributed).
    pub stacks_unattributed: u64,
    /// New distinct stacks past [`MAX_DISTINCT_STACKS`] (counted only).
    pub stacks_left_out: u64,
    /// Long scopes left unsplit because their thread had too many waiting.
    pub scopes_left_out: u64,
    /// Measured long scopes per key.
    pub measured: BTreeMap<ScopeKey, SplitTotals>,
    /// Long polls estimated from periodic samples, per task name.
    pub estimated: BTreeMap<StrId, SplitTotals>,
    /// Measured long polls, all names.
    pub polls_measured: SplitTotals,
    /// Estimated long polls, all names.
    pub polls_estimated: SplitTotals,
    /// Long polls neither measured nor estimated (no sample after them).
    pub polls_unsplit: u64,
    /// Whole-trace totals of every thread's periodic intervals: wall time, on-CPU, run-queue.
    pub thread_time: (u64, u64, u64),
    /// The stacks' symbolization problem, if every module failed the same way.
    pub symbol_problems: Vec<String>,
    /// The longest split polls, longest first (at most [`MAX_POLL_EXAMPLES`]).
    pub longest: Vec<PollSplit>,
    /// The CPU profiling rate in effect (the trace's `os_cpu_profile_hz`), if known.
    cpu_rate_hz: Option<f64>,
    /// CPU samples placed in the long scopes they fell in, per key: samples and CPU ns.
    pub cpu_in_scopes: BTreeMap<ScopeKey, (u64, u64)>,
    /// CPU samples that fell inside long polls, and their CPU time (ns).
    pub cpu_in_polls: (u64, u64),
    /// Long polls with at least one CPU sample inside.
    pub polls_cpu_sampled: u64,
    /// CPU samples without an age (a trace written before stacks carried one): not placed.
    pub cpu_unplaced: u64,
    /// CPU samples pushed out of their thread's queue ([`MAX_CPU_SAMPLES_PER_THREAD`], or
    /// the bound on every thread's together) before any long scope took them, or of a
    /// thread past the limit.
    pub cpu_left_out: u64,
    /// Episodes dropped from their thread's closed ones (per thread and together), and
    /// closed long scopes dropped from the recent ones before their later samples came.
    pub episodes_left_out: u64,
    /// What every thread's queues hold together, against the `MAX_*_HELD` bounds.
    held: Held,
}

/// Items in every thread's queues together, by queue.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    cpu: usize,
    closed: usize,
    recent: usize,
    pending: usize,
}

/// What [`push_bounded`] did.
enum Pushed<T> {
    /// Added: the queues hold one more.
    Added,
    /// Added in place of the thread's oldest, returned.
    Replaced(T),
    /// Not added: the thread holds none to give up and every thread's together are at
    /// their bound.
    Refused,
}

/// Appends `x` to one thread's queue `q`, which holds at most `per_thread`, when every
/// thread's queues of its kind hold `held` of at most `max_held`: at either bound the
/// thread's oldest makes room, and a thread with none to give up is refused. The first
/// item allocates room for one, not the allocator's usual four: most threads hold few.
fn push_bounded<T>(
    q: &mut VecDeque<T>,
    x: T,
    held: &mut usize,
    per_thread: usize,
    max_held: usize,
) -> Pushed<T> {
    if q.len() < per_thread && *held < max_held {
        if q.capacity() == 0 {
            q.reserve_exact(1);
        }
        q.push_back(x);
        *held += 1;
        return Pushed::Added;
    }
    match q.pop_front() {
        Some(old) => {
            q.push_back(x);
            Pushed::Replaced(old)
        }
        None => Pushed::Refused,
    }
}

fn cause_slot(c: SampleCause) -> usize {
    match c {
        SampleCause::LongScope => 0,
        SampleCause::CpuTimer => 1,
        _ => 2,
    }
}

impl OsView {
    /// Whether the trace has OS samples (the split applies).
    pub fn has_data(&self) -> bool {
        self.samples > 0
    }

    /// What the view left out to stay within its bounds, as a note (none when nothing was).
    pub fn truncated(&self) -> Option<crate::limits::Truncated> {
        let n = self.cpu_left_out + self.scopes_left_out + self.episodes_left_out;
        (n > 0).then(|| {
            crate::limits::Truncated::new(
                "os_view",
                n,
                MAX_CPU_SAMPLES_HELD,
                format!(
                    "{n} OS-view items not kept (CPU samples {}, long scopes {}, episodes {}): past {MAX_CPU_SAMPLES_PER_THREAD} CPU samples or {MAX_PENDING_PER_THREAD} waiting scopes per thread, or past {MAX_CPU_SAMPLES_HELD} samples, {MAX_PENDING_HELD} scopes and {MAX_EPISODES_HELD} episodes across threads; the split and CPU samples of their scopes are missing",
                    self.cpu_left_out, self.scopes_left_out, self.episodes_left_out
                ),
            )
        })
    }

    /// An OS sample of `thread` at `ns`: on-CPU time, run-queue wait and scheduler state;
    /// `parked_ns` is its parked time so far.
    pub(crate) fn sample(
        &mut self,
        thread: ThreadId,
        ns: u64,
        cause: SampleCause,
        (cpu, runq, state): (Option<u64>, Option<u64>, Option<u8>),
        parked_ns: u64,
    ) {
        self.samples += 1;
        let (Some(cpu), Some(runq)) = (cpu, runq) else {
            return;
        };
        if self.threads.len() >= MAX_OS_THREADS && !self.threads.contains_key(&thread) {
            return;
        }
        let s = Sample {
            ns,
            cpu,
            runq,
            parked: parked_ns,
            state,
        };
        let th = self.threads.entry(thread).or_default();
        if let Some(l) = th.last
            && cause == SampleCause::Periodic
            && s.ns > l.ns
        {
            let t = &mut self.thread_time;
            t.0 = t.0.saturating_add(s.ns - l.ns);
            t.1 = t.1.saturating_add(s.cpu.saturating_sub(l.cpu));
            t.2 = t.2.saturating_add(s.runq.saturating_sub(l.runq));
        }
        match cause {
            SampleCause::LongScope => {
                self.episodes += 1;
                // A long scope seen while another is open: the first one's end was missed.
                if let Some(e) = th.open.take() {
                    push_closed(th, e, &mut self.held, &mut self.episodes_left_out);
                }
                th.open = Some(Episode {
                    start: s,
                    end: None,
                    stacks: Vec::new(),
                });
            }
            SampleCause::ScopeEnd => {
                if let Some(mut e) = th.open.take() {
                    e.end = Some(s);
                    push_closed(th, e, &mut self.held, &mut self.episodes_left_out);
                }
            }
            _ => {}
        }
        th.last = Some(s);
        let mut measured = Vec::new();
        let mut estimated = Vec::new();
        let open = th.open.is_some();
        // After each pass only scopes waiting for an open episode stay: another pass finds
        // nothing until the episode ends or an estimate joins (a thread can hold a thousand).
        if open && th.pending_estimates == 0 {
            return;
        }
        th.pending_estimates = 0;
        let before = th.pending.len();
        th.pending.retain(|(scope, wait)| match wait {
            Wait::Episode if !open => {
                measured.push(*scope);
                false
            }
            Wait::Estimate(before) => {
                estimated.push((*scope, estimate(before, &s, scope)));
                false
            }
            Wait::Episode => true,
        });
        self.held.pending -= before - th.pending.len();
        if th.pending.is_empty() && th.pending.capacity() > 4 {
            th.pending = Vec::new();
        }
        let measured: Vec<_> = measured
            .into_iter()
            .map(|scope| (scope, measure(th, &scope), th_stacks(th, &scope)))
            .collect();
        for (scope, split, stacks) in measured {
            self.resolve_measured(scope, split, stacks);
        }
        for (scope, split) in estimated {
            self.resolve_estimated(scope, split);
        }
    }

    /// The CPU profiling rate the trace declares from here on (0: profiling stopped; the
    /// samples still drained after it keep the last rate).
    pub(crate) fn cpu_rate(&mut self, hz: f64) {
        if (1.0..=MAX_CPU_RATE_HZ).contains(&hz) {
            self.cpu_rate_hz = Some(hz);
        }
    }

    /// A stack of `thread`, captured at `at_ns` if the trace says when.
    pub(crate) fn stack(
        &mut self,
        thread: ThreadId,
        cause: SampleCause,
        frames: StackFrames<'_>,
        at_ns: Option<u64>,
    ) {
        self.stack_events[cause_slot(cause)] += 1;
        let Some(id) = self.stack_id(frames) else {
            return;
        };
        let st = &mut self.stacks[id as usize];
        st.captures += 1;
        if cause == SampleCause::CpuTimer {
            st.cpu_samples += 1;
            match at_ns {
                Some(at_ns) => self.cpu_sample(thread, id, at_ns),
                None => self.cpu_unplaced += 1,
            }
            return;
        }
        match self.threads.get_mut(&thread).and_then(|t| t.open.as_mut()) {
            Some(e) if cause == SampleCause::LongScope => {
                if e.stacks.len() < MAX_STACKS_PER_EPISODE {
                    e.stacks.push(id);
                }
            }
            _ => self.stacks_unattributed += 1,
        }
    }

    /// A CPU sample of `thread` at `at_ns` (stack `id`): credited to the long scopes that
    /// closed holding it, and kept for those still open.
    fn cpu_sample(&mut self, thread: ThreadId, stack: u32, at_ns: u64) {
        if self.threads.len() >= MAX_OS_THREADS && !self.threads.contains_key(&thread) {
            self.cpu_left_out += 1;
            return;
        }
        let th = self.threads.entry(thread).or_default();
        let mut held: Vec<Recent> = Vec::new();
        for r in th.recent.iter_mut() {
            if (r.start..=r.end).contains(&at_ns) {
                held.push(*r);
                r.sampled = true;
            }
        }
        let s = CpuSample {
            at_ns,
            stack,
            cpu_ns: self.cpu_rate_hz.map_or(0, |hz| (1e9 / hz) as u64),
            placed: !held.is_empty(),
        };
        match push_bounded(
            &mut th.cpu,
            s,
            &mut self.held.cpu,
            MAX_CPU_SAMPLES_PER_THREAD,
            MAX_CPU_SAMPLES_HELD,
        ) {
            Pushed::Added => {}
            Pushed::Replaced(old) => self.cpu_left_out += u64::from(!old.placed),
            // Still credited to the scopes that closed holding it, below.
            Pushed::Refused => self.cpu_left_out += u64::from(!s.placed),
        }
        for r in held {
            if !r.sampled && matches!(r.key, ScopeKey::Poll(_)) {
                self.polls_cpu_sampled += 1;
            }
            self.credit_cpu(r.key, (r.start, r.end), s);
        }
    }

    /// A long scope of `thread` closed: the CPU samples waiting inside it are its; it stays
    /// for samples recorded later.
    fn cpu_scope_closed(&mut self, thread: ThreadId, key: ScopeKey, start: u64, end: u64) {
        let Some(th) = self.threads.get_mut(&thread) else {
            return;
        };
        // Samples stay queued after a scope took them: a scope around this one (a poll around
        // a region) takes them too when it closes.
        let mut inside: Vec<CpuSample> = Vec::new();
        for s in th.cpu.iter_mut() {
            if (start..=end).contains(&s.at_ns) {
                s.placed = true;
                inside.push(*s);
            }
        }
        let recent = Recent {
            key,
            start,
            end,
            sampled: !inside.is_empty(),
        };
        if let Pushed::Refused = push_bounded(
            &mut th.recent,
            recent,
            &mut self.held.recent,
            MAX_RECENT_SCOPES_PER_THREAD,
            MAX_RECENT_SCOPES_HELD,
        ) {
            self.episodes_left_out += 1;
        }
        if !inside.is_empty() && matches!(key, ScopeKey::Poll(_)) {
            self.polls_cpu_sampled += 1;
        }
        for s in inside {
            self.credit_cpu(key, (start, end), s);
        }
    }

    /// Credits CPU sample `s` to the long scope `key` that ran `start..end`.
    fn credit_cpu(&mut self, key: ScopeKey, (start, end): (u64, u64), s: CpuSample) {
        if self.cpu_in_scopes.len() < crate::limits::MAX_STATS_KEYS
            || self.cpu_in_scopes.contains_key(&key)
        {
            let e = self.cpu_in_scopes.entry(key).or_default();
            e.0 += 1;
            e.1 = e.1.saturating_add(s.cpu_ns);
        }
        if let ScopeKey::Poll(_) = key {
            self.cpu_in_polls.0 += 1;
            self.cpu_in_polls.1 = self.cpu_in_polls.1.saturating_add(s.cpu_ns);
            let st = &mut self.stacks[s.stack as usize];
            st.poll_cpu_samples += 1;
            st.poll_cpu_ns = st.poll_cpu_ns.saturating_add(s.cpu_ns);
            let wall = end.saturating_sub(start);
            if wall > st.max_poll_ns {
                st.max_poll_ns = wall;
                st.max_poll_at_ns = start;
            }
        }
    }

    fn stack_id(&mut self, frames: StackFrames<'_>) -> Option<u32> {
        let v: Box<[u64]> = frames.iter().collect();
        if v.is_empty() {
            return None;
        }
        if let Some(&id) = self.stack_ids.get(&v) {
            return Some(id);
        }
        if self.stacks.len() >= MAX_DISTINCT_STACKS {
            self.stacks_left_out += 1;
            return None;
        }
        let id = self.stacks.len() as u32;
        self.stacks.push(StackStats {
            frames: v.to_vec(),
            ..StackStats::default()
        });
        self.stack_ids.insert(v, id);
        Some(id)
    }

    /// A long scope of `thread` ended (`start..end`, ns).
    pub(crate) fn scope_closed(
        &mut self,
        thread: ThreadId,
        key: ScopeKey,
        start: u64,
        end: u64,
        parked_end: u64,
    ) {
        self.cpu_scope_closed(thread, key, start, end);
        if self.samples == 0 {
            return;
        }
        let Some(th) = self.threads.get_mut(&thread) else {
            return;
        };
        let scope = Scope {
            key,
            thread,
            start,
            end,
            parked_end,
        };
        let inside = |e: &Episode| e.start.ns >= start && e.start.ns <= end;
        if th.open.as_ref().is_some_and(inside) {
            if th.pending.len() < MAX_PENDING_PER_THREAD && self.held.pending < MAX_PENDING_HELD {
                th.pending.push((scope, Wait::Episode));
                self.held.pending += 1;
            } else {
                self.scopes_left_out += 1;
            }
            return;
        }
        if th.closed.iter().any(inside) {
            let split = measure(th, &scope);
            let stacks = th_stacks(th, &scope);
            self.resolve_measured(scope, split, stacks);
            return;
        }
        if let ScopeKey::Poll(_) = key {
            match th.last {
                Some(before)
                    if th.pending.len() < MAX_PENDING_PER_THREAD
                        && self.held.pending < MAX_PENDING_HELD =>
                {
                    th.pending.push((scope, Wait::Estimate(before)));
                    th.pending_estimates += 1;
                    self.held.pending += 1;
                }
                Some(_) => self.scopes_left_out += 1,
                None => self.polls_unsplit += 1,
            }
        }
    }

    fn resolve_measured(&mut self, scope: Scope, split: Option<Split>, stacks: Vec<u32>) {
        let Some(split) = split else {
            if let ScopeKey::Poll(_) = scope.key {
                self.polls_unsplit += 1;
            }
            return;
        };
        let wall = scope.end.saturating_sub(scope.start);
        if self.measured.len() < crate::limits::MAX_STATS_KEYS
            || self.measured.contains_key(&scope.key)
        {
            self.measured
                .entry(scope.key)
                .or_default()
                .record(wall, split);
        }
        if let ScopeKey::Poll(_) = scope.key {
            self.keep_example(&scope, split, true, &stacks);
            self.polls_measured.record(wall, split);
            if !stacks.is_empty() {
                let share = split.scaled(1.0 / stacks.len() as f64);
                for id in stacks {
                    let st = &mut self.stacks[id as usize];
                    st.polls += 1;
                    st.split.add(share);
                    if wall > st.max_poll_ns {
                        st.max_poll_ns = wall;
                        st.max_poll_at_ns = scope.start;
                    }
                }
            }
        }
    }

    fn resolve_estimated(&mut self, scope: Scope, split: Option<Split>) {
        let ScopeKey::Poll(name) = scope.key else {
            return;
        };
        let Some(split) = split else {
            self.polls_unsplit += 1;
            return;
        };
        let wall = scope.end.saturating_sub(scope.start);
        self.keep_example(&scope, split, false, &[]);
        self.polls_estimated.record(wall, split);
        if self.estimated.len() < crate::limits::MAX_STATS_KEYS
            || self.estimated.contains_key(&name)
        {
            self.estimated.entry(name).or_default().record(wall, split);
        }
    }

    /// Keeps a split poll if it is among the [`MAX_POLL_EXAMPLES`] longest.
    fn keep_example(&mut self, scope: &Scope, split: Split, measured: bool, stacks: &[u32]) {
        let wall = scope.end.saturating_sub(scope.start);
        if self.longest.len() >= MAX_POLL_EXAMPLES
            && self.longest.last().is_some_and(|l| l.wall_ns >= wall)
        {
            return;
        }
        let at = self.longest.partition_point(|x| x.wall_ns >= wall);
        self.longest.insert(
            at,
            PollSplit {
                thread: scope.thread,
                start_ns: scope.start,
                wall_ns: wall,
                split,
                measured,
                stacks: stacks.to_vec(),
            },
        );
        self.longest.truncate(MAX_POLL_EXAMPLES);
    }

    /// The split of the long poll that `thread` started at `start_ns`, if it is among the
    /// longest kept.
    pub fn poll_example(&self, thread: ThreadId, start_ns: u64) -> Option<&PollSplit> {
        self.longest
            .iter()
            .find(|p| p.thread == thread && p.start_ns == start_ns)
    }

    /// The innermost `n` frames of stack `id` from the application's own code on: its top
    /// user frame first when symbolized, then the frames inside it (innermost first).
    pub fn top_frames(&self, id: u32, n: usize) -> Vec<String> {
        let Some(info) = self.stacks.get(id as usize).and_then(|s| s.info.as_ref()) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        if let Some(t) = &info.top_user {
            out.push(t.clone());
        }
        for line in &info.shown {
            if out.len() >= n {
                break;
            }
            if !out.contains(line) {
                out.push(line.clone());
            }
        }
        out
    }

    /// The end of the trace: splits what the samples allow of the scopes still waiting, and
    /// symbolizes the stacks kept.
    pub(crate) fn finish(&mut self, tables: &Tables, options: &fdr_symbolize::Options) {
        let mut threads = std::mem::take(&mut self.threads);
        for th in threads.values_mut() {
            if let Some(e) = th.open.take() {
                push_closed(th, e, &mut self.held, &mut self.episodes_left_out);
            }
            self.held.pending -= th.pending.len();
            th.pending_estimates = 0;
            for (scope, wait) in std::mem::take(&mut th.pending) {
                match wait {
                    Wait::Episode => {
                        let split = measure(th, &scope);
                        let stacks = th_stacks(th, &scope);
                        self.resolve_measured(scope, split, stacks);
                    }
                    Wait::Estimate(_) => {
                        if let ScopeKey::Poll(_) = scope.key {
                            self.polls_unsplit += 1;
                        }
                    }
                }
            }
        }
        self.stack_ids = HashMap::new();
        if self.stacks.is_empty() {
            return;
        }
        let mut sym = Symbolizer::new(options.clone());
        let mut problems: Vec<String> = Vec::new();
        for st in &mut self.stacks {
            let info = symbolize(&mut sym, tables, &st.frames);
            if let Some(p) = &info.problem
                && problems.len() < 4
                && !problems.contains(p)
            {
                problems.push(p.clone());
            }
            st.info = Some(info);
        }
        self.symbol_problems = problems;
    }

    /// Groups the measured long polls' stacks by their top user frame: (frame, what the
    /// frames show the thread waiting in, polls, split, longest poll, its start, one stack
    /// id), most off-CPU (or on-CPU, with `on_cpu`) time first.
    pub fn by_top_frame(&self, on_cpu: bool) -> Vec<FrameTotals> {
        let mut by: BTreeMap<String, FrameTotals> = BTreeMap::new();
        for (id, st) in self.stacks.iter().enumerate() {
            if st.polls == 0 && st.poll_cpu_samples == 0 {
                continue;
            }
            let info = st.info.as_ref();
            let frame = info
                .and_then(|i| i.top_user.clone())
                .or_else(|| info.and_then(|i| i.shown.first().cloned()))
                .unwrap_or_else(|| format!("{:#x}", st.frames[0]));
            let e = by.entry(frame.clone()).or_insert_with(|| FrameTotals {
                frame,
                waits_in: None,
                polls: 0,
                split: Split::default(),
                max_poll_ns: 0,
                max_poll_at_ns: 0,
                stack: id as u32,
                user_on_cpu_ns: 0,
                cpu_samples: 0,
                cpu_ns: 0,
                user_cpu_samples: 0,
                user_cpu_ns: 0,
            });
            if !info.is_some_and(|i| i.in_system_call) {
                e.user_on_cpu_ns = e.user_on_cpu_ns.saturating_add(st.split.on_cpu_ns);
                e.user_cpu_samples += st.poll_cpu_samples;
                e.user_cpu_ns = e.user_cpu_ns.saturating_add(st.poll_cpu_ns);
            }
            e.cpu_samples += st.poll_cpu_samples;
            e.cpu_ns = e.cpu_ns.saturating_add(st.poll_cpu_ns);
            e.polls += st.polls;
            e.split.add(st.split);
            if e.waits_in.is_none() {
                e.waits_in = info.and_then(|i| i.waits_in);
            }
            if st.max_poll_ns > e.max_poll_ns {
                e.max_poll_ns = st.max_poll_ns;
                e.max_poll_at_ns = st.max_poll_at_ns;
                e.stack = id as u32;
            }
        }
        let mut v: Vec<FrameTotals> = by.into_values().collect();
        v.sort_by_key(|f| {
            std::cmp::Reverse(if on_cpu {
                f.split.on_cpu_ns
            } else {
                f.split.off_cpu_ns
            })
        });
        v
    }

    /// The measured and estimated long polls of task `name` together.
    pub fn poll_split(&self, name: StrId) -> Option<(SplitTotals, SplitTotals)> {
        let m = self.measured.get(&ScopeKey::Poll(name)).copied();
        let e = self.estimated.get(&name).copied();
        (m.is_some() || e.is_some()).then(|| (m.unwrap_or_default(), e.unwrap_or_default()))
    }

    /// Measured long blocks at `site`, reason `r`.
    pub fn block_split(&self, site: SiteId, r: BlockReason) -> Option<&SplitTotals> {
        self.measured.get(&ScopeKey::Block(site, reason_index(r)))
    }
}

/// What a view shows where the OS view does not apply.
pub const NO_OS_DATA: &str = "not applicable (no OS data)";

impl OsView {
    /// A table cell for long scopes' split: `on 5% · wait 4% · off 91% (12 measured, 30
    /// estimated)`, `-` when none was split, or [`NO_OS_DATA`].
    pub fn cell(&self, measured: SplitTotals, estimated: SplitTotals) -> String {
        if !self.has_data() {
            return NO_OS_DATA.into();
        }
        let mut s = measured.split;
        s.add(estimated.split);
        if s.total() == 0 {
            return "-".into();
        }
        let t = s.total() as f64;
        let p = |x: u64| crate::text::pct(x as f64 / t);
        format!(
            "on {} / wait {} / off {} ({} measured, {} est.)",
            p(s.on_cpu_ns),
            p(s.runq_ns),
            p(s.off_cpu_ns),
            measured.count,
            estimated.count
        )
    }

    /// A split as JSON, or the not-applicable string.
    pub fn json(&self, measured: SplitTotals, estimated: SplitTotals) -> serde_json::Value {
        /// One set of scopes' split.
        #[derive(serde::Serialize)]
        struct One {
            count: u64,
            wall_ns: u64,
            on_cpu_ns: u64,
            waiting_for_cpu_ns: u64,
            off_cpu_ns: u64,
        }
        /// The measured and the estimated split.
        #[derive(serde::Serialize)]
        struct Both {
            measured: One,
            estimated: One,
        }
        if !self.has_data() {
            return serde_json::Value::from(NO_OS_DATA);
        }
        let one = |t: &SplitTotals| One {
            count: t.count,
            wall_ns: t.wall_ns,
            on_cpu_ns: t.split.on_cpu_ns,
            waiting_for_cpu_ns: t.split.runq_ns,
            off_cpu_ns: t.split.off_cpu_ns,
        };
        serde_json::to_value(Both {
            measured: one(&measured),
            estimated: one(&estimated),
        })
        .expect("a split serializes")
    }

    /// The long polls' top user frames, most off-CPU and on-CPU time first (`n` each), as
    /// text lines with their stacks.
    pub fn frames_text(&self, n: usize) -> String {
        let mut out = String::new();
        if !self.has_data() {
            out.push_str(&format!("\nlong polls by stack: {NO_OS_DATA}\n"));
            return out;
        }
        for (on_cpu, what) in [(false, "off-CPU"), (true, "on-CPU")] {
            let frames: Vec<_> = self
                .by_top_frame(on_cpu)
                .into_iter()
                .filter(|f| {
                    if on_cpu {
                        f.split.on_cpu_ns > f.split.off_cpu_ns || f.cpu_samples > 0
                    } else {
                        f.split.off_cpu_ns >= f.split.on_cpu_ns && f.split.off_cpu_ns > 0
                    }
                })
                .take(n)
                .collect();
            out.push_str(&format!("\nlong polls mostly {what}, by top user frame\n"));
            if frames.is_empty() {
                out.push_str("  (none measured)\n");
            }
            for f in frames {
                out.push_str(&format!(
                    "  {}{}: {} long polls; {}; {}longest {} at {}\n",
                    crate::text::esc(&f.frame),
                    f.waits_in
                        .map(|w| format!(" (waiting in {w})"))
                        .unwrap_or_default(),
                    f.polls,
                    f.split.describe(),
                    if on_cpu && f.cpu_samples > 0 {
                        format!("{} CPU samples in long polls; ", f.cpu_samples)
                    } else {
                        String::new()
                    },
                    crate::text::dur(f.max_poll_ns),
                    crate::text::dur(f.max_poll_at_ns)
                ));
                if let Some(info) = self
                    .stacks
                    .get(f.stack as usize)
                    .and_then(|s| s.info.as_ref())
                {
                    for line in info.shown.iter().take(8) {
                        out.push_str(&format!("      {}\n", crate::text::esc(line)));
                    }
                }
            }
        }
        if let Some(p) = self.symbol_problems.first() {
            out.push_str(&format!(
                "(some frames are shown as address, module and offset: {})\n",
                crate::text::esc(p)
            ));
        }
        out
    }

    /// [`OsView::frames_text`] as JSON.
    pub fn frames_json(&self, n: usize) -> serde_json::Value {
        /// One top frame's long polls.
        #[derive(serde::Serialize)]
        struct Frame {
            frame: String,
            waits_in: Option<&'static str>,
            polls: u64,
            on_cpu_ns: u64,
            waiting_for_cpu_ns: u64,
            off_cpu_ns: u64,
            max_poll_ns: u64,
            max_poll_at_ns: u64,
            stack: Vec<String>,
        }
        /// The top frames by off-CPU and by on-CPU time.
        #[derive(serde::Serialize)]
        struct Frames {
            by_off_cpu: Vec<Frame>,
            by_on_cpu: Vec<Frame>,
        }
        if !self.has_data() {
            return serde_json::Value::from(NO_OS_DATA);
        }
        let rows = |on_cpu: bool| -> Vec<Frame> {
            self.by_top_frame(on_cpu)
                .into_iter()
                .take(n)
                .map(|f| Frame {
                    stack: self
                        .stacks
                        .get(f.stack as usize)
                        .and_then(|s| s.info.as_ref())
                        .map(|i| i.shown.clone())
                        .unwrap_or_default(),
                    frame: f.frame,
                    waits_in: f.waits_in,
                    polls: f.polls,
                    on_cpu_ns: f.split.on_cpu_ns,
                    waiting_for_cpu_ns: f.split.runq_ns,
                    off_cpu_ns: f.split.off_cpu_ns,
                    max_poll_ns: f.max_poll_ns,
                    max_poll_at_ns: f.max_poll_at_ns,
                })
                .collect()
        };
        serde_json::to_value(Frames {
            by_off_cpu: rows(false),
            by_on_cpu: rows(true),
        })
        .expect("frames serialize")
    }
}

/// Long polls grouped by the top user frame of their stacks ([`OsView::by_top_frame`]).
#[derive(Debug, Clone)]
pub struct FrameTotals {
    /// `function at file:line` (or the innermost frame, or an address).
    pub frame: String,
    /// What the frames inside it show the thread waiting in.
    pub waits_in: Option<&'static str>,
    /// Long polls.
    pub polls: u64,
    /// Their split (shared among each poll's stacks).
    pub split: Split,
    /// The longest of them.
    pub max_poll_ns: u64,
    /// Its start.
    pub max_poll_at_ns: u64,
    /// A stack of it (the longest poll's).
    pub stack: u32,
    /// On-CPU time of its polls whose stacks were in the application's code, not in a
    /// system call.
    pub user_on_cpu_ns: u64,
    /// CPU samples inside long polls whose top user frame this is.
    pub cpu_samples: u64,
    /// Their CPU time (each `1 / rate`; 0 when the trace gives no rate), ns.
    pub cpu_ns: u64,
    /// The samples whose stacks were in the application's code, not in a system call.
    pub user_cpu_samples: u64,
    /// Their CPU time, ns.
    pub user_cpu_ns: u64,
}

/// Keeps `e` among `th`'s closed episodes, within [`MAX_EPISODES_PER_THREAD`] and
/// [`MAX_EPISODES_HELD`]; `left_out` counts one not kept.
fn push_closed(th: &mut ThreadOs, e: Episode, held: &mut Held, left_out: &mut u64) {
    if let Pushed::Refused = push_bounded(
        &mut th.closed,
        e,
        &mut held.closed,
        MAX_EPISODES_PER_THREAD,
        MAX_EPISODES_HELD,
    ) {
        *left_out += 1;
    }
}

fn th_stacks(th: &ThreadOs, scope: &Scope) -> Vec<u32> {
    let mut v: Vec<u32> = th
        .closed
        .iter()
        .filter(|e| e.start.ns >= scope.start && e.start.ns <= scope.end)
        .flat_map(|e| e.stacks.iter().copied())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The split of `scope` from the closed episodes inside it.
fn measure(th: &ThreadOs, scope: &Scope) -> Option<Split> {
    let mut sum = Split::default();
    let mut covered = 0u64;
    for e in th
        .closed
        .iter()
        .filter(|e| e.start.ns >= scope.start && e.start.ns <= scope.end)
    {
        let Some(end) = e.end else { continue };
        let len = end.ns.saturating_sub(e.start.ns);
        if len == 0 {
            continue;
        }
        let inside = scope.end.min(end.ns).saturating_sub(e.start.ns);
        let outside = len - inside;
        // After the scope, the thread's parked time is off-CPU; its counters' deltas are
        // shared between the scope and the rest of its time active.
        let outside_active = if end.ns > scope.end {
            outside.saturating_sub(end.parked.saturating_sub(scope.parked_end))
        } else {
            0
        };
        let f = inside as f64 / inside.saturating_add(outside_active).max(1) as f64;
        let dc = end.cpu.saturating_sub(e.start.cpu).min(len);
        let dr = end.runq.saturating_sub(e.start.runq).min(len - dc);
        let cpu = ((dc as f64 * f) as u64).min(inside);
        let mut runq = ((dr as f64 * f) as u64).min(inside - cpu);
        // The kernel adds a wait for a CPU to the counters only once the thread runs, so a
        // wait in progress at the end sample is missing from them. A thread neither sample
        // saw sleeping (`S`, `D`, ...) was runnable throughout: its unaccounted time is
        // that wait, not time off-CPU.
        let slept = [e.start.state, end.state]
            .iter()
            .any(|s| s.is_some_and(|b| b != b'R'));
        if !slept {
            runq = inside - cpu;
        }
        sum.add(Split {
            on_cpu_ns: cpu,
            runq_ns: runq,
            off_cpu_ns: inside - cpu - runq,
        });
        covered = covered.saturating_add(inside);
    }
    if covered == 0 {
        return None;
    }
    let wall = scope.end.saturating_sub(scope.start).max(covered);
    Some(sum.scaled(wall as f64 / covered as f64))
}

/// The split of an unsampled long poll from its thread's samples around it: the thread's
/// shares of its time not parked.
fn estimate(before: &Sample, after: &Sample, scope: &Scope) -> Option<Split> {
    let len = after.ns.checked_sub(before.ns)?;
    let parked = after.parked.saturating_sub(before.parked);
    let active = len.saturating_sub(parked);
    if active == 0 {
        return None;
    }
    let cpu = after.cpu.saturating_sub(before.cpu) as f64;
    let runq = after.runq.saturating_sub(before.runq) as f64;
    let a = active as f64;
    let (mut c, mut r) = ((cpu / a).min(1.0), (runq / a).min(1.0));
    if c + r > 1.0 {
        let t = c + r;
        c /= t;
        r /= t;
    }
    let wall = scope.end.saturating_sub(scope.start) as f64;
    let on = (wall * c) as u64;
    let rq = (wall * r) as u64;
    Some(Split {
        on_cpu_ns: on,
        runq_ns: rq,
        off_cpu_ns: (wall as u64).saturating_sub(on + rq),
    })
}

/// Whether a symbolized frame is the standard library's, a runtime's, fdr's or a registry
/// dependency's (not the application's own code).
fn is_library(function: Option<&str>, file: Option<&str>) -> bool {
    if let Some(f) = file
        && (f.starts_with("/rustc/")
            || f.contains("/.cargo/registry/")
            || f.contains("/.cargo/git/")
            || f.contains("/rustlib/src/")
            || f.starts_with("/rust/deps/")
            || f.contains("/library/std/src/")
            || f.contains("/library/core/src/")
            || f.contains("/library/alloc/src/")
            || f.contains("/crates/fdr/src/")
            || f.contains("/crates/fdr-recorder/src/"))
    {
        return true;
    }
    let Some(name) = function else {
        return true;
    };
    let name = name.trim_start_matches('<');
    const LIBS: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "tokio::",
        "tokio_util::",
        "futures",
        "mio::",
        "hyper::",
        "hyper_util::",
        "h2::",
        "tower::",
        "parking_lot",
        "crossbeam",
        "rayon",
        "fdr::",
        "fdr_recorder::",
        "fdr_tracing::",
        "fdr_otel::",
        "tracing::",
        "tracing_core::",
        "__",
        "_start",
        "clone",
        "start_thread",
    ];
    LIBS.iter().any(|l| name.starts_with(l)) || file.is_none()
}

/// What a library frame's function shows the thread waiting in.
fn wait_kind(function: &str) -> Option<&'static str> {
    let f = function;
    if f.contains("sleep") {
        Some("sleep")
    } else if f.contains("Condvar") || f.contains("condvar") {
        Some("condvar")
    } else if f.contains("Mutex")
        || f.contains("RwLock")
        || f.contains("futex")
        || f.contains("parking_lot")
        || f.contains("::lock")
    {
        Some("lock")
    } else if f.contains("::net::")
        || f.contains("io::Read")
        || f.contains("io::Write")
        || f.contains("read")
        || f.contains("write")
        || f.contains("recv")
        || f.contains("send")
        || f.contains("connect")
        || f.contains("accept")
        || f.contains("poll")
        || f.contains("fsync")
    {
        Some("io")
    } else {
        None
    }
}

fn symbolize(sym: &mut Symbolizer, tables: &Tables, frames: &[u64]) -> StackInfo {
    let mut info = StackInfo::default();
    let mut waits: Option<&'static str> = None;
    info.in_system_call = frames.first().is_none_or(|&a| {
        tables.module_of(a).is_none_or(|m| {
            let name = m.path.rsplit('/').next().unwrap_or("");
            name.starts_with("libc.")
                || name.starts_with("libc-")
                || name.starts_with("libpthread")
                || name.starts_with("ld-linux")
                || name.starts_with("ld-")
                || name.contains("vdso")
        })
    });
    for (i, &a) in frames.iter().enumerate() {
        let kind = if i == 0 {
            AddressKind::InstructionPointer
        } else {
            AddressKind::ReturnAddress
        };
        let Some(m) = tables.module_of(a) else {
            if info.shown.len() < SHOWN_FRAMES {
                info.shown.push(format!("{a:#x} (no module)"));
            }
            continue;
        };
        let s = sym.symbolize(m, a, kind);
        if s.frames.is_empty() {
            if info.problem.is_none()
                && let Some(p) = &s.problem
            {
                info.problem = Some(p.to_string());
            }
            if info.shown.len() < SHOWN_FRAMES {
                let probe = match kind {
                    AddressKind::InstructionPointer => a,
                    AddressKind::ReturnAddress => a.saturating_sub(1).max(m.start),
                };
                info.shown.push(format!(
                    "{a:#x} in {}+{:#x}",
                    m.path,
                    m.file_offset_of(probe)
                ));
            }
            continue;
        }
        for f in &s.frames {
            let func = f.function.as_deref();
            let file = f.file.as_deref();
            let text = match (func, file, f.line) {
                (fun, Some(file), Some(line)) => {
                    format!("{} at {file}:{line}", fun.unwrap_or("??"))
                }
                (fun, Some(file), None) => format!("{} at {file}", fun.unwrap_or("??")),
                (fun, None, _) => format!("{} in {}", fun.unwrap_or("??"), m.path),
            };
            if info.shown.len() < SHOWN_FRAMES {
                info.shown.push(text.clone());
            }
            if info.top_user.is_some() {
                continue;
            }
            if is_library(func, file) {
                if waits.is_none()
                    && let Some(fun) = func
                {
                    waits = wait_kind(fun);
                }
            } else {
                info.top_user = Some(text);
                info.top_user_parts = Some((
                    func.unwrap_or("??").to_string(),
                    file.map(str::to_string),
                    f.line,
                ));
                info.waits_in = waits;
            }
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s0: (u64, u64, u64), s1: (u64, u64, u64)) -> Episode {
        let s = |(ns, cpu, runq)| Sample {
            ns,
            cpu,
            runq,
            parked: 0,
            state: Some(b'S'),
        };
        Episode {
            start: s(s0),
            end: Some(s(s1)),
            stacks: vec![],
        }
    }

    /// Bytes every thread's OS-view queues hold (their capacity).
    fn held_bytes(v: &OsView) -> usize {
        v.threads
            .values()
            .map(|t| {
                t.cpu.capacity() * size_of::<CpuSample>()
                    + t.closed.capacity() * size_of::<Episode>()
                    + t.closed
                        .iter()
                        .map(|e| e.stacks.capacity() * 4)
                        .sum::<usize>()
                    + t.recent.capacity() * size_of::<Recent>()
                    + t.pending.capacity() * size_of::<(Scope, Wait)>()
            })
            .sum()
    }

    /// A sampler reporting on many threads (as one thread may write about any thread id):
    /// CPU-timer stacks, episodes that open and close, long polls waiting for an episode.
    /// Every thread's queues together stay within their bounds, not each thread's
    /// thousand, and what was not kept is counted in the note.
    #[test]
    fn many_sampled_threads_share_the_queues_bounds() {
        let mut v = OsView::default();
        let mut frames = Vec::new();
        let n = StackFrames::encode(&[0x1000, 0x2000], &mut frames);
        let frames = StackFrames::from_encoded(&frames, n).unwrap();
        let counters = |ns: u64| (Some(ns), Some(ns / 2), Some(b'S'));
        let threads = 8_000u32;
        let key = ScopeKey::Poll(StrId(1));
        for round in 0..64u64 {
            for t in 1..=threads {
                let thread = ThreadId(t);
                let ns = round * 10_000_000 + u64::from(t) * 1_000;
                v.sample(thread, ns, SampleCause::LongScope, counters(ns), 0);
                v.stack(thread, SampleCause::CpuTimer, frames, Some(ns + 1));
                v.stack(thread, SampleCause::LongScope, frames, Some(ns + 1));
                // A long poll around the episode's start, ended while it is open.
                v.scope_closed(thread, key, ns - 1, ns + 2, 0);
                if round % 8 == 3 {
                    v.sample(thread, ns + 3, SampleCause::ScopeEnd, counters(ns + 3), 0);
                }
            }
        }
        // Threads first seen once the bounds are reached: nothing of theirs to give up.
        for t in threads + 1..=threads + 100 {
            let thread = ThreadId(t);
            let ns = 1_000_000_000 + u64::from(t) * 1_000;
            v.sample(thread, ns, SampleCause::LongScope, counters(ns), 0);
            v.sample(thread, ns + 5, SampleCause::ScopeEnd, counters(ns + 5), 0);
            v.stack(thread, SampleCause::CpuTimer, frames, Some(ns + 9));
        }
        let bound = MAX_CPU_SAMPLES_HELD * size_of::<CpuSample>()
            + MAX_EPISODES_HELD * (size_of::<Episode>() + 8 * 4)
            + MAX_RECENT_SCOPES_HELD * size_of::<Recent>()
            + MAX_PENDING_HELD * size_of::<(Scope, Wait)>();
        // Each queue's room at most doubles what it holds.
        let bytes = held_bytes(&v);
        assert!(bytes <= 2 * bound, "{bytes} bytes held, bound {bound}");
        assert!(v.held.cpu <= MAX_CPU_SAMPLES_HELD);
        assert!(v.held.closed <= MAX_EPISODES_HELD);
        assert!(v.held.recent <= MAX_RECENT_SCOPES_HELD);
        assert!(v.held.pending <= MAX_PENDING_HELD);
        let note = v.truncated().expect("a note");
        assert!(v.cpu_left_out > 0 && v.episodes_left_out > 0, "{note:?}");
        assert_eq!(
            note.count,
            v.cpu_left_out + v.scopes_left_out + v.episodes_left_out
        );
        // The scopes still waiting are resolved at the end, and the count comes back.
        let waiting = v.held.pending as u64;
        assert!(waiting > 0);
        let resolved = |v: &OsView| v.polls_measured.count + v.polls_unsplit;
        let before = resolved(&v);
        v.finish(&Tables::default(), &fdr_symbolize::Options::default());
        assert_eq!(resolved(&v) - before, waiting);
        assert_eq!(v.held.pending, 0);
    }

    #[test]
    fn an_episode_inside_a_scope_splits_it_and_the_tail_outside_takes_its_share_first() {
        let mut th = ThreadOs::default();
        // 10 ms episode, the scope ends 2 ms before its end; 1 ms CPU, 1 ms run queue.
        th.closed
            .push_back(ep((5_000_000, 0, 0), (15_000_000, 1_000_000, 1_000_000)));
        let scope = Scope {
            key: ScopeKey::Poll(StrId(1)),
            thread: ThreadId(1),
            start: 1_000_000,
            end: 13_000_000,
            parked_end: 0,
        };
        let s = measure(&th, &scope).unwrap();
        assert_eq!(s.total(), 12_000_000);
        assert_eq!(s.class(), SplitClass::OffCpu);
        // 8 ms inside, 2 ms active after it: four fifths of the counters are the scope's.
        assert_eq!(s.on_cpu_ns, 1_200_000, "{s:?}");
        assert_eq!(s.off_cpu_ns, 9_600_000, "{s:?}");
    }

    #[test]
    fn classes_follow_the_largest_share() {
        let s = |on, runq, off| Split {
            on_cpu_ns: on,
            runq_ns: runq,
            off_cpu_ns: off,
        };
        let ms = 1_000_000;
        assert_eq!(s(8 * ms, ms, ms).class(), SplitClass::OnCpu);
        assert_eq!(s(ms / 4, 9 * ms, ms / 4).class(), SplitClass::WaitingForCpu);
        // Long even without its wait for a CPU: the app's own long poll.
        assert_eq!(s(2 * ms, 9 * ms, ms / 2).class(), SplitClass::OnCpu);
        assert_eq!(s(2 * ms, 2 * ms, 6 * ms).class(), SplitClass::OffCpu);
    }

    #[test]
    fn an_estimate_uses_the_time_not_parked() {
        let before = Sample {
            ns: 0,
            cpu: 0,
            runq: 0,
            parked: 0,
            state: None,
        };
        // 100 ms, 80 ms parked: of the 20 ms active, 3 on-CPU, 17 waiting.
        let after = Sample {
            ns: 100_000_000,
            cpu: 3_000_000,
            runq: 17_000_000,
            parked: 80_000_000,
            state: None,
        };
        let scope = Scope {
            key: ScopeKey::Poll(StrId(1)),
            thread: ThreadId(1),
            start: 10_000_000,
            end: 14_000_000,
            parked_end: 0,
        };
        let s = estimate(&before, &after, &scope).unwrap();
        assert_eq!(s.class(), SplitClass::WaitingForCpu);
        assert_eq!((s.on_cpu_ns, s.runq_ns), (600_000, 3_400_000));
    }

    #[test]
    fn library_frames_are_skipped_for_the_top_user_frame() {
        assert!(is_library(
            Some("std::thread::sleep"),
            Some("/rustc/abc/library/std/src/thread/mod.rs")
        ));
        assert!(is_library(Some("<tokio::runtime::task::Harness>"), None));
        assert!(!is_library(
            Some("fdr_scenarios::legacy_codec::codec::legacy::code_page"),
            Some("/w/scenarios/src/legacy_codec/codec/legacy.rs")
        ));
        assert_eq!(wait_kind("std::thread::sleep"), Some("sleep"));
        assert_eq!(
            wait_kind("std::sys::sync::mutex::futex::Mutex::lock_contended"),
            Some("lock")
        );
        assert_eq!(
            wait_kind("<std::net::tcp::TcpStream as std::io::Read>::read"),
            Some("io")
        );
    }
}
