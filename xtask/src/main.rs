//! `cargo xtask <verb>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `ci`: everything CI checks (fmt, clippy, tests, docs, the recorder's loom models).
//! - `bench`: runs the benches, writes `target/xtask/bench/summary.json`, compares with the previous run.
//! - `demo`: the README's first command.
//! - `fuzz --seconds N`: fuzzes the trace decoder.
//! - `tidy`: the repository checks that also run as tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod fuzz;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verb = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    match verb {
        "ci" => ci(),
        "bench" => bench::run(rest),
        "demo" => demo(rest),
        "fuzz" => fuzz::run(rest),
        "tidy" => run(cargo().args(["test", "-p", "xtask", "--", "tidy"])),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | bench [--filter NAME] | demo | fuzz [--seconds N] | tidy>"
            );
            if verb == "help" {
                Ok(())
            } else {
                bail!("unknown verb `{verb}`")
            }
        }
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
    let started = std::time::Instant::now();
    ensure_chromium();
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace", "--all-features"]))?;
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    // Loom models of the recorder's hand-off protocol, in their own target dir so the
    // `--cfg loom` build does not invalidate the normal one; preemptions bounded to keep
    // this step to a few minutes.
    run(cargo()
        .args(["test", "-p", "fdr-recorder", "--release", "--test", "loom"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("LOOM_MAX_PREEMPTIONS", "3")
        .env("CARGO_TARGET_DIR", target_dir().join("loom")))?;
    eprintln!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// The HTML report test renders the page in Debian's headless Chromium: install it when
/// missing (the test itself skips, saying why, only if installing is impossible).
fn ensure_chromium() {
    let have = |c: &str| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("chromium") {
        return;
    }
    eprintln!("xtask ci: installing chromium for the report test");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !(apt(&["update"]) && apt(&["install", "-y", "chromium"])) {
        eprintln!("xtask ci: could not install chromium; the report test will say it skipped");
    }
}

fn demo(_args: &[String]) -> Result<()> {
    bail!("the demo is not built yet: it arrives with the facade crate (crates/fdr)")
}

#[cfg(test)]
mod tidy;
