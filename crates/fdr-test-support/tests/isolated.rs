//! `isolated::ran_in_child` keeps tests apart: two tests that each claim a process-wide
//! flag would fail if they shared a process; a child's failure fails the test; and it
//! holds with one test thread as with many.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use fdr_test_support::isolated::{CHILD_ENV, ran_in_child};

/// Taken by the first test of a process that claims it.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Claims the process, as a test that starts the recorder does: a second claimant in the
/// same process fails.
fn claim_the_process(name: &str) {
    assert!(
        !CLAIMED.swap(true, Ordering::SeqCst),
        "{name}: another test already ran in this process"
    );
    assert_eq!(std::env::var(CHILD_ENV).as_deref(), Ok(name));
    // Long enough for the other claimant to run meanwhile if they were not apart.
    std::thread::sleep(std::time::Duration::from_millis(200));
}

#[test]
fn first_claimant() {
    if ran_in_child() {
        return;
    }
    claim_the_process("first_claimant");
}

#[test]
fn second_claimant() {
    if ran_in_child() {
        return;
    }
    claim_the_process("second_claimant");
}

/// Passes, unless `FDR_ISOLATED_FAIL` is set (by the test below, for its run of this one).
#[test]
fn fails_only_when_asked() {
    if ran_in_child() {
        return;
    }
    assert!(
        std::env::var_os("FDR_ISOLATED_FAIL").is_none(),
        "failing as asked"
    );
}

/// Set in the runs below: their tests must never run the two tests that start them.
const SUBRUN: &str = "FDR_ISOLATED_SUBRUN";

/// Runs this binary's tests named exactly `tests` (not as a child), with `threads` test
/// threads.
fn run_this_binary(tests: &[&str], threads: &str, fail: bool) -> (bool, String) {
    assert!(
        std::env::var_os(SUBRUN).is_none(),
        "a run of this binary ran the test that starts it"
    );
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(tests)
        .args(["--exact", "--test-threads", threads])
        .env(SUBRUN, "1")
        .env_remove(CHILD_ENV)
        .env_remove("FDR_ISOLATED_FAIL");
    if fail {
        c.env("FDR_ISOLATED_FAIL", "1");
    }
    let o = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn a_failing_child_fails_the_test() {
    let (ok, text) = run_this_binary(&["fails_only_when_asked"], "2", true);
    assert!(!ok, "{text}");
    assert!(text.contains("failing as asked"), "{text}");
    assert!(
        text.contains("fails_only_when_asked failed in its own process"),
        "{text}"
    );
}

#[test]
fn claimants_stay_apart_on_one_test_thread() {
    let (ok, text) = run_this_binary(&["first_claimant", "second_claimant"], "1", false);
    assert!(ok, "{text}");
    assert!(text.contains("test result: ok. 2 passed;"), "{text}");
}
