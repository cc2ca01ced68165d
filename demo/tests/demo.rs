//! The demo end to end: the sentinel dumps the incident, and its diagnosis names the injected
//! fault first, with its site.

use std::process::Command;

#[test]
fn the_demo_diagnoses_the_injected_fault_first_with_its_site() {
    let out_dir = std::env::temp_dir().join(format!("fdr-demo-test-{}", std::process::id()));
    // The phases `cargo xtask demo` runs (the default length).
    let out = Command::new(env!("CARGO_BIN_EXE_fdr-demo"))
        .arg("--out")
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
    for f in ["before.fdr", "report.html"] {
        assert!(
            out_dir.join(f).is_file(),
            "{f} missing in {}",
            out_dir.display()
        );
    }
    // The diagnosed dump is the sentinel's incident, with its sidecar.
    assert!(stdout.contains("sentinel: rule `"), "{stdout}");
    let incidents: Vec<String> = std::fs::read_dir(out_dir.join("incidents"))
        .expect("the incident directory")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let dump = incidents
        .iter()
        .find(|n| n.ends_with(".fdr"))
        .unwrap_or_else(|| panic!("no incident dump in {incidents:?}"));
    assert!(incidents.contains(&dump.replace(".fdr", ".json")));
    assert!(
        stdout.contains(&format!(
            "diagnosis of {}",
            out_dir.join("incidents").join(dump).display()
        )),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}
