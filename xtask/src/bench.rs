//! `cargo xtask bench`: run the criterion benches and collect one flat table of figures.
//!
//! Figures come from two places, both written during the same `cargo bench` run:
//! - every criterion benchmark whose id is `group/figure` yields `group.figure` = its median
//!   time per iteration in ns (so name such benches after the figure, e.g. `record/region_ns`);
//! - benches report other figures (ratios, rates, bytes) with `fdr_benches::report`, which
//!   appends `{"name":..,"value":..}` lines to `target/xtask/bench/extra.jsonl`. A ratio
//!   comes with its spread over rounds (`_p10`, `_p90`, `_rounds`); the record bench's
//!   harness checks (`record.floor_agreement`, `record.harness_agreement`) are restated
//!   after the table when off 1 by more than 5%.
//!
//! Then xtask adds three measurements of its own: `fdr summary`'s peak memory on a 1 GiB
//! trace; the realistic scenario suite (`fdr-scenarios suite`, release build):
//! `diagnose.scenarios_right` of `diagnose.scenarios_total`, with the suite's per-scenario
//! report kept as `scenarios.json`; and the largest peak memory of every `fdr` command on
//! a 1 GiB trace of each hostile shape (`analyze.max_rss_bytes_adversarial`, at most
//! 256 MiB).
//!
//! The table is printed, written to `target/xtask/bench/summary.json`, and compared with the
//! previous run's summary (kept as `previous.json`). The end-to-end bench's traced service
//! leaves its flight recorder as `e2e.fdr` beside them (the previous run's as
//! `e2e.previous.fdr`), to read with `fdr` and compare with `fdr diff`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::{cargo, target_dir};

pub(crate) fn run(filter: Option<&str>) -> Result<()> {
    let out = target_dir().join("xtask/bench");
    fs::create_dir_all(&out)?;
    let extra = out.join("extra.jsonl");
    let _ = fs::remove_file(&extra);
    let criterion_dir = target_dir().join("criterion");
    let _ = fs::remove_dir_all(&criterion_dir);

    // The end-to-end bench leaves its traced service's flight recorder here: the run's
    // trace of the critical path, kept beside the figures.
    let trace = out.join("e2e.fdr");
    let previous_trace = out.join("e2e.previous.fdr");
    // `--filter NAME` runs only the benches whose id contains NAME. A filter that is the
    // whole name of one of xtask's own figures runs that measurement alone: building the
    // benches (DataFusion among them) would take longer than some of the measurements.
    if !filter.is_some_and(|f| OWN_FIGURES.contains(&f)) {
        if trace.exists() {
            fs::rename(&trace, &previous_trace)?;
        }
        let mut cmd = cargo();
        cmd.args(["bench", "-p", "fdr-benches"])
            .env("FDR_BENCH_EXTRA", &extra)
            .env("FDR_E2E_TRACE", &trace);
        cmd.arg("--").args(filter);
        crate::run(&mut cmd)?;
    }
    // The 1 GiB memory check runs in a full bench, or when the filter names it.
    if filter.is_none_or(|f| PEAK_RSS_FIGURE.contains(f)) {
        let rss = summary_peak_rss(&out)?;
        fdr_line(&extra, PEAK_RSS_FIGURE, rss as f64)?;
    }
    // The scenario suite's score, likewise.
    if filter.is_none_or(|f| SCENARIO_FIGURES.iter().any(|n| n.contains(f))) {
        scenarios(&out, &extra)?;
    }
    if filter.is_none_or(|f| ADVERSARIAL_RSS_FIGURE.contains(f)) {
        let rss = adversarial_peak_rss(&out)?;
        fdr_line(&extra, ADVERSARIAL_RSS_FIGURE, rss as f64)?;
        anyhow::ensure!(
            rss <= 256 << 20,
            "target A2: an fdr command peaked at {} MiB on a hostile trace (over 256 MiB)",
            rss >> 20
        );
    }

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
        "\n{:<52} {:>16} {:>16} {:>9}",
        "figure", "this run", "previous", "change"
    );
    for (name, value) in &figures {
        let (prev, change) = match previous.get(name) {
            Some(p) if *p != 0.0 => (fmt_num(*p), format!("{:+.1}%", (value / p - 1.0) * 100.0)),
            _ => ("-".into(), "".into()),
        };
        println!("{name:<52} {:>16} {prev:>16} {change:>9}", fmt_num(*value));
    }
    // The benches' own checks of their harness, restated where they cannot scroll by.
    for name in AGREEMENT_FIGURES {
        if let Some(v) = figures.get(name)
            && (v - 1.0).abs() > AGREEMENT_TOLERANCE
        {
            println!(
                "WARNING: {name} = {v:.3}, off 1 by more than {:.0}%: the ratios of this run are suspect",
                AGREEMENT_TOLERANCE * 100.0
            );
        }
    }
    println!("\nwritten: {}", summary_path.display());
    if trace.exists() {
        println!(
            "trace of the end-to-end bench's traced service: {} (fdr summary, fdr diagnose)",
            trace.display()
        );
        if previous_trace.exists() {
            println!(
                "against the previous run: fdr diff {} {}",
                previous_trace.display(),
                trace.display()
            );
        }
    }
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

const PEAK_RSS_FIGURE: &str = "analyze.summary_peak_rss_bytes";
/// Figures by which the record bench checks its own harness: each should be 1.
const AGREEMENT_FIGURES: [&str; 3] = [
    "record.floor_agreement",
    "record.floor_one_event_agreement",
    "record.harness_agreement",
];
/// How far off 1 an agreement figure may be.
const AGREEMENT_TOLERANCE: f64 = 0.05;
/// How many of the scenario suite's programs `fdr diagnose` gets right, of how many.
const SCENARIO_FIGURES: [&str; 2] = ["diagnose.scenarios_right", "diagnose.scenarios_total"];

/// Runs the realistic scenario suite (release build) and reports how many scenarios the
/// diagnosis gets right; the suite's JSON report is kept as `scenarios.json`.
fn scenarios(dir: &Path, extra: &Path) -> Result<()> {
    crate::run(cargo().args(["build", "--release", "-p", "fdr-scenarios"]))?;
    let bin = target_dir().join("release/fdr-scenarios");
    let t = std::time::Instant::now();
    let run = std::process::Command::new(&bin)
        .args(["suite", "--json", "--out"])
        .arg(target_dir().join("xtask/scenarios"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", bin.display()))?;
    let text = String::from_utf8_lossy(&run.stdout);
    let report: Value = serde_json::from_str(&text)
        .with_context(|| format!("the scenario suite's report ({}): {text}", run.status))?;
    anyhow::ensure!(
        run.status.success(),
        "a scenario did not run ({}); its log is under {}",
        run.status,
        target_dir().join("xtask/scenarios").display()
    );
    fs::write(
        dir.join("scenarios.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    let (right, total) = (
        report["scenarios_right"]
            .as_f64()
            .context("scenarios_right")?,
        report["scenarios_total"]
            .as_f64()
            .context("scenarios_total")?,
    );
    eprintln!(
        "scenario suite: right {right} of {total} in {:.0?} (per scenario: {})",
        t.elapsed(),
        dir.join("scenarios.json").display()
    );
    fdr_line(extra, SCENARIO_FIGURES[0], right)?;
    fdr_line(extra, SCENARIO_FIGURES[1], total)
}
const ADVERSARIAL_RSS_FIGURE: &str = "analyze.max_rss_bytes_adversarial";
/// The figures xtask measures itself, after the benches.
const OWN_FIGURES: [&str; 4] = [
    PEAK_RSS_FIGURE,
    SCENARIO_FIGURES[0],
    SCENARIO_FIGURES[1],
    ADVERSARIAL_RSS_FIGURE,
];

fn fdr_line(extra: &Path, name: &str, value: f64) -> Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(extra)?;
    writeln!(f, "{}", serde_json::json!({"name": name, "value": value}))?;
    Ok(())
}

/// Generates a trace of at least 1 GiB, runs the release `fdr summary` on it, and returns
/// the child's peak resident set (VmHWM, sampled from /proc every 5 ms until it exits).
fn summary_peak_rss(dir: &Path) -> Result<u64> {
    use std::io::{BufWriter, Write};
    let bin = build_release_fdr()?;
    let path = dir.join("large.fdr");
    let t = std::time::Instant::now();
    let f = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = fdr_test_support::scenarios::write_large(BufWriter::new(f), 1 << 30)?;
    w.flush()?;
    drop(w);
    let size = fs::metadata(&path)?.len();
    eprintln!(
        "generated {} ({size} bytes) in {:.1?}",
        path.display(),
        t.elapsed()
    );
    let t = std::time::Instant::now();
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["summary", "--json"]).arg(&path);
    let (status, peak) = run_peak_rss(&mut cmd)?;
    let secs = t.elapsed().as_secs_f64();
    let _ = fs::remove_file(&path);
    anyhow::ensure!(
        status.success(),
        "fdr summary failed on the generated trace: {status}"
    );
    eprintln!(
        "fdr summary on {size} bytes: {secs:.2}s ({:.0} MB/s), peak RSS {} MiB",
        size as f64 / secs / 1e6,
        peak >> 20
    );
    fdr_line(
        &dir.join("extra.jsonl"),
        "analyze.summary_1gib_bytes_per_sec",
        size as f64 / secs,
    )?;
    Ok(peak)
}

/// Builds the release `fdr` that the memory checks run: every command of a single trace,
/// Parquet export included, but not `fdr query` or the object stores (DataFusion's build
/// alone takes longer than the checks, and neither reads a single trace).
fn build_release_fdr() -> Result<std::path::PathBuf> {
    crate::run(cargo().args([
        "build",
        "--release",
        "-p",
        "fdr-cli",
        "--no-default-features",
        "--features",
        "fleet",
    ]))?;
    Ok(target_dir().join("release/fdr"))
}

/// Runs `cmd` (its output discarded) and returns its exit status and peak resident set
/// (VmHWM, sampled from /proc every 5 ms until it exits).
fn run_peak_rss(cmd: &mut std::process::Command) -> Result<(std::process::ExitStatus, u64)> {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = fs::read_to_string(&status_path)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    Ok((status, peak))
}

/// Target A2: writes a hostile trace of each `adversarial` shape (1 GiB each, or
/// `FDR_BENCH_ADVERSARIAL_MIB`), runs every `fdr` command on it, and returns the largest
/// peak resident set of any of them. Each command's peak is printed.
fn adversarial_peak_rss(dir: &Path) -> Result<u64> {
    const COMMANDS: usize = 15;
    use std::io::{BufWriter, Write};

    use fdr_test_support::adversarial::{Shape, write};
    let bin = build_release_fdr()?;
    let mib: u64 = std::env::var("FDR_BENCH_ADVERSARIAL_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let work = dir.join("adversarial");
    fs::create_dir_all(&work)?;
    let mut worst = (0u64, String::new());
    let started = std::time::Instant::now();
    for shape in Shape::ALL {
        let path = work.join(format!("{}.fdr", shape.name()));
        let t = std::time::Instant::now();
        let f = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = write(shape, BufWriter::new(f), mib << 20)?;
        w.flush()?;
        drop(w);
        let size = fs::metadata(&path)?.len();
        eprintln!(
            "generated {} ({size} bytes) in {:.1?}",
            path.display(),
            t.elapsed()
        );
        let p = path.to_str().context("non-UTF-8 path")?;
        // The exports of a 1 GiB trace of two-byte events run to tens of gigabytes: they
        // are written to /dev/null, as cat's output is.
        let html = work.join("report.html").to_string_lossy().into_owned();
        let (json, pf) = ("/dev/null", "/dev/null");
        // The Parquet tables are files in a directory, emptied after each shape.
        let tables = work.join("parquet");
        let tables = tables.to_str().context("non-UTF-8 path")?;
        let commands: [Vec<&str>; COMMANDS] = [
            vec!["summary", p],
            vec!["tasks", p],
            vec!["tasks", "--alive", p],
            vec!["waits", p],
            vec!["regions", p],
            vec!["blocking", p],
            vec!["sched", p],
            vec!["diagnose", p],
            vec!["diff", p, p],
            vec!["report", "-o", &html, p],
            vec!["cat", p],
            vec!["export", "--format", "chrome-json", "-o", json, p],
            vec!["export", "--format", "perfetto", "-o", pf, p],
            vec!["export", "--format", "pprof", "--long-scopes", "-o", pf, p],
            vec!["export", "--format", "parquet", "-o", tables, p],
        ];
        for args in commands {
            let t = std::time::Instant::now();
            let ran = run_peak_rss(std::process::Command::new(&bin).args(&args));
            let peak = match ran {
                Ok((status, peak)) if status.success() => peak,
                // The gigabyte trace goes either way.
                Ok((status, _)) => {
                    let _ = fs::remove_file(&path);
                    anyhow::bail!("fdr {args:?} failed: {status}");
                }
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    return Err(e);
                }
            };
            // The command without the trace's path, which every line would repeat.
            let shown: Vec<&str> = args.iter().copied().filter(|a| *a != p).collect();
            eprintln!(
                "{:<12} fdr {:<40}: peak RSS {:>4} MiB in {:.1?}",
                shape.name(),
                shown.join(" "),
                peak >> 20,
                t.elapsed()
            );
            if peak > worst.0 {
                worst = (peak, format!("{} {}", shape.name(), args.join(" ")));
            }
        }
        let _ = fs::remove_file(&path);
        let _ = fs::remove_dir_all(tables);
    }
    eprintln!(
        "largest peak RSS on hostile traces: {} MiB (fdr {}); {} commands on {} traces of {mib} MiB in {:.0?}",
        worst.0 >> 20,
        worst.1,
        Shape::ALL.len() * COMMANDS,
        Shape::ALL.len(),
        started.elapsed()
    );
    Ok(worst.0)
}
