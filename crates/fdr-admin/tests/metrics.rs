//! `/metrics` is valid Prometheus text with fdr's histograms in seconds, the recorder's,
//! the sentinel's and the endpoint's counters, and a user's registry. (Own test binary: it
//! starts the global recorder.)
#![cfg(feature = "sentinel")]

mod common;

use std::time::{Duration, Instant};

use common::{get, parse_exposition};
use fdr_admin::Admin;
use fdr_recorder::task::FdrFutureExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_with_fdr_sentinel_admin_and_user_families() {
    fdr_recorder::start(fdr_recorder::Config {
        // The cost meter runs every interval of the metrics sampler.
        metrics_interval: Some(Duration::from_millis(20)),
        // Nothing ages out of the ring while the test runs, however slow the host: it
        // checks that count is 0.
        flight: Some(fdr_recorder::FlightConfig {
            min_age: Duration::from_secs(600),
            ..fdr_recorder::FlightConfig::default()
        }),
        ..fdr_recorder::Config::default()
    })
    .unwrap();
    // Traced tasks give the scheduling-latency and poll-duration histograms samples.
    for i in 0..50u64 {
        tokio::spawn(
            async move {
                tokio::time::sleep(Duration::from_millis(i % 5)).await;
                fdr_recorder::with_region("work", || std::hint::black_box(i));
            }
            .traced("metrics-task"),
        )
        .await
        .unwrap();
    }
    // A thread that fills chunks and exits: the recorder's event counter moves.
    std::thread::spawn(|| {
        for _ in 0..100_000 {
            fdr_recorder::with_region("fill", || ());
        }
    })
    .join()
    .unwrap();
    // Its 200,000 events are counted as the collector takes its chunks, which may be after
    // the thread exits.
    let started = Instant::now();
    while fdr_recorder::stats().events < 100_000 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the filling thread's chunks were not collected: {:?}",
            fdr_recorder::stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = std::env::temp_dir().join(format!("fdr-admin-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sentinel = fdr_sentinel::Sentinel::builder()
        .interval(Duration::from_millis(20))
        .rule(fdr_sentinel::Rule::above(
            "never",
            "fdr_tasks_alive",
            fdr_sentinel::Stat::Value,
            1e12,
        ))
        .rule(fdr_sentinel::Rule::above(
            "misspelled",
            "myapp_queue_dept",
            fdr_sentinel::Stat::Value,
            1.0,
        ))
        .dir(&dir, fdr_sentinel::Retention::default())
        .start()
        .unwrap();
    let registry = prometheus::Registry::new();
    let requests = prometheus::IntCounter::new("myapp_requests_total", "Requests.").unwrap();
    registry.register(Box::new(requests.clone())).unwrap();
    let latency = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
        "myapp_latency_seconds",
        "Latency.",
    ))
    .unwrap();
    registry.register(Box::new(latency.clone())).unwrap();
    // A family with fdr's prefix is skipped, not exported twice.
    let clash = prometheus::IntGauge::new("fdr_tasks_alive", "Not fdr's.").unwrap();
    registry.register(Box::new(clash)).unwrap();
    requests.inc_by(3);
    latency.observe(0.02);

    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .sentinel(&sentinel)
        .registry(registry)
        .start()
        .unwrap();
    let started = Instant::now();
    while sentinel.stats().samples < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the sentinel never sampled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The cost meter has read the sentinel's thread after it sampled.
    let started = Instant::now();
    while fdr_recorder::cost::cost().thread_cpu_ns_of(fdr_recorder::cost::Role::Sentinel) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cost meter never read the sentinel: {:?}",
            fdr_recorder::cost::cost()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = get(admin.local_addr(), "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    let e = parse_exposition(&text).unwrap_or_else(|why| panic!("{why}\n{text}"));

    for family in [
        "fdr_sched_latency_seconds",
        "fdr_poll_duration_seconds",
        "fdr_lock_wait_seconds",
    ] {
        assert_eq!(
            e.types.get(family).map(String::as_str),
            Some("histogram"),
            "{family}"
        );
    }
    assert!(
        text.contains("fdr_sched_latency_seconds_bucket{le=\"0.000001\"} "),
        "{text}"
    );
    assert!(
        text.contains("fdr_sched_latency_seconds_bucket{le=\"10\"} "),
        "{text}"
    );
    let polls = e.value("fdr_poll_duration_seconds_count", &[]).unwrap();
    assert!(polls >= 50.0, "{polls} polls");
    assert_eq!(e.value("fdr_polls_total", &[]), Some(polls));
    assert!(e.value("fdr_poll_duration_seconds_sum", &[]).unwrap() > 0.0);
    // Sleeping tasks waited well under 10 s to be polled.
    assert_eq!(
        e.value("fdr_sched_latency_seconds_bucket", &[("le", "10")]),
        e.value("fdr_sched_latency_seconds_count", &[])
    );
    assert!(e.value("fdr_tasks_spawned_total", &[]).unwrap() >= 50.0);
    assert_eq!(e.types["fdr_tasks_alive"], "gauge");
    assert!(e.value("fdr_recorder_events_total", &[]).unwrap() >= 100_000.0);
    assert_eq!(
        e.value("fdr_recorder_aged_out_events_total", &[]),
        Some(0.0)
    );
    // The sentinel's counters.
    assert!(e.value("fdr_sentinel_samples_total", &[]).unwrap() >= 2.0);
    assert_eq!(e.value("fdr_sentinel_dumps_written_total", &[]), Some(0.0));
    assert_eq!(
        e.value("fdr_sentinel_suppressed_total", &[("reason", "cooldown")]),
        Some(0.0)
    );
    assert_eq!(e.value("fdr_sentinel_degraded", &[]), Some(0.0));
    assert_eq!(
        e.value("fdr_sentinel_rules_unknown_metric_total", &[]),
        Some(1.0)
    );
    for name in [
        "fdr_sentinel_dump_failures_no_space_total",
        "fdr_sentinel_snapshot_waits_total",
        "fdr_sentinel_snapshot_timeouts_total",
        "fdr_sentinel_store_warnings_total",
        "fdr_sentinel_dumps_pending",
    ] {
        assert_eq!(e.value(name, &[]), Some(0.0), "{name}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
    // fdr's cost: its threads' CPU time by thread, its share of the process's, the budget.
    assert_eq!(e.types["fdr_cost_thread_cpu_seconds_total"], "counter");
    assert!(
        e.value(
            "fdr_cost_thread_cpu_seconds_total",
            &[("thread", "sentinel")]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        e.value(
            "fdr_cost_thread_cpu_seconds_total",
            &[("thread", "collector")]
        )
        .is_some()
    );
    let share = e.value("fdr_cost_share", &[]).unwrap();
    assert!((0.0..=1.0).contains(&share), "{share}");
    assert_eq!(e.value("fdr_cost_budget", &[]), Some(0.01));
    let level = e.value("fdr_cost_shed_level", &[]).unwrap();
    assert!([0.0, 1.0, 2.0].contains(&level), "{level}");
    assert!(e.value("fdr_cost_event_seconds", &[]).unwrap() > 0.0);
    assert!(e.value("fdr_cost_process_cpu_seconds_total", &[]).unwrap() > 0.0);
    // The endpoint's own.
    assert_eq!(e.value("fdr_admin_captures_total", &[]), Some(0.0));
    // The user's registry, after fdr's; the clashing family only once, fdr's.
    assert_eq!(e.value("myapp_requests_total", &[]), Some(3.0));
    assert_eq!(e.value("myapp_latency_seconds_count", &[]), Some(1.0));
    assert!(text.contains("# fdr-admin: skipped the registry's family fdr_tasks_alive"));
    assert_eq!(
        e.samples
            .iter()
            .filter(|s| s.name == "fdr_tasks_alive")
            .count(),
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}
