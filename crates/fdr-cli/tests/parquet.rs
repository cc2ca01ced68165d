//! `fdr export --format parquet`, read by another engine: DuckDB (PyPI `duckdb`, installed
//! with pip under this target directory on first run) queries the tables of several dumps
//! at once, and its answers must equal what `fdr tasks`, `regions`, `blocking`, `summary`
//! and `diagnose` say of each dump. Without python3, pip or PyPI the test fails, saying
//! what is missing: a check that cannot run is not a pass.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use fdr_test_support::python::{DUCKDB, DUCKDB_PY};
use fdr_test_support::scenarios::{SCENARIOS, scenario};
use serde_json::Value;

/// Runs one query and returns its rows as JSON objects.
const RUN_SQL: &str = r#"
import duckdb, json, sys
r = duckdb.sql(sys.argv[1])
cols = r.columns
print(json.dumps([dict(zip(cols, row)) for row in r.fetchall()], default=str))
"#;

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn fdr(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(args)
        .output()
        .unwrap()
}

fn fdr_json(args: &[&str]) -> Value {
    let o = fdr(args);
    assert!(
        o.status.success(),
        "fdr {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

struct Duck {
    site: PathBuf,
    dir: PathBuf,
}

impl Duck {
    /// Rows of `query`, `{dir}` standing for the tables' directory.
    fn rows(&self, query: &str) -> Vec<Value> {
        let q = query.replace("{dir}", &self.dir.display().to_string());
        let o = Command::new("python3")
            .args(["-c", RUN_SQL, &q])
            .env("PYTHONPATH", &self.site)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "duckdb rejected {q}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `key column -> [other columns]` of `query`'s rows, the numbers as u64.
    fn by_key(&self, query: &str, key: &str, cols: &[&str]) -> BTreeMap<String, Vec<u64>> {
        self.rows(query)
            .into_iter()
            .map(|r| {
                let k = r[key].as_str().unwrap_or("<null>").to_string();
                let v = cols.iter().map(|c| num(&r[*c])).collect();
                (k, v)
            })
            .collect()
    }
}

fn num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        v => panic!("not a number: {v}"),
    }
}

#[test]
fn duckdb_reads_the_tables_of_several_dumps_and_agrees_with_fdr() {
    let site = match DUCKDB.site_in(&tmp()) {
        Ok(s) => s,
        Err(why) => panic!(
            "the Parquet check needs python3 with pip and PyPI ({DUCKDB_PY}; `cargo xtask ci` installs pip): {why}"
        ),
    };
    let root = tmp().join("parquet-export");
    let _ = std::fs::remove_dir_all(&root);
    let dumps = root.join("dumps");
    let tables = root.join("tables");
    std::fs::create_dir_all(&dumps).unwrap();
    let names = [
        "healthy",
        "lock_contention",
        "async_lock_contention",
        "slow_downstream",
    ];
    for name in names {
        let path = dumps.join(format!("{name}.fdr"));
        std::fs::write(&path, scenario(name).unwrap()).unwrap();
        if name == "lock_contention" {
            // The sentinel's sidecar beside its dump: the dump is an incident.
            std::fs::write(dumps.join(format!("{name}.json")), b"{}").unwrap();
        }
        let o = fdr(&[
            "export",
            "--format",
            "parquet",
            "-o",
            tables.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("rows in 10 tables"), "{name}: {err}");
    }
    let duck = Duck { site, dir: tables };

    // One row per dump, with its identity and what `fdr summary` counts.
    let dumps_rows = duck.rows(
        "SELECT dump_id, incident_id, host, service, events, duration_ns FROM read_parquet('{dir}/dumps/*.parquet') ORDER BY dump_id",
    );
    assert_eq!(dumps_rows.len(), names.len());
    for r in &dumps_rows {
        let id = r["dump_id"].as_str().unwrap();
        let trace = dumps.join(format!("{id}.fdr"));
        let s = fdr_json(&["summary", "--json", trace.to_str().unwrap()]);
        assert_eq!(num(&r["events"]), s["events"].as_u64().unwrap(), "{id}");
        assert_eq!(
            num(&r["duration_ns"]),
            s["duration_ns"].as_u64().unwrap(),
            "{id}"
        );
        assert_eq!(r["host"], s["host"], "{id}");
        let incident = (id == "lock_contention").then_some(id);
        assert_eq!(r["incident_id"].as_str(), incident, "{id}");
    }

    // Task names, region names and blocking sites compared (all must be some).
    let mut compared = 0;
    for name in names {
        let trace = dumps.join(format!("{name}.fdr"));
        let trace = trace.to_str().unwrap();

        // Polls per task name: count and time polled, as `fdr tasks` sums them.
        let tasks = fdr_json(&["tasks", "--json", "--window", "all", trace]);
        let want = keyed(
            &tasks["tasks"],
            |t| (t["kind"] == "async").then(|| t["name"].as_str().unwrap().to_string()),
            ["polls", "running_ns"],
        );
        compared += want.len();
        let polls = duck.by_key(
            &format!(
                "SELECT task_name, count(*) AS n, sum(duration_ns) AS t FROM read_parquet('{{dir}}/polls/*.parquet') WHERE dump_id = '{name}' GROUP BY task_name"
            ),
            "task_name",
            &["n", "t"],
        );
        assert_eq!(polls, want, "{name}: polls per task name");
        let per_task = duck.by_key(
            &format!(
                "SELECT name, sum(polls) AS n, sum(running_ns) AS t FROM read_parquet('{{dir}}/tasks/*.parquet') WHERE dump_id = '{name}' AND kind = 'async' GROUP BY name"
            ),
            "name",
            &["n", "t"],
        );
        assert_eq!(per_task, want, "{name}: tasks table");

        // Regions per name: count and total time, as `fdr regions` says.
        let regions = fdr_json(&["regions", "--json", "--window", "all", trace]);
        let want = keyed(
            &regions["regions"],
            |r| Some(r["name"].as_str().unwrap().to_string()),
            ["count", "total_ns"],
        );
        let got = duck.by_key(
            &format!(
                "SELECT name, count(*) AS n, sum(duration_ns) AS t FROM read_parquet('{{dir}}/regions/*.parquet') WHERE dump_id = '{name}' AND kind = 'sync' GROUP BY name"
            ),
            "name",
            &["n", "t"],
        );
        compared += want.len();
        assert_eq!(got, want, "{name}: regions");

        // Blocks per reason and site, as `fdr blocking` says.
        let blocking = fdr_json(&["blocking", "--json", "--window", "all", trace]);
        let want = keyed(
            &blocking["blocking"],
            |b| {
                Some(format!(
                    "{} {}",
                    b["reason"].as_str().unwrap(),
                    b["site"].as_str().unwrap()
                ))
            },
            ["count", "total_ns"],
        );
        let got = duck.by_key(
            &format!(
                "SELECT reason || ' ' || site AS k, count(*) AS n, sum(duration_ns) AS t FROM read_parquet('{{dir}}/blocks/*.parquet') WHERE dump_id = '{name}' GROUP BY k"
            ),
            "k",
            &["n", "t"],
        );
        compared += want.len();
        assert_eq!(got, want, "{name}: blocks");

        // The top finding, as `fdr diagnose` ranks it and as the scenario is built to
        // show.
        let expected = SCENARIOS.iter().find(|s| s.0 == name).unwrap().1;
        let top = duck.rows(&format!(
            "SELECT rule FROM read_parquet('{{dir}}/findings/*.parquet') WHERE dump_id = '{name}' AND rank = 1 AND severity <> 'info'"
        ));
        assert_eq!(
            top.first().and_then(|r| r["rule"].as_str()),
            expected,
            "{name}: top finding"
        );
    }

    assert!(compared >= 8, "{compared} names and sites compared");

    // Across dumps: the lock waits of the whole fleet, by dump, in one query.
    let waits = duck.by_key(
        "SELECT dump_id, count(*) AS n FROM read_parquet('{dir}/blocks/*.parquet') WHERE lock_wait GROUP BY dump_id",
        "dump_id",
        &["n"],
    );
    assert!(waits.contains_key("lock_contention"), "{waits:?}");
}

#[test]
fn parquet_export_refuses_what_it_cannot_name() {
    let root = tmp().join("parquet-refusals");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let trace = root.join("healthy.fdr");
    std::fs::write(&trace, scenario("healthy").unwrap()).unwrap();
    let trace = trace.to_str().unwrap();
    let o = fdr(&["export", "--format", "parquet", trace]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("give -o DIR"));
    let o = fdr(&[
        "export",
        "--format",
        "parquet",
        "-o",
        root.to_str().unwrap(),
        "-",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let bad = root.join(".hidden.fdr");
    std::fs::copy(trace, &bad).unwrap();
    let o = fdr(&[
        "export",
        "--format",
        "parquet",
        "-o",
        root.join("t").to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!root.join("t").exists());
    // Not a trace: a bad trace (3), and nothing made.
    let junk = root.join("junk.fdr");
    std::fs::write(&junk, b"definitely not a trace").unwrap();
    let o = fdr(&[
        "export",
        "--format",
        "parquet",
        "-o",
        root.join("t").to_str().unwrap(),
        junk.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("not a readable fdr trace").count(), 1, "{err}");
    assert!(!root.join("t").exists());
}

/// A dump cut short is exported up to the damage, and the command exits as for any bad
/// trace (3); the files are whole Parquet files, none left under a temporary name.
#[test]
fn a_damaged_dump_is_exported_up_to_the_damage() {
    let root = tmp().join("parquet-damaged");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let bytes = scenario("healthy").unwrap();
    let trace = root.join("cut.fdr");
    std::fs::write(&trace, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = root.join("tables");
    let o = fdr(&[
        "export",
        "--format",
        "parquet",
        "-o",
        out.to_str().unwrap(),
        trace.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for t in ["dumps", "tasks", "polls", "findings"] {
        let f = out.join(t).join("cut.parquet");
        assert!(f.is_file(), "{}", f.display());
        assert_eq!(&std::fs::read(&f).unwrap()[..4], b"PAR1");
    }
    let leftovers: Vec<_> = std::fs::read_dir(out.join("polls"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The CLI's JSON `rows` as key -> the two figures `fields`, for the rows `key` names (the
/// shape `Duck::by_key` gives).
fn keyed(
    rows: &Value,
    key: impl Fn(&Value) -> Option<String>,
    fields: [&str; 2],
) -> BTreeMap<String, Vec<u64>> {
    rows.as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((key(r)?, fields.map(|f| r[f].as_u64().unwrap()).to_vec())))
        .collect()
}
