//! Shared helpers for fdr's benches.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::io::Write;

pub mod futures;
pub mod harness;

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

/// The median of `v` (sorted in place).
pub fn median(mut v: impl AsMut<[f64]>) -> f64 {
    let v = v.as_mut();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

thread_local! {
    static FLOOR_POS: Cell<usize> = const { Cell::new(0) };
    static FLOOR_BUF: [Cell<[u64; 2]>; 4096] = const { [const { Cell::new([0; 2]) }; 4096] };
}

/// The physical floor of one timestamped event, which the recorder's costs are measured
/// against: read fdr's clock, store 16 bytes into a thread-local buffer.
#[inline(always)]
pub fn floor_event(tag: u64) {
    let ts = fdr_recorder::now_ticks();
    let p = FLOOR_POS.with(|c| {
        let p = c.get();
        c.set(p.wrapping_add(1));
        p
    });
    FLOOR_BUF.with(|b| b[p & 4095].set([ts, tag]));
}
