//! Times the streaming profile and the diagnosis on a generated trace of the large
//! scenario (64 MiB unless given), the figure the `analyze.profile_events_per_sec` bench
//! reports, in a binary small enough to run under `perf record`:
//! `cargo run --release -p fdr-analyzer --example profile_speed -- [MIB] [ROUNDS]`.
//!
//! Beside the wall-clock rate it prints the rate per second of CPU time, which other
//! processes sharing the cores do not dilute: this thread's own (Linux's
//! `/proc/thread-self/schedstat`) and the whole process's (`/proc/self/stat`, in clock
//! ticks, the reader thread a large trace is decoded on included), and the rate per CPU
//! second of the busier of the two threads (the reader thread's time is the process's less
//! this thread's), which `cargo xtask bench` reports as
//! `analyze.profile_events_per_thread_cpu_sec`.

use std::hint::black_box;
use std::time::Instant;

use fdr_analyzer::{ProfileOptions, diagnose, profile_slice};

/// Nanoseconds this thread has run on a CPU (0 where the kernel does not say).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Seconds of CPU time this process has used, its finished threads included (0 where the
/// kernel does not say).
fn process_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) are space-separated;
    // utime and stime are the 14th and 15th of the line, the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux architecture Rust targets.
    ticks / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let trace = fdr_test_support::scenarios::write_large(Vec::new(), mib << 20).expect("Vec write");
    println!("{} bytes", trace.len());
    for _ in 0..rounds {
        let (t, cpu, all_cpu) = (Instant::now(), thread_cpu_ns(), process_cpu_s());
        let (p, out) = profile_slice(&trace, ProfileOptions::default()).expect("valid");
        let profile_s = t.elapsed().as_secs_f64();
        // As the reader counted them: no pass of its own, so that under a profiler of
        // threads (`valgrind --tool=callgrind --separate-threads=yes`) the process's only
        // threads are this one (the trace's writing and the profile) and the reader.
        let events = out.stats.events;
        let profile_cpu_s = thread_cpu_ns().saturating_sub(cpu) as f64 / 1e9;
        let process_cpu_s = process_cpu_s() - all_cpu;
        let busier_cpu_s = profile_cpu_s.max(process_cpu_s - profile_cpu_s);
        let t = Instant::now();
        black_box(diagnose(&p));
        let diagnose_s = t.elapsed().as_secs_f64();
        println!(
            "{events} events: profile {:.3e} events/s ({profile_s:.3} s), {:.3e} events per CPU second of this thread ({profile_cpu_s:.3} s), {:.3e} of the process ({process_cpu_s:.2} s), {:.3e} of the busier thread ({busier_cpu_s:.2} s); diagnose of the profile {diagnose_s:.3} s",
            events as f64 / profile_s,
            events as f64 / profile_cpu_s,
            events as f64 / process_cpu_s,
            events as f64 / busier_cpu_s,
        );
    }
}
