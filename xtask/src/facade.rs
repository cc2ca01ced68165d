//! The facade's checks, a step of `cargo xtask ci` (and `cargo xtask facade` alone):
//!
//! 1. the facade builds with each feature alone, and with none (`cargo check`, in the
//!    workspace's target directory);
//! 2. `fdr-sentinel` builds and reads a registry when the application's `prometheus` has its
//!    default features (`crates/fdr-sentinel/tests/prometheus-default`);
//! 3. a new application's integration, from the docs ([`crate::fresh`]);
//! 4. without `record` the recording calls compile to nothing: the compile-out program runs
//!    both ways, its dependency tree has no recorder, and its release binary has no recording
//!    function in it.
//!
//! The builds outside the workspace (2 to 4) share one target directory, [`outside_target`],
//! and each resolves from the workspace's `Cargo.lock` (copied in; theirs are not kept), so
//! they build the versions the workspace tests, and a dependency two of them resolve alike
//! (same version, same features) is built once; their debug builds carry no debug
//! information (nothing reads it; the workspace's own builds keep theirs). Only the
//! compiled-out program, whose symbols are the proof, is built in release: with `record` it
//! only has to compile and run, which a debug build shows (so the recorder is not built in
//! release here). Each part's wall time is printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fdr_test_support::tools;

use crate::{cargo, features, fresh, root, run, target_dir};

/// The target directory of the builds outside the workspace.
pub(crate) fn outside_target() -> PathBuf {
    target_dir().join("outside")
}

/// `cargo` for a build outside the workspace: in [`outside_target`], debug builds without
/// debug information.
pub(crate) fn outside_cargo() -> Command {
    let mut c = cargo();
    c.env("CARGO_TARGET_DIR", outside_target())
        .env("CARGO_PROFILE_DEV_DEBUG", "false");
    c
}

/// Runs every check, printing each part's wall time.
pub(crate) fn check() -> Result<()> {
    let mut times = Vec::new();
    let mut part = |name: &'static str, f: &dyn Fn() -> Result<()>| -> Result<()> {
        let began = Instant::now();
        let outcome = f();
        times.push(format!("{name} {:.1} s", began.elapsed().as_secs_f64()));
        eprintln!("facade: {}", times.join(", "));
        outcome
    };
    part("features alone", &features_alone)?;
    part("prometheus-default", &prometheus_default)?;
    part("fresh integration", &fresh::check)?;
    part("compile-out", &compile_out)
}

/// The facade with each feature alone (and none), but those that need a cfg:
/// `features::check_gated` builds them with it.
fn features_alone() -> Result<()> {
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
    Ok(())
}

/// The workspace's `Cargo.lock` copied beside the manifest of a crate outside the
/// workspace (cargo drops the entries it does not use), so it builds the versions the
/// workspace tests; the copy is ignored by git.
pub(crate) fn seed_lock(crate_dir: &Path) -> Result<()> {
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock"))
        .with_context(|| format!("copying Cargo.lock into {}", crate_dir.display()))?;
    Ok(())
}

/// An application depending on `prometheus` with its default features unifies `protobuf`
/// on, which swaps the types a registry gathers: the sentinel must build and read them.
fn prometheus_default() -> Result<()> {
    let dir = root().join("crates/fdr-sentinel/tests/prometheus-default");
    seed_lock(&dir)?;
    run(outside_cargo()
        .args(["run", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml")))
}

/// The compile-out program with `record` (debug: it compiles and runs) and without it
/// (release: its symbols are the proof), its dependency tree, its symbols.
fn compile_out() -> Result<()> {
    let dir = root().join("crates/fdr/tests/compile-out");
    seed_lock(&dir)?;
    let proof = dir.join("Cargo.toml");
    let manifest_arg = proof.to_str().context("non-UTF-8 path")?;
    run(outside_cargo().args([
        "--quiet",
        "run",
        "--manifest-path",
        manifest_arg,
        "--features",
        "record",
    ]))?;
    run(outside_cargo().args([
        "--quiet",
        "run",
        "--release",
        "--manifest-path",
        manifest_arg,
    ]))?;
    let tree = cargo()
        .args(["tree", "-e", "normal", "--manifest-path", manifest_arg])
        .output()?;
    let tree = String::from_utf8_lossy(&tree.stdout);
    if tree.contains("fdr-recorder") {
        bail!("without `record`, fdr still depends on fdr-recorder:\n{tree}");
    }
    let binary = outside_target().join("release/fdr-compile-out");
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
            Ok(())
        }
        Ok(out) => bail!(
            "compile-out: `nm -C {}` failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => bail!("compile-out: could not run `nm`: {e}"),
    }
}
