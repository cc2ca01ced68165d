//! A rule whose metric never appears is not silent: an `fdr_*` name fdr does not have stops
//! the start, naming the rule, the metric and the nearest names; any other name missing
//! from the sample is logged once and counted. (Each test in its own process: the recorder is
//! process-wide.)

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fdr_sentinel::{Error, FileModeError, Retention, Rule, Sentinel};

#[test]
fn an_fdr_metric_that_does_not_exist_is_refused_at_start() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let dir = common::temp_dir("unknown-fdr-metric");
    let err = Sentinel::builder()
        .rule(Rule::parse("locks: fdr_lock_waits_seconds p99 > 2ms").unwrap())
        .dir(&dir, Retention::default())
        .start()
        .unwrap_err();
    match &err {
        Error::UnknownFdrMetric {
            rule, metric, near, ..
        } => {
            assert_eq!(
                (rule.as_str(), metric.as_str()),
                ("locks", "fdr_lock_waits_seconds")
            );
            assert!(
                near.iter().any(|n| n == "fdr_lock_wait_seconds"),
                "{near:?}"
            );
        }
        other => panic!("{other}"),
    }
    let e = err.to_string();
    assert!(
        e.contains("rule `locks`") && e.contains("`fdr_lock_waits_seconds`"),
        "{e}"
    );
    assert!(e.contains("fdr_lock_wait_seconds"), "{e}");
    // The published name and its older alias both start.
    for rule in [
        "locks: fdr_lock_wait_seconds p99 > 2ms",
        "locks: fdr_lock_wait_ns p99 > 2ms",
        "polls: fdr_polls_total rate > 1000000",
    ] {
        let s = Sentinel::builder()
            .rule(Rule::parse(rule).unwrap())
            .dir(&dir, Retention::default())
            .log_with(|_| {})
            .start()
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        drop(s);
    }
}

#[test]
fn a_metric_missing_from_the_sample_is_logged_once_and_counted() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let dir = common::temp_dir("unknown-metric");
    let registry = prometheus::Registry::new();
    let h = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
        "http_latency_seconds",
        "latency",
    ))
    .unwrap();
    registry.register(Box::new(h)).unwrap();
    let logged = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = logged.clone();
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(10))
        .rule(Rule::parse("slow: http_latencies_seconds p99 > 20ms").unwrap())
        .registry(registry)
        .dir(&dir, Retention::default())
        .log_with(move |line| sink.lock().unwrap().push(line.to_owned()))
        .start()
        .unwrap();
    common::wait_for_stats(&sentinel, Duration::from_secs(60), None, |s| s.samples >= 5);
    assert_eq!(sentinel.stats().rules_unknown_metric, 1);
    let logged = logged.lock().unwrap();
    let about: Vec<&String> = logged
        .iter()
        .filter(|l| l.contains("http_latencies_seconds"))
        .collect();
    assert_eq!(about.len(), 1, "{logged:?}");
    assert!(
        about[0].contains("rule `slow`") && about[0].contains("http_latency_seconds"),
        "{about:?}"
    );
}

#[test]
fn a_start_without_rules_a_store_or_an_interval_is_refused_by_name() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let dir = common::temp_dir("refused-start");
    let rule = || Rule::parse("slow: process_threads value > 1000").unwrap();
    let e = Sentinel::builder()
        .dir(&dir, Retention::default())
        .start()
        .unwrap_err();
    assert!(matches!(e, Error::NoRules), "{e}");
    let e = Sentinel::builder().rule(rule()).start().unwrap_err();
    assert!(matches!(e, Error::NoStore), "{e}");
    assert!(
        e.to_string().contains("no incident store: set .dir(..)"),
        "{e}"
    );
    let e = Sentinel::builder()
        .rule(rule())
        .interval(Duration::ZERO)
        .dir(&dir, Retention::default())
        .start()
        .unwrap_err();
    assert!(matches!(e, Error::ZeroInterval), "{e}");
    let e = Sentinel::builder()
        .rule(rule())
        .file_mode(0o666)
        .dir(&dir, Retention::default())
        .start()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::FileMode(FileModeError::OthersMayWrite { mode: 0o666 })
        ),
        "{e}"
    );
}
