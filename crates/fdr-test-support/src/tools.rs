//! The one installer of what checks need outside Rust: Debian packages for `cargo xtask ci`
//! and pinned Python packages for the tests that read fdr's output with an independent
//! decoder (Perfetto's classes, protobuf's pprof classes, moto's S3 server).
//!
//! Python packages go into a directory of the caller's choosing (a test's
//! `CARGO_TARGET_TMPDIR`), never outside `target/`: installed beside it, then renamed into
//! place, so a directory that exists is whole. A check that cannot have its tool fails,
//! saying what is missing; none passes without having run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `program args..` runs and exits with success.
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs a Debian package (`apt-get update`, then `apt-get install -y`, no questions
/// asked); whether it worked.
pub fn apt_install(package: &str) -> bool {
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    apt(&["update"]) && apt(&["install", "-y", package])
}

/// Whether `python3 -m pip` runs.
pub fn have_pip() -> bool {
    runs("python3", &["-m", "pip", "--version"])
}

/// Pinned Python packages a check imports, and how to tell they are there.
#[derive(Debug, Clone, Copy)]
pub struct PythonPackages<'a> {
    /// The directory's name under the parent given to [`PythonPackages::site_in`].
    pub dir_name: &'a str,
    /// pip requirements, each pinned (`name==version`).
    pub requirements: &'a [&'a str],
    /// Python code that succeeds only when the pinned versions import (run with
    /// `PYTHONPATH` set to the directory, so that other copies on the machine do not count).
    pub check: &'a str,
}

impl PythonPackages<'_> {
    /// Whether `site` holds the packages (their check passes with `PYTHONPATH=site`).
    pub fn present_in(&self, site: &Path) -> bool {
        Command::new("python3")
            .args(["-c", self.check])
            .env("PYTHONPATH", site)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The directory `parent/dir_name` holding the packages, pip-installed there when
    /// missing; an error says what failed (python3 missing, pip failing, the check failing
    /// after the install).
    pub fn site_in(&self, parent: &Path) -> Result<PathBuf, String> {
        let site = parent.join(self.dir_name);
        if self.present_in(&site) {
            return Ok(site);
        }
        // Of this process and thread: tests of several binaries, and threads of one, may
        // install at once; each moves a whole installation into place.
        let partial = parent.join(format!(
            "{}.partial-{}-{:?}",
            self.dir_name,
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&partial);
        let st = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--target",
            ])
            .arg(&partial)
            .args(self.requirements)
            .status()
            .map_err(|e| format!("python3 is not available: {e}"))?;
        if !st.success() {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(format!(
                "pip install {} failed: {st}",
                self.requirements.join(" ")
            ));
        }
        if self.present_in(&site) {
            // Another test put its installation in place meanwhile.
            let _ = std::fs::remove_dir_all(&partial);
            return Ok(site);
        }
        let _ = std::fs::remove_dir_all(&site);
        std::fs::rename(&partial, &site)
            .map_err(|e| format!("moving {} into place: {e}", partial.display()))?;
        if self.present_in(&site) {
            Ok(site)
        } else {
            Err(format!(
                "installed {} into {}, but `{}` fails",
                self.requirements.join(" "),
                site.display(),
                self.check
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_that_fails_is_not_present() {
        let p = PythonPackages {
            dir_name: "none",
            requirements: &[],
            check: "raise SystemExit(1)",
        };
        assert!(!p.present_in(Path::new(env!("CARGO_MANIFEST_DIR"))));
        assert!(!runs("/nonexistent/program", &[]));
    }
}
