//! Contention-traced locks and blocking regions, decoded from a dump. (Own test binary: it
//! installs the global recorder; tests run one at a time.)

mod common;
mod events;

use std::sync::{Arc, Mutex as StdMutex, mpsc};

#[cfg(target_os = "linux")]
use common::{gettid, wait_until_asleep};
use events::{Ev, dump, here, start_recorder};
use fdr_format::BlockReason;
use fdr_recorder::locks::{Condvar, Mutex, RwLock, blocking};

static SERIAL: StdMutex<()> = StdMutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    start_recorder();
    g
}

/// The events of the thread named `name`, from the first `Begin(marker)`.
fn events_after(name: &str, marker: &str) -> Vec<Ev> {
    let d = dump();
    let (_, evs) = d
        .threads
        .values()
        .find(|(n, evs)| n == name && evs.contains(&Ev::Begin(marker.into())))
        .unwrap_or_else(|| panic!("thread {name} with {marker}"));
    let i = evs
        .iter()
        .position(|e| *e == Ev::Begin(marker.into()))
        .unwrap();
    evs[i..].to_vec()
}

#[test]
fn uncontended_locks_record_nothing() {
    let _s = serial();
    let m = Mutex::new(1);
    let rw = RwLock::new(2);
    std::thread::Builder::new()
        .name("uncontended".into())
        .spawn(move || {
            fdr_recorder::with_region("uncontended", || {
                *m.lock().unwrap() += 1;
                *rw.write().unwrap() += 1;
                assert_eq!(*rw.read().unwrap(), 3);
            });
        })
        .unwrap()
        .join()
        .unwrap();
    let evs = events_after("uncontended", "uncontended");
    assert_eq!(evs[1], Ev::End("uncontended".into()), "{evs:?}");
}

#[test]
#[cfg(target_os = "linux")]
fn a_contended_rwlock_records_reason_and_site() {
    let _s = serial();
    let rw = Arc::new(RwLock::new(0));
    let (held_tx, held_rx) = mpsc::channel();
    let (reading_tx, reading_rx) = mpsc::channel();
    let w = {
        let rw = rw.clone();
        std::thread::spawn(move || {
            let _g = rw.write().unwrap();
            held_tx.send(()).unwrap();
            // Held until the reader, past its last step before `read()`, sleeps: it sleeps
            // nowhere else, so then it waits for this lock, however late it was scheduled.
            let reader = reading_rx.recv().unwrap();
            assert!(wait_until_asleep(reader), "the reader waits for the lock");
        })
    };
    let site = std::thread::Builder::new()
        .name("reader".into())
        .spawn(move || {
            held_rx.recv().unwrap();
            fdr_recorder::with_region("read", || {
                reading_tx.send(gettid()).unwrap();
                let (g, site) = (rw.read().unwrap(), here());
                assert_eq!(*g, 0);
                site
            })
        })
        .unwrap()
        .join()
        .unwrap();
    w.join().unwrap();
    let evs = events_after("reader", "read");
    assert_eq!(
        &evs[..4],
        &[
            Ev::Begin("read".into()),
            Ev::BlockBegin(BlockReason::RwLock, site),
            Ev::BlockEnd,
            Ev::End("read".into())
        ]
    );
}

#[test]
fn condvar_waits_and_blocking_calls_are_blocks() {
    let _s = serial();
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = pair.clone();
    let (sites_tx, sites_rx) = mpsc::channel();
    let (waiting_tx, waiting_rx) = mpsc::channel();
    let t = std::thread::Builder::new()
        .name("waiter".into())
        .spawn(move || {
            let _r = fdr_recorder::region("cv");
            let (m, cv) = &*p2;
            let g = m.lock().unwrap();
            // Not ready yet, so "wait while ready" does not wait: nothing recorded.
            let g = cv.wait_while(g, |ready| *ready).unwrap();
            // Said with the mutex held: the main thread takes it, to set `ready`, only once
            // this thread released it inside the wait.
            waiting_tx.send(()).unwrap();
            let (g, site) = (cv.wait_while(g, |ready| !*ready).unwrap(), here());
            assert!(*g);
            drop(g);
            let (_, sleep_site) = (blocking(BlockReason::Sleep, || ()), here());
            sites_tx.send((site, sleep_site)).unwrap();
        })
        .unwrap();
    waiting_rx.recv().unwrap();
    {
        let (m, cv) = &*pair;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
    t.join().unwrap();
    let (cv_site, sleep_site) = sites_rx.recv().unwrap();
    let evs = events_after("waiter", "cv");
    let blocks: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, Ev::BlockBegin(..) | Ev::BlockEnd))
        .cloned()
        .collect();
    // The main thread may have found the mutex held by the waiter for a moment; the
    // waiter's own blocks are these.
    assert_eq!(
        blocks,
        [
            Ev::BlockBegin(BlockReason::Condvar, cv_site),
            Ev::BlockEnd,
            Ev::BlockBegin(BlockReason::Sleep, sleep_site),
            Ev::BlockEnd,
        ]
    );
}

#[test]
fn poisoned_locks_report_poison_with_the_guard() {
    let _s = serial();
    let m = Arc::new(Mutex::new(5));
    let m2 = m.clone();
    let _ = std::thread::spawn(move || {
        let _g = m2.lock().unwrap();
        panic!("poison it");
    })
    .join();
    assert!(m.is_poisoned());
    let e = m.lock().unwrap_err();
    assert_eq!(**e.get_ref(), 5);
    drop(e);
    assert!(matches!(
        m.try_lock(),
        Err(std::sync::TryLockError::Poisoned(_))
    ));
    m.clear_poison();
    assert_eq!(*m.lock().unwrap(), 5);
}
