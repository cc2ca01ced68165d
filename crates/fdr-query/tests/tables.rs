//! Every table fdr-fleet writes is read back by [`Fleet`] over a directory holding several
//! dumps' tables: each table's row count is the export's, the identity columns name each
//! dump, and a query that writes is refused.

use std::path::PathBuf;

use fdr_fleet::{ExportOptions, export_file};
use fdr_query::{Fleet, QueryError};
use fdr_test_support::scenarios::scenario_on;

fn count(fleet: &Fleet, sql: &str) -> u64 {
    let rows = fleet.sql(sql).unwrap().to_json().unwrap();
    rows[0]["n"].as_u64().unwrap()
}

#[test]
fn every_table_reads_back_with_the_exports_rows() {
    let root =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tables-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let tables = root.join("tables");
    let mut rows: std::collections::BTreeMap<&str, u64> = Default::default();
    let dumps: [(&str, Vec<u8>); 3] = [
        ("a", scenario_on("lock_contention", "web-1", "41").unwrap()),
        ("b", scenario_on("task_leak", "web-2", "42").unwrap()),
        // Logs and metric samples: the sample trace.
        ("c", fdr_format::testing::sample_trace()),
    ];
    for (id, bytes) in &dumps {
        let path = root.join(format!("{id}.fdr"));
        std::fs::write(&path, bytes).unwrap();
        let s = export_file(
            &path,
            &tables,
            &ExportOptions {
                dump_id: (*id).into(),
                ..ExportOptions::default()
            },
        )
        .unwrap();
        for (t, _, n) in s.tables {
            *rows.entry(t).or_default() += n;
        }
    }
    assert!(rows.get("polls").is_some_and(|&n| n > 0), "{rows:?}");
    let fleet = Fleet::open(tables.to_str().unwrap()).unwrap();
    for t in fdr_fleet::schema::TABLES {
        let want = rows.get(t.name).copied().unwrap_or(0);
        assert_eq!(
            count(&fleet, &format!("SELECT count(*) AS n FROM {}", t.name)),
            want,
            "{}",
            t.name
        );
    }
    assert_eq!(fleet.dumps().unwrap(), 3);
    assert_eq!(
        count(
            &fleet,
            "SELECT count(DISTINCT dump_id) AS n FROM polls WHERE host = 'web-2'"
        ),
        1
    );
    // Nulls are named in JSON rows: no dump here is an incident.
    let ids = fleet
        .sql("SELECT dump_id, incident_id FROM dumps ORDER BY dump_id")
        .unwrap()
        .to_json()
        .unwrap();
    assert_eq!(
        ids,
        serde_json::json!([
            {"dump_id": "a", "incident_id": null},
            {"dump_id": "b", "incident_id": null},
            {"dump_id": "c", "incident_id": null},
        ])
    );
    // Every column of every table is readable.
    for t in fdr_fleet::schema::TABLES {
        fleet.sql(&format!("SELECT * FROM {}", t.name)).unwrap();
    }
    let file = root.join("x.parquet");
    let copy = format!("COPY (SELECT 1) TO '{}'", file.display());
    assert!(matches!(fleet.sql(&copy), Err(QueryError::Sql(_))));
    assert!(!file.exists());
    assert!(matches!(
        fleet.sql("SELECT no_such_column FROM polls"),
        Err(QueryError::Sql(_))
    ));
    assert!(matches!(
        Fleet::open(root.join("missing").to_str().unwrap()),
        Err(QueryError::Location { .. })
    ));
}
