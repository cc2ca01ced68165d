//! fdr's tokio hooks compose with the application's own: `instrument_with` runs both, and
//! `Hooks` can be called from hooks the application sets itself. (Own test binary: it
//! installs the global recorder; tests run one at a time.)
#![cfg(feature = "tokio")]

mod common;
mod events;

use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use events::{Ev, dump, start_recorder};
use fdr_recorder::tokio_hooks::{Hooks, UserHooks, instrument_with};

static SERIAL: StdMutex<()> = StdMutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    start_recorder();
    g
}

/// Counts of the application's own hooks.
#[derive(Default)]
struct Counts {
    start: AtomicUsize,
    stop: AtomicUsize,
    park: AtomicUsize,
    unpark: AtomicUsize,
}

/// Runs a few sleeps on `rt` so its workers park and unpark, then shuts it down.
fn exercise(rt: tokio::runtime::Runtime) {
    rt.block_on(async {
        for _ in 0..3 {
            tokio::spawn(tokio::time::sleep(Duration::from_millis(5)))
                .await
                .unwrap();
        }
    });
    drop(rt);
}

/// The worker threads (named `worker_name`) that recorded parks: their events.
fn workers(worker_name: &str) -> Vec<Vec<Ev>> {
    dump()
        .threads
        .into_values()
        .filter(|(n, evs)| n == worker_name && evs.contains(&Ev::Park))
        .map(|(_, evs)| evs)
        .collect()
}

fn assert_recorded(worker_name: &str) {
    let ws = workers(worker_name);
    assert!(
        !ws.is_empty(),
        "no worker named {worker_name} recorded parks"
    );
    for evs in ws {
        assert_eq!(evs[0], Ev::ThreadStart);
        let pu: Vec<_> = evs
            .iter()
            .filter(|e| matches!(e, Ev::Park | Ev::Unpark))
            .collect();
        assert!(pu.windows(2).all(|w| w[0] != w[1]), "{pu:?}");
    }
}

#[test]
fn instrument_with_runs_the_applications_hooks_and_records_fdrs() {
    let _s = serial();
    let counts = Arc::new(Counts::default());
    let c = |f: fn(&Counts) -> &AtomicUsize| {
        let counts = counts.clone();
        move || {
            f(&counts).fetch_add(1, Ordering::Relaxed);
        }
    };
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2)
        .enable_all()
        .thread_name("hooks-with-worker");
    instrument_with(
        &mut b,
        UserHooks::new()
            .on_thread_start(c(|c| &c.start))
            .on_thread_stop(c(|c| &c.stop))
            .on_thread_park(c(|c| &c.park))
            .on_thread_unpark(c(|c| &c.unpark)),
    );
    exercise(b.build().unwrap());
    // Every hook of the application's ran...
    assert!(counts.start.load(Ordering::Relaxed) >= 2);
    assert_eq!(
        counts.stop.load(Ordering::Relaxed),
        counts.start.load(Ordering::Relaxed)
    );
    assert!(counts.park.load(Ordering::Relaxed) >= 1);
    assert!(counts.unpark.load(Ordering::Relaxed) >= 1);
    // ... and so did fdr's.
    assert_recorded("hooks-with-worker");
}

#[test]
fn hooks_called_from_the_applications_own_closures_record_workers() {
    let _s = serial();
    let parks = Arc::new(AtomicUsize::new(0));
    let p = parks.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("hooks-own-worker")
        .on_thread_start(Hooks::thread_start)
        .on_thread_stop(Hooks::thread_stop)
        .on_thread_park(move || {
            p.fetch_add(1, Ordering::Relaxed);
            Hooks::thread_park();
        })
        .on_thread_unpark(Hooks::thread_unpark)
        .build()
        .unwrap();
    exercise(rt);
    assert!(parks.load(Ordering::Relaxed) >= 1);
    assert_recorded("hooks-own-worker");
}
