//! `fdr diff A B`: per region, blocking site and task name, totals of two traces side by
//! side, sorted by the size of the change (the seed's "total time per region, sorted by
//! delta", with counts and percentiles as benchstat gives them).
//!
//! Entries are matched by name (sites by `file:line:col`), never by id: ids are per trace.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use crate::hist::Histogram;
use crate::limits::{Truncated, notes_json, notes_text};
use crate::profile::{Profile, REASON_NAMES};
use crate::text::{self, dur, signed_dur};

/// One side of a compared entry: what `fdr diff` shows of its distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffSide {
    /// How many.
    pub count: u64,
    /// Their total duration.
    pub total_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Longest.
    pub max_ns: u64,
}

impl DiffSide {
    fn of(h: &Histogram) -> Self {
        DiffSide {
            count: h.count(),
            total_ns: h.sum(),
            p50_ns: h.p50(),
            p99_ns: h.p99(),
            max_ns: h.max(),
        }
    }
}

/// One compared entry.
#[derive(Debug, Clone)]
pub struct DiffRow {
    /// `region`, `block` or `task`.
    pub what: &'static str,
    /// Its name (region or task name, `reason site` for blocks), as shown (long names cut
    /// to [`text::MAX_SHOWN_BYTES`]).
    pub key: String,
    /// Its distribution in A (empty when absent).
    pub a: DiffSide,
    /// In B.
    pub b: DiffSide,
}

impl DiffRow {
    /// B's total minus A's.
    pub fn delta_ns(&self) -> i128 {
        self.b.total_ns as i128 - self.a.total_ns as i128
    }
}

/// What one trace contributes to a diff: its entries by name, and its truncation notes.
/// Small (a few numbers and a shown name per entry), so the first trace's profile can be
/// dropped before the second one is read.
#[derive(Debug, Clone, Default)]
pub struct DiffSideSet {
    /// Entries by kind, shown name and a hash of the whole name (long names are matched
    /// whole, though shown cut).
    entries: BTreeMap<(&'static str, String, u64), DiffSide>,
    /// What the profile left out.
    pub truncated: Vec<Truncated>,
}

fn hash_of(parts: &[&dyn Fn(&mut DefaultHasher)]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p(&mut h);
    }
    h.finish()
}

impl DiffSideSet {
    /// The entries of `p`: per region, blocking site and task name.
    pub fn of(p: &Profile) -> Self {
        // Ids are per trace and two may share a name: group the histograms by name and
        // merge only those that do.
        let mut m: BTreeMap<(&'static str, String, u64), Vec<&Histogram>> = BTreeMap::new();
        for (name, s) in &p.regions {
            let full = p.name_full(*name);
            let key = (
                "region",
                p.name(*name).into_owned(),
                hash_of(&[&|h| full.hash(h)]),
            );
            m.entry(key).or_default().push(&s.hist);
        }
        for ((site, r), s) in &p.blocking {
            let full = p.tables.site(*site);
            let hash = hash_of(&[&|h| {
                r.hash(h);
                match full {
                    Some(f) => (f.file, f.line, f.col).hash(h),
                    None => site.0.hash(h),
                }
            }]);
            let key = (
                "block",
                format!("{} {}", REASON_NAMES[*r], p.site_name(*site)),
                hash,
            );
            m.entry(key).or_default().push(&s.hist);
        }
        for ((kind, name), s) in &p.tasks {
            let full = p.name_full(*name);
            let key = (
                "task",
                format!("{} {}", kind.as_str(), p.name(*name)),
                hash_of(&[&|h| (kind.as_str(), &*full).hash(h)]),
            );
            m.entry(key).or_default().push(&s.lifetime.hist);
        }
        let entries = m
            .into_iter()
            .map(|(k, hists)| {
                let side = match hists.as_slice() {
                    [h] => DiffSide::of(h),
                    many => {
                        let mut all = Histogram::new();
                        for h in many {
                            all.merge(h);
                        }
                        DiffSide::of(&all)
                    }
                };
                (k, side)
            })
            .collect();
        DiffSideSet {
            entries,
            truncated: p.truncated(),
        }
    }
}

/// Compares two profiles; rows sorted by |delta| of totals, largest first.
pub fn diff(a: &Profile, b: &Profile) -> Vec<DiffRow> {
    diff_sets(DiffSideSet::of(a), DiffSideSet::of(b))
}

/// Compares two traces' entries; rows sorted by |delta| of totals, largest first.
pub fn diff_sets(a: DiffSideSet, b: DiffSideSet) -> Vec<DiffRow> {
    let mut ea = a.entries;
    let mut rows = Vec::new();
    for (k, b) in b.entries {
        let a = ea.remove(&k).unwrap_or_default();
        rows.push(DiffRow {
            what: k.0,
            key: k.1,
            a,
            b,
        });
    }
    for (k, a) in ea {
        rows.push(DiffRow {
            what: k.0,
            key: k.1,
            a,
            b: DiffSide::default(),
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

/// As text; then the notes of what each trace's profile left out, if anything.
pub fn diff_text(rows: &[DiffRow], top: usize, truncated: [&[Truncated]; 2]) -> String {
    let mut out = String::new();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .take(top)
        .map(|r| {
            vec![
                r.what.into(),
                r.key.clone(),
                format!("{} -> {}", r.a.count, r.b.count),
                dur(r.a.total_ns),
                dur(r.b.total_ns),
                signed_dur(r.delta_ns()),
                change(r.a.total_ns, r.b.total_ns),
                format!("{} -> {}", dur(r.a.p50_ns), dur(r.b.p50_ns)),
                format!("{} -> {}", dur(r.a.p99_ns), dur(r.b.p99_ns)),
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
    for (side, notes) in ["A", "B"].iter().zip(truncated) {
        if !notes.is_empty() {
            out.push_str(&format!("in {side}:\n"));
            notes_text(&mut out, notes);
        }
    }
    out
}

/// As JSON: `{"rows": [...], "truncated_a": [...], "truncated_b": [...]}`.
pub fn diff_json(rows: &[DiffRow], top: usize, truncated: [&[Truncated]; 2]) -> Value {
    let h = |h: &DiffSide| json!({"count": h.count, "total_ns": h.total_ns, "p50_ns": h.p50_ns, "p99_ns": h.p99_ns, "max_ns": h.max_ns});
    let rows: Vec<Value> = rows
        .iter()
        .take(top)
        .map(|r| {
            let delta = r.delta_ns().clamp(i64::MIN as i128, i64::MAX as i128) as i64;
            json!({"what": r.what, "name": r.key, "a": h(&r.a), "b": h(&r.b), "delta_ns": delta})
        })
        .collect();
    json!({
        "rows": rows,
        "truncated_a": notes_json(truncated[0]),
        "truncated_b": notes_json(truncated[1]),
    })
}
