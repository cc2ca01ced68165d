//! A failing S3 store (wrong credentials, a missing bucket, a stopped server) is logged and
//! counted, never a crash, never an incident visible; the sentinel keeps sampling. The
//! store is configured from the environment (`FDR_SENTINEL_URL`, `AWS_*`), as ops would.
//! (Each test in its own process: the recorder is process-wide.)

use crate::common;
use crate::moto;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fdr_sentinel::{BucketStore, IncidentStore, Limits, Rule, Sentinel, Stat};

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
    common::wait_for_stats(&sentinel, Duration::from_secs(30), None, |s| {
        s.dump_failures >= 2
    });
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
    let mine = format!(".fdr-bucket.spool.tmp-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&mine))
        .collect()
}

#[test]
fn failures_are_counted_and_logged_and_nothing_is_visible() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let mut moto = moto::Moto::start();
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    for i in 0..10_000u32 {
        fdr_recorder::with_region(if i % 2 == 0 { "work" } else { "more" }, || {});
    }
    let good = moto.config("failures", "p");
    moto.mkbucket("failures");
    let store = BucketStore::new(good).unwrap();
    let endpoint = moto.endpoint();
    let env = |url: &str, key: &str, secret: &str| {
        vec![
            ("FDR_SENTINEL_URL", url.to_owned()),
            ("AWS_ENDPOINT_URL", endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", key.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
        ]
    };
    let (key, secret) = (moto.access_key_id.clone(), moto.secret_access_key.clone());

    // Wrong credentials: the server refuses the signature.
    let (lines, sentinel) = failing_sentinel(&env("s3://failures/p", &key, "not-the-secret"));
    sentinel.stop();
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains(
            "rule `always` fired but the dump failed: incident store: uploading the dump \
             s3://failures/p/"
        ) && logged.contains(".fdr: PermissionDenied: ")
            && logged.contains("SignatureDoesNotMatch"),
        "{logged}"
    );
    assert!(store.list().unwrap().incidents.is_empty());
    assert_eq!(moto.keys("failures"), []);
    assert_eq!(spooled(), Vec::<String>::new());

    // A bucket that does not exist.
    let (lines, sentinel) = failing_sentinel(&env("s3://no-such-bucket/p", &key, &secret));
    sentinel.stop();
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("s3://no-such-bucket/p/") && logged.contains("NoSuchBucket"),
        "{logged}"
    );
    assert_eq!(moto.keys("failures"), []);
    assert_eq!(spooled(), Vec::<String>::new());

    // The server stops: no answer.
    moto.stop();
    let (lines, sentinel) = failing_sentinel(&env("s3://failures/p", &key, &secret));
    let e = sentinel.store().list().unwrap_err();
    assert!(e.to_string().contains("listing s3://failures/p"), "{e}");
    sentinel.stop();
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("the dump failed: incident store: uploading the dump s3://failures/p/")
            && logged.contains("127.0.0.1"),
        "{logged}"
    );
    assert_eq!(spooled(), Vec::<String>::new());
}
