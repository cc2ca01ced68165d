//! Features that need a `--cfg` as well (tokio's unstable hooks need `--cfg tokio_unstable`):
//! a member lists them under `[package.metadata.fdr] cfg-gated-features = { feature = "cfg" }`.
//!
//! Such a feature fails the build on purpose without its cfg, so `--all-features` cannot
//! build the workspace. `cargo xtask ci` builds every other feature of every member instead,
//! then tests the gated features with their cfg (one `cargo test` per cfg, in a target
//! directory of its own, so the changed `RUSTFLAGS` do not rebuild the main one), and checks
//! that without the cfg each fails with a message naming the cfg.
//!
//! A member can also be left out of CI altogether (`[package.metadata.fdr] left-out-of-ci =
//! "why"`, for a build CI does not pay for): the workspace is then built with `--exclude` it
//! and without the features of other members that turn it on.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, run, target_dir};

/// A feature that needs a cfg.
pub(crate) struct Gated {
    pub(crate) package: String,
    pub(crate) feature: String,
    pub(crate) cfg: String,
}

/// What `cargo xtask ci` builds of the workspace.
pub(crate) struct Workspace {
    /// Every feature (as `package/feature`) but the gated ones and those that reach a
    /// member left out.
    pub(crate) plain: Vec<String>,
    /// The features that need a cfg.
    pub(crate) gated: Vec<Gated>,
    /// The members a manifest leaves out of CI (`[package.metadata.fdr] left-out-of-ci =
    /// "why"`): CI builds the workspace without them, and without the features of other
    /// members that turn them on.
    pub(crate) left_out: Vec<String>,
}

impl Workspace {
    /// `cargo build --workspace`'s arguments for this selection: the plain features, and an
    /// `--exclude` for each member left out.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = vec!["--features".to_string(), self.plain.join(",")];
        for p in &self.left_out {
            args.extend(["--exclude".to_string(), p.clone()]);
        }
        args
    }
}

/// The workspace's members and features, as CI builds them.
pub(crate) fn workspace_features() -> Result<Workspace> {
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
    let packages: Vec<&Value> = v["packages"].as_array().into_iter().flatten().collect();
    let left_out: Vec<String> = packages
        .iter()
        .filter(|p| p["metadata"]["fdr"]["left-out-of-ci"].is_string())
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let mut plain = Vec::new();
    let mut gated = Vec::new();
    for p in &packages {
        let name = p["name"].as_str().unwrap_or_default();
        if left_out.iter().any(|l| l == name) {
            continue;
        }
        let gates = &p["metadata"]["fdr"]["cfg-gated-features"];
        let features = &p["features"];
        for feature in features.as_object().into_iter().flat_map(|f| f.keys()) {
            if reaches(features, feature, &left_out) {
                continue;
            }
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
    Ok(Workspace {
        plain,
        gated,
        left_out,
    })
}

impl Workspace {
    /// Downloads the host's locked packages when a member is left out: the builds do not
    /// fetch what only it uses, and the tidy check of `rust-version`s reads every locked
    /// package's manifest offline.
    pub(crate) fn fetch_left_out(&self) -> Result<()> {
        if self.left_out.is_empty() {
            return Ok(());
        }
        let rustc = std::process::Command::new("rustc")
            .arg("-vV")
            .output()
            .context("could not run rustc -vV")?;
        let host = String::from_utf8_lossy(&rustc.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .context("rustc -vV names no host")?;
        run(cargo().args(["fetch", "--locked", "--target", &host]))
    }
}

/// Whether `feature` of a package (its `features` table) turns on one of `packages`
/// (`dep:NAME`, `NAME/feature`, `NAME?/feature`), itself or through its other features.
fn reaches(features: &Value, feature: &str, packages: &[String]) -> bool {
    let mut seen = vec![feature.to_owned()];
    let mut i = 0;
    // Bounded: each of the package's features is visited at most once.
    while i < seen.len() {
        for item in features[&seen[i]].as_array().into_iter().flatten() {
            let item = item.as_str().unwrap_or_default();
            let dep = item
                .strip_prefix("dep:")
                .or_else(|| item.split_once('/').map(|(d, _)| d.trim_end_matches('?')));
            if dep.is_some_and(|d| packages.iter().any(|p| p == d)) {
                return true;
            }
            if dep.is_none() && features[item].is_array() && !seen.iter().any(|s| s == item) {
                seen.push(item.to_owned());
            }
        }
        i += 1;
    }
    false
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

#[cfg(test)]
mod tests {
    use super::reaches;

    /// A feature reaches a left-out package by `dep:`, `NAME/feature` or `NAME?/feature`,
    /// itself or through the package's other features; the others do not.
    #[test]
    fn a_feature_reaches_a_package_directly_or_through_others() {
        let features = serde_json::json!({
            "default": ["buckets", "fleet"],
            "fleet": ["dep:fdr-fleet"],
            "query": ["fleet", "dep:fdr-query"],
            "all": ["query"],
            "weak": ["fdr-query?/x"],
            "strong": ["fdr-query/x"],
            "buckets": ["fdr-sentinel/aws"],
            "cycle": ["cycle2"],
            "cycle2": ["cycle"],
        });
        let left_out = ["fdr-query".to_string()];
        for f in ["query", "all", "weak", "strong"] {
            assert!(reaches(&features, f, &left_out), "{f}");
        }
        for f in ["default", "fleet", "buckets", "cycle", "absent"] {
            assert!(!reaches(&features, f, &left_out), "{f}");
        }
    }
}
