//! The concurrency primitives the recorder's protocol uses: `std` normally, `loom` under
//! `--cfg loom`, so the loom models check the very code the recorder runs.
//!
//! The hand-off queues are crossbeam's lock-free `ArrayQueue` normally; under loom they are a
//! loom mutex around a bounded deque with the same interface, so loom sees the
//! happens-before edge a push and a pop make (crossbeam's queue is tested on its own).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicPtr;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicPtr;

/// Reads a cell that only the calling thread writes (its owner): a relaxed load.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn owner_load(cell: &AtomicU64) -> u64 {
    cell.load(Ordering::Relaxed)
}

/// Reads a cell that only the calling thread writes (its owner). Under loom an
/// unsynchronized read, which loom checks against concurrent writes (there must be none):
/// an atomic load would become the cell's last access in loom's exploration and hide
/// another thread's read racing the owner's next store.
#[cfg(loom)]
pub(crate) fn owner_load(cell: &AtomicU64) -> u64 {
    #[allow(unsafe_code, reason = "loom's unsynchronized read")]
    // SAFETY: the caller owns `cell`: no other thread writes it, so no write races this read
    // (loom reports one if it does).
    unsafe {
        cell.unsync_load()
    }
}

/// A bounded multi-producer multi-consumer queue.
#[cfg(not(loom))]
pub(crate) type Queue<T> = crossbeam_queue::ArrayQueue<T>;

/// A bounded multi-producer multi-consumer queue (loom: a mutex around a deque).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Queue<T> {
    inner: loom::sync::Mutex<std::collections::VecDeque<T>>,
    cap: usize,
}

#[cfg(loom)]
impl<T> Queue<T> {
    /// A queue holding at most `cap` items.
    pub(crate) fn new(cap: usize) -> Self {
        Queue {
            inner: loom::sync::Mutex::new(std::collections::VecDeque::with_capacity(cap)),
            cap,
        }
    }

    /// Appends `v`, or gives it back if the queue is full.
    pub(crate) fn push(&self, v: T) -> Result<(), T> {
        let mut q = self.inner.lock().unwrap();
        if q.len() >= self.cap {
            return Err(v);
        }
        q.push_back(v);
        Ok(())
    }

    /// Takes the oldest item.
    pub(crate) fn pop(&self) -> Option<T> {
        self.inner.lock().unwrap().pop_front()
    }

    /// Items queued.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().unwrap().len()
    }
}

/// A byte cell of a chunk's buffer. Under loom each byte is tracked, so a read racing a
/// write is reported.
#[cfg(not(loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct ByteCell(pub(crate) std::cell::UnsafeCell<u8>);

#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct ByteCell(pub(crate) loom::cell::UnsafeCell<u8>);

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the recorder's
/// state stays consistent: every critical section leaves it valid before it can panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
