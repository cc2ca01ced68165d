//! Fleet bench: `fdr export --format parquet`'s throughput over a directory of dumps, the
//! way a fleet's incidents are turned into tables, and `fdr query`'s over those tables.
//!
//! Figures: `fleet.export_rows_per_sec` (rows written to every table, over 120 dumps of
//! the analyzer's scenarios in a local directory, best of three rounds),
//! `fleet.export_dumps_per_sec` and `fleet.export_bytes_per_row` (Parquet bytes on disk per
//! row, Snappy pages); `fleet.query_dumps_per_sec` (dumps answered per second by one
//! `fdr query latency`, p99 poll and await time per host and task name over every dump's
//! `polls` and `awaits`, opening the location included, best of three) over the 120 dumps'
//! tables in a local directory, and `fleet.query_dumps_per_sec_s3` over the same files in
//! moto's S3 on 127.0.0.1 (plain HTTP, SigV4 checked).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::path::{Path, PathBuf};
use std::time::Instant;

#[path = "../../crates/fdr-sentinel/tests/sentinel/common/moto.rs"]
mod moto;

use criterion::{Criterion, criterion_group, criterion_main};
use fdr_benches::report;
use fdr_fleet::{ExportOptions, export_file};
use fdr_query::{Canned, Fleet};
use fdr_test_support::scenarios::{SCENARIOS, scenario};

/// Dumps in the directory (the brief for fleet figures: at least 100).
const DUMPS: usize = 120;

fn dir_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("readable") {
        let e = e.expect("entry");
        let m = e.metadata().expect("metadata");
        n += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    n
}

/// The figures this bench reports.
const FIGURES: [&str; 5] = [
    "fleet.export_rows_per_sec",
    "fleet.export_dumps_per_sec",
    "fleet.export_bytes_per_row",
    "fleet.query_dumps_per_sec",
    "fleet.query_dumps_per_sec_s3",
];

fn bench(_c: &mut Criterion) {
    // `cargo bench -- FILTER`: run only if the filter names one of this bench's figures.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !FIGURES.iter().any(|n| n.contains(f.as_str()))) {
        return;
    }
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fleet-bench");
    let _ = std::fs::remove_dir_all(&root);
    let dumps = root.join("dumps");
    std::fs::create_dir_all(&dumps).expect("bench directory");
    let mut paths = Vec::with_capacity(DUMPS);
    for i in 0..DUMPS {
        let (name, _) = SCENARIOS[i % SCENARIOS.len()];
        let path = dumps.join(format!("{i:04}-{name}.fdr"));
        std::fs::write(&path, scenario(name).expect("a scenario")).expect("dump written");
        paths.push(path);
    }
    let mut best = f64::INFINITY;
    let mut rows = 0;
    let mut bytes = 0;
    for round in 0..3 {
        let tables = root.join(format!("tables-{round}"));
        let t = Instant::now();
        let mut n = 0;
        for p in &paths {
            let id = p.file_stem().and_then(|s| s.to_str()).expect("named");
            let s = export_file(
                p,
                &tables,
                &ExportOptions {
                    dump_id: id.into(),
                    ..ExportOptions::default()
                },
            )
            .expect("exported");
            n += s.rows;
        }
        best = best.min(t.elapsed().as_secs_f64());
        rows = n;
        bytes = dir_bytes(&tables);
        if round < 2 {
            let _ = std::fs::remove_dir_all(&tables);
        }
    }
    report("fleet.export_rows_per_sec", rows as f64 / best);
    report("fleet.export_dumps_per_sec", DUMPS as f64 / best);
    report("fleet.export_bytes_per_row", bytes as f64 / rows as f64);

    let tables = root.join("tables-2");
    let local = tables.to_str().expect("a UTF-8 path").to_owned();
    report(
        "fleet.query_dumps_per_sec",
        DUMPS as f64 / best_query(|| Fleet::open(&local)),
    );
    let mut moto = moto::Moto::start();
    moto.mkbucket("fleet");
    for table in std::fs::read_dir(&tables).expect("tables") {
        let table = table.expect("a table");
        let name = table.file_name().into_string().expect("a UTF-8 name");
        for f in std::fs::read_dir(table.path()).expect("a table's files") {
            let f = f.expect("a file");
            let file = f.file_name().into_string().expect("a UTF-8 name");
            let data = std::fs::read(f.path()).expect("a table's file");
            moto.put("fleet", &format!("tables/{name}/{file}"), &data);
        }
    }
    let config = moto.config("fleet", "tables");
    report(
        "fleet.query_dumps_per_sec_s3",
        DUMPS as f64 / best_query(|| Fleet::open_bucket(config.clone())),
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The best of three: opening the tables and answering `fdr query latency`, in seconds.
fn best_query(open: impl Fn() -> Result<Fleet, fdr_query::QueryError>) -> f64 {
    let sql = Canned::Latency { limit: 50 }.sql();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let fleet = open().expect("the tables open");
        let answer = fleet.sql(&sql).expect("answered");
        best = best.min(t.elapsed().as_secs_f64());
        assert!(answer.rows() > 0, "no rows");
        assert_eq!(fleet.dumps().expect("dumps counted"), DUMPS as u64);
    }
    best
}

criterion_group!(benches, bench);
criterion_main!(benches);
