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

use crate::osview::SplitClass;
use crate::profile::Profile;

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
