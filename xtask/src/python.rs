//! The tests' pinned Python packages ([`fdr_test_support::python::ALL`]), installed by
//! `cargo xtask ci` on a thread of their own while it builds, into the directory the tests
//! look in (`CARGO_TARGET_TMPDIR`, the target directory's `tmp`): pip mostly waits on
//! PyPI, which then overlaps the compiling instead of adding to the test step.
//!
//! The `python` step waits for the thread before the tests start (two installs into one
//! directory at once would race). A set that failed to install is only reported here: the
//! test that needs it installs it again and fails, saying what is missing.

use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Result, anyhow};
use fdr_test_support::python::ALL;

use crate::target_dir;

/// The installs under way.
pub(crate) struct Prefetch(JoinHandle<Vec<String>>);

/// Starts installing every set that is not in place yet.
pub(crate) fn prefetch() -> Prefetch {
    let tmp = target_dir().join("tmp");
    Prefetch(std::thread::spawn(move || {
        if let Err(e) = std::fs::create_dir_all(&tmp) {
            return vec![format!("creating {}: {e}", tmp.display())];
        }
        ALL.iter()
            .map(|p| {
                let began = Instant::now();
                match p.site_in(&tmp) {
                    Ok(_) => format!(
                        "{} in place ({:.1} s)",
                        p.dir_name,
                        began.elapsed().as_secs_f64()
                    ),
                    Err(e) => format!(
                        "{} NOT installed, the tests that need it will fail: {e}",
                        p.dir_name
                    ),
                }
            })
            .collect()
    }))
}

impl Prefetch {
    /// Waits for the installs and reports each.
    pub(crate) fn wait(self) -> Result<()> {
        let lines = self
            .0
            .join()
            .map_err(|_| anyhow!("the Python package installs panicked"))?;
        for l in lines {
            eprintln!("xtask ci: python: {l}");
        }
        Ok(())
    }
}
