//! Instrumented futures: async tasks on any executor.
//!
//! [`FdrFutureExt::traced`] wraps a future in a [`Traced`] task that records its creation
//! (parent task and spawn site), each poll (start, and end with Ready or Pending), every
//! wake (on the waking thread, with the waking task: who woke whom) and its drop. During a
//! poll the task is current on the polling thread, so regions, logs and contended locks
//! inside it belong to it.
//!
//! Wakes are seen through a wrapped waker: an `Arc` holding the executor's waker, the task's
//! id and the time of its first wake since the last poll. It is built on the first poll
//! (the task's only allocation) and rebuilt only when the executor hands a waker that would
//! not wake the same task (`Waker::will_wake`), so a poll allocates nothing. A task dropped
//! when nothing else holds its wrapped waker (no clone, no reader of the live-task list)
//! releases the executor's waker at once and leaves the allocation to the thread's next
//! task's first poll (`SPARE_SHIM`), so a request's task allocates nothing in a steady state.
//!
//! Metrics (always on, recording or not): scheduling latency (creation or wake to the next
//! poll start), poll duration, tasks spawned/completed/alive ([`crate::metrics`]).
//!
//! ```
//! use fdr_recorder::task::FdrFutureExt;
//!
//! let fut = async { 1 + 1 }.traced("add");
//! # let _ = fut;
//! ```

use std::cell::Cell;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use fdr_format::{TaskId, encode};

use crate::async_region::InRegion;
use crate::clock::now_ticks;
use crate::live;
pub use crate::live::{LiveState, LiveTask, LiveTasks, MAX_LIVE_TASKS, WakerClass, live_tasks};
use crate::local::{peek_local, with_local};
use crate::metric_cells::Counter;
use crate::metrics::with_thread;
use crate::{current_task, enabled, new_task_id, set_current_task};

// A task event is recorded as a region's are: a fast path inlined into the poll (or the
// wake) that makes no call (`Local::try_small`: check room, read the counter, write the
// event with a fixed-array writer, one `Release` store), returning the event's timestamp
// for the metrics; anything unusual (first event of the thread, a full chunk, the fallback
// clock) returns `None` and the caller takes a cold slow path that does it all with calls.
// `cargo bench -p fdr-benches --bench tasks -- task/`, four runs of each build interleaved:
// `task.poll_ratio_to_events_floor` 1.33-1.47 inlined, 1.44-1.62 with the fast paths out of
// line (as at commit 490fe97).

/// Records an event through `Local::try_small` and returns its
/// timestamp; `None`: nothing recorded, take the slow path. `depth`: the event's change of
/// the thread's scope depth (+1 a poll start, -1 a poll end).
#[inline(always)]
fn try_fast<const N: usize>(f: impl FnOnce(&mut [u8; N], u64) -> usize, depth: i64) -> Option<u64> {
    peek_local(|l| l.try_small(f, depth).then(|| l.last_ts())).flatten()
}

/// Records an event the slow way (registering the thread, sealing a chunk, the fallback
/// clock) and returns its timestamp, or the clock's if the thread is being torn down.
#[inline(always)]
fn record_slow<const N: usize>(f: impl FnOnce(&mut [u8; N], u64) -> usize, depth: i64) -> u64 {
    with_local(|l| {
        l.small(f, depth);
        l.last_ts()
    })
    .unwrap_or_else(now_ticks)
}

/// Records an event if recording is `on` and returns its timestamp; otherwise reads the
/// clock. (One clock read either way: metrics reuse the event's.)
#[inline(always)]
fn stamp(on: bool, fast: impl FnOnce() -> Option<u64>, slow: impl FnOnce() -> u64) -> u64 {
    if !on {
        return now_ticks();
    }
    match fast() {
        Some(ts) => ts,
        None => slow(),
    }
}

#[inline(always)]
fn poll_start_fast(task: TaskId) -> Option<u64> {
    try_fast(|out, delta| encode::poll_start(out, delta, task), 1)
}

#[cold]
#[inline(never)]
fn poll_start_slow(task: TaskId) -> u64 {
    record_slow(|out, delta| encode::poll_start(out, delta, task), 1)
}

#[inline(always)]
fn poll_end_fast(task: TaskId, ready: bool) -> Option<u64> {
    try_fast(|out, delta| encode::poll_end(out, delta, task, ready), -1)
}

#[cold]
#[inline(never)]
fn poll_end_slow(task: TaskId, ready: bool) -> u64 {
    record_slow(|out, delta| encode::poll_end(out, delta, task, ready), -1)
}

#[inline(always)]
fn wake_fast(task: TaskId, waker: TaskId) -> Option<u64> {
    try_fast(|out, delta| encode::wake(out, delta, task, waker), 0)
}

#[cold]
#[inline(never)]
fn wake_slow(task: TaskId, waker: TaskId) -> u64 {
    record_slow(|out, delta| encode::wake(out, delta, task, waker), 0)
}

#[inline(always)]
fn task_drop_fast(task: TaskId) -> bool {
    try_fast(|out, delta| encode::task_drop(out, delta, task), 0).is_some()
}

#[cold]
#[inline(never)]
fn task_drop_slow(task: TaskId) {
    record_slow(|out, delta| encode::task_drop(out, delta, task), 0);
}

/// How a poll is recorded.
#[derive(Clone, Copy)]
enum PollMode {
    /// Recording is off: the clock is read for the metrics.
    Off,
    /// Start and end.
    Full,
    /// The budget sheds polls: the start is deferred (`local::Deferred`), and the poll is
    /// recorded only if something is recorded inside it or it lasts at least
    /// [`crate::cost::KEEP_POLL_NS`].
    Deferred,
}

/// Defers a poll's start on this thread and returns its ticks. Out of line, as
/// [`deferred_poll_end`]: inlined, the shed paths made the poll too large for the full
/// paths' thread-local closures to be inlined (callgrind: about 100 instructions more per
/// task at full detail).
#[inline(never)]
fn defer_poll_start(task: TaskId) -> u64 {
    let now = now_ticks();
    if peek_local(|l| l.defer_poll_start(task, now)) != Some(true) {
        defer_poll_start_slow(task, now);
    }
    now
}

/// [`defer_poll_start`] on an unregistered thread, or with a start deferred already (a
/// poll inside a poll, or one that unwound): that one is written, this one deferred.
#[cold]
#[inline(never)]
fn defer_poll_start_slow(task: TaskId, now: u64) {
    with_local(|l| {
        l.write_deferred();
        l.defer_poll_start(task, now);
    });
}

/// Ends a poll whose start was deferred at `start` and returns the end's ticks: a short
/// poll with nothing recorded inside leaves no event; a long one is recorded whole (its
/// start at its own time, then its end); one whose start an event inside it wrote records
/// its end.
#[inline(never)]
fn deferred_poll_end(task: TaskId, start: u64, ready: bool) -> u64 {
    let keep_ticks = crate::cost::keep_poll_ticks();
    let end = peek_local(|l| {
        if !l.is_deferred(task, start) {
            return DeferredEnd::Written;
        }
        let now = now_ticks();
        if now.saturating_sub(start) < keep_ticks {
            l.forget_deferred(task, start);
            DeferredEnd::Short(now)
        } else {
            DeferredEnd::Long
        }
    });
    match end {
        Some(DeferredEnd::Short(now)) => now,
        // `poll_end_slow` writes the deferred start first.
        Some(DeferredEnd::Long) => poll_end_slow(task, ready),
        Some(DeferredEnd::Written) | None => stamp(
            true,
            || poll_end_fast(task, ready),
            || poll_end_slow(task, ready),
        ),
    }
}

/// What the end of a poll whose start was deferred finds.
enum DeferredEnd {
    /// The start was written (something was recorded inside the poll): record the end.
    Written,
    /// Still deferred and short: forgotten, nothing recorded; the end's ticks.
    Short(u64),
    /// Still deferred and long: record the start, then the end.
    Long,
}

/// Records a task's creation, its name and site found in the thread's caches, in one
/// borrow of the thread's recorder; `None`: nothing recorded, take the slow path.
#[inline(always)]
fn task_create_fast(
    task: TaskId,
    parent: TaskId,
    name: &'static str,
    site: &'static Location<'static>,
) -> Option<u64> {
    peek_local(|l| {
        let (name, site) = (l.names.get(name), l.sites.get(site));
        l.try_small(
            |out, delta| encode::task_create(out, delta, task, parent, name, site),
            0,
        )
        .then(|| l.last_ts())
    })
    .flatten()
}

/// [`task_create_fast`]'s slow path (registering the thread, sealing a chunk, the fallback
/// clock); `None` if the thread is being torn down.
#[cold]
#[inline(never)]
fn task_create_slow(
    task: TaskId,
    parent: TaskId,
    name: &'static str,
    site: &'static Location<'static>,
) -> Option<u64> {
    with_local(|l| {
        let (name, site) = (l.names.get(name), l.sites.get(site));
        l.small(
            |out, delta| encode::task_create(out, delta, task, parent, name, site),
            0,
        );
        l.last_ts()
    })
}

/// Extension trait on every future: `future.traced(name)` makes it a task,
/// `future.in_region(name)` a phase (an async region) of the task that polls it.
///
/// Its name is fdr's own, so it can be imported beside `futures::FutureExt`, OpenTelemetry's
/// `FutureExt` or `tracing::Instrument` (its methods' names collide with none of theirs).
pub trait FdrFutureExt: Future + Sized {
    /// Makes this future an instrumented task named `name`, created here (the caller's
    /// location is its spawn site) as a child of the current task.
    #[track_caller]
    fn traced(self, name: &'static str) -> Traced<Self> {
        Traced::new(self, name, Location::caller())
    }

    /// Measures this future as an async region named `name`: it begins at the first poll,
    /// in the task current then, and ends when the future completes or is dropped, on
    /// whichever threads poll it (see [`async_region`](crate::async_region())). The `Send` way to measure a
    /// phase that awaits; a region's guard is not `Send`.
    fn in_region(self, name: &'static str) -> InRegion<Self> {
        InRegion::new(self, name)
    }
}

impl<F: Future> FdrFutureExt for F {}

/// The former name of [`FdrFutureExt`], whose name collided with `futures::FutureExt` and
/// OpenTelemetry's `FutureExt` where both were imported.
#[deprecated(
    since = "0.1.0",
    note = "renamed `FdrFutureExt` (`FutureExt` collides with the `futures` and OpenTelemetry traits); this alias goes in the next release"
)]
pub trait FutureExt: Future + Sized {
    /// Makes this future an instrumented task named `name` (see [`FdrFutureExt::traced`]).
    #[track_caller]
    fn traced(self, name: &'static str) -> Traced<Self> {
        Traced::new(self, name, Location::caller())
    }
}

#[allow(deprecated, reason = "the alias is implemented for one release")]
impl<F: Future> FutureExt for F {}

/// The wrapped waker: the executor's waker and what the task shares with its wakers.
#[derive(Debug)]
pub(crate) struct Shim {
    inner: Waker,
    id: TaskId,
    /// The wake word (see `live`): whether a wake is pending since the last poll, its
    /// ticks (or, with none pending, the ticks of the poll that took the last one) and the
    /// class of the waker that gave it. The scheduling-latency metric reads the pending
    /// wake's ticks; the live-task list reads it all.
    pub(crate) word: AtomicU64,
}

impl Shim {
    #[inline]
    fn note(&self) {
        let task = self.id;
        let current = current_task();
        let now = stamp(
            enabled() && crate::cost::record_wakes(),
            || wake_fast(task, current),
            || wake_slow(task, current),
        )
        .max(1);
        // Plain load and store, no read-modify-write: two wakers racing both store (either
        // time is a wake since the poll), and a wake racing the poll's reset may go
        // unmeasured (the task is still woken).
        if live::pending_ticks(self.word.load(Ordering::Relaxed)).is_none() {
            self.word.store(
                live::pending_word(now, WakerClass::of(task, current)),
                Ordering::Relaxed,
            );
        }
        with_thread(|m| m.count(Counter::Wakes, 1));
    }
}

thread_local! {
    /// A wrapped waker's allocation a dropped task left this thread, for its next task's
    /// first poll: the `Arc` no one else holds (no clone, no weak reference), its executor
    /// waker already released (a no-op waker in its place).
    static SPARE_SHIM: Cell<Option<Arc<Shim>>> = const { Cell::new(None) };
}

/// The wrapped waker of task `id` around the executor's waker `inner`, its wake word
/// `word`: the thread's spare allocation, or a new one.
#[inline]
fn new_shim(inner: Waker, id: TaskId, word: u64) -> Arc<Shim> {
    if let Ok(Some(mut spare)) = SPARE_SHIM.try_with(Cell::take)
        && let Some(s) = Arc::get_mut(&mut spare)
    {
        s.inner = inner;
        s.id = id;
        *s.word.get_mut() = word;
        return spare;
    }
    Arc::new(Shim {
        inner,
        id,
        word: AtomicU64::new(word),
    })
}

/// A dropped task's wrapped waker: if nothing else holds it (no waker clone, no weak
/// reference: the task has left the live-task list), releases the executor's waker now
/// and keeps the allocation for the thread's next task; otherwise drops the reference.
#[inline]
fn recycle_shim(mut shim: Arc<Shim>) {
    if let Some(s) = Arc::get_mut(&mut shim) {
        s.inner = Waker::noop().clone();
        let _ = SPARE_SHIM.try_with(|spare| spare.set(Some(shim)));
    }
}

impl Wake for Shim {
    fn wake(self: Arc<Self>) {
        self.note();
        match Arc::try_unwrap(self) {
            Ok(s) => s.inner.wake(),
            Err(s) => s.inner.wake_by_ref(),
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.note();
        self.inner.wake_by_ref();
    }
}

pin_project_lite::pin_project! {
    /// An instrumented task (see [`FdrFutureExt::traced`]).
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Traced<F> {
        #[pin]
        inner: F,
        id: TaskId,
        // The wrapped waker, and the shim it wraps (to compare the executor's waker); made
        // at the first poll.
        waker: Option<(Arc<Shim>, Waker)>,
        // Creation ticks: the first poll's scheduling latency counts from here.
        created_at: u64,
        recorded: bool,
        // Its place in the live-task registry, if listed.
        live: Option<live::Slot>,
    }

    impl<F> PinnedDrop for Traced<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.recorded && enabled() {
                let task = *this.id;
                if !task_drop_fast(task) {
                    task_drop_slow(task);
                }
            }
            if let Some(slot) = this.live.take() {
                live::unregister(slot);
            }
            // After the live-task list let go of its weak reference.
            if let Some((shim, waker)) = this.waker.take() {
                drop(waker);
                recycle_shim(shim);
            }
            with_thread(|m| m.count(Counter::TasksDropped, 1));
        }
    }
}

impl<F: Future> Traced<F> {
    /// Wraps `inner` as a task named `name` created at `site`.
    pub fn new(inner: F, name: &'static str, site: &'static Location<'static>) -> Self {
        // Timestamps of one task are compared across threads: fix the clock first.
        crate::clock::calibrate();
        let id = new_task_id();
        let recorded = enabled();
        // The creation's time: the event's, when there is one (one clock read, not two).
        let mut created_at = None;
        if recorded {
            let parent = current_task();
            created_at = match task_create_fast(id, parent, name, site) {
                Some(ts) => Some(ts),
                None => task_create_slow(id, parent, name, site),
            };
        }
        with_thread(|m| m.count(Counter::TasksSpawned, 1));
        let created_at = created_at.unwrap_or_else(now_ticks).max(1);
        let live = if recorded {
            live::register(id, name, site, created_at)
        } else {
            None
        };
        Traced {
            inner,
            id,
            waker: None,
            created_at,
            recorded,
            live,
        }
    }
}

impl<F> Traced<F> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }
}

/// Restores the thread's previous task when a poll ends, even by unwinding.
struct Current(TaskId);

impl Drop for Current {
    #[inline]
    fn drop(&mut self) {
        set_current_task(self.0);
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let task = *this.id;
        // Start and end are recorded or not together, whatever the budget does meanwhile:
        // fully, or with the start deferred (shed detail), or not at all (recording off).
        let mode = if !enabled() {
            PollMode::Off
        } else if crate::cost::record_polls() {
            PollMode::Full
        } else {
            PollMode::Deferred
        };
        let start = match mode {
            PollMode::Off => now_ticks(),
            PollMode::Full => stamp(true, || poll_start_fast(task), || poll_start_slow(task)),
            PollMode::Deferred => defer_poll_start(task),
        };
        let (woken, waker) = match &*this.waker {
            Some((shim, w)) if shim.inner.will_wake(cx.waker()) => {
                let word = shim.word.load(Ordering::Relaxed);
                let woken = match live::pending_ticks(word) {
                    Some(t) => {
                        shim.word.store(
                            live::polled_word(start, live::word_class(word)),
                            Ordering::Relaxed,
                        );
                        t
                    }
                    None => 0,
                };
                (woken, w)
            }
            previous => {
                // The first poll (creation counts as the first wake), or a new executor
                // waker: a new shim takes the old one's pending wake. (A wake through the
                // old waker after this goes unmeasured; the task is still woken.)
                let (woken, class) = match previous {
                    None => (*this.created_at, WakerClass::Created),
                    Some((old, _)) => {
                        let word = old.word.swap(0, Ordering::Relaxed);
                        (
                            live::pending_ticks(word).unwrap_or(0),
                            live::word_class(word),
                        )
                    }
                };
                let shim = new_shim(cx.waker().clone(), task, live::polled_word(start, class));
                if let Some(slot) = *this.live {
                    live::set_shim(slot, Arc::downgrade(&shim));
                }
                (
                    woken,
                    &this.waker.insert((shim.clone(), Waker::from(shim))).1,
                )
            }
        };
        let _current = Current(set_current_task(task));
        let mut cx2 = Context::from_waker(waker);
        let r = this.inner.poll(&mut cx2);
        let ready = r.is_ready();
        let end = match mode {
            PollMode::Off => now_ticks(),
            PollMode::Full => stamp(
                true,
                || poll_end_fast(task, ready),
                || poll_end_slow(task, ready),
            ),
            PollMode::Deferred => deferred_poll_end(task, start, ready),
        };
        with_thread(|m| {
            m.poll(
                (woken != 0).then(|| start.saturating_sub(woken)),
                end.saturating_sub(start),
            );
            if ready {
                m.count(Counter::TasksCompleted, 1);
            }
        });
        r
    }
}

/// Spawns `future` as an instrumented task through any executor's spawn function:
/// `spawn_with("fetch", fut, tokio::spawn)`, `spawn_with("fetch", fut, |f| pool.spawn_ok(f))`.
/// The caller's location is the spawn site.
#[track_caller]
pub fn spawn_with<F, R>(name: &'static str, future: F, spawn: impl FnOnce(Traced<F>) -> R) -> R
where
    F: Future,
{
    spawn(Traced::new(future, name, Location::caller()))
}

/// Spawns `future` on the current tokio runtime as an instrumented task named `name`
/// (panics outside a runtime, as `tokio::spawn` does). The caller's location is the spawn
/// site.
#[cfg(feature = "tokio")]
#[track_caller]
pub fn spawn<F>(name: &'static str, future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(Traced::new(future, name, Location::caller()))
}

#[cfg(test)]
mod tests {
    use super::{
        Arc, Context, FdrFutureExt, Future, Ordering, Poll, TaskId, Wake, Waker, current_task,
    };
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes of the executor's waker.
    struct CountWake(AtomicUsize);

    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn polls_a_pinned_self_referential_future_and_forwards_wakes() {
        let counter = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let slot: std::cell::RefCell<Option<Waker>> = Default::default();
        let pending = std::cell::Cell::new(true);
        // A future that borrows its own local across the await point (not Unpin).
        let fut = async {
            let local = [1u32, 2, 3];
            let r = &local;
            std::future::poll_fn(|cx| {
                if pending.replace(false) {
                    *slot.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            r.iter().sum::<u32>()
        };
        let mut t = Box::pin(fut.traced("t"));
        let id = t.id();
        assert_ne!(id, TaskId::NONE);
        assert_eq!(t.as_mut().poll(&mut cx), Poll::Pending);
        // The waker the future saw is the wrapped one; waking it wakes the executor's.
        slot.borrow_mut().take().unwrap().wake();
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        // The task was current while polled, not after.
        assert_eq!(current_task(), TaskId::NONE);
        assert_eq!(t.as_mut().poll(&mut cx), Poll::Ready(6));
    }

    /// A future that keeps a clone of its first waker in `kept` and stays pending.
    fn keeps_waker(kept: &std::cell::RefCell<Option<Waker>>) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            kept.borrow_mut().get_or_insert_with(|| cx.waker().clone());
            Poll::Pending
        })
    }

    #[test]
    fn a_dropped_task_releases_its_executor_waker_and_the_next_task_wakes_its_own() {
        let a = Arc::new(CountWake(AtomicUsize::new(0)));
        let b = Arc::new(CountWake(AtomicUsize::new(0)));
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        // A task polled once and dropped with no clone of its waker left: the executor's
        // waker it held is released with it.
        let mut t = Box::pin(std::future::pending::<()>().traced("first"));
        let _ = t.as_mut().poll(&mut Context::from_waker(&wa));
        assert_eq!(
            Arc::strong_count(&a),
            3,
            "the wrapped waker holds a's waker"
        );
        drop(t);
        assert_eq!(Arc::strong_count(&a), 2, "a's waker released at the drop");
        // The next task on this thread, under another executor waker: its waker wakes b,
        // and only b.
        let kept = std::cell::RefCell::new(None);
        let mut t = Box::pin(keeps_waker(&kept).traced("second"));
        let _ = t.as_mut().poll(&mut Context::from_waker(&wb));
        let w = kept.borrow_mut().take().unwrap();
        w.wake_by_ref();
        assert_eq!(b.0.load(Ordering::Relaxed), 1);
        assert_eq!(a.0.load(Ordering::Relaxed), 0);
        drop(t);
        // A clone that outlives its task still wakes its executor.
        w.wake();
        assert_eq!(b.0.load(Ordering::Relaxed), 2);
        assert_eq!(a.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_waker_clone_that_outlives_its_task_is_not_handed_to_the_next() {
        let a = Arc::new(CountWake(AtomicUsize::new(0)));
        let b = Arc::new(CountWake(AtomicUsize::new(0)));
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let kept_a = std::cell::RefCell::new(None);
        let mut t = Box::pin(keeps_waker(&kept_a).traced("first"));
        let _ = t.as_mut().poll(&mut Context::from_waker(&wa));
        drop(t);
        let kept_b = std::cell::RefCell::new(None);
        let mut t = Box::pin(keeps_waker(&kept_b).traced("second"));
        let _ = t.as_mut().poll(&mut Context::from_waker(&wb));
        // The first task's waker, kept past its drop, wakes a; the second's wakes b.
        kept_a.borrow_mut().take().unwrap().wake();
        assert_eq!(
            (a.0.load(Ordering::Relaxed), b.0.load(Ordering::Relaxed)),
            (1, 0)
        );
        kept_b.borrow_mut().take().unwrap().wake();
        assert_eq!(
            (a.0.load(Ordering::Relaxed), b.0.load(Ordering::Relaxed)),
            (1, 1)
        );
        drop(t);
    }

    #[test]
    fn the_wrapped_waker_is_reused_while_the_executor_waker_is_the_same() {
        let a = Waker::from(Arc::new(CountWake(AtomicUsize::new(0))));
        let b = Waker::from(Arc::new(CountWake(AtomicUsize::new(0))));
        let seen: std::cell::RefCell<Vec<Waker>> = Default::default();
        let fut = std::future::poll_fn(|cx| {
            seen.borrow_mut().push(cx.waker().clone());
            Poll::<()>::Pending
        });
        let mut t = Box::pin(fut.traced("w"));
        for w in [&a, &a, &b, &b] {
            let _ = t.as_mut().poll(&mut Context::from_waker(w));
        }
        let s = seen.borrow();
        assert!(
            s[0].will_wake(&s[1]),
            "same executor waker: same wrapped waker"
        );
        assert!(!s[1].will_wake(&s[2]), "new executor waker: rebuilt");
        assert!(s[2].will_wake(&s[3]));
    }
}
