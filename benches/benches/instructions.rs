//! Instruction counts of the recording paths, for callgrind (load-independent where the
//! wall-clock benches are not). Run alone it only exercises each path once, quickly; the
//! figures come from running it under callgrind, one path at a time:
//!
//! ```text
//! cargo bench -p fdr-benches --bench instructions --no-run
//! valgrind --tool=callgrind --toggle-collect='instructions::measured' --collect-atstart=no \
//!     target/release/deps/instructions-HASH PATH 20000
//! ```
//!
//! `PATH`: `tasks` (a traced task's life: creation, a poll that wakes it through a clone
//! of its waker, the completing poll, the drop), `log` (`log("db", "query done")`),
//! `log_site` (`log!("db", "query done")`, its ids kept at the call site),
//! `region_str` (`region(&str)` over 1,000 names, cycling), `region` (`region!("db")`),
//! `tasks_shed` (`tasks` while the cost budget sheds polls: the polls are short and
//! empty, so their deferred starts are forgotten and nothing but creation and drop is
//! recorded).
//! Instructions per call: callgrind's `Collected` over the count. Under valgrind the events'
//! deltas are longer than on the bare machine (every instruction is slower), so a delta
//! takes two or three bytes where it takes one natively; the counts of paths that encode
//! deltas with varints spread by a few percent between runs.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Waker};

use fdr_benches::futures::{CountedWaker, YieldOnce};
use fdr_recorder::task::FdrFutureExt;

#[inline(never)]
fn tasks(n: usize, cx: &mut Context<'_>) {
    for _ in 0..n {
        let mut f = std::pin::pin!(YieldOnce(false).traced("req"));
        let _ = black_box(f.as_mut().poll(cx));
        let _ = black_box(f.as_mut().poll(cx));
    }
}

#[inline(never)]
fn log(n: usize) {
    for _ in 0..n {
        fdr_recorder::log("db", "query done");
    }
}

#[inline(never)]
fn log_site(n: usize) {
    for _ in 0..n {
        fdr_recorder::log!("db", "query done");
    }
}

#[inline(never)]
fn region_str(n: usize, names: &[&'static str]) {
    let mut k = 0;
    for _ in 0..n {
        let _g = fdr_recorder::region(names[k]);
        black_box(());
        k = if k + 1 == names.len() { 0 } else { k + 1 };
    }
}

#[inline(never)]
fn region(n: usize) {
    for _ in 0..n {
        let _g = fdr_recorder::region!("db");
        black_box(());
    }
}

/// The one function callgrind collects in (`--toggle-collect`).
#[inline(never)]
fn measured(path: &str, n: usize, cx: &mut Context<'_>, names: &[&'static str]) {
    match path {
        "tasks" => tasks(n, cx),
        "log" => log(n),
        "log_site" => log_site(n),
        "region_str" => region_str(n, names),
        "region" => region(n),
        "tasks_shed" => tasks(n, cx),
        _ => {}
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let path = args.next();
    let n = match args.next().map(|s| s.parse::<usize>()) {
        Some(Ok(n)) => n,
        Some(Err(e)) => panic!("the count: {e}"),
        None => 1,
    };
    // The cost meter off: under callgrind, where every instruction is slow, it would
    // measure fdr over its budget and shed polls mid-run. The level is set instead.
    fdr_recorder::start(fdr_recorder::Config {
        metrics_interval: None,
        ..fdr_recorder::Config::default()
    })
    .expect("recorder starts");
    let detail = if path.as_deref() == Some("tasks_shed") {
        fdr_recorder::cost::Detail::NoPolls
    } else {
        fdr_recorder::cost::Detail::Full
    };
    fdr_recorder::cost::set_detail_for_bench(detail);
    let names: Vec<&'static str> = (0..1000)
        .map(|k| &*Box::leak(format!("service.region.{k:04}").into_boxed_str()))
        .collect();
    let waker = Waker::from(Arc::new(CountedWaker));
    let mut cx = Context::from_waker(&waker);
    // Warm-up: the thread registered, every name interned, task ids past 16,383 (three
    // bytes, as in a service that has run a while).
    tasks(20_000, &mut cx);
    log(1000);
    log_site(1000);
    region_str(3000, &names);
    region(1000);
    if !fdr_recorder::calibrate().tsc {
        eprintln!("the event clock is not the time-stamp counter: the fast paths are off");
    }
    const PATHS: [&str; 6] = [
        "tasks",
        "log",
        "log_site",
        "region_str",
        "region",
        "tasks_shed",
    ];
    match path {
        Some(p) if PATHS.contains(&p.as_str()) => measured(&p, n, &mut cx, &names),
        // Another bench's filter (`cargo xtask bench --filter NAME` passes it to every bench).
        Some(p) => eprintln!("instructions: no path named {p:?} (paths: {PATHS:?})"),
        None => {
            for p in PATHS {
                measured(p, n, &mut cx, &names);
            }
        }
    }
}
