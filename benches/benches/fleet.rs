//! Fleet bench: `fdr export --format parquet`'s throughput over a directory of dumps, the
//! way a fleet's incidents are turned into tables, and `fdr query`'s over those tables.
//!
//! Figures: `fleet.export_rows_per_sec` (rows written to every table, over 120 dumps of
//! the analyzer's scenarios in a local directory, best of three rounds;
//! `fleet.export_rows_per_sec_s3` the same export as a fleet's job runs it, each dump fetched
//! from moto's S3 on 127.0.0.1 and its tables put back, best of two),
//! `fleet.export_dumps_per_sec` and `fleet.export_bytes_per_row` (Parquet bytes on disk per
//! row, Snappy pages); `fleet.query_dumps_per_sec` (dumps answered per second by one
//! `fdr query latency`, p99 poll and await time per host and task name over every dump's
//! `polls` and `awaits`, opening the location included, best of three) over the 120 dumps'
//! tables in a local directory, and `fleet.query_dumps_per_sec_s3` over the tables the
//! bucket's export put in moto (plain HTTP, SigV4 checked).

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
use fdr_fleet::{ExportOptions, ExportSummary, export_file};
use fdr_query::{Canned, Fleet};
use fdr_test_support::scenarios::{SCENARIOS, scenario};

/// Dumps in the directory (the brief for fleet figures: at least 100).
const DUMPS: usize = 120;

/// Exports the dump at `dump` into the table directory `tables` under the dump id `id`, as
/// both the directory's and the bucket's figures do.
fn export(dump: &Path, tables: &Path, id: &str) -> ExportSummary {
    export_file(
        dump,
        tables,
        &ExportOptions {
            dump_id: id.into(),
            ..ExportOptions::default()
        },
    )
    .expect("exported")
}

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
const FIGURES: [&str; 6] = [
    "fleet.export_rows_per_sec",
    "fleet.export_rows_per_sec_s3",
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
            n += export(p, &tables, id).rows;
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
    // The same export as a fleet's job runs it against a bucket (docs/OPERATIONS.md): each
    // dump fetched from moto's S3 on 127.0.0.1, exported, and its tables put back under
    // one prefix, which the bucket's query below reads.
    let mut moto = moto::Moto::start();
    moto.mkbucket("fleet");
    let (s3_rows, s3_best) = export_through_bucket(&moto, &paths, &root);
    report("fleet.export_rows_per_sec_s3", s3_rows as f64 / s3_best);
    assert_eq!(s3_rows, rows, "the bucket's export wrote other rows");
    let config = moto.config("fleet", "tables");
    report(
        "fleet.query_dumps_per_sec_s3",
        DUMPS as f64 / best_query(|| Fleet::open_bucket(config.clone())),
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Puts the dumps at `paths` into moto's bucket `fleet` (under `incidents/`), then, best of
/// two rounds, runs the fleet's export job over them: list, fetch each dump (S3 GET), export
/// it to a local directory, put each table's file under `tables/` (S3 PUT). Returns the rows
/// written and the best round's seconds.
fn export_through_bucket(moto: &moto::Moto, paths: &[PathBuf], root: &Path) -> (u64, f64) {
    use futures_util::StreamExt;
    use object_store::path::Path as Key;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    let store = fdr_sentinel::BucketStore::new(moto.config("fleet", "")).expect("moto's store");
    let (s3, _, _) = store.object_store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // A local file put at `key`.
    let put = async |key: String, file: &Path| {
        let data = std::fs::read(file).expect("a local file");
        s3.put(&Key::from(key), PutPayload::from(data))
            .await
            .expect("an object put");
    };
    runtime.block_on(async {
        for p in paths {
            let name = p.file_name().and_then(|n| n.to_str()).expect("named");
            put(format!("incidents/{name}"), p).await;
        }
    });
    let (mut rows, mut best) = (0, f64::INFINITY);
    for round in 0..2 {
        let work = root.join(format!("job-{round}"));
        std::fs::create_dir_all(&work).expect("the job's directory");
        let t = Instant::now();
        let mut n = 0;
        runtime.block_on(async {
            let incidents = Key::from("incidents");
            let mut listed: Vec<Key> = s3
                .list(Some(&incidents))
                .map(|m| m.expect("listed").location)
                .collect()
                .await;
            listed.sort();
            assert_eq!(listed.len(), paths.len(), "every dump listed");
            for key in listed {
                let name = key.filename().expect("a file name").to_owned();
                let body = s3.get(&key).await.expect("dump get");
                let local = work.join(&name);
                std::fs::write(&local, body.bytes().await.expect("dump read")).expect("written");
                let id = name.trim_end_matches(".fdr");
                let tables = work.join("tables");
                let s = export(&local, &tables, id);
                n += s.rows;
                for (table, file, _) in &s.tables {
                    let file_name = file.file_name().and_then(|f| f.to_str()).expect("named");
                    put(format!("tables/{table}/{file_name}"), file).await;
                }
                std::fs::remove_dir_all(&tables).expect("tables removed");
                std::fs::remove_file(&local).expect("dump removed");
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
        rows = n;
        let _ = std::fs::remove_dir_all(&work);
    }
    (rows, best)
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
