//! Async regions: named phases of a task that span awaits and threads.
//!
//! A region ([`region`](crate::region())) belongs to a thread: its guard is not `Send`, and
//! it ends on the thread it began on. An async phase (a database call awaited by a request
//! handler) begins on one worker, waits, and may end on another. An async region records it:
//! [`AsyncRegionBegin`](fdr_format::EventKind::AsyncRegionBegin) with a region id unique in
//! the process run, the task current at the begin and the name, then
//! [`AsyncRegionEnd`](fdr_format::EventKind::AsyncRegionEnd) with the same id, on whichever
//! thread ends it. Async regions nest by id: the analyzer pairs each end with its begin.
//!
//! Two forms:
//! - [`FdrFutureExt::in_region`](crate::task::FdrFutureExt::in_region) wraps a future in
//!   [`InRegion`]: the region begins at its first poll (in the task current then) and ends
//!   when it completes or is dropped.
//! - [`async_region`] returns an [`AsyncRegionGuard`] (`Send`): the region begins now and ends
//!   when the guard is dropped, on any thread.
//!
//! Neither is on the hot path of a region or a poll: a begin and an end are one generic
//! event each ([`record`](crate::record())), and a wrapped future's later polls cost a branch.
//!
//! ```
//! use fdr_recorder::task::FdrFutureExt;
//!
//! async fn query() -> u32 { 7 }
//! async fn handler() -> u32 {
//!     let rows = query().in_region("db").await;
//!     let _render = fdr_recorder::async_region("render"); // held across awaits: it is Send
//!     rows + 1
//! }
//! # let _ = handler();
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use fdr_format::{EventKind, TaskId};

use crate::{current_task, enabled, intern, record};

/// Region ids handed to a thread at once, so a region's begin writes nothing shared.
const REGION_ID_BLOCK: u64 = 1024;
static NEXT_REGION_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static REGION_IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A fresh async region id: unique in the process run, never 0, without a shared write per
/// call (each thread takes a block of ids at once).
#[inline]
pub fn new_region_id() -> u64 {
    REGION_IDS.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = NEXT_REGION_BLOCK.fetch_add(REGION_ID_BLOCK, Ordering::Relaxed);
            end = next + REGION_ID_BLOCK;
        }
        c.set((next + 1, end));
        next
    })
}

/// An async region that was begun: its id and its task (ends name both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    region: u64,
    task: TaskId,
}

/// Begins a region named `name` in the current task, if recording; `None` otherwise.
fn begin(name: &'static str) -> Option<Open> {
    if !enabled() {
        return None;
    }
    let open = Open {
        region: new_region_id(),
        task: current_task(),
    };
    record(&EventKind::AsyncRegionBegin {
        region: open.region,
        task: open.task,
        name: intern(name),
    });
    Some(open)
}

/// Ends a region begun by [`begin`], on this thread.
fn end(open: Open) {
    record(&EventKind::AsyncRegionEnd {
        region: open.region,
        task: open.task,
    });
}

/// An async region in progress; it ends when the guard is dropped, on whichever thread drops
/// it. `Send` and `Sync`, so it may be held across `.await` in a task that moves between
/// threads (see [`async_region`]).
#[must_use = "an async region ends when its guard is dropped"]
#[derive(Debug)]
pub struct AsyncRegionGuard {
    open: Option<Open>,
}

impl AsyncRegionGuard {
    /// The region's id; 0 if nothing was recorded (recording was off at the begin).
    pub fn id(&self) -> u64 {
        self.open.map_or(0, |o| o.region)
    }
}

impl Drop for AsyncRegionGuard {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            end(open);
        }
    }
}

/// Begins an async region named `name` in the current task; it ends when the guard is
/// dropped, on any thread. Use it where [`region`](crate::region()) cannot go: across an
/// `.await`, since a region's guard is not `Send` (a future holding one is not `Send`, and
/// `tokio::spawn` or an axum handler rejects it).
///
/// ```
/// fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
/// let db = fdr_recorder::async_region("db");
/// assert_ne!(db.id(), 0);
/// std::thread::spawn(move || drop(db)).join().unwrap(); // ends on another thread
/// ```
#[inline]
pub fn async_region(name: &'static str) -> AsyncRegionGuard {
    AsyncRegionGuard { open: begin(name) }
}

/// Where an [`InRegion`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not polled yet.
    Idle,
    /// Polled; `Some` if the begin was recorded.
    Running(Option<Open>),
    /// Completed; its end (if any) is recorded.
    Done,
}

pin_project_lite::pin_project! {
    /// A future measured as an async region (see
    /// [`FdrFutureExt::in_region`](crate::task::FdrFutureExt::in_region)): begun at its first
    /// poll in the task current then, ended when it completes or is dropped.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct InRegion<F> {
        #[pin]
        inner: F,
        name: &'static str,
        phase: Phase,
    }

    impl<F> PinnedDrop for InRegion<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before it completed (cancelled: a timeout, a `select!`, a client gone).
            if let Phase::Running(Some(open)) = *this.project().phase {
                end(open);
            }
        }
    }
}

impl<F> InRegion<F> {
    /// Wraps `inner` as an async region named `name`.
    pub fn new(inner: F, name: &'static str) -> Self {
        InRegion {
            inner,
            name,
            phase: Phase::Idle,
        }
    }

    /// The region's id once the first poll began it; 0 before, or if nothing was recorded.
    pub fn id(&self) -> u64 {
        match self.phase {
            Phase::Running(Some(o)) => o.region,
            _ => 0,
        }
    }
}

impl<F: Future> Future for InRegion<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if *this.phase == Phase::Idle {
            *this.phase = Phase::Running(begin(this.name));
        }
        let r = this.inner.poll(cx);
        if r.is_ready() {
            if let Phase::Running(Some(open)) = *this.phase {
                end(open);
            }
            *this.phase = Phase::Done;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::task::Waker;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_guard_and_a_wrapped_send_future_are_send() {
        assert_send_sync::<AsyncRegionGuard>();
        assert_send_sync::<InRegion<std::future::Ready<u8>>>();
    }

    #[test]
    fn region_ids_are_unique_across_threads_and_never_zero() {
        let ids: Vec<u64> = (0..4)
            .map(|_| std::thread::spawn(|| (0..3000).map(|_| new_region_id()).collect()))
            .flat_map(|h: std::thread::JoinHandle<Vec<u64>>| h.join().unwrap())
            .collect();
        let set: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(set.len(), ids.len());
        assert!(!set.contains(&0));
    }

    #[test]
    fn a_pinned_self_referential_future_completes_through_the_wrapper() {
        let pending = std::cell::Cell::new(true);
        // Borrows its own local across the await (not Unpin).
        let fut = async {
            let local = [1u32, 2, 3];
            let r = &local;
            std::future::poll_fn(|cx| {
                if pending.replace(false) {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            r.iter().sum::<u32>()
        };
        let mut f = Box::pin(InRegion::new(fut, "sum"));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(6));
        assert_eq!(f.phase, Phase::Done);
    }
}
