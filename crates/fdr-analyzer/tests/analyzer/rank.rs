//! Ranking by cause and the bar for rising above info, on traces shaped like the services
//! they stand for.

use fdr_analyzer::diagnose::{Severity, diagnose};
use fdr_analyzer::{Diagnosis, ProfileOptions, profile_slice};
use fdr_format::{BlockReason, EventKind, SiteId, TaskId, ThreadId};
use fdr_test_support::scenarios::TraceBuilder;

const US: u64 = 1_000;
const MS: u64 = 1_000_000;

fn diagnosis(b: TraceBuilder) -> Diagnosis {
    let trace = b.write_to(Vec::new()).unwrap();
    let (p, out) = profile_slice(&trace, ProfileOptions::default()).unwrap();
    assert!(out.error.is_none());
    diagnose(&p)
}

fn ranked(d: &Diagnosis) -> Vec<(&'static str, Severity, f64)> {
    d.findings()
        .map(|f| (f.rule, f.severity, f.score))
        .collect()
}

/// Two workers; `poll(i)` gives request i's poll length and what happens inside it.
struct Service {
    b: TraceBuilder,
    workers: [ThreadId; 2],
    name: fdr_format::StrId,
    site: SiteId,
    next: u64,
}

impl Service {
    fn new() -> Self {
        let mut b = TraceBuilder::new();
        let name = b.string("http GET /items");
        let site = b.site("src/server.rs", 40);
        let workers = [b.thread("worker-1"), b.thread("worker-2")];
        for w in workers {
            b.push(w, 0, EventKind::ThreadStart);
        }
        Service {
            b,
            workers,
            name,
            site,
            next: 1,
        }
    }

    /// A request on worker `w` from `at`: created, polled for `poll_ns` (with a block of
    /// `block` inside it, if any), then dropped.
    fn request(
        &mut self,
        w: usize,
        at: u64,
        poll_ns: u64,
        block: Option<(BlockReason, SiteId, u64)>,
    ) {
        let t = TaskId(self.next);
        self.next += 1;
        let th = self.workers[w];
        self.b.push(
            th,
            at,
            EventKind::TaskCreate {
                task: t,
                parent: TaskId::NONE,
                name: self.name,
                site: self.site,
            },
        );
        self.b.push(th, at + 1, EventKind::PollStart { task: t });
        if let Some((reason, site, ns)) = block {
            self.b
                .push(th, at + 2, EventKind::BlockBegin { reason, site });
            self.b.push(th, at + 2 + ns, EventKind::BlockEnd);
        }
        self.b.push(
            th,
            at + 1 + poll_ns,
            EventKind::PollEnd {
                task: t,
                ready: true,
            },
        );
        self.b
            .push(th, at + 2 + poll_ns, EventKind::TaskDrop { task: t });
    }
}

#[test]
fn one_long_poll_among_thousands_is_info() {
    let mut s = Service::new();
    // 12,879 polls of 50 us over 3 s on two workers, and one of 1.52 ms.
    for i in 0..12_879u64 {
        let len = if i == 6_000 { 1_520 * US } else { 50 * US };
        s.request((i % 2) as usize, (i / 2) * 465 * US, len, None);
    }
    let d = diagnosis(s.b);
    for (rule, sev, score) in ranked(&d) {
        assert_eq!(sev, Severity::Info, "{rule} {score}\n{}", d.to_text());
    }
}

#[test]
fn a_lock_held_across_cpu_work_ranks_above_the_long_polls_it_causes() {
    let mut s = Service::new();
    let lock = s.b.site("src/cache.rs", 88);
    // Every request waits 5 ms for a lock inside a 6 ms poll, back to back on both workers:
    // lock_contention and long_polls both saturate.
    for i in 0..400u64 {
        s.request(
            (i % 2) as usize,
            (i / 2) * 6_100 * US,
            6 * MS,
            Some((BlockReason::Mutex, lock, 5 * MS)),
        );
    }
    let d = diagnosis(s.b);
    let r = ranked(&d);
    assert_eq!(r[0].0, "lock_contention", "{}", d.to_text());
    assert_eq!(r[1].0, "long_polls", "{}", d.to_text());
    assert!(r[0].2 > r[1].2, "scores differ: {r:?}");
    assert_eq!(r[0].1, Severity::Critical);
    let top = d.top().unwrap();
    assert!(
        top.evidence
            .iter()
            .any(|e| e.contains("explains the long polls")),
        "{}",
        d.to_text()
    );
    assert!(d.to_text().contains("src/cache.rs:88"), "{}", d.to_text());
}

#[test]
fn an_oversubscribed_runtime_ranks_scheduling_delay_above_its_stretched_polls() {
    let mut b = TraceBuilder::new();
    let name = b.string("thumbnail");
    let workers = [b.thread("worker-1"), b.thread("worker-2")];
    for w in workers {
        b.push(w, 0, EventKind::ThreadStart);
    }
    // 600 tasks spawned at once; each poll is 2 ms of CPU (long), but tasks wait up to
    // 600 ms for a worker: the queue, not any poll, is where the time goes.
    for i in 0..600u64 {
        let t = TaskId(i + 1);
        let w = workers[(i % 2) as usize];
        b.push(
            w,
            10 + i,
            EventKind::TaskCreate {
                task: t,
                parent: TaskId::NONE,
                name,
                site: SiteId(0),
            },
        );
        let start = 1_000 + (i / 2) * 2 * MS;
        b.push(w, start, EventKind::PollStart { task: t });
        b.push(
            w,
            start + 2 * MS - 10,
            EventKind::PollEnd {
                task: t,
                ready: true,
            },
        );
        b.push(w, start + 2 * MS - 5, EventKind::TaskDrop { task: t });
    }
    let d = diagnosis(b);
    let r = ranked(&d);
    assert_eq!(r[0].0, "sched_delay", "{}", d.to_text());
    let lp = r.iter().position(|x| x.0 == "long_polls").unwrap();
    assert!(lp > 0 && r[lp].2 < r[0].2, "{r:?}");
}
