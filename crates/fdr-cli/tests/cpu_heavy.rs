//! `fdr diagnose` on a trace this test records of itself: a traced task whose polls each
//! burn CPU in a known function, with the OS view's CPU profiling on and no stacks of long
//! scopes, so only the CPU samples can say where the polls' time went. The CPU-heavy finding
//! must name that function and this file: each sample is placed in the poll it fell in by
//! the time it was taken, though the sampler records it later. (Own test binary: the
//! recorder is process-wide.)

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::process::Command;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use fdr_recorder::task::FdrFutureExt;

/// Burns `d` of this thread's CPU time in plain arithmetic (no calls inside the inner
/// loop, even in a debug build): the samples' top user frame is here.
#[inline(never)]
fn cpu_heavy_poll_hot_loop(d: Duration) -> u64 {
    let until = thread_cpu() + d;
    let mut x = std::hint::black_box(1u64);
    while thread_cpu() < until {
        let mut i = 0;
        while i < 1_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
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

/// A future that burns `per_poll` of CPU time in each of its `polls` polls.
struct Burn {
    polls: u32,
    per_poll: Duration,
}

impl Future for Burn {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        cpu_heavy_poll_hot_loop(self.per_poll);
        self.polls -= 1;
        if self.polls == 0 {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn the_cpu_heavy_finding_names_the_function_its_polls_burn_in() {
    if !cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        panic!("CPU samples need the OS view: Linux on x86_64 or aarch64");
    }
    let os = fdr_recorder::OsConfig {
        // No stacks of long scopes: the CPU samples alone name the hot code.
        stacks_per_scope: 0,
        cpu_profile_hz: 199,
        ..fdr_recorder::OsConfig::platform_default().expect("the OS view on Linux")
    };
    fdr_recorder::start(fdr_recorder::Config {
        os: Some(os),
        ..fdr_recorder::Config::default()
    })
    .unwrap();
    std::thread::Builder::new()
        .name("busy-worker".into())
        .spawn(|| {
            // Twelve polls of 40 ms of CPU each (however long that takes on a busy host).
            let mut fut = pin!(
                Burn {
                    polls: 12,
                    per_poll: Duration::from_millis(40),
                }
                .traced("report render")
            );
            let mut cx = Context::from_waker(Waker::noop());
            while fut.as_mut().poll(&mut cx).is_pending() {}
        })
        .unwrap()
        .join()
        .unwrap();
    // Let the sampler take the last samples and see the last poll's end.
    std::thread::sleep(Duration::from_millis(100));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cpu-heavy.fdr");
    let mut f = std::fs::File::create(&path).unwrap();
    fdr_recorder::flight().write_to(&mut f).unwrap();
    drop(f);

    let o = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(["diagnose", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let finding = v["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "cpu_heavy_polls")
        .unwrap_or_else(|| panic!("no cpu_heavy_polls outcome: {v:#}"));
    let title = finding["title"].as_str().unwrap_or_default();
    assert!(
        title.contains("cpu_heavy_poll_hot_loop") && title.contains("tests/cpu_heavy.rs:"),
        "the finding does not name the hot function: {finding:#}"
    );
    let evidence = finding["evidence"].to_string();
    assert!(evidence.contains("CPU samples fell inside"), "{finding:#}");
    assert_ne!(finding["severity"], "info", "{finding:#}");
}
