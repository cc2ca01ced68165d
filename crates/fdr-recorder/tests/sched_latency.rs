//! A task woken and then kept off its executor for 25 ms shows it in the scheduling-latency
//! metric. (Own test binary: the metrics are process-wide.)
#![cfg(feature = "tokio")]

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use fdr_recorder::task::FdrFutureExt;

#[test]
fn a_woken_task_kept_off_the_executor_shows_in_p99_sched_latency() {
    let before = fdr_recorder::metrics();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    rt.block_on(async {
        let s = slot.clone();
        let mut first = true;
        let woken = tokio::spawn(
            std::future::poll_fn(move |cx| {
                if std::mem::take(&mut first) {
                    *s.lock().unwrap() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .traced("woken"),
        );
        // Let the task park its waker.
        tokio::task::yield_now().await;
        let s = slot.clone();
        // Wakes the task, then keeps the runtime's only thread busy for 25 ms.
        let hog = tokio::spawn(
            async move {
                s.lock()
                    .unwrap()
                    .take()
                    .expect("woken task is pending")
                    .wake();
                std::thread::sleep(Duration::from_millis(25));
            }
            .traced("hog"),
        );
        hog.await.unwrap();
        woken.await.unwrap();
    });
    let after = fdr_recorder::metrics();
    let sched = &after.sched_latency_ns;
    // Two first polls and one wake-to-poll.
    assert_eq!(sched.count - before.sched_latency_ns.count, 3, "{after:?}");
    assert!(sched.p99_ns() >= 20_000_000, "{after:?}");
    assert!(sched.max_ns >= 20_000_000, "{after:?}");
    // The hog's poll took as long.
    assert!(after.poll_duration_ns.max_ns >= 20_000_000, "{after:?}");
    assert_eq!(after.tasks_spawned - before.tasks_spawned, 2);
    assert_eq!(after.tasks_completed - before.tasks_completed, 2);
    assert_eq!(after.tasks_alive, before.tasks_alive);
    assert!(after.wakes > before.wakes);
}
