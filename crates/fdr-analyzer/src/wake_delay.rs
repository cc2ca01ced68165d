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
        for (name, dur) in c.awaits.drain(..) {
            if self.by_name.len() >= MAX_STATS_KEYS && !self.by_name.contains_key(&name) {
                self.unmeasured = self.unmeasured.saturating_add(1);
                continue;
            }
            let d = self.by_name.entry(name).or_default();
            d.raw.record(dur);
            d.adjusted.record(dur.saturating_sub(wait));
        }
    }

    /// Forgets what was measured (the window restarts); cycles in progress go on.
    pub(crate) fn reset(&mut self) {
        *self = WakeDelay::default();
    }
}

/// Park cycles measured before their waits count as the host's per-wake wait.
pub const MIN_CYCLES: u64 = 20;

/// The host's wait for a CPU per wake, as the awaits' judge takes it: the p90 of the
/// measured park cycles' run-queue waits (`None` with fewer than [`MIN_CYCLES`]).
pub(crate) fn host_wait_ns(d: &WakeDelay) -> Option<u64> {
    (d.runq.count() >= MIN_CYCLES).then(|| d.runq.quantile(0.9))
}

/// The measured awaits of `name` when they are at least half of its `driver_awaits` (else
/// the measured ones may not be the ordinary ones).
pub(crate) fn measured(d: &WakeDelay, name: StrId, driver_awaits: u64) -> Option<&NameDelay> {
    d.by_name
        .get(&name)
        .filter(|n| n.adjusted.count() > 0 && n.adjusted.count().saturating_mul(2) >= driver_awaits)
}
