//! Instrumented tasks on a real tokio multi-thread runtime: contended locks, who woke whom,
//! wakes from plain threads, worker park/unpark. (Own test binary: it installs the global
//! recorder; tests run one at a time.)
#![cfg(feature = "tokio")]

mod common;
mod events;

use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Poll, Waker};
use std::time::Duration;

#[cfg(target_os = "linux")]
use common::{gettid, wait_until_asleep};
use events::{Ev, dump, here, start_recorder};
use fdr_format::BlockReason;
use fdr_recorder::locks::Mutex;

static SERIAL: StdMutex<()> = StdMutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    start_recorder();
    g
}

fn runtime() -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2).enable_all();
    fdr_recorder::tokio_hooks::instrument(&mut b);
    b.build().unwrap()
}

/// A waker slot: a future that parks its task's waker here on the first poll and completes
/// on the next, so a test knows exactly when the task is pending.
#[derive(Default, Clone)]
struct Slot(Arc<StdMutex<Option<Waker>>>);

impl Slot {
    async fn wait(&self) {
        let mut first = true;
        std::future::poll_fn(|cx| {
            if std::mem::take(&mut first) {
                *self.0.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Takes the waker once the task parked it (bounded wait).
    fn take(&self) -> Waker {
        for _ in 0..10_000 {
            if let Some(w) = self.0.lock().unwrap().take() {
                return w;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the task never parked its waker");
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_task_blocked_on_a_contended_mutex_records_the_lock_site() {
    let _s = serial();
    let before = fdr_recorder::metrics().lock_wait_ns.count;
    let rt = runtime();
    let m = Arc::new(Mutex::new(0u32));
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (trying_tx, trying_rx) = std::sync::mpsc::channel();
    let holder = {
        let m = m.clone();
        std::thread::spawn(move || {
            let mut g = m.lock().unwrap();
            held_tx.send(()).unwrap();
            // Released only once the waiter's thread, past its last step before `lock()`,
            // sleeps (it sleeps nowhere else, so it waits for this lock), however late it
            // was scheduled; and then 5 ms later: a wait of at least that long.
            let waiter = trying_rx.recv().unwrap();
            assert!(wait_until_asleep(waiter), "the waiter waits for the lock");
            std::thread::sleep(Duration::from_millis(5));
            *g += 1;
        })
    };
    let _enter = rt.enter();
    let task = fdr_recorder::task::spawn("lock-waiter", async move {
        held_rx.recv().unwrap();
        trying_tx.send(gettid()).unwrap();
        let (mut g, site) = (m.lock().unwrap(), here());
        *g += 1;
        site
    });
    let site = rt.block_on(task).unwrap();
    holder.join().unwrap();
    drop(rt);

    let d = dump();
    let waiter = d.task("lock-waiter");
    let (_, evs) = d
        .thread_with(|e| *e == Ev::PollStart(waiter))
        .expect("the waiter was polled");
    let start = evs
        .iter()
        .position(|e| *e == Ev::PollStart(waiter))
        .unwrap();
    let run = &evs[start..];
    assert_eq!(
        &run[..4],
        &[
            Ev::PollStart(waiter),
            Ev::BlockBegin(BlockReason::Mutex, site),
            Ev::BlockEnd,
            Ev::PollEnd(waiter, true),
        ],
        "{run:?}"
    );
    assert!(d.all().any(|(_, e)| *e == Ev::Drop(waiter)));
    let after = fdr_recorder::metrics();
    assert!(after.lock_wait_ns.count > before, "{after:?}");
    // The holder held the lock 5 ms after the waiter was seen waiting.
    assert!(after.lock_wait_ns.max_ns >= 1_000_000, "{after:?}");
}

#[test]
fn a_task_woken_by_another_task_names_its_waker() {
    let _s = serial();
    let rt = runtime();
    let slot = Slot::default();
    let s2 = slot.clone();
    let wait = async move { s2.wait().await };
    let site = format!("{}:{}", file!(), line!() + 1);
    let wakee = fdr_recorder::task::spawn_with("wakee", wait, |f| rt.spawn(f));
    let waker = {
        let slot = slot.clone();
        rt.spawn(fdr_recorder::task::FdrFutureExt::traced(
            async move {
                // Wait (off the executor) until the wakee is pending, then wake it from here.
                let w = tokio::task::spawn_blocking(move || slot.take())
                    .await
                    .unwrap();
                w.wake();
            },
            "waker",
        ))
    };
    rt.block_on(async {
        waker.await.unwrap();
        wakee.await.unwrap();
    });
    drop(rt);

    let d = dump();
    let wakee = d.task("wakee");
    let waker = d.task("waker");
    let create = d
        .all()
        .find_map(|(_, e)| match e {
            Ev::Create {
                task, site, parent, ..
            } if *task == wakee => Some((site.clone(), *parent)),
            _ => None,
        })
        .unwrap();
    assert_eq!(create, (site, 0), "spawn site, no parent task");
    // The wake is on the waker's thread, inside the waker's poll.
    let (_, evs) = d
        .thread_with(|e| matches!(e, Ev::Wake { task, .. } if *task == wakee))
        .expect("a wake of the wakee");
    let w = evs
        .iter()
        .position(|e| matches!(e, Ev::Wake { task, .. } if *task == wakee))
        .unwrap();
    assert_eq!(evs[w], Ev::Wake { task: wakee, waker });
    let poll = evs[..w]
        .iter()
        .rposition(|e| matches!(e, Ev::PollStart(_)))
        .unwrap();
    assert_eq!(evs[poll], Ev::PollStart(waker));
    assert!(!evs[poll..w].iter().any(|e| matches!(e, Ev::PollEnd(..))));
    // The wakee: pending, woken, ready, dropped.
    let states: Vec<&Ev> = d
        .timeline
        .iter()
        .map(|(_, e)| e)
        .filter(|e| match e {
            Ev::PollEnd(t, _) | Ev::Drop(t) => *t == wakee,
            _ => false,
        })
        .collect();
    assert_eq!(
        states,
        [
            &Ev::PollEnd(wakee, false),
            &Ev::PollEnd(wakee, true),
            &Ev::Drop(wakee)
        ]
    );
}

#[test]
fn a_task_woken_from_a_plain_thread_has_no_waker_task() {
    let _s = serial();
    let rt = runtime();
    let slot = Slot::default();
    let task = {
        let slot = slot.clone();
        rt.spawn(fdr_recorder::task::FdrFutureExt::traced(
            async move { slot.wait().await },
            "woken-from-thread",
        ))
    };
    let th = std::thread::Builder::new()
        .name("plain-waker".into())
        .spawn(move || slot.take().wake())
        .unwrap();
    th.join().unwrap();
    rt.block_on(task).unwrap();
    drop(rt);

    let d = dump();
    let id = d.task("woken-from-thread");
    let (thread, evs) = d
        .thread_with(|e| matches!(e, Ev::Wake { task, .. } if *task == id))
        .expect("a wake");
    assert_eq!(thread, "plain-waker");
    assert!(evs.contains(&Ev::Wake { task: id, waker: 0 }), "{evs:?}");
}

#[test]
fn workers_record_start_park_and_unpark() {
    let _s = serial();
    let rt = runtime();
    rt.block_on(async {
        for _ in 0..3 {
            fdr_recorder::task::spawn("sleeper", tokio::time::sleep(Duration::from_millis(5)))
                .await
                .unwrap();
        }
    });
    drop(rt);
    let d = dump();
    let workers: Vec<_> = d
        .threads
        .values()
        .filter(|(n, evs)| n.starts_with("tokio-r") && evs.contains(&Ev::Park))
        .collect();
    assert!(
        !workers.is_empty(),
        "{:?}",
        d.threads.values().map(|t| &t.0).collect::<Vec<_>>()
    );
    for (_, evs) in workers {
        assert_eq!(evs[0], Ev::ThreadStart);
        // Parks and unparks alternate.
        let pu: Vec<_> = evs
            .iter()
            .filter(|e| matches!(e, Ev::Park | Ev::Unpark))
            .collect();
        assert!(pu.windows(2).all(|w| w[0] != w[1]), "{pu:?}");
    }
}

#[test]
fn child_tasks_name_their_parent() {
    let _s = serial();
    let rt = runtime();
    rt.block_on(async {
        fdr_recorder::task::spawn("parent", async {
            fdr_recorder::task::spawn("child", async {}).await.unwrap();
        })
        .await
        .unwrap()
    });
    drop(rt);
    let d = dump();
    let parent = d.task("parent");
    let child_parent = d
        .all()
        .find_map(|(_, e)| match e {
            Ev::Create { name, parent, .. } if name == "child" => Some(*parent),
            _ => None,
        })
        .unwrap();
    assert_eq!(child_parent, parent);
}
