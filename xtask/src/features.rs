//! Features that need a `--cfg` as well (tokio's unstable hooks need `--cfg tokio_unstable`):
//! a member lists them under `[package.metadata.fdr] cfg-gated-features = { feature = "cfg" }`.
//!
//! Such a feature fails the build on purpose without its cfg, so `--all-features` cannot
//! build the workspace. `cargo xtask ci` builds every other feature of every member instead,
//! then tests each gated feature with its cfg (in its own target directory, so the changed
//! `RUSTFLAGS` do not rebuild the main one), and checks that without the cfg it fails with a
//! message naming the cfg.

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

/// Tests a gated feature with its cfg, and checks that it fails without it, saying why.
pub(crate) fn check_gated(g: &Gated) -> Result<()> {
    let flags = format!("--cfg {}", g.cfg);
    run(cargo()
        .args(["test", "-p", &g.package, "--features", &g.feature])
        .env("RUSTFLAGS", &flags)
        .env("RUSTDOCFLAGS", &flags)
        .env(
            "CARGO_TARGET_DIR",
            target_dir().join(format!("cfg-{}", g.cfg)),
        ))?;
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
