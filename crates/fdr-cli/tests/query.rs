//! `fdr query` over the Parquet tables of several dumps, from two hosts and two releases,
//! some of them the sentinel's incidents: every canned question (and a plain query) is
//! answered the same by DuckDB (PyPI `duckdb`) running the question's SQL unchanged over
//! the same files; the answers are what the dumps hold; a bucket (moto's S3 on 127.0.0.1)
//! holding the same files gives the same answers; errors get their exit codes. Without
//! python3, pip or PyPI the tests fail, saying what is missing.

#[path = "../../fdr-sentinel/tests/sentinel/common/moto.rs"]
mod moto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use fdr_test_support::python::{DUCKDB, DUCKDB_PY};
use fdr_test_support::scenarios::scenario_on;
use serde_json::Value;

/// Creates a view per table over its files, then runs one query; prints its rows as JSON.
const RUN_SQL: &str = r#"
import duckdb, json, os, sys
con = duckdb.connect()
d = sys.argv[2]
for t in sorted(os.listdir(d)):
    if any(f.endswith('.parquet') for f in os.listdir(os.path.join(d, t))):
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{d}/{t}/*.parquet')")
r = con.sql(sys.argv[1])
cols = r.columns
print(json.dumps([dict(zip(cols, row)) for row in r.fetchall()], default=str))
"#;

/// The dumps: file name (an incident id when `incident`), scenario, host, release.
const DUMPS: [(&str, &str, &str, &str, bool); 5] = [
    ("before-web-1", "healthy", "web-1", "41", false),
    (
        "20261206T120000.000Z-slow",
        "lock_contention",
        "web-1",
        "41",
        true,
    ),
    (
        "20261206T123000.000Z-slow",
        "async_lock_contention",
        "web-2",
        "42",
        true,
    ),
    (
        "20261207T080000.000Z-leak",
        "task_leak",
        "web-1",
        "42",
        true,
    ),
    (
        "20261207T090000.000Z-panic-4312",
        "slow_downstream",
        "web-2",
        "42",
        true,
    ),
];

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn fdr(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn ok(args: &[&str], env: &[(&str, String)]) -> Output {
    let o = fdr(args, env);
    assert!(
        o.status.success(),
        "fdr {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The rows of `fdr query ... --json`.
fn rows(args: &[&str], env: &[(&str, String)]) -> Vec<Value> {
    let mut a = args.to_vec();
    a.push("--json");
    let v: Value = serde_json::from_slice(&ok(&a, env).stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    v["rows"].as_array().unwrap().clone()
}

/// The dumps exported as tables, once: the tables' directory.
fn tables() -> &'static Path {
    static TABLES: OnceLock<PathBuf> = OnceLock::new();
    TABLES.get_or_init(|| {
        let root = tmp().join(format!("query-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dumps = root.join("dumps");
        let tables = root.join("tables");
        std::fs::create_dir_all(&dumps).unwrap();
        for (id, name, host, release, incident) in DUMPS {
            let path = dumps.join(format!("{id}.fdr"));
            std::fs::write(&path, scenario_on(name, host, release).unwrap()).unwrap();
            if incident {
                std::fs::write(dumps.join(format!("{id}.json")), b"{}").unwrap();
            }
            let t = tables.to_str().unwrap();
            ok(
                &[
                    "export",
                    "--format",
                    "parquet",
                    "-o",
                    t,
                    path.to_str().unwrap(),
                ],
                &[],
            );
        }
        tables
    })
}

/// DuckDB's rows for `sql` over the tables in `dir`.
fn duckdb(sql: &str, dir: &Path) -> Vec<Value> {
    let site = DUCKDB.site_in(&tmp()).unwrap_or_else(|why| {
        panic!("the cross-check needs python3 with pip and PyPI ({DUCKDB_PY}): {why}")
    });
    let o = Command::new("python3")
        .args(["-c", RUN_SQL, sql, dir.to_str().unwrap()])
        .env("PYTHONPATH", site)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "duckdb rejected {sql}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A value as both engines' JSON may give it: numbers as f64 (DuckDB's HUGEINT sums come
/// as strings), the rest as is.
fn norm(v: &Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::String(s) => match s.parse::<f64>() {
            Ok(f) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-') => {
                serde_json::json!(f)
            }
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

/// Checks that the two engines' rows are the same: same rows, in the same order, with the
/// same columns and values.
fn same(question: &str, ours: &[Value], theirs: &[Value]) {
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{question}: {ours:?}\nvs DuckDB {theirs:?}"
    );
    for (a, b) in ours.iter().zip(theirs) {
        let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
        let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
        let (mut ka, mut kb) = (keys(a), keys(b));
        ka.sort();
        kb.sort();
        assert_eq!(ka, kb, "{question}: columns");
        for k in ka {
            assert_eq!(
                norm(&a[&k]),
                norm(&b[&k]),
                "{question}: column {k} of {a:?}\nvs DuckDB {b:?}"
            );
        }
    }
}

/// The canned questions, as `fdr query` subcommands.
const QUESTIONS: [&[&str]; 4] = [
    &["blocking"],
    &["latency"],
    &["incidents-per-day"],
    &["releases", "41", "42"],
];

/// `fdr query QUESTION LOCATION ...` arguments.
fn canned<'a>(q: &[&'a str], location: &'a str) -> Vec<&'a str> {
    let mut a = vec!["query", q[0], location];
    a.extend_from_slice(&q[1..]);
    a
}

#[test]
fn duckdb_answers_every_question_as_fdr_query_does() {
    let dir = tables();
    let d = dir.to_str().unwrap();
    for q in QUESTIONS {
        let ours = rows(&canned(q, d), &[]);
        let mut show = canned(q, d);
        show.push("--show-sql");
        let sql = String::from_utf8(ok(&show, &[]).stdout).unwrap();
        let theirs = duckdb(&sql, dir);
        assert!(!ours.is_empty(), "{q:?}: no rows");
        same(&q.join(" "), &ours, &theirs);
    }
    let sql = "SELECT host, service, count(*) AS dumps, count(incident_id) AS incidents \
               FROM dumps GROUP BY host, service ORDER BY host";
    same(sql, &rows(&["query", sql, d], &[]), &duckdb(sql, dir));
}

#[test]
fn the_answers_are_what_the_dumps_hold() {
    let d = tables().to_str().unwrap();
    let per_day = rows(&["query", "incidents-per-day", d], &[]);
    let got: Vec<(String, String, u64, u64)> = per_day
        .iter()
        .map(|r| {
            (
                r["day"].as_str().unwrap().to_owned(),
                r["rule"].as_str().unwrap().to_owned(),
                r["incidents"].as_u64().unwrap(),
                r["hosts"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("2026-12-06", "slow", 2, 2),
        ("2026-12-07", "leak", 1, 1),
        ("2026-12-07", "panic", 1, 1),
    ];
    assert_eq!(
        got,
        want.map(|(d, r, i, h)| (d.to_owned(), r.to_owned(), i, h)),
        "the dump without a sidecar is no incident"
    );

    // The blocking sites across dumps: the top row is the site whose waits, summed over what
    // `fdr blocking` says of each dump alone, took longest, with that count and total.
    let top = &rows(&["query", "blocking", d, "--limit", "1"], &[])[0];
    let mut sums: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (id, ..) in DUMPS {
        let one = tables().parent().unwrap().join(format!("dumps/{id}.fdr"));
        let b: Value = serde_json::from_slice(
            &ok(
                &[
                    "blocking",
                    "--json",
                    "--window",
                    "all",
                    "--top",
                    "100000",
                    one.to_str().unwrap(),
                ],
                &[],
            )
            .stdout,
        )
        .unwrap();
        for site in b["blocking"].as_array().unwrap() {
            let key = (
                site["reason"].as_str().unwrap().to_owned(),
                site["site"].as_str().unwrap().to_owned(),
            );
            let e = sums.entry(key).or_default();
            e.0 += site["count"].as_u64().unwrap();
            e.1 += site["total_ns"].as_u64().unwrap();
        }
    }
    assert!(
        sums.len() > 1,
        "the dumps block at more than one site: {sums:?}"
    );
    let ((reason, site), (waits, total_ns)) =
        sums.iter().max_by_key(|(_, (_, total))| *total).unwrap();
    assert_eq!(
        (
            top["reason"].as_str(),
            top["site"].as_str(),
            top["waits"].as_u64(),
            top["total_ns"].as_u64()
        ),
        (
            Some(reason.as_str()),
            Some(site.as_str()),
            Some(*waits),
            Some(*total_ns)
        ),
        "{sums:?}"
    );

    // The releases: release 41's dumps are web-1's two, 42's the other three; a task name
    // of the healthy dump (41 only) has no polls in 42.
    let rel = rows(&["query", "releases", d, "41", "42"], &[]);
    assert!(
        rel.iter()
            .any(|r| r["polls_before"].as_u64() > Some(0) && r["polls_after"].as_u64() > Some(0)),
        "{rel:?}"
    );
    let polls_41: u64 = rel
        .iter()
        .map(|r| r["polls_before"].as_u64().unwrap())
        .sum();
    let n = rows(
        &[
            "query",
            "SELECT count(*) AS n FROM polls p JOIN dumps d ON p.dump_id = d.dump_id WHERE d.service_version = '41'",
            d,
        ],
        &[],
    );
    assert_eq!(n[0]["n"].as_u64(), Some(polls_41));

    // Text: a table with a header.
    let text = String::from_utf8(
        ok(
            &[
                "query",
                "SELECT host, count(*) AS dumps FROM dumps GROUP BY host ORDER BY host",
                d,
            ],
            &[],
        )
        .stdout,
    )
    .unwrap();
    assert!(text.contains("| host  | dumps |"), "{text}");
    assert!(text.contains("| web-1 | 3     |"), "{text}");
    assert!(text.contains("| web-2 | 2     |"), "{text}");
}

#[test]
fn queries_only_read_and_errors_say_why() {
    let d = tables().to_str().unwrap();
    let code = |args: &[&str]| {
        let o = fdr(args, &[]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (c, err) = code(&["query", "SELEKT 1", d]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("the query"), "{err}");
    let (c, err) = code(&["query", "SELECT nope FROM polls", d]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("nope"), "{err}");
    let out = tmp().join("copied.parquet");
    let copy = format!("COPY (SELECT * FROM dumps) TO '{}'", out.display());
    let (c, err) = code(&["query", &copy, d]);
    assert_eq!(c, Some(2), "{err}");
    assert!(!out.exists(), "a query wrote {}", out.display());
    let (c, err) = code(&["query", "CREATE TABLE x AS SELECT 1", d]);
    assert_eq!(c, Some(2), "{err}");
    let missing = tmp().join("no-such-tables");
    let (c, err) = code(&["query", "blocking", missing.to_str().unwrap()]);
    assert_eq!(c, Some(1), "{err}");
    assert!(err.contains("not a directory"), "{err}");
    let (c, err) = code(&["query", "blocking", "ftp://tables/x"]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("unknown scheme `ftp://`"), "{err}");
    // A directory without tables is an empty fleet, not an error.
    let empty = tmp().join(format!("query-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let r = rows(
        &[
            "query",
            "SELECT count(*) AS n FROM polls",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r[0]["n"], 0);
}

/// Copies the tables of `dir` into moto's bucket `fleet` under `checkout/tables/`.
fn upload_tables(moto: &mut moto::Moto, dir: &Path) {
    moto.mkbucket("fleet");
    for table in std::fs::read_dir(dir).unwrap() {
        let table = table.unwrap();
        for f in std::fs::read_dir(table.path()).unwrap() {
            let f = f.unwrap();
            let key = format!(
                "checkout/tables/{}/{}",
                table.file_name().to_str().unwrap(),
                f.file_name().to_str().unwrap()
            );
            moto.put("fleet", &key, &std::fs::read(f.path()).unwrap());
        }
    }
}

#[test]
fn a_bucket_holding_the_tables_gives_the_same_answers() {
    let dir = tables();
    let mut moto = moto::Moto::start();
    upload_tables(&mut moto, dir);
    let env = moto.env();
    let url = "s3://fleet/checkout/tables";
    for q in QUESTIONS {
        let local = rows(&canned(q, dir.to_str().unwrap()), &[]);
        let remote = rows(&canned(q, url), &env);
        assert_eq!(local, remote, "{q:?}");
    }
    let n = rows(&["query", "SELECT count(*) AS n FROM dumps", url], &env);
    assert_eq!(n[0]["n"], DUMPS.len());

    // Wrong credentials: the store's error, named.
    let mut bad = env.clone();
    bad[4].1 = "not-the-secret".into();
    let o = fdr(&["query", "blocking", url], &bad);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("querying {url}")) && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
}

#[test]
fn a_bucket_behind_a_private_ca_is_queried_with_ca_file() {
    let dir = tables();
    let mut moto = moto::Moto::start_tls();
    upload_tables(&mut moto, dir);
    let ca = moto.config("fleet", "checkout").root_certificates.unwrap();
    let ca = ca.to_str().unwrap();
    // Over TLS: no AWS_ALLOW_HTTP.
    let env: Vec<(&str, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ALLOW_HTTP")
        .collect();
    assert!(env[0].1.starts_with("https://"), "{env:?}");
    let url = "s3://fleet/checkout/tables";
    let local = rows(&["query", "blocking", dir.to_str().unwrap()], &[]);
    let remote = rows(&["query", "blocking", "--ca-file", ca, url], &env);
    assert_eq!(local, remote);

    // Without the CA the server's certificate is refused, and the error says so.
    let o = fdr(&["query", "blocking", url], &env);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // For a directory the option is a usage error.
    let o = fdr(
        &["query", "blocking", "--ca-file", ca, dir.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
}
