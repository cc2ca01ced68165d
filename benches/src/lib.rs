//! Shared helpers for fdr's benches.
#![forbid(unsafe_code)]

use std::io::Write;

/// Reports a figure that is not a criterion time (a ratio, a rate, a size) to
/// `cargo xtask bench`, which puts it in `summary.json` under `name`.
pub fn report(name: &str, value: f64) {
    println!("figure {name} = {value}");
    let Some(path) = std::env::var_os("FDR_BENCH_EXTRA") else {
        return;
    };
    let line = serde_json::json!({ "name": name, "value": value }).to_string();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
