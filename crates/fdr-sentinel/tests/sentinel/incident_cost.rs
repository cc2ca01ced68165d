//! An incident's sidecar carries what fdr cost the process then: the recorder's cost meter,
//! with the sentinel's own threads among fdr's.
//! (Each test in its own process: the recorder is process-wide.)

use crate::common;

use std::time::Duration;

use fdr_sentinel::{Retention, Rule, Sentinel};

#[test]
fn the_sidecar_carries_fdrs_cost_share_and_its_threads() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    fdr_recorder::start(fdr_recorder::Config {
        metrics_interval: Some(Duration::from_millis(20)),
        ..fdr_recorder::Config::default()
    })
    .unwrap();
    let registry = prometheus::Registry::new();
    let queue = prometheus::IntGauge::new("queue_depth", "requests waiting").unwrap();
    registry.register(Box::new(queue.clone())).unwrap();
    let dir = common::temp_dir("incident-cost");
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(20))
        .registry(registry)
        .rule(Rule::parse("deep: queue_depth value > 100 for 2 cooldown 1h").unwrap())
        .dir(&dir, Retention::default())
        .start()
        .unwrap();
    // The meter has read the sentinel's threads once they ran.
    assert!(
        common::wait_for(Duration::from_secs(30), || {
            let c = fdr_recorder::cost::cost();
            c.intervals >= 2 && c.thread_cpu_ns_of(fdr_recorder::cost::Role::Sentinel) > 0
        }),
        "{:?}",
        fdr_recorder::cost::cost()
    );
    queue.set(500);
    common::wait_for_stats(&sentinel, Duration::from_secs(10), None, |s| {
        s.dumps_written == 1
    });
    let listing = sentinel.store().list().unwrap();
    let [m] = &listing.incidents[..] else {
        panic!("{listing:?}")
    };
    let cost = m.cost.as_ref().expect("the sidecar's cost");
    assert_eq!(cost.budget, fdr_recorder::cost::DEFAULT_BUDGET);
    assert!((0.0..=1.0).contains(&cost.share), "{cost:?}");
    assert!(cost.process_cpu_seconds > 0.0, "{cost:?}");
    let thread = |name: &str| {
        cost.thread_cpu_seconds
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
    };
    assert!(thread("sentinel").is_some_and(|s| s > 0.0), "{cost:?}");
    assert!(thread("metrics").is_some_and(|s| s > 0.0), "{cost:?}");
    // The sidecar on disk holds it as JSON under `cost`.
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
                .expect("a sidecar"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(json["cost"]["share"].is_f64(), "{json}");
    sentinel.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
