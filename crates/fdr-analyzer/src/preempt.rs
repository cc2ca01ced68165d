//! How long the host's preemption holds this trace's threads, so that rules on waits do
//! not blame the application (or its downstream) for time the CPU scheduler took.
//!
//! An await on the runtime's I/O or timer driver ends when a worker thread processes the
//! readiness event and issues the wake: when the host keeps that thread (or a downstream
//! on the same host) waiting for a CPU, the await is stretched by that wait, whatever the
//! downstream did. The OS view measures the stall directly: a long poll is classed as
//! waiting for a CPU when, without its run-queue wait, it would not have been long
//! ([`crate::osview::Split::class`]); the mean length of those polls is how long one
//! preemption holds a runnable thread on this host, at the time of the trace.
//!
//! Without the OS view, a descheduled worker shows only as a long poll. Its tell-tale is
//! the host taking several workers at once: among the longest polls, most are outliers of
//! their task (ten times its mean poll or more, or for a task name with none finished, the
//! trace's median poll: a task that usually polls in microseconds) overlapping an outlier
//! poll on another thread ([`simultaneous_stalls`]). Such polls
//! are kept at info by `long_polls` when nothing recorded inside them (a lock wait, a
//! blocking call) explains them, so they never outrank a real cause.

use crate::osview::SplitClass;
use crate::profile::{LONG_POLL_NS, PollRecord, Profile, TaskKind};

/// Measured long polls mostly waiting for a CPU needed before their mean is taken as the
/// stall.
const MIN_PREEMPTED_POLLS: u64 = 2;

/// What the OS view shows of the host preempting the trace's threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Preemption {
    /// Measured long polls mostly waiting for a CPU.
    pub(crate) polls: u64,
    /// Their mean length: how long one preemption stalls a runnable thread.
    pub(crate) stall_ns: u64,
}

/// The host's preemption stall, from the long polls the OS sampler measured (saw open, so
/// their split is exact, unlike the estimates from periodic samples, which spread a
/// sampling interval's wait over every poll in it) and classed as waiting for a CPU;
/// `None` without OS data or with fewer than two such polls.
pub(crate) fn stall(p: &Profile) -> Option<Preemption> {
    if !p.os.has_data() {
        return None;
    }
    let c = SplitClass::WaitingForCpu;
    let m = &p.os.polls_measured;
    let polls = m.by_class[c as usize];
    if polls < MIN_PREEMPTED_POLLS {
        return None;
    }
    Some(Preemption {
        polls,
        stall_ns: m.wall_of(c) / polls,
    })
}

/// A poll this many times its task's mean poll, or more, is an outlier of its task.
const OUTLIER_RATIO: u64 = 10;

/// Long polls that look like the host descheduling several workers at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stalls {
    /// The longest polls (of those the profile keeps) that are outliers of their task
    /// overlapping an outlier on another thread.
    pub(crate) polls: usize,
    /// Of how many long polls kept.
    pub(crate) of: usize,
    /// Distinct threads they ran on.
    pub(crate) threads: usize,
    /// The first one's start.
    pub(crate) at_ns: u64,
}

/// Without OS data: whether most of the longest polls are outliers of their tasks that
/// overlap outliers on other threads (the host took several workers at the same instant).
pub(crate) fn simultaneous_stalls(p: &Profile) -> Option<Stalls> {
    if p.os.has_data() {
        return None;
    }
    let long: Vec<&PollRecord> = p
        .longest_polls
        .iter()
        .filter(|x| x.dur_ns >= LONG_POLL_NS)
        .collect();
    // A task's mean poll, from its name's finished tasks; for names with none (long-lived
    // tasks, a connection's), the median poll of the trace.
    let outlier = |x: &PollRecord| {
        let typical = p
            .tasks
            .get(&(TaskKind::Async, x.name))
            .filter(|s| s.polls > 0)
            .map_or(p.poll_duration.p50(), |s| s.running_ns / s.polls);
        x.dur_ns >= OUTLIER_RATIO.saturating_mul(typical.max(1))
    };
    let overlap = |a: &PollRecord, b: &PollRecord| {
        a.start_ns < b.start_ns.saturating_add(b.dur_ns)
            && b.start_ns < a.start_ns.saturating_add(a.dur_ns)
    };
    let stalled: Vec<&PollRecord> = long
        .iter()
        .copied()
        .filter(|a| {
            outlier(a)
                && long
                    .iter()
                    .any(|b| b.thread != a.thread && outlier(b) && overlap(a, b))
        })
        .collect();
    if stalled.is_empty() || stalled.len().saturating_mul(2) < long.len() {
        return None;
    }
    let mut threads: Vec<_> = stalled.iter().map(|x| x.thread).collect();
    threads.sort_unstable();
    threads.dedup();
    Some(Stalls {
        polls: stalled.len(),
        of: long.len(),
        threads: threads.len(),
        at_ns: stalled.iter().map(|x| x.start_ns).min().unwrap_or(0),
    })
}

/// `long_polls` without the OS view: when its longest polls look like the host taking
/// several workers at once and blocking recorded inside polls (`in_poll_ns`) covers less
/// than [`crate::rank::EXPLAINED_SHARE`] of the long polls' time, the finding stays info.
pub(crate) fn long_polls_stalled(
    p: &Profile,
    in_poll_ns: u64,
    score: &mut f64,
    evidence: &mut Vec<String>,
) {
    let Some(s) = simultaneous_stalls(p) else {
        return;
    };
    if in_poll_ns as f64 >= crate::rank::EXPLAINED_SHARE * p.long_polls.1.max(1) as f64 {
        return;
    }
    *score = score.min(UNMEASURED_STALL_CAP);
    evidence.push(format!(
        "{} of the {} longest polls ran at the same instants on {} threads (from {}), each {} times its task's mean poll or more, with nothing recorded inside them: the host likely descheduled the workers (no OS view to measure it), so this stays info",
        s.polls,
        s.of,
        s.threads,
        crate::text::dur(s.at_ns),
        OUTLIER_RATIO
    ));
}

/// Highest `long_polls` score when its polls look like the host's stalls.
const UNMEASURED_STALL_CAP: f64 = 20.0;

#[cfg(test)]
mod tests {
    use crate::diagnose::Severity;
    use fdr_format::{EventKind, TaskId};
    use fdr_test_support::scenarios::TraceBuilder;

    const MS: u64 = 1_000_000;

    /// Two workers polling a connection task in 50 us polls for a second, no OS data;
    /// every 200 ms a 40 ms poll, on both workers at once or (`offset_ms`) apart.
    fn long_polls(offset_ms: u64) -> crate::Finding {
        let mut b = TraceBuilder::new();
        let name = b.string("conn");
        let site = b.site("src/conn.rs", 12);
        for w in 1..=2u64 {
            let th = b.thread(&format!("tokio-worker-{w}"));
            b.push(th, 0, EventKind::Park);
            b.push(th, 1_000, EventKind::Unpark);
            let task = TaskId(w);
            b.push(
                th,
                2_000,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name,
                    site,
                },
            );
            let mut next_stall = 100 * MS + if w == 2 { offset_ms * MS } else { 0 };
            let mut t = 10_000;
            while t < 1_000 * MS {
                let d = if t >= next_stall {
                    next_stall += 200 * MS;
                    40 * MS
                } else {
                    50_000
                };
                b.push(th, t, EventKind::PollStart { task });
                b.push(th, t + d, EventKind::PollEnd { task, ready: false });
                t += d + 150_000;
            }
        }
        let bytes = b.write_to(Vec::new()).expect("written");
        let (p, _) = crate::profile_slice(&bytes, crate::ProfileOptions::default()).expect("read");
        crate::diagnose(&p)
            .findings()
            .find(|f| f.rule == "long_polls")
            .cloned()
            .expect("long_polls applies")
    }

    #[test]
    fn long_polls_on_every_worker_at_once_stay_info_without_os_data() {
        let f = long_polls(0);
        assert_eq!(f.severity, Severity::Info, "{f:?}");
        assert!(
            f.evidence
                .iter()
                .any(|e| e.contains("descheduled the workers")),
            "{f:?}"
        );
    }

    #[test]
    fn long_polls_one_worker_at_a_time_are_a_finding() {
        let f = long_polls(100);
        assert!(f.severity > Severity::Info, "{f:?}");
        assert!(
            !f.evidence.iter().any(|e| e.contains("descheduled")),
            "{f:?}"
        );
    }
}
