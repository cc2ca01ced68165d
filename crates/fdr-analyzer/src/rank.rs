//! Ranking findings by cause: a finding that explains another ranks above it and carries it
//! as evidence, and no two findings are left tied for a rule order to decide.
//!
//! Explanations (each holds only when both findings are present):
//! - `lock_contention` explains `long_polls` when lock waits recorded inside polls account
//!   for at least [`EXPLAINED_SHARE`] of the long polls' time;
//! - `slow_downstream` explains `long_polls` when blocking I/O recorded inside polls does;
//! - `blocking_in_async` and `cpu_heavy_polls` (the OS view's split of long polls into
//!   off-CPU and on-CPU time) explain `long_polls` whenever they are above info;
//! - `sched_delay` explains `long_polls` when the runtime is oversubscribed: tasks spent
//!   most of their active time waiting for a worker and the p99 wait is over twice the
//!   longest poll, so queueing, not any one poll, is where the time goes;
//! - `sched_delay` explains `cpu_heavy_polls` then too (above info): the on-CPU long polls
//!   are the runnable tasks a saturated runtime runs, not the cause of its queue;
//! - `long_polls` explains `sched_delay` otherwise (the longest poll is at least half the
//!   p99 wait: tasks wait behind long polls);
//! - `serial_bottleneck` explains `async_lock_contention` when the holder the tasks queue
//!   behind runs on a thread (a user task) or is what the busiest thread runs.
//!
//! An explaining finding's score becomes at least the explained one's; the explained one's
//! is then put one below it. Findings are sorted by score; at equal scores, by
//! [`CAUSE_ORDER`] (causes before symptoms), and a finding tied with the one above it is
//! put one point below, so the printed scores differ.

use crate::diagnose::{Finding, Severity};
use crate::profile::{LONG_POLL_NS, Profile, REASON_NAMES, TaskKind};
use crate::text::dur;

/// Share of the long polls' time that recorded waits inside them must cover to explain them.
pub const EXPLAINED_SHARE: f64 = 0.3;

/// Every rule id, causes first: the order at equal scores.
pub const CAUSE_ORDER: &[&str] = &[
    "lock_contention",
    "async_lock_contention",
    "blocking_in_async",
    "cpu_heavy_polls",
    "slow_downstream",
    "serial_bottleneck",
    "task_leak",
    "recorder_loss",
    "sched_delay",
    "long_polls",
];

fn order(rule: &str) -> usize {
    CAUSE_ORDER
        .iter()
        .position(|r| *r == rule)
        .unwrap_or(CAUSE_ORDER.len())
}

/// Time blocked inside polls on reason slots `slots`.
fn blocked_in_polls(p: &Profile, slots: &[usize]) -> u64 {
    p.blocking_in_poll
        .iter()
        .filter(|((_, r), _)| slots.contains(r))
        .map(|(_, s)| s.total_ns)
        .fold(0, u64::saturating_add)
}

/// Whether the runtime is oversubscribed: tasks wait for a worker most of their active
/// time, and the p99 wait is over twice the longest poll.
pub(crate) fn oversubscribed(p: &Profile) -> bool {
    let (wait, run) =
        p.tasks
            .iter()
            .filter(|(k, _)| k.0 == TaskKind::Async)
            .fold((0u64, 0u64), |a, (_, s)| {
                (
                    a.0.saturating_add(s.sched_wait_ns),
                    a.1.saturating_add(s.running_ns),
                )
            });
    let q = wait as f64 / (wait as f64 + run as f64).max(1.0);
    let longest = p.longest_polls.first().map_or(0, |x| x.dur_ns);
    q >= 0.5 && p.sched_latency.p99() > longest.saturating_mul(2)
}

/// One explanation: the cause's id, the symptom's id and the line the cause carries.
struct Explains {
    cause: &'static str,
    symptom: &'static str,
    because: String,
}

fn explanations(p: &Profile, findings: &[Finding]) -> Vec<Explains> {
    let above_info = |id: &str| {
        findings
            .iter()
            .any(|f| f.rule == id && Severity::from_score(f.score) > Severity::Info)
    };
    let mut out = Vec::new();
    // A holder that runs on the one busy thread: the serial thread is the cause.
    if above_info("serial_bottleneck")
        && let Some(holder) = crate::async_rules::holder(p)
    {
        let busiest = p
            .threads
            .values()
            .max_by_key(|t| t.busy_ns())
            .map(|t| t.longest_active.3);
        if p.tasks.contains_key(&(TaskKind::User, holder)) || busiest == Some(holder) {
            out.push(Explains {
                cause: "serial_bottleneck",
                symptom: "async_lock_contention",
                because: format!(
                    "explains the queue of tasks: they wait for {}, which runs on the busy thread",
                    p.name(holder)
                ),
            });
        }
    }
    let (n, long) = p.long_polls;
    if n > 0 {
        let long = long.max(1) as f64;
        let lock = blocked_in_polls(p, &[0, 1]);
        if lock as f64 >= EXPLAINED_SHARE * long {
            out.push(Explains {
                cause: "lock_contention",
                symptom: "long_polls",
                because: format!(
                    "explains the long polls: {} of their {} was spent waiting for {} inside them",
                    dur(lock),
                    dur(p.long_polls.1),
                    [REASON_NAMES[0], REASON_NAMES[1]].join(" or ")
                ),
            });
        }
        let io = blocked_in_polls(p, &[4]);
        if io as f64 >= EXPLAINED_SHARE * long {
            out.push(Explains {
                cause: "slow_downstream",
                symptom: "long_polls",
                because: format!(
                    "explains the long polls: {} of their {} was spent blocked on I/O inside them",
                    dur(io),
                    dur(p.long_polls.1)
                ),
            });
        }
        for cause in ["blocking_in_async", "cpu_heavy_polls"] {
            if above_info(cause) {
                out.push(Explains {
                    cause,
                    symptom: "long_polls",
                    because: format!(
                        "explains the long polls: {n} polls of {} or more, {} in total",
                        dur(LONG_POLL_NS),
                        dur(p.long_polls.1)
                    ),
                });
            }
        }
        if oversubscribed(p) {
            // The fan-out's own on-CPU polls are what a saturated runtime runs: the queue,
            // not any one poll, is where the time goes.
            if above_info("cpu_heavy_polls") {
                out.push(Explains {
                    cause: "sched_delay",
                    symptom: "cpu_heavy_polls",
                    because: format!(
                        "explains the on-CPU long polls: tasks spent most of their active time waiting for a worker, {} (p99), over twice the longest poll; more CPU-bound runnable tasks than workers, so each worker always has one to run",
                        dur(p.sched_latency.p99())
                    ),
                });
            }
            out.push(Explains {
                cause: "sched_delay",
                symptom: "long_polls",
                because: format!(
                    "explains the long polls: with more runnable tasks than workers, tasks wait {} (p99) for a worker, over twice the longest poll ({}); {n} polls of {} or more are what a saturated runtime's polls look like",
                    dur(p.sched_latency.p99()),
                    dur(p.longest_polls.first().map_or(0, |x| x.dur_ns)),
                    dur(LONG_POLL_NS)
                ),
            });
        } else {
            out.push(Explains {
                cause: "long_polls",
                symptom: "sched_delay",
                because: format!(
                    "explains the scheduling delay: tasks wait behind polls of up to {}",
                    dur(p.longest_polls.first().map_or(0, |x| x.dur_ns))
                ),
            });
        }
    }
    out
}

/// Ranks `findings` (scores already clamped to 0–100): explanations, then the order.
pub(crate) fn rank(p: &Profile, findings: &mut [Finding]) {
    for e in explanations(p, findings) {
        let (Some(c), Some(s)) = (
            findings.iter().position(|f| f.rule == e.cause),
            findings.iter().position(|f| f.rule == e.symptom),
        ) else {
            continue;
        };
        if findings[s].score <= 0.0 {
            continue;
        }
        let symptom_score = findings[s].score;
        let cause_title = findings[c].title.clone();
        let symptom_title = findings[s].title.clone();
        let cf = &mut findings[c];
        cf.score = cf.score.max(symptom_score);
        cf.evidence
            .push(format!("{} ({}: {symptom_title})", e.because, e.symptom));
        let cause_score = cf.score;
        let sf = &mut findings[s];
        sf.score = sf.score.min((cause_score - 1.0).max(0.0));
        sf.evidence.push(format!(
            "a consequence of {} ({cause_title}), ranked above",
            e.cause
        ));
    }
    findings.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| order(a.rule).cmp(&order(b.rule)))
            .then_with(|| a.rule.cmp(b.rule))
    });
    for i in 1..findings.len() {
        let above = findings[i - 1].score;
        if above >= 1.0 && findings[i].score > above - 1.0 {
            findings[i].score = above - 1.0;
        }
    }
    for f in findings.iter_mut() {
        f.score = f.score.clamp(0.0, 100.0);
        f.severity = Severity::from_score(f.score);
    }
}
