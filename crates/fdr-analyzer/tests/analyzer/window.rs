//! A flight-recorder window starts mid-flight: tasks whose creation it does not hold.

use fdr_format::{
    BatchEncoder, ClockSync, EventKind, ProcessInfo, StrId, TableEncoder, TaskId, ThreadId,
    TraceWriter,
};

#[test]
fn tasks_created_before_the_window_are_named_so_not_after_string_zero() {
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    let mut t = TableEncoder::new();
    // The recorder defines string 0 as its intern-overflow name.
    t.string(StrId(0), "<overflow>")
        .string(StrId(1), "http GET /user");
    t.thread(ThreadId(1), 11, "worker");
    t.clock(&ClockSync {
        ticks: 0,
        mono_ns: 0,
        wall_unix_ns: 0,
        ticks_per_sec: 1e9,
    });
    w.write_table(&t, true).unwrap();
    let mut buf = [0u8; 512];
    let mut b = BatchEncoder::new(&mut buf, 1_000);
    let (old, new) = (TaskId(5), TaskId(6));
    // Task 5 was created before the window: only its last poll is in it.
    b.push(1_000, &EventKind::PollStart { task: old }).unwrap();
    b.push(
        2_000,
        &EventKind::PollEnd {
            task: old,
            ready: true,
        },
    )
    .unwrap();
    b.push(2_100, &EventKind::TaskDrop { task: old }).unwrap();
    let create = EventKind::TaskCreate {
        task: new,
        parent: TaskId::NONE,
        name: StrId(1),
        site: Default::default(),
    };
    b.push(3_000, &create).unwrap();
    b.push(3_100, &EventKind::PollStart { task: new }).unwrap();
    b.push(
        4_100,
        &EventKind::PollEnd {
            task: new,
            ready: true,
        },
    )
    .unwrap();
    b.push(4_200, &EventKind::TaskDrop { task: new }).unwrap();
    w.write_events(ThreadId(1), 0, b.base_ts(), b.payload())
        .unwrap();
    let bytes = w.finish().unwrap();

    let (p, out) = fdr_analyzer::profile_slice(&bytes, Default::default()).unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    let text = fdr_analyzer::views::tasks_text(&p);
    assert!(text.contains("(created before the window)"), "{text}");
    assert!(text.contains("http GET /user"), "{text}");
    assert!(!text.contains("<overflow>"), "{text}");
}

mod analyzed_window {
    use fdr_analyzer::diagnose::{Severity, diagnose};
    use fdr_analyzer::window::{Start, WindowSpec};
    use fdr_analyzer::{Profile, ProfileOptions, profile_slice};
    use fdr_format::{BlockReason, EventKind, LossReason, SiteId, TaskId};
    use fdr_test_support::scenarios::TraceBuilder;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn profile(b: TraceBuilder, window: WindowSpec) -> Profile {
        let trace = b.write_to(Vec::new()).unwrap();
        let (p, out) = profile_slice(
            &trace,
            ProfileOptions {
                window,
                ..ProfileOptions::default()
            },
        )
        .unwrap();
        assert!(out.error.is_none());
        p
    }

    /// A quiet thread's history reaches back 20 s; a busy thread's starts at 18 s (its
    /// earlier chunks aged out). Requests of 6 ms are created on the quiet thread and
    /// dropped on the busy one.
    fn ragged() -> TraceBuilder {
        let mut b = TraceBuilder::new();
        let name = b.string("http GET /user");
        let site = b.site("src/server.rs", 12);
        let quiet = b.thread("acceptor");
        let busy = b.thread("worker");
        b.push(quiet, 0, EventKind::ThreadStart);
        let mut t = 10 * MS;
        let mut id = 1;
        while t < 20 * S {
            let task = TaskId(id);
            id += 1;
            b.push(
                quiet,
                t,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name,
                    site,
                },
            );
            // The drop is on the busy thread, whose history before 18 s is gone.
            if t + 6 * MS >= 18 * S {
                b.push(busy, t + MS, EventKind::PollStart { task });
                b.push(busy, t + 6 * MS, EventKind::PollEnd { task, ready: true });
                b.push(busy, t + 6 * MS + 10, EventKind::TaskDrop { task });
            }
            t += 50 * MS;
        }
        b
    }

    #[test]
    fn a_ragged_history_is_no_task_leak() {
        let p = profile(ragged(), WindowSpec::Active);
        assert_eq!(p.window.start, Start::CommonStart);
        assert!(p.window.from_ns >= 18 * S, "{:?}", p.window);
        let d = diagnose(&p);
        let leak = d.findings().find(|f| f.rule == "task_leak").unwrap();
        assert_eq!(leak.severity, Severity::Info, "{}", d.to_text());
        assert!(!d.to_text().contains("alive for 19"), "{}", d.to_text());
        assert!(d.to_text().starts_with("window: 18"), "{}", d.to_text());
        // The whole trace, asked for, still shows the tasks whose drop it lost.
        let all = profile(ragged(), WindowSpec::All);
        assert_eq!(all.window.from_ns, 0);
        assert!(all.oldest_alive.is_some_and(|o| o.0 > 10 * S));
    }

    /// The window moves once per thread whose history starts late (here 50 times); threads
    /// and tasks not touched since (one inside a 10 s poll, one parked to the end) are
    /// counted from the last move, as if every move had visited them.
    #[test]
    fn threads_untouched_across_window_moves_count_from_the_last() {
        let mut b = TraceBuilder::new();
        let name = b.string("slow job");
        let site = b.site("src/jobs.rs", 7);
        let (a, c) = (b.thread("long-poller"), b.thread("idle"));
        let slow = TaskId(1);
        b.push(a, 0, EventKind::ThreadStart);
        b.push(c, 0, EventKind::ThreadStart);
        b.push(
            a,
            MS,
            EventKind::TaskCreate {
                task: slow,
                parent: TaskId::NONE,
                name,
                site,
            },
        );
        b.push(a, 2 * MS, EventKind::PollStart { task: slow });
        b.push(c, 500 * MS, EventKind::Park);
        // 50 threads whose history starts late, each later than the last, polling a task
        // every 200 ms (so no stretch of the trace is idle).
        let last_start = S + 49 * 50 * MS;
        for k in 0..50u64 {
            let th = b.thread(&format!("worker-{k}"));
            let task = TaskId(100 + k);
            let mut t = S + k * 50 * MS;
            while t < 12 * S {
                b.push(th, t, EventKind::PollStart { task });
                b.push(th, t + MS, EventKind::PollEnd { task, ready: false });
                t += 200 * MS;
            }
        }
        b.push(
            a,
            10 * S,
            EventKind::PollEnd {
                task: slow,
                ready: true,
            },
        );
        b.push(a, 10 * S + MS, EventKind::Park);
        let p = profile(b, WindowSpec::Active);
        assert_eq!(p.window.start, Start::CommonStart);
        assert_eq!(p.window.from_ns, last_start);
        let end = p.window.to_ns;
        let (a, c) = (&p.threads[&a], &p.threads[&c]);
        assert_eq!(a.first_ns, last_start);
        assert_eq!(a.active_ns, 10 * S - last_start);
        assert_eq!(a.parked_ns, end - (10 * S + MS));
        assert_eq!(c.first_ns, last_start);
        assert_eq!(c.parked_ns, end - last_start);
        assert_eq!(c.active_ns, 0);
        let longest = p.longest_polls.iter().map(|r| r.dur_ns).max();
        assert_eq!(longest, Some(10 * S - last_start));
    }

    /// Two minutes of idle history, then 6 s in which four threads spend most of their
    /// time blocked on one lock.
    fn idle_then_contention() -> TraceBuilder {
        let mut b = TraceBuilder::new();
        let lock = b.site("src/cache.rs", 40);
        let ts: Vec<_> = (0..4).map(|i| b.thread(&format!("worker-{i}"))).collect();
        for &th in &ts {
            b.push(th, 0, EventKind::ThreadStart);
        }
        // A heartbeat now and then while idle (no task, poll, block or region).
        for k in 1..120u64 {
            b.push(ts[0], k * S, EventKind::Park);
            b.push(ts[0], k * S + 10, EventKind::Unpark);
        }
        let start = 120 * S;
        for (i, &th) in ts.iter().enumerate() {
            let mut t = start + i as u64 * MS;
            while t < start + 6 * S {
                b.push(
                    th,
                    t,
                    EventKind::BlockBegin {
                        reason: BlockReason::Mutex,
                        site: lock,
                    },
                );
                b.push(th, t + 8 * MS, EventKind::BlockEnd);
                t += 10 * MS;
            }
        }
        b
    }

    #[test]
    fn idle_history_does_not_dilute_the_window() {
        let p = profile(idle_then_contention(), WindowSpec::Active);
        assert_eq!(p.window.start, Start::AfterIdle);
        assert!(
            p.window.from_ns >= 120 * S && p.window.len_ns() <= 6 * S + 10 * MS,
            "{:?}",
            p.window
        );
        let d = diagnose(&p);
        let top = d.top().unwrap();
        assert_eq!(top.rule, "lock_contention", "{}", d.to_text());
        assert_eq!(top.severity, Severity::Critical, "{}", d.to_text());
        assert!(
            d.to_text().contains("the recent active part"),
            "{}",
            d.to_text()
        );
        // Over the whole trace the same contention is diluted to a few percent.
        let all = diagnose(&profile(idle_then_contention(), WindowSpec::All));
        let lc = all
            .findings()
            .find(|f| f.rule == "lock_contention")
            .unwrap();
        assert!(lc.score < top.score, "{}", all.to_text());
    }

    #[test]
    fn discards_ahead_of_a_threads_history_are_not_loss_inside_the_window() {
        let mut b = TraceBuilder::new();
        let name = b.string("job");
        let th = b.thread("worker");
        // The thread's first chunk in the dump carries every discard since it started.
        b.push(
            th,
            1_000,
            EventKind::Loss {
                reason: LossReason::PoolExhausted,
                events: 1_593_251,
                bytes: 0,
            },
        );
        for i in 0..100u64 {
            let task = TaskId(i + 1);
            let t = 2_000 + i * 36_000;
            b.push(
                th,
                t,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name,
                    site: SiteId(0),
                },
            );
            b.push(th, t + 1_000, EventKind::PollStart { task });
            b.push(th, t + 30_000, EventKind::PollEnd { task, ready: true });
            b.push(th, t + 31_000, EventKind::TaskDrop { task });
        }
        let p = profile(b, WindowSpec::Active);
        assert!(p.loss.is_empty(), "{:?}", p.loss);
        assert_eq!(p.window.discarded_before, 1_593_251);
        let d = diagnose(&p);
        let text = d.to_text();
        assert!(
            text.contains("0 events lost inside the window")
                && text.contains("1593251 events discarded before the window"),
            "{text}"
        );
    }

    #[test]
    fn a_range_is_parsed_and_bounds_the_figures() {
        assert_eq!(WindowSpec::parse("all"), Ok(WindowSpec::All));
        assert_eq!(
            WindowSpec::parse("1.5s..2500ms"),
            Ok(WindowSpec::Range {
                from_ns: 1_500_000_000,
                to_ns: Some(2_500_000_000)
            })
        );
        assert_eq!(
            WindowSpec::parse("..200us"),
            Ok(WindowSpec::Range {
                from_ns: 0,
                to_ns: Some(200_000)
            })
        );
        for bad in ["2s..1s", "5..6", "x", "1s..2x"] {
            assert!(WindowSpec::parse(bad).is_err(), "{bad}");
        }
        let p = profile(
            idle_then_contention(),
            WindowSpec::Range {
                from_ns: 121 * S,
                to_ns: Some(122 * S),
            },
        );
        assert_eq!((p.window.from_ns, p.window.to_ns), (121 * S, 122 * S));
        let blocked: u64 = p.threads.values().map(|t| t.blocked_ns).sum();
        // Four threads blocked 80% of one second.
        assert!((3_000 * MS..=3_300 * MS).contains(&blocked), "{blocked}");
    }
}
