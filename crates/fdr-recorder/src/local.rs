//! The per-thread recorder: the hot path.
//!
//! Each thread that records owns a `Local` (boxed, pointed to by a const-initialised
//! thread-local cell, so reaching it is one TLS load with no lazy-init check). An event is
//! encoded straight into the thread's current chunk: check room, read the clock, write the
//! bytes, advance the cursor by a length chosen with predictable branches, then publish the
//! cursor with a `Release` store (a plain `mov` on x86). The cursor counts events in its
//! high 32 bits, so that one store also publishes the event count: no counter is written
//! per event. No lock, allocation, syscall or shared write per event. Full chunks are
//! sealed on a cold path, which allocates only during warm-up (until the chunk budget is
//! first reached) and makes a syscall only when the free pool runs low. A little before
//! the chunk fills, the hot path's limit stops it twice more, [`PREPARE_STEP_BYTES`] apart:
//! at the first stop the thread takes its next chunk from the pool and prefetches the lines
//! the seal will write; at the second it checks whether the pool runs low. Each of these
//! slow events, and the seal itself, then touches at most about one line another core may
//! have written (the seal: its hand-off line, see `chunk`).
#![allow(
    unsafe_code,
    reason = "the hot path writes through cached raw pointers into the owned chunk"
)]

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fdr_format::encode;
use fdr_format::wire::{MAX_FIXED_EVENT_LEN, MAX_SMALL_EVENT_LEN};
use fdr_format::{EventKind, LossReason, StrId};

use crate::chunk::{
    CHUNK_BYTES, COMMITTED_DEPTH_MASK, ChunkMeta, ChunkPtr, SealInfo, committed_events,
    committed_len, prefetch_chunk_header, word_step,
};
use crate::clock::now_ticks;
use crate::intern::{NameCache, SiteCache};
use crate::state::{ThreadShared, shared};

/// Bytes of the private buffer a thread writes into while no chunk is free; what it holds
/// is counted as lost (`PoolExhausted`) and reported in the thread's next chunk.
const SCRATCH_BYTES: usize = 4096;

/// The distance between the stops that prepare a seal (see the module docs): the first is
/// two steps before the chunk's limit, a few hundred events (microseconds) ahead of the
/// seal, while a drain touches the hand-off line once per collector round (milliseconds).
const PREPARE_STEP_BYTES: usize = 512;

/// Marks a thread whose thread-local storage is being torn down.
const DEAD: usize = 1;

/// Aligned to 128 bytes (a pair of cache lines) so its hot fields, written per event, never
/// share a line with another thread's data.
#[repr(align(128))]
pub(crate) struct Local {
    // Hot fields first (one cache line).
    /// Bytes written into the current buffer (low 32 bits) and events (high 32 bits): the
    /// word published as the chunk's committed word.
    cursor: u64,
    limit: usize,
    base: *mut u8,
    committed: *const AtomicU64,
    last_ts: u64,
    /// `limit + 1` while the counter is the clock, else 0: the hot path's one check.
    fast_end: usize,
    cap: usize,
    pub(crate) names: NameCache,
    pub(crate) sites: SiteCache,
    // Cold.
    chunk: Option<ChunkPtr>,
    /// The next chunk, taken from the pool when the seal was prepared.
    next: Option<ChunkPtr>,
    /// Stops left before the seal: `limit` stops short of the chunk's end by this many
    /// [`PREPARE_STEP_BYTES`].
    stops: u8,
    /// Chunks this thread posted to its mailbox (picks the next entry).
    posted: usize,
    shared: Arc<ThreadShared>,
    seq: u32,
    events_before: u64,
    bytes_before: u64,
    discards_before: u64,
    pending_discards: u64,
    pending_discard_bytes: u64,
    reported: u64,
    scratch: Box<[u8]>,
    dummy: AtomicU64,
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
    let tid = os_tid();
    let ts = sh.register_thread(name, tid);
    crate::os::on_thread_start(&ts, tid);
    let now = now_ticks();
    let mut l = Box::new(Local {
        cursor: 0,
        limit: 0,
        base: std::ptr::null_mut(),
        committed: std::ptr::null(),
        last_ts: now,
        fast_end: 0,
        cap: 0,
        names: NameCache::new(),
        sites: SiteCache::new(),
        chunk: None,
        next: None,
        stops: 0,
        posted: 0,
        shared: ts,
        seq: 0,
        events_before: 0,
        bytes_before: 0,
        discards_before: 0,
        pending_discards: 0,
        pending_discard_bytes: 0,
        reported: 0,
        scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
        dummy: AtomicU64::new(0),
    });
    // The thread's own first chunk may be allocated here (its budget share just grew).
    let first = sh.pool.pop().or_else(|| sh.try_alloc());
    match first {
        Some(c) => {
            c.get().reset_for_owner(l.meta(now));
            l.seq += 1;
            l.shared.handoff.slot().install(Some(c));
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
    // --- begin: hook for task metrics (task.rs) ---
    /// Ticks of this thread's last recorded event (so metrics reuse an event's clock read).
    #[inline(always)]
    pub(crate) fn last_ts(&self) -> u64 {
        self.last_ts
    }
    // --- end: hook for task metrics ---

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

    /// Bytes written into the current buffer.
    #[inline(always)]
    fn pos(&self) -> usize {
        committed_len(self.cursor)
    }

    /// Events written into the current buffer.
    #[inline(always)]
    fn events(&self) -> u64 {
        committed_events(self.cursor)
    }

    /// The delta since the previous event, read from the counter (`fast_end` said it is
    /// the clock).
    #[inline(always)]
    fn fast_tick(&mut self) -> u64 {
        let now = crate::clock::counter_ticks();
        let delta = now.saturating_sub(self.last_ts);
        self.last_ts += delta;
        delta
    }

    /// The hot path: records a small event (a region begin or end, a static log) if the
    /// buffer has room and the counter is the clock (one check: `fast_end` is 0 otherwise).
    /// Makes no call, so an out-of-line entry point built on it (with [`peek_local`]) is a
    /// leaf that saves no registers; `false` (nothing recorded) sends the caller to its
    /// slow path, which does the rest with calls.
    ///
    /// `N` is the room the writer needs: [`MAX_SMALL_EVENT_LEN`] for most, up to
    /// [`MAX_FIXED_EVENT_LEN`] (a wake, a task creation).
    ///
    /// `depth` is the event's change of the thread's scope depth (+1 a begin, -1 an end, 0
    /// otherwise), published in the committed word (see [`crate::chunk::COMMITTED_DEPTH`]).
    #[inline(always)]
    pub(crate) fn try_small<const N: usize>(
        &mut self,
        f: impl FnOnce(&mut [u8; N], u64) -> usize,
        depth: i64,
    ) -> bool {
        if self.pos() >= self.fast_end {
            return false;
        }
        let delta = self.fast_tick();
        self.write_small(f, delta, depth);
        true
    }

    /// [`Local::try_small`] for an event of two varints, the delta and `operand` (a region
    /// begin or end): when both fit a byte, as they do for back-to-back regions with one of
    /// the first 32 names, the event is one 2-byte store. `depth`: +1 a begin, -1 an end.
    #[inline(always)]
    pub(crate) fn try_pair(&mut self, operand: u64, depth: i64) -> bool {
        let pos = self.pos();
        if pos >= self.fast_end {
            return false;
        }
        let now = crate::clock::counter_ticks();
        let delta = now.wrapping_sub(self.last_ts);
        if delta < 0x80 && operand < 0x80 {
            self.last_ts = now;
            // SAFETY: `pos <= limit = cap - MAX_FIXED_EVENT_LEN`: two bytes fit, at or past
            // the committed length. The delta's byte first, then the operand's.
            unsafe {
                self.base
                    .add(pos)
                    .cast::<[u8; 2]>()
                    .write([delta as u8, operand as u8])
            };
            self.advance(2, word_step(1, depth));
        } else {
            self.pair_long(now, operand, depth);
        }
        true
    }

    /// [`Local::try_pair`]'s other case: a longer delta or operand, or the clock stepped
    /// back (the wrapped delta is huge: saturate). Out of line, so the common case keeps
    /// few registers; a call in tail position costs the common case nothing.
    #[cold]
    #[inline(never)]
    fn pair_long(&mut self, now: u64, operand: u64, depth: i64) {
        let delta = now.saturating_sub(self.last_ts);
        self.last_ts += delta;
        self.write_small(
            |out: &mut [u8; MAX_SMALL_EVENT_LEN], delta| {
                let n = fdr_format::varint::put_fast(out, 0, delta);
                n + fdr_format::varint::put_fast(out, n, operand)
            },
            delta,
            depth,
        );
    }

    /// Sets `limit` and the hot path's `fast_end` for a buffer of `cap` bytes (stopping
    /// short by a step per stop left).
    fn set_limit(&mut self, cap: usize) {
        self.cap = cap;
        self.limit = cap - MAX_FIXED_EVENT_LEN - usize::from(self.stops) * PREPARE_STEP_BYTES;
        self.fast_end = if crate::clock::counter_is_clock() {
            self.limit + 1
        } else {
            0
        };
    }

    /// Reads the clock and returns the delta since the previous event.
    #[inline(always)]
    fn tick(&mut self) -> u64 {
        let now = now_ticks();
        let delta = now.saturating_sub(self.last_ts);
        self.last_ts += delta;
        delta
    }

    /// Advances the cursor by `n` bytes and `step` (a [`word_step`]: events and scope depth)
    /// and publishes it.
    #[inline(always)]
    fn advance(&mut self, n: usize, step: u64) {
        // Wrapping: a scope's end adds the depth field's two's complement.
        self.cursor = self.cursor.wrapping_add(n as u64).wrapping_add(step);
        // SAFETY: `committed` points into the current chunk (or at `dummy`), which outlives
        // this call: chunks are never freed and `dummy` lives in `self`.
        unsafe { (*self.committed).store(self.cursor, Ordering::Release) };
    }

    /// Records an event a fixed-array writer writes (a region begin/end, a static log, a
    /// task event) into at most `N <= MAX_FIXED_EVENT_LEN` bytes; `depth` as in
    /// [`Local::try_small`].
    #[inline(always)]
    pub(crate) fn small<const N: usize>(
        &mut self,
        f: impl FnOnce(&mut [u8; N], u64) -> usize,
        depth: i64,
    ) {
        if self.pos() > self.limit {
            self.refill();
        }
        let delta = self.tick();
        self.write_small(f, delta, depth);
    }

    /// Writes a small event at the cursor (`pos <= limit` checked by the caller).
    #[inline(always)]
    fn write_small<const N: usize>(
        &mut self,
        f: impl FnOnce(&mut [u8; N], u64) -> usize,
        delta: u64,
        depth: i64,
    ) {
        const {
            assert!(
                N <= MAX_FIXED_EVENT_LEN,
                "room past `limit` is MAX_FIXED_EVENT_LEN"
            )
        };
        // SAFETY: `pos <= limit = cap - MAX_FIXED_EVENT_LEN` and `N <= MAX_FIXED_EVENT_LEN`
        // (checked at compile time above), so these bytes lie inside the buffer this thread
        // owns, at or past its committed length, where no reader looks.
        let out = unsafe { &mut *(self.base.add(self.pos()) as *mut [u8; N]) };
        let n = f(out, delta);
        self.advance(n, word_step(1, depth));
    }

    /// Records any event but a log with an inline message.
    #[inline]
    pub(crate) fn fixed(&mut self, kind: &EventKind<'_>) {
        if self.pos() > self.limit {
            self.refill();
        }
        let delta = self.tick();
        // SAFETY: as in `small`: `MAX_FIXED_EVENT_LEN` bytes fit past `pos <= limit`.
        let out = unsafe { &mut *(self.base.add(self.pos()) as *mut [u8; MAX_FIXED_EVENT_LEN]) };
        let n = encode::event_fixed(out, delta, kind);
        // Loss records are not events the program recorded.
        let events = u64::from(!matches!(kind, EventKind::Loss { .. }));
        self.advance(n, word_step(events, scope_depth_change(kind)));
    }

    /// Records an event too large for [`Local::fixed`] (a stack sample), encoded into at
    /// most `max_len` bytes; counted as lost (`Oversize`) if it does not fit a chunk.
    pub(crate) fn large(&mut self, kind: &EventKind<'_>, max_len: usize) {
        if max_len > CHUNK_BYTES.min(SCRATCH_BYTES) {
            shared()
                .stats
                .lose(LossReason::Oversize, 1, max_len as u64, 0);
            return;
        }
        if self.pos() + max_len > self.cap {
            self.seal_and_refill();
            if self.pos() + max_len > self.cap {
                shared()
                    .stats
                    .lose(LossReason::Oversize, 1, max_len as u64, 0);
                return;
            }
        }
        let delta = self.tick();
        let pos = self.pos();
        // SAFETY: `pos + max_len <= cap`: the slice lies inside this thread's buffer, at or
        // past the committed length.
        let out = unsafe { std::slice::from_raw_parts_mut(self.base.add(pos), self.cap - pos) };
        match encode::encode_event(out, delta, kind) {
            Some(n) => self.advance(n, word_step(1, scope_depth_change(kind))),
            None => shared()
                .stats
                .lose(LossReason::Oversize, 1, max_len as u64, 0),
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
        if self.pos() + need > self.cap {
            self.seal_and_refill();
            if self.pos() + need > self.cap {
                shared()
                    .stats
                    .lose(LossReason::Oversize, 1, message.len() as u64, 0);
                return;
            }
        }
        let delta = self.tick();
        let pos = self.pos();
        // SAFETY: `pos + need <= cap`: the slice lies inside this thread's buffer, at or
        // past the committed length.
        let out = unsafe { std::slice::from_raw_parts_mut(self.base.add(pos), self.cap - pos) };
        if let Some(n) = encode::log_inline(out, delta, category, message) {
            self.advance(n, word_step(1, 0));
        }
    }

    /// The buffer reached its limit: takes the next step preparing the seal if one is left
    /// (and returns if the event still fits), else seals the current chunk and starts the
    /// next.
    #[cold]
    #[inline(never)]
    fn refill(&mut self) {
        if self.stops > 0 {
            self.prepare_step();
            if self.pos() <= self.limit {
                return;
            }
        }
        self.seal_and_refill();
    }

    /// One step preparing the seal, then the limit moves a step on. The first takes the
    /// next chunk from the pool and brings the lines the seal writes (the hand-off line, the
    /// next chunk's header) into this CPU's cache, so the seal finds them there unless
    /// another core touched them meanwhile; the second wakes the collector if the pool runs
    /// low. Each reads about one line other cores write (the pool's), so no one event pays
    /// for several.
    fn prepare_step(&mut self) {
        let sh = shared();
        if self.stops == 2 {
            self.shared.handoff.prefetch_for_seal();
            if self.next.is_none() {
                self.next = sh.pool.pop().or_else(|| sh.try_alloc());
                if let Some(n) = self.next {
                    prefetch_chunk_header(n);
                }
            }
        } else {
            sh.wake_if_pool_low();
        }
        self.stops -= 1;
        self.set_limit(self.cap);
    }

    /// Seals the current chunk and starts the next (or discards, if none is free).
    #[cold]
    #[inline(never)]
    fn seal_and_refill(&mut self) {
        while self.stops > 0 {
            self.prepare_step();
        }
        let sh = shared();
        let now = now_ticks().max(self.last_ts);
        let old = self.chunk.take();
        let mut seal = SealInfo::default();
        if let Some(c) = old {
            seal = SealInfo {
                events: self.events(),
                discards: self.reported,
                last_ts: self.last_ts,
                last: false,
            };
            c.get().set_seal_info(seal);
            self.events_before += self.events();
            self.bytes_before += self.pos() as u64;
            self.discards_before += self.reported;
            self.reported = 0;
        } else {
            self.discard_scratch();
        }
        // A free chunk from the pool (taken when the seal was prepared, or now), which the
        // collector keeps stocked. If it is empty and the budget was never reached (the ring
        // is still filling: warm-up), allocate one; else (the collector fell behind, or a
        // snapshot pins the ring) discard and count. Once the budget is reached, a writer
        // never allocates again.
        let next = self.next.take().or_else(|| {
            let n = sh.pool.pop().or_else(|| sh.try_alloc());
            sh.wake_if_pool_low();
            n
        });
        if let Some(n) = next {
            n.get().reset_for_owner(self.meta(now));
            // The new chunk's word carries the thread's scope depth from the start.
            n.get().set_initial_depth(self.cursor);
            self.seq += 1;
        }
        match old {
            Some(c) => {
                let h = &self.shared.handoff;
                if h.seal(&mut self.posted, &sh.sealed, c, next).is_err() {
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
                    self.shared.handoff.slot().install(next);
                }
            }
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
        self.stops = 2;
        self.set_limit(CHUNK_BYTES);
        // An empty buffer at the thread's scope depth.
        self.cursor &= COMMITTED_DEPTH_MASK;
        self.last_ts = now;
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
        self.stops = 0;
        self.set_limit(SCRATCH_BYTES);
        self.cursor &= COMMITTED_DEPTH_MASK;
    }

    fn discard_scratch(&mut self) {
        let (events, bytes) = (self.events(), self.pos() as u64);
        if events > 0 {
            shared()
                .stats
                .lose(LossReason::PoolExhausted, events, bytes, 0);
        }
        self.pending_discards += events;
        self.pending_discard_bytes += bytes;
        self.cursor &= COMMITTED_DEPTH_MASK;
    }

    /// The thread exits: record its end and seal its last chunk.
    fn exit(&mut self) {
        crate::os::on_thread_exit(self.shared.id);
        self.fixed(&EventKind::ThreadEnd);
        let sh = shared();
        // A chunk taken ahead for the next seal goes back to the pool (it was never handed
        // out: not current, in no ring, unread).
        if let Some(n) = self.next.take() {
            // The pool queue is larger than any budget; were it full, the chunk would only
            // stay out of circulation.
            let _ = sh.pool.push(n);
        }
        match self.chunk.take() {
            Some(c) => {
                let seal = SealInfo {
                    events: self.events(),
                    discards: self.reported,
                    last_ts: self.last_ts,
                    last: true,
                };
                c.get().set_seal_info(seal);
                let h = &self.shared.handoff;
                if h.seal(&mut self.posted, &sh.sealed, c, None).is_err() {
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

/// How an event changes its thread's scope depth: +1 for the begin of a poll, user task,
/// region or block, -1 for its end, 0 otherwise.
#[inline]
pub(crate) fn scope_depth_change(kind: &EventKind<'_>) -> i64 {
    match kind {
        EventKind::RegionBegin { .. }
        | EventKind::PollStart { .. }
        | EventKind::UserTaskBegin { .. }
        | EventKind::BlockBegin { .. } => 1,
        EventKind::RegionEnd { .. }
        | EventKind::PollEnd { .. }
        | EventKind::UserTaskEnd { .. }
        | EventKind::BlockEnd => -1,
        _ => 0,
    }
}
