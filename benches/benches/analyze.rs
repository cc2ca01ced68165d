//! Analyzer benches: the summary pass's throughput (parallel over batches) and, for
//! context, the streaming profile pass and Perfetto export (one thread, merged in time
//! order).
//!
//! Figures: `analyze.summary_events_per_sec` (target A1: >= 50 M events/s),
//! `analyze.profile_events_per_sec` (the profile and diagnosis of a 64 MiB dump, best of
//! five; target >= 2e7), `analyze.profile_events_per_thread_cpu_sec` (the same pass's events
//! per CPU second of the busier of its two threads, the reader's and the profile's: what a
//! loaded host does not dilute, so a low wall-clock rate there is told from a slow
//! analyzer), `analyze.export_perfetto_events_per_sec` (encoding only: written to
//! `io::sink`).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use fdr_analyzer::perfetto::PerfettoExport;
use fdr_analyzer::{
    ProfileOptions, ReadOptions, SummaryOptions, diagnose, profile_slice, read_slice,
    summarize_slice,
};
use fdr_benches::report;

fn bench(c: &mut Criterion) {
    let trace = fdr_test_support::scenarios::write_large(Vec::new(), 96 << 20).expect("Vec write");
    let events = summarize_slice(&trace, SummaryOptions::default())
        .expect("valid")
        .stats
        .events;

    let mut g = c.benchmark_group("analyze");
    g.sample_size(10);
    g.bench_function("summary_96mib_ns", |b| {
        b.iter(|| {
            black_box(summarize_slice(
                black_box(&trace),
                SummaryOptions::default(),
            ))
        })
    });
    g.finish();

    let best = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let s = best(&|| {
        black_box(summarize_slice(&trace, SummaryOptions::default()).expect("valid"));
    });
    report("analyze.summary_events_per_sec", events as f64 / s);
    let s1 = best(&|| {
        black_box(
            summarize_slice(
                &trace,
                SummaryOptions {
                    threads: 1,
                    progress: None,
                },
            )
            .expect("valid"),
        );
    });
    report(
        "analyze.summary_one_thread_events_per_sec",
        events as f64 / s1,
    );
    // The streaming profile and the diagnosis of a 64 MiB dump of the large scenario, as
    // `cargo run --release -p fdr-analyzer --example profile_speed` times them.
    let dump = fdr_test_support::scenarios::write_large(Vec::new(), 64 << 20).expect("Vec write");
    let dump_events = summarize_slice(&dump, SummaryOptions::default())
        .expect("valid")
        .stats
        .events;
    let secs = best(&|| {
        let (p, _) = profile_slice(&dump, ProfileOptions::default()).expect("valid");
        black_box(diagnose(&p));
    });
    report("analyze.profile_events_per_sec", dump_events as f64 / secs);
    // The same pass, timed by CPU: this thread runs the profile and the diagnosis; the rest
    // of the process's CPU time is the reader thread's (no other thread runs meanwhile).
    let busier_cpu_ns = (0..5)
        .map(|_| {
            let (thread0, process0) = (thread_cpu_ns(), process_cpu_ns());
            let (p, _) = profile_slice(&dump, ProfileOptions::default()).expect("valid");
            black_box(diagnose(&p));
            let this = thread_cpu_ns().saturating_sub(thread0);
            let reader = process_cpu_ns()
                .saturating_sub(process0)
                .saturating_sub(this);
            this.max(reader)
        })
        .min()
        .unwrap_or(0);
    drop(dump);
    if busier_cpu_ns > 0 {
        report(
            "analyze.profile_events_per_thread_cpu_sec",
            dump_events as f64 / (busier_cpu_ns as f64 / 1e9),
        );
    }
    let small = &trace[..];
    let t = Instant::now();
    let mut x = PerfettoExport::new(std::io::sink());
    read_slice(small, &mut x, ReadOptions::default()).expect("valid");
    let secs = t.elapsed().as_secs_f64();
    assert!(x.error.is_none() && x.packets > events / 2);
    report(
        "analyze.export_perfetto_events_per_sec",
        events as f64 / secs,
    );
}

/// This thread's CPU time in ns (0 where it is not available).
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The process's CPU time in ns, its finished threads included (0 where it is not
/// available).
#[cfg(target_os = "linux")]
fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> u64 {
    0
}

#[cfg(not(target_os = "linux"))]
fn process_cpu_ns() -> u64 {
    0
}

criterion_group!(benches, bench);
criterion_main!(benches);
