//! S4: a rule that flaps every interval for ten simulated minutes makes no more dumps than
//! its limit, and a real sentinel sampling a flapping gauge keeps to its limit too.
//! (Each test in its own process: the recorder is process-wide.)

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fdr_sentinel::{Engine, Limits, MetricValue, Metrics, Retention, Rule, Sentinel, Stat};

fn gauge(v: f64) -> Metrics {
    Metrics::from([("errors".to_owned(), MetricValue::Gauge(v))])
}

/// Ten simulated minutes of 5-second samples, breaching every other one.
fn flap(rule: Rule, global: Limits) -> (usize, usize) {
    let mut engine = Engine::new(vec![rule], global);
    let (mut dumps, mut suppressed) = (0, 0);
    for i in 0..120u32 {
        let v = if i % 2 == 0 { 50.0 } else { 0.0 };
        let step = engine.step(Duration::from_secs(5) * i, gauge(v));
        // Each dump is written before the next sample.
        for t in &step.triggers {
            engine.settle(t, true);
        }
        dumps += step.triggers.len();
        suppressed += step.suppressed.len();
    }
    (dumps, suppressed)
}

#[test]
fn a_flapping_rule_makes_no_more_dumps_than_its_limits_allow() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let rule = Rule::above("flappy", "errors", Stat::Value, 10.0)
        .cooldown(Duration::from_secs(60))
        .max_dumps(3, Duration::from_secs(600));
    // 60 breaches: dumps at 0, 60 and 120 s, then the window's limit until 600 s.
    let (dumps, suppressed) = flap(rule.clone(), Limits::GLOBAL);
    assert_eq!((dumps, suppressed), (3, 57));
    // The global limit binds when the rule's is looser.
    let loose = rule
        .clone()
        .cooldown(Duration::ZERO)
        .max_dumps(1000, Duration::from_secs(600));
    let global = Limits {
        cooldown: Duration::from_secs(30),
        max_dumps: 5,
        window: Duration::from_secs(3600),
        lifetime: None,
    };
    assert_eq!(flap(loose, global).0, 5);
    // Held for two samples, a flapping breach never fires.
    assert_eq!(flap(rule.for_samples(2), Limits::GLOBAL), (0, 0));
}

#[test]
fn a_real_sentinel_on_a_flapping_gauge_keeps_to_its_limit() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    let registry = prometheus::Registry::new();
    let errors = prometheus::IntGauge::new("errors", "errors now").unwrap();
    registry.register(Box::new(errors.clone())).unwrap();
    let dir = common::temp_dir("flapping");
    let (_lines, log) = common::log();
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(5))
        .registry(registry)
        .runtime_metrics(false)
        .process_metrics(false)
        .rule(
            Rule::above("flappy", "errors", Stat::Value, 10.0)
                .cooldown(Duration::ZERO)
                .max_dumps(2, Duration::from_secs(3600)),
        )
        .limits(Limits {
            cooldown: Duration::ZERO,
            ..Limits::GLOBAL
        })
        .dir(&dir, Retention::default())
        .log_with(log)
        .start()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut on = false;
            while !stop.load(Ordering::Relaxed) {
                on = !on;
                errors.set(if on { 50 } else { 0 });
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    assert!(common::wait_for(Duration::from_secs(20), || {
        sentinel.stats().samples >= 200
    }));
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    // Stopping waits for a dump in progress: then the counts and the store agree.
    let view = sentinel.handle();
    sentinel.stop();
    let stats = view.stats();
    assert!(stats.dumps_written <= 2, "{stats:?}");
    assert!(stats.dumps_written >= 1, "{stats:?}");
    assert!(
        stats.suppressed_limit + stats.suppressed_busy > 0,
        "{stats:?}"
    );
    assert_eq!(
        view.store().list().unwrap().incidents.len() as u64,
        stats.dumps_written
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
