//! Recorder benches: the hot path against its physical floor (measured interleaved in the
//! same run), two threads, logs, the disabled cost, density, the flight recorder's snapshot,
//! and the same region workload through tracing, fastrace and puffin.
//!
//! Figures (all via `fdr_benches::report`): `record.floor.region_ns`, `record.region_ns`
//! (`region!`), `record.region_str_ns` (`region(&str)`): medians over 201 interleaved rounds
//! of 20,000 regions; `record.region_ratio_to_floor`: the median over rounds of each round's
//! fdr / floor, two batches run back to back (the host's speed drifts between rounds, not
//! within one); `record.region_cpu_ratio_to_floor` (the same rounds timed on-CPU),
//! `record.region_2t_ns`, `record.region_2t_ratio` (on-CPU time: wall-clock less the time
//! the thread waited for a CPU), `record.region_2t_wall_ratio`, `record.floor_2t_ratio` and
//! `record.floor_2t_wall_ratio` (the floor's own two-thread ratios, measured alongside),
//! `record.lost_events` (events the benches' writers
//! discarded: must be 0, or the figures flatter fdr), `record.log_static_ns`,
//! `record.log_fmt_ns`, `record.disabled_ns` (a disabled `region!` site over an empty loop
//! iteration), `record.disabled_raw_ns`, `record.bytes_per_event`,
//! `flight.write_to_bytes_per_sec`, `flight.writer_discarded_events_during_snapshot`;
//! then each event timed alone (fdr's static log as `flight.writer_*`, the floor event as
//! `flight.floor_*`, in alternating blocks of 1,000) under three conditions: `during_snapshot`
//! (snapshots back to back on another thread), `no_snapshot`, and `during_memcpy` (the floor
//! only, while another thread copies 64 MiB over and over without fdr: what a snapshot-sized
//! copy does to a thread on this machine). For each, `{who}_max_ns_{condition}`,
//! `{who}_p9999_ns_{condition}` and `{who}_over_1us_per_million_{condition}` over all events;
//! the same three ending `_on_cpu` over the blocks in which the thread was never switched
//! out (its count of timeslices, /proc/thread-self/schedstat, did not change), and ending
//! `_no_irq_steal` over the blocks in which, besides, its CPU took no interrupt
//! (/proc/interrupts) and its vCPU lost under 1 us to steal (wall-clock less the thread's
//! CPU time, from which the kernel leaves steal out); with the share of blocks each leaves
//! out, `{who}_blocks_excluded_share_{condition}_on_cpu` and `.._no_irq_steal`. The counters
//! are read between blocks, never inside a timed event. F1 is judged on fdr against the
//! floor in the same conditions: a stall the host causes without the guest seeing it (a VM
//! exit) remains in every figure, the floor's too. Last, `peer.tracing.region_ns`,
//! `peer.fastrace.region_ns`, `peer.puffin.region_ns`.
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
/// Regions per timed batch of the ratio to the floor: short, so that the machine's speed
/// changes little within a round, and still more than a chunk's worth of regions (64 KiB,
/// about 16,000 regions at 2 bytes an event), so that every batch pays for its hand-offs.
const RATIO_BATCH: u64 = 20_000;
/// Rounds of the ratio to the floor.
const RATIO_ROUNDS: usize = 201;

/// Runs the variants interleaved, round by round, and returns each one's median ns/op.
fn interleaved(variants: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    interleaved_both(variants)
        .into_iter()
        .map(|(wall, _)| wall)
        .collect()
}

/// [`interleaved`], returning each variant's medians wall-clock and on-CPU.
fn interleaved_both(variants: &mut [&mut dyn FnMut()]) -> Vec<(f64, f64)> {
    rounds(variants, BATCH, ROUNDS)
        .into_iter()
        .map(|v| (median(wall(&v)), median(on_cpu(&v))))
        .collect()
}

/// Runs the variants interleaved for `rounds` rounds of one `batch` each, the order
/// alternating so that neither always runs first, and returns each variant's (wall-clock,
/// on-CPU) ns/op round by round: `[variant][round]`. Batches of one round run back to back,
/// so a ratio of two variants in one round compares them at the same machine speed.
fn rounds(variants: &mut [&mut dyn FnMut()], batch: u64, rounds: usize) -> Vec<Vec<(f64, f64)>> {
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for f in variants.iter_mut() {
        time_batch_both(*f, batch); // warm up
    }
    for round in 0..rounds {
        for k in 0..variants.len() {
            let i = if round % 2 == 0 {
                k
            } else {
                variants.len() - 1 - k
            };
            samples[i].push(time_batch_both(variants[i], batch));
        }
    }
    samples
}

fn wall(v: &[(f64, f64)]) -> Vec<f64> {
    v.iter().map(|x| x.0).collect()
}

fn on_cpu(v: &[(f64, f64)]) -> Vec<f64> {
    v.iter().map(|x| x.1).collect()
}

/// The median over rounds of `a[r] / b[r]`.
fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>())
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

/// Field `n` of this thread's Linux schedstat (0: ns on a CPU, 1: ns runnable but waiting
/// for one, 2: timeslices run); `None` where it is not available.
fn schedstat(n: usize) -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(n)?.parse().ok())
}

/// Nanoseconds this thread has spent runnable but waiting for a CPU (0 where schedstat is
/// not available).
fn run_delay_ns() -> u64 {
    schedstat(1).unwrap_or(0)
}

/// ns/op of `f` run `batch` times: wall-clock, and on-CPU (wall-clock less the time the
/// thread waited for a CPU, which on a shared 2-vCPU machine is most of what a second busy
/// thread adds).
fn time_batch_both(f: &mut dyn FnMut(), batch: u64) -> (f64, f64) {
    let d0 = run_delay_ns();
    let t = Instant::now();
    for _ in 0..batch {
        f();
    }
    let wall = t.elapsed().as_nanos() as f64;
    let waited = run_delay_ns().saturating_sub(d0) as f64;
    (wall / batch as f64, (wall - waited).max(0.0) / batch as f64)
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
                time_batch_both(&mut f, BATCH);
                let (mut two, mut one) = (Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    b.wait();
                    two.push(time_batch_both(&mut f, BATCH));
                    b.wait();
                    if k == 0 {
                        one.push(time_batch_both(&mut f, BATCH));
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
    let [floor, fdr, fdr_str] = &rounds(
        &mut [&mut floor_region, &mut fdr_region, &mut fdr_region_str],
        RATIO_BATCH,
        RATIO_ROUNDS,
    )[..] else {
        unreachable!()
    };
    report("record.floor.region_ns", median(wall(floor)));
    report("record.region_ns", median(wall(fdr)));
    report("record.region_str_ns", median(wall(fdr_str)));
    // The ratio of each round's two batches, run back to back (the machine's speed drifts
    // between rounds on a shared host; within a round it is the same for both), and its median.
    report(
        "record.region_ratio_to_floor",
        median_ratio(&wall(fdr), &wall(floor)),
    );
    // The same rounds on-CPU (less the time the thread waited for a CPU).
    report(
        "record.region_cpu_ratio_to_floor",
        median_ratio(&on_cpu(fdr), &on_cpu(floor)),
    );

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
    // log and the floor event interleaved in blocks of 1,000 (same conditions for both),
    // with what the machine did to the thread over each block.
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

/// Events per block of [`latencies`]: the thread's counters are read between blocks.
const BLOCK: usize = 1000;

/// What the machine did to the measuring thread over one block of events (from the probe
/// before it to the probe after it).
#[derive(Clone, Copy)]
struct Block {
    /// The thread was switched out at least once (its count of timeslices changed).
    switched: bool,
    /// Interrupts its CPU took (every line of /proc/interrupts); 0 when `switched`.
    interrupts: u64,
    /// Wall-clock less the thread's CPU time, ns: time the vCPU ran something else while
    /// the thread was on it (the kernel leaves steal out of a thread's CPU time).
    stolen_ns: i64,
}

/// The measuring thread's counters at one instant, read between blocks.
struct Probe {
    timeslices: Option<u64>,
    cpu: Option<usize>,
    /// Interrupts so far, per CPU.
    interrupts: Vec<u64>,
    cpu_ns: Option<u64>,
    wall: Instant,
}

impl Probe {
    fn read(buf: &mut String) -> Probe {
        let timeslices = schedstat(2);
        let cpu = current_cpu();
        let interrupts = interrupts_per_cpu(buf);
        let cpu_ns = thread_cpu_ns();
        Probe {
            timeslices,
            cpu,
            interrupts,
            cpu_ns,
            wall: Instant::now(),
        }
    }

    fn block_to(&self, after: &Probe) -> Block {
        let switched = match (self.timeslices, after.timeslices) {
            (Some(a), Some(b)) => a != b || self.cpu != after.cpu,
            _ => true,
        };
        let interrupts = match self.cpu {
            Some(c) if !switched => after
                .interrupts
                .get(c)
                .zip(self.interrupts.get(c))
                .map_or(0, |(b, a)| b - a),
            _ => 0,
        };
        let wall_ns = after.wall.duration_since(self.wall).as_nanos() as i64;
        let stolen_ns = match (self.cpu_ns, after.cpu_ns) {
            (Some(a), Some(b)) => wall_ns - (b as i64 - a as i64),
            _ => 0,
        };
        Block {
            switched,
            interrupts,
            stolen_ns,
        }
    }
}

/// Interrupts so far per CPU, all kinds (/proc/interrupts; empty where it is not available).
fn interrupts_per_cpu(buf: &mut String) -> Vec<u64> {
    use std::io::Read;
    buf.clear();
    let Ok(mut f) = std::fs::File::open("/proc/interrupts") else {
        return Vec::new();
    };
    if f.read_to_string(buf).is_err() {
        return Vec::new();
    }
    let mut lines = buf.lines();
    let cpus = lines.next().map_or(0, |h| h.split_whitespace().count());
    let mut per = vec![0; cpus];
    for line in lines {
        // "NAME: count per CPU... description"; ERR and MIS have one count, not per CPU.
        let counts: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(cpus)
            .map_while(|w| w.parse().ok())
            .collect();
        if counts.len() == cpus {
            for (total, n) in per.iter_mut().zip(counts) {
                *total += n;
            }
        }
    }
    per
}

#[cfg(target_os = "linux")]
fn current_cpu() -> Option<usize> {
    Some(rustix::thread::sched_getcpu())
}

#[cfg(not(target_os = "linux"))]
fn current_cpu() -> Option<usize> {
    None
}

/// This thread's CPU time in ns (on Linux it leaves out the time the hypervisor gave this
/// vCPU to others: steal).
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> Option<u64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// Event latencies (ticks) and blocks (`ticks[k * BLOCK..][..BLOCK]` is block `k`), of one
/// kind of event.
struct Timed {
    ticks: Vec<u64>,
    blocks: Vec<Block>,
}

impl Timed {
    fn new(capacity: usize) -> Timed {
        Timed {
            ticks: Vec::with_capacity(capacity),
            blocks: Vec::with_capacity(capacity / BLOCK),
        }
    }
}

/// Event latencies in ticks for `dur`: fdr's static log (if `with_fdr`) and the floor
/// event, in alternating blocks of [`BLOCK`], with what the machine did to the thread over
/// each block.
fn latencies(dur: Duration, with_fdr: bool) -> (Timed, Timed) {
    let mut fdr = Timed::new(if with_fdr { 8_000_000 } else { 0 });
    let mut floor = Timed::new(8_000_000);
    let mut buf = String::with_capacity(8192);
    let t = Instant::now();
    let mut p = Probe::read(&mut buf);
    while t.elapsed() < dur {
        if with_fdr {
            for _ in 0..BLOCK {
                let a = fdr_recorder::now_ticks();
                fdr_recorder::log("w", "x");
                let b = fdr_recorder::now_ticks();
                fdr.ticks.push(b - a);
            }
            let q = Probe::read(&mut buf);
            fdr.blocks.push(p.block_to(&q));
            p = q;
        }
        for _ in 0..BLOCK {
            let a = fdr_recorder::now_ticks();
            floor_event(3);
            let b = fdr_recorder::now_ticks();
            floor.ticks.push(b - a);
        }
        let q = Probe::read(&mut buf);
        floor.blocks.push(p.block_to(&q));
        p = q;
    }
    (fdr, floor)
}

/// Steal that leaves a block out of the `_no_irq_steal` figures: this much alone could make
/// one of its events take over 1 us.
const STOLEN_MAX_NS: i64 = 1000;

/// Reports the latency figures of one kind of event under one condition: over all events
/// (`{prefix}_max_ns_{suffix}`, `_p9999_ns_`, `_over_1us_per_million_`); over the blocks in
/// which the thread was never switched out (the same names ending `_on_cpu`); and over the
/// blocks in which, besides, its CPU took no interrupt and its vCPU lost under
/// [`STOLEN_MAX_NS`] to steal (ending `_no_irq_steal`); with the share of blocks each of
/// these leaves out (`{prefix}_blocks_excluded_share_{suffix}_on_cpu`, `.._no_irq_steal`).
fn report_latency(prefix: &str, suffix: &str, timed: Timed, ticks_per_ns: f64) {
    let Timed { ticks, blocks } = timed;
    let on_cpu = |b: &Block| !b.switched;
    let no_irq_steal = |b: &Block| !b.switched && b.interrupts == 0 && b.stolen_ns < STOLEN_MAX_NS;
    let kept = |keep: &dyn Fn(&Block) -> bool| -> Vec<u64> {
        blocks
            .iter()
            .zip(ticks.chunks(BLOCK))
            .filter(|(b, _)| keep(b))
            .flat_map(|(_, t)| t.iter().copied())
            .collect()
    };
    let share = |keep: &dyn Fn(&Block) -> bool| {
        blocks.iter().filter(|b| !keep(b)).count() as f64 / blocks.len().max(1) as f64
    };
    let filtered = [
        ("on_cpu", &on_cpu as &dyn Fn(&Block) -> bool),
        ("no_irq_steal", &no_irq_steal),
    ]
    .map(|(filter, keep)| (filter, share(keep), kept(keep)));
    report_distribution(prefix, suffix, ticks, ticks_per_ns);
    for (filter, excluded, lat) in filtered {
        let suffix = format!("{suffix}_{filter}");
        report_distribution(prefix, &suffix, lat, ticks_per_ns);
        report(
            &format!("{prefix}_blocks_excluded_share_{suffix}"),
            excluded,
        );
    }
}

/// Max, p99.99 and the events over 1 us per million of `lat` (ticks); nothing if empty.
fn report_distribution(prefix: &str, suffix: &str, mut lat: Vec<u64>, ticks_per_ns: f64) {
    let Some(&max) = lat.iter().max() else {
        return;
    };
    lat.sort_unstable();
    let ns = |t: u64| t as f64 / ticks_per_ns;
    let over = lat.iter().filter(|&&t| ns(t) > 1000.0).count();
    report(&format!("{prefix}_max_ns_{suffix}"), ns(max));
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
