//! A rule name too long to name its incidents (`TIME-NAME`, at most 200 bytes) is refused
//! at start, whichever way the rule came (text, code, environment), instead of being
//! accepted and failing every dump; the longest accepted name dumps. (Each test in its own process: the
//! recorder is process-wide.)

use crate::common;

use std::time::Duration;

use fdr_sentinel::{Limits, Retention, Rule, Sentinel, Stat};

#[test]
fn a_rule_name_too_long_for_its_incidents_is_refused_at_start() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    let long = "n".repeat(180);
    let want = "is 180 bytes long; a rule name is at most 179";

    let e = Rule::parse(&format!("{long}: process_threads value > 0")).unwrap_err();
    assert!(e.to_string().contains(want), "{e}");

    let dir = common::temp_dir("rule-names");
    let e = Sentinel::builder()
        .rule(Rule::above(&long, "process_threads", Stat::Value, 0.0))
        .dir(&dir, Retention::default())
        .start()
        .unwrap_err();
    assert!(e.to_string().contains(want), "{e}");

    let rules = format!("ok: process_threads value > 0; {long}: process_threads value > 0");
    let e = Sentinel::builder()
        .with_vars(|k| (k == "FDR_SENTINEL_RULES").then(|| rules.clone()))
        .unwrap_err();
    assert!(e.to_string().contains(want), "{e}");

    let e = Sentinel::builder()
        .rule(Rule::above("bad name", "process_threads", Stat::Value, 0.0))
        .dir(&dir, Retention::default())
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("must be letters, digits"), "{e}");

    // The longest name that fits writes its incident.
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    let longest = "n".repeat(Rule::MAX_NAME_BYTES);
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(10))
        .rule(Rule::above(&longest, "process_threads", Stat::Value, 0.0))
        .limits(Limits {
            cooldown: Duration::ZERO,
            ..Limits::GLOBAL
        })
        .dir(&dir, Retention::default())
        .log_with(|_| {})
        .start()
        .unwrap();
    common::wait_for_stats(&sentinel, Duration::from_secs(60), None, |s| {
        s.dumps_written >= 1
    });
    let stats = sentinel.stats();
    assert_eq!(stats.dump_failures, 0, "{stats:?}");
    let id = stats.last_incident.unwrap();
    assert!(id.ends_with(&longest) && id.len() == 200, "{id}");
    sentinel.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
