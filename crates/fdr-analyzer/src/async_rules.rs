//! The runbook rules on async waits ([`crate::waits`]): awaits on the runtime's I/O or
//! timer driver behind `slow_downstream`, and `async_lock_contention`.
//!
//! Both look only at request-like task names: names with tasks that finished in the window
//! (a long-lived task's awaits are mostly idle: a connection waiting for its client, a timer
//! loop) and that host no other traced task inside their polls (a host's awaits repeat its
//! guests').

use std::collections::BTreeMap;

use fdr_format::StrId;

use crate::diagnose::{Finding, Severity};
use crate::hist::Histogram;
use crate::profile::{Profile, TaskKind};
use crate::text::{dur, pct};
use crate::waits::{NO_PHASE, Waker};

/// Maps `x` from `[lo, hi]` (log scale) onto `[0, 1]`.
pub(crate) fn log_ramp(x: f64, lo: f64, hi: f64) -> f64 {
    if x <= lo {
        0.0
    } else {
        ((x / lo).ln() / (hi / lo).ln()).min(1.0)
    }
}

/// Awaits this long or longer (for three quarters of the awaited time) make a slow
/// downstream; the score reaches 100 at ten times it.
const SLOW_AWAIT_NS: u64 = crate::wake_delay::SLOW_AWAIT_FLOOR_NS;

use crate::wake_delay::SAME_HOST_WAKES;

/// Awaits of one task name: all of them, and per phase.
#[derive(Default)]
struct NameWaits {
    all: Histogram,
    phases: BTreeMap<StrId, Histogram>,
    waiters: u64,
    longest: (u64, u64),
}

impl NameWaits {
    fn add(&mut self, phase: StrId, s: &crate::waits::WaitStats) {
        self.all.merge(&s.hist);
        self.phases.entry(phase).or_default().merge(&s.hist);
        self.waiters = self.waiters.saturating_add(s.waiters);
        if s.hist.max() >= self.longest.1 {
            self.longest = (s.longest_at_ns, s.hist.max());
        }
    }

    /// The phase holding most of the awaited time, if the tasks were inside one.
    fn top_phase(&self) -> Option<(StrId, &Histogram)> {
        self.phases
            .iter()
            .filter(|(p, _)| **p != NO_PHASE)
            .max_by_key(|(p, h)| (h.sum(), std::cmp::Reverse(**p)))
            .map(|(p, h)| (*p, h))
    }
}

/// Total lifetime of a name's tasks that finished in the window (0: none finished).
fn lifetime_ns(p: &Profile, name: StrId) -> u64 {
    p.tasks
        .get(&(TaskKind::Async, name))
        .map_or(0, |s| s.lifetime.hist.sum())
}

fn request_like(p: &Profile, name: StrId) -> bool {
    lifetime_ns(p, name) > 0 && !p.waits.hosts.contains(&name)
}

/// The async half of `slow_downstream`: request-like tasks awaiting the runtime's I/O or
/// timer driver with no `fdr::blocking` annotation.
pub(crate) struct AsyncIo {
    /// 0–100.
    pub(crate) score: f64,
    /// One line for the title.
    pub(crate) title: String,
    /// Evidence lines.
    pub(crate) evidence: Vec<String>,
    /// The longest await.
    pub(crate) window_ns: Option<(u64, u64)>,
}

/// Scores driver awaits per request-like task name: high when three quarters of their
/// awaited time is in awaits of 10 ms or more (100 at 100 ms), and a large share of the
/// tasks' lifetime. `None` when no such task awaited the driver.
pub(crate) fn async_io(p: &Profile) -> Option<AsyncIo> {
    let mut by_name: BTreeMap<StrId, NameWaits> = BTreeMap::new();
    for (k, s) in p.waits.stats() {
        if k.waker == Waker::Driver && request_like(p, k.task) {
            by_name.entry(k.task).or_default().add(k.phase, s);
        }
    }
    // Awaits count as slow only beyond what the host's CPU contention alone stretches them
    // to: measured per wake where the workers recorded their park cycles, else from the
    // long polls the OS view saw preempted.
    let per_wake = crate::wake_delay::host_wait_ns(&p.wake_delay);
    let preempted = crate::preempt::stall(p);
    let judge = |name: StrId, w: &NameWaits| -> (u64, u64) {
        if per_wake.is_some()
            && let Some(d) = crate::wake_delay::measured(&p.wake_delay, name, w.all.count())
        {
            // The waking worker's own wait is taken off each await; a downstream on the
            // same host waits for a CPU at each of its own wakes too, as long as the host
            // kept its workers waiting then (not over the whole window: a calmer stretch
            // must not set the bar for a starved one).
            return (d.beyond_host.weighted_quantile(0.25), SLOW_AWAIT_NS);
        }
        let mut q25 = w.all.weighted_quantile(0.25);
        if preempted.is_some() {
            // Preemption stretches a minority of awaits, each by a whole stall, so they
            // carry most of the awaited time; a slow downstream slows the calls
            // themselves, so the ordinary await (by count) is long too.
            q25 = q25.min(w.all.quantile(0.75));
        }
        let slow_from = preempted.map_or(SLOW_AWAIT_NS, |x| x.stall_ns.max(SLOW_AWAIT_NS));
        (q25, slow_from)
    };
    let scored = by_name.iter().map(|(name, w)| {
        let life = lifetime_ns(p, *name).max(1);
        let share = (w.all.sum() as f64 / life as f64).min(1.0);
        let (q25, slow_from) = judge(*name, w);
        let slow_from = slow_from as f64;
        let score = 100.0
            * log_ramp(
                q25 as f64,
                slow_from,
                (10.0 * SLOW_AWAIT_NS as f64).max(2.0 * slow_from),
            )
            * (0.5 + 0.5 * (share / 0.5).min(1.0));
        (score, *name, w, share, q25)
    });
    let (score, name, w, share, q25) =
        scored.max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))?;
    let measured = per_wake.and_then(|h| {
        crate::wake_delay::measured(&p.wake_delay, name, w.all.count()).map(|d| (h, d))
    });
    let site = p
        .tasks
        .get(&(TaskKind::Async, name))
        .map(|s| p.site_name(s.site).into_owned())
        .unwrap_or_else(|| "-".into());
    let mut evidence = vec![format!(
        "async awaits of {} (spawned at {site}) on the runtime's I/O or timer driver, with no fdr::blocking annotation: {} awaits, {} in total ({} of these tasks' lifetime); p50 {}, p99 {}, max {}; three quarters of the awaited time in awaits of {} or more",
        p.name(name),
        w.all.count(),
        dur(w.all.sum()),
        pct(share),
        dur(w.all.p50()),
        dur(w.all.p99()),
        dur(w.all.max()),
        dur(q25)
    )];
    if let Some((host_ns, d)) = measured {
        let r = &p.wake_delay.runq;
        evidence.push(format!(
            "per wake, the kernel kept the runtime's workers waiting for a CPU {} at the median and {} at p90 ({} park cycles measured; at each await's end, the p90 of the last {} cycles or of the window's so far, whichever was higher, ranged {} to {}); a downstream on the same host waits as long at each of its own wakes, so an await counts as slow only beyond {} such waits at that time (and {}): less their waking worker's wait and that bar's excess over {}, three quarters of the awaited time of {} of these awaits was in awaits of {} or more (less the worker's wait alone: {}; as recorded: {})",
            dur(r.p50()),
            dur(host_ns),
            r.count(),
            crate::wake_delay::RECENT_CYCLES,
            dur(p.wake_delay.recent_p90.min()),
            dur(p.wake_delay.recent_p90.max()),
            SAME_HOST_WAKES,
            dur(SLOW_AWAIT_NS),
            dur(SLOW_AWAIT_NS),
            d.adjusted.count(),
            dur(q25),
            dur(d.adjusted.weighted_quantile(0.25)),
            dur(d.raw.weighted_quantile(0.25))
        ));
    } else {
        evidence.push(no_per_wake(p, w.all.count(), preempted.is_some()));
        if let Some(x) = preempted {
            evidence.push(format!(
                "the host preempted the trace's threads for {} on average ({} measured long polls mostly waiting for a CPU), and a preempted worker issues the driver's wake late: only awaits beyond that count as slow, judged by the longest of three quarters of the awaits ({}), not by the few a stall stretched",
                dur(x.stall_ns),
                x.polls,
                dur(w.all.quantile(0.75))
            ));
        }
    }
    if let Some((phase, h)) = w.top_phase() {
        evidence.push(format!(
            "in phase {}: {} awaits, {} in total, p99 {}",
            p.name(phase),
            h.count(),
            dur(h.sum()),
            dur(h.p99())
        ));
    }
    let title = match w.top_phase() {
        Some((phase, _)) => format!(
            "{} awaits I/O in phase {} ({} or more for 3/4 of the awaited time)",
            p.name(name),
            p.name(phase),
            dur(q25)
        ),
        None => format!(
            "{} awaits I/O ({} or more for 3/4 of the awaited time)",
            p.name(name),
            dur(q25)
        ),
    };
    Some(AsyncIo {
        score,
        title,
        evidence,
        window_ns: Some((w.longest.0, w.longest.0.saturating_add(w.longest.1))),
    })
}

/// Why the per-wake evidence does not judge `awaits` driver awaits of a name, and what
/// judges them instead: the evidence is absent, never assumed.
fn no_per_wake(p: &Profile, awaits: u64, preempted: bool) -> String {
    let parks = p.kinds[fdr_format::Kind::Park.index()];
    let cycles = p.wake_delay.runq.count();
    let why = if parks == 0 {
        "the runtime's workers recorded no parks: only workers hooked at the runtime's build (fdr::tokio::instrument) record them, and a runtime watched from outside (fdr::tokio::watch, as under #[tokio::main]) cannot be hooked".to_string()
    } else if !p.os.has_data() {
        format!(
            "the workers recorded {parks} parks but the OS view was off (Config::os), so not their wait for a CPU"
        )
    } else if cycles < crate::wake_delay::MIN_CYCLES {
        format!(
            "{cycles} park cycles were measured, fewer than the {} the host's per-wake wait needs",
            crate::wake_delay::MIN_CYCLES
        )
    } else {
        format!("fewer than half of these {awaits} awaits ended in a measured park cycle")
    };
    let judged = if preempted {
        "judged against the preemption stall below instead"
    } else {
        "judged as recorded, with no wait of the host's taken off"
    };
    format!("no per-wake evidence of the host's wait for a CPU: {why}; the awaits are {judged}")
}

/// Awaits of request-like tasks ended by another task's wake, per (waiter name, holder
/// name), with the holder's phases.
fn pairs(p: &Profile) -> BTreeMap<(StrId, StrId), NameWaits> {
    let mut pairs: BTreeMap<(StrId, StrId), NameWaits> = BTreeMap::new();
    for (k, s) in p.waits.stats() {
        if let Waker::Task {
            name,
            phase,
            child: false,
        } = k.waker
            && request_like(p, k.task)
        {
            pairs.entry((k.task, name)).or_default().add(phase, s);
        }
    }
    pairs
}

/// The highest-scoring (waiter, holder) pair: score, names, awaits, share of lifetime.
fn top_pair(
    p: &Profile,
    pairs: &BTreeMap<(StrId, StrId), NameWaits>,
) -> Option<(f64, (StrId, StrId), usize, f64)> {
    pairs
        .iter()
        .enumerate()
        .map(|(i, ((waiter, holder), w))| {
            let life = lifetime_ns(p, *waiter).max(1);
            let share = (w.all.sum() as f64 / life as f64).min(1.0);
            let many = ((w.waiters as f64 - 1.0) / 3.0).clamp(0.0, 1.0);
            let score = 100.0 * log_ramp(share, 0.05, 0.5) * many;
            (score, (*waiter, *holder), i, share)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
}

/// The holder `async_lock_contention` names, if any.
pub(crate) fn holder(p: &Profile) -> Option<StrId> {
    top_pair(p, &pairs(p)).map(|t| t.1.1)
}

/// `async_lock_contention`: many tasks of one name waiting for wakes from tasks of one name
/// (the holder of an async lock, a semaphore's permits, a channel's single consumer).
pub(crate) fn async_lock_contention(p: &Profile) -> Finding {
    let pairs = pairs(p);
    let top = top_pair(p, &pairs);
    let Some((score, (waiter, holder), w, share)) =
        top.and_then(|(s, names, i, share)| Some((s, names, pairs.values().nth(i)?, share)))
    else {
        return Finding {
            rule: "async_lock_contention",
            title: "no task waited for another task's wake".into(),
            score: 0.0,
            severity: Severity::Info,
            evidence: vec![format!(
                "{} awaits ended by another task's wake, none of request-like tasks",
                p.waits
                    .stats()
                    .iter()
                    .filter(|(k, _)| matches!(k.waker, Waker::Task { child: false, .. }))
                    .map(|(_, s)| s.hist.count())
                    .sum::<u64>()
            )],
            window_ns: None,
            fix: String::new(),
        };
    };
    let holder_site = p
        .tasks
        .get(&(TaskKind::Async, holder))
        .map(|s| p.site_name(s.site).into_owned())
        .unwrap_or_else(|| "-".into());
    let mut evidence = vec![format!(
        "{}{} tasks of {} waited for wakes from tasks of {} (the holder, spawned at {holder_site}): {} awaits, {} in total ({} of the waiting tasks' lifetime); p50 {}, p99 {}, max {}",
        if w.waiters >= crate::waits::MAX_WAITERS_COUNTED as u64 {
            "at least "
        } else {
            ""
        },
        w.waiters,
        p.name(waiter),
        p.name(holder),
        w.all.count(),
        dur(w.all.sum()),
        pct(share),
        dur(w.all.p50()),
        dur(w.all.p99()),
        dur(w.all.max())
    )];
    let phase = w.top_phase();
    if let Some((ph, h)) = phase {
        evidence.push(format!(
            "the holder was in phase {} at {} of those wakes ({} of the awaited time)",
            p.name(ph),
            h.count(),
            pct(h.sum() as f64 / w.all.sum().max(1) as f64)
        ));
    }
    let other: u64 = p
        .waits
        .stats()
        .iter()
        .filter(|(k, _)| k.task == waiter && k.waker == Waker::Driver)
        .map(|(_, s)| s.hist.sum())
        .fold(0, u64::saturating_add);
    evidence.push(format!(
        "the same tasks awaited the I/O or timer driver {} in total: the queue, not the I/O, is where their time goes",
        dur(other)
    ));
    let title = match phase {
        Some((ph, _)) => format!(
            "tasks of {} queue behind {} in phase {}: {} of their time",
            p.name(waiter),
            p.name(holder),
            p.name(ph),
            pct(share)
        ),
        None => format!(
            "tasks of {} queue behind {}: {} of their time",
            p.name(waiter),
            p.name(holder),
            pct(share)
        ),
    };
    Finding {
        rule: "async_lock_contention",
        title,
        score,
        severity: Severity::from_score(score),
        evidence,
        window_ns: Some((w.longest.0, w.longest.0.saturating_add(w.longest.1))),
        fix: "Async lock or channel contention: tasks queue for something another task holds across its awaits (a tokio Mutex or RwLock guard, a semaphore permit, a single consumer). Release the guard before awaiting slow work (copy what you need out first), shard the lock by key, or give the consumer more workers.".into(),
    }
}
