//! The scenario suite as a golden test: every scenario runs, its dump is diagnosed, and the
//! diagnosis must match the scenario's expectation (`src/expect.rs`), except for the known
//! misses below, which are printed and do not fail (a known miss that passes is printed too,
//! so it can be taken off the list).

use std::collections::BTreeMap;
use std::process::Command;

/// Scenarios today's analyzer diagnoses wrongly, as `(name, why)`, each with the runs counted
/// (debug builds of `fdr-scenarios suite --only NAME` or this test, the host and what shared
/// it). None now: `healthy`, the last one, has been right in every run since sched_delay,
/// slow_downstream and long_polls judge the host's per-wake wait at the time it happened
/// and long polls the OS view did not split like those it split: 26 of 26 runs, 18 of them
/// beside two `yes` burners (starved down to 120 requests/s, p50 42 ms).
const KNOWN_MISSES: &[(&str, &str)] = &[];

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
