//! The demo end to end: its diagnosis names the injected fault first, with its site.

use std::process::Command;

#[test]
fn the_demo_diagnoses_the_injected_fault_first_with_its_site() {
    let out_dir = std::env::temp_dir().join(format!("fdr-demo-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_fdr-demo"))
        .args(["--seconds", "2", "--out"])
        .arg(&out_dir)
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{stderr}");
    let first = stdout
        .lines()
        .skip_while(|l| !l.starts_with("diagnosis of"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        first.starts_with("1. [critical"),
        "first finding: {first}\n{stdout}"
    );
    assert!(
        first.contains("lock_contention"),
        "first finding: {first}\n{stdout}"
    );
    // The contended lock's site is the `lock()` call in the demo's `lookup`.
    let source = include_str!("../src/main.rs");
    let line = source
        .lines()
        .position(|l| l.contains("app.cache.lock()"))
        .expect("the demo locks the cache")
        + 1;
    let site = format!("mutex at demo/src/main.rs:{line}:");
    assert!(stdout.contains(&site), "no {site} in:\n{stdout}");
    for f in ["before.fdr", "incident.fdr", "report.html"] {
        assert!(
            out_dir.join(f).is_file(),
            "{f} missing in {}",
            out_dir.display()
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
