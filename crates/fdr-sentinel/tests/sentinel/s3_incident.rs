//! A rule held for its samples writes one incident into an S3-compatible store over HTTPS
//! (moto, on 127.0.0.1, with a certificate of a CA made for the test): the flight
//! recorder's dump, decodable, and its sidecar naming the process as the dump's header
//! does, read back through the store. (Each test in its own process: the recorder is process-wide.)

use crate::common;
use crate::moto;

use std::time::Duration;

#[test]
fn a_breached_rule_writes_one_decodable_incident_into_the_bucket() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let mut moto = moto::Moto::start_tls();
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    moto.mkbucket("incidents");
    let (queue, lines, sentinel) =
        common::deep_sentinel(|b| b.bucket(moto.config("incidents", "checkout")));

    fdr_recorder::with_region("before the breach", || {});
    queue.set(500);
    common::wait_for_stats(&sentinel, Duration::from_secs(20), Some(&lines), |s| {
        s.dumps_written == 1
    });
    let stats = sentinel.stats();
    assert_eq!(stats.dump_failures, 0, "{stats:?}");

    let m = &common::the_deep_incident(&sentinel, &stats);
    assert!(
        m.values.iter().any(|(r, v)| r == "deep" && *v == 500.0),
        "{:?}",
        m.values
    );

    // The bucket holds the dump and its sidecar, as another client sees them.
    let keys = moto.keys("incidents");
    let names: Vec<_> = keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("checkout/{}.fdr", m.id),
            format!("checkout/{}.json", m.id)
        ]
    );
    assert_eq!(keys[0].1, m.bytes);

    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("rule `deep` fired (queue_depth = 500 against 100): incident"),
        "{logged}"
    );
    sentinel.stop();
}
