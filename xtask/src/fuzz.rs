//! `cargo xtask fuzz --seconds N`: the decoder fuzz target under libFuzzer (cargo-fuzz).

use anyhow::{Result, bail};

pub(crate) fn run(_args: &[String]) -> Result<()> {
    bail!("fuzzing is not wired yet")
}
