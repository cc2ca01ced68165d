//! The data the HTML report's script draws (the page's `fdr-data` block), byte for byte, for
//! a small fixed trace that has every kind of slice, an incident's trigger inside the trace
//! and metric samples of each unit: a change to what the page is given shows up in review.
//! `UPDATE_EXPECT=1 cargo test -p fdr-analyzer --test analyzer report_data::` rewrites the golden.

use expect_test::expect_file;
use fdr_analyzer::report::{Incident, Report};
use fdr_format::{BlockReason, EventKind, TaskId};
use fdr_test_support::scenarios::TraceBuilder;

const MS: u64 = 1_000_000;

/// Two workers: one holds a lock in a region while polling tasks, the other waits for it;
/// a user task and an async region; park and unpark; metric samples. The whole trace is
/// 40 ms.
fn trace() -> Vec<u8> {
    let mut b = TraceBuilder::new();
    let handle = b.string("handle_request");
    let spawn_site = b.site("src/server.rs", 57);
    let render = b.string("render");
    let job = b.string("nightly_job");
    let fetch = b.string("fetch_rows");
    let lock_site = b.site("src/cache.rs", 42);
    let io_site = b.site("src/db.rs", 9);
    let metrics = [
        ("fdr_events_total", [10.0, 30.0, 70.0, 150.0]),
        ("queue_depth", [3.0, 5.0, 4.0, 4.0]),
        ("request_seconds", [0.002, 0.004, 0.003, 0.005]),
        (
            "fdr_poll_duration_seconds{quantile=\"0.99\"}",
            [1e-4, 3e-4, 2e-4, 2e-4],
        ),
        ("fdr_poll_duration_seconds_count", [1.0, 2.0, 3.0, 4.0]),
        ("heap_bytes", [4096.0, 8192.0, 8192.0, 16384.0]),
        ("steady_gauge", [1.0, 1.0, 1.0, 1.0]),
    ]
    .map(|(n, v)| (b.string(n), v));
    let a = b.thread("worker-1");
    let w = b.thread("worker-2");
    let s = b.thread("sampler");
    b.push(a, 0, EventKind::Unpark);
    b.push(w, 0, EventKind::Unpark);
    b.push(s, 0, EventKind::Unpark);
    // A task created before anything else on its worker ran: polled on worker-1.
    for i in 0..4u64 {
        let t0 = i * 10 * MS;
        let task = TaskId(i + 1);
        b.push(
            a,
            t0 + 1_000,
            EventKind::TaskCreate {
                task,
                parent: TaskId::NONE,
                name: handle,
                site: spawn_site,
            },
        );
        b.push(a, t0 + 2_000, EventKind::PollStart { task });
        b.push(a, t0 + 3_000, EventKind::RegionBegin { name: render });
        b.push(
            a,
            t0 + 4_000,
            EventKind::AsyncRegionBegin {
                region: i + 1,
                task,
                name: fetch,
            },
        );
        b.push(
            a,
            t0 + 2 * MS,
            EventKind::AsyncRegionEnd {
                region: i + 1,
                task,
            },
        );
        b.push(a, t0 + 7 * MS, EventKind::RegionEnd { name: render });
        b.push(
            a,
            t0 + 7 * MS + 1_000,
            EventKind::PollEnd { task, ready: true },
        );
        b.push(a, t0 + 7 * MS + 2_000, EventKind::TaskDrop { task });
        b.push(a, t0 + 8 * MS, EventKind::Park);
        b.push(a, t0 + 10 * MS - 1_000, EventKind::Unpark);
        // worker-2 waits for the lock most of each 10 ms.
        b.push(
            w,
            t0 + 500_000,
            EventKind::BlockBegin {
                reason: BlockReason::Mutex,
                site: lock_site,
            },
        );
        b.push(w, t0 + 9 * MS, EventKind::BlockEnd);
    }
    // A user task on worker-2 with an I/O wait inside it.
    let user = TaskId(100);
    b.push(
        w,
        9 * MS + 1_000,
        EventKind::UserTaskBegin {
            task: user,
            parent: TaskId::NONE,
            name: job,
        },
    );
    b.push(
        w,
        9 * MS + 2_000,
        EventKind::BlockBegin {
            reason: BlockReason::Io,
            site: io_site,
        },
    );
    b.push(w, 9 * MS + 300_000, EventKind::BlockEnd);
    b.push(w, 9 * MS + 400_000, EventKind::UserTaskEnd { task: user });
    for (i, at) in [1, 11, 21, 31].into_iter().enumerate() {
        for (name, values) in &metrics {
            b.push(
                s,
                at * MS,
                EventKind::Metric {
                    name: *name,
                    value: values[i],
                },
            );
        }
    }
    b.push(s, 40 * MS, EventKind::Park);
    b.build()
}

/// The sentinel's sidecar for the trace: the rule fired 12 ms into it.
fn incident(origin_wall_unix_ns: i128) -> Incident {
    Incident {
        id: "20250615T150640.012Z-lock_wait".into(),
        rule: "lock_wait".into(),
        condition: "lock_wait: request_seconds p99 > 0.003 for 1".into(),
        metric: "request_seconds".into(),
        value: 0.004,
        threshold: 0.003,
        values: vec![("lock_wait".into(), 0.004)],
        time_unix_ms: (origin_wall_unix_ns / 1_000_000) as u64 + 12,
        host: "test-host".into(),
        pid: 4242,
        service_version: Some("1.2.3".into()),
    }
}

/// The page's `fdr-data` block.
fn page_data(page: &str) -> &str {
    let open = "<script type=\"application/json\" id=\"fdr-data\">";
    let start = page.find(open).expect("the page carries its data") + open.len();
    let len = page[start..]
        .find("</script>")
        .expect("the data block ends");
    &page[start..start + len]
}

#[test]
fn the_pages_data_for_a_fixed_trace_and_incident() {
    let bytes = trace();
    let (first, _) = Report::from_slice(&bytes, None).unwrap();
    let origin = first
        .origin_wall_unix_ns
        .expect("the trace has a clock sync");
    let (r, outcome) = Report::from_slice(&bytes, Some(incident(origin))).unwrap();
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let page = r.render("fixed trace");
    let data = page_data(&page);
    // One line per top-level field, so a change reads as a change to that field.
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert!(v["trigger"].is_object(), "the trigger is inside the trace");
    assert!(!v["windows"].as_array().unwrap().is_empty(), "{data}");
    let mut text = String::new();
    for (k, field) in v.as_object().unwrap() {
        text.push_str(&format!("{k}: {field}\n"));
    }
    text.push_str(&format!("bytes: {data}\n"));
    expect_file!["../golden/report_data.txt"].assert_eq(&text);
}
