//! A fresh integration, as a new user makes one: a crate outside the workspace whose
//! dependencies are exactly those docs/OPERATIONS.md lists for an application ("The axum
//! example", the path to fdr aside), with the axum example's sources, must build on the
//! first try. Outside the workspace nothing unifies into it: no feature another member turns
//! on, no dependency the workspace pins, so a feature the docs forget, a version they get
//! wrong (OpenTelemetry's above all) or a build that breaks with `prometheus`'s default
//! features fails here.
//!
//! The docs' list must also be the example's own `[dependencies]`, so the walkthrough, the
//! example and this check cannot drift apart. The crate is built in a temporary directory
//! (removed afterwards) into the target directory of the facade step's other builds outside
//! the workspace ([`crate::facade::outside_target`]), so the dependencies they share are
//! built once; the workspace's `Cargo.lock` seeds its resolution, so the versions are those
//! CI already tests.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::facade::outside_cargo;
use crate::{root, run};

/// The placeholder path README.md and docs/OPERATIONS.md give for fdr.
const FDR_PLACEHOLDER: &str = "path/to/fdr/crates/fdr";
/// The heading of the section that lists the dependencies.
const SECTION: &str = "## The axum example";

/// A temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `[dependencies]` lines of the first ```toml block of the section, comments dropped.
fn documented_dependencies(ops: &str) -> Result<Vec<String>> {
    let section = ops
        .split(SECTION)
        .nth(1)
        .with_context(|| format!("docs/OPERATIONS.md has no `{SECTION}` section"))?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .with_context(|| format!("docs/OPERATIONS.md's `{SECTION}` has no ```toml block"))?;
    let deps = dependency_lines(block.split("[dependencies]").nth(1).with_context(|| {
        format!("docs/OPERATIONS.md's `{SECTION}` toml block has no [dependencies]")
    })?);
    ensure!(
        deps.iter().any(|d| d.contains(FDR_PLACEHOLDER)),
        "docs/OPERATIONS.md's dependencies must name fdr at `{FDR_PLACEHOLDER}`: {deps:?}"
    );
    Ok(deps)
}

/// Dependency lines (`name = ...`) up to the next table, without comments.
fn dependency_lines(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(|l| l.split(" #").next().unwrap_or(l).trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

pub(crate) fn check() -> Result<()> {
    let ops = std::fs::read_to_string(root().join("docs/OPERATIONS.md"))?;
    let documented = documented_dependencies(&ops)?;
    let example = root().join("examples/axum-service");
    let manifest = std::fs::read_to_string(example.join("Cargo.toml"))?;
    let own = dependency_lines(
        manifest
            .split("\n[dependencies]\n")
            .nth(1)
            .context("examples/axum-service/Cargo.toml has no [dependencies]")?,
    );
    let placeholder = |l: &str| l.replace("../../crates/fdr", FDR_PLACEHOLDER);
    let own: Vec<String> = own.iter().map(|l| placeholder(l)).collect();
    if own != documented {
        bail!(
            "docs/OPERATIONS.md (`{SECTION}`) and examples/axum-service/Cargo.toml list different dependencies:\n  docs:    {documented:?}\n  example: {own:?}"
        );
    }

    let dir =
        Scratch(std::env::temp_dir().join(format!("fdr-fresh-integration-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    copy_dir(&example.join("src"), &dir.0.join("src"))?;
    let fdr_path = root().join("crates/fdr");
    let fdr_path = fdr_path.to_str().context("non-UTF-8 workspace path")?;
    let deps = documented
        .iter()
        .map(|l| l.replace(FDR_PLACEHOLDER, fdr_path))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        dir.0.join("Cargo.toml"),
        format!(
            "[package]\nname = \"axum-service\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [workspace]\n\n[dependencies]\n{deps}\n"
        ),
    )?;
    crate::facade::seed_lock(&dir.0)?;
    eprintln!(
        "fresh integration: the axum example's sources in {} with docs/OPERATIONS.md's dependencies",
        dir.0.display()
    );
    let manifest = dir.0.join("Cargo.toml");
    run(outside_cargo()
        .args(["build", "--quiet", "--manifest-path"])
        .arg(&manifest))?;
    // It links and starts: its usage, from the binary just built.
    run(outside_cargo()
        .args(["run", "--quiet", "--bin", "axum-service", "--manifest-path"])
        .arg(&manifest)
        .args(["--", "--help"]))?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}
