//! Recorder benches: the hot path against its physical floor (measured interleaved in the
//! same run), two threads, logs, the disabled cost, density, the flight recorder's snapshot,
//! and the same region workload through tracing, fastrace and puffin.
//!
//! Figures (all via `fdr_benches::report`): `record.floor.region_ns`, `record.region_ns`
//! (`region!`), `record.region_str_ns` (`region(&str)`), `record.region_ratio_to_floor`,
//! `record.region_cpu_ratio_to_floor` (the same rounds timed on-CPU),
//! `record.region_2t_ns`, `record.region_2t_ratio` (on-CPU time: wall-clock less the time
//! the thread waited for a CPU), `record.region_2t_wall_ratio`, `record.floor_2t_ratio` and
//! `record.floor_2t_wall_ratio` (the floor's own two-thread ratios, measured alongside),
//! `record.lost_events` (events the benches' writers
//! discarded: must be 0, or the figures flatter fdr), `record.log_static_ns`,
//! `record.log_fmt_ns`, `record.disabled_ns` (a disabled `region!` site over an empty loop
//! iteration), `record.disabled_raw_ns`, `record.bytes_per_event`,
//! `flight.write_to_bytes_per_sec`, `flight.writer_max_ns_during_snapshot`,
//! `flight.writer_p9999_ns_during_snapshot`, `flight.writer_over_1us_per_million`, the same
//! three for the floor event measured interleaved with them (`flight.floor_*`), and for the
//! floor while another thread copies 64 MiB over and over without fdr
//! (`flight.floor_*_during_memcpy`): what the machine itself does to a thread's latency,
//! `peer.tracing.region_ns`, `peer.fastrace.region_ns`, `peer.puffin.region_ns`.
//!
//! `cargo xtask bench --filter record|flight|peer` runs one section.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use fdr_benches::{floor_event, median, report};
use fdr_recorder::{Config, FlightConfig};

/// Regions per timed batch.
const BATCH: u64 = 200_000;
/// Timed batches per variant (interleaved).
const ROUNDS: usize = 21;

/// ns per op of `f` run `BATCH` times.
fn time_batch(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..BATCH {
        f();
    }
    t.elapsed().as_nanos() as f64 / BATCH as f64
}

/// Runs the variants interleaved, round by round, and returns each one's median ns/op.
fn interleaved(variants: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    interleaved_both(variants)
        .into_iter()
        .map(|(wall, _)| wall)
        .collect()
}

/// [`interleaved`], returning each variant's medians wall-clock and on-CPU.
fn interleaved_both(variants: &mut [&mut dyn FnMut()]) -> Vec<(f64, f64)> {
    let mut samples = vec![Vec::new(); variants.len()];
    for f in variants.iter_mut() {
        time_batch(*f); // warm up
    }
    for round in 0..ROUNDS {
        for k in 0..variants.len() {
            // Alternate the order so neither variant always runs first.
            let i = if round % 2 == 0 {
                k
            } else {
                variants.len() - 1 - k
            };
            samples[i].push(time_batch_both(variants[i]));
        }
    }
    samples
        .into_iter()
        .map(|v: Vec<(f64, f64)>| {
            (
                median(v.iter().map(|x| x.0).collect::<Vec<_>>()),
                median(v.iter().map(|x| x.1).collect::<Vec<_>>()),
            )
        })
        .collect()
}

fn start_recorder(max_bytes: usize) {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(3600),
            max_bytes,
        }),
        ..Config::default()
    })
    .expect("recorder starts");
}

fn floor_region() {
    floor_event(1);
    black_box(());
    floor_event(2);
}

fn fdr_region() {
    let _g = fdr_recorder::region!("db");
    black_box(());
}

fn fdr_region_str() {
    let _g = fdr_recorder::region("db");
    black_box(());
}

/// Nanoseconds this thread has spent runnable but waiting for a CPU (Linux schedstat;
/// 0 where it is not available).
fn run_delay_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// ns/op of `f` run `BATCH` times: wall-clock, and on-CPU (wall-clock less the time the
/// thread waited for a CPU, which on a shared 2-vCPU machine is most of what a second busy
/// thread adds).
fn time_batch_both(f: &mut dyn FnMut()) -> (f64, f64) {
    let d0 = run_delay_ns();
    let t = Instant::now();
    for _ in 0..BATCH {
        f();
    }
    let wall = t.elapsed().as_nanos() as f64;
    let waited = run_delay_ns().saturating_sub(d0) as f64;
    (wall / BATCH as f64, (wall - waited).max(0.0) / BATCH as f64)
}

/// Per-thread ns/op of `f` on two threads at once against one thread alone, interleaved
/// round by round (each round: both threads run a batch together, then the first alone
/// while the second waits). Returns the medians: (two threads, one thread) wall-clock and
/// the same on-CPU.
fn two_threads(f: fn()) -> [(f64, f64); 2] {
    let barrier = Arc::new(Barrier::new(2));
    let hs: Vec<_> = (0..2)
        .map(|k| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                let mut f = f;
                time_batch(&mut f);
                let (mut two, mut one) = (Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    b.wait();
                    two.push(time_batch_both(&mut f));
                    b.wait();
                    if k == 0 {
                        one.push(time_batch_both(&mut f));
                    }
                    b.wait();
                }
                (two, one)
            })
        })
        .collect();
    let per: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let pick = |v: &[(f64, f64)], cpu: bool| {
        if cpu {
            v.iter().map(|x| x.1).collect::<Vec<_>>()
        } else {
            v.iter().map(|x| x.0).collect()
        }
    };
    let result = |cpu: bool| {
        let (a, b) = (pick(&per[0].0, cpu), pick(&per[1].0, cpu));
        let two: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
        (median(two), median(pick(&per[0].1, cpu)))
    };
    [result(false), result(true)]
}

fn record_section() {
    start_recorder(64 << 20);
    let discarded = || {
        fdr_recorder::stats()
            .lost_for(fdr_format::LossReason::PoolExhausted)
            .events
    };
    let lost_before = discarded();
    let [(floor, floor_cpu), (fdr, fdr_cpu), (fdr_str, _)] =
        interleaved_both(&mut [&mut floor_region, &mut fdr_region, &mut fdr_region_str])[..]
    else {
        unreachable!()
    };
    report("record.floor.region_ns", floor);
    report("record.region_ns", fdr);
    report("record.region_str_ns", fdr_str);
    report("record.region_ratio_to_floor", fdr / floor);
    // The same rounds on-CPU (less the time the thread waited for a CPU).
    report("record.region_cpu_ratio_to_floor", fdr_cpu / floor_cpu);

    // Two threads recording at once: per-thread cost against one thread, same run; the
    // floor's own ratio says what two busy threads cost on this machine without fdr.
    // R2 is about cost, so its figure is on-CPU time; the wall-clock ratios show what the
    // shared machine adds (the floor's too).
    let [(two_wall, one_wall), (two, one)] = two_threads(fdr_region);
    report("record.region_2t_ns", two);
    report("record.region_2t_ratio", two / one);
    report("record.region_2t_wall_ratio", two_wall / one_wall);
    let [(floor_two_wall, floor_one_wall), (floor_two, floor_one)] = two_threads(floor_region);
    report("record.floor_2t_ratio", floor_two / floor_one);
    report(
        "record.floor_2t_wall_ratio",
        floor_two_wall / floor_one_wall,
    );
    report("record.lost_events", (discarded() - lost_before) as f64);

    let [log_static, log_fmt] =
        interleaved(
            &mut [&mut || fdr_recorder::log("db", "query done"), &mut || {
                fdr_recorder::log!("db", "{} rows", black_box(42))
            }],
        )[..]
    else {
        unreachable!()
    };
    report("record.log_static_ns", log_static);
    report("record.log_fmt_ns", log_fmt);

    fdr_recorder::stop();
    // The cost a disabled call site adds to a loop iteration over an empty iteration (the
    // harness's call through `&mut dyn FnMut` is outside the loops).
    let [empty, disabled] = interleaved(&mut [&mut empty_loop, &mut disabled_loop])[..] else {
        unreachable!()
    };
    report("record.disabled_raw_ns", disabled / LOOP as f64);
    report(
        "record.disabled_ns",
        ((disabled - empty) / LOOP as f64).max(0.0),
    );
    start_recorder(64 << 20);

    report("record.bytes_per_event", bytes_per_event());
}

/// Iterations of the disabled-site loops per harness call.
const LOOP: u64 = 100;

fn empty_loop() {
    for i in 0..LOOP {
        black_box(i);
    }
}

fn disabled_loop() {
    for i in 0..LOOP {
        let _g = fdr_recorder::region!("db");
        black_box(i);
    }
}

/// Density of a request mix (a task, three regions, a static log and a formatted one),
/// with events about 1 µs apart as a busy service records them.
fn bytes_per_event() -> f64 {
    let before = fdr_recorder::stats();
    std::thread::spawn(|| {
        let spin = |us: u64| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(us) {
                std::hint::spin_loop();
            }
        };
        for i in 0..20_000u64 {
            let _t = fdr_recorder::task("request");
            spin(1);
            for name in ["parse", "db", "render"] {
                let _r = fdr_recorder::region(name);
                spin(1);
            }
            fdr_recorder::log("http", "done");
            spin(1);
            if i % 4 == 0 {
                fdr_recorder::log!("http", "status {}", 200 + i % 3);
            }
        }
    })
    .join()
    .unwrap();
    let after = fdr_recorder::stats();
    (after.bytes - before.bytes) as f64 / (after.events - before.events) as f64
}

fn flight_section() {
    start_recorder(64 << 20);
    // Fill the ring.
    std::thread::spawn(|| {
        while fdr_recorder::stats().ring_bytes < 60 << 20 {
            for _ in 0..100_000 {
                fdr_recorder::with_region("fill", || ());
            }
        }
    })
    .join()
    .unwrap();
    let mut out = Vec::with_capacity(80 << 20);
    let mut rates = Vec::new();
    for _ in 0..7 {
        out.clear();
        let t = Instant::now();
        let n = fdr_recorder::flight().write_to(&mut out).expect("snapshot");
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    report("flight.write_to_bytes_per_sec", median(rates));

    // A writer records while snapshots run back to back: how long each event took, fdr's
    // log and the floor event interleaved in blocks of 1,000 (same conditions for both).
    let stop = Arc::new(AtomicBool::new(false));
    let snapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut out = Vec::with_capacity(80 << 20);
            while !stop.load(Ordering::Relaxed) {
                out.clear();
                let _ = fdr_recorder::flight().write_to(&mut out);
            }
        })
    };
    let ticks_per_ns = {
        let (t0, c0) = (Instant::now(), fdr_recorder::now_ticks());
        std::thread::sleep(Duration::from_millis(20));
        (fdr_recorder::now_ticks() - c0) as f64 / t0.elapsed().as_nanos() as f64
    };
    let before = fdr_recorder::stats();
    let (fdr_lat, floor_lat) = latencies(Duration::from_secs(2), true);
    stop.store(true, Ordering::Relaxed);
    snapper.join().unwrap();
    let after = fdr_recorder::stats();
    // Events the writer discarded (no free chunk while snapshots pinned the ring).
    report(
        "flight.writer_discarded_events_during_snapshot",
        (after.lost_for(fdr_format::LossReason::PoolExhausted).events
            - before
                .lost_for(fdr_format::LossReason::PoolExhausted)
                .events) as f64,
    );
    report_latency("flight.writer", "during_snapshot", fdr_lat, ticks_per_ns);
    report_latency("flight.floor", "during_snapshot", floor_lat, ticks_per_ns);

    // The same with no snapshot running: what the writer sees from fdr alone.
    let (fdr_lat, floor_lat) = latencies(Duration::from_secs(2), true);
    report_latency("flight.writer", "no_snapshot", fdr_lat, ticks_per_ns);
    report_latency("flight.floor", "no_snapshot", floor_lat, ticks_per_ns);

    // The floor alone while another thread copies 64 MiB over and over (no fdr at all):
    // what the machine does to a busy thread's latency when a snapshot-sized copy runs.
    fdr_recorder::stop();
    let stop = Arc::new(AtomicBool::new(false));
    let copier = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let src = vec![1u8; 64 << 20];
            let mut dst = Vec::with_capacity(64 << 20);
            while !stop.load(Ordering::Relaxed) {
                dst.clear();
                dst.extend_from_slice(&src);
                black_box(&dst);
            }
        })
    };
    let (_, floor_lat) = latencies(Duration::from_secs(2), false);
    stop.store(true, Ordering::Relaxed);
    copier.join().unwrap();
    report_latency("flight.floor", "during_memcpy", floor_lat, ticks_per_ns);
    start_recorder(64 << 20);
}

/// Event latencies in ticks for `dur`: fdr's static log (if `with_fdr`) and the floor
/// event, in alternating blocks of 1,000.
fn latencies(dur: Duration, with_fdr: bool) -> (Vec<u64>, Vec<u64>) {
    let mut fdr = Vec::with_capacity(if with_fdr { 4_000_000 } else { 0 });
    let mut floor = Vec::with_capacity(4_000_000);
    let t = Instant::now();
    while t.elapsed() < dur {
        if with_fdr {
            for _ in 0..1000 {
                let a = fdr_recorder::now_ticks();
                fdr_recorder::log("w", "x");
                let b = fdr_recorder::now_ticks();
                fdr.push(b - a);
            }
        }
        for _ in 0..1000 {
            let a = fdr_recorder::now_ticks();
            floor_event(3);
            let b = fdr_recorder::now_ticks();
            floor.push(b - a);
        }
    }
    (fdr, floor)
}

fn report_latency(prefix: &str, suffix: &str, mut lat: Vec<u64>, ticks_per_ns: f64) {
    lat.sort_unstable();
    let ns = |t: u64| t as f64 / ticks_per_ns;
    let over = lat.iter().filter(|&&t| ns(t) > 1000.0).count();
    report(
        &format!("{prefix}_max_ns_{suffix}"),
        ns(*lat.last().unwrap()),
    );
    report(
        &format!("{prefix}_p9999_ns_{suffix}"),
        ns(lat[lat.len() * 9999 / 10000]),
    );
    report(
        &format!("{prefix}_over_1us_per_million_{suffix}"),
        over as f64 * 1e6 / lat.len() as f64,
    );
}

mod peers {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// A layer that timestamps every span enter and exit into a thread-local, as a
    /// recording layer minimally must.
    pub(super) struct Timestamps;

    thread_local! {
        static LAST: Cell<Instant> = Cell::new(Instant::now());
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Timestamps {
        fn on_enter(&self, _: &tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
            LAST.with(|c| c.set(Instant::now()));
        }
        fn on_exit(&self, _: &tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
            LAST.with(|c| c.set(Instant::now()));
        }
    }

    struct Discard;
    impl fastrace::collector::Reporter for Discard {
        fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
            black_box(spans);
        }
    }

    pub(super) fn section() {
        let subscriber = tracing_subscriber::registry().with(Timestamps);
        let tracing_ns = tracing::subscriber::with_default(subscriber, || {
            interleaved(&mut [&mut || {
                let _g = tracing::info_span!("db").entered();
                black_box(());
            }])[0]
        });
        report("peer.tracing.region_ns", tracing_ns);

        fastrace::set_reporter(Discard, fastrace::collector::Config::default());
        let root = std::cell::RefCell::new(None);
        let mut n = 0u32;
        let fastrace_ns = interleaved(&mut [&mut || {
            // A root per 1,000 spans, so spans are reported as a service's would be.
            if n % 1000 == 0 {
                let mut r = root.borrow_mut();
                *r = None;
                let span =
                    fastrace::Span::root("request", fastrace::prelude::SpanContext::random());
                let guard = span.set_local_parent();
                *r = Some((guard, span));
            }
            n = n.wrapping_add(1);
            let _s = fastrace::local::LocalSpan::enter_with_local_parent("db");
            black_box(());
        }])[0];
        root.borrow_mut().take();
        fastrace::flush();
        report("peer.fastrace.region_ns", fastrace_ns);

        puffin::set_scopes_on(true);
        let mut m = 0u32;
        let puffin_ns = interleaved(&mut [&mut || {
            if m % 1000 == 0 {
                puffin::GlobalProfiler::lock().new_frame();
            }
            m = m.wrapping_add(1);
            puffin::profile_scope!("db");
            black_box(());
        }])[0];
        report("peer.puffin.region_ns", puffin_ns);
    }
}

fn main() {
    // `cargo bench -- FILTER` (cargo adds `--bench`).
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let wants =
        |section: &str| filter.is_empty() || section.contains(&filter) || filter.contains(section);
    if wants("record") {
        record_section();
    }
    if wants("flight") {
        flight_section();
    }
    if wants("peer") {
        peers::section();
    }
}
