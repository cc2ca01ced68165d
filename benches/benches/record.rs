//! Recorder benches: every common recording call against the physical floor of its events,
//! measured interleaved in one run; two threads; the disabled cost; density; the flight
//! recorder's snapshot; and the same region through tracing, fastrace, puffin and tracy on
//! the paths their documentation recommends (and their slow paths, named as such).
//!
//! How a ratio is measured (`fdr_benches::harness`): each case runs batches of
//! [`RATIO_BATCH`] ops, every case back to back in each of [`RATIO_ROUNDS`] rounds (the order
//! reversed every other round); a ratio is taken within each round (the host's speed drifts
//! between rounds, not within one) and reported as its median over rounds, with `_p10` and
//! `_p90` (the 10th and 90th percentiles of the per-round ratios) beside it.
//!
//! The floor of one event is: read fdr's clock, store 16 bytes into a thread-local buffer; a
//! region's is two of those. The same floor work moves by several percent with how the
//! harness calls it, so it is measured in several variants: the code under test's own shape
//! (a closure inlined into the timed loop, `black_box(())` where the region's body is), a
//! named function, `black_box` on the tags instead, no `black_box`, a call through
//! `&mut dyn FnMut()` and one through an opaque `fn()` pointer; the variant with the lowest
//! median is the floor (`record.floor.region_ns`, `record.floor.event_ns` for one event), so
//! a floor that runs slow in one shape cannot flatter a ratio. Each floor is checked against a
//! plain loop of the same stores written out by hand (`record.floor.region_plain_loop_ns`,
//! `record.floor.event_plain_loop_ns`): `record.floor_agreement` and
//! `record.floor_one_event_agreement` are the per-round chosen floor / plain loop (a loud
//! warning when off 1 by more than 5%). Every variant's median is printed.
//!
//! Each call is measured in the floor's first shape (the op inlined into the timed loop,
//! then `black_box(())`), against the two-event floor (regions) or the one-event floor (a
//! log): `record.region_ratio_to_floor` (`region!("db")`),
//! `record.region_guard_ratio_to_floor` (the `region("db")` guard),
//! `record.with_region_ratio_to_floor` (`with_region("db", ..)`),
//! `record.region_past_32_ratio_to_floor` (a `region!` whose name was interned after the
//! first 32 names: its id no longer fits the 2-byte event),
//! `record.region_many_names_ratio_to_floor` (a service's 1,000 distinct `region!` names,
//! each call site's static name cycling), `record.region_str_many_names_ratio_to_floor` (the
//! same 1,000 names through `region(&str)`, which looks them up in the thread's name cache),
//! `record.log_static_ratio_to_floor` (a static `log!("db", "query done")`, its ids kept at
//! the call site), `record.log_fn_ratio_to_floor` (the same through `log(category,
//! message)`, which looks both names up); each with `_p10`/`_p90`, and each
//! call's median ns (`record.region_ns`, `record.region_str_ns` for the guard,
//! `record.with_region_ns`, `record.region_past_32_ns`, `record.region_many_names_ns`,
//! `record.region_str_many_names_ns`, `record.log_static_ns`, `record.log_fn_ns`,
//! `record.log_fmt_ns`), and
//! `record.floor.region_cycling_ns` (the floor with the many-names case's cycling index),
//! and `record.region_many_names_ratio_to_cycling_floor` (the many-names case over it).
//! `record.region_cpu_ratio_to_floor`: the region ratio on-CPU (wall-clock less the time the
//! thread waited for a CPU).
//!
//! A second harness shape: criterion's sampling plan (warm-up, flat samples, its loop with
//! `black_box` on each op's output) measures the floor, `region!` and the floor again
//! (criterion figures `record.criterion.floor_region_ns`, `.region_ns`,
//! `.floor_region_after_ns`); `record.criterion_region_ratio_to_floor` is `region!` over the
//! geometric mean of the two floors, and `record.harness_agreement` is that over
//! `record.region_ratio_to_floor` (a loud warning when off 1 by more than 5%).
//!
//! Then: `record.region_2t_ns`, `record.region_2t_ratio` (on-CPU time: wall-clock less the
//! time the thread waited for a CPU), `record.region_2t_wall_ratio`, `record.floor_2t_ratio`
//! and `record.floor_2t_wall_ratio` (the floor's own two-thread ratios, measured alongside),
//! `record.lost_events` (events the benches' writers discarded: must be 0, or the figures
//! flatter fdr), `record.disabled_ns` (a disabled `region!` site over an empty loop
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
//! exit) remains in every figure, the floor's too: `record.snapshot_stall_over_1us_ratio` and
//! `record.snapshot_stall_p9999_ratio` are the writer's `_during_snapshot_no_irq_steal`
//! figures over the floor's (a floor with no event over 1 us counts one; target <= 1.5).
//!
//! Last the peers, in rounds of their own with the floor variants and `region!`
//! (`peer.floor.region_ns`, `peer.fdr.region_ns`), each on its recommended path:
//! `peer.tracing.region_ns` (a span created, entered, exited and closed through a registry
//! with a timestamping layer, installed as the global default dispatcher),
//! `peer.fastrace.region_ns` (a `LocalSpan` under a local parent, a root per 1,000 spans,
//! the reporter on), `peer.puffin.region_ns` (a scope nested in a frame's scope, a new frame
//! per 1,000), `peer.tracy.region_ns` (`span!`, no viewer connected: Tracy queues the
//! events in memory); each with `peer.{name}.ratio_to_fdr` (per-round peer / `region!`,
//! with `_p10`/`_p90`), and `peer.best_ratio_to_fdr`, the per-round fastest of them over
//! `region!`: the figure a speedup claim cites. Their slow paths, named as such:
//! `peer.tracing_scoped_ns` (the same span through a scoped dispatcher, `with_default`),
//! `peer.fastrace_span_ns` (a thread-safe `Span` instead of a `LocalSpan`),
//! `peer.puffin_toplevel_ns` (a top-level scope, each reported to the global profiler).
//!
//! `cargo xtask bench --filter record|flight|peer` runs one section.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use fdr_benches::harness::{
    self, Case, Sample, Shape, Spread, check_agreement, clean_median, clean_rounds, fastest,
    on_cpu, process_cpu, ratio_spread, ratios, report_spread, schedstat, wall,
};
use fdr_benches::{floor_event, median, report};
use fdr_recorder::__macro_support::StaticName;
use fdr_recorder::{Config, FlightConfig};

/// Regions per timed batch of the two-thread and disabled-site figures.
const BATCH: u64 = 200_000;
/// Timed batches per variant of those (interleaved).
const ROUNDS: usize = 21;
/// Ops per timed batch of a ratio: short, so that the machine's speed changes little within
/// a round (and a batch is seldom preempted), and still more than a chunk's worth of regions
/// (64 KiB, about 16,000 regions at 2 bytes an event), so that every batch pays for its
/// hand-offs.
const RATIO_BATCH: u64 = 20_000;
/// Rounds of the ratios.
const RATIO_ROUNDS: usize = 201;
/// Ops per timed batch of the peers' rounds: a peer's span costs up to ten regions, and a
/// batch should still take well under a timeslice.
const PEER_BATCH: u64 = 5_000;
/// Rounds of the peers' ratios.
const PEER_ROUNDS: usize = 401;
/// How far off 1 an agreement figure may be before the bench warns.
const AGREEMENT_TOLERANCE: f64 = 0.05;
/// Distinct names of the many-names cases.
const MANY_NAMES: usize = 1000;
/// Ids a region event carries in its one operand byte (the rest go to a longer encoding).
const ONE_BYTE_NAME_IDS: u32 = 32;

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

fn floor_one() {
    floor_event(3);
    black_box(());
}

fn fdr_region() {
    let _g = fdr_recorder::region!("db");
    black_box(());
}

/// The two-event floor in every variant: the same work through each harness shape and
/// black-box placement. The first is the shape every region case is measured in.
fn floor2_variants<'a>() -> Vec<Case<'a>> {
    vec![
        Case::inline(
            "floor2 closure, black_box between (the cases' shape)",
            || {
                floor_event(1);
                black_box(());
                floor_event(2);
            },
        ),
        Case::inline("floor2 named fn, inlined", floor_region),
        Case::inline("floor2 black_box on the tags", || {
            floor_event(black_box(1));
            floor_event(black_box(2));
        }),
        Case::inline("floor2 no black_box", || {
            floor_event(1);
            floor_event(2);
        }),
        Case::dyn_call("floor2 through &mut dyn FnMut", floor_region),
        Case::fn_ptr("floor2 through a fn pointer", floor_region),
    ]
}

/// The one-event floor in every variant (the first is the log case's shape).
fn floor1_variants<'a>() -> Vec<Case<'a>> {
    vec![
        Case::inline("floor1 closure (the cases' shape)", || floor_event(3)),
        Case::inline("floor1 named fn, black_box after", floor_one),
        Case::inline("floor1 black_box on the tag", || floor_event(black_box(3))),
        Case::dyn_call("floor1 through &mut dyn FnMut", floor_one),
        Case::fn_ptr("floor1 through a fn pointer", floor_one),
    ]
}

/// Cases and the index range of each group of them.
#[derive(Default)]
struct Cases<'a> {
    cases: Vec<Case<'a>>,
}

impl<'a> Cases<'a> {
    fn add(&mut self, c: Case<'a>) -> usize {
        self.cases.push(c);
        self.cases.len() - 1
    }

    fn add_all(&mut self, cs: Vec<Case<'a>>) -> std::ops::Range<usize> {
        let start = self.cases.len();
        self.cases.extend(cs);
        start..self.cases.len()
    }

    /// Runs them all interleaved (`rounds` rounds of `batch` ops) and prints each one's
    /// median and spread.
    fn run(&mut self, section: &str, batch: u64, rounds: usize) -> Vec<Vec<Sample>> {
        let s = harness::rounds(&mut self.cases, batch, rounds);
        println!(
            "{section}: {rounds} interleaved rounds of {batch} ops; ns per op, median [p10, p90] over the rounds in which the batch was not switched out"
        );
        for (c, v) in self.cases.iter().zip(&s) {
            let clean = clean_rounds(c.name, &[v]);
            let w = Spread::of(clean.iter().map(|&r| v[r].wall_ns).collect());
            println!(
                "  {:<58} {:>8.2} [{:.2}, {:.2}] {:>3} rounds  {:?}",
                c.name, w.median, w.p10, w.p90, w.n, c.shape
            );
        }
        s
    }
}

/// Of a group of floor variants, the fastest (lowest median): its index, printed.
fn choose_floor(cases: &Cases<'_>, s: &[Vec<Sample>], group: std::ops::Range<usize>) -> usize {
    let variants: Vec<&[Sample]> = s[group.clone()].iter().map(|v| &v[..]).collect();
    let i = group.start + fastest(&variants);
    println!("  floor chosen: {}", cases.cases[i].name);
    i
}

/// Names the benches record with, interned first thing: they keep ids that fit a region
/// event's operand byte whatever else a section interns (the past-32 and many-names cases
/// add over a thousand).
const EARLY_NAMES: [&str; 10] = [
    "db",
    "query done",
    "request",
    "parse",
    "render",
    "http",
    "done",
    "fill",
    "w",
    "x",
];

fn intern_early_names() {
    for name in EARLY_NAMES {
        fdr_recorder::intern(name);
    }
}

/// Interns names until the next one's id is past those a region event carries in one
/// byte, and returns that next name's id. [`EARLY_NAMES`] must stay below.
fn intern_past_one_byte(late: &'static str) -> u32 {
    for name in EARLY_NAMES {
        let id = fdr_recorder::intern(name).0;
        assert!(
            id < ONE_BYTE_NAME_IDS,
            "{name:?} was interned as id {id}, past the one-byte ids: the fast cases would measure the long encoding"
        );
    }
    for k in 0..ONE_BYTE_NAME_IDS {
        if fdr_recorder::intern(Box::leak(format!("bench.filler.{k}").into_boxed_str())).0
            >= ONE_BYTE_NAME_IDS - 1
        {
            break;
        }
    }
    let id = fdr_recorder::intern(late).0;
    assert!(
        id >= ONE_BYTE_NAME_IDS,
        "{late:?} was interned as id {id}, not past the first {ONE_BYTE_NAME_IDS}"
    );
    id
}

/// `n` distinct leaked names, as `&'static str`s and as the per-site statics `region!`
/// keeps (one per call site of a service with `n` region names).
fn many_names(n: usize) -> (&'static [&'static str], &'static [StaticName]) {
    let texts: &'static [&'static str] = Box::leak(
        (0..n)
            .map(|k| &*Box::leak(format!("service.region.{k:04}").into_boxed_str()))
            .collect(),
    );
    let statics = Box::leak(texts.iter().map(|t| StaticName::new(t)).collect());
    (texts, statics)
}

/// Steps a cycling index over `len` names.
#[inline(always)]
fn next(i: &mut usize, len: usize) -> usize {
    let k = *i;
    *i = if k + 1 == len { 0 } else { k + 1 };
    k
}

fn record_section() {
    start_recorder(64 << 20);
    let discarded = || {
        fdr_recorder::stats()
            .lost_for(fdr_format::LossReason::PoolExhausted)
            .events
    };
    let lost_before = discarded();
    const PAST_32: &str = "db.past_32";
    let past_id = intern_past_one_byte(PAST_32);
    let (texts, statics) = many_names(MANY_NAMES);

    let mut c = Cases::default();
    let f2 = c.add_all(floor2_variants());
    let f2_plain = c.add(Case::plain(
        "floor2 plain loop, written out",
        harness::plain::<2>,
    ));
    let f1 = c.add_all(floor1_variants());
    let f1_plain = c.add(Case::plain(
        "floor1 plain loop, written out",
        harness::plain::<1>,
    ));
    let mut k = 0;
    let cycling = c.add(Case::inline("floor2 cycling over 1,000 names", move || {
        let name = &statics[next(&mut k, statics.len())];
        floor_event(name as *const StaticName as u64);
        black_box(());
        floor_event(2);
    }));
    let region = c.add(Case::inline("region!(\"db\")", fdr_region));
    let guard = c.add(Case::inline("region(\"db\") guard", || {
        let _g = fdr_recorder::region("db");
        black_box(());
    }));
    let with_region = c.add(Case::inline("with_region(\"db\", ..)", || {
        fdr_recorder::with_region("db", || black_box(()))
    }));
    let past_32 = c.add(Case::inline(
        "region! named past the first 32 names",
        || {
            let _g = fdr_recorder::region!(PAST_32);
            black_box(());
        },
    ));
    let mut k = 0;
    let many = c.add(Case::inline("region! x 1,000 names, cycling", move || {
        let _g =
            fdr_recorder::__macro_support::region_static(&statics[next(&mut k, statics.len())]);
        black_box(());
    }));
    let mut k = 0;
    let many_str = c.add(Case::inline(
        "region(&str) x 1,000 names, cycling",
        move || {
            let _g = fdr_recorder::region(texts[next(&mut k, texts.len())]);
            black_box(());
        },
    ));
    let log_static = c.add(Case::inline("log!(\"db\", \"query done\")", || {
        fdr_recorder::log!("db", "query done")
    }));
    let log_fn = c.add(Case::inline("log(\"db\", \"query done\")", || {
        fdr_recorder::log("db", "query done")
    }));
    let log_fmt = c.add(Case::inline("log!(\"db\", \"{} rows\", n)", || {
        fdr_recorder::log!("db", "{} rows", black_box(42))
    }));
    let s = c.run("record", RATIO_BATCH, RATIO_ROUNDS);
    assert_eq!(
        fdr_recorder::intern(PAST_32).0,
        past_id,
        "the past-32 name kept its id"
    );

    let floor2 = choose_floor(&c, &s, f2);
    let floor1 = choose_floor(&c, &s, f1);
    let ns = |i: usize| clean_median(c.cases[i].name, &s[i]);
    report("record.floor.region_ns", ns(floor2));
    report("record.floor.region_plain_loop_ns", ns(f2_plain));
    report("record.floor.event_ns", ns(floor1));
    report("record.floor.event_plain_loop_ns", ns(f1_plain));
    report("record.floor.region_cycling_ns", ns(cycling));
    let agreement = ratio_spread("record.floor_agreement", &s[floor2], &s[f2_plain]);
    report_spread("record.floor_agreement", agreement);
    check_agreement(
        "record.floor_agreement",
        agreement.median,
        AGREEMENT_TOLERANCE,
        "the chosen two-event floor is not the plain loop's cost; every region ratio is suspect",
    );
    let agreement = ratio_spread("record.floor_one_event_agreement", &s[floor1], &s[f1_plain]);
    report_spread("record.floor_one_event_agreement", agreement);
    check_agreement(
        "record.floor_one_event_agreement",
        agreement.median,
        AGREEMENT_TOLERANCE,
        "the chosen one-event floor is not the plain loop's cost; the log ratio is suspect",
    );

    for (name, i, floor) in [
        ("region", region, floor2),
        ("region_guard", guard, floor2),
        ("with_region", with_region, floor2),
        ("region_past_32", past_32, floor2),
        ("region_many_names", many, floor2),
        ("region_str_many_names", many_str, floor2),
        ("log_static", log_static, floor1),
        ("log_fn", log_fn, floor1),
    ] {
        let figure = format!("record.{name}_ratio_to_floor");
        report_spread(&figure, ratio_spread(&figure, &s[i], &s[floor]));
    }
    // The many-names case against the floor doing the same cycling over the same statics:
    // what the names cost apart from the bench's index.
    let figure = "record.region_many_names_ratio_to_cycling_floor";
    report_spread(figure, ratio_spread(figure, &s[many], &s[cycling]));
    report_spread(
        "record.region_cpu_ratio_to_floor",
        Spread::of(ratios(&on_cpu(&s[region]), &on_cpu(&s[floor2]))),
    );
    for (name, i) in [
        ("region", region),
        ("region_str", guard),
        ("with_region", with_region),
        ("region_past_32", past_32),
        ("region_many_names", many),
        ("region_str_many_names", many_str),
        ("log_static", log_static),
        ("log_fn", log_fn),
        ("log_fmt", log_fmt),
    ] {
        report(&format!("record.{name}_ns"), ns(i));
    }
    let region_ratio = ratio_spread("record.region_ratio_to_floor", &s[region], &s[floor2]).median;
    drop(c);

    // The same region and floor through a second harness shape.
    let criterion_ratio = criterion_shape();
    report("record.criterion_region_ratio_to_floor", criterion_ratio);
    let harness_agreement = criterion_ratio / region_ratio;
    report("record.harness_agreement", harness_agreement);
    check_agreement(
        "record.harness_agreement",
        harness_agreement,
        AGREEMENT_TOLERANCE,
        "criterion's shape and the interleaved rounds disagree on region!'s ratio to its floor",
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

    fdr_recorder::stop();
    // The cost a disabled call site adds to a loop iteration over an empty iteration (the
    // harness's call through `&mut dyn FnMut` is outside the loops).
    let s = harness::rounds(
        &mut [
            Case::dyn_call("empty loop", empty_loop),
            Case::dyn_call("disabled region! loop", disabled_loop),
        ],
        BATCH,
        ROUNDS,
    );
    let (empty, disabled) = (median(wall(&s[0])), median(wall(&s[1])));
    report("record.disabled_raw_ns", disabled / LOOP as f64);
    report(
        "record.disabled_ns",
        ((disabled - empty) / LOOP as f64).max(0.0),
    );
    start_recorder(64 << 20);

    report("record.bytes_per_event", bytes_per_event());
}

/// Samples of each criterion bench of [`criterion_shape`].
const CRITERION_SAMPLES: usize = 1000;

/// The two-event floor, `region!`, and the floor again, each through criterion's sampling
/// plan (flat samples of about a millisecond, so that most are not preempted on a shared
/// host) and its timing loop (`for _ in 0..iters { black_box(op()) }`, as `Bencher::iter`
/// runs it, timed by `iter_custom` so that the samples can be read back here). Returns
/// `region!`'s median over the geometric mean of the two floors' medians (the floor before
/// and after, so that a steady drift of the host's speed cancels out).
fn criterion_shape() -> f64 {
    use criterion::{Criterion, SamplingMode};
    let mut c = Criterion::default()
        .sample_size(CRITERION_SAMPLES)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500));
    let mut g = c.benchmark_group("record.criterion");
    g.sampling_mode(SamplingMode::Flat);
    let floor = criterion_median(&mut g, "floor_region_ns", floor_region);
    let region = criterion_median(&mut g, "region_ns", fdr_region);
    let floor_after = criterion_median(&mut g, "floor_region_after_ns", floor_region);
    g.finish();
    println!(
        "criterion shape: floor {floor:.2} ns, region! {region:.2} ns, floor after {floor_after:.2} ns"
    );
    region / (floor * floor_after).sqrt()
}

/// Benchmarks `op` in `g` and returns the median of its samples, ns per op.
fn criterion_median<F: FnMut()>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    mut op: F,
) -> f64 {
    let mut per_iter_ns = Vec::new();
    g.bench_function(id, |b| {
        b.iter_custom(|iters| timed_like_criterion(&mut op, iters, &mut per_iter_ns))
    });
    // The warm-up's calls come first; the last CRITERION_SAMPLES are the samples.
    median(per_iter_ns.split_off(per_iter_ns.len().saturating_sub(CRITERION_SAMPLES)))
}

/// `Bencher::iter`'s loop over `op`, timed; pushes the ns per iteration.
#[inline(never)]
fn timed_like_criterion<O, F: FnMut() -> O>(
    op: &mut F,
    iters: u64,
    out: &mut Vec<f64>,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(op());
    }
    let d = start.elapsed();
    out.push(d.as_nanos() as f64 / iters as f64);
    d
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
                let mut case = Case::inline("", f);
                case.time(BATCH);
                let (mut two, mut one) = (Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    b.wait();
                    two.push(case.time(BATCH));
                    b.wait();
                    if k == 0 {
                        one.push(case.time(BATCH));
                    }
                    b.wait();
                }
                (two, one)
            })
        })
        .collect();
    let per: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let pick = |v: &[Sample], cpu: bool| if cpu { on_cpu(v) } else { wall(v) };
    let result = |cpu: bool| {
        let (a, b) = (pick(&per[0].0, cpu), pick(&per[1].0, cpu));
        let two: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
        (median(two), median(pick(&per[0].1, cpu)))
    };
    [result(false), result(true)]
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
    let writer = report_latency("flight.writer", "during_snapshot", fdr_lat, ticks_per_ns);
    let floor = report_latency("flight.floor", "during_snapshot", floor_lat, ticks_per_ns);
    // The stall ratios: the writer's tail over the floor loop's, on the blocks free of
    // interrupts and steal, in the same run (target <= 1.5). A floor with no event over
    // 1 us counts as one, so the ratio stays finite (and errs toward fdr's cost).
    if let (Some(w), Some(f)) = (writer, floor) {
        let floor_over = f.over_1us_per_million.max(1e6 / f.events as f64);
        report(
            "record.snapshot_stall_over_1us_ratio",
            w.over_1us_per_million / floor_over,
        );
        report("record.snapshot_stall_p9999_ratio", w.p9999_ns / f.p9999_ns);
    }

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
/// Returns the `_no_irq_steal` tail (`None`: no such block).
fn report_latency(prefix: &str, suffix: &str, timed: Timed, ticks_per_ns: f64) -> Option<Tail> {
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
    let mut tail = None;
    for (filter, excluded, lat) in filtered {
        let suffix = format!("{suffix}_{filter}");
        tail = report_distribution(prefix, &suffix, lat, ticks_per_ns);
        report(
            &format!("{prefix}_blocks_excluded_share_{suffix}"),
            excluded,
        );
    }
    tail
}

/// The tail of a latency distribution.
#[derive(Clone, Copy)]
struct Tail {
    /// Events in it.
    events: usize,
    p9999_ns: f64,
    over_1us_per_million: f64,
}

/// Max, p99.99 and the events over 1 us per million of `lat` (ticks); nothing if empty.
fn report_distribution(
    prefix: &str,
    suffix: &str,
    mut lat: Vec<u64>,
    ticks_per_ns: f64,
) -> Option<Tail> {
    let &max = lat.iter().max()?;
    lat.sort_unstable();
    let ns = |t: u64| t as f64 / ticks_per_ns;
    let over = lat.iter().filter(|&&t| ns(t) > 1000.0).count();
    let tail = Tail {
        events: lat.len(),
        p9999_ns: ns(lat[lat.len() * 9999 / 10000]),
        over_1us_per_million: over as f64 * 1e6 / lat.len() as f64,
    };
    report(&format!("{prefix}_max_ns_{suffix}"), ns(max));
    report(&format!("{prefix}_p9999_ns_{suffix}"), tail.p9999_ns);
    report(
        &format!("{prefix}_over_1us_per_million_{suffix}"),
        tail.over_1us_per_million,
    );
    Some(tail)
}

mod peers {
    use super::*;
    use fastrace::local::{LocalParentGuard, LocalSpan};
    use tracing_subscriber::layer::SubscriberExt;

    /// A layer that timestamps every span enter and exit into a thread-local, as a
    /// recording layer minimally must.
    struct Timestamps;

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

    /// Spans per fastrace root and scopes per puffin frame: a request's or a frame's worth.
    const PER_PARENT: u32 = 1000;

    /// fastrace as its documentation sets it up: a root span per request, made the thread's
    /// local parent, which the spans under it attach to; when the root ends, its spans go to
    /// the global collector, which turns them into records for the reporter. `flush`: the
    /// batch ends with `fastrace::flush()`, which does the collector's work for the batch's
    /// spans (on a thread it joins) inside the timed span; else the collector's thread does
    /// it later, off the clock.
    #[derive(Default)]
    struct FastraceRoot {
        n: u32,
        flush: bool,
        root: Option<(LocalParentGuard, fastrace::Span)>,
    }

    impl FastraceRoot {
        #[inline(always)]
        fn step(&mut self) {
            if self.n.is_multiple_of(PER_PARENT) {
                // The guard first, then the root.
                self.root = None;
                let span =
                    fastrace::Span::root("request", fastrace::prelude::SpanContext::random());
                let guard = span.set_local_parent();
                self.root = Some((guard, span));
            }
            self.n = self.n.wrapping_add(1);
        }

        /// Ends the root, inside the batch's timed span (and before another case runs).
        fn end(&mut self) {
            self.root = None;
            self.n = 0;
            if self.flush {
                fastrace::flush();
            }
        }
    }

    /// puffin's frames: every [`PER_PARENT`] scopes, `new_frame`; `nested` puts the scopes
    /// in a frame-long outer scope (as a profiled main loop does), else each is top-level
    /// and reports itself to the global profiler when it ends.
    struct PuffinFrames {
        m: u32,
        nested: bool,
        outer: Option<puffin::ProfilerScope>,
    }

    impl PuffinFrames {
        #[inline(always)]
        fn step(&mut self) {
            if self.m.is_multiple_of(PER_PARENT) {
                self.outer = None;
                puffin::GlobalProfiler::lock().new_frame();
                if self.nested {
                    self.outer = puffin::profile_scope_custom!("frame");
                }
            }
            self.m = self.m.wrapping_add(1);
        }

        /// Ends the frame, inside the batch's timed span (and before another case runs).
        fn end(&mut self) {
            self.outer = None;
            puffin::GlobalProfiler::lock().new_frame();
            self.m = 0;
        }
    }

    fn tracing_span() {
        let _g = tracing::info_span!("db").entered();
        black_box(());
    }

    pub(super) fn section() {
        // Each peer set up as its documentation recommends.
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Timestamps))
            .expect("the bench sets the global dispatcher once");
        let scoped = tracing::Dispatch::new(tracing_subscriber::registry().with(Timestamps));
        fastrace::set_reporter(Discard, fastrace::collector::Config::default());
        puffin::set_scopes_on(true);
        let _tracy = tracy_client::Client::start();
        // fdr recording (the floor's clock is calibrated when the recorder starts).
        if !fdr_recorder::is_running() {
            start_recorder(64 << 20);
        }

        let mut c = Cases::default();
        let f2 = c.add_all(floor2_variants());
        let region = c.add(Case::inline("fdr region!(\"db\")", fdr_region));
        let tracing = c.add(Case::inline(
            "tracing span, registry + layer, global dispatcher",
            tracing_span,
        ));
        let local_spans = |name, flush| {
            let mut root = FastraceRoot {
                flush,
                ..FastraceRoot::default()
            };
            Case::new(name, Shape::Inline, move |n| {
                harness::timed(n, || {
                    for _ in 0..n {
                        root.step();
                        let _s = LocalSpan::enter_with_local_parent("db");
                        black_box(());
                    }
                    root.end();
                })
            })
        };
        let fastrace = c.add(local_spans(
            "fastrace LocalSpan under a local parent, reporter on",
            false,
        ));
        let fastrace_flushed = c.add(local_spans(
            "fastrace the same, flushed in each batch (process CPU)",
            true,
        ));
        // What a flush costs with nothing to collect (it spawns and joins a thread): taken
        // off the flushed batches' CPU time, which then counts the spans' collection only.
        let flush_only = c.add(Case::new(
            "fastrace flush with nothing pending (process CPU)",
            Shape::Plain,
            |n| harness::timed(n, fastrace::flush),
        ));
        let mut frames = PuffinFrames {
            m: 0,
            nested: true,
            outer: None,
        };
        let puffin = c.add(Case::new(
            "puffin scope nested in a frame",
            Shape::Inline,
            move |n| {
                harness::timed(n, || {
                    for _ in 0..n {
                        frames.step();
                        puffin::profile_scope!("db");
                        black_box(());
                    }
                    frames.end();
                })
            },
        ));
        let tracy = c.add(Case::inline("tracy span!, no viewer connected", || {
            let _s = tracy_client::span!("db");
            black_box(());
        }));
        // The slow paths.
        let tracing_scoped = c.add(Case::new(
            "slow path: tracing span, scoped dispatcher",
            Shape::Inline,
            move |n| {
                tracing::dispatcher::with_default(&scoped, || {
                    harness::timed(n, || {
                        for _ in 0..n {
                            tracing_span();
                        }
                    })
                })
            },
        ));
        let mut root = FastraceRoot::default();
        let fastrace_span = c.add(Case::new(
            "slow path: fastrace Span under a local parent",
            Shape::Inline,
            move |n| {
                harness::timed(n, || {
                    for _ in 0..n {
                        root.step();
                        let _s = fastrace::Span::enter_with_local_parent("db");
                        black_box(());
                    }
                    root.end();
                })
            },
        ));
        let mut frames = PuffinFrames {
            m: 0,
            nested: false,
            outer: None,
        };
        let puffin_toplevel = c.add(Case::new(
            "slow path: puffin top-level scope",
            Shape::Inline,
            move |n| {
                harness::timed(n, || {
                    for _ in 0..n {
                        frames.step();
                        puffin::profile_scope!("db");
                        black_box(());
                    }
                    frames.end();
                })
            },
        ));
        let s = c.run("peer", PEER_BATCH, PEER_ROUNDS);
        let floor = choose_floor(&c, &s, f2);
        let names: Vec<&str> = c.cases.iter().map(|c| c.name).collect();
        drop(c);
        fastrace::flush();

        let ns = |i: usize| clean_median(names[i], &s[i]);
        // The process's CPU per op, round by round; fastrace's flushed case less the cost of
        // the flush itself.
        let cpu_rounds = |i: usize| -> Vec<f64> {
            if i == fastrace_flushed {
                process_cpu(&s[i])
                    .iter()
                    .zip(process_cpu(&s[flush_only]))
                    .map(|(a, b)| a - b)
                    .collect()
            } else {
                process_cpu(&s[i])
            }
        };
        let cpu_ns = |i: usize| median(cpu_rounds(i));
        report("peer.floor.region_ns", ns(floor));
        report("peer.fdr.region_ns", ns(region));
        report("peer.fdr.process_cpu_ns", cpu_ns(region));
        // Each peer's case for the recording thread's wall-clock, and for the process's CPU.
        let recommended = [
            ("tracing", tracing, tracing),
            ("fastrace", fastrace, fastrace_flushed),
            ("puffin", puffin, puffin),
            ("tracy", tracy, tracy),
        ];
        for (name, i, cpu) in recommended {
            report(&format!("peer.{name}.region_ns"), ns(i));
            let figure = format!("peer.{name}.ratio_to_fdr");
            report_spread(&figure, ratio_spread(&figure, &s[i], &s[region]));
            report(&format!("peer.{name}.process_cpu_ns"), cpu_ns(cpu));
        }
        // Round by round, the fastest peer on its recommended path over fdr: over the
        // rounds in which fdr's batch was not switched out, the fastest of the peers'
        // batches that were not either.
        let best: Vec<f64> = clean_rounds("peer.best_ratio_to_fdr", &[&s[region]])
            .into_iter()
            .filter_map(|r| {
                let peer = recommended
                    .iter()
                    .filter(|&&(_, i, _)| !s[i][r].switched)
                    .map(|&(_, i, _)| s[i][r].wall_ns)
                    .reduce(f64::min)?;
                Some(peer / s[region][r].wall_ns)
            })
            .collect();
        let fastest_peer = |figure: &dyn Fn(&(&str, usize, usize)) -> f64| {
            recommended
                .iter()
                .min_by(|a, b| figure(a).total_cmp(&figure(b)))
                .map(|p| p.0)
                .expect("peers")
        };
        println!(
            "  fastest peer on its recommended path: {} (wall-clock), {} (process CPU)",
            fastest_peer(&|p| ns(p.1)),
            fastest_peer(&|p| cpu_ns(p.2)),
        );
        report_spread("peer.best_ratio_to_fdr", Spread::of(best));
        // The same on the process's CPU time (waiting costs none: every round counts).
        let peers_cpu: Vec<Vec<f64>> = recommended.iter().map(|p| cpu_rounds(p.2)).collect();
        let best_cpu: Vec<f64> = (0..s[region].len())
            .map(|r| {
                let peer = peers_cpu.iter().map(|v| v[r]).fold(f64::INFINITY, f64::min);
                peer / s[region][r].process_cpu_ns
            })
            .collect();
        report_spread("peer.best_cpu_ratio_to_fdr", Spread::of(best_cpu));
        report("peer.tracing_scoped_ns", ns(tracing_scoped));
        report("peer.fastrace_span_ns", ns(fastrace_span));
        report("peer.puffin_toplevel_ns", ns(puffin_toplevel));
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
    intern_early_names();
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
