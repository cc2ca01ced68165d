//! Per-wake evidence of the host's CPU contention: how long the kernel kept a runtime
//! worker waiting for a CPU after it woke the worker, and the awaits the runtime's driver
//! ended on that wake.
//!
//! A tokio worker instrumented by fdr with the OS view on records its own scheduler
//! counters as it parks and as it unparks (`OsSample` with cause `park` / `unpark`). It
//! sleeps in the kernel in between, off any run queue, so the run-queue counter's growth
//! over the cycle is the wait between the kernel's wake (the socket became readable, the
//! timer fired, another worker notified it) and the worker running again. The driver's
//! wakes recorded while the worker was parked come after that wait: an await they end was
//! over, as far as the kernel could tell, that much earlier. [`WakeDelay`] keeps, per
//! waiting task name, such awaits with and without the cycle's wait, and the waits of every
//! measured cycle: what one wake costs on this host now, which a downstream on the same host
//! pays too for each of its own wakes.
//!
//! The host's contention changes within a window (a batch job starts, a warm-up was less
//! starved than the incident), so each await is judged against the host's wait at its own
//! time ([`NameDelay::beyond_host`]): the p90 of the last [`RECENT_CYCLES`] park cycles
//! measured on any worker up to the one that ended it, or the p90 of every cycle of the
//! window so far if higher (a few calm cycles in a starved stretch do not lower the bar).

use std::collections::BTreeMap;

use fdr_format::StrId;

use crate::hist::Histogram;
use crate::limits::MAX_STATS_KEYS;

/// Awaits kept per park cycle until its unpark sample measures them; later ones in the
/// same cycle are counted as unmeasured.
pub const MAX_AWAITS_PER_CYCLE: usize = 256;

/// A worker's park cycle in progress.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cycle {
    /// The run-queue counter when it parked (its park sample).
    runq_at_park: Option<u64>,
    /// Driver awaits ended while parked: the waiting task's name and the await's length.
    awaits: Vec<(StrId, u64)>,
}

/// Driver awaits of one task name ended in measured park cycles.
#[derive(Debug, Clone, Default)]
pub struct NameDelay {
    /// The awaits as recorded.
    pub raw: Histogram,
    /// The same awaits less their waking worker's run-queue wait in that cycle: when the
    /// kernel saw the awaited event.
    pub adjusted: Histogram,
    /// The adjusted awaits scaled by [`SLOW_AWAIT_FLOOR_NS`] over the length from which an
    /// await is slow at its time ([`slow_from_ns`] of the host's wait when it ended:
    /// [`WakeDelay::recent_p90_ns`], or the window's p90 so far if higher): an await is
    /// slow when this is at least the floor.
    pub beyond_host: Histogram,
}

/// Park cycles, across workers, whose run-queue waits make the host's recent per-wake wait.
pub const RECENT_CYCLES: usize = 64;

/// Wakes of its own a request to a downstream on the same host waits through at least (the
/// request's arrival, then its reply's I/O or timer), each delayed by the host like the
/// workers' are.
pub const SAME_HOST_WAKES: u64 = 2;

/// An await is slow from this long, or from [`SAME_HOST_WAKES`] recent per-wake host waits
/// if longer.
pub const SLOW_AWAIT_FLOOR_NS: u64 = 10_000_000;

/// The length from which an await is slow when the host's per-wake wait is `host_ns`.
pub fn slow_from_ns(host_ns: u64) -> u64 {
    SLOW_AWAIT_FLOOR_NS.max(host_ns.saturating_mul(SAME_HOST_WAKES))
}

/// Per-wake run-queue waits of runtime workers and the awaits they delayed.
#[derive(Debug, Clone, Default)]
pub struct WakeDelay {
    /// Run-queue wait of every measured park cycle (unpark sample less park sample).
    pub runq: Histogram,
    /// Per waiting task name (at most [`MAX_STATS_KEYS`]).
    pub by_name: BTreeMap<StrId, NameDelay>,
    /// Driver awaits ended while a worker was parked that no cycle measured (no park or
    /// unpark sample, too many in one cycle, or past the name limit).
    pub unmeasured: u64,
    /// The host's per-wake wait that judged the awaits, at each measured cycle that ended
    /// some (its range over the window is the evidence of a changing host).
    pub recent_p90: Histogram,
    /// The run-queue waits of the last [`RECENT_CYCLES`] measured cycles (a ring).
    recent: Vec<u64>,
    /// Where the ring's next wait goes.
    recent_next: usize,
}

impl WakeDelay {
    /// Whether any park cycle was measured.
    pub fn has_data(&self) -> bool {
        self.runq.count() > 0
    }

    /// The worker parked: a new cycle.
    pub(crate) fn park(&mut self, c: &mut Cycle) {
        self.unmeasured = self.unmeasured.saturating_add(c.awaits.len() as u64);
        c.awaits.clear();
        c.runq_at_park = None;
    }

    /// The worker's park sample.
    pub(crate) fn park_sample(c: &mut Cycle, runq_ns: u64) {
        c.runq_at_park = Some(runq_ns);
    }

    /// A driver wake on the parked worker ended an await of `name` lasting `dur_ns`.
    pub(crate) fn driver_await(&mut self, c: &mut Cycle, name: StrId, dur_ns: u64) {
        if c.awaits.len() < MAX_AWAITS_PER_CYCLE {
            c.awaits.push((name, dur_ns));
        } else {
            self.unmeasured = self.unmeasured.saturating_add(1);
        }
    }

    /// The worker's unpark sample: the cycle's run-queue wait measures its awaits.
    pub(crate) fn unpark_sample(&mut self, c: &mut Cycle, runq_ns: u64) {
        let Some(at_park) = c.runq_at_park.take() else {
            self.unmeasured = self.unmeasured.saturating_add(c.awaits.len() as u64);
            c.awaits.clear();
            return;
        };
        let wait = runq_ns.saturating_sub(at_park);
        self.runq.record(wait);
        if self.recent.len() < RECENT_CYCLES {
            self.recent.push(wait);
        } else {
            self.recent[self.recent_next] = wait;
        }
        self.recent_next = (self.recent_next + 1) % RECENT_CYCLES;
        if c.awaits.is_empty() {
            return;
        }
        let so_far = if self.runq.count() >= MIN_CYCLES {
            self.runq.quantile(0.9)
        } else {
            0
        };
        let host = self.recent_p90_ns().max(so_far);
        self.recent_p90.record(host);
        // Scaled, not shifted: an await's weight in the judge's quantile stays its length
        // (shrunk where the host was starved), so short awaits do not drop out and leave
        // the long ones three quarters of the time.
        let scale = SLOW_AWAIT_FLOOR_NS as f64 / slow_from_ns(host) as f64;
        for (name, dur) in c.awaits.drain(..) {
            if self.by_name.len() >= MAX_STATS_KEYS && !self.by_name.contains_key(&name) {
                self.unmeasured = self.unmeasured.saturating_add(1);
                continue;
            }
            let d = self.by_name.entry(name).or_default();
            d.raw.record(dur);
            let adjusted = dur.saturating_sub(wait);
            d.adjusted.record(adjusted);
            d.beyond_host.record((adjusted as f64 * scale) as u64);
        }
    }

    /// The p90 of the run-queue waits of the last [`RECENT_CYCLES`] measured park cycles:
    /// the host's per-wake wait now (0 before any).
    pub fn recent_p90_ns(&self) -> u64 {
        let n = self.recent.len();
        if n == 0 {
            return 0;
        }
        let mut v = [0u64; RECENT_CYCLES];
        v[..n].copy_from_slice(&self.recent);
        let i = ((n - 1) as f64 * 0.9).round() as usize;
        *v[..n].select_nth_unstable(i).1
    }

    /// Forgets what was measured (the window restarts); cycles in progress go on, and so
    /// does the host's recent wait (it is the host's, from before the window too).
    pub(crate) fn reset(&mut self) {
        let recent = std::mem::take(&mut self.recent);
        let recent_next = self.recent_next;
        *self = WakeDelay {
            recent,
            recent_next,
            ..WakeDelay::default()
        };
    }
}

/// Park cycles measured before their waits count as the host's per-wake wait.
pub const MIN_CYCLES: u64 = 20;

/// The host's wait for a CPU per wake, as the awaits' judge takes it: the p90 of the
/// measured park cycles' run-queue waits (`None` with fewer than [`MIN_CYCLES`]).
pub(crate) fn host_wait_ns(d: &WakeDelay) -> Option<u64> {
    (d.runq.count() >= MIN_CYCLES).then(|| d.runq.quantile(0.9))
}

/// The scheduling latency `sched_delay` judges: its p99 less the host's per-wake wait at
/// its p99 (a worker woken for a task waits that long for a CPU before it can poll it),
/// with the evidence line; the p99 as recorded and no line without per-wake evidence.
pub(crate) fn sched_beyond_host(p: &crate::Profile) -> (u64, Option<String>) {
    let lat = p.sched_latency.p99();
    let d = &p.wake_delay;
    if d.runq.count() < MIN_CYCLES {
        return (lat, None);
    }
    let host = d.runq.p99();
    let beyond = lat.saturating_sub(host);
    (
        beyond,
        Some(format!(
            "per wake, the kernel kept woken workers waiting for a CPU {} at p99 ({} park cycles measured): the host's share of the wait to be scheduled, so {} of the p99 is the runtime's",
            crate::text::dur(host),
            d.runq.count(),
            crate::text::dur(beyond)
        )),
    )
}

/// The measured awaits of `name` when they are at least half of its `driver_awaits` (else
/// the measured ones may not be the ordinary ones).
pub(crate) fn measured(d: &WakeDelay, name: StrId, driver_awaits: u64) -> Option<&NameDelay> {
    d.by_name
        .get(&name)
        .filter(|n| n.adjusted.count() > 0 && n.adjusted.count().saturating_mul(2) >= driver_awaits)
}

#[cfg(test)]
mod tests {
    use crate::diagnose::Severity;
    use fdr_format::{EventKind, SampleCause, TaskId, ThreadId};
    use fdr_test_support::scenarios::TraceBuilder;

    const MS: u64 = 1_000_000;

    fn sample(thread: ThreadId, cause: SampleCause, cpu: u64, runq: u64) -> EventKind<'static> {
        EventKind::OsSample {
            thread,
            cause,
            cpu_ns: Some(cpu),
            runq_ns: Some(runq),
            timeslices: Some(cpu / 1000),
            state: None,
        }
    }

    /// A tokio worker serving 200 requests one after another: each polls, awaits its
    /// downstream 40 ms (the worker parks meanwhile, recording its counters), is woken by
    /// the driver while the worker is still parked, and completes. The kernel keeps the
    /// worker waiting for a CPU `runq_ns` of each park cycle, after waking it.
    fn trace(runq_ns: u64) -> crate::Profile {
        trace_of(runq_ns, true)
    }

    /// [`trace`], with the worker's parks and their samples only when it is `hooked` (a
    /// runtime built with fdr's hooks; one watched from outside records neither).
    fn trace_of(runq_ns: u64, hooked: bool) -> crate::Profile {
        phases(&[(200, runq_ns, 40 * MS)], hooked)
    }

    /// Requests served one after another as in [`trace`], in phases of `(requests,
    /// run-queue wait per park cycle, await)`.
    fn phases(phases: &[(u64, u64, u64)], hooked: bool) -> crate::Profile {
        let mut b = TraceBuilder::new();
        let name = b.string("http GET /item");
        let site = b.site("src/http.rs", 40);
        let th = b.thread("tokio-worker-1");
        let (mut cpu, mut runq) = (1_000_000u64, 0u64);
        let mut t = 1_000;
        let all = phases
            .iter()
            .flat_map(|&(n, runq_ns, await_ns)| (0..n).map(move |_| (runq_ns, await_ns)));
        for (i, (runq_ns, await_ns)) in (0u64..).zip(all) {
            let task = TaskId(i + 1);
            b.push(
                th,
                t,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name,
                    site,
                },
            );
            b.push(th, t + 1_000, EventKind::PollStart { task });
            b.push(th, t + 50_000, EventKind::PollEnd { task, ready: false });
            cpu += 60_000;
            if hooked {
                b.push(th, t + 60_000, EventKind::Park);
                b.push(th, t + 61_000, sample(th, SampleCause::Park, cpu, runq));
            }
            let woken = t + 50_000 + await_ns;
            runq += runq_ns;
            b.push(
                th,
                woken,
                EventKind::Wake {
                    task,
                    waker: TaskId::NONE,
                },
            );
            if hooked {
                b.push(
                    th,
                    woken + 2_000,
                    sample(th, SampleCause::Unpark, cpu, runq),
                );
                b.push(th, woken + 3_000, EventKind::Unpark);
            }
            b.push(th, woken + 10_000, EventKind::PollStart { task });
            b.push(th, woken + 60_000, EventKind::PollEnd { task, ready: true });
            b.push(th, woken + 61_000, EventKind::TaskDrop { task });
            cpu += 60_000;
            t = woken + 100_000;
        }
        profile_of(b)
    }

    /// The profile of a built trace.
    fn profile_of(b: TraceBuilder) -> crate::Profile {
        let bytes = b.write_to(Vec::new()).expect("written");
        crate::profile_slice(&bytes, crate::ProfileOptions::default())
            .expect("read")
            .0
    }

    /// The finding of rule `rule` (which must apply) in `p`'s diagnosis.
    fn finding(p: &crate::Profile, rule: &str) -> crate::Finding {
        crate::diagnose(p)
            .findings()
            .find(|f| f.rule == rule)
            .cloned()
            .unwrap_or_else(|| panic!("{rule} applies"))
    }

    fn slow_downstream(p: &crate::Profile) -> crate::Finding {
        finding(p, "slow_downstream")
    }

    #[test]
    fn each_park_cycle_measures_the_awaits_its_wake_ended() {
        let p = trace(30 * MS);
        let d = &p.wake_delay;
        assert_eq!(d.runq.count(), 200, "{d:?}");
        assert_eq!(d.unmeasured, 0);
        let n = d.by_name.values().next().expect("the request's name");
        assert_eq!(n.raw.count(), 200);
        // 40 ms awaits, 30 ms of each in the waking worker's run-queue wait.
        assert!(n.raw.p50() >= 38 * MS && n.raw.p50() <= 42 * MS, "{n:?}");
        assert!(
            n.adjusted.p50() >= 8 * MS && n.adjusted.p50() <= 12 * MS,
            "{n:?}"
        );
    }

    #[test]
    fn awaits_a_starved_host_stretched_are_no_slow_downstream() {
        let f = slow_downstream(&trace(30 * MS));
        assert_eq!(f.severity, Severity::Info, "{f:?}");
        assert!(f.evidence.iter().any(|e| e.contains("per wake")), "{f:?}");
    }

    #[test]
    fn awaits_of_a_slow_downstream_on_a_prompt_host_are_one() {
        let f = slow_downstream(&trace(50_000));
        assert!(f.severity > Severity::Info, "{f:?}");
        assert!(f.evidence.iter().any(|e| e.contains("per wake")), "{f:?}");
        assert!(
            !f.evidence
                .iter()
                .any(|e| e.contains("no per-wake evidence")),
            "{f:?}"
        );
    }

    #[test]
    fn workers_without_park_cycles_say_the_per_wake_evidence_is_absent() {
        // The same service on a runtime watched from outside: no parks, no park samples.
        let p = trace_of(30 * MS, false);
        assert!(!p.wake_delay.has_data());
        let f = slow_downstream(&p);
        let line = f
            .evidence
            .iter()
            .find(|e| e.contains("no per-wake evidence"))
            .unwrap_or_else(|| panic!("the evidence says the per-wake wait is absent: {f:?}"));
        assert!(
            line.contains("recorded no parks") && line.contains("fdr::tokio::watch"),
            "{line}"
        );
        assert!(line.contains("judged as recorded"), "{line}");
    }

    #[test]
    fn awaits_are_judged_against_the_host_at_their_time() {
        // A calm stretch (400 requests: 1 ms awaits, 0.2 ms run-queue waits per wake),
        // then a starved one (40 requests: each await 40 ms, 15 ms of it the waking
        // worker's wait and 25 ms the same-host downstream's two waits like it). Over the
        // whole window the host's p90 wait is the calm one, but the starved stretch's
        // awaits are the host's.
        let p = phases(&[(400, 200_000, MS), (40, 15 * MS, 40 * MS)], true);
        assert!(
            crate::wake_delay::host_wait_ns(&p.wake_delay).is_some_and(|h| h < MS),
            "{:?}",
            p.wake_delay.runq
        );
        let f = slow_downstream(&p);
        assert_eq!(f.severity, Severity::Info, "{f:?}");
        // The same starved stretch with awaits far beyond the host's waits is slow.
        let p = phases(&[(400, 200_000, MS), (40, 15 * MS, 120 * MS)], true);
        assert!(slow_downstream(&p).severity > Severity::Info);
    }

    /// A tokio worker that parks, is woken for a request task by another thread 1 ms
    /// later, waits `runq_ns` for a CPU (its park and unpark samples show it), polls the
    /// request and then a connection task for 54 ms; 100 times.
    fn woken_late(runq_ns: u64) -> crate::Profile {
        let mut b = TraceBuilder::new();
        let req = b.string("http GET /item");
        let conn = b.string("conn");
        let site = b.site("src/http.rs", 40);
        let th = b.thread("tokio-worker-1");
        let other = b.thread("backend-io");
        let conn_task = TaskId(1_000);
        b.push(
            th,
            500,
            EventKind::TaskCreate {
                task: conn_task,
                parent: TaskId::NONE,
                name: conn,
                site,
            },
        );
        let (mut cpu, mut runq) = (1_000_000u64, 0u64);
        let mut t = 1_000;
        for i in 0..100u64 {
            let task = TaskId(i + 1);
            b.push(
                th,
                t,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name: req,
                    site,
                },
            );
            b.push(th, t + 1_000, EventKind::Park);
            b.push(th, t + 2_000, sample(th, SampleCause::Park, cpu, runq));
            let woken = t + MS;
            b.push(
                other,
                woken,
                EventKind::Wake {
                    task,
                    waker: TaskId::NONE,
                },
            );
            runq += runq_ns;
            let up = woken + runq_ns;
            b.push(th, up, sample(th, SampleCause::Unpark, cpu, runq));
            b.push(th, up + 1_000, EventKind::Unpark);
            b.push(th, up + 10_000, EventKind::PollStart { task });
            b.push(th, up + 510_000, EventKind::PollEnd { task, ready: true });
            b.push(th, up + 511_000, EventKind::TaskDrop { task });
            let mut at = up + 520_000;
            for _ in 0..60 {
                b.push(th, at, EventKind::PollStart { task: conn_task });
                b.push(
                    th,
                    at + 900_000,
                    EventKind::PollEnd {
                        task: conn_task,
                        ready: false,
                    },
                );
                at += 901_000;
            }
            cpu += 55 * MS;
            t = at + 1_000;
        }
        profile_of(b)
    }

    #[test]
    fn waits_to_be_scheduled_the_host_explains_are_no_sched_delay() {
        let p = woken_late(30 * MS);
        assert!(p.sched_latency.p99() >= 29 * MS, "{:?}", p.sched_latency);
        let f = finding(&p, "sched_delay");
        assert_eq!(f.severity, Severity::Info, "{f:?}");
        assert!(f.evidence.iter().any(|e| e.contains("per wake")), "{f:?}");
    }
}
