//! `cargo xtask fuzz [--target decode|analyze] [--seconds N] [--jobs J]`: a fuzz target
//! under libFuzzer (cargo-fuzz).
//!
//! Installs cargo-fuzz if it is missing, seeds `fuzz/corpus/TARGET` with small sample
//! traces (and, for `analyze`, small hostile traces of every `adversarial` shape), runs
//! `fuzz/fuzz_targets/TARGET.rs` for N seconds on the stable toolchain
//! (`RUSTC_BOOTSTRAP=1`: cargo-fuzz passes nightly-only flags), prints how many inputs
//! were executed, and fails on any crash, leak, timeout (10 s per input) or memory-limit hit.
//! `decode` (the default) fuzzes the decoder; `analyze` runs the profile, diagnosis,
//! views, report, diff, summary, cat and both exports on each input, built without
//! comparison tracing (`--no-trace-compares`: edge coverage only, at about 2.4 times the
//! executions per CPU second).
//! The log is kept in `target/xtask/fuzz/TARGET.log`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use fdr_format::testing::{SampleSpec, every_kind_trace, sample_trace_with};

use crate::cli::FuzzTarget;
use crate::{cargo, root, target_dir};

pub(crate) fn run(target: FuzzTarget, seconds: u64, jobs: u32) -> Result<()> {
    let target = target.name();
    ensure_cargo_fuzz()?;
    let corpus = root().join("fuzz/corpus").join(target);
    write_seeds(&corpus)?;
    if target == "analyze" {
        write_hostile_seeds(&corpus)?;
    }
    let log_dir = target_dir().join("xtask/fuzz");
    fs::create_dir_all(&log_dir)?;
    let log_path = log_dir.join(format!("{target}.log"));

    let mut cmd = cargo();
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .args([
            "fuzz",
            "run",
            // The decoder crate forbids `unsafe`, so AddressSanitizer would only slow the
            // search; overflow checks and debug assertions stay on (cargo-fuzz's default),
            // and the target's own counting allocator enforces the memory bound.
            "--sanitizer",
            "none",
        ])
        // The analyzer target's inputs are whole traces whose framing the seeds and the
        // checksum repair already get right: comparison tracing (the operands of every
        // integer compare handed to libFuzzer) took nearly half of its CPU time in
        // callbacks alone, on analysis code whose branches edge coverage already steers;
        // without it an input costs about 2.4 times less. The decoder target keeps it.
        .args((target == "analyze").then_some("--no-trace-compares"))
        .arg(target)
        .arg(&corpus)
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048",
            "-timeout=10",
            "-print_final_stats=1",
        ])
        // Every analysis of an input costs far more than its decode: small inputs keep
        // the analyzer target's executions many.
        .args((target == "analyze").then_some("-max_len=8192"))
        .args(
            (jobs > 1)
                .then(|| [format!("-jobs={jobs}"), format!("-workers={jobs}")])
                .into_iter()
                .flatten(),
        )
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    eprintln!("$ {cmd:?}");
    let mut child = cmd.spawn().context("could not start cargo fuzz")?;
    let mut log = fs::File::create(&log_path)?;
    let mut executed = None;
    let stderr = child.stderr.take().context("no stderr")?;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        writeln!(log, "{line}")?;
        // Progress lines are many; show the ones worth seeing.
        if !line.starts_with('#') || line.contains("DONE") || line.contains("INITED") {
            eprintln!("{line}");
        }
        if let Some(n) = parse_executed(&line) {
            executed = Some(n);
        }
    }
    let status = child.wait()?;
    // With workers, the final stats are each worker's own, in its log.
    if jobs > 1 {
        executed = workers_executed(&root(), jobs).or(executed);
    }
    let artifacts = root().join("fuzz/artifacts").join(target);
    let crashes: Vec<_> = fs::read_dir(&artifacts)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    match executed {
        Some(n) => println!("fuzz {target}: {n} executions in {seconds} s"),
        None => println!("fuzz {target}: execution count not found in the log"),
    }
    if !status.success() {
        bail!(
            "fuzzing failed ({status}); see {} and {}",
            log_path.display(),
            artifacts.display()
        );
    }
    if !crashes.is_empty() {
        bail!("fuzzing left crash artifacts: {crashes:?}");
    }
    if executed.is_none() {
        bail!(
            "libFuzzer's final stats are missing; see {}",
            log_path.display()
        );
    }
    Ok(())
}

/// With `-jobs=J -workers=J`, libFuzzer's workers write their output to `fuzz-N.log` in the
/// directory it ran in: the inputs all of them executed, or `None` when a log or its count
/// is missing.
fn workers_executed(dir: &Path, jobs: u32) -> Option<u64> {
    (0..jobs)
        .map(|i| {
            let text = fs::read_to_string(dir.join(format!("fuzz-{i}.log"))).ok()?;
            text.lines().filter_map(parse_executed).next_back()
        })
        .sum()
}

/// The executed-input count from libFuzzer's final stats: `stat::number_of_executed_units: N`,
/// or its last status line, `#N DONE ...` / `Done N runs in S second(s)`.
fn parse_executed(line: &str) -> Option<u64> {
    if let Some(rest) = line.strip_prefix("stat::number_of_executed_units:") {
        return rest.trim().parse().ok();
    }
    if let Some(rest) = line.strip_prefix('#')
        && line.contains("DONE")
    {
        return rest.split_whitespace().next()?.parse().ok();
    }
    if let Some(rest) = line.strip_prefix("Done ") {
        return rest.split_whitespace().next()?.parse().ok();
    }
    None
}

fn ensure_cargo_fuzz() -> Result<()> {
    let found = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        crate::run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// Writes the seed inputs: small sample traces, and one trace with every event kind,
/// unknown sized kinds and records, and an inline log (also with a minor-1 file header).
fn write_seeds(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    let specs = [
        (1, 12, 96, 300, 1),
        (2, 40, 160, 300, 2),
        (2, 120, 512, 3000, 3),
    ];
    for (threads, events_per_thread, batch_bytes, spacing_ticks, seed) in specs {
        let bytes = sample_trace_with(SampleSpec {
            threads,
            events_per_thread,
            batch_bytes,
            spacing_ticks,
            seed,
        });
        fs::write(dir.join(format!("seed-sample-{seed}.fdr")), bytes)?;
    }
    fs::write(dir.join("seed-every-kind.fdr"), every_kind_trace())?;
    fs::write(
        dir.join("seed-every-kind-minor-1.fdr"),
        fdr_format::testing::every_kind_trace_minor_1(),
    )?;
    Ok(())
}

/// Seeds of the analyzer target: a small trace of every hostile shape but the two whose
/// smallest trace is megabytes.
fn write_hostile_seeds(dir: &Path) -> Result<()> {
    use fdr_test_support::adversarial::{Shape, build};
    for shape in Shape::ALL {
        if matches!(shape, Shape::LongStrings | Shape::BigBatches) {
            continue;
        }
        fs::write(
            dir.join(format!("seed-hostile-{}.fdr", shape.name())),
            build(shape, 2 << 10),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_counts_add_up_and_a_missing_one_is_none() {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("fuzz-0.log"),
            "#2 INITED\nDone 889739 runs in 781 second(s)\nstat::number_of_executed_units: 889739\n",
        )
        .unwrap();
        fs::write(dir.join("fuzz-1.log"), "#873049 DONE cov: 1\n").unwrap();
        assert_eq!(workers_executed(&dir, 2), Some(889_739 + 873_049));
        assert_eq!(workers_executed(&dir, 3), None);
        fs::write(dir.join("fuzz-1.log"), "#1 INITED\n").unwrap();
        assert_eq!(workers_executed(&dir, 2), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
