//! `fdr export --format pprof` on a trace this test records of itself: two recorded
//! threads burn CPU in known functions, one inside a traced task, with the OS view's CPU
//! profiling on. The profile is read by an independent reader (protobuf's Python runtime
//! and the published `profile.proto`). (Own test binary: the recorder is process-wide.)

#[path = "../../fdr-pprof/tests/reader/mod.rs"]
mod reader;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::Command;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use fdr_recorder::task::FdrFutureExt;

#[inline(never)]
fn pprof_cli_burner_in_task(d: Duration) -> u64 {
    let until = thread_cpu() + d;
    let mut x = std::hint::black_box(1u64);
    while thread_cpu() < until {
        // Plain arithmetic (no calls, even in a debug build): the samples' leaf is here.
        let mut i = 0;
        while i < 100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            i += 1;
        }
    }
    std::hint::black_box(x)
}

#[inline(never)]
fn pprof_cli_burner_outside_tasks(d: Duration) -> u64 {
    let until = thread_cpu() + d;
    let mut x = std::hint::black_box(3u64);
    while thread_cpu() < until {
        let mut i = 0;
        while i < 100_000 {
            x ^= x << 11;
            x ^= x >> 5;
            x ^= x << 19;
            i += 1;
        }
    }
    std::hint::black_box(x)
}

/// This thread's time on a CPU so far (`/proc/thread-self/schedstat`).
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(s.split_whitespace().next().unwrap().parse().unwrap())
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Records the trace once: both threads burn `BURN` of CPU time each (however long that
/// takes on a busy host) with CPU profiling on.
fn record() -> PathBuf {
    const BURN: Duration = Duration::from_millis(700);
    fdr_recorder::start(fdr_recorder::Config {
        os: fdr_recorder::OsConfig::platform_default(),
        ..fdr_recorder::Config::default()
    })
    .unwrap();
    let profiling = fdr_recorder::os::cpu_profile(199).unwrap();
    let in_task = std::thread::Builder::new()
        .name("task-thread".into())
        .spawn(|| {
            // One poll of a traced task that burns all along.
            let fut = pin!(async { pprof_cli_burner_in_task(BURN) }.traced("busy task"));
            let mut cx = Context::from_waker(Waker::noop());
            match fut.poll(&mut cx) {
                Poll::Ready(x) => x,
                Poll::Pending => unreachable!("the task completes in one poll"),
            }
        })
        .unwrap();
    let outside = std::thread::Builder::new()
        .name("plain-thread".into())
        .spawn(|| {
            let _r = fdr_recorder::region!("warm-up");
            drop(_r);
            pprof_cli_burner_outside_tasks(BURN)
        })
        .unwrap();
    in_task.join().unwrap();
    outside.join().unwrap();
    // Let the sampler take the last samples.
    std::thread::sleep(Duration::from_millis(50));
    drop(profiling);
    let path = tmp("pprof-cli.fdr");
    let mut f = std::fs::File::create(&path).unwrap();
    fdr_recorder::flight().write_to(&mut f).unwrap();
    path
}

fn export(trace: &Path, name: &str, args: &[&str]) -> (serde_json::Value, String) {
    let out = tmp(name);
    let o = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(["export", "--format", "pprof"])
        .arg(trace)
        .arg("-o")
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    (reader::read(&out), stderr)
}

fn weight_of(v: &serde_json::Value, which: &str, function: &str) -> i64 {
    reader::top(v, which)
        .into_iter()
        .filter(|(f, _)| f.ends_with(function))
        .map(|(_, w)| w)
        .sum()
}

#[test]
fn the_burning_functions_top_the_profile_and_filters_keep_their_samples() {
    if !cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        panic!("CPU samples need the OS view: Linux on x86_64 or aarch64");
    }
    let trace = record();

    let (v, stderr) = export(&trace, "all.pb.gz", &[]);
    assert_eq!(v["default_sample_type"], "cpu");
    assert_eq!(v["period"], 1_000_000_000 / 199, "{stderr}");
    let cpu = v["totals"][1].as_i64().unwrap();
    let flat = reader::top(&v, "flat");
    let top3: Vec<&str> = flat.iter().take(3).map(|(f, _)| f.as_str()).collect();
    assert!(
        top3.iter().any(|f| f.ends_with("pprof_cli_burner_in_task"))
            && top3
                .iter()
                .any(|f| f.ends_with("pprof_cli_burner_outside_tasks")),
        "{flat:?}\n{stderr}"
    );
    let in_task = weight_of(&v, "cum", "pprof_cli_burner_in_task");
    let outside = weight_of(&v, "cum", "pprof_cli_burner_outside_tasks");
    assert!(
        in_task + outside > cpu / 2,
        "{in_task} + {outside} of {cpu}"
    );
    // The known function's frame names this file and a line in it.
    let frame = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["frames"].as_array().unwrap().iter())
        .flat_map(|loc| loc.as_array().unwrap().iter())
        .find(|l| {
            l["function"]
                .as_str()
                .unwrap()
                .ends_with("pprof_cli_burner_in_task")
        })
        .unwrap();
    assert!(
        frame["file"].as_str().unwrap().ends_with("tests/pprof.rs"),
        "{frame}"
    );
    assert!(frame["line"].as_i64().unwrap() > 0);
    // Samples carry their thread, and the task's when one ran.
    let labelled = |thread: &str, task: Option<&str>| {
        v["samples"].as_array().unwrap().iter().any(|s| {
            s["labels"]["thread"] == thread && task.is_none_or(|t| s["labels"]["task"] == t)
        })
    };
    assert!(labelled("task-thread", Some("busy task")));
    assert!(labelled("plain-thread", None));

    // --task keeps the task's samples only.
    let (t, _) = export(&trace, "task.pb.gz", &["--task", "busy"]);
    assert!(weight_of(&t, "cum", "pprof_cli_burner_in_task") > 0);
    assert_eq!(weight_of(&t, "cum", "pprof_cli_burner_outside_tasks"), 0);
    assert!(
        t["samples"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["labels"]["task"] == "busy task")
    );

    // A window past the trace's end keeps nothing, and says so.
    let (w, stderr) = export(&trace, "late.pb.gz", &["--from", "100m"]);
    assert_eq!(w["totals"][0], 0, "{stderr}");
    assert!(
        stderr.contains("left out by --task/--from/--to"),
        "{stderr}"
    );

    // pprof's options go with pprof only.
    let o = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(["export", "--task", "x"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--format pprof"));
}
