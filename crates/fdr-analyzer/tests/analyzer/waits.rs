//! Async waits: each await (a `Pending` poll to the wake that ends it) is classified by what
//! woke the task, as `fdr waits` and `fdr tasks` show it.

use fdr_analyzer::waits::{NO_PHASE, Waker, WakerClass, waits_json, waits_text};
use fdr_analyzer::{Profile, ProfileOptions, profile_slice};
use fdr_format::{EventKind, StrId, TaskId};
use fdr_test_support::scenarios::TraceBuilder;

const MS: u64 = 1_000_000;

fn profile(b: TraceBuilder) -> Profile {
    let trace = b.write_to(Vec::new()).unwrap();
    let (p, out) = profile_slice(&trace, ProfileOptions::default()).unwrap();
    assert!(out.error.is_none());
    p
}

/// The awaits of `task`: (waker, count, total ns).
fn awaits(p: &Profile, task: &str) -> Vec<(Waker, u64, u64)> {
    let mut v: Vec<_> = p
        .waits
        .stats()
        .iter()
        .filter(|(k, _)| p.name(k.task) == task)
        .map(|(k, s)| (k.waker, s.hist.count(), s.hist.sum()))
        .collect();
    v.sort();
    v
}

#[test]
fn awaits_are_classified_by_what_woke_the_task() {
    let mut b = TraceBuilder::new();
    let (req, holder, child) = (b.string("request"), b.string("holder"), b.string("child"));
    let w1 = b.thread("worker-1");
    let w2 = b.thread("worker-2");
    let pool = b.thread("blocking-pool");
    let (r, h, c) = (TaskId(1), TaskId(2), TaskId(3));
    let create = |task, parent, name| EventKind::TaskCreate {
        task,
        parent,
        name,
        site: fdr_format::SiteId(0),
    };
    b.push(w1, 0, EventKind::ThreadStart);
    b.push(w2, 0, EventKind::ThreadStart);
    b.push(pool, 0, EventKind::ThreadStart);
    b.push(w1, 10, create(r, TaskId::NONE, req));
    b.push(w1, 20, create(h, TaskId::NONE, holder));
    // 1. The request awaits from 1 ms; the driver wakes it at 3 ms on a parked worker.
    b.push(w1, MS, EventKind::PollStart { task: r });
    b.push(
        w1,
        MS + 100,
        EventKind::PollEnd {
            task: r,
            ready: false,
        },
    );
    b.push(w2, 2 * MS, EventKind::Park);
    b.push(
        w2,
        3 * MS,
        EventKind::Wake {
            task: r,
            waker: TaskId::NONE,
        },
    );
    b.push(w2, 3 * MS + 10, EventKind::Unpark);
    // 2. It awaits from 4 ms; the holder wakes it at 9 ms from inside its own poll.
    b.push(w1, 4 * MS - 100, EventKind::PollStart { task: r });
    b.push(
        w1,
        4 * MS,
        EventKind::PollEnd {
            task: r,
            ready: false,
        },
    );
    b.push(w2, 9 * MS - 100, EventKind::PollStart { task: h });
    b.push(w2, 9 * MS, EventKind::Wake { task: r, waker: h });
    b.push(
        w2,
        9 * MS + 100,
        EventKind::PollEnd {
            task: h,
            ready: false,
        },
    );
    // 3. It awaits from 10 ms; a blocking-pool thread (never a worker) wakes it at 12 ms.
    b.push(w1, 10 * MS - 100, EventKind::PollStart { task: r });
    b.push(
        w1,
        10 * MS,
        EventKind::PollEnd {
            task: r,
            ready: false,
        },
    );
    b.push(
        pool,
        12 * MS,
        EventKind::Wake {
            task: r,
            waker: TaskId::NONE,
        },
    );
    // 4. Woken during its poll (a yield): no await.
    b.push(w1, 13 * MS, EventKind::PollStart { task: r });
    b.push(w1, 13 * MS + 50, EventKind::Wake { task: r, waker: r });
    b.push(
        w1,
        13 * MS + 100,
        EventKind::PollEnd {
            task: r,
            ready: false,
        },
    );
    // 5. It spawns a child and awaits from 14 ms; the child completes at 15 ms and the
    //    runtime wakes the joiner right after, with no task current.
    b.push(w1, 14 * MS - 100, EventKind::PollStart { task: r });
    b.push(w1, 14 * MS - 50, create(c, r, child));
    b.push(
        w1,
        14 * MS,
        EventKind::PollEnd {
            task: r,
            ready: false,
        },
    );
    b.push(w2, 15 * MS - 100, EventKind::PollStart { task: c });
    b.push(
        w2,
        15 * MS,
        EventKind::PollEnd {
            task: c,
            ready: true,
        },
    );
    b.push(w2, 15 * MS + 10, EventKind::TaskDrop { task: c });
    b.push(
        w2,
        15 * MS + 20,
        EventKind::Wake {
            task: r,
            waker: TaskId::NONE,
        },
    );
    // 6. It awaits from 16 ms and is polled again at 18 ms with no wake recorded.
    b.push(w1, 16 * MS - 100, EventKind::PollStart { task: r });
    b.push(
        w1,
        16 * MS,
        EventKind::PollEnd {
            task: r,
            ready: false,
        },
    );
    b.push(w1, 18 * MS, EventKind::PollStart { task: r });
    b.push(
        w1,
        18 * MS + 100,
        EventKind::PollEnd {
            task: r,
            ready: true,
        },
    );
    b.push(w1, 18 * MS + 200, EventKind::TaskDrop { task: r });
    // The holder is still awaiting at the end.
    b.push(w2, 20 * MS, EventKind::Park);
    let p = profile(b);
    let got = awaits(&p, "request");
    assert_eq!(
        got,
        vec![
            (Waker::Driver, 1, 2 * MS - 100),
            (
                Waker::Task {
                    name: StrId(2),
                    phase: NO_PHASE,
                    child: false
                },
                1,
                5 * MS
            ),
            (
                Waker::Task {
                    name: StrId(3),
                    phase: NO_PHASE,
                    child: true
                },
                1,
                MS + 20
            ),
            (Waker::Thread(fdr_format::ThreadId(3)), 1, 2 * MS),
            (Waker::Unknown, 1, 2 * MS),
        ],
        "{}",
        waits_text(&p)
    );
    let classes = p.waits.by_class();
    assert_eq!(classes[&(StrId(1), WakerClass::Task)].count(), 2);
    assert_eq!(classes[&(StrId(1), WakerClass::Thread)].count(), 1);
    // The holder's await since 9.1 ms is open at the end.
    assert_eq!(p.waits.open[&(StrId(2), NO_PHASE)].count, 1);
    let text = waits_text(&p);
    assert!(text.contains("task holder"), "{text}");
    assert!(text.contains("thread blocking-pool"), "{text}");
    assert!(text.contains("still awaiting at the end"), "{text}");
    let json = waits_json(&p);
    let rows = json["waits"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .any(|r| r["waker"]["class"] == "task" && r["waker"]["task"] == "holder")
    );
    assert_eq!(json["open"][0]["task"], "holder");
    // `fdr tasks --alive`: the holder is the one task alive, awaiting since its last poll.
    assert_eq!(p.waits.alive.len(), 1);
    let a = p.waits.alive[0];
    assert_eq!((a.task, a.name), (h, holder));
    assert_eq!(
        a.state,
        fdr_analyzer::waits::AliveState::Awaiting(9 * MS + 100, NO_PHASE)
    );
    let alive = fdr_analyzer::waits::alive_text(&p, 10);
    assert!(alive.contains("awaiting for 11.00ms"), "{alive}");
    assert_eq!(
        fdr_analyzer::waits::alive_json(&p, 10)["alive"][0]["state"],
        "awaiting"
    );
}

#[test]
fn a_wake_from_a_thread_that_later_works_is_the_drivers() {
    // A worker whose first events in the trace are wakes (its park came before): once it
    // polls, its earlier wakes are the driver's.
    let mut b = TraceBuilder::new();
    let req = b.string("request");
    let w1 = b.thread("worker-1");
    let w2 = b.thread("worker-2");
    let r = TaskId(1);
    b.push(w1, 0, EventKind::ThreadStart);
    b.push(w2, 0, EventKind::ThreadStart);
    b.push(
        w1,
        0,
        EventKind::TaskCreate {
            task: r,
            parent: TaskId::NONE,
            name: req,
            site: fdr_format::SiteId(0),
        },
    );
    b.push(w1, MS, EventKind::PollStart { task: r });
    b.push(
        w1,
        MS + 1,
        EventKind::PollEnd {
            task: r,
            ready: false,
        },
    );
    b.push(
        w2,
        2 * MS,
        EventKind::Wake {
            task: r,
            waker: TaskId::NONE,
        },
    );
    b.push(w2, 2 * MS + 10, EventKind::Unpark);
    b.push(w2, 3 * MS, EventKind::PollStart { task: r });
    b.push(
        w2,
        3 * MS + 1,
        EventKind::PollEnd {
            task: r,
            ready: true,
        },
    );
    let p = profile(b);
    assert_eq!(awaits(&p, "request"), vec![(Waker::Driver, 1, MS - 1)]);
}

#[test]
fn phases_name_the_async_region_the_task_awaited_in() {
    let mut b = TraceBuilder::new();
    let (req, db) = (b.string("request"), b.string("db"));
    let w1 = b.thread("worker-1");
    let r = TaskId(1);
    b.push(
        w1,
        0,
        EventKind::TaskCreate {
            task: r,
            parent: TaskId::NONE,
            name: req,
            site: fdr_format::SiteId(0),
        },
    );
    b.push(w1, MS, EventKind::PollStart { task: r });
    b.push(
        w1,
        MS + 1,
        EventKind::AsyncRegionBegin {
            region: 7,
            task: r,
            name: db,
        },
    );
    b.push(
        w1,
        MS + 2,
        EventKind::PollEnd {
            task: r,
            ready: false,
        },
    );
    b.push(w1, 2 * MS, EventKind::Park);
    b.push(
        w1,
        5 * MS,
        EventKind::Wake {
            task: r,
            waker: TaskId::NONE,
        },
    );
    b.push(w1, 5 * MS + 1, EventKind::Unpark);
    b.push(w1, 5 * MS + 2, EventKind::PollStart { task: r });
    b.push(
        w1,
        5 * MS + 3,
        EventKind::AsyncRegionEnd { region: 7, task: r },
    );
    b.push(
        w1,
        5 * MS + 4,
        EventKind::PollEnd {
            task: r,
            ready: true,
        },
    );
    let p = profile(b);
    let (k, s) = &p.waits.stats()[0];
    assert_eq!(k.phase, db);
    assert_eq!(k.waker, Waker::Driver);
    assert_eq!(s.hist.sum(), 4 * MS - 2);
    assert!(waits_text(&p).contains(" db "), "{}", waits_text(&p));
}
