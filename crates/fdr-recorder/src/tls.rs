//! A thread's own data behind a const thread-local pointer: the recorder's per-thread state
//! (`local.rs`) and a thread's metric cells (`metrics.rs`) are reached this way.
//!
//! A `thread_local!` with a `const` initialiser and no destructor is a plain TLS access:
//! no lazy-initialisation check, no registration. So the data lives in a heap allocation
//! (a `Box` the thread owns, or an `Arc` it shares with readers) and the thread-local holds
//! only a pointer to it, in one of four states: unset (null), live, lent out ([`BUSY`]),
//! torn down ([`DEAD`]). The owner of the data, a separate thread-local with a destructor,
//! takes it back at thread exit ([`ThreadBox::kill`], [`ThreadArc::kill`]).
//!
//! Access to a thread's own `&mut` data is lent: `with` marks the pointer lent out for as long as its closure runs and
//! puts it back after, even when the closure unwinds. A call that finds it lent out (the
//! closure, or something it calls, such as a global allocator that records, asked again)
//! gets [`Absent::Busy`] instead of a second reference, so no two references to the data,
//! one of them `&mut`, ever exist at once. On the recording hot path the two stores this
//! costs fall into the thread-local's cache line, which the access loads anyway.
#![allow(
    unsafe_code,
    reason = "the thread-local pointer to a thread's data is dereferenced here, and only here"
)]

use std::cell::Cell;
use std::sync::Arc;

/// Runs `f` with this thread's value of `key`, a thread-local without a destructor (a
/// `ThreadBox` or `ThreadArc`), reached through a pointer taken out of `LocalKey::with`
/// by a closure that does nothing else. `key.with(f)` makes an instance of `with` per
/// closure, and with a large closure (an event's encoder) the compiler may leave it out of
/// line: a call per event (HOTPATH.md: thread-local access must inline). The pointer's
/// closure is trivial, so `with` always inlines to one TLS address computation.
#[inline(always)]
pub(crate) fn with_tls<T: 'static, R>(
    key: &'static std::thread::LocalKey<T>,
    f: impl FnOnce(&T) -> R,
) -> R {
    const {
        assert!(
            !std::mem::needs_drop::<T>(),
            "a value with a destructor is torn down at thread exit"
        )
    };
    let p: *const T = key.with(std::ptr::from_ref);
    // SAFETY: `p` points at this thread's value of `key`, which has no destructor (asserted
    // above), so it is never torn down while the thread runs: its storage lives until the
    // thread's TLS block is freed, after the thread's last code ran. The reference is used
    // only within this call, on this thread (`&T` of a `Cell`-holding `T` is not `Send`).
    // The tests below reach these values from other thread-locals' destructors at exit.
    f(unsafe { &*p })
}

/// The pointer of a thread whose storage is being torn down.
const DEAD: usize = 1;
/// The pointer while the data is lent out.
const BUSY: usize = 2;

/// Why a thread's data was not reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Absent {
    /// The thread has none yet.
    Unset,
    /// The thread's storage is being torn down.
    Dead,
    /// It is lent out: the caller runs inside another access on this thread.
    Busy,
}

/// The pointer's state machine, shared by both kinds of owner.
struct Lender<T> {
    ptr: Cell<*mut T>,
}

impl<T> Lender<T> {
    const fn new() -> Self {
        Lender {
            ptr: Cell::new(std::ptr::null_mut()),
        }
    }

    /// Marks the pointer lent out and returns it, with a guard that puts it back.
    #[inline(always)]
    fn lend(&self) -> Result<(*mut T, PutBack<'_, T>), Absent> {
        let p = self.ptr.get();
        match p.addr() {
            0 => Err(Absent::Unset),
            DEAD => Err(Absent::Dead),
            BUSY => Err(Absent::Busy),
            _ => {
                self.ptr.set(std::ptr::without_provenance_mut(BUSY));
                Ok((p, PutBack { cell: &self.ptr, p }))
            }
        }
    }

    fn set(&self, p: *mut T) -> bool {
        if !self.ptr.get().is_null() {
            return false;
        }
        self.ptr.set(p);
        true
    }

    /// Marks the pointer dead and returns what it held if it was live (not lent out).
    fn kill(&self) -> Option<*mut T> {
        let p = self.ptr.replace(std::ptr::without_provenance_mut(DEAD));
        (p.addr() > BUSY).then_some(p)
    }

    fn state(&self) -> Result<(), Absent> {
        match self.ptr.get().addr() {
            0 => Err(Absent::Unset),
            DEAD => Err(Absent::Dead),
            BUSY => Err(Absent::Busy),
            _ => Ok(()),
        }
    }
}

/// Puts a lent pointer back when the access ends, by return or by unwinding. If the data was
/// killed meanwhile ([`Lender::kill`] finds it lent out and leaves it alone), it is put back
/// all the same: it was never freed, and stays reachable.
struct PutBack<'a, T> {
    cell: &'a Cell<*mut T>,
    p: *mut T,
}

impl<T> Drop for PutBack<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.cell.set(self.p);
    }
}

/// A thread's own `T`, owned through a `Box`: lent as `&mut T`.
pub(crate) struct ThreadBox<T> {
    inner: Lender<T>,
}

impl<T> ThreadBox<T> {
    /// Unset.
    pub(crate) const fn new() -> Self {
        ThreadBox {
            inner: Lender::new(),
        }
    }

    /// Runs `f` with the data; `Err` if there is none now (see [`Absent`]).
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, Absent> {
        let (p, back) = self.inner.lend()?;
        // SAFETY: `p` came from `Box::into_raw` in `set` and is freed only by the owner of
        // the `Box` that `kill` returns, which it returns only while the pointer is live, not
        // lent out; the pointer reads `BUSY` until `back` drops after `f`, so no other
        // reference to the data is made meanwhile, on this thread or (the cell is not
        // `Sync`) any other.
        let r = f(unsafe { &mut *p });
        drop(back);
        Ok(r)
    }

    /// Gives the thread its data; hands it back if the thread has some, or is lending it,
    /// or is being torn down.
    pub(crate) fn set(&self, data: Box<T>) -> Result<(), Box<T>> {
        let p = Box::into_raw(data);
        if self.inner.set(p) {
            Ok(())
        } else {
            // SAFETY: `p` was made by `Box::into_raw` just above and not stored.
            Err(unsafe { Box::from_raw(p) })
        }
    }

    /// Marks the thread torn down and returns its data if it had some and was not lending it
    /// (data lent out is left where it is, never freed).
    pub(crate) fn kill(&self) -> Option<Box<T>> {
        // SAFETY: a live pointer came from `Box::into_raw` in `set`; the cell no longer
        // holds it, so the `Box` made here is its only owner.
        self.inner.kill().map(|p| unsafe { Box::from_raw(p) })
    }

    /// Whether the thread has its data and is not lending it (else why not).
    pub(crate) fn state(&self) -> Result<(), Absent> {
        self.inner.state()
    }
}

/// A thread's own `T`, shared through an `Arc` (others read it): lent as `&T`.
pub(crate) struct ThreadArc<T> {
    inner: Lender<T>,
}

impl<T> ThreadArc<T> {
    /// Unset.
    pub(crate) const fn new() -> Self {
        ThreadArc {
            inner: Lender::new(),
        }
    }

    /// Runs `f` with the data; `Err` if there is none now (see [`Absent`]). Shared data is
    /// not lent out: references made by nested calls are all `&T`, which may coexist, so a
    /// nested call is served too, and the access costs one load and no store.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R, Absent> {
        self.inner.state()?;
        let p = self.inner.ptr.get();
        // SAFETY: `p` is live (checked just above): it came from `Arc::into_raw` in `set`,
        // and the count it stands for is given up only through `kill`, which only the
        // owner's thread-local destructor calls, at this thread's exit, never while a call
        // of this thread is inside `f`.
        Ok(f(unsafe { &*p }))
    }

    /// Gives the thread its data; hands it back if the thread has some, or is lending it,
    /// or is being torn down.
    pub(crate) fn set(&self, data: Arc<T>) -> Result<(), Arc<T>> {
        let p = Arc::into_raw(data).cast_mut();
        if self.inner.set(p) {
            Ok(())
        } else {
            // SAFETY: `p` was made by `Arc::into_raw` just above and not stored.
            Err(unsafe { Arc::from_raw(p) })
        }
    }

    /// Marks the thread torn down and returns its count of the data if it had some and was
    /// not lending it.
    pub(crate) fn kill(&self) -> Option<Arc<T>> {
        // SAFETY: a live pointer came from `Arc::into_raw` in `set` and stands for one
        // count, which the cell no longer holds: the `Arc` made here takes it over.
        self.inner.kill().map(|p| unsafe { Arc::from_raw(p) })
    }

    /// Whether the thread has its data and is not lending it (else why not).
    pub(crate) fn state(&self) -> Result<(), Absent> {
        self.inner.state()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its drops, so a test sees a double free or a leak.
    struct Counted<'a>(&'a AtomicUsize, u32);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_box_is_lent_once_at_a_time_and_freed_once() {
        let drops = AtomicUsize::new(0);
        let cell = ThreadBox::new();
        assert_eq!(
            cell.with(|c: &mut Counted<'_>| c.1).err(),
            Some(Absent::Unset)
        );
        assert!(cell.set(Box::new(Counted(&drops, 1))).is_ok());
        let again = cell.set(Box::new(Counted(&drops, 2))).unwrap_err();
        assert_eq!(again.1, 2, "a second set is handed back");
        drop(again);
        let nested = cell.with(|c| {
            c.1 += 10;
            // Asked again from inside: no second `&mut`.
            cell.with(|c2| c2.1).err()
        });
        assert_eq!(nested, Ok(Some(Absent::Busy)));
        assert_eq!(cell.with(|c| c.1), Ok(11), "put back after the access");
        assert_eq!(cell.state(), Ok(()));
        let data = cell.kill().expect("live data comes back");
        assert_eq!(cell.with(|c| c.1).err(), Some(Absent::Dead));
        assert!(cell.kill().is_none(), "only once");
        drop(data);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_lent_box_is_put_back_after_a_panic_and_never_freed_while_lent() {
        let drops = AtomicUsize::new(0);
        let cell = ThreadBox::new();
        assert!(cell.set(Box::new(Counted(&drops, 7))).is_ok());
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.with(|_| panic!("inside the access")).ok();
        }));
        assert!(unwound.is_err());
        assert_eq!(cell.with(|c| c.1), Ok(7), "put back by the unwinding");
        // Killing from inside the access frees nothing: the data is still lent out.
        let killed_inside = cell.with(|c| {
            assert!(cell.kill().is_none());
            c.1 = 8;
        });
        assert!(killed_inside.is_ok());
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        assert_eq!(cell.with(|c| c.1), Ok(8));
        drop(cell.kill());
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_arc_keeps_its_count_until_killed() {
        let cell = ThreadArc::new();
        let data = Arc::new(AtomicUsize::new(0));
        assert!(cell.set(data.clone()).is_ok());
        assert_eq!(Arc::strong_count(&data), 2);
        assert_eq!(
            cell.with(|d| {
                d.fetch_add(1, Ordering::Relaxed);
                // Shared data is served to a nested call too.
                cell.with(|d| d.fetch_add(1, Ordering::Relaxed)).err()
            }),
            Ok(None)
        );
        assert_eq!(data.load(Ordering::Relaxed), 2);
        assert!(cell.set(Arc::new(AtomicUsize::new(9))).is_err());
        let back = cell.kill().expect("live");
        assert!(Arc::ptr_eq(&back, &data));
        drop(back);
        assert_eq!(Arc::strong_count(&data), 1);
        assert_eq!(cell.with(|_| ()).err(), Some(Absent::Dead));
    }

    #[test]
    fn with_tls_reaches_the_own_threads_value_while_it_runs_and_at_exit() {
        use std::sync::Mutex;
        struct Guard;
        thread_local! {
            static VALUE: ThreadBox<u64> = const { ThreadBox::new() };
            static GUARD: Guard = const { Guard };
        }
        static SEEN_AT_EXIT: Mutex<Vec<u64>> = Mutex::new(Vec::new());
        impl Drop for Guard {
            fn drop(&mut self) {
                // Another thread-local's destructor, at the thread's exit: the value is there.
                let v = with_tls(&VALUE, |c| c.with(|v| *v));
                SEEN_AT_EXIT.lock().unwrap().push(v.unwrap_or(0));
                with_tls(&VALUE, |c| drop(c.kill()));
            }
        }
        let threads: Vec<_> = (1..=4u64)
            .map(|k| {
                std::thread::spawn(move || {
                    GUARD.with(|_| ());
                    assert!(with_tls(&VALUE, |c| c.set(Box::new(k))).is_ok());
                    for _ in 0..1000 {
                        with_tls(&VALUE, |c| c.with(|v| *v += 4)).unwrap();
                    }
                    with_tls(&VALUE, |c| c.with(|v| *v)).unwrap()
                })
            })
            .collect();
        let got: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(got, [4001, 4002, 4003, 4004], "each thread its own value");
        let mut seen = SEEN_AT_EXIT.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, got, "each thread's value reached from its exit");
        assert_eq!(with_tls(&VALUE, |c| c.with(|v| *v)), Err(Absent::Unset));
    }

    #[test]
    fn thread_locals_hold_one_per_thread() {
        thread_local! {
            static CELL: ThreadBox<u64> = const { ThreadBox::new() };
        }
        CELL.with(|c| assert!(c.set(Box::new(1)).is_ok()));
        let other = std::thread::spawn(|| CELL.with(|c| c.with(|v| *v).err()))
            .join()
            .unwrap();
        assert_eq!(other, Some(Absent::Unset));
        CELL.with(|c| assert_eq!(c.with(|v| *v), Ok(1)));
        CELL.with(|c| drop(c.kill()));
    }
}
