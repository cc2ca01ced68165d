//! Contention-traced locks with the `std::sync` shape, and [`blocking`] for sync I/O and
//! sleeps.
//!
//! [`Mutex`] and [`RwLock`] wrap the `std` locks and try the lock first: uncontended, that
//! is all they do (the same compare-and-swap `std`'s own fast path does). Only when the
//! lock is held they record a block begin (reason and the caller's site, a
//! `#[track_caller]` location) and, once acquired, a block end, and add the wait to the
//! `lock_wait_ns` metric. [`Condvar`] waits always block, so they are always recorded.
//!
//! ```
//! use fdr_recorder::locks::Mutex;
//!
//! let m = Mutex::new(0);
//! *m.lock().unwrap() += 1;
//! assert_eq!(*m.lock().unwrap(), 1);
//! ```

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

use fdr_format::{BlockReason, EventKind};

use crate::clock::now_ticks;
use crate::metric_cells::Hist;
use crate::metrics::record as record_metric;
use crate::{enabled, intern_site, record};

/// A block in progress: records its end (if it recorded its begin) when dropped, also on
/// unwinding.
struct Block {
    recorded: bool,
}

impl Block {
    #[inline]
    fn begin(reason: BlockReason, site: &'static Location<'static>) -> Block {
        let recorded = enabled();
        if recorded {
            record(&EventKind::BlockBegin {
                reason,
                site: intern_site(site),
            });
        }
        Block { recorded }
    }
}

impl Drop for Block {
    #[inline]
    fn drop(&mut self) {
        if self.recorded && enabled() {
            record(&EventKind::BlockEnd);
        }
    }
}

/// Runs `f`, a blocking operation (sync I/O, a sleep, a join), as a block with `reason` and
/// the caller's site: `blocking(BlockReason::Io, || file.read(&mut buf))`.
#[track_caller]
#[inline]
pub fn blocking<R>(reason: BlockReason, f: impl FnOnce() -> R) -> R {
    let _b = Block::begin(reason, Location::caller());
    f()
}

/// Waits for a held lock: records the block and the wait.
#[cold]
#[inline(never)]
fn contended<G>(
    reason: BlockReason,
    site: &'static Location<'static>,
    acquire: impl FnOnce() -> G,
) -> G {
    // Wait times are compared in ticks: fix the clock first (once per process).
    crate::clock::calibrate();
    let begin = now_ticks();
    let g = {
        let _b = Block::begin(reason, site);
        acquire()
    };
    record_metric(Hist::LockWait, now_ticks().saturating_sub(begin));
    g
}

fn map_poison<G, H>(r: LockResult<G>, f: impl FnOnce(G) -> H) -> LockResult<H> {
    match r {
        Ok(g) => Ok(f(g)),
        Err(p) => Err(PoisonError::new(f(p.into_inner()))),
    }
}

fn map_try<G, H>(r: TryLockResult<G>, f: impl FnOnce(G) -> H) -> TryLockResult<H> {
    match r {
        Ok(g) => Ok(f(g)),
        Err(TryLockError::Poisoned(p)) => {
            Err(TryLockError::Poisoned(PoisonError::new(f(p.into_inner()))))
        }
        Err(TryLockError::WouldBlock) => Err(TryLockError::WouldBlock),
    }
}

/// A mutual-exclusion lock (`std::sync::Mutex`) that records where it was contended.
#[derive(Default)]
pub struct Mutex<T: ?Sized> {
    inner: std::sync::Mutex<T>,
}

/// A [`Mutex`]'s guard: the lock is held until it drops.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    inner: std::sync::MutexGuard<'a, T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Self {
        Mutex {
            inner: std::sync::Mutex::new(value),
        }
    }

    /// Consumes the mutex, returning its data.
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the lock, blocking while another thread holds it; a wait is recorded with
    /// the caller's site. Errors as `std`'s: the lock was poisoned (the guard is inside).
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let r = match self.inner.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Err(p),
            Err(TryLockError::WouldBlock) => {
                contended(BlockReason::Mutex, Location::caller(), || self.inner.lock())
            }
        };
        map_poison(r, |inner| MutexGuard { inner })
    }

    /// Acquires the lock if it is free (never blocks, records nothing).
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        map_try(self.inner.try_lock(), |inner| MutexGuard { inner })
    }

    /// Whether a thread panicked holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.inner.clear_poison()
    }

    /// The data, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A reader-writer lock (`std::sync::RwLock`) that records where it was contended.
#[derive(Default)]
pub struct RwLock<T: ?Sized> {
    inner: std::sync::RwLock<T>,
}

/// Shared access to an [`RwLock`]'s data.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    inner: std::sync::RwLockReadGuard<'a, T>,
}

/// Exclusive access to an [`RwLock`]'s data.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    inner: std::sync::RwLockWriteGuard<'a, T>,
}

impl<T> RwLock<T> {
    /// A new unlocked lock.
    pub const fn new(value: T) -> Self {
        RwLock {
            inner: std::sync::RwLock::new(value),
        }
    }

    /// Consumes the lock, returning its data.
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Acquires shared access, blocking while a writer holds the lock; a wait is recorded
    /// with the caller's site.
    #[track_caller]
    #[inline]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let r = match self.inner.try_read() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Err(p),
            Err(TryLockError::WouldBlock) => {
                contended(BlockReason::RwLock, Location::caller(), || {
                    self.inner.read()
                })
            }
        };
        map_poison(r, |inner| RwLockReadGuard { inner })
    }

    /// Acquires exclusive access, blocking while others hold the lock; a wait is recorded
    /// with the caller's site.
    #[track_caller]
    #[inline]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let r = match self.inner.try_write() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Err(p),
            Err(TryLockError::WouldBlock) => {
                contended(BlockReason::RwLock, Location::caller(), || {
                    self.inner.write()
                })
            }
        };
        map_poison(r, |inner| RwLockWriteGuard { inner })
    }

    /// Shared access if available now (never blocks, records nothing).
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        map_try(self.inner.try_read(), |inner| RwLockReadGuard { inner })
    }

    /// Exclusive access if available now (never blocks, records nothing).
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        map_try(self.inner.try_write(), |inner| RwLockWriteGuard { inner })
    }

    /// Whether a thread panicked holding the write lock.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.inner.clear_poison()
    }

    /// The data, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Whether a timed wait timed out (`std::sync::WaitTimeoutResult`).
pub use std::sync::WaitTimeoutResult;

/// Wraps a wait condition so the block begins when it first says "wait" (a condition false
/// from the start never blocks and records nothing).
fn waiting<'b, T>(
    block: &'b mut Option<Block>,
    site: &'static Location<'static>,
    mut condition: impl FnMut(&mut T) -> bool + 'b,
) -> impl FnMut(&mut T) -> bool + 'b {
    move |t| {
        let wait = condition(t);
        if wait && block.is_none() {
            *block = Some(Block::begin(BlockReason::Condvar, site));
        }
        wait
    }
}

/// A condition variable (`std::sync::Condvar`) for [`Mutex`]; every wait is recorded as a
/// block with reason `condvar` and the caller's site.
#[derive(Debug, Default)]
pub struct Condvar {
    inner: std::sync::Condvar,
}

impl Condvar {
    /// A new condition variable.
    pub const fn new() -> Self {
        Condvar {
            inner: std::sync::Condvar::new(),
        }
    }

    /// Releases `guard`'s lock and blocks until notified, then reacquires it.
    #[track_caller]
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let _b = Block::begin(BlockReason::Condvar, Location::caller());
        map_poison(self.inner.wait(guard.inner), |inner| MutexGuard { inner })
    }

    /// Blocks while `condition` holds (checked before each wait).
    #[track_caller]
    pub fn wait_while<'a, T, F>(
        &self,
        guard: MutexGuard<'a, T>,
        condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        let site = Location::caller();
        let mut block = None;
        let waits = waiting(&mut block, site, condition);
        map_poison(self.inner.wait_while(guard.inner, waits), |inner| {
            MutexGuard { inner }
        })
    }

    /// Like [`Condvar::wait`], for at most `timeout`.
    #[track_caller]
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let _b = Block::begin(BlockReason::Condvar, Location::caller());
        map_poison(
            self.inner.wait_timeout(guard.inner, timeout),
            |(inner, t)| (MutexGuard { inner }, t),
        )
    }

    /// Like [`Condvar::wait_while`], for at most `timeout`.
    #[track_caller]
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let site = Location::caller();
        let mut block = None;
        let waits = waiting(&mut block, site, condition);
        map_poison(
            self.inner.wait_timeout_while(guard.inner, timeout, waits),
            |(inner, t)| (MutexGuard { inner }, t),
        )
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.inner.notify_one()
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.inner.notify_all()
    }
}
