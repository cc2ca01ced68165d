//! `Fleet` over the tables of real dumps: fdr's sample trace exported twice, as two hosts'
//! dumps, then asked in SQL and with every canned question; what it refuses, it names.

use std::path::PathBuf;

use fdr_fleet::{ExportOptions, export_file};
use fdr_query::{Fleet, Limits, QueryError, Value, canned};

/// Two dumps of the sample trace, from two hosts, exported under `name`'s directory.
fn tables(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fdr-query-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let trace = root.join("sample.fdr");
    std::fs::write(&trace, fdr_format::testing::sample_trace()).unwrap();
    let tables = root.join("tables");
    for host in ["web-1", "web-7"] {
        let opts = ExportOptions {
            dump_id: format!("{host}-incident"),
            host: Some(host.into()),
            ..ExportOptions::default()
        };
        export_file(&trace, &tables, &opts).unwrap();
    }
    tables
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::UInt(u) => i64::try_from(*u).unwrap(),
        v => panic!("not an integer: {v:?}"),
    }
}

#[test]
fn sql_and_the_canned_questions_answer_across_dumps() {
    let dir = tables("answers");
    let fleet = Fleet::open(&dir, Limits::default()).unwrap();
    for t in ["dumps", "tasks", "polls", "awaits", "blocks", "findings"] {
        assert!(fleet.tables().contains(&t), "{:?}", fleet.tables());
    }
    let a = fleet
        .sql("SELECT host, count(*) AS n FROM dumps GROUP BY host ORDER BY host")
        .unwrap();
    assert_eq!(a.columns, ["host", "n"]);
    assert_eq!(
        a.rows,
        [
            vec![Value::Str("web-1".into()), Value::Int(1)],
            vec![Value::Str("web-7".into()), Value::Int(1)],
        ]
    );
    // Both dumps are the same trace: every host has the same polls.
    let polls = fleet
        .sql("SELECT host, count(*) AS n, sum(duration_ns) AS t FROM polls GROUP BY host ORDER BY host")
        .unwrap();
    assert_eq!(polls.rows.len(), 2);
    assert!(int(&polls.rows[0][1]) > 0, "{polls:?}");
    assert_eq!(polls.rows[0][1..], polls.rows[1][1..]);

    // The p99 question: a row per host and task name, the same for both hosts.
    let p99 = fleet.sql(&canned::p99_by_task()).unwrap();
    assert_eq!(
        p99.columns,
        [
            "host",
            "task_name",
            "polls",
            "p99_poll_ns",
            "awaits",
            "p99_await_ns"
        ]
    );
    assert!(!p99.rows.is_empty());
    assert!(p99.rows.len().is_multiple_of(2), "{p99:?}");
    let half = p99.rows.len() / 2;
    for (a, b) in p99.rows[..half].iter().zip(&p99.rows[half..]) {
        assert_eq!(a[0], Value::Str("web-1".into()));
        assert_eq!(b[0], Value::Str("web-7".into()));
        assert_eq!(a[1..], b[1..]);
    }
    // The blocking sites: each seen in both dumps, on both hosts.
    let top = fleet.sql(&canned::top_blocking(5)).unwrap();
    assert!(!top.rows.is_empty() && top.rows.len() <= 5, "{top:?}");
    for r in &top.rows {
        assert_eq!((int(&r[3]), int(&r[4])), (2, 2), "{r:?}");
    }
    // Per rule per day: the sample trace starts in November 2023.
    let per_day = fleet.sql(&canned::incidents_per_rule()).unwrap();
    for r in &per_day.rows {
        assert!(
            matches!(&r[0], Value::Str(d) if d.starts_with("2023-11-")),
            "{r:?}"
        );
        assert_eq!(int(&r[2]), 2, "{r:?}");
    }
    // One release against itself: no change.
    let diff = fleet.sql(&canned::release_diff("1.0.0", "1.0.0")).unwrap();
    assert!(!diff.rows.is_empty());
    for r in &diff.rows {
        assert_eq!(r[5], Value::Float(0.0), "{r:?}");
    }
}

#[test]
fn answers_are_bounded_and_refusals_named() {
    let dir = tables("bounds");
    let fleet = Fleet::open(
        &dir,
        Limits {
            max_rows: 3,
            ..Limits::default()
        },
    )
    .unwrap();
    let all = fleet.sql("SELECT count(*) FROM polls").unwrap();
    let n = int(&all.rows[0][0]);
    let some = fleet.sql("SELECT * FROM polls").unwrap();
    assert_eq!(some.rows.len(), 3);
    assert_eq!(some.rows_left_out, (n - 3) as u64);

    // No dump has stacks: the table is there, empty, with its columns.
    let stacks = fleet.sql("SELECT count(*), min(ts_ns) FROM stack_samples");
    assert_eq!(stacks.unwrap().rows, [vec![Value::Int(0), Value::Null]]);

    match fleet.sql("SELEKT 1") {
        Err(QueryError::Query(e)) => assert!(e.to_string().contains("SELEKT"), "{e}"),
        r => panic!("{r:?}"),
    }
    match fleet.sql("SELECT no_such_column FROM polls") {
        Err(QueryError::Query(e)) => assert!(e.to_string().contains("no_such_column"), "{e}"),
        r => panic!("{r:?}"),
    }

    // A directory without tables, and none at all.
    let empty = dir.parent().unwrap();
    match Fleet::open(empty, Limits::default()) {
        Err(e @ QueryError::NoTables { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("no fdr tables there") && s.contains("polls"),
                "{s}"
            );
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        Fleet::open(&dir.join("absent"), Limits::default()),
        Err(QueryError::Location { .. })
    ));
}
