//! `fdr diff A B`: per region, blocking site and task name, totals of two traces side by
//! side, sorted by the size of the change (the seed's "total time per region, sorted by
//! delta", with counts and percentiles as benchstat gives them).
//!
//! Entries are matched by name (sites by `file:line:col`), never by id: ids are per trace.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::hist::Histogram;
use crate::profile::{Profile, REASON_NAMES};
use crate::text::{self, dur, signed_dur};

/// One compared entry.
#[derive(Debug, Clone)]
pub struct DiffRow {
    /// `region`, `block` or `task`.
    pub what: &'static str,
    /// Its name (region or task name, `reason site` for blocks).
    pub key: String,
    /// Its distribution in A (empty when absent).
    pub a: Histogram,
    /// In B.
    pub b: Histogram,
}

impl DiffRow {
    /// B's total minus A's.
    pub fn delta_ns(&self) -> i128 {
        self.b.sum() as i128 - self.a.sum() as i128
    }
}

fn entries(p: &Profile) -> BTreeMap<(&'static str, String), Histogram> {
    let mut m = BTreeMap::new();
    for (name, s) in &p.regions {
        m.entry(("region", p.name(*name).into_owned()))
            .or_insert_with(Histogram::new)
            .merge(&s.hist);
    }
    for ((site, r), s) in &p.blocking {
        m.entry((
            "block",
            format!("{} {}", REASON_NAMES[*r], p.tables.site_name(*site)),
        ))
        .or_insert_with(Histogram::new)
        .merge(&s.hist);
    }
    for ((kind, name), s) in &p.tasks {
        m.entry(("task", format!("{} {}", kind.as_str(), p.name(*name))))
            .or_insert_with(Histogram::new)
            .merge(&s.lifetime.hist);
    }
    m
}

/// Compares two profiles; rows sorted by |delta| of totals, largest first.
pub fn diff(a: &Profile, b: &Profile) -> Vec<DiffRow> {
    let mut ea = entries(a);
    let eb = entries(b);
    let mut rows = Vec::new();
    for (k, hb) in eb {
        let ha = ea.remove(&k).unwrap_or_default();
        rows.push(DiffRow {
            what: k.0,
            key: k.1,
            a: ha,
            b: hb,
        });
    }
    for (k, ha) in ea {
        rows.push(DiffRow {
            what: k.0,
            key: k.1,
            a: ha,
            b: Histogram::new(),
        });
    }
    rows.sort_by(|x, y| {
        y.delta_ns()
            .abs()
            .cmp(&x.delta_ns().abs())
            .then_with(|| x.key.cmp(&y.key))
    });
    rows
}

fn change(a: u64, b: u64) -> String {
    if a == 0 {
        if b == 0 { "~".into() } else { "new".into() }
    } else {
        format!("{:+.1}%", (b as f64 / a as f64 - 1.0) * 100.0)
    }
}

/// As text.
pub fn diff_text(rows: &[DiffRow], top: usize) -> String {
    let mut out = String::new();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .take(top)
        .map(|r| {
            vec![
                r.what.into(),
                r.key.clone(),
                format!("{} -> {}", r.a.count(), r.b.count()),
                dur(r.a.sum()),
                dur(r.b.sum()),
                signed_dur(r.delta_ns()),
                change(r.a.sum(), r.b.sum()),
                format!("{} -> {}", dur(r.a.p50()), dur(r.b.p50())),
                format!("{} -> {}", dur(r.a.p99()), dur(r.b.p99())),
            ]
        })
        .collect();
    text::table(
        &mut out,
        &[
            "what",
            "name",
            "count A -> B",
            "total A",
            "total B",
            "delta",
            "change",
            "p50 A -> B",
            "p99 A -> B",
        ],
        &cells,
    );
    out
}

/// As JSON.
pub fn diff_json(rows: &[DiffRow], top: usize) -> Value {
    let h = |h: &Histogram| json!({"count": h.count(), "total_ns": h.sum(), "p50_ns": h.p50(), "p99_ns": h.p99(), "max_ns": h.max()});
    Value::Array(
        rows.iter()
            .take(top)
            .map(|r| json!({"what": r.what, "name": r.key, "a": h(&r.a), "b": h(&r.b), "delta_ns": r.delta_ns() as i64}))
            .collect(),
    )
}
