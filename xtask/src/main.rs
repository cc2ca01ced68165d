//! `cargo xtask <verb>`: the project's automation, in Rust so it runs wherever cargo does.
//! The verbs and their options are declared in `cli.rs`.
//!
//! - `ci`: everything CI checks (fmt, clippy, tests, docs, the recorder's loom models), with
//!   every feature; features that also need a cfg are tested apart, with it (see `features.rs`).
//! - `bench`: runs the benches, writes `target/xtask/bench/summary.json`, compares with the previous run.
//! - `demo`: the README's first command.
//! - `axum-service`: examples/axum-service under load, its fault, the incident, the diagnosis
//!   (a step of `ci`; see `axum_service.rs`).
//! - `fresh-integration`: the example built outside the workspace from the docs' dependency
//!   list (a step of `ci`; see `fresh.rs`).
//! - `fuzz [--target decode|analyze] --seconds N`: fuzzes the trace decoder or the analyzer.
//! - `tidy`: the repository checks that also run as tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use fdr_test_support::tools;

use crate::cli::Verb;

mod axum_service;
mod bench;
mod cli;
mod features;
mod fresh;
mod fuzz;
mod steps;

fn main() -> Result<()> {
    use clap::Parser;
    match cli::Xtask::parse().verb {
        Verb::Ci => ci(),
        Verb::Bench { filter } => bench::run(filter.as_deref()),
        Verb::Demo { args } => demo(&args),
        Verb::AxumService => axum_service::standalone(),
        Verb::FreshIntegration => fresh::check(),
        Verb::Fuzz {
            target,
            seconds,
            jobs,
        } => fuzz::run(target, seconds, jobs),
        Verb::Tidy => run(cargo().args(["test", "-p", "xtask", "--", "tidy"])),
    }
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .into()
}

/// The target directory cargo uses for this workspace.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// `cargo` in the workspace root.
pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, failing with its command line if it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let line = format!("{cmd:?}");
    eprintln!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {line}"))?;
    if !status.success() {
        bail!("{line} failed: {status}");
    }
    Ok(())
}

fn ci() -> Result<()> {
    let mut steps = steps::Steps::new();
    steps.run("tools", || {
        ensure_chromium()?;
        ensure_pip();
        ensure_profile_proto();
        ensure_openssl();
        Ok(())
    })?;
    // Every feature but those that also need a cfg (see features.rs), which follow.
    let (plain, gated) = features::workspace_features()?;
    let all_features = ["--features".to_string(), plain.join(",")];
    steps.run("fmt", || run(cargo().args(["fmt", "--all", "--check"])))?;
    steps.run("clippy", || {
        run(cargo()
            .args(["clippy", "--workspace", "--all-targets"])
            .args(&all_features)
            .args(["--", "-D", "warnings"]))
    })?;
    steps.run("facade", facade_checks)?;
    steps.run("test", || {
        run(cargo().args(["test", "--workspace"]).args(&all_features))
    })?;
    steps.run("axum-service", || axum_service::check(&all_features))?;
    steps.run("doc", || {
        run(cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .args(&all_features)
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    // Loom models of the recorder's protocols (unit tests under `--cfg loom`, inside the
    // crate, where they drive its own `ChunkWriter`), in their own target dir so the
    // `--cfg loom` build does not invalidate the normal one; preemptions bounded to keep
    // this step to a few minutes.
    steps.run("loom", || {
        run(cargo()
            .args(["test", "-p", "fdr-recorder", "--release", "--lib"])
            .env("RUSTFLAGS", "--cfg loom")
            .env("LOOM_MAX_PREEMPTIONS", "3")
            .env("CARGO_TARGET_DIR", target_dir().join("loom")))
    })?;
    steps.run("gated", || features::check_gated(&gated))?;
    eprintln!("{}", steps.table());
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// The HTML report test renders the page in Debian's headless Chromium: install it when
/// missing; CI fails here, saying so, when it cannot be installed (the test would fail too).
fn ensure_chromium() -> Result<()> {
    let have = |c: &str| tools::runs(c, &["--version"]);
    if have("chromium") {
        return Ok(());
    }
    eprintln!("xtask ci: installing chromium for the report test");
    if !tools::apt_install("chromium") || !have("chromium") {
        bail!(
            "xtask ci: could not install chromium (apt-get install chromium); the HTML report test needs it"
        );
    }
    Ok(())
}

/// The Perfetto-export, S3-store and Parquet (DuckDB) tests pip-install their Python packages:
/// make sure pip is there.
fn ensure_pip() {
    if tools::have_pip() {
        return;
    }
    eprintln!("xtask ci: installing python3-pip for the Perfetto, S3 and Parquet tests");
    if !tools::apt_install("python3-pip") {
        eprintln!("xtask ci: could not install python3-pip; those tests will fail under CI");
    }
}

/// The pprof tests decode profiles with classes generated from the published
/// `profile.proto`, which Debian's golang-github-google-pprof-dev ships: install it when
/// missing (the tests fail, saying so, without it).
fn ensure_profile_proto() {
    let proto = "/usr/share/gocode/src/github.com/google/pprof/proto/profile.proto";
    if Path::new(proto).is_file() {
        return;
    }
    eprintln!("xtask ci: installing golang-github-google-pprof-dev for the pprof tests");
    if !tools::apt_install("golang-github-google-pprof-dev") {
        eprintln!(
            "xtask ci: could not install golang-github-google-pprof-dev; the pprof tests will fail under CI"
        );
    }
}

/// The bucket store's TLS tests make their CA with the `openssl` command: install it when
/// missing (the tests fail, saying so, without it).
fn ensure_openssl() {
    if tools::runs("openssl", &["version"]) {
        return;
    }
    eprintln!("xtask ci: installing openssl for the bucket store's TLS tests");
    if !tools::apt_install("openssl") {
        eprintln!("xtask ci: could not install openssl; the TLS tests will fail under CI");
    }
}

/// Builds the facade with each feature alone (and none), then proves that without `record`
/// the recording calls compile to nothing: the compile-out crate runs both ways, its
/// dependency tree has no recorder, and its binary has no recording function in it.
fn facade_checks() -> Result<()> {
    let manifest = std::fs::read_to_string(root().join("crates/fdr/Cargo.toml"))?;
    let features = manifest
        .split("[features]")
        .nth(1)
        .context("crates/fdr/Cargo.toml has no [features]")?
        .split("\n[")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty() && !k.starts_with('#') && k != "default")
        .collect::<Vec<_>>();
    // A feature that needs a cfg fails without it, on purpose; `features::check_gated` builds
    // it with its cfg.
    let (_, gated) = features::workspace_features()?;
    let features = features
        .into_iter()
        .filter(|f| !gated.iter().any(|g| g.package == "fdr" && g.feature == *f))
        .collect::<Vec<_>>();
    run(cargo().args(["check", "-p", "fdr", "--no-default-features"]))?;
    for f in &features {
        run(cargo().args([
            "check",
            "-p",
            "fdr",
            "--no-default-features",
            "--features",
            f,
        ]))?;
    }
    // An application depending on `prometheus` with its default features unifies `protobuf`
    // on, which swaps the types a registry gathers: the sentinel must build and read them.
    let prometheus_default = root().join("crates/fdr-sentinel/tests/prometheus-default/Cargo.toml");
    run(cargo()
        .env("CARGO_TARGET_DIR", fresh::shared_target())
        .args(["run", "--quiet", "--manifest-path"])
        .arg(&prometheus_default))?;
    // A new application's integration, outside the workspace, from the docs (fresh.rs).
    fresh::check()?;
    let proof = root().join("crates/fdr/tests/compile-out/Cargo.toml");
    let target = target_dir().join("compile-out");
    let proof_cargo = || {
        let mut c = cargo();
        c.env("CARGO_TARGET_DIR", &target).arg("--quiet");
        c
    };
    let manifest_arg = proof.to_str().context("non-UTF-8 path")?;
    run(proof_cargo().args([
        "run",
        "--release",
        "--manifest-path",
        manifest_arg,
        "--features",
        "record",
    ]))?;
    run(proof_cargo().args(["run", "--release", "--manifest-path", manifest_arg]))?;
    let tree = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["tree", "-e", "normal", "--manifest-path", manifest_arg])
        .output()?;
    let tree = String::from_utf8_lossy(&tree.stdout);
    if tree.contains("fdr-recorder") {
        bail!("without `record`, fdr still depends on fdr-recorder:\n{tree}");
    }
    let binary = target.join("release/fdr-compile-out");
    // The symbol check needs `nm` (binutils): install it when missing, and fail, not skip,
    // when it cannot run.
    if !tools::runs("nm", &["--version"]) && !tools::apt_install("binutils") {
        bail!(
            "compile-out: `nm` is missing and binutils could not be installed (apt-get install binutils)"
        );
    }
    let nm = Command::new("nm").arg("-C").arg(&binary).output();
    match nm {
        Ok(out) if out.status.success() => {
            let symbols = String::from_utf8_lossy(&out.stdout);
            let leftovers: Vec<&str> = symbols
                .lines()
                .filter(|l| {
                    l.contains("fdr_recorder")
                        || ["region", "task", "log", "with_region", "async_region"]
                            .iter()
                            .any(|f| l.ends_with(&format!("fdr::off::{f}")))
                })
                .collect();
            if !leftovers.is_empty() {
                bail!(
                    "recording code left in the compiled-out binary:\n{}",
                    leftovers.join("\n")
                );
            }
            eprintln!("compile-out: no recording code in {}", binary.display());
        }
        Ok(out) => bail!(
            "compile-out: `nm -C {}` failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => bail!("compile-out: could not run `nm`: {e}"),
    }
    Ok(())
}

/// The README's first command: builds the demo and the `fdr` CLI, runs the demo service
/// under load with a fault injected, and prints the diagnosis of its flight-recorder dump.
fn demo(args: &[String]) -> Result<()> {
    // Without the CLI's object stores (`buckets`): the demo reads a local dump, and stays
    // a quick build.
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "fdr-demo",
        "-p",
        "fdr-cli",
        "--no-default-features",
    ]))?;
    let release = target_dir().join("release");
    let out = target_dir().join("fdr-demo");
    let rel = |p: &Path| p.strip_prefix(root()).unwrap_or(p).to_path_buf();
    let mut cmd = Command::new(release.join("fdr-demo"));
    cmd.current_dir(root())
        .arg("--out")
        .arg(rel(&out))
        .arg("--fdr")
        .arg(rel(&release.join("fdr")))
        .args(args);
    run(&mut cmd)
}

#[cfg(test)]
mod tidy;
