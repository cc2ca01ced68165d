//! Times the streaming profile and the diagnosis on a generated trace of the large
//! scenario (64 MiB unless given), the figure the `analyze.profile_events_per_sec` bench
//! reports, in a binary small enough to run under `perf record`:
//! `cargo run --release -p fdr-analyzer --example profile_speed -- [MIB] [ROUNDS]`.
//!
//! Beside the wall-clock rate it prints the rate per second of this thread's own CPU time
//! (Linux's `/proc/thread-self/schedstat`), which other processes sharing the cores do not
//! dilute.

use std::hint::black_box;
use std::time::Instant;

use fdr_analyzer::{ProfileOptions, SummaryOptions, diagnose, profile_slice, summarize_slice};

/// Nanoseconds this thread has run on a CPU (0 where the kernel does not say).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let trace = fdr_test_support::scenarios::write_large(Vec::new(), mib << 20).expect("Vec write");
    let events = summarize_slice(&trace, SummaryOptions::default())
        .expect("valid")
        .stats
        .events;
    println!("{} bytes, {events} events", trace.len());
    for _ in 0..rounds {
        let (t, cpu) = (Instant::now(), thread_cpu_ns());
        let (p, _) = profile_slice(&trace, ProfileOptions::default()).expect("valid");
        let profile_s = t.elapsed().as_secs_f64();
        let profile_cpu_s = thread_cpu_ns().saturating_sub(cpu) as f64 / 1e9;
        let t = Instant::now();
        black_box(diagnose(&p));
        let diagnose_s = t.elapsed().as_secs_f64();
        println!(
            "profile {:.3e} events/s ({profile_s:.3} s), {:.3e} events per CPU second ({profile_cpu_s:.3} s); diagnose of the profile {diagnose_s:.3} s",
            events as f64 / profile_s,
            events as f64 / profile_cpu_s,
        );
    }
}
