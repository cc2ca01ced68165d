//! The text outputs people read, for fixed traces (the analyzer's deterministic scenarios),
//! against files under `tests/golden/`: a change to what `fdr` prints shows up in review.
//! `UPDATE_EXPECT=1 cargo test -p fdr-cli --test golden` rewrites them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use expect_test::expect_file;
use fdr_test_support::scenarios::scenario;

/// `fdr ARGS` with traces named by scenario, its standard output as text. The traces are
/// written into a directory of the call's own, removed after.
fn fdr(args: &[&str], traces: &[&str]) -> String {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "fdr-cli-golden-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    let paths: Vec<PathBuf> = traces
        .iter()
        .map(|t| {
            let p = d.join(format!("{t}.fdr"));
            std::fs::write(&p, scenario(t).unwrap()).unwrap();
            p
        })
        .collect();
    let o = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(args)
        .args(&paths)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn a_request_as_it_happened() {
    expect_file!["golden/tasks_task_id.txt"]
        .assert_eq(&fdr(&["tasks", "--task-id", "5"], &["healthy"]));
}

#[test]
fn a_diff_of_two_scenarios() {
    expect_file!["golden/diff.txt"].assert_eq(&fdr(&["diff"], &["healthy", "long_polls"]));
}

#[test]
fn scheduling_with_wall_clock_times() {
    expect_file!["golden/sched.txt"].assert_eq(&fdr(&["sched"], &["long_polls"]));
}

#[test]
fn regions_and_blocking() {
    let text = format!(
        "{}\n{}",
        fdr(&["regions"], &["lock_contention"]),
        fdr(&["blocking"], &["lock_contention"])
    );
    expect_file!["golden/regions_blocking.txt"].assert_eq(&text);
}

/// The other text outputs: the summary, tasks (and the live ones), waits, the diagnosis and
/// the first events of `cat`.
#[test]
fn the_other_text_outputs() {
    let cases: [(&str, &[&str], &str); 6] = [
        ("summary.txt", &["summary"], "healthy"),
        ("tasks.txt", &["tasks"], "healthy"),
        ("tasks_alive.txt", &["tasks", "--alive"], "task_leak"),
        ("waits.txt", &["waits"], "async_lock_contention"),
        ("diagnose.txt", &["diagnose"], "lock_contention"),
        ("cat.txt", &["cat", "--limit", "40"], "healthy"),
    ];
    for (file, args, trace) in cases {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/text")
            .join(file);
        expect_test::expect_file![path].assert_eq(&fdr(args, &[trace]));
    }
}

/// Every `--json` output, byte for byte: what scripts parse. A change to a field's name,
/// type or order shows up here.
#[test]
fn every_json_output() {
    let cases: [(&str, &[&str], &[&str]); 11] = [
        ("summary.json", &["summary", "--json"], &["healthy"]),
        ("tasks.json", &["tasks", "--json"], &["healthy"]),
        (
            "tasks_task_id.json",
            &["tasks", "--json", "--task-id", "5"],
            &["healthy"],
        ),
        (
            "tasks_alive.json",
            &["tasks", "--json", "--alive"],
            &["task_leak"],
        ),
        (
            "waits.json",
            &["waits", "--json"],
            &["async_lock_contention"],
        ),
        ("regions.json", &["regions", "--json"], &["lock_contention"]),
        (
            "blocking.json",
            &["blocking", "--json"],
            &["lock_contention"],
        ),
        ("sched.json", &["sched", "--json"], &["long_polls"]),
        (
            "diagnose.json",
            &["diagnose", "--json"],
            &["lock_contention"],
        ),
        (
            "diagnose_loss.json",
            &["diagnose", "--json"],
            &["recorder_loss"],
        ),
        ("diff.json", &["diff", "--json"], &["healthy", "long_polls"]),
    ];
    for (file, args, traces) in cases {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/json")
            .join(file);
        expect_test::expect_file![path].assert_eq(&fdr(args, traces));
    }
}
