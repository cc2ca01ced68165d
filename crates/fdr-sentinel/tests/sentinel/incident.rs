//! A rule held for its samples writes one incident: the flight recorder's dump, decodable,
//! with its sidecar; the rule's cooldown holds further dumps back while the breach goes on.
//! (Each test in its own process: the recorder is process-wide.)

use crate::common;

use std::time::Duration;

use fdr_sentinel::Retention;

#[test]
fn a_breached_rule_writes_one_decodable_incident_with_its_metadata() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    let dir = common::temp_dir("incident");
    let (queue, lines, sentinel) = common::deep_sentinel(|b| b.dir(&dir, Retention::default()));

    fdr_recorder::with_region("before the breach", || {});
    queue.set(500);
    common::wait_for_stats(&sentinel, Duration::from_secs(10), None, |s| {
        s.dumps_written == 1
    });
    assert!(sentinel.degraded());
    assert_eq!(sentinel.breaching(), ["deep"]);
    // The breach goes on; the cooldown holds.
    let samples = sentinel.stats().samples;
    assert!(common::wait_for(Duration::from_secs(10), || {
        sentinel.stats().samples >= samples + 10
    }));
    let stats = sentinel.stats();
    assert_eq!(stats.dumps_written, 1, "{stats:?}");
    assert!(stats.suppressed_cooldown >= 5, "{stats:?}");
    assert_eq!(stats.dump_failures, 0);

    common::the_deep_incident(&sentinel, &stats);
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("rule `deep` fired (queue_depth = 500 against 100): incident"),
        "{logged}"
    );

    queue.set(0);
    assert!(common::wait_for(Duration::from_secs(10), || !sentinel.degraded()));
    sentinel.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
