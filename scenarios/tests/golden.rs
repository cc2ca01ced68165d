//! The scenario suite as a golden test: every scenario runs, its dump is diagnosed, and the
//! diagnosis must match the scenario's expectation (`src/expect.rs`), except for the known
//! misses below, which are printed and do not fail (a known miss that passes is printed too,
//! so it can be taken off the list).

use std::collections::BTreeMap;
use std::process::Command;

/// Scenarios today's analyzer diagnoses wrongly, and why. The runs counted were debug builds of
/// `fdr-scenarios suite --only NAME` (or this test) on an AMD EPYC 2-vCPU VM, beside
/// `fdr-scenarios burn --threads 2` or two `yes` processes, as each reason says.
const KNOWN_MISSES: &[(&str, &str)] = &[
    (
        "slow_downstream",
        "right in 7 of 8 debug runs beside a CPU burner (warning 36 to 54); in one, info 22: the host's measured preemption stall averaged 27.1 ms (15 long polls mostly waiting for a CPU), close to the backend's 30-50 ms, so awaits of 36 ms (3/4 of the awaited time) were not judged slow beyond it; right in 2 of 3 more debug runs beside two `yes` burners at load average 17: in the third, info 0, as the window's 998 warm-up requests (p50 7.7 ms) outnumbered the fault's 509, three quarters of the awaits by count lasted 5.7 ms or less, under the measured 12.4 ms stall",
    ),
    (
        "healthy_busy_sibling",
        "right in 3 of 8 debug runs beside a CPU burner on a host at load average 17-21; in the others slow_downstream rose to warning or critical (30 to 71): the recorded threads waited for a CPU 96-97% of their runnable time and a quarter of the requests' awaits on the same-host backend (0.3-0.7 ms unloaded) lasted 43-48 ms or more against measured preemption stalls of 26-31 ms; awaits alone do not tell that from a backend slow by itself (slow_downstream's own runs reached 94.7%); right in 3 of 3 more debug runs beside two `yes` burners at load average 17, but because the window's fast warm-up requests are most of its awaits by count: in one run examined, in three of the fault's four 500 ms periods even the fastest tenth of requests awaited the backend 23-63 ms in all, against 34-59 ms in every period with the backend slowed to 30-50 ms, and the waking worker's run-queue share around long awaits (periodic samples 100 ms apart) was 0.59 at the median against slow_downstream's 0.17, their quartiles overlapping; the worker's run-queue wait between its wake-up in epoll and the wake it issues (not recorded) and the same-host backend's own wait for a CPU (invisible from the service) would tell them apart",
    ),
    (
        "healthy",
        "right in 6 of 8 debug runs beside a CPU burner (one miss came from a change since undone); in another, at load average 20 on 2 cores, slow_downstream warning 57: the recorded threads waited for a CPU 97.0% of their runnable time and the requests' awaits on the same-host backend reached p99 395 ms (3/4 of the awaited time in awaits of 48.8 ms or more, against a 19.1 ms measured stall); right in 3 of 3 more debug runs beside two `yes` burners at load average 17, for the same reason as healthy_busy_sibling (in one run examined, the fastest tenth of requests awaited the backend 12-23 ms in all in each of the fault's 500 ms periods, and the waking worker's run-queue share around long awaits was 0.34 at the median)",
    ),
];

#[test]
fn every_scenario_is_diagnosed_as_expected_but_the_known_misses() {
    let out = std::env::temp_dir().join(format!("fdr-scenarios-golden-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_fdr-scenarios"))
        .args(["suite", "--json", "--out"])
        .arg(&out)
        .output()
        .expect("the suite runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the suite's JSON: {e}\n{stdout}\n{stderr}"));
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let by_name: BTreeMap<&str, &serde_json::Value> = scenarios
        .iter()
        .map(|s| (s["name"].as_str().unwrap_or("?"), s))
        .collect();
    for (name, _) in KNOWN_MISSES {
        assert!(
            by_name.contains_key(name),
            "known miss {name} is no scenario"
        );
    }
    let mut failures = Vec::new();
    for (name, s) in &by_name {
        let got = &s["got"];
        let line = format!(
            "{name}: expected {}; got {} {} {} @ {} ({})",
            s["expected"]["text"].as_str().unwrap_or("?"),
            got["rule"].as_str().unwrap_or("-"),
            got["severity"].as_str().unwrap_or("-"),
            got["score"],
            got["site"].as_str().unwrap_or("no site"),
            s["why"].as_str().unwrap_or("")
        );
        // Every scenario must run, be dumped and be diagnosed, known miss or not.
        if s["ran"].as_bool() != Some(true) {
            failures.push(format!("did not run: {line}"));
            continue;
        }
        let known = KNOWN_MISSES.iter().find(|(n, _)| n == name);
        match (s["right"].as_bool() == Some(true), known) {
            (true, None) => println!("right: {name}"),
            (true, Some(_)) => println!(
                "known miss right this run (take it off KNOWN_MISSES once it is right every run, on a busy host too): {line}"
            ),
            (false, Some((_, why))) => println!("known miss: {line}\n    because {why}"),
            (false, None) => failures.push(line),
        }
    }
    println!(
        "right {} of {} in {}s",
        report["scenarios_right"], report["scenarios_total"], report["seconds"]
    );
    assert!(
        failures.is_empty(),
        "scenarios diagnosed wrongly:\n{}\n(dumps and logs in {})\n{stderr}",
        failures.join("\n"),
        out.display()
    );
    let _ = std::fs::remove_dir_all(&out);
}
