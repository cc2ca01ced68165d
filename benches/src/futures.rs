//! The futures and waker the task benches poll: one request's task shape, shared by the
//! wall-clock bench (`tasks`) and the instruction counts (`instructions`), so both measure
//! the same path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A request's task: the first poll wakes it through a clone of its waker (as tokio's
/// `yield_now` does) and stays pending, the second completes.
pub struct YieldOnce(pub bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Ready(());
        }
        // A clone woken later by value, as tokio's `yield_now` defers it: the clone and
        // the wake by value through the wrapped waker are what is measured.
        #[allow(
            clippy::waker_clone_wake,
            reason = "the clone and the wake by value are the path measured"
        )]
        cx.waker().clone().wake();
        Poll::Pending
    }
}

/// An executor's waker with a reference count, as tokio's is (a clone is an atomic add).
pub struct CountedWaker;

impl std::task::Wake for CountedWaker {
    fn wake(self: Arc<Self>) {}
    fn wake_by_ref(self: &Arc<Self>) {}
}
