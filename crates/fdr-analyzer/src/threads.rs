//! Which threads the thread-level figures compare.
//!
//! Two kinds of thread in a dump say nothing about the application's own work:
//!
//! - **fdr's own threads** (`fdr-metrics`, `fdr-sampler`, `fdr-collector`, `fdr-capture`,
//!   `fdr-tokio-watch`, the sentinel's and the admin endpoint's: every name starting with
//!   [`OWN_THREAD_PREFIX`]). They record at a low rate, so their chunks stay in the ring
//!   long after the application's have aged out: their history reaches back further, or
//!   (when cut) starts late. They never restart the common window, never count in the
//!   thread time shares are taken of, and are never compared by `serial_bottleneck`.
//! - **threads of unknown state**: a thread whose history in the dump was cut (its first
//!   event is not its thread start) inside a task shows events with no task current, its
//!   task's begin aged out. Until its first poll or user-task begin or end, park or unpark,
//!   the analyzer cannot tell whether it was busy ([`ThreadStats::known_from_ns`]); an end
//!   with no begin shows it was inside that task since its first data, and is counted so.
//!   `serial_bottleneck` compares threads over the part of the window where their state
//!   is known, and leaves out threads known for less than half of it.

use fdr_format::{Tables, TaskId, ThreadId};

use crate::profile::{Profile, ThreadStats, UNSEEN_NAME};

/// The name prefix of the threads fdr's crates start.
pub const OWN_THREAD_PREFIX: &str = "fdr-";

/// Whether a thread named `name` is one of fdr's own.
pub fn is_own_thread_name(name: &str) -> bool {
    name.starts_with(OWN_THREAD_PREFIX)
}

/// Whether thread `t` is one of fdr's own, by the name `tables` give it.
pub(crate) fn is_own(tables: &Tables, t: ThreadId) -> bool {
    tables
        .thread(t)
        .is_some_and(|i| is_own_thread_name(&i.name))
}

/// A poll or user-task end with no task open on its thread: if the thread's state was
/// not known yet, its history was cut inside that task, which was current from the
/// thread's first data (in the window) to `ns`: counted as active, and the state known
/// from then on.
pub(crate) fn unmatched_end(th: &mut ThreadStats, task: TaskId, ns: u64) {
    if th.known_from_ns.is_some() {
        return;
    }
    let from = th.first_ns.min(ns);
    let d = ns - from;
    th.active_ns = th.active_ns.saturating_add(d);
    if d > th.longest_active.0 {
        th.longest_active = (d, from, task, UNSEEN_NAME);
    }
    th.known_from_ns = Some(from);
}

/// An application thread as `serial_bottleneck` compares it.
pub(crate) struct Compared<'a> {
    /// The thread.
    pub(crate) id: ThreadId,
    /// Its figures.
    pub(crate) stats: &'a ThreadStats,
    /// Busy share of the part of the window its state is known for.
    pub(crate) busy: f64,
    /// Blocked share of that part.
    pub(crate) blocked: f64,
}

/// The application threads whose state is known for at least half the window, with their
/// busy and blocked shares of the part they are known for; and how many threads were left
/// out as fdr's own and as of unknown state.
pub(crate) fn compared(p: &Profile) -> (Vec<Compared<'_>>, usize, usize) {
    let (from, to) = (p.window.from_ns, p.window.to_ns);
    let window = to.saturating_sub(from).max(1);
    let (mut own, mut unknown) = (0, 0);
    let mut out = Vec::new();
    for (id, t) in &p.threads {
        if is_own(&p.tables, *id) {
            own += 1;
            continue;
        }
        let known = t
            .known_from_ns
            .map_or(0, |k| to.saturating_sub(k.max(from)));
        if known.saturating_mul(2) < window {
            unknown += 1;
            continue;
        }
        let span = known.max(1) as f64;
        out.push(Compared {
            id: *id,
            stats: t,
            busy: (t.busy_ns() as f64 / span).min(1.0),
            blocked: (t.blocked_ns as f64 / span).min(1.0),
        });
    }
    (out, own, unknown)
}

/// The evidence line naming the threads `serial_bottleneck` left out, if any.
pub(crate) fn left_out_line(own: usize, unknown: usize, evidence: &mut Vec<String>) {
    if own + unknown > 0 {
        evidence.push(format!(
            "not compared: {own} of fdr's own threads, {unknown} threads whose state is known for less than half the window (their history in the trace starts inside a task whose begin aged out)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_threads_are_named_by_their_prefix() {
        for name in ["fdr-metrics", "fdr-sampler", "fdr-collector", "fdr-admin"] {
            assert!(is_own_thread_name(name), "{name}");
        }
        for name in ["import", "service-worker", "fdr", "ledger-fdr-"] {
            assert!(!is_own_thread_name(name), "{name}");
        }
    }

    use crate::diagnose::Severity;
    use fdr_format::{EventKind, LossReason, Message};
    use fdr_test_support::scenarios::TraceBuilder;

    const MS: u64 = 1_000_000;

    /// A flight-recorder dump of import threads that all log a row every 20 us: one shows
    /// its batch's begin, the others' histories start mid-batch (their begins aged out of
    /// the ring, a loss record ahead of their first row), one of them ends its batch; fdr's
    /// metrics thread has its whole history and its sampler's history is cut late.
    fn dump() -> crate::Profile {
        let mut b = TraceBuilder::new();
        let import = b.string("import batch");
        let cat = b.string("import");
        let row = b.string("row");
        let log = EventKind::Log {
            category: cat,
            message: Message::Interned(row),
        };
        let end = 400 * MS;
        let metrics = b.thread("fdr-metrics");
        b.push(metrics, 0, EventKind::ThreadStart);
        let mut t = 0;
        while t < end {
            b.push(
                metrics,
                t + 1,
                EventKind::Metric {
                    name: row,
                    value: 1.0,
                },
            );
            t += 100 * MS;
        }
        let seen = b.thread("import");
        b.push(seen, 5 * MS, EventKind::ThreadStart);
        b.push(
            seen,
            10 * MS,
            EventKind::UserTaskBegin {
                task: TaskId(1),
                parent: TaskId::NONE,
                name: import,
            },
        );
        let mut cut = Vec::new();
        for i in 0..3u64 {
            let th = b.thread("import");
            let first = 20 * MS + i * MS;
            b.push(
                th,
                first,
                EventKind::Loss {
                    reason: LossReason::RingOverwrite,
                    events: 5000,
                    bytes: 1 << 20,
                },
            );
            cut.push((th, first));
        }
        let mut t = 10 * MS;
        while t < end {
            b.push(seen, t + 1, log);
            for (th, first) in &cut {
                if t > *first {
                    b.push(*th, t + 2, log);
                }
            }
            t += 20_000;
        }
        // The last cut thread finishes its batch half-way (it was inside it all along) and
        // begins the next.
        let (done, _) = cut[2];
        b.push(done, 200 * MS, EventKind::UserTaskEnd { task: TaskId(9) });
        b.push(
            done,
            200 * MS + 1,
            EventKind::UserTaskBegin {
                task: TaskId(10),
                parent: TaskId::NONE,
                name: import,
            },
        );
        let sampler = b.thread("fdr-sampler");
        b.push(
            sampler,
            350 * MS,
            EventKind::Loss {
                reason: LossReason::RingOverwrite,
                events: 10,
                bytes: 100,
            },
        );
        b.push(sampler, 350 * MS + 1, log);
        b.push(seen, end, EventKind::UserTaskEnd { task: TaskId(1) });
        let bytes = b.write_to(Vec::new()).expect("written");
        crate::profile_slice(&bytes, crate::ProfileOptions::default())
            .expect("read")
            .0
    }

    #[test]
    fn fdr_threads_and_threads_cut_inside_a_task_do_not_make_a_serial_bottleneck() {
        let p = dump();
        // The common window starts at the last import thread's first data, not at the
        // sampler's late first data.
        assert!(
            (22 * MS..23 * MS).contains(&p.window.from_ns),
            "{}",
            p.window
        );
        let (compared, own, unknown) = compared(&p);
        assert_eq!((own, unknown), (2, 2));
        let busy: Vec<f64> = compared.iter().map(|c| c.busy).collect();
        assert_eq!(busy.len(), 2, "{busy:?}");
        assert!(busy.iter().all(|b| *b > 0.9), "{busy:?}");
        let d = crate::diagnose(&p);
        let serial = d
            .findings()
            .find(|f| f.rule == "serial_bottleneck")
            .expect("the rule applies");
        assert_eq!(serial.severity, Severity::Info, "{serial:?}");
        assert!(
            serial
                .evidence
                .iter()
                .any(|e| e.contains("2 of fdr's own threads")),
            "{serial:?}"
        );
    }
}
