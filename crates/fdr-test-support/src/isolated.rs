//! Tests that need a process of their own inside a test binary shared with others.
//!
//! A crate's integration tests are modules of one test binary (one link instead of one a
//! file), but a test that starts the process-wide recorder, installs a global OpenTelemetry
//! provider or a panic hook must not share its process with another such test. Such a test
//! opens with
//!
//! ```ignore
//! if fdr_test_support::isolated::ran_in_child() {
//!     return;
//! }
//! ```
//!
//! In the test binary's own run, [`ran_in_child`] runs this one test again in a child
//! process of the same executable (`--exact NAME`, marked by [`CHILD_ENV`]), passes the
//! child's output through, fails the test when the child fails or did not run exactly that
//! test, and returns `true`: the parent returns without running the body. In the child it
//! returns `false` and the body runs there, alone in its process.

use std::process::Command;

/// Set in a child to the name of the one test it runs.
pub const CHILD_ENV: &str = "FDR_TEST_ISOLATED";

/// The calling test's name as libtest gave it (`module::test`): libtest runs every test on
/// a thread of that name.
fn test_name() -> String {
    let thread = std::thread::current();
    match thread.name() {
        Some(name) if name != "main" => name.to_owned(),
        other => panic!(
            "isolated::ran_in_child must be called on libtest's thread of a #[test] \
             (a thread named after the test), not on {other:?}"
        ),
    }
}

/// `false` in the child process that runs the calling test alone: go on with the test.
/// `true` in the test binary's own run, after a child ran the test and it passed: return.
/// Panics (failing the test) when the child fails or ran anything but this one test.
#[must_use = "the test must return when this is true: its child ran it"]
pub fn ran_in_child() -> bool {
    let name = test_name();
    if let Some(child) = std::env::var_os(CHILD_ENV) {
        assert_eq!(
            child.to_str(),
            Some(name.as_str()),
            "a child for one test ran another"
        );
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(&exe)
        .args([
            name.as_str(),
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &name)
        .output()
        .unwrap_or_else(|e| panic!("could not run {} for {name}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Through libtest's capture: shown when the test fails or runs with --nocapture.
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{name} failed in its own process ({}); its output is above",
        out.status
    );
    let ran = format!("test {name} ... ok");
    assert!(
        stdout.lines().any(|l| l == ran) && stdout.contains("test result: ok. 1 passed;"),
        "the child for {name} did not run exactly that test; its output is above"
    );
    true
}
