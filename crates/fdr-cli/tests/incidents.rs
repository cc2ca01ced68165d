//! `fdr incidents` over a directory and over a bucket (moto's S3 on 127.0.0.1, written by
//! the sentinel's object store): the incidents newest first with their time, host,
//! service, rule, values and top finding; halves and unreadable sidecars are not listed as
//! incidents; the directory is left as it was.

#[path = "../../fdr-sentinel/tests/sentinel/common/moto.rs"]
mod moto;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fdr_sentinel::{BucketStore, IncidentMeta, IncidentStore};
use serde_json::Value;

fn meta(id: &str, t: u64, host: &str) -> IncidentMeta {
    IncidentMeta {
        id: id.to_owned(),
        rule: "slow".into(),
        condition: "slow: fdr_sched_latency_ns p99 > 20000000 for 3".into(),
        metric: "fdr_sched_latency_ns".into(),
        value: 31e6,
        threshold: 20e6,
        values: vec![("slow".into(), 31e6), ("leak".into(), 12.0)],
        time_unix_ms: t,
        host: host.into(),
        pid: 4312,
        service_version: Some("42.1".into()),
        service: Some("checkout".into()),
        process_start_unix_ms: Some(t - 60_000),
        fdr_version: Some("0.1.0".into()),
        build_id: Some("0a1b2c3d".into()),
        bytes: 0,
        cost: None,
    }
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("incidents-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The incidents every test lists: two complete ones, from two hosts.
fn incidents() -> [IncidentMeta; 2] {
    [
        meta("20261206T120000.000Z-slow", 1_796_558_400_000, "web-1"),
        meta("20261206T123000.000Z-slow", 1_796_560_200_000, "web-7"),
    ]
}

fn fdr(args: &[&str], env: &[(&str, String)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fdr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks `fdr incidents LOCATION --json` and its text form.
fn check_listing(location: &str, env: &[(&str, String)]) -> Value {
    let out = fdr(&["incidents", location, "--json"], env);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["location"], location);
    let rows = v["incidents"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let [old, new] = incidents();
    assert_eq!(ids, [new.id.as_str(), old.id.as_str()], "newest first");
    let r = &rows[0];
    assert_eq!(r["host"], "web-7");
    assert_eq!(r["service"], "checkout");
    assert_eq!(r["service_version"], "42.1");
    assert_eq!(r["rule"], "slow");
    assert_eq!(r["time_unix_ms"], new.time_unix_ms);
    assert_eq!(r["values"]["slow"], 31e6);
    assert_eq!(r["values"]["leak"], 12.0);
    // The sample trace's diagnosis has findings: the top one is named.
    let top = &r["top_finding"];
    assert!(top["rule"].is_string() && top["title"].is_string(), "{r}");
    assert!(
        ["info", "warning", "critical"].contains(&top["severity"].as_str().unwrap()),
        "{top}"
    );

    let text = String::from_utf8(fdr(&["incidents", location], env).stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("2026-12-06 12:30:00.000 UTC  web-7  checkout 42.1 (pid 4312)  20261206T123000.000Z-slow"),
        "{text}"
    );
    assert!(text.contains("  slow: fdr_sched_latency_ns p99 > 20000000 for 3, at 31000000; every rule: leak=12 slow=31000000\n"), "{text}");
    assert!(
        text.contains(&format!(
            "top finding: {} {}: ",
            top["severity"].as_str().unwrap(),
            top["rule"].as_str().unwrap()
        )),
        "{text}"
    );

    // The newest only, from the sidecars alone.
    let out = fdr(
        &[
            "incidents",
            location,
            "--json",
            "--limit",
            "1",
            "--no-diagnose",
        ],
        env,
    );
    let v1: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v1["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(v1["listed"], 2);
    assert!(v1["incidents"][0].get("top_finding").is_none());
    v
}

fn names(d: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    n.sort();
    n
}

#[test]
fn a_directorys_incidents_are_listed_and_it_is_left_as_it_was() {
    let d = dir("dir");
    let trace = fdr_format::testing::sample_trace();
    for m in incidents() {
        std::fs::write(d.join(format!("{}.fdr", m.id)), &trace).unwrap();
        let stored = IncidentMeta {
            bytes: trace.len() as u64,
            ..m
        };
        std::fs::write(
            d.join(format!("{}.json", stored.id)),
            stored.to_json().to_string(),
        )
        .unwrap();
    }
    // A dump without its sidecar, a sidecar that is not one, a temporary name.
    std::fs::write(d.join("20261206T130000.000Z-half.fdr"), &trace).unwrap();
    std::fs::write(d.join("20261206T140000.000Z-bad.fdr"), &trace).unwrap();
    std::fs::write(d.join("20261206T140000.000Z-bad.json"), b"{\"id\": 3}").unwrap();
    std::fs::write(d.join(".20261206T150000.000Z-x.json.tmp-1-0"), b"{}").unwrap();
    let before = names(&d);
    let v = check_listing(d.to_str().unwrap(), &[]);
    assert_eq!(
        v["unreadable"],
        serde_json::json!([{"id": "20261206T140000.000Z-bad", "why": "field `id`: expected a string"}])
    );
    assert_eq!(names(&d), before, "listing changes nothing");

    // Not a directory, not a known URL: errors that say so.
    let out = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(["incidents", d.join("nothing-here").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    let out = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(["incidents", "ftp://incidents/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown scheme `ftp://`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes [`incidents`] with the sample trace as their dump into moto's bucket `fleet`
/// under `checkout`, through the sentinel's store; returns the trace.
fn put_incidents(moto: &mut moto::Moto) -> Vec<u8> {
    moto.mkbucket("fleet");
    let store = BucketStore::new(moto.config("fleet", "checkout")).unwrap();
    let trace = fdr_format::testing::sample_trace();
    for m in incidents() {
        store
            .put(&m, &mut |out: &mut dyn Write| {
                out.write_all(&trace).map(|()| trace.len() as u64)
            })
            .unwrap();
    }
    trace
}

#[test]
fn a_buckets_incidents_are_listed() {
    let mut moto = moto::Moto::start();
    let trace = put_incidents(&mut moto);
    let env = moto.env();
    let v = check_listing("s3://fleet/checkout", &env);
    assert_eq!(v["incidents"][0]["bytes"], trace.len() as u64);

    // Wrong credentials: the store's error, named.
    let mut bad = env.clone();
    bad[4].1 = "not-the-secret".into();
    let out = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(["incidents", "s3://fleet/checkout"])
        .envs(bad.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listing the incidents in s3://fleet/checkout")
            && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
}

#[test]
fn a_bucket_behind_a_private_ca_is_read_with_ca_file() {
    let mut moto = moto::Moto::start_tls();
    put_incidents(&mut moto);
    let ca = moto.config("fleet", "checkout").root_certificates;
    let ca = ca.expect("the server's CA");
    // Over TLS: no AWS_ALLOW_HTTP.
    let env: Vec<(&str, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ALLOW_HTTP")
        .collect();
    let url = "s3://fleet/checkout";
    assert!(moto.endpoint().starts_with("https://"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fdr"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap()
    };

    // Trusting the CA: both incidents, read over TLS.
    let ca = ca.to_str().unwrap();
    let out = run(&["incidents", "--json", "--ca-file", ca, url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incidents"].as_array().map(Vec::len), Some(2), "{v}");

    // Without it the server's certificate is refused, and the error says so.
    let out = run(&["incidents", url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listing the incidents in s3://fleet/checkout")
            && err.to_lowercase().contains("certificate"),
        "{err}"
    );

    // A CA file that is not there: named.
    let out = run(&["incidents", "--ca-file", "/nonexistent/ca.pem", url]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");

    // And for a directory the option is a usage error.
    let d = dir("ca-file-on-a-directory");
    let out = run(&["incidents", "--ca-file", ca, d.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}
