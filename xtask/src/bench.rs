//! `cargo xtask bench`: run the criterion benches and collect one flat table of figures.
//!
//! Figures come from two places, both written during the same `cargo bench` run:
//! - every criterion benchmark whose id is `group/figure` yields `group.figure` = its median
//!   time per iteration in ns (so name such benches after the figure, e.g. `record/region_ns`);
//! - benches report other figures (ratios, rates, bytes) with `fdr_benches::report`, which
//!   appends `{"name":..,"value":..}` lines to `target/xtask/bench/extra.jsonl`.
//!
//! The table is printed, written to `target/xtask/bench/summary.json`, and compared with the
//! previous run's summary (kept as `previous.json`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::{cargo, target_dir};

pub(crate) fn run(args: &[String]) -> Result<()> {
    let out = target_dir().join("xtask/bench");
    fs::create_dir_all(&out)?;
    let extra = out.join("extra.jsonl");
    let _ = fs::remove_file(&extra);
    let criterion_dir = target_dir().join("criterion");
    let _ = fs::remove_dir_all(&criterion_dir);

    let mut cmd = cargo();
    cmd.args(["bench", "-p", "fdr-benches"])
        .env("FDR_BENCH_EXTRA", &extra);
    // `--filter NAME` runs only the benches whose id contains NAME.
    let mut bench_args = vec!["--".to_string()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--filter" {
            bench_args.push(it.next().cloned().unwrap_or_default());
        }
    }
    cmd.args(&bench_args);
    crate::run(&mut cmd)?;

    let mut figures = BTreeMap::new();
    collect_criterion(&criterion_dir, &mut figures)?;
    if let Ok(text) = fs::read_to_string(&extra) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(line).with_context(|| format!("bad line {line}"))?;
            if let (Some(n), Some(x)) = (v["name"].as_str(), v["value"].as_f64()) {
                figures.insert(n.to_string(), x);
            }
        }
    }

    let summary_path = out.join("summary.json");
    let previous_path = out.join("previous.json");
    let previous: BTreeMap<String, f64> = fs::read_to_string(&summary_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if summary_path.exists() {
        fs::copy(&summary_path, &previous_path)?;
    }
    // Merge with the previous figures, so a filtered run does not forget the others.
    let mut merged = previous.clone();
    merged.extend(figures.iter().map(|(k, v)| (k.clone(), *v)));
    let json: Map<String, Value> = merged
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(*v)))
        .collect();
    fs::write(&summary_path, serde_json::to_string_pretty(&json)? + "\n")?;

    println!(
        "\n{:<44} {:>16} {:>16} {:>9}",
        "figure", "this run", "previous", "change"
    );
    for (name, value) in &figures {
        let (prev, change) = match previous.get(name) {
            Some(p) if *p != 0.0 => (fmt_num(*p), format!("{:+.1}%", (value / p - 1.0) * 100.0)),
            _ => ("-".into(), "".into()),
        };
        println!("{name:<44} {:>16} {prev:>16} {change:>9}", fmt_num(*value));
    }
    println!("\nwritten: {}", summary_path.display());
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{v:.4e}")
    } else {
        format!("{v:.3}")
    }
}

/// Reads `<group>/<bench>/new/estimates.json` files: figure `group.bench` = median ns.
fn collect_criterion(dir: &Path, figures: &mut BTreeMap<String, f64>) -> Result<()> {
    let Ok(groups) = fs::read_dir(dir) else {
        return Ok(());
    };
    for group in groups.flatten() {
        let Ok(benches) = fs::read_dir(group.path()) else {
            continue;
        };
        for bench in benches.flatten() {
            let est = bench.path().join("new/estimates.json");
            let Ok(text) = fs::read_to_string(&est) else {
                continue;
            };
            let v: Value = serde_json::from_str(&text)?;
            if let Some(ns) = v["median"]["point_estimate"].as_f64() {
                let name = format!(
                    "{}.{}",
                    group.file_name().to_string_lossy(),
                    bench.file_name().to_string_lossy()
                );
                figures.insert(name, ns);
            }
        }
    }
    Ok(())
}
