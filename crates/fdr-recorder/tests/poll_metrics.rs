//! Every poll's samples are counted exactly once, whether the thread that polled is still
//! running (its last poll's samples are pending, not yet in the histograms) or has exited;
//! a wake is measured even when the executor's waker changes before the next poll.
//! (Own test binary: the metrics are process-wide.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll, Wake, Waker};

use fdr_recorder::task::FdrFutureExt;

/// Polls a traced future that is pending `n - 1` times, then ready.
fn poll_n_times(n: u64) {
    let mut left = n;
    let fut = std::future::poll_fn(move |_| {
        left -= 1;
        if left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    let mut t = Box::pin(fut.traced("counted"));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        let _ = Pin::as_mut(&mut t).poll(&mut cx);
    }
}

#[test]
fn poll_samples_count_once_on_a_live_thread_and_after_it_exits() {
    let before = fdr_recorder::metrics();
    poll_n_times(10);
    let live = fdr_recorder::metrics();
    assert_eq!(
        live.poll_duration_ns.count - before.poll_duration_ns.count,
        10
    );
    // Only the first poll follows a wake (the task's creation): the waker is never woken.
    assert_eq!(
        live.sched_latency_ns.count - before.sched_latency_ns.count,
        1
    );
    // A read does not fold them: a second read counts the same.
    assert_eq!(fdr_recorder::metrics().polls, live.polls);

    std::thread::spawn(|| poll_n_times(5)).join().unwrap();
    let after = fdr_recorder::metrics();
    assert_eq!(after.polls - live.polls, 5);
    assert_eq!(
        after.sched_latency_ns.count - live.sched_latency_ns.count,
        1
    );
    assert_eq!(after.tasks_completed - before.tasks_completed, 2);

    // Woken through the wrapped waker of one executor waker, polled next with another.
    struct Nothing;
    impl Wake for Nothing {
        fn wake(self: Arc<Self>) {}
    }
    let (a, b) = (
        Waker::from(Arc::new(Nothing)),
        Waker::from(Arc::new(Nothing)),
    );
    let seen: Arc<Mutex<Option<Waker>>> = Arc::default();
    let s = seen.clone();
    let fut = std::future::poll_fn(move |cx| {
        *s.lock().unwrap() = Some(cx.waker().clone());
        Poll::<()>::Pending
    });
    let mut t = Box::pin(fut.traced("rewoken"));
    let _ = t.as_mut().poll(&mut Context::from_waker(&a));
    let sched = fdr_recorder::metrics().sched_latency_ns.count;
    seen.lock().unwrap().take().unwrap().wake();
    let _ = t.as_mut().poll(&mut Context::from_waker(&b));
    assert_eq!(fdr_recorder::metrics().sched_latency_ns.count, sched + 1);
    // Not woken since: no sample.
    let _ = t.as_mut().poll(&mut Context::from_waker(&b));
    assert_eq!(fdr_recorder::metrics().sched_latency_ns.count, sched + 1);
}
