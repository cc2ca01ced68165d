//! `fdr export --format parquet`, read by another engine: DuckDB (PyPI `duckdb`, installed
//! with pip under this target directory on first run) queries the tables of several dumps
//! at once, and its answers must equal what `fdr tasks`, `regions`, `blocking`, `summary`
//! and `diagnose` say of each dump; `fdr query` (feature `query`: DataFusion) must give
//! the same rows as DuckDB for the same SQL, canned questions included. Without python3, pip or PyPI the test fails, saying
//! what is missing: a check that cannot run is not a pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

/// The sample dumps exported, each a different case.
const NAMES: [&str; 4] = [
    "healthy",
    "lock_contention",
    "async_lock_contention",
    "slow_downstream",
];

/// Writes the [`NAMES`] sample dumps into `dumps` (`lock_contention` with a sidecar: an
/// incident) and exports each into `tables`.
fn export_dumps(dumps: &Path, tables: &Path) {
    std::fs::create_dir_all(dumps).unwrap();
    for name in NAMES {
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
}

/// DuckDB's site directory, installed once for the tests of this file (which run in
/// threads of one process, and would each install it into the same place).
fn duckdb_site() -> PathBuf {
    static SITE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    match SITE.get_or_init(|| DUCKDB.site_in(&tmp())) {
        Ok(s) => s.clone(),
        Err(why) => panic!(
            "the Parquet check needs python3 with pip and PyPI ({DUCKDB_PY}; `cargo xtask ci` installs pip): {why}"
        ),
    }
}

#[test]
fn duckdb_reads_the_tables_of_several_dumps_and_agrees_with_fdr() {
    let site = duckdb_site();
    let root = tmp().join("parquet-export");
    let _ = std::fs::remove_dir_all(&root);
    let dumps = root.join("dumps");
    let tables = root.join("tables");
    let names = NAMES;
    export_dumps(&dumps, &tables);
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

/// Runs one query in DuckDB over views named as the tables (`TABLE` for
/// `read_parquet('DIR/TABLE/*.parquet')`, for each table directory there with a file: an
/// empty one, `stack_samples` when no dump has stacks, is left out), and returns
/// its rows as JSON arrays.
#[cfg(feature = "query")]
const RUN_SQL_ON_VIEWS: &str = r#"
import duckdb, json, os, sys
con = duckdb.connect()
d = sys.argv[1]
for t in sorted(os.listdir(d)):
    if not any(f.endswith(".parquet") for f in os.listdir(os.path.join(d, t))):
        continue
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{d}/{t}/*.parquet')")
r = con.sql(sys.argv[2])
print(json.dumps([list(row) for row in r.fetchall()], default=str))
"#;

/// `fdr query` and DuckDB give the same rows for the same SQL over the same files: a
/// query of the user's and the canned questions whose SQL both engines speak.
#[cfg(feature = "query")]
#[test]
fn fdr_query_and_duckdb_give_the_same_answers() {
    let site = duckdb_site();
    let root = tmp().join("parquet-query");
    let _ = std::fs::remove_dir_all(&root);
    let tables = root.join("tables");
    export_dumps(&root.join("dumps"), &tables);
    let dir = tables.to_str().unwrap();

    let queries = [
        // A user's query: an outer join of two tables, with null-able columns (the
        // incident id; the sum of a dump without polls).
        "SELECT d.dump_id, d.incident_id, count(p.duration_ns) AS polls, sum(p.duration_ns) AS poll_ns \
         FROM dumps d LEFT JOIN polls p ON p.host = d.host AND p.dump_id = d.dump_id \
         GROUP BY d.dump_id, d.incident_id ORDER BY d.dump_id"
            .to_string(),
        canned_sql(&["top-blocking", "--limit", "10"], dir),
        canned_sql(&["p99-by-task"], dir),
    ];
    let mut rows_compared = Vec::new();
    for q in &queries {
        let o = fdr(&["query", "--json", q, dir]);
        assert!(
            o.status.success(),
            "fdr query {q}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let ours: Value = serde_json::from_slice(&o.stdout).unwrap();
        let cols: Vec<&str> = ours["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let ours: Vec<Vec<Value>> = ours["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| cols.iter().map(|c| r[*c].clone()).collect())
            .collect();
        let o = Command::new("python3")
            .args(["-c", RUN_SQL_ON_VIEWS, dir, q])
            .env("PYTHONPATH", &site)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "duckdb rejected {q}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let theirs: Vec<Vec<Value>> = serde_json::from_slice(&o.stdout).unwrap();
        assert!(!ours.is_empty(), "no rows: {q}");
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{q}\nfdr: {ours:?}\nduckdb: {theirs:?}"
        );
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a.len(), b.len(), "{q}");
            for (x, y) in a.iter().zip(b) {
                assert!(same(x, y), "{q}\nfdr: {a:?}\nduckdb: {b:?}");
            }
        }
        rows_compared.push(ours.len());
    }
    // The user's query: a row for each dump.
    assert_eq!(rows_compared[0], NAMES.len(), "{rows_compared:?}");

    // The text output: a header, the rows, their count.
    let o = fdr(&["query", "top-blocking", "--limit", "3", dir]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let first = text.lines().next().unwrap();
    for c in ["site", "reason", "blocks", "total_ns"] {
        assert!(first.contains(c), "{text}");
    }
    assert!(text.trim_end().ends_with("(3 rows)"), "{text}");
}

/// The SQL of a canned question, as `fdr query QUESTION --print-sql` gives it.
#[cfg(feature = "query")]
fn canned_sql(question: &[&str], dir: &str) -> String {
    let mut args = vec!["query"];
    args.extend(question);
    args.extend(["--print-sql", dir]);
    let o = fdr(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sql = String::from_utf8(o.stdout).unwrap();
    assert!(
        sql.starts_with("WITH") || sql.starts_with("SELECT"),
        "{sql}"
    );
    sql
}

/// The same value from two engines: numbers equal within float rounding (DuckDB's sums
/// come as 128-bit integers, its percentiles and DataFusion's as doubles), the rest
/// equal.
#[cfg(feature = "query")]
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

/// A query DataFusion refuses is a usage error naming the query and the tables; a
/// location without tables says what it looked for; every canned question runs.
#[cfg(feature = "query")]
#[test]
fn fdr_query_says_what_is_wrong() {
    let root = tmp().join("parquet-query-errors");
    let _ = std::fs::remove_dir_all(&root);
    let tables = root.join("tables");
    export_dumps(&root.join("dumps"), &tables);
    let dir = tables.to_str().unwrap();

    let o = fdr(&["query", "SELEKT * FROM polls", dir]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("SELEKT * FROM polls") && err.contains("polls"),
        "{err}"
    );
    let o = fdr(&["query", "SELECT no_such_column FROM polls", dir]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no_such_column"), "{err}");

    // An option before a question's name: the name is not taken for SQL.
    let o = fdr(&["query", "--json", "top-blocking", dir]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`top-blocking` is a question: its options follow its name"),
        "{err}"
    );

    // The dumps' own directory holds dumps, not tables.
    let dumps = root.join("dumps");
    let o = fdr(&["query", "SELECT 1", dumps.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(dumps.to_str().unwrap()) && err.contains("no fdr tables there"),
        "{err}"
    );
    let o = fdr(&["query", "SELECT 1", root.join("absent").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));

    // No dump has stacks: the table is there, empty, with its columns.
    let o = fdr(&[
        "query",
        "--json",
        "SELECT count(*) AS n FROM stack_samples",
        dir,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"][0]["n"], 0);

    // The canned questions that DuckDB does not check run and answer.
    let o = fdr(&["query", "incidents-per-rule", "--json", dir]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rules: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    let expected = SCENARIOS
        .iter()
        .find(|s| s.0 == "lock_contention")
        .unwrap()
        .1
        .unwrap();
    assert!(rules.contains(&expected), "{v}");
    let o = fdr(&["query", "release-diff", "1", "2", "--json", dir]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["columns"][0], "task_name", "{v}");

    // --max-rows keeps that many and says how many more there were.
    let o = fdr(&["query", "--max-rows", "2", "SELECT * FROM polls", dir]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("more rows not shown (--max-rows 2)"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("(2 rows)"));
}
