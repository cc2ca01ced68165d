//! Recorder benches: the hot path against its physical floor (measured interleaved in the
//! same run), two threads, logs, the disabled cost, density, the flight recorder's snapshot,
//! and the same region workload through tracing, fastrace and puffin.
//!
//! Figures (all via `fdr_benches::report`): `record.floor.region_ns`, `record.region_ns`,
//! `record.region_ratio_to_floor`, `record.region_2t_ns`, `record.region_2t_ratio`,
//! `record.log_static_ns`, `record.log_fmt_ns`, `record.disabled_ns` (over an empty call),
//! `record.disabled_raw_ns`,
//! `record.bytes_per_event`, `flight.write_to_bytes_per_sec`,
//! `flight.writer_max_ns_during_snapshot`, `flight.writer_p9999_ns_during_snapshot`,
//! `peer.tracing.region_ns`, `peer.fastrace.region_ns`, `peer.puffin.region_ns`.
//!
//! `cargo xtask bench --filter record|flight|peer` runs one section.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use fdr_benches::report;
use fdr_recorder::{Config, FlightConfig};

/// Regions per timed batch.
const BATCH: u64 = 200_000;
/// Timed batches per variant (interleaved).
const ROUNDS: usize = 21;

thread_local! {
    static FLOOR_POS: Cell<usize> = const { Cell::new(0) };
    static FLOOR_BUF: [Cell<[u64; 2]>; 4096] = const { [const { Cell::new([0; 2]) }; 4096] };
}

/// The physical floor of one timestamped event: read the clock, store 16 bytes into a
/// thread-local buffer.
#[inline(always)]
fn floor_event(tag: u64) {
    let ts = fdr_recorder::now_ticks();
    let p = FLOOR_POS.with(|c| {
        let p = c.get();
        c.set(p.wrapping_add(1));
        p
    });
    FLOOR_BUF.with(|b| b[p & 4095].set([ts, tag]));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

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
            samples[i].push(time_batch(variants[i]));
        }
    }
    samples.into_iter().map(median).collect()
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
    let _g = fdr_recorder::region("db");
    black_box(());
}

fn record_section() {
    start_recorder(64 << 20);
    let [floor, fdr] = interleaved(&mut [&mut floor_region, &mut fdr_region])[..] else {
        unreachable!()
    };
    report("record.floor.region_ns", floor);
    report("record.region_ns", fdr);
    report("record.region_ratio_to_floor", fdr / floor);

    // Two threads recording at once: per-thread cost against one thread, same run.
    let two = {
        let barrier = Arc::new(Barrier::new(2));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let b = barrier.clone();
                std::thread::spawn(move || {
                    time_batch(&mut fdr_region);
                    let mut v = Vec::new();
                    for _ in 0..ROUNDS {
                        b.wait();
                        v.push(time_batch(&mut fdr_region));
                    }
                    median(v)
                })
            })
            .collect();
        let per: Vec<f64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        per.iter().sum::<f64>() / per.len() as f64
    };
    let one = interleaved(&mut [&mut fdr_region])[0];
    report("record.region_2t_ns", two);
    report("record.region_2t_ratio", two / one);

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
    // The cost a disabled call site adds over an empty one (the harness's own call through
    // `&mut dyn FnMut` is in both).
    let [empty, disabled] = interleaved(&mut [&mut || black_box(()), &mut fdr_region])[..] else {
        unreachable!()
    };
    report("record.disabled_raw_ns", disabled);
    report("record.disabled_ns", (disabled - empty).max(0.0));
    start_recorder(64 << 20);

    report("record.bytes_per_event", bytes_per_event());
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

    // A writer records while snapshots run back to back; the slowest event it saw.
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
    let mut lat = Vec::with_capacity(2_000_000);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        for _ in 0..1000 {
            let a = fdr_recorder::now_ticks();
            fdr_recorder::log("w", "x");
            let b = fdr_recorder::now_ticks();
            lat.push(b - a);
        }
    }
    stop.store(true, Ordering::Relaxed);
    snapper.join().unwrap();
    lat.sort_unstable();
    let ns = |t: u64| t as f64 / ticks_per_ns;
    report(
        "flight.writer_max_ns_during_snapshot",
        ns(*lat.last().unwrap()),
    );
    report(
        "flight.writer_p9999_ns_during_snapshot",
        ns(lat[lat.len() * 9999 / 10000]),
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
