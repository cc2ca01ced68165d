//! `cargo xtask <verb>`: the project's automation, in Rust so it runs wherever cargo does.
//! The verbs and their options are declared in `cli.rs`.
//!
//! - `ci`: everything CI checks (fmt, clippy, tests (two test binaries at a time, see
//!   `test_step.rs`), docs, the recorder's loom models), with every feature; features
//!   that also need a cfg are tested apart, with it (see `features.rs`).
//! - `bench`: runs the benches, writes `target/xtask/bench/summary.json`, compares with the previous run.
//! - `demo`: the README's first command.
//! - `axum-service`: examples/axum-service under load, its fault, the incident, the diagnosis
//!   (a step of `ci`; see `axum_service.rs`).
//! - `fresh-integration`: the example built outside the workspace from the docs' dependency
//!   list (part of `ci`'s facade step; see `fresh.rs`).
//! - `facade`: the facade with each feature, the builds outside the workspace, the compile-out
//!   proof (a step of `ci`; see `facade.rs`).
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
mod facade;
mod features;
mod fresh;
mod fuzz;
mod python;
mod steps;
mod test_step;

fn main() -> Result<()> {
    use clap::Parser;
    match cli::Xtask::parse().verb {
        Verb::Ci => ci(),
        Verb::Bench { filter } => bench::run(filter.as_deref()),
        Verb::Demo { args } => demo(&args),
        Verb::AxumService => axum_service::standalone(),
        Verb::FreshIntegration => fresh::check(),
        Verb::Facade => facade::check(),
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
    // The tests' Python packages install while clippy and the facade build.
    let python = python::prefetch();
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
    steps.run("facade", facade::check)?;
    steps.run("python", || python.wait())?;
    // Two test binaries at a time: many spend most of their time in one long test.
    steps.run("test", || test_step::run_all(&all_features, 2))?;
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
