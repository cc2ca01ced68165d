//! The workspace's tests, a step of `cargo xtask ci`: what `cargo test --workspace` runs,
//! but with several test binaries at once.
//!
//! `cargo test` runs one test binary after another, and many of them spend most of their
//! time in one or two long tests (a service under load, the real `fdr` binary on a hostile
//! trace), so one core idles while they run. Here the binaries are built first (`cargo test
//! --no-run`, which lists them), then run `jobs` at a time, the slowest known ones first,
//! each as cargo would run it (from its package's directory, with cargo's package
//! variables); each one's output is printed whole when it ends, with its wall time. The
//! scenario suite runs alone after them ([`ALONE`]). The doc tests follow (`cargo test
//! --doc`). Every binary runs even when one fails; the step fails naming each failed binary.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, run, target_dir};

/// The binaries that take longest (package, target), started first so that the short ones
/// fill the other slots around them; only an order, whatever else exists runs after them.
const SLOWEST_FIRST: &[(&str, &str)] = &[
    ("fdr-cli", "memory"),
    ("fdr-analyzer", "analyzer"),
    ("fdr-admin", "attack"),
    ("fdr-sentinel", "sentinel"),
    ("fdr-admin", "capture"),
    ("fdr-recorder", "snapshots"),
    ("fdr-cli", "parquet"),
    ("fdr-format", "format"),
];

/// Binaries that run alone, after the others: the scenario suite diagnoses real services
/// under load, and a CPU-heavy binary beside it on a 2-core host makes the host's CPU
/// contention real enough to outrank the fault a scenario plants.
const ALONE: &[(&str, &str)] = &[("fdr-scenarios", "golden")];

/// One test binary.
#[derive(Debug, Clone)]
struct TestBinary {
    package: String,
    target: String,
    kind: String,
    executable: PathBuf,
    package_dir: PathBuf,
    version: String,
}

impl TestBinary {
    fn label(&self) -> String {
        format!("{} {} `{}`", self.package, self.kind, self.target)
    }

    /// Its place in the run: the slowest known first, then cargo's order.
    fn rank(&self) -> usize {
        SLOWEST_FIRST
            .iter()
            .position(|named| self.is(named))
            .unwrap_or(SLOWEST_FIRST.len())
    }

    /// Whether this is the binary `(package, target)`.
    fn is(&self, (package, target): &(&str, &str)) -> bool {
        self.package == *package && self.target == *target
    }
}

/// Builds every test binary of the workspace with `features` and runs them `jobs` at a
/// time, then the doc tests.
pub(crate) fn run_all(features: &[String], jobs: usize) -> Result<()> {
    let binaries = build(features)?;
    let failed = run_binaries(binaries, jobs)?;
    let doc = run(cargo()
        .args(["test", "--workspace", "--doc"])
        .args(features));
    if !failed.is_empty() {
        bail!("test binaries failed: {}", failed.join(", "));
    }
    doc
}

/// `cargo test --no-run`, and the test binaries it built.
fn build(features: &[String]) -> Result<Vec<TestBinary>> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--workspace",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ])
    .args(features)
    .stderr(Stdio::inherit());
    eprintln!("$ {cmd:?}");
    let out = cmd.output().context("could not run cargo test --no-run")?;
    if !out.status.success() {
        bail!("cargo test --no-run failed: {}", out.status);
    }
    let binaries = parse_artifacts(&String::from_utf8_lossy(&out.stdout))?;
    if binaries.is_empty() {
        bail!("cargo test --no-run listed no test binary");
    }
    Ok(binaries)
}

/// The test binaries among cargo's JSON messages.
fn parse_artifacts(messages: &str) -> Result<Vec<TestBinary>> {
    let mut binaries = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let m: Value = serde_json::from_str(line).with_context(|| format!("cargo said {line}"))?;
        if m["reason"] != "compiler-artifact" || m["profile"]["test"] != true {
            continue;
        }
        let Some(executable) = m["executable"].as_str() else {
            continue;
        };
        let manifest = m["manifest_path"]
            .as_str()
            .context("an artifact without manifest_path")?;
        // "path+file:///…/crates/fdr-cli#fdr-cli@0.1.0", or "…#0.1.0" when the
        // directory is the package's name.
        let id = m["package_id"].as_str().unwrap_or_default();
        let version = id.rsplit(['@', '#']).next().unwrap_or_default().to_string();
        let package_dir = Path::new(manifest)
            .parent()
            .context("a manifest path without a directory")?
            .to_path_buf();
        let package = package_name(id, &package_dir);
        binaries.push(TestBinary {
            package,
            target: m["target"]["name"].as_str().unwrap_or_default().into(),
            kind: m["target"]["kind"][0].as_str().unwrap_or_default().into(),
            executable: executable.into(),
            package_dir,
            version,
        });
    }
    Ok(binaries)
}

/// The package's name from its id (`…#name@version`), or its directory's name when the id
/// leaves it out (`…/name#version`).
fn package_name(id: &str, dir: &Path) -> String {
    match id.rsplit_once('#') {
        Some((_, tail)) if tail.contains('@') => tail.split('@').next().unwrap_or("").into(),
        _ => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

/// Runs the binaries `jobs` at a time, then those of [`ALONE`] one by one; returns the
/// labels of those that failed.
fn run_binaries(binaries: Vec<TestBinary>, jobs: usize) -> Result<Vec<String>> {
    let (alone, together): (Vec<_>, Vec<_>) = binaries
        .into_iter()
        .partition(|b| ALONE.iter().any(|named| b.is(named)));
    let mut failed = run_pool(together, jobs)?;
    failed.extend(run_pool(alone, 1)?);
    Ok(failed)
}

/// Runs the binaries `jobs` at a time; returns the labels of those that failed.
fn run_pool(mut binaries: Vec<TestBinary>, jobs: usize) -> Result<Vec<String>> {
    if binaries.is_empty() {
        return Ok(Vec::new());
    }
    binaries.sort_by_key(TestBinary::rank);
    let logs = target_dir().join("xtask/tests");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    eprintln!(
        "xtask ci: running {} test binaries, {jobs} at a time",
        binaries.len()
    );
    let queue = Arc::new(Mutex::new(VecDeque::from(binaries)));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|worker| {
            let (queue, failed, logs) = (queue.clone(), failed.clone(), logs.clone());
            std::thread::spawn(move || {
                loop {
                    let next = queue.lock().expect("queue").pop_front();
                    let Some(b) = next else { break };
                    let log = logs.join(format!("{worker}.log"));
                    if !run_one(&b, &log) {
                        failed.lock().expect("failed list").push(b.label());
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a test runner thread panicked"))?;
    }
    let failed = std::mem::take(&mut *failed.lock().expect("failed list"));
    Ok(failed)
}

/// Runs one binary as `cargo test` would, its output into `log`, then prints the log with
/// its outcome and wall time; true when it passed.
fn run_one(b: &TestBinary, log: &Path) -> bool {
    let began = Instant::now();
    let outcome = std::fs::File::create(log)
        .and_then(|f| {
            let err = f.try_clone()?;
            Command::new(&b.executable)
                .current_dir(&b.package_dir)
                .env("CARGO_MANIFEST_DIR", &b.package_dir)
                .env("CARGO_PKG_NAME", &b.package)
                .env("CARGO_PKG_VERSION", &b.version)
                .env("CARGO_CRATE_NAME", b.target.replace('-', "_"))
                .stdin(Stdio::null())
                .stdout(f)
                .stderr(err)
                .status()
        })
        .map_err(|e| format!("could not run {}: {e}", b.executable.display()));
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let took = began.elapsed().as_secs_f64();
    let (ok, verdict) = match outcome {
        Ok(s) if s.success() => (true, "passed".to_string()),
        Ok(s) => (false, format!("FAILED ({s})")),
        Err(why) => (false, format!("FAILED: {why}")),
    };
    // One write, so two binaries ending together do not interleave.
    eprint!(
        "     Running {} ({})\n{text}xtask ci: {} {verdict} in {took:.1} s\n",
        b.label(),
        b.executable.display(),
        b.label()
    );
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binaries_are_read_from_cargos_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/fdr-cli#0.1.0","manifest_path":"/w/crates/fdr-cli/Cargo.toml","target":{"kind":["test"],"name":"memory"},"profile":{"test":true},"executable":"/w/target/debug/deps/memory-1"}"#,
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/benches#fdr-benches@0.2.0","manifest_path":"/w/benches/Cargo.toml","target":{"kind":["lib"],"name":"fdr_benches"},"profile":{"test":true},"executable":"/w/target/debug/deps/fdr_benches-2"}"#,
            // A library built for the tests, not a test: skipped.
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/fdr-format#0.1.0","manifest_path":"/w/crates/fdr-format/Cargo.toml","target":{"kind":["lib"],"name":"fdr_format"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"build-finished","success":true}"#,
            "   Compiling something",
        ]
        .join("\n");
        let b = parse_artifacts(&messages).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            (
                b[0].package.as_str(),
                b[0].target.as_str(),
                b[0].kind.as_str()
            ),
            ("fdr-cli", "memory", "test")
        );
        assert_eq!(b[0].version, "0.1.0");
        assert_eq!(b[0].package_dir, Path::new("/w/crates/fdr-cli"));
        assert_eq!(b[0].rank(), 0);
        assert_eq!(
            (b[1].package.as_str(), b[1].version.as_str()),
            ("fdr-benches", "0.2.0")
        );
        assert_eq!(b[1].rank(), SLOWEST_FIRST.len());
    }

    #[test]
    fn every_binary_runs_and_each_failure_is_named() {
        let dir = target_dir().join("xtask/tests-self-test");
        std::fs::create_dir_all(&dir).unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            TestBinary {
                package: "p".into(),
                target: name.into(),
                kind: "test".into(),
                executable: p,
                package_dir: dir.clone(),
                version: "1.0.0".into(),
            }
        };
        let binaries = vec![
            script("fails", "echo broken; exit 3"),
            script(
                "passes",
                "test \"$CARGO_PKG_NAME\" = p && test \"$(pwd)\" = \"$CARGO_MANIFEST_DIR\"",
            ),
            script("also-fails", "exit 1"),
            script("also-passes", "true"),
        ];
        let mut failed = run_binaries(binaries, 2).unwrap();
        failed.sort();
        assert_eq!(failed, ["p test `also-fails`", "p test `fails`"]);
    }
}
