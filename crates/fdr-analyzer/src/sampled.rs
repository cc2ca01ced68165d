//! When a stack sample was taken, and what its thread was running then.
//!
//! The OS sampler records a stack after capturing it: a CPU-timer copy waits in its thread's
//! capture area until the sampler takes it (up to half a profiling period), and a long
//! scope's stack is recorded after its unwinding. The event carries that delay
//! (`EventKind::Stack::age_ticks`), so a sample was *taken* at the event's time minus its
//! age. Everything that shows a sample (the Perfetto and pprof exports, the Parquet
//! `stack_samples` table, the profile's long scopes) places it at [`taken_ns`], and names the
//! task its thread ran at that moment ([`TaskTimeline::at`]), which is not always the task
//! it runs when the event is recorded: the poll the sample fell in may have ended since.
//!
//! A stack without an age (traces written before stacks carried one) is placed at its
//! event's time.

use std::collections::{HashMap, VecDeque};

use fdr_format::{TaskId, ThreadId};

use crate::limits::StackBudget;
use crate::stream::Clock;

/// Ended task runs (polls, user tasks) kept per thread for samples taken before they
/// ended and recorded after: a sample older than the oldest one kept is not labelled.
pub const MAX_ENDED_RUNS_PER_THREAD: usize = 256;
/// Task runs followed open per thread (nesting depth); deeper ones are counted.
pub const MAX_OPEN_RUNS_PER_THREAD: usize = 64;
/// Ended task runs kept across all threads: past it, a thread keeps the runs it holds,
/// dropping its oldest for each new one (about 6 MiB; open runs share a
/// [`StackBudget`] of [`crate::limits::MAX_OPEN_SPAN_BYTES`]).
pub const MAX_ENDED_RUNS: usize = 1 << 18;

/// When a stack recorded at `ns` (ns since the trace's first event) with `age_ticks` was
/// taken, ns since the trace's first event.
pub fn taken_ns(ns: u64, age_ticks: Option<u64>, clock: &Clock) -> u64 {
    age_ticks.map_or(ns, |a| ns.saturating_sub(clock.dur_ns(a)))
}

/// What [`TaskTimeline::at`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunningAt {
    /// This task was the innermost running on the thread.
    Task(TaskId),
    /// No task ran on the thread then.
    Idle,
    /// The moment is older than the runs kept for the thread
    /// ([`MAX_ENDED_RUNS_PER_THREAD`]): a bound's loss, to be said.
    Forgotten,
    /// Nothing is known of the thread then (no task began or ended on it before, or it is
    /// not followed).
    Unknown,
}

impl RunningAt {
    /// The task, if one is known to have run.
    pub fn task(self) -> Option<TaskId> {
        match self {
            RunningAt::Task(t) => Some(t),
            RunningAt::Idle | RunningAt::Forgotten | RunningAt::Unknown => None,
        }
    }
}

/// One thread's task runs: those open (innermost last) and the last ones that ended.
#[derive(Debug, Default)]
struct Runs {
    open: Vec<(TaskId, u64)>,
    /// `(task, start_ns, end_ns)`, in the order they ended.
    ended: VecDeque<(TaskId, u64, u64)>,
    /// The latest end of the runs dropped from `ended` (bound reached): a moment up to it
    /// may have been inside one of them.
    forgotten_until: Option<u64>,
    /// The first begin or end seen on the thread: nothing is known before it.
    first_ns: Option<u64>,
}

/// Which task each thread ran when, over the recent past: fed the trace's task begins and
/// ends in order, asked about the moment a sample was taken. Bounded per thread
/// ([`MAX_ENDED_RUNS_PER_THREAD`], [`MAX_OPEN_RUNS_PER_THREAD`]), across threads
/// ([`MAX_ENDED_RUNS`], a [`StackBudget`] for open runs) and in threads.
#[derive(Debug)]
pub struct TaskTimeline {
    threads: HashMap<ThreadId, Runs>,
    max_threads: usize,
    /// The bytes of every thread's open runs together.
    open_budget: StackBudget,
    /// Ended runs kept, all threads together.
    ended: usize,
    /// Begins on threads past the thread bound, not followed.
    pub untracked: u64,
    /// Begins nested deeper than [`MAX_OPEN_RUNS_PER_THREAD`], not followed.
    pub too_deep: u64,
}

impl TaskTimeline {
    /// A timeline following at most `max_threads` threads.
    pub fn new(max_threads: usize) -> Self {
        TaskTimeline {
            threads: HashMap::new(),
            max_threads,
            open_budget: StackBudget::default(),
            ended: 0,
            untracked: 0,
            too_deep: 0,
        }
    }

    /// `task` starts running on `thread` at `ns` (a poll start, a user task's begin).
    pub fn begin(&mut self, thread: ThreadId, task: TaskId, ns: u64) {
        if self.threads.len() >= self.max_threads && !self.threads.contains_key(&thread) {
            self.untracked += 1;
            return;
        }
        let r = self.threads.entry(thread).or_default();
        r.first_ns.get_or_insert(ns);
        if r.open.len() >= MAX_OPEN_RUNS_PER_THREAD
            || !self.open_budget.push(&mut r.open, (task, ns))
        {
            self.too_deep += 1;
        }
    }

    /// `task` stops running on `thread` at `ns` (a poll end, a user task's end); runs opened
    /// inside it and never closed end with it.
    pub fn end(&mut self, thread: ThreadId, task: TaskId, ns: u64) {
        let Some(r) = self.threads.get_mut(&thread) else {
            return;
        };
        r.first_ns.get_or_insert(ns);
        let Some(pos) = r.open.iter().rposition(|&(t, _)| t == task) else {
            return;
        };
        for (t, start) in r.open.drain(pos..).rev() {
            let full = r.ended.len() >= MAX_ENDED_RUNS_PER_THREAD || self.ended >= MAX_ENDED_RUNS;
            let oldest = if full { r.ended.pop_front() } else { None };
            match oldest {
                Some((_, _, end)) => {
                    r.forgotten_until = Some(r.forgotten_until.map_or(end, |f| f.max(end)));
                }
                None => self.ended += 1,
            }
            r.ended.push_back((t, start, ns));
        }
        // A thread whose runs all ended after nesting deep gives the memory back.
        let len = r.open.len();
        self.open_budget.truncate(&mut r.open, len);
    }

    /// The task running innermost on `thread` at `ns`: of the runs that held that moment
    /// (open, or ended and kept), the one that started last.
    pub fn at(&self, thread: ThreadId, ns: u64) -> RunningAt {
        let Some(r) = self.threads.get(&thread) else {
            return RunningAt::Unknown;
        };
        if r.first_ns.is_none_or(|f| ns < f) {
            return RunningAt::Unknown;
        }
        if r.forgotten_until.is_some_and(|f| ns <= f) {
            return RunningAt::Forgotten;
        }
        let open = r
            .open
            .iter()
            .filter(|&&(_, s)| s <= ns)
            .map(|&(t, s)| (t, s));
        // Latest ended first: of runs that ended together the inner one was kept first, so
        // it comes last and wins a tie of starts (`max_by_key` keeps the last maximum), as
        // an ended run wins over an open one that started with it (it was inside it).
        let ended = r
            .ended
            .iter()
            .rev()
            .filter(|&&(_, s, e)| s <= ns && ns <= e)
            .map(|&(t, s, _)| (t, s));
        match open.chain(ended).max_by_key(|&(_, s)| s) {
            Some((t, _)) => RunningAt::Task(t),
            None => RunningAt::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ThreadId = ThreadId(1);

    /// Many threads with runs that never end, and many with runs that all end: the runs
    /// kept stay within the budgets across threads, not per thread times threads.
    #[test]
    fn runs_on_many_threads_share_the_budgets() {
        let mut tl = TaskTimeline::new(1 << 16);
        for t in 0..10_000u32 {
            for i in 0..MAX_OPEN_RUNS_PER_THREAD as u64 {
                tl.begin(ThreadId(t), TaskId(i + 1), i);
            }
        }
        let open: usize = tl.threads.values().map(|r| r.open.capacity()).sum();
        assert!(
            open * size_of::<(TaskId, u64)>() <= crate::limits::MAX_OPEN_SPAN_BYTES,
            "{open} open runs held"
        );
        assert!(tl.too_deep > 0);
        // (The open runs' budget is spent: a new thread's runs would not be followed.)
        let mut tl = TaskTimeline::new(1 << 16);
        let threads = 2 * MAX_ENDED_RUNS / MAX_ENDED_RUNS_PER_THREAD;
        for t in 0..threads as u32 {
            let th = ThreadId(100_000 + t);
            for i in 0..MAX_ENDED_RUNS_PER_THREAD as u64 {
                tl.begin(th, TaskId(i + 1), 10 * i);
                tl.end(th, TaskId(i + 1), 10 * i + 5);
            }
        }
        let ended: usize = tl.threads.values().map(|r| r.ended.len()).sum();
        assert!(ended <= MAX_ENDED_RUNS + threads, "{ended} ended runs kept");
        // A thread that got no share still knows its latest run.
        let last = ThreadId(100_000 + threads as u32 - 1);
        let n = MAX_ENDED_RUNS_PER_THREAD as u64 - 1;
        assert_eq!(tl.at(last, 10 * n + 2), RunningAt::Task(TaskId(n + 1)));
        assert_eq!(tl.at(last, 2), RunningAt::Forgotten);
    }

    #[test]
    fn a_sample_taken_in_a_poll_that_has_ended_names_that_poll() {
        let mut tl = TaskTimeline::new(8);
        tl.begin(T, TaskId(1), 10);
        tl.end(T, TaskId(1), 20);
        tl.begin(T, TaskId(2), 30);
        assert_eq!(tl.at(T, 15), RunningAt::Task(TaskId(1)));
        assert_eq!(tl.at(T, 25), RunningAt::Idle);
        assert_eq!(tl.at(T, 35), RunningAt::Task(TaskId(2)));
        assert_eq!(tl.at(T, 5), RunningAt::Unknown, "before anything was seen");
        assert_eq!(tl.at(ThreadId(9), 15), RunningAt::Unknown);
    }

    #[test]
    fn the_innermost_run_wins_and_forgotten_moments_are_unknown() {
        let mut tl = TaskTimeline::new(8);
        // A user task around two polls.
        tl.begin(T, TaskId(7), 0);
        tl.begin(T, TaskId(1), 10);
        tl.end(T, TaskId(1), 20);
        assert_eq!(tl.at(T, 15), RunningAt::Task(TaskId(1)));
        assert_eq!(tl.at(T, 25), RunningAt::Task(TaskId(7)));
        for i in 0..MAX_ENDED_RUNS_PER_THREAD as u64 {
            tl.begin(T, TaskId(100 + i), 100 + 10 * i);
            tl.end(T, TaskId(100 + i), 105 + 10 * i);
        }
        assert_eq!(tl.at(T, 15), RunningAt::Forgotten, "its run was dropped");
        assert_eq!(tl.at(T, 102), RunningAt::Task(TaskId(100)));
        // Runs that start together: the inner one is innermost, open or ended.
        tl.begin(T, TaskId(50), 10_000);
        tl.begin(T, TaskId(51), 10_000);
        assert_eq!(tl.at(T, 10_000), RunningAt::Task(TaskId(51)));
        tl.end(T, TaskId(50), 10_010);
        assert_eq!(tl.at(T, 10_005), RunningAt::Task(TaskId(51)));
        let mut small = TaskTimeline::new(1);
        small.begin(T, TaskId(1), 0);
        small.begin(ThreadId(2), TaskId(2), 0);
        assert_eq!(small.untracked, 1);
    }
}
