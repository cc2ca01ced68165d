//! Periodic metric samples: fdr's runtime metrics and an application's registered values
//! are written into the trace by the sampler thread, under the names `/metrics` publishes.
//! (Own test binary: it installs the global recorder; tests run one at a time.)

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, mpsc};
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use common::{gettid, wait_until_asleep};
use fdr_format::{Batch, Decoder, EventKind, Tables};
use fdr_recorder::{Config, FlightConfig};

static SERIAL: StdMutex<()> = StdMutex::new(());

fn serial(interval: Option<Duration>) -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(600),
            max_bytes: 16 << 20,
        }),
        metrics_interval: interval,
        ..Config::default()
    })
    .expect("recorder starts");
    g
}

/// Metric samples: name -> (thread name, timestamp, value), in time order.
type Samples = BTreeMap<String, Vec<(String, u64, f64)>>;

/// Every metric sample of the flight window.
fn samples() -> Samples {
    let mut bytes = Vec::new();
    fdr_recorder::flight().write_to(&mut bytes).unwrap();
    let mut d = Decoder::new(&bytes[..]).unwrap();
    let mut tables = Tables::new();
    let mut raw = Vec::new();
    while let Some(b) = d.next_batch() {
        match b.expect("batch") {
            Batch::Table(t) => tables.apply(&t).unwrap(),
            Batch::Events(b) => {
                for e in b.events() {
                    let e = e.expect("event");
                    if let EventKind::Metric { name, value } = e.kind {
                        raw.push((b.thread, tables.name(name).into_owned(), e.ts, value));
                    }
                }
            }
        }
    }
    let mut out = Samples::new();
    for (thread, name, ts, value) in raw {
        let tname = tables
            .threads()
            .find(|(t, _)| *t == thread)
            .map(|(_, i)| i.name.clone())
            .unwrap_or_default();
        out.entry(name).or_default().push((tname, ts, value));
    }
    for v in out.values_mut() {
        v.sort_by_key(|s| s.1);
    }
    out
}

/// Polls that complete: a future that returns pending `n` times, waking itself.
struct Yield(u32);

impl std::future::Future for Yield {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    // Bounded by the futures used here, which complete after a few polls.
    for _ in 0..1000 {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the future did not complete");
}

#[test]
#[cfg(target_os = "linux")]
fn the_sampler_writes_fdrs_metrics_and_the_applications_into_the_trace() {
    let _s = serial(Some(Duration::from_millis(20)));
    // The flight window may hold samples of the tests before this one (the recorder is the
    // process's): only later ones count here.
    let since = samples().values().flatten().map(|x| x.1).max().unwrap_or(0);
    let depth = Arc::new(AtomicU64::new(7));
    let seen = depth.clone();
    let source =
        fdr_recorder::register_metric(r#"app_queue_depth{queue="jobs",host="a"}"#, move || {
            seen.load(Ordering::Relaxed) as f64
        })
        .unwrap();
    assert_eq!(source.name(), r#"app_queue_depth{host="a",queue="jobs"}"#);

    // Work the samples describe: polls of traced tasks, and waits on a contended lock.
    use fdr_recorder::task::FdrFutureExt;
    for _ in 0..50 {
        block_on(Yield(3).traced("sampled"));
    }
    let lock = Arc::new(fdr_recorder::locks::Mutex::new(0u32));
    let held = lock.lock().unwrap();
    let (locking_tx, locking_rx) = mpsc::channel();
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            locking_tx.send(gettid()).unwrap();
            *lock.lock().unwrap() += 1;
        })
    };
    // Held until the waiter, past its last step before `lock()`, sleeps (it sleeps nowhere
    // else, so it waits for this lock), and then 30 ms more: a wait of at least that long.
    let waiter_tid = locking_rx.recv().unwrap();
    assert!(
        wait_until_asleep(waiter_tid),
        "the waiter waits for the lock"
    );
    std::thread::sleep(Duration::from_millis(30));
    drop(held);
    waiter.join().unwrap();

    // The sampler writes on its own: wait (bounded) until it has sampled the source at 7,
    // before it changes to 9.
    let sampled = |s: &Samples, value: f64| {
        s.get(source.name())
            .is_some_and(|v| v.iter().any(|x| x.1 > since && x.2 == value))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sampled(&samples(), 7.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    depth.store(9, Ordering::Relaxed);

    // Then until it has written a sample that saw all of the above, and every name below
    // has two samples of this test.
    let names = [
        "fdr_polls_total",
        "fdr_tasks_spawned_total",
        "fdr_tasks_completed_total",
        "fdr_wakes_total",
        "fdr_tasks_alive",
        "fdr_recorder_events_total",
        "fdr_recorder_lost_events_total",
        "fdr_recorder_aged_out_events_total",
        "fdr_sched_latency_seconds_count",
        "fdr_poll_duration_seconds_sum",
        "fdr_lock_wait_seconds_count",
        r#"fdr_lock_wait_seconds{quantile="0.5"}"#,
        r#"fdr_lock_wait_seconds{quantile="0.99"}"#,
        r#"fdr_lock_wait_seconds{quantile="1"}"#,
        source.name(),
    ];
    let of_this_test = |s: &Samples, name: &str| -> Vec<(String, u64, f64)> {
        s.get(name)
            .into_iter()
            .flatten()
            .filter(|x| x.1 > since)
            .cloned()
            .collect()
    };
    let mut s = samples();
    while Instant::now() < deadline {
        let polls_done = s
            .get("fdr_polls_total")
            .and_then(|v| v.last())
            .is_some_and(|l| l.2 >= 200.0);
        let depth_seen = s
            .get(source.name())
            .and_then(|v| v.last())
            .is_some_and(|l| l.2 == 9.0);
        if polls_done && depth_seen && names.iter().all(|n| of_this_test(&s, n).len() >= 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        s = samples();
    }
    for name in names {
        assert!(s.contains_key(name), "no sample of {name}: {:?}", s.keys());
        let v = of_this_test(&s, name);
        assert!(v.len() >= 2, "{name}: {v:?}");
        assert!(
            v.iter().all(|x| x.0 == "fdr-metrics"),
            "{name} is written by the sampler's thread: {v:?}"
        );
    }
    let last = |name: &str| s[name].last().unwrap().2;
    // Counters only grow, and count what this test did.
    for name in ["fdr_polls_total", "fdr_recorder_events_total"] {
        assert!(
            s[name].windows(2).all(|w| w[0].2 <= w[1].2),
            "{name}: {:?}",
            s[name]
        );
    }
    assert!(last("fdr_polls_total") >= 200.0);
    assert!(last("fdr_tasks_completed_total") >= 50.0);
    assert_eq!(last(source.name()), 9.0);
    assert!(s[source.name()].iter().any(|x| x.2 == 7.0));
    // The wait of about 30 ms shows in the interval that holds it, in seconds.
    let waits = &s["fdr_lock_wait_seconds_count"];
    assert!(last("fdr_lock_wait_seconds_count") >= 1.0, "{waits:?}");
    let max_wait = s[r#"fdr_lock_wait_seconds{quantile="1"}"#]
        .iter()
        .map(|x| x.2)
        .fold(0.0, f64::max);
    assert!(
        (0.02..1.0).contains(&max_wait),
        "largest lock wait of an interval: {max_wait} s"
    );
    assert!(last("fdr_lock_wait_seconds_sum") >= 0.02);

    // Dropped, the value is no longer sampled.
    let name = source.name().to_string();
    drop(source);
    let before = samples().get(&name).map_or(0, Vec::len);
    fdr_recorder::record_metrics();
    fdr_recorder::record_metrics();
    assert_eq!(samples().get(&name).map_or(0, Vec::len), before);
}

#[test]
fn bad_names_are_refused_and_a_panicking_value_is_dropped() {
    let _s = serial(None);
    for (name, why) in [
        ("fdr_polls_total", "fdr's own"),
        ("1st", "not starting with a digit"),
        ("a{b=1}", "quoted"),
    ] {
        let e = fdr_recorder::register_metric(name, || 1.0).unwrap_err();
        assert!(e.to_string().contains(why), "{name}: {e}");
    }
    let a = fdr_recorder::register_metric("dup_metric", || 1.0).unwrap();
    let e = fdr_recorder::register_metric("dup_metric", || 2.0).unwrap_err();
    assert!(e.to_string().contains("registered already"), "{e}");
    assert!(
        matches!(
            &e,
            fdr_recorder::Error::Config(fdr_recorder::ConfigError::Metrics(
                fdr_recorder::MetricsError::Registered { name }
            )) if name == "dup_metric"
        ),
        "{e:?}"
    );
    let e = fdr_recorder::register_metric("fdr_polls_total", || 1.0).unwrap_err();
    assert!(
        matches!(
            &e,
            fdr_recorder::Error::Config(fdr_recorder::ConfigError::Metrics(
                fdr_recorder::MetricsError::Name {
                    problem: fdr_recorder::MetricNameProblem::Reserved,
                    ..
                }
            ))
        ),
        "{e:?}"
    );
    drop(a);
    let again = fdr_recorder::register_metric("dup_metric", || 3.0).unwrap();

    let before = fdr_recorder::metric_source_panics();
    let _bad = fdr_recorder::register_metric("panics_when_read", || panic!("read failed")).unwrap();
    fdr_recorder::record_metrics();
    fdr_recorder::record_metrics();
    assert_eq!(fdr_recorder::metric_source_panics(), before + 1);
    let s = samples();
    assert!(!s.contains_key("panics_when_read"));
    assert!(
        s["dup_metric"].iter().all(|x| x.2 == 3.0),
        "{:?}",
        s["dup_metric"]
    );
    drop(again);

    let e = fdr_recorder::start(Config {
        metrics_interval: Some(Duration::from_millis(1)),
        ..Config::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("metrics_interval"), "{e}");
}

#[test]
fn without_an_interval_the_sampler_writes_nothing() {
    let _s = serial(None);
    let _v = fdr_recorder::register_metric("quiet_metric", || 1.0).unwrap();
    let before = samples().get("quiet_metric").map_or(0, Vec::len);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(samples().get("quiet_metric").map_or(0, Vec::len), before);
}
