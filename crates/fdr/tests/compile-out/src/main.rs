//! Uses every item of the facade that exists with and without `record`, as an
//! instrumented library and its binary would: every recording call, the control calls, every
//! field of `Stats`, `Lost` and the configurations (exhaustive patterns and literals, so a
//! field one build has and the other lacks fails to compile), every `Error` predicate, and
//! `Recorder`'s methods. `cargo xtask ci` builds and runs it both ways.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use fdr::FdrFutureExt;

fn handler(user: u32, shared: &fdr::sync::Mutex<u32>) -> u32 {
    let _task = fdr::task("request");
    let sum = fdr::with_region("auth", || user * 2);
    let _db = fdr::region("db");
    let _static = fdr::region!("cache");
    *shared.lock().unwrap() += 1;
    fdr::blocking(fdr::BlockReason::Io, || std::hint::black_box(sum));
    fdr::log!("db", "static message");
    fdr::log!("db", "user {user} sum {sum}");
    fdr::log("db", "plain");
    let phase = fdr::async_region("phase");
    let _ = phase.id();
    sum
}

/// Polls a future that never waits to completion.
fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future was expected to be ready"),
    }
}

/// Every field of the counters, by exhaustive destructuring.
fn counters(stats: fdr::Stats) -> u64 {
    let fdr::Stats {
        events,
        bytes,
        chunks,
        aged_out,
        lost,
        after_thread_exit,
        reentrant,
        threads,
        live_threads,
        chunks_allocated,
        ring_bytes,
        snapshots,
        snapshots_refused,
        snapshots_running,
        snapshot_chunks_released,
    } = stats;
    let fdr::Lost {
        events: aged_events,
        bytes: aged_bytes,
        chunks: aged_chunks,
    } = aged_out;
    let losses: u64 = lost.iter().map(|l| l.events).sum();
    let _ = (bytes, chunks, aged_bytes, aged_chunks, live_threads);
    let _ = (chunks_allocated, ring_bytes, snapshots, snapshots_refused);
    let _ = (snapshots_running, snapshot_chunks_released, after_thread_exit, reentrant);
    let _ = stats.lost_for(fdr::LossReason::Oversize);
    assert_eq!(losses, stats.lost_events());
    let _ = (stats.lost_bytes(), stats.aged_out_events(), aged_events);
    events + threads
}

/// Asks every predicate of the facade's error, and reads every configuration refusal's
/// fields, as code that handles them does.
fn explain(e: &fdr::Error) -> &'static str {
    if let Some(config) = e.config_error() {
        return match config {
            fdr::ConfigError::FlightMaxBytes {
                max_bytes,
                min,
                max,
                chunk_bytes,
            } => {
                let _ = (max_bytes, min, max, chunk_bytes);
                "bad configuration"
            }
            fdr::ConfigError::Os(os) => match os {
                fdr::OsConfigError::ScanInterval { scan_interval, min } => {
                    let _: (Duration, Duration) = (*scan_interval, *min);
                    "bad OS view scan interval"
                }
                fdr::OsConfigError::StackCopyBytes {
                    stack_copy_bytes,
                    min,
                    max,
                } => {
                    let _: (usize, usize, usize) = (*stack_copy_bytes, *min, *max);
                    "bad OS view stack copy size"
                }
                fdr::OsConfigError::CpuProfileHz {
                    cpu_profile_hz,
                    max,
                } => {
                    let _: (u32, u32) = (*cpu_profile_hz, *max);
                    "bad OS view profiling rate"
                }
                _ => "bad OS view configuration",
            },
            fdr::ConfigError::Metrics(metrics) => match metrics {
                fdr::MetricsError::Interval { interval, min } => {
                    let _: (Duration, Duration) = (*interval, *min);
                    "bad metrics interval"
                }
                fdr::MetricsError::CostBudget { share } => {
                    let _: f64 = *share;
                    "bad cost budget"
                }
                fdr::MetricsError::Name { name, problem } => {
                    let _: &String = name;
                    match problem {
                        fdr::MetricNameProblem::TooLong { max_bytes } => {
                            let _: usize = *max_bytes;
                        }
                        fdr::MetricNameProblem::LabelName { label }
                        | fdr::MetricNameProblem::LabelTwice { label } => {
                            let _: &String = label;
                        }
                        fdr::MetricNameProblem::LabelsNotClosed
                        | fdr::MetricNameProblem::NotAName
                        | fdr::MetricNameProblem::LabelNotKeyValue
                        | fdr::MetricNameProblem::ValueNotQuoted
                        | fdr::MetricNameProblem::ValueNotClosed
                        | fdr::MetricNameProblem::ValueEscapes
                        | fdr::MetricNameProblem::LabelsNotSeparated
                        | fdr::MetricNameProblem::Reserved => {}
                        _ => {}
                    }
                    "bad metric name"
                }
                fdr::MetricsError::TooMany { name, max } => {
                    let _: (&String, usize) = (name, *max);
                    "too many metrics"
                }
                fdr::MetricsError::NamesFull { name } | fdr::MetricsError::Registered { name } => {
                    let _: &String = name;
                    "metric not registered"
                }
                _ => "bad metrics configuration",
            },
            _ => "bad configuration",
        };
    }
    let _: Option<u64> = e.bytes_written();
    let _: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    match () {
        () if e.is_compiled_out() => "compiled out",
        () if e.is_snapshot_in_progress() => "busy",
        () if e.is_capture_in_progress() => "capturing",
        () if e.is_not_started() => "not started",
        () if e.is_config() => "bad configuration",
        () if e.is_io() => "io",
        () if e.is_spawn() => "spawn",
        () => "other",
    }
}

/// Every field and call of the cost meter, by exhaustive destructuring.
fn cost_meter(recording: bool) -> f64 {
    let fdr::cost::Cost {
        intervals,
        thread_cpu_ns,
        process_cpu_ns,
        events,
        per_event_ns,
        recording_cpu_ns,
        events_per_second,
        share,
        budget,
        detail,
        sheds,
        restores,
        unmetered_threads,
    } = fdr::cost::cost();
    let _ = (intervals, thread_cpu_ns, process_cpu_ns, events, per_event_ns);
    let _ = (recording_cpu_ns, events_per_second, share, sheds, restores);
    let _ = (unmetered_threads, detail.level(), fdr::cost::Detail::ALL);
    let c = fdr::cost::cost();
    let _ = (c.threads_cpu_ns(), c.total_cpu_ns(), fdr::cost::KEEP_POLL_NS);
    for role in fdr::cost::Role::ALL {
        let _ = (role.name(), c.thread_cpu_ns_of(role));
    }
    let _ = (fdr::cost::RESTORE_FRACTION, fdr::cost::MIN_SAVING_FRACTION);
    assert_eq!(fdr::cost::detail(), fdr::cost::Detail::Full);
    match fdr::cost::set_budget(fdr::cost::DEFAULT_BUDGET) {
        Ok(()) => assert!(recording),
        Err(e) => assert_eq!(explain(&e), "compiled out", "without `record`: {e}"),
    }
    budget
}

fn main() {
    let recording = cfg!(feature = "record");
    let fdr::FlightConfig { min_age, max_bytes } = fdr::FlightConfig::default();
    let config = fdr::Config {
        flight: Some(fdr::FlightConfig { min_age, max_bytes }),
        program: "compile-out".into(),
        service_version: String::new(),
        service: "compile-out".into(),
        host: "localhost".into(),
        os: fdr::OsConfig::platform_default().filter(|_| false),
        metrics_interval: Some(fdr::DEFAULT_METRICS_INTERVAL.max(fdr::MIN_METRICS_INTERVAL)),
    };
    let recorder = fdr::start(config).expect("start never fails");
    let _source = fdr::register_metric("compile_out_iterations", || 1.0)
        .expect("a valid metric name is registered");
    fdr::record_metrics();
    assert_eq!(fdr::is_running(), recording);
    assert_eq!(cost_meter(recording), fdr::cost::DEFAULT_BUDGET);
    let shared = fdr::sync::Mutex::new(0);
    let mut total = 0;
    for i in 0..1000 {
        total += run_ready(
            async { handler(i, &shared) }
                .in_region("handler")
                .traced("request future"),
        );
    }
    let mut dump = Vec::new();
    let written = recorder.flight().write_to(&mut dump);
    if let Err(e) = &written {
        assert_eq!(explain(e), "compiled out", "without `record`: {e}");
    }
    assert_eq!(fdr::enabled(), recording);
    assert_eq!(counters(recorder.stats()) > 0, recording);
    assert_eq!(counters(fdr::stats()) > 0, recording);
    let capture = fdr::capture(Vec::new());
    assert_eq!(capture.is_ok(), recording);
    if let Ok(guard) = capture {
        let _ = guard.stop();
    }
    recorder.stop();
    assert!(!fdr::is_running());
    assert_eq!(written.is_ok(), recording, "{written:?}");
    assert_eq!(dump.is_empty(), !recording);
    assert_eq!(*shared.lock().unwrap(), 1000);
    println!(
        "compile-out check: record={recording}, total={total}, dump={} bytes, lost={}",
        dump.len(),
        fdr::stats().lost_events()
    );
}
