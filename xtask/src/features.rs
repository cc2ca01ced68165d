//! Features that need a `--cfg` as well (tokio's unstable hooks need `--cfg tokio_unstable`):
//! a member lists them under `[package.metadata.fdr] cfg-gated-features = { feature = "cfg" }`.
//!
//! Such a feature fails the build on purpose without its cfg, so `--all-features` cannot
//! build the workspace. `cargo xtask ci` builds every other feature of every member instead,
//! then tests the gated features with their cfg (one `cargo test` per cfg, in a target
//! directory of its own, so the changed `RUSTFLAGS` do not rebuild the main one), and checks
//! that without the cfg each fails with a message naming the cfg.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, run, target_dir};

/// A feature that needs a cfg.
pub(crate) struct Gated {
    pub(crate) package: String,
    pub(crate) feature: String,
    pub(crate) cfg: String,
}

/// The workspace's features: every feature but the gated ones (as `package/feature`), and
/// the gated ones.
pub(crate) fn workspace_features() -> Result<(Vec<String>, Vec<Gated>)> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("cargo metadata output")?;
    let mut plain = Vec::new();
    let mut gated = Vec::new();
    for p in v["packages"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        let gates = &p["metadata"]["fdr"]["cfg-gated-features"];
        for feature in p["features"].as_object().into_iter().flat_map(|f| f.keys()) {
            match gates[feature].as_str() {
                Some(cfg) => gated.push(Gated {
                    package: name.into(),
                    feature: feature.clone(),
                    cfg: cfg.into(),
                }),
                None => plain.push(format!("{name}/{feature}")),
            }
        }
    }
    Ok((plain, gated))
}

/// Tests the gated features with their cfg, and checks that each fails without it, saying
/// why. The features sharing a cfg are tested in one `cargo test` over their packages, so
/// the dependencies they share (the recorder, tokio) are built once, with the features
/// unified, rather than once per package.
pub(crate) fn check_gated(gated: &[Gated]) -> Result<()> {
    let mut cfgs: Vec<&str> = gated.iter().map(|g| g.cfg.as_str()).collect();
    cfgs.sort_unstable();
    cfgs.dedup();
    for cfg in cfgs {
        let flags = format!("--cfg {cfg}");
        let mut test = cargo();
        test.arg("test");
        let mut features = Vec::new();
        for g in gated.iter().filter(|g| g.cfg == cfg) {
            test.args(["-p", &g.package]);
            features.push(format!("{}/{}", g.package, g.feature));
        }
        run(test
            .args(["--features", &features.join(",")])
            .env("RUSTFLAGS", &flags)
            .env("RUSTDOCFLAGS", &flags)
            .env("CARGO_TARGET_DIR", target_dir().join(format!("cfg-{cfg}"))))?;
    }
    for g in gated {
        fails_without_cfg(g)?;
    }
    Ok(())
}

/// Checks that a gated feature fails to build without its cfg, with a message naming it.
fn fails_without_cfg(g: &Gated) -> Result<()> {
    let flags = format!("--cfg {}", g.cfg);
    let out = cargo()
        .args(["check", "-p", &g.package, "--features", &g.feature])
        .output()
        .context("could not run cargo check")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains(&flags) {
        bail!(
            "{}'s feature `{}` must fail to build without `{flags}` and say so; got: {stderr}",
            g.package,
            g.feature
        );
    }
    eprintln!(
        "xtask ci: {}/{} fails without `{flags}`, as it should",
        g.package, g.feature
    );
    Ok(())
}
