//! Async regions on a real tokio multi-thread runtime: a phase measured across awaits and
//! threads, by `in_region` and by the `Send` guard, nested, and ended when cancelled. (Own
//! test binary: it installs the global recorder; tests run one at a time.)
#![cfg(feature = "tokio")]

use std::collections::BTreeMap;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use fdr_format::{Batch, Decoder, EventKind, Tables};
use fdr_recorder::task::FdrFutureExt;
use fdr_recorder::{Config, FlightConfig};

static SERIAL: StdMutex<()> = StdMutex::new(());

fn start() {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 8 << 20,
        }),
        ..Config::default()
    })
    .expect("recorder starts");
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    start();
    g
}

fn runtime() -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2).enable_all();
    fdr_recorder::tokio_hooks::instrument(&mut b);
    b.build().unwrap()
}

/// One async region as the trace tells it.
#[derive(Debug, Clone, PartialEq)]
struct Region {
    name: String,
    task: u64,
    /// Thread (fdr id) and nanoseconds of the begin.
    begin: (u32, u64),
    /// Thread and nanoseconds of the end, if recorded.
    end: Option<(u32, u64)>,
}

/// The flight recorder's async regions by id, and every task's name by id.
fn regions() -> (BTreeMap<u64, Region>, BTreeMap<u64, String>) {
    let mut bytes = Vec::new();
    fdr_recorder::flight().write_to(&mut bytes).unwrap();
    let mut d = Decoder::new(&bytes[..]).unwrap();
    let mut tables = Tables::new();
    let mut out: BTreeMap<u64, Region> = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    let mut ends = Vec::new();
    while let Some(b) = d.next_batch() {
        match b.unwrap() {
            Batch::Table(t) => tables.apply(&t).unwrap(),
            Batch::Events(b) => {
                for e in b.events() {
                    let e = e.unwrap();
                    let ns = tables.clock().expect("a clock sync").duration_ns(e.ts);
                    match e.kind {
                        EventKind::AsyncRegionBegin { region, task, name } => {
                            let prev = out.insert(
                                region,
                                Region {
                                    name: tables.name(name).into_owned(),
                                    task: task.0,
                                    begin: (b.thread.0, ns),
                                    end: None,
                                },
                            );
                            assert!(prev.is_none(), "region id {region} begun twice");
                        }
                        EventKind::AsyncRegionEnd { region, task } => {
                            ends.push((region, task.0, b.thread.0, ns))
                        }
                        EventKind::TaskCreate { task, name, .. } => {
                            tasks.insert(task.0, tables.name(name).into_owned());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    for (region, task, thread, ns) in ends {
        let r = out.get_mut(&region).expect("an end has its begin");
        assert_eq!(r.task, task, "the end names the begin's task");
        assert!(r.end.is_none(), "region {region} ended twice");
        r.end = Some((thread, ns));
    }
    (out, tasks)
}

fn named<'a>(regions: &'a BTreeMap<u64, Region>, name: &str) -> Vec<(u64, &'a Region)> {
    regions
        .iter()
        .filter(|(_, r)| r.name == name)
        .map(|(id, r)| (*id, r))
        .collect()
}

#[test]
fn in_region_measures_a_phase_across_awaits_in_the_polling_task() {
    let _s = serial();
    let rt = runtime();
    rt.block_on(async {
        fdr_recorder::task::spawn("request", async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            async {
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    tokio::task::yield_now().await;
                }
                7
            }
            .in_region("ir-db")
            .await
        })
        .await
        .unwrap()
    });
    drop(rt);
    let (regions, tasks) = regions();
    let db = named(&regions, "ir-db");
    assert_eq!(db.len(), 1, "one region across all its polls: {db:?}");
    let (_, r) = db[0];
    assert_eq!(tasks.get(&r.task).map(String::as_str), Some("request"));
    let (_, end_ns) = r.end.expect("ended at completion");
    // Three sleeps of 20 ms each inside the region: it lasted at least that long.
    assert!(end_ns - r.begin.1 >= 60_000_000, "{r:?}");
}

#[test]
fn the_send_guard_is_held_across_awaits_and_ends_where_it_is_dropped() {
    let _s = serial();
    let rt = runtime();
    let (begin_thread, end_thread) = rt.block_on(async {
        // `tokio::spawn` needs a Send future: the guard is held across awaits.
        fdr_recorder::task::spawn("guarded", async {
            let g = fdr_recorder::async_region("sg-phase");
            assert_ne!(g.id(), 0);
            let here = std::thread::current().id();
            // Until the task resumes on the other worker (bounded).
            let mut there = here;
            for _ in 0..200 {
                tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)))
                    .await
                    .unwrap();
                there = std::thread::current().id();
                if there != here {
                    break;
                }
            }
            drop(g);
            (here, there)
        })
        .await
        .unwrap()
    });
    drop(rt);
    let (regions, tasks) = regions();
    let phase = named(&regions, "sg-phase");
    assert_eq!(phase.len(), 1, "{phase:?}");
    let (_, r) = phase[0];
    assert_eq!(tasks.get(&r.task).map(String::as_str), Some("guarded"));
    let (end_tid, end_ns) = r.end.expect("ended at the drop");
    assert!(end_ns >= r.begin.1);
    // When the task moved, the end is on the other worker's thread.
    assert_eq!(begin_thread != end_thread, r.begin.0 != end_tid, "{r:?}");
}

#[test]
fn nested_regions_have_their_own_ids_and_nest_in_time() {
    let _s = serial();
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(fdr_recorder::task::spawn("nest", async {
        let _outer = fdr_recorder::async_region("nest-outer");
        async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            tokio::time::sleep(Duration::from_millis(2))
                .in_region("nest-inner")
                .await;
        }
        .in_region("nest-middle")
        .await;
    }))
    .unwrap();
    drop(_enter);
    drop(rt);
    let (regions, _) = regions();
    let one = |n| {
        let v = named(&regions, n);
        assert_eq!(v.len(), 1, "{n}: {v:?}");
        v[0]
    };
    let (o, outer) = one("nest-outer");
    let (m, middle) = one("nest-middle");
    let (i, inner) = one("nest-inner");
    assert!(o != m && m != i && o != i);
    assert!(outer.task == middle.task && middle.task == inner.task);
    let span = |r: &Region| (r.begin.1, r.end.expect("ended").1);
    let (ob, oe) = span(outer);
    let (mb, me) = span(middle);
    let (ib, ie) = span(inner);
    assert!(ob <= mb && mb <= ib && ie <= me && me <= oe, "{regions:?}");
}

#[test]
fn a_region_cancelled_before_it_completes_ends_at_its_drop() {
    let _s = serial();
    let rt = runtime();
    let _enter = rt.enter();
    let timed_out = rt.block_on(fdr_recorder::task::spawn("cancel", async {
        tokio::time::timeout(
            Duration::from_millis(5),
            std::future::pending::<()>().in_region("cancelled-phase"),
        )
        .await
        .is_err()
    }));
    drop(_enter);
    drop(rt);
    assert!(timed_out.unwrap());
    let (regions, _) = regions();
    let v = named(&regions, "cancelled-phase");
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].1.end.is_some(), "the drop ended it: {v:?}");
}

#[test]
fn nothing_is_recorded_while_recording_is_off() {
    let _s = serial();
    fdr_recorder::stop();
    let g = fdr_recorder::async_region("off-phase");
    assert_eq!(g.id(), 0);
    drop(g);
    let mut f = Box::pin(async {}.in_region("off-phase-fut"));
    let _ = std::future::Future::poll(
        f.as_mut(),
        &mut std::task::Context::from_waker(std::task::Waker::noop()),
    );
    assert_eq!(f.id(), 0);
    drop(f);
    // Back on; neither left a begin or an end behind.
    start();
    let (regions, _) = regions();
    assert!(named(&regions, "off-phase").is_empty());
    assert!(named(&regions, "off-phase-fut").is_empty());
}
