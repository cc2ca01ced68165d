//! `cargo xtask fuzz --seconds N`: the decoder fuzz target under libFuzzer (cargo-fuzz).
//!
//! Installs cargo-fuzz if it is missing, seeds `fuzz/corpus/decode` with small sample
//! traces, runs `fuzz/fuzz_targets/decode.rs` for N seconds on the stable toolchain
//! (`RUSTC_BOOTSTRAP=1`: cargo-fuzz passes nightly-only flags), prints how many inputs
//! were executed, and fails on any crash, leak, timeout or memory-limit hit.
//! The log is kept in `target/xtask/fuzz/decode.log`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use fdr_format::testing::{SampleSpec, every_kind_trace, sample_trace_with};

use crate::{cargo, root, target_dir};

const TARGET: &str = "decode";

pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().context("--seconds needs a value")?;
                seconds = v.parse().with_context(|| format!("bad --seconds {v}"))?;
            }
            other => bail!("unknown fuzz option `{other}` (usage: cargo xtask fuzz --seconds N)"),
        }
    }
    ensure_cargo_fuzz()?;
    let corpus = root().join("fuzz/corpus").join(TARGET);
    write_seeds(&corpus)?;
    let log_dir = target_dir().join("xtask/fuzz");
    fs::create_dir_all(&log_dir)?;
    let log_path = log_dir.join(format!("{TARGET}.log"));

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
            TARGET,
        ])
        .arg(&corpus)
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048",
            "-timeout=10",
            "-print_final_stats=1",
        ])
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
    let artifacts = root().join("fuzz/artifacts").join(TARGET);
    let crashes: Vec<_> = fs::read_dir(&artifacts)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    match executed {
        Some(n) => println!("fuzz {TARGET}: {n} executions in {seconds} s"),
        None => println!("fuzz {TARGET}: execution count not found in the log"),
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
/// unknown sized kinds and records, and an inline log.
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
    Ok(())
}
