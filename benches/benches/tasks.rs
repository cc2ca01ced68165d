//! Task, lock and tracing-layer benches.
//!
//! Figures: `task.poll_overhead_ns` (a traced future's poll, including the wake through the
//! wrapped waker, minus the same future's poll untraced), `task.in_region_ns` (a future
//! measured as an async region, begin, end and drop, minus the bare future), `sync.mutex_uncontended_overhead_ns`
//! (fdr `Mutex` lock+unlock minus `std`'s), `task.lifecycle_ns` (a request's task whole:
//! creation, a poll that wakes it through a clone of its waker, the poll that completes
//! it and its drop, minus the bare future's: what the task wrapper adds per request), `tracing_layer.span_ns` (a span's creation, enter, exit
//! and close through `FdrLayer` on a `Registry`) and `peer.tracing_chrome.span_ns` (the same through
//! tracing-chrome's `ChromeLayer` writing a file), and `task.poll_clock_floor_ns` (three
//! clock reads) and `task.poll_events_floor_ns` (three bare events recorded through
//! `record`, the generic path): the floors of a traced poll's three events on the machine at
//! hand. `task.poll_ratio_to_events_floor` is the poll overhead over the physical floor of
//! three events (three times: read the clock, store 16 bytes into a thread-local buffer, as
//! `record.floor.region_ns` does for a region's two; figure `task.floor.poll_events_ns`),
//! measured interleaved with the polls: the R5 target judged as a ratio, on machines where
//! the clock read is slow. The poll figures are medians over rounds, each round running the
//! untraced poll, the traced poll and the floor back to back (the host's speed drifts between
//! rounds, not within one); the other overheads are differences of medians of interleaved
//! samples. The raw times are criterion benches too.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use fdr_benches::futures::{CountedWaker, YieldOnce};
use fdr_benches::{floor_event, median, report};
use fdr_recorder::task::FdrFutureExt;
use tracing_subscriber::prelude::*;

/// A future that wakes itself and stays pending: every poll includes one wake.
struct Spin;

impl Future for Spin {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Creates a future with `make`, polls it to completion (twice, see [`YieldOnce`]) and
/// drops it.
#[inline(always)]
fn run_twice<F: Future>(make: impl FnOnce() -> F, cx: &mut Context<'_>) {
    let mut f = std::pin::pin!(make());
    let _ = black_box(f.as_mut().poll(cx));
    let _ = black_box(f.as_mut().poll(cx));
}

const SAMPLES: usize = 41;

/// ns per call of `f`, over `iters` calls.
#[inline(always)]
fn per_call(f: &mut impl FnMut(), iters: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// Median ns per call of `a` and of `b`, from interleaved samples of `iters` calls.
fn paired(mut a: impl FnMut(), mut b: impl FnMut(), iters: u32) -> (f64, f64) {
    let mut sa = Vec::with_capacity(SAMPLES);
    let mut sb = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        sa.push(per_call(&mut a, iters));
        sb.push(per_call(&mut b, iters));
    }
    (median(&mut sa), median(&mut sb))
}

/// Rounds of the traced-poll figures.
const POLL_ROUNDS: usize = 801;

/// Runs `a`, `b` and `c` back to back for [`POLL_ROUNDS`] rounds of `iters` calls each and
/// returns each round's ns per call of the three.
fn rounds3(
    mut a: impl FnMut(),
    mut b: impl FnMut(),
    mut c: impl FnMut(),
    iters: u32,
) -> Vec<[f64; 3]> {
    (0..POLL_ROUNDS)
        .map(|_| {
            [
                per_call(&mut a, iters),
                per_call(&mut b, iters),
                per_call(&mut c, iters),
            ]
        })
        .collect()
}

fn start_recorder() {
    fdr_recorder::start(fdr_recorder::Config::default()).expect("recorder starts");
}

fn bench_tasks(c: &mut Criterion) {
    start_recorder();
    let waker = Waker::noop();
    let mut plain = Box::pin(Spin);
    let mut traced = Box::pin(Spin.traced("bench"));

    let rounds = rounds3(
        || {
            let _ = black_box(plain.as_mut().poll(&mut Context::from_waker(waker)));
        },
        || {
            let _ = black_box(traced.as_mut().poll(&mut Context::from_waker(waker)));
        },
        || {
            floor_event(1);
            floor_event(2);
            floor_event(3);
        },
        5_000,
    );
    let each = |f: fn(&[f64; 3]) -> f64| median(rounds.iter().map(f).collect::<Vec<_>>());
    report("task.poll_overhead_ns", each(|[u, t, _]| t - u));
    report("task.floor.poll_events_ns", each(|[_, _, f]| *f));
    report(
        "task.poll_ratio_to_events_floor",
        each(|[u, t, f]| (t - u) / f),
    );
    // The floor under it: a traced poll records three events (poll start, wake, poll end),
    // each reading the clock once.
    let (clock_ns, _) = paired(
        || {
            black_box(fdr_recorder::now_ticks());
        },
        || (),
        200_000,
    );
    report("task.poll_clock_floor_ns", 3.0 * clock_ns);
    // And the recorder's cost of those three events, recorded bare.
    let mut i = 0u64;
    let (event_ns, _) = paired(
        || {
            i += 1;
            fdr_recorder::record(&fdr_recorder::EventKind::PollStart {
                task: fdr_recorder::TaskId(black_box(i)),
            });
        },
        || (),
        200_000,
    );
    report("task.poll_events_floor_ns", 3.0 * event_ns);

    // An async region around a future that completes at its first poll: the begin at the
    // first poll, the end at completion, the wrapper's drop; minus the bare future's poll.
    let poll_ready = |f: &mut dyn FnMut() -> bool| black_box(f());
    let (bare_ns, region_ns) = paired(
        || {
            let mut f = std::pin::pin!(std::future::ready(1u8));
            poll_ready(&mut || f.as_mut().poll(&mut Context::from_waker(waker)).is_ready());
        },
        || {
            let mut f = std::pin::pin!(std::future::ready(1u8).in_region("bench-phase"));
            poll_ready(&mut || f.as_mut().poll(&mut Context::from_waker(waker)).is_ready());
        },
        200_000,
    );
    report("task.in_region_ns", region_ns - bare_ns);

    // A task's creation and drop (never polled): what every spawn adds besides the
    // executor's own work, the bare future's creation and drop subtracted.
    let (bare_ns, spawn_ns) = paired(
        || {
            black_box(Spin);
        },
        || {
            drop(black_box(Spin.traced("bench spawn")));
        },
        200_000,
    );
    report("task.spawn_drop_ns", spawn_ns - bare_ns);

    // A request's task whole: creation, a poll that wakes it through a clone of its waker,
    // the poll that completes it, its drop (with the executor's waker reference-counted,
    // as tokio's is); minus the bare future's. What the task wrapper adds per request.
    let counted = Waker::from(std::sync::Arc::new(CountedWaker));
    let (bare_ns, life_ns) = paired(
        || run_twice(|| YieldOnce(false), &mut Context::from_waker(&counted)),
        || {
            run_twice(
                || YieldOnce(false).traced("bench request"),
                &mut Context::from_waker(&counted),
            )
        },
        100_000,
    );
    report("task.lifecycle_ns", life_ns - bare_ns);

    let mut g = c.benchmark_group("task");
    g.bench_function("spawn_drop_ns", |b| {
        b.iter(|| drop(black_box(Spin.traced("bench spawn"))))
    });
    g.bench_function("poll_untraced_ns", |b| {
        b.iter(|| black_box(plain.as_mut().poll(&mut Context::from_waker(waker))))
    });
    g.bench_function("poll_traced_ns", |b| {
        b.iter(|| black_box(traced.as_mut().poll(&mut Context::from_waker(waker))))
    });
    g.finish();
}

fn bench_sync(c: &mut Criterion) {
    start_recorder();
    let std_m = std::sync::Mutex::new(0u64);
    let fdr_m = fdr_recorder::locks::Mutex::new(0u64);
    let (std_ns, fdr_ns) = paired(
        || *black_box(&std_m).lock().unwrap() += 1,
        || *black_box(&fdr_m).lock().unwrap() += 1,
        200_000,
    );
    report("sync.mutex_uncontended_overhead_ns", fdr_ns - std_ns);

    let mut g = c.benchmark_group("sync");
    g.bench_function("std_mutex_uncontended_ns", |b| {
        b.iter(|| *black_box(&std_m).lock().unwrap() += 1)
    });
    g.bench_function("mutex_uncontended_ns", |b| {
        b.iter(|| *black_box(&fdr_m).lock().unwrap() += 1)
    });
    g.finish();
}

/// A span created, entered, exited and closed, as an instrumented function does it per call
/// (a span re-entered over and over would measure an async span's later polls, which
/// `FdrLayer` does not record).
fn span_workload(b: &mut criterion::Bencher<'_>) {
    b.iter(|| {
        let span = tracing::info_span!("request");
        let _g = span.enter();
        black_box(&span);
    })
}

fn bench_tracing(c: &mut Criterion) {
    start_recorder();
    let fdr = tracing_subscriber::registry().with(fdr_tracing::FdrLayer::new());
    tracing::subscriber::with_default(fdr, || {
        let mut g = c.benchmark_group("tracing_layer");
        g.bench_function("span_ns", span_workload);
        g.finish();
    });

    let dir = std::env::temp_dir().join(format!("fdr-bench-chrome-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (chrome, guard) = tracing_chrome::ChromeLayerBuilder::new()
        .file(dir.join("trace.json"))
        .build();
    let sub = tracing_subscriber::registry().with(chrome);
    tracing::subscriber::with_default(sub, || {
        let mut g = c.benchmark_group("peer.tracing_chrome");
        g.bench_function("span_ns", span_workload);
        g.finish();
    });
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_tasks, bench_sync, bench_tracing);
criterion_main!(benches);
