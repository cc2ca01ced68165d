//! A failing S3 store (wrong credentials, a missing bucket, a stopped server) is logged and
//! counted, never a crash, never an incident visible; the sentinel keeps sampling. The
//! store is configured from the environment (`FDR_SENTINEL_S3_URL`, `AWS_*`), as ops would.
//! (Own test binary: the recorder is process-wide.)

mod common;
#[path = "common/moto.rs"]
mod moto;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fdr_sentinel::{IncidentStore, Limits, Rule, S3Store, Sentinel, Stat};

fn always() -> Rule {
    // `process_threads` is at least 1: a rule that always breaches.
    Rule::above("always", "process_threads", Stat::Value, 0.0)
        .cooldown(Duration::ZERO)
        .max_dumps(1000, Duration::from_secs(3600))
}

/// Runs an always-breaching sentinel over the store the variables name until it has
/// failed twice; returns its log.
fn failing_sentinel(vars: &[(&'static str, String)]) -> (Arc<Mutex<Vec<String>>>, Sentinel) {
    let vars = vars.to_vec();
    let (lines, log) = common::log();
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(10))
        .rule(always())
        .limits(Limits {
            cooldown: Duration::ZERO,
            max_dumps: 1000,
            ..Limits::GLOBAL
        })
        .log_with(log)
        .with_vars(move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .unwrap()
        .start()
        .unwrap();
    assert!(
        common::wait_for(Duration::from_secs(30), || sentinel.stats().dump_failures
            >= 2),
        "{:?}",
        sentinel.stats()
    );
    let stats = sentinel.stats();
    assert_eq!(stats.dumps_written, 0, "{stats:?}");
    assert_eq!(stats.last_incident, None);
    // It carries on sampling.
    let samples = stats.samples;
    assert!(common::wait_for(Duration::from_secs(10), || {
        sentinel.stats().samples > samples + 5
    }));
    (lines, sentinel)
}

/// The spool files of this process in the system's temporary directory (where a store
/// configured from the environment spools).
fn spooled() -> Vec<String> {
    let mine = format!(".fdr-s3.spool.tmp-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&mine))
        .collect()
}

#[test]
fn failures_are_counted_and_logged_and_nothing_is_visible() {
    let mut moto = moto::Moto::start();
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    for i in 0..10_000u32 {
        fdr_recorder::with_region(if i % 2 == 0 { "work" } else { "more" }, || {});
    }
    let good = moto.config("failures", "p");
    let store = S3Store::new(good.clone()).unwrap();
    store.create_bucket().unwrap();
    let url = format!("{}/failures/p", moto.endpoint());

    // Wrong credentials: the server refuses the signature.
    let (lines, sentinel) = failing_sentinel(&[
        ("FDR_SENTINEL_S3_URL", url.clone()),
        ("AWS_ACCESS_KEY_ID", moto.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret".into()),
    ]);
    sentinel.stop();
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains(
            "rule `always` fired but the dump failed: incident store: uploading the dump \
             s3://failures/p/"
        ) && logged.contains(".fdr: HTTP 403 SignatureDoesNotMatch: "),
        "{logged}"
    );
    assert!(store.list().unwrap().incidents.is_empty());
    assert_eq!(moto.keys("failures"), []);
    assert_eq!(spooled(), Vec::<String>::new());

    // A bucket that does not exist.
    let (lines, sentinel) = failing_sentinel(&[
        (
            "FDR_SENTINEL_S3_URL",
            format!("{}/no-such-bucket/p", moto.endpoint()),
        ),
        ("AWS_ACCESS_KEY_ID", moto.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", moto.secret_access_key.clone()),
    ]);
    sentinel.stop();
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("s3://no-such-bucket/p/") && logged.contains(": HTTP 404 NoSuchBucket: "),
        "{logged}"
    );
    assert_eq!(moto.keys("failures"), []);
    assert_eq!(spooled(), Vec::<String>::new());

    // The server stops: no answer.
    let port = moto.port;
    moto.stop();
    let (lines, sentinel) = failing_sentinel(&[
        ("FDR_SENTINEL_S3_URL", url),
        ("AWS_ACCESS_KEY_ID", good.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", good.secret_access_key.clone()),
    ]);
    let e = sentinel.store().list().unwrap_err();
    assert!(e.to_string().contains("no answer"), "{e}");
    sentinel.stop();
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("the dump failed: incident store: uploading the dump s3://failures/p/")
            && logged.contains(&format!(": no answer: connecting to 127.0.0.1:{port}: ")),
        "{logged}"
    );
    assert_eq!(spooled(), Vec::<String>::new());
}
