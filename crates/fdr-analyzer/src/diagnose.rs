//! `fdr diagnose`: the on-call runbook as rules over a [`Profile`].
//!
//! Each rule declares the event kinds it needs and answers "not applicable" when the trace
//! has none of them. A finding has a score (0–100), a severity derived from it, evidence
//! (numbers, sites, a time window) and the fix. Findings are ranked by score.

use serde_json::Value;

use fdr_format::{Kind, LossReason};

use crate::limits::{Truncated, notes_json, notes_text};
use crate::profile::{LONG_POLL_NS, Profile, REASON_NAMES, TaskKind};
use crate::text::{self, dur, esc, pct};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// Costs latency or throughput; fix soon.
    Warning,
    /// The likely cause of an incident.
    Critical,
}

impl Severity {
    /// From a score: below 25 info, below 60 warning, else critical.
    pub fn from_score(score: f64) -> Self {
        if score < 25.0 {
            Severity::Info
        } else if score < 60.0 {
            Severity::Warning
        } else {
            Severity::Critical
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What a rule found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule's id (`sched_delay`, `long_polls`, ...).
    pub rule: &'static str,
    /// One line.
    pub title: String,
    /// 0–100.
    pub score: f64,
    /// From the score.
    pub severity: Severity,
    /// Numbers, sites.
    pub evidence: Vec<String>,
    /// The time window the evidence points at (ns since trace start).
    pub window_ns: Option<(u64, u64)>,
    /// What to do.
    pub fix: String,
}

/// One rule's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleOutcome {
    /// The trace lacks the events the rule needs.
    NotApplicable {
        /// The rule.
        rule: &'static str,
        /// Event kinds it needs, none of which the trace has.
        needs: &'static [Kind],
    },
    /// The rule found something (maybe only info).
    Finding(Finding),
}

/// All rules' answers, findings ranked by score (highest first), then the rules that did
/// not apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// Ranked outcomes.
    pub outcomes: Vec<RuleOutcome>,
    /// What the profile left out to stay within its memory limits (findings may
    /// under-count it).
    pub truncated: Vec<Truncated>,
    /// The part of the trace the findings cover.
    pub window: crate::window::Window,
}

/// A rule: its id, the event kinds it needs (any of them), its evaluation.
struct Rule {
    id: &'static str,
    needs: &'static [Kind],
    eval: fn(&Profile) -> Finding,
}

const RULES: &[Rule] = &[
    Rule {
        id: "sched_delay",
        needs: &[Kind::PollStart],
        eval: sched_delay,
    },
    Rule {
        id: "long_polls",
        needs: &[Kind::PollEnd],
        eval: long_polls,
    },
    Rule {
        id: "lock_contention",
        needs: &[Kind::BlockBegin],
        eval: lock_contention,
    },
    Rule {
        id: "task_leak",
        needs: &[Kind::TaskCreate],
        eval: task_leak,
    },
    Rule {
        id: "serial_bottleneck",
        needs: &[Kind::PollStart, Kind::UserTaskBegin, Kind::Park],
        eval: serial_bottleneck,
    },
    Rule {
        id: "slow_downstream",
        needs: &[Kind::BlockBegin, Kind::Wake],
        eval: slow_downstream,
    },
    Rule {
        id: "async_lock_contention",
        needs: &[Kind::Wake],
        eval: crate::async_rules::async_lock_contention,
    },
    Rule {
        id: "recorder_loss",
        needs: &[],
        eval: recorder_loss,
    },
    Rule {
        id: "blocking_in_async",
        needs: OS_DATA,
        eval: crate::osrules::blocking_in_async,
    },
    Rule {
        id: "cpu_heavy_polls",
        needs: OS_DATA,
        eval: crate::osrules::cpu_heavy_polls,
    },
    Rule {
        id: "host_cpu_contention",
        needs: OS_DATA,
        eval: crate::osrules::host_cpu_contention,
    },
];

/// What the rules of the OS view need: the OS sampler's samples.
const OS_DATA: &[Kind] = &[Kind::OsSample];

/// The ids of every rule, in evaluation order.
pub fn rule_ids() -> Vec<&'static str> {
    RULES.iter().map(|r| r.id).collect()
}

/// Kinds' names joined with ` / `, as the outputs list what a rule needs.
pub(crate) fn kind_names(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(" / ")
}

fn count(p: &Profile, kind: Kind) -> u64 {
    p.kinds[kind.index()]
}

/// Runs every rule.
pub fn diagnose(p: &Profile) -> Diagnosis {
    let mut findings = Vec::new();
    let mut na = Vec::new();
    for r in RULES {
        if !r.needs.is_empty() && r.needs.iter().all(|k| count(p, *k) == 0) {
            na.push(RuleOutcome::NotApplicable {
                rule: r.id,
                needs: r.needs,
            });
            continue;
        }
        let mut f = (r.eval)(p);
        f.score = f.score.clamp(0.0, 100.0);
        f.severity = Severity::from_score(f.score);
        findings.push(f);
    }
    crate::rank::rank(p, &mut findings);
    let mut outcomes: Vec<RuleOutcome> = findings.into_iter().map(RuleOutcome::Finding).collect();
    outcomes.extend(na);
    Diagnosis {
        outcomes,
        truncated: p.truncated(),
        window: p.window,
    }
}

/// Sums without overflow.
fn sum(v: impl IntoIterator<Item = u64>) -> u64 {
    v.into_iter().fold(0, u64::saturating_add)
}

/// The busy time of every thread's span, first to last event.
pub(crate) fn thread_time(p: &Profile) -> u64 {
    sum(p
        .threads
        .values()
        .map(|t| t.last_ns.saturating_sub(t.first_ns)))
}

pub(crate) fn finding(
    rule: &'static str,
    title: String,
    score: f64,
    evidence: Vec<String>,
    window_ns: Option<(u64, u64)>,
    fix: &str,
) -> Finding {
    Finding {
        rule,
        title,
        score,
        severity: Severity::from_score(score),
        evidence,
        window_ns,
        fix: fix.to_string(),
    }
}

pub(crate) use crate::async_rules::log_ramp;

fn sched_delay(p: &Profile) -> Finding {
    let h = &p.sched_latency;
    let (wait, run): (u64, u64) =
        p.tasks
            .iter()
            .filter(|(k, _)| k.0 == TaskKind::Async)
            .fold((0u64, 0u64), |a, (_, s)| {
                (
                    a.0.saturating_add(s.sched_wait_ns),
                    a.1.saturating_add(s.running_ns),
                )
            });
    let q = if wait == 0 && run == 0 {
        0.0
    } else {
        wait as f64 / (wait as f64 + run as f64)
    };
    let parked = sum(p.threads.values().map(|t| t.parked_ns));
    let thread_time = thread_time(p);
    let idle = if thread_time == 0 {
        0.0
    } else {
        parked as f64 / thread_time as f64
    };
    // Latency the host's CPU contention explains (a woken worker waits for a CPU before it
    // polls) is not the runtime's queue.
    let (p99, host_line) = crate::wake_delay::sched_beyond_host(p);
    let mut score =
        100.0 * log_ramp(p99 as f64, 500e3, 50e6) * (0.4 + 0.6 * q) * (1.0 - idle).max(0.2);
    let mut evidence = vec![
        format!(
            "scheduling latency (wake -> poll) p50 {}, p99 {}, max {} over {} polls",
            dur(h.p50()),
            dur(h.p99()),
            dur(h.max()),
            h.count()
        ),
        format!(
            "async tasks spent {} waiting to be scheduled vs {} running ({} of their active time waiting)",
            dur(wait),
            dur(run),
            pct(q)
        ),
        format!("workers parked {} of their time", pct(idle)),
    ];
    evidence.extend(host_line);
    let (lat, at, _, name) = p.worst_latency;
    if p.long_polls.0 > 0
        && p.longest_polls
            .first()
            .is_some_and(|l| l.dur_ns.saturating_mul(2) >= h.p99())
    {
        score *= 0.5;
        evidence.push(format!(
            "{} polls took >= {}: the delay is likely their consequence (see long_polls)",
            p.long_polls.0,
            dur(LONG_POLL_NS)
        ));
    }
    let window = (lat > 0).then(|| (at.saturating_sub(lat), at));
    if lat > 0 {
        evidence.push(format!(
            "worst: task {} waited {} to be polled, at {}",
            p.name(name),
            dur(lat),
            dur(at)
        ));
    }
    finding(
        "sched_delay",
        format!("tasks wait {} (p99) to be scheduled", dur(h.p99())),
        score,
        evidence,
        window,
        "Oversubscription: more runnable tasks than workers. Bound concurrency where tasks are spawned in a loop (a Semaphore, buffer_unordered(n), a bounded channel), move CPU-heavy work to spawn_blocking or a dedicated pool, or add worker threads.",
    )
}

fn long_polls(p: &Profile) -> Finding {
    let (n, total) = p.long_polls;
    let polls = p.poll_duration.count().max(1);
    let poll_time = p.poll_duration.sum().max(1);
    let share = total as f64 / poll_time as f64;
    // Above info only for a meaningful share of the workers' time or a real tail: one long
    // poll among thousands is not a finding.
    let worker_time = sum(p
        .threads
        .values()
        .filter(|t| t.wake.worker)
        .map(|t| t.last_ns.saturating_sub(t.first_ns)))
    .max(1);
    let worker_share = total as f64 / worker_time as f64;
    let mut score = if n == 0 {
        0.0
    } else {
        100.0
            * log_ramp(worker_share, 0.05, 0.5).max(log_ramp(
                p.poll_duration.p99() as f64,
                LONG_POLL_NS as f64,
                50e6,
            ))
    };
    let mut evidence = vec![
        format!(
            "{} of {} polls took >= {} ({} in total, {} of all poll time); p99 poll {}, max {}",
            n,
            polls,
            dur(LONG_POLL_NS),
            dur(total),
            pct(share),
            dur(p.poll_duration.p99()),
            dur(p.poll_duration.max())
        ),
        format!(
            "long polls held workers {} of their time",
            pct(worker_share.min(1.0))
        ),
    ];
    for x in p
        .longest_polls
        .iter()
        .take(3)
        .filter(|x| x.dur_ns >= LONG_POLL_NS)
    {
        evidence.push(format!(
            "{} poll of {} (task {}, spawned at {}) on {} at {}",
            dur(x.dur_ns),
            p.name(x.name),
            x.task.0,
            p.site_name(x.site),
            p.thread_name(x.thread),
            dur(x.start_ns)
        ));
    }
    let in_poll = sum(p.blocking_in_poll.values().map(|s| s.total_ns));
    if let Some(((site, r), s)) = p.blocking_in_poll.iter().max_by_key(|(_, s)| s.total_ns)
        && n > 0
    {
        evidence.push(format!(
            "blocking inside polls: {} in total; top: {} {} at {} ({} times, max {})",
            dur(in_poll),
            REASON_NAMES[*r],
            dur(s.total_ns),
            p.site_name(*site),
            s.count,
            dur(s.max_ns)
        ));
    }
    // The long polls the OS view splits are carried by their cause's rule.
    let explained = crate::osrules::explained_share(p);
    if explained > 0.0 {
        score *= 1.0 - explained;
        evidence.push(format!(
            "{} of this time is split by the OS view into on-CPU, waiting for a CPU and off-CPU: see blocking_in_async, cpu_heavy_polls and host_cpu_contention",
            pct(explained)
        ));
    }
    if let Some((host, line)) = crate::osrules::unsplit_host_share(p) {
        score *= 1.0 - host;
        evidence.push(line);
    }
    crate::preempt::long_polls_stalled(p, in_poll, &mut score, &mut evidence);
    let window = p
        .longest_polls
        .first()
        .filter(|_| n > 0)
        .map(|x| (x.start_ns, x.start_ns.saturating_add(x.dur_ns)));
    finding(
        "long_polls",
        format!(
            "{n} polls held a worker for >= {} (blocking in async)",
            dur(LONG_POLL_NS)
        ),
        score,
        evidence,
        window,
        "An async task blocks its worker thread between awaits. Move blocking or CPU-heavy work out of the poll (tokio::task::spawn_blocking, block_in_place, a rayon pool), use async locks and I/O instead of std ones, or yield (tokio::task::yield_now) inside long loops.",
    )
}

fn lock_contention(p: &Profile) -> Finding {
    let thread_time = thread_time(p).max(1);
    let lock = sum(p.threads.values().map(|t| t.blocked_lock_ns));
    let share = lock as f64 / thread_time as f64;
    let locks: Vec<_> = {
        let mut v: Vec<_> = p.blocking.iter().filter(|((_, r), _)| *r <= 1).collect();
        v.sort_by_key(|(_, s)| std::cmp::Reverse(s.hist.sum()));
        v
    };
    let mut evidence = vec![format!(
        "threads spent {} blocked on locks: {} of all thread time",
        dur(lock),
        pct(share)
    )];
    let mut window = None;
    for ((site, r), s) in locks.iter().take(3) {
        evidence.push(format!(
            "{} at {}: {} waits, {} in total, p50 {}, p99 {}, max {}",
            REASON_NAMES[*r],
            p.site_name(*site),
            s.hist.count(),
            dur(s.hist.sum()),
            dur(s.hist.p50()),
            dur(s.hist.p99()),
            dur(s.hist.max())
        ));
        window.get_or_insert((
            s.longest_at_ns,
            s.longest_at_ns.saturating_add(s.hist.max()),
        ));
    }
    let score = 100.0 * log_ramp(share, 0.01, 0.3);
    finding(
        "lock_contention",
        format!("{} of thread time blocked on locks", pct(share)),
        score,
        evidence,
        window,
        "Lock contention. Shorten the critical section at the top site (no I/O, allocation or logging under the lock), partition the lock (shard by key), or use a RwLock or a lock-free structure for read-mostly data.",
    )
}

fn task_leak(p: &Profile) -> Finding {
    let pts = &p.live_series.points;
    let (first_q, last_q) = if pts.len() >= 4 {
        let q = pts.len() / 4;
        let avg = |s: &[(u64, u64)]| s.iter().map(|x| x.1 as f64).sum::<f64>() / s.len() as f64;
        (avg(&pts[..q]), avg(&pts[pts.len() - q..]))
    } else {
        (0.0, 0.0)
    };
    let growth = last_q - first_q;
    let ratio = if first_q < 1.0 {
        last_q
    } else {
        last_q / first_q
    };
    let (created, dropped) = p.created_dropped;
    let alive_end = pts.last().map_or(0, |x| x.1);
    let mut score = if growth >= 20.0 && ratio >= 1.5 {
        30.0 + 35.0 * log_ramp(growth, 20.0, 2000.0) + 35.0 * log_ramp(ratio, 1.5, 8.0)
    } else {
        10.0 * (growth.max(0.0) / 20.0).min(1.0)
    };
    if created == 0 {
        score = 0.0;
    }
    let mut evidence = vec![
        format!(
            "{created} async tasks created, {dropped} dropped; {alive_end} created in the window still alive at its end"
        ),
        format!(
            "live tasks: {:.0} on average in the first quarter of the window, {:.0} in the last",
            first_q, last_q
        ),
    ];
    let mut alive: Vec<_> = p
        .tasks
        .iter()
        .filter(|(_, s)| s.created_alive_at_end > 0)
        .collect();
    alive.sort_by_key(|(_, s)| std::cmp::Reverse(s.created_alive_at_end));
    for ((_, name), s) in alive.iter().take(3) {
        evidence.push(format!(
            "{} tasks of {} (spawned at {}) alive at the end, {} finished",
            s.created_alive_at_end,
            p.name(*name),
            p.site_name(s.site),
            s.lifetime.hist.count()
        ));
    }
    if let Some((age, name, site)) = p.oldest_alive {
        evidence.push(format!(
            "oldest: {} from {} alive for {}",
            p.name(name),
            p.site_name(site),
            dur(age)
        ));
    }
    finding(
        "task_leak",
        format!(
            "live tasks grew from {:.0} to {:.0} through the window",
            first_q, last_q
        ),
        score,
        evidence,
        Some((p.window.from_ns, p.window.to_ns)),
        "Task leak: tasks are spawned faster than they finish. Find where the named tasks wait forever (a missing timeout, a channel whose sender is never dropped, a JoinHandle never awaited); bound them with tokio::time::timeout and a cancellation token, and cap how many can be in flight.",
    )
}

fn serial_bottleneck(p: &Profile) -> Finding {
    // Application threads whose state is known, busy and blocked over that part.
    let (compared, own, unknown) = crate::threads::compared(p);
    let mut threads: Vec<_> = compared
        .iter()
        .map(|c| (c.id, c.stats, c.busy, c.blocked))
        .collect();
    threads.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    let Some(&(top, t, busy, _)) = threads.first() else {
        return finding(
            "serial_bottleneck",
            "no thread activity".into(),
            0.0,
            {
                let mut evidence = Vec::new();
                crate::threads::left_out_line(own, unknown, &mut evidence);
                evidence
            },
            None,
            "",
        );
    };
    let others = &threads[1..];
    let n = others.len().max(1) as f64;
    let others_busy = others.iter().map(|x| x.2).sum::<f64>() / n;
    let others_blocked = others.iter().map(|x| x.3).sum::<f64>() / n;
    let mut score = if others.is_empty() {
        0.0
    } else {
        100.0 * ((busy - 0.5) / 0.4).clamp(0.0, 1.0) * ((0.3 - others_busy) / 0.25).clamp(0.0, 1.0)
    };
    // Others blocked on locks is lock contention, not a serial program.
    score *= (1.0 - others_blocked * 2.0).clamp(0.0, 1.0);
    let (d, at, task, name) = t.longest_active;
    let mut evidence = vec![
        format!(
            "{} busy {} of the window; the other {} threads busy {} on average (blocked {})",
            p.thread_name(top),
            pct(busy),
            others.len(),
            pct(others_busy),
            pct(others_blocked)
        ),
        format!(
            "longest single slice on {}: {} of {} (task {}) at {}",
            p.thread_name(top),
            dur(d),
            p.name(name),
            task.0,
            dur(at)
        ),
    ];
    crate::threads::left_out_line(own, unknown, &mut evidence);
    finding(
        "serial_bottleneck",
        format!(
            "one thread does the work: {} busy {}",
            p.thread_name(top),
            pct(busy)
        ),
        score,
        evidence,
        Some((at, at.saturating_add(d))),
        "Serial bottleneck: all lanes idle except one. Split the long task into parts and fan them out (spawn per item, join_all, a parallel iterator), or take the work off the single-threaded actor, runtime or consumer it is funnelled through.",
    )
}

fn slow_downstream(p: &Profile) -> Finding {
    let mut io: Vec<_> = p.blocking.iter().filter(|((_, r), _)| *r == 4).collect();
    io.sort_by_key(|(_, s)| std::cmp::Reverse(s.hist.sum()));
    let mut all = crate::hist::Histogram::new();
    for (_, s) in &io {
        all.merge(&s.hist);
    }
    let thread_time = thread_time(p).max(1);
    let share = all.sum() as f64 / thread_time as f64;
    let mut score = if all.count() == 0 {
        0.0
    } else {
        100.0 * log_ramp(all.p99() as f64, 2e6, 200e6) * (0.5 + 0.5 * (share / 0.3).min(1.0))
    };
    let mut title = format!("io waits p99 {}", dur(all.p99()));
    let mut evidence = vec![format!(
        "{} io waits, {} in total ({} of thread time); p50 {}, p99 {}, max {}",
        all.count(),
        dur(all.sum()),
        pct(share),
        dur(all.p50()),
        dur(all.p99()),
        dur(all.max())
    )];
    let mut window = None;
    for ((site, _), s) in io.iter().take(3) {
        evidence.push(format!(
            "io at {}: {} waits, {} in total, p99 {}, max {}",
            p.site_name(*site),
            s.hist.count(),
            dur(s.hist.sum()),
            dur(s.hist.p99()),
            dur(s.hist.max())
        ));
        window.get_or_insert((
            s.longest_at_ns,
            s.longest_at_ns.saturating_add(s.hist.max()),
        ));
    }
    if let Some(a) = crate::async_rules::async_io(p) {
        if all.count() == 0 {
            score = a.score;
            title = a.title;
            window = a.window_ns;
            evidence = a.evidence;
        } else if a.score > score {
            score = a.score;
            title = a.title;
            window = a.window_ns;
            evidence.splice(0..0, a.evidence);
        } else {
            evidence.extend(a.evidence);
        }
    }
    finding(
        "slow_downstream",
        title,
        score,
        evidence,
        window,
        "A backend is slow: the time goes to waiting on I/O at the sites above. Trace the downstream service (the OTel link of the task names the request), add timeouts and a concurrency limit, and check the connection pool size.",
    )
}

fn recorder_loss(p: &Profile) -> Finding {
    // Ring overwrite is the flight recorder forgetting history older than its window, by
    // design: the recorder writes those loss records ahead of the window, never inside it.
    // Only the other reasons (and sequence gaps) leave holes in what the trace shows.
    let aged_out = |r: &str| r == LossReason::RingOverwrite.as_str();
    let lost = sum(p
        .loss
        .iter()
        .filter(|(r, _)| !aged_out(r))
        .map(|(_, l)| l.1));
    let recorded = sum(p.kinds.iter().copied());
    let frac = lost as f64 / lost.saturating_add(recorded).max(1) as f64;
    let mut score = if lost == 0 && p.missing_batches == 0 {
        0.0
    } else {
        30.0 + 70.0 * log_ramp(frac, 0.001, 0.2)
    };
    if p.missing_batches > 0 && lost == 0 {
        score = score.max(30.0);
    }
    // Discards ahead of the threads' histories happened before the window, at times the
    // trace does not tell: not loss inside it, but a recorder that cannot keep up (its
    // window is as short as its buffers let it be). Half weight.
    let before = p.window.discarded_before;
    let overrun = before as f64 / before.saturating_add(recorded).max(1) as f64;
    if before > 0 {
        score = score.max(0.5 * (30.0 + 70.0 * log_ramp(overrun, 0.001, 0.2)));
    }
    let mut evidence = vec![format!(
        "{lost} events lost inside the window ({} of events), {} batches missing from thread sequences",
        pct(frac),
        p.missing_batches
    )];
    if before > 0 {
        evidence.push(format!(
            "{before} events discarded before the window (ahead of the threads' histories in the trace, or by threads wholly gone; {} of what was recorded and discarded): the recorder cannot keep up with this event rate, so the window every thread has data for is only {}",
            pct(overrun),
            dur(p.window.len_ns())
        ));
    }
    for (r, (recs, ev, bytes)) in &p.loss {
        if aged_out(r) {
            evidence.push(format!(
                "{r}: {ev} older events ({bytes} bytes) left the flight-recorder window before it (by design, not a gap)"
            ));
        } else {
            evidence.push(format!(
                "{r}: {recs} loss records, {ev} events, {bytes} bytes"
            ));
        }
    }
    finding(
        "recorder_loss",
        if lost == 0 && p.missing_batches == 0 && before > 0 {
            format!(
                "the recorder discarded {} of events before the window",
                pct(overrun)
            )
        } else if lost == 0 && p.missing_batches == 0 {
            "no events lost inside the window".into()
        } else {
            format!("the recorder lost {} of events", pct(frac))
        },
        score,
        evidence,
        p.loss_window_ns,
        "The trace is incomplete: other findings may under-count in the window above. Raise the recorder's max_bytes or per-thread buffer, record fewer events in hot loops (logs instead of regions), or dump more often.",
    )
}

impl Diagnosis {
    /// The top finding, if any rule applied.
    pub fn top(&self) -> Option<&Finding> {
        self.outcomes.iter().find_map(|o| match o {
            RuleOutcome::Finding(f) => Some(f),
            RuleOutcome::NotApplicable { .. } => None,
        })
    }

    /// Findings, ranked.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.outcomes.iter().filter_map(|o| match o {
            RuleOutcome::Finding(f) => Some(f),
            RuleOutcome::NotApplicable { .. } => None,
        })
    }

    /// As JSON: `{"window": {...}, "outcomes": [...], "truncated": [...]}`.
    pub fn to_json(&self) -> Value {
        /// `fdr diagnose --json`.
        #[derive(serde::Serialize)]
        struct DiagnosisJson {
            window: Value,
            outcomes: Value,
            truncated: Value,
        }
        serde_json::to_value(DiagnosisJson {
            window: self.window.to_json(),
            outcomes: self.outcomes_json(),
            truncated: notes_json(&self.truncated),
        })
        .expect("a diagnosis serializes")
    }

    /// The outcomes as a JSON array.
    pub fn outcomes_json(&self) -> Value {
        /// A rule's outcome: a finding, or the kinds it lacked.
        #[derive(serde::Serialize)]
        #[serde(untagged)]
        enum OutcomeJson<'a> {
            NotApplicable {
                rule: &'static str,
                applicable: bool,
                needs_any_of: Vec<&'static str>,
            },
            Finding {
                rule: &'static str,
                applicable: bool,
                title: &'a str,
                score: f64,
                severity: &'static str,
                evidence: &'a [String],
                window_ns: Option<[u64; 2]>,
                fix: &'a str,
            },
        }
        let rows: Vec<OutcomeJson<'_>> = self
            .outcomes
            .iter()
            .map(|o| match o {
                RuleOutcome::NotApplicable { rule, needs } => OutcomeJson::NotApplicable {
                    rule,
                    applicable: false,
                    needs_any_of: needs.iter().map(|k| k.name()).collect(),
                },
                RuleOutcome::Finding(f) => OutcomeJson::Finding {
                    rule: f.rule,
                    applicable: true,
                    title: &f.title,
                    score: (f.score * 10.0).round() / 10.0,
                    severity: f.severity.as_str(),
                    evidence: &f.evidence,
                    window_ns: f.window_ns.map(|(a, b)| [a, b]),
                    fix: &f.fix,
                },
            })
            .collect();
        serde_json::to_value(rows).expect("outcomes serialize")
    }

    /// As text (strings from the trace escaped with [`esc`]).
    pub fn to_text(&self) -> String {
        let mut s = format!("{}\n", self.window);
        for (i, o) in self.outcomes.iter().enumerate() {
            match o {
                RuleOutcome::Finding(f) => {
                    let style = match f.severity {
                        Severity::Critical => text::Style::Red,
                        Severity::Warning => text::Style::Yellow,
                        Severity::Info => text::Style::Dim,
                    };
                    s.push_str(&format!(
                        "{}. [{} {:.0}] {}: {}\n",
                        i + 1,
                        text::paint(style, f.severity.as_str()),
                        f.score,
                        f.rule,
                        esc(&f.title)
                    ));
                    for e in &f.evidence {
                        s.push_str(&format!("     - {}\n", esc(e)));
                    }
                    if let Some((a, b)) = f.window_ns {
                        s.push_str(&format!("     window: {} .. {}\n", dur(a), dur(b)));
                    }
                    if f.severity > Severity::Info {
                        s.push_str(&format!("     fix: {}\n", f.fix));
                    }
                }
                RuleOutcome::NotApplicable { rule, needs } if *needs == OS_DATA => {
                    s.push_str(&format!("-  {rule}: not applicable (no OS data)\n"));
                }
                RuleOutcome::NotApplicable { rule, needs } => {
                    s.push_str(&format!(
                        "-  {rule}: not applicable (the trace has no {} events)\n",
                        kind_names(needs)
                    ));
                }
            }
        }
        notes_text(&mut s, &self.truncated);
        s
    }
}
