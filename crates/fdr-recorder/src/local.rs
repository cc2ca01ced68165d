//! The per-thread recorder: the hot path.
//!
//! Each thread that records owns a `Local` (boxed, pointed to by a const-initialised
//! thread-local cell, so reaching it is one TLS load with no lazy-init check). An event is
//! encoded straight into the thread's current chunk: check room, read the clock, write the
//! bytes, advance the cursor by a length chosen with predictable branches, then publish the
//! cursor with a `Release` store (a plain `mov` on x86). No lock, allocation, syscall or
//! shared write per event. Full chunks are sealed on a cold path.
#![allow(
    unsafe_code,
    reason = "the hot path writes through cached raw pointers into the owned chunk"
)]

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fdr_format::encode;
use fdr_format::wire::{MAX_FIXED_EVENT_LEN, MAX_SMALL_EVENT_LEN};
use fdr_format::{EventKind, LossReason, StrId};

use crate::chunk::{CHUNK_BYTES, ChunkMeta, ChunkPtr, SealInfo, seal_and_install};
use crate::clock::now_ticks;
use crate::intern::{NameCache, SiteCache};
use crate::state::{ThreadShared, shared};

/// Bytes of the private buffer a thread writes into while no chunk is free; what it holds
/// is counted as lost (`PoolExhausted`) and reported in the thread's next chunk.
const SCRATCH_BYTES: usize = 4096;

/// Marks a thread whose thread-local storage is being torn down.
const DEAD: usize = 1;

pub(crate) struct Local {
    // Hot fields first (one cache line).
    pos: usize,
    limit: usize,
    base: *mut u8,
    committed: *const AtomicUsize,
    last_ts: u64,
    events: u64,
    cap: usize,
    pub(crate) names: NameCache,
    pub(crate) sites: SiteCache,
    // Cold.
    chunk: Option<ChunkPtr>,
    shared: Arc<ThreadShared>,
    seq: u32,
    events_before: u64,
    bytes_before: u64,
    discards_before: u64,
    pending_discards: u64,
    pending_discard_bytes: u64,
    reported: u64,
    scratch: Box<[u8]>,
    dummy: AtomicUsize,
}

thread_local! {
    static LOCAL: Cell<*mut Local> = const { Cell::new(std::ptr::null_mut()) };
    static EXIT: ExitGuard = const { ExitGuard };
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let p = LOCAL.with(|c| c.replace(std::ptr::without_provenance_mut(DEAD)));
        if p as usize > DEAD {
            // SAFETY: `p` came from `Box::into_raw` in `register` and the cell no longer
            // points to it, so this is the only reference; it is freed exactly once.
            let mut l = unsafe { Box::from_raw(p) };
            l.exit();
        }
    }
}

/// Runs `f` with this thread's recorder, registering the thread on its first event.
/// `None` once the thread's storage is being torn down (the event is counted and dropped).
#[inline(always)]
pub(crate) fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    let mut p = LOCAL.with(Cell::get);
    if p as usize <= DEAD {
        p = register(p)?;
    }
    // SAFETY: `p` is this thread's `Local`, allocated in `register` and freed only by the
    // exit guard after the cell stopped pointing to it. Recording never calls user code, so
    // no other `&mut` to it exists while `f` runs.
    Some(f(unsafe { &mut *p }))
}

/// This thread's recorder if it is registered (never registers).
#[inline(always)]
pub(crate) fn peek_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    let p = LOCAL.with(Cell::get);
    if p as usize <= DEAD {
        return None;
    }
    // SAFETY: as in `with_local`.
    Some(f(unsafe { &mut *p }))
}

#[cold]
#[inline(never)]
fn register(p: *mut Local) -> Option<*mut Local> {
    let sh = shared();
    if p as usize == DEAD {
        sh.stats
            .after_thread_exit
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return None;
    }
    // Register the exit guard first: if storage is already being torn down, give up.
    EXIT.try_with(|_| ()).ok()?;
    let name = std::thread::current().name().unwrap_or("").to_owned();
    let ts = sh.register_thread(name, os_tid());
    let now = now_ticks();
    let mut l = Box::new(Local {
        pos: 0,
        limit: 0,
        base: std::ptr::null_mut(),
        committed: std::ptr::null(),
        last_ts: now,
        events: 0,
        cap: 0,
        names: NameCache::new(),
        sites: SiteCache::new(),
        chunk: None,
        shared: ts,
        seq: 0,
        events_before: 0,
        bytes_before: 0,
        discards_before: 0,
        pending_discards: 0,
        pending_discard_bytes: 0,
        reported: 0,
        scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
        dummy: AtomicUsize::new(0),
    });
    // The thread's own first chunk may be allocated here (its budget share just grew).
    let first = sh.pool.pop().or_else(|| sh.try_alloc());
    match first {
        Some(c) => {
            c.get().reset_for_owner(l.meta(now));
            l.seq += 1;
            l.shared.slot.install(Some(c));
            l.begin_chunk(c, now);
        }
        None => l.begin_discard(),
    }
    let p = Box::into_raw(l);
    LOCAL.with(|c| c.set(p));
    // SAFETY: just allocated; this thread's only reference.
    unsafe { (*p).fixed(&EventKind::ThreadStart) };
    Some(p)
}

#[cfg(target_os = "linux")]
fn os_tid() -> u64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(not(target_os = "linux"))]
fn os_tid() -> u64 {
    0
}

impl Local {
    fn meta(&self, now: u64) -> ChunkMeta {
        ChunkMeta {
            thread: self.shared.id,
            seq: self.seq,
            base_ts: now,
            events_before: self.events_before,
            bytes_before: self.bytes_before,
            discards_before: self.discards_before,
        }
    }

    /// Records a region begin/end or a static log: at most `MAX_SMALL_EVENT_LEN` bytes.
    #[inline(always)]
    pub(crate) fn small(&mut self, f: impl FnOnce(&mut [u8; MAX_SMALL_EVENT_LEN], u64) -> usize) {
        if self.pos > self.limit {
            self.refill();
        }
        let now = now_ticks();
        let delta = now.saturating_sub(self.last_ts);
        self.last_ts += delta;
        // SAFETY: `pos <= limit = cap - MAX_FIXED_EVENT_LEN`, so these bytes lie inside the
        // buffer this thread owns, at or past its committed length, where no reader looks.
        let out = unsafe { &mut *(self.base.add(self.pos) as *mut [u8; MAX_SMALL_EVENT_LEN]) };
        let n = f(out, delta);
        self.pos += n;
        // SAFETY: `committed` points into the current chunk (or at `dummy`), which outlives
        // this call: chunks are never freed and `dummy` lives in `self`.
        unsafe { (*self.committed).store(self.pos, Ordering::Release) };
        self.events += 1;
    }

    /// Records any event but a log with an inline message.
    #[inline]
    pub(crate) fn fixed(&mut self, kind: &EventKind<'_>) {
        if self.pos > self.limit {
            self.refill();
        }
        let now = now_ticks();
        let delta = now.saturating_sub(self.last_ts);
        self.last_ts += delta;
        // SAFETY: as in `small`: `MAX_FIXED_EVENT_LEN` bytes fit past `pos <= limit`.
        let out = unsafe { &mut *(self.base.add(self.pos) as *mut [u8; MAX_FIXED_EVENT_LEN]) };
        let n = encode::event_fixed(out, delta, kind);
        self.pos += n;
        // SAFETY: as in `small`.
        unsafe { (*self.committed).store(self.pos, Ordering::Release) };
        if !matches!(kind, EventKind::Loss { .. }) {
            self.events += 1;
        }
    }

    /// Records a log whose message is carried inline.
    pub(crate) fn inline_log(&mut self, category: StrId, message: &[u8]) {
        let need = encode::log_inline_max_len(message.len());
        if need > CHUNK_BYTES.min(SCRATCH_BYTES) {
            shared()
                .stats
                .lose(LossReason::Oversize, 1, message.len() as u64, 0);
            return;
        }
        if self.pos + need > self.cap {
            self.refill();
            if self.pos + need > self.cap {
                shared()
                    .stats
                    .lose(LossReason::Oversize, 1, message.len() as u64, 0);
                return;
            }
        }
        let now = now_ticks();
        let delta = now.saturating_sub(self.last_ts);
        self.last_ts += delta;
        // SAFETY: `pos + need <= cap`: the slice lies inside this thread's buffer, at or
        // past the committed length.
        let out =
            unsafe { std::slice::from_raw_parts_mut(self.base.add(self.pos), self.cap - self.pos) };
        if let Some(n) = encode::log_inline(out, delta, category, message) {
            self.pos += n;
            // SAFETY: as in `small`.
            unsafe { (*self.committed).store(self.pos, Ordering::Release) };
            self.events += 1;
        }
    }

    /// Seals the current chunk and starts the next (or discards, if none is free).
    #[cold]
    #[inline(never)]
    fn refill(&mut self) {
        let sh = shared();
        let now = now_ticks().max(self.last_ts);
        let old = self.chunk.take();
        let mut seal = SealInfo::default();
        if let Some(c) = old {
            seal = SealInfo {
                events: self.events,
                discards: self.reported,
                last_ts: self.last_ts,
                last: false,
            };
            c.get().set_seal_info(seal);
            self.events_before += self.events;
            self.bytes_before += self.pos as u64;
            self.discards_before += self.reported;
            self.reported = 0;
        } else {
            self.discard_scratch();
        }
        // The pool first; if the collector has not restocked it yet (it may not have been
        // scheduled), a new chunk within the budget; else discard and count.
        let next = sh.pool.pop().or_else(|| sh.try_alloc());
        if let Some(n) = next {
            n.get().reset_for_owner(self.meta(now));
            self.seq += 1;
        }
        match old {
            Some(c) => {
                if seal_and_install(&self.shared.slot, &sh.sealed, c, next).is_err() {
                    // Cannot happen within any accepted budget (the queue holds more chunks
                    // than may exist); the chunk is kept out of circulation and counted.
                    sh.stats.lose(
                        LossReason::PoolExhausted,
                        seal.events,
                        c.get().committed() as u64,
                        1,
                    );
                }
            }
            None => {
                if next.is_some() {
                    self.shared.slot.install(next);
                }
            }
        }
        if sh.pool.len() <= 2 {
            sh.wake_collector();
        }
        match next {
            Some(n) => self.begin_chunk(n, now),
            None => self.begin_discard(),
        }
    }

    fn begin_chunk(&mut self, c: ChunkPtr, now: u64) {
        let chunk = c.get();
        self.chunk = Some(c);
        self.base = chunk.base_ptr();
        self.committed = chunk.committed_cell();
        self.cap = CHUNK_BYTES;
        self.limit = CHUNK_BYTES - MAX_FIXED_EVENT_LEN;
        self.pos = 0;
        self.last_ts = now;
        self.events = 0;
        if self.pending_discards > 0 {
            let kind = EventKind::Loss {
                reason: LossReason::PoolExhausted,
                events: self.pending_discards,
                bytes: self.pending_discard_bytes,
            };
            self.fixed(&kind);
            self.reported = self.pending_discards;
            self.pending_discards = 0;
            self.pending_discard_bytes = 0;
        }
    }

    fn begin_discard(&mut self) {
        self.chunk = None;
        self.base = self.scratch.as_mut_ptr();
        self.committed = &self.dummy;
        self.cap = SCRATCH_BYTES;
        self.limit = SCRATCH_BYTES - MAX_FIXED_EVENT_LEN;
        self.pos = 0;
        self.events = 0;
    }

    fn discard_scratch(&mut self) {
        if self.events > 0 {
            shared()
                .stats
                .lose(LossReason::PoolExhausted, self.events, self.pos as u64, 0);
        }
        self.pending_discards += self.events;
        self.pending_discard_bytes += self.pos as u64;
        self.events = 0;
        self.pos = 0;
    }

    /// The thread exits: record its end and seal its last chunk.
    fn exit(&mut self) {
        self.fixed(&EventKind::ThreadEnd);
        let sh = shared();
        match self.chunk.take() {
            Some(c) => {
                let seal = SealInfo {
                    events: self.events,
                    discards: self.reported,
                    last_ts: self.last_ts,
                    last: true,
                };
                c.get().set_seal_info(seal);
                if seal_and_install(&self.shared.slot, &sh.sealed, c, None).is_err() {
                    sh.stats.lose(
                        LossReason::PoolExhausted,
                        seal.events,
                        c.get().committed() as u64,
                        1,
                    );
                }
                sh.thread_exited(self.shared.id, true);
            }
            None => {
                self.discard_scratch();
                self.shared
                    .exit_discards
                    .store(self.pending_discards, Ordering::Relaxed);
                self.shared
                    .exit_discard_bytes
                    .store(self.pending_discard_bytes, Ordering::Relaxed);
                sh.thread_exited(self.shared.id, false);
            }
        }
    }
}
