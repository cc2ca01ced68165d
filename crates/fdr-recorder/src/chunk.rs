//! Chunks, the per-thread hand-off (a thread's current-chunk slot and its mailbox of sealed
//! chunks, in one cache line), and the pin protocol that lets a snapshot read a chunk a
//! writer is still filling.
//!
//! Protocol (checked by the loom models in `src/tests/loom_chunk.rs`, which write through
//! [`ChunkWriter`] as the recorder's threads do):
//! - A writer owns its current chunk. It writes bytes past the committed length, then
//!   publishes them with a `Release` store of the committed word (the length in its low 32
//!   bits, the number of events in its high 32: one plain store carries both, so no separate
//!   counter is written per event); it never rewrites bytes below it. Readers `Acquire` the
//!   word and read only the prefix it names: never a torn event.
//! - Sealing ([`Handoff::seal`]): the writer posts the full chunk into the next entry of its
//!   own mailbox, a ring of [`MAILBOX_SLOTS`] entries (`Release`; only the owner turns an
//!   entry from empty to full), or, if that entry is still full, pushes it to the global
//!   overflow queue; then swaps
//!   its slot to the next chunk (`AcqRel`); then clears the chunk's `is_current` flag
//!   (`Release`). The mailbox and the slot share one cache line, which the writer prefetches
//!   for writing shortly before the chunk fills, so a seal costs at most one cross-core
//!   transfer (the line, if a drain touched it since).
//! - Draining ([`collect_sealed`]), always under the recorder's core lock (one drainer at a
//!   time): pop the overflow queue (as many as it held when we started); then, for every
//!   registered thread, take at most [`MAILBOX_SLOTS`] of its mailbox's entries in ring
//!   order from where the last drain stopped, up to the first empty one (`Acquire` it, store
//!   it empty, `Release`); then sort the batch by (base timestamp, thread, sequence), which
//!   is oldest-first overall and sequence order per thread. No thread's chunk is drained in
//!   a round before one it sealed earlier: a chunk posted before one we pop from the queue
//!   is seen by the mailbox pass (it happens-before the push); a chunk pushed to the queue
//!   after our pops found its mailbox entry full, and the next chunk goes to that same
//!   entry, which this pass can reach only after [`MAILBOX_SLOTS`] entries: not in this
//!   round. In particular a thread's last chunk is taken only with all its others.
//! - A reader pins a live chunk: load the slot, add a pin, then confirm with a
//!   compare-exchange that the slot still holds that chunk. The confirmation is a
//!   read-modify-write, so it is ordered against the writer's swap. A reader that saw the
//!   slot move past a chunk (a failed confirmation, or a later chunk) and drains afterwards
//!   finds it: it was posted (or pushed) before the swap.
//! - A chunk is recycled (handed to another writer) only when it is in no mailbox, ring or
//!   queue, no longer current (`Acquire`), and has no pins (`Acquire`), in that order.
//! - A reader's pins live in its [`Lease`]: it reads a chunk only through a [`Reading`],
//!   made under the lease's lock while the lease holds the pin, and the collector, short of
//!   free chunks, may take back (under the same lock) a pin on a chunk that left the ring,
//!   unless that chunk is being read; the reader then reports the chunk lost instead of
//!   reading it. So a reader whose writer stalls keeps one chunk from the writers, the one
//!   it is writing.
//! - Chunks are never freed while the recorder exists, so a stale pointer still points at a
//!   valid chunk; the checks above decide whether its bytes may be read.
#![allow(
    unsafe_code,
    reason = "the chunk buffer is shared between its writer and pinned readers by protocol"
)]

#[cfg(not(loom))]
use std::cell::UnsafeCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::sync::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, ByteCell, Mutex, Ordering, lock};

/// Sealed chunks a thread's mailbox holds until a drain takes them: seven, so that they and
/// the slot fill one cache line. Past it a seal goes to the global overflow queue.
#[cfg(not(loom))]
pub(crate) const MAILBOX_SLOTS: usize = 7;
/// Sealed chunks a thread's mailbox holds (one under loom, so the models reach the overflow
/// queue with two seals).
#[cfg(loom)]
pub(crate) const MAILBOX_SLOTS: usize = 1;

/// The hand-off queue (crossbeam's `ArrayQueue`; under loom, a loom-checked stand-in).
pub(crate) use crate::sync::Queue;

/// Bytes in one chunk: the unit of hand-off, of the ring, and of the per-thread buffer.
#[cfg(not(loom))]
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Bytes in one chunk (small under loom, so byte-level race tracking stays cheap).
#[cfg(loom)]
pub(crate) const CHUNK_BYTES: usize = 16;

/// One event in a committed word (see the module docs): the count sits above the length.
pub(crate) const COMMITTED_EVENT: u64 = 1 << 32;
/// Bits of the event count in a committed word: a chunk holds at most `CHUNK_BYTES / 2`
/// events (every event is at least two bytes), which 17 bits count.
pub(crate) const COMMITTED_COUNT_BITS: u32 = 17;
/// One level of scope depth in a committed word: the top 15 bits, above the count, carry the
/// thread's scope depth (polls, user tasks, regions and blocks begun and not ended) after
/// the word's last event, modulo 2^15. A scope's begin adds this and its end subtracts it in
/// the same add that advances the length and the count, so publishing the depth costs no
/// instruction (the constant added changes); a new chunk's word starts with the depth its
/// thread is at. Measured against the build before it, interleaved runs on an AMD EPYC VM:
/// `record.region_ratio_to_floor` 0.998, 0.998, 1.010, 1.014, 1.028 (before: 1.001, 0.991,
/// 1.031, 1.041, 0.994) and `task.poll_ratio_to_events_floor` 1.005, 1.005, 1.047 (before:
/// 1.008, 1.087, 1.032), with the OS sampler running.
pub(crate) const COMMITTED_DEPTH: u64 = 1 << (32 + COMMITTED_COUNT_BITS);
/// The depth bits of a committed word.
pub(crate) const COMMITTED_DEPTH_MASK: u64 = !(COMMITTED_DEPTH - 1);

/// The length a committed word publishes.
#[inline(always)]
pub(crate) const fn committed_len(word: u64) -> usize {
    word as u32 as usize
}

/// The number of events a committed word publishes.
#[inline(always)]
pub(crate) const fn committed_events(word: u64) -> u64 {
    (word >> 32) & ((1 << COMMITTED_COUNT_BITS) - 1)
}

/// The scope depth a committed word publishes, or 0 if more scopes ended than began (an
/// end whose begin was not recorded: the field wrapped below zero).
#[inline(always)]
pub(crate) const fn committed_depth(word: u64) -> u32 {
    let d = (word >> (32 + COMMITTED_COUNT_BITS)) as u32;
    if d >= 1 << (63 - 32 - COMMITTED_COUNT_BITS) {
        0
    } else {
        d
    }
}

/// What one event adds to a committed word besides its length: `events` events (0 or 1)
/// and a scope depth change of `depth` (+1 a begin, -1 an end, 0 otherwise), wrapping.
#[inline(always)]
pub(crate) const fn word_step(events: u64, depth: i64) -> u64 {
    (events * COMMITTED_EVENT).wrapping_add((depth as u64).wrapping_mul(COMMITTED_DEPTH))
}

/// Facts about a chunk's contents, written by its owner before it is published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    /// The recording thread.
    pub(crate) thread: u32,
    /// The thread's chunk sequence number.
    pub(crate) seq: u32,
    /// Base timestamp: events' deltas start from it.
    pub(crate) base_ts: u64,
    /// Events the thread wrote into its earlier chunks.
    pub(crate) events_before: u64,
    /// Bytes the thread wrote into its earlier chunks.
    pub(crate) bytes_before: u64,
    /// Events the thread discarded (no chunk free) that its earlier chunks reported.
    pub(crate) discards_before: u64,
}

/// Facts known when a chunk is sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SealInfo {
    /// Events in the chunk (loss records included).
    pub(crate) events: u64,
    /// Discarded events this chunk's loss record reports.
    pub(crate) discards: u64,
    /// Timestamp of the chunk's last event.
    pub(crate) last_ts: u64,
    /// The thread's last chunk (it exited).
    pub(crate) last: bool,
}

/// One chunk: a fixed buffer of encoded events and its protocol state. Aligned to 128 bytes
/// (a pair of cache lines, the unit Intel's adjacent-line prefetcher moves), so the committed
/// word one writer stores per event never shares a line with another chunk's. Laid out in
/// order: the first line holds what the owner writes (the committed word, per event; the
/// sealing facts and `is_current`, at sealing), so sealing writes a line the owner already
/// has; the second holds the facts written when the chunk is handed out, and the pins and
/// ring flag other threads write.
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct Chunk {
    committed: AtomicU64,
    events: AtomicU64,
    discards: AtomicU64,
    last_ts: AtomicU64,
    is_current: AtomicBool,
    last: AtomicBool,
    data: Box<[ByteCell]>,
    base_ts: AtomicU64,
    events_before: AtomicU64,
    bytes_before: AtomicU64,
    discards_before: AtomicU64,
    thread: AtomicU32,
    seq: AtomicU32,
    pins: AtomicU32,
    in_ring: AtomicBool,
}

// SAFETY: the buffer's bytes are only written by the chunk's single owner past the committed
// length and only read below it (see the module docs); every other field is atomic.
unsafe impl Sync for Chunk {}
// SAFETY: as above; a chunk holds no thread-bound state.
unsafe impl Send for Chunk {}

impl Chunk {
    /// A new, empty chunk (not current, in no ring, unpinned).
    pub(crate) fn new() -> Self {
        Chunk {
            data: (0..CHUNK_BYTES).map(|_| ByteCell::default()).collect(),
            committed: AtomicU64::new(0),
            pins: AtomicU32::new(0),
            is_current: AtomicBool::new(false),
            in_ring: AtomicBool::new(false),
            thread: AtomicU32::new(0),
            seq: AtomicU32::new(0),
            base_ts: AtomicU64::new(0),
            events_before: AtomicU64::new(0),
            bytes_before: AtomicU64::new(0),
            discards_before: AtomicU64::new(0),
            events: AtomicU64::new(0),
            discards: AtomicU64::new(0),
            last_ts: AtomicU64::new(0),
            last: AtomicBool::new(false),
        }
    }

    /// Prepares a chunk its new owner took from the pool: resets it and marks it current.
    /// The caller then installs it in its slot, which publishes all of this.
    fn reset_for_owner(&self, meta: ChunkMeta) {
        self.committed.store(0, Ordering::Relaxed);
        self.thread.store(meta.thread, Ordering::Relaxed);
        self.seq.store(meta.seq, Ordering::Relaxed);
        self.base_ts.store(meta.base_ts, Ordering::Relaxed);
        self.events_before
            .store(meta.events_before, Ordering::Relaxed);
        self.bytes_before
            .store(meta.bytes_before, Ordering::Relaxed);
        self.discards_before
            .store(meta.discards_before, Ordering::Relaxed);
        self.events.store(0, Ordering::Relaxed);
        self.discards.store(0, Ordering::Relaxed);
        self.last.store(false, Ordering::Relaxed);
        self.is_current.store(true, Ordering::Relaxed);
    }

    /// Sets the committed word of a chunk its owner is about to install: empty, with the
    /// scope depth its thread is at (the depth bits of `depth_bits`, see
    /// [`COMMITTED_DEPTH`]). Published by the install.
    fn set_initial_depth(&self, depth_bits: u64) {
        self.committed
            .store(depth_bits & COMMITTED_DEPTH_MASK, Ordering::Relaxed);
    }

    /// The committed word as published (`Acquire`): length, event count, scope depth.
    pub(crate) fn committed_word(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Records what is known at sealing; published by the seal's post (or push).
    pub(crate) fn set_seal_info(&self, s: SealInfo) {
        self.events.store(s.events, Ordering::Relaxed);
        self.discards.store(s.discards, Ordering::Relaxed);
        self.last_ts.store(s.last_ts, Ordering::Relaxed);
        self.last.store(s.last, Ordering::Relaxed);
    }

    /// The owner-written facts (valid once the chunk was published to the reader).
    pub(crate) fn meta(&self) -> ChunkMeta {
        ChunkMeta {
            thread: self.thread.load(Ordering::Relaxed),
            seq: self.seq.load(Ordering::Relaxed),
            base_ts: self.base_ts.load(Ordering::Relaxed),
            events_before: self.events_before.load(Ordering::Relaxed),
            bytes_before: self.bytes_before.load(Ordering::Relaxed),
            discards_before: self.discards_before.load(Ordering::Relaxed),
        }
    }

    /// What sealing recorded (valid for a sealed chunk received through a drain).
    pub(crate) fn seal_info(&self) -> SealInfo {
        SealInfo {
            events: self.events.load(Ordering::Relaxed),
            discards: self.discards.load(Ordering::Relaxed),
            last_ts: self.last_ts.load(Ordering::Relaxed),
            last: self.last.load(Ordering::Relaxed),
        }
    }

    /// Base of the buffer, for the owner's hot path.
    #[cfg(not(loom))]
    #[inline(always)]
    fn base_ptr(&self) -> *mut u8 {
        // `ByteCell` is a transparent `UnsafeCell<u8>`, so the cells are contiguous bytes
        // that may be written through a shared reference.
        self.data.as_ptr() as *mut u8
    }

    /// The committed length (`Acquire`: the bytes below it are visible).
    pub(crate) fn committed(&self) -> usize {
        committed_len(self.committed.load(Ordering::Acquire))
    }

    /// The committed length and the number of events in it (`Acquire`).
    #[cfg(test)]
    pub(crate) fn committed_with_events(&self) -> (usize, u64) {
        let w = self.committed.load(Ordering::Acquire);
        (committed_len(w), committed_events(w))
    }

    /// Copies the committed prefix into `out` (cleared first) and returns its length.
    /// The caller must hold a pin or own the chunk, so it is not recycled meanwhile.
    #[cfg(test)]
    pub(crate) fn copy_committed(&self, out: &mut Vec<u8>) -> usize {
        let len = self.committed().min(CHUNK_BYTES);
        out.clear();
        #[cfg(not(loom))]
        {
            // SAFETY: bytes below the committed length were published by the `Acquire`
            // above and are never rewritten while the chunk is pinned or owned by us.
            let s = unsafe { std::slice::from_raw_parts(self.base_ptr() as *const u8, len) };
            out.extend_from_slice(s);
        }
        #[cfg(loom)]
        for cell in &self.data[..len] {
            // SAFETY: as above; loom checks it.
            out.push(cell.0.with(|p| unsafe { *p }));
        }
        len
    }

    /// Adds a reader pin (see the module docs).
    pub(crate) fn pin(&self) {
        self.pins.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops a reader pin; the reads before it happen before any recycling.
    pub(crate) fn unpin(&self) {
        self.pins.fetch_sub(1, Ordering::Release);
    }

    /// Writer: the chunk stopped being current (after its slot was swapped away).
    pub(crate) fn clear_current(&self) {
        self.is_current.store(false, Ordering::Release);
    }

    /// Whether a reader pins the chunk (a hint: [`Chunk::reclaimable`] decides).
    pub(crate) fn pinned(&self) -> bool {
        self.pins.load(Ordering::Relaxed) != 0
    }

    /// Whether the chunk may be handed to a writer again: no longer current, then no pins.
    /// The caller has removed it from every ring and queue.
    pub(crate) fn reclaimable(&self) -> bool {
        !self.is_current.load(Ordering::Acquire) && self.pins.load(Ordering::Acquire) == 0
    }

    /// Whether the chunk sits in the flight ring (collector-owned flag, under the core lock).
    pub(crate) fn in_ring(&self) -> bool {
        self.in_ring.load(Ordering::Relaxed)
    }

    /// Sets the ring flag (under the core lock).
    pub(crate) fn set_in_ring(&self, v: bool) {
        self.in_ring.store(v, Ordering::Relaxed);
    }
}

impl Default for Chunk {
    fn default() -> Self {
        Self::new()
    }
}

/// A raw pointer to a chunk that may cross threads. Chunks live as long as the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ChunkPtr(*const Chunk);

// SAFETY: a `Chunk` is `Sync` and is never freed while pointers to it circulate.
unsafe impl Send for ChunkPtr {}
// SAFETY: as above.
unsafe impl Sync for ChunkPtr {}

impl ChunkPtr {
    /// Leaks a new chunk: chunks are never freed while the recorder exists.
    pub(crate) fn alloc() -> Self {
        ChunkPtr(Box::into_raw(Box::new(Chunk::new())))
    }

    /// The chunk.
    pub(crate) fn get(&self) -> &Chunk {
        // SAFETY: chunks are allocated by `alloc` and never freed, so the pointer is valid
        // for the rest of the process.
        unsafe { &*self.0 }
    }

    /// The chunk's address, to tell chunks apart without reading them.
    pub(crate) fn addr(self) -> usize {
        self.0.addr()
    }

    /// This use of the chunk: its owner's thread and sequence number (valid while the
    /// caller pins the chunk, owns it, or finds it in the ring, a mailbox or a queue).
    pub(crate) fn incarnation(self) -> Incarnation {
        let c = self.get();
        Incarnation {
            chunk: self,
            thread: c.thread.load(Ordering::Relaxed),
            seq: c.seq.load(Ordering::Relaxed),
        }
    }
}

/// One use of a chunk: the chunk and the thread and sequence number its owner gave it,
/// which no later use repeats (a thread's sequence numbers only grow and thread ids are
/// never reused). A reader that lost its pin tells by it that a chunk is another's now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Incarnation {
    /// The chunk.
    pub(crate) chunk: ChunkPtr,
    /// Its owner's thread id.
    pub(crate) thread: u32,
    /// Its owner's sequence number for it.
    pub(crate) seq: u32,
}

/// What the collector knew of a chunk when it took a reader's pin on it back: what
/// sealing recorded, for the reader's loss record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Revoked {
    /// Events in the chunk.
    pub(crate) events: u64,
    /// Its committed bytes.
    pub(crate) bytes: u64,
    /// Discarded events its loss record reported.
    pub(crate) discards: u64,
    /// It was its thread's last chunk.
    pub(crate) last: bool,
}

#[derive(Debug, Default)]
struct LeaseState {
    /// Chunks pinned for the reader and not read yet (one pin each).
    held: BTreeSet<Incarnation>,
    /// Held chunks the reader is reading now: the collector leaves their pins alone.
    reading: BTreeSet<Incarnation>,
    /// Chunks whose pin the collector took back, and what they held.
    revoked: BTreeMap<Incarnation, Revoked>,
}

/// A reader's pins (a snapshot's, a capture's) that the collector can take back.
///
/// A reader pins chunks up front (it has to: a chunk it has not pinned may be recycled
/// before it gets to it) and writes them out at the pace of its writer. A writer that
/// stalls must not keep chunks from the writers for ever, so the reader hands its pins to
/// its lease ([`Lease::adopt`]), and the collector, short of free chunks, takes back the
/// pins on chunks that already left the ring ([`Lease::revoke`]), except on the one chunk
/// the reader is reading. The reader reads a chunk's bytes only through a [`Reading`]
/// ([`Lease::read`]), which exists only while the lease holds the pin and marks the chunk
/// as being read; the collector drops a pin only under the lease's lock and never on a
/// chunk being read. So a read never overlaps a revocation, and the pin (dropped when the
/// `Reading` ends, after the read) keeps the chunk from being recycled meanwhile (checked
/// by loom). A reader whose writer stalls keeps one chunk, the one it is writing.
#[derive(Debug, Default)]
pub(crate) struct Lease {
    state: Mutex<LeaseState>,
}

impl Lease {
    /// An empty lease.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Hands the lease a pin the caller holds on `inc`. Returns `false`, and drops the
    /// caller's pin, if the lease holds one on that chunk already.
    pub(crate) fn adopt(&self, inc: Incarnation) -> bool {
        let mut st = lock(&self.state);
        if st.held.insert(inc) {
            true
        } else {
            inc.chunk.get().unpin();
            false
        }
    }

    /// Reader: if the lease still holds its pin on `inc`, the chunk to read; the
    /// collector leaves it alone until the [`Reading`] ends, which drops the pin. If the
    /// collector took the pin back, what it knew of the chunk (nothing for a chunk the
    /// lease never held); the chunk may be another's by now, and its bytes must not be read.
    pub(crate) fn read(&self, inc: Incarnation) -> Result<Reading<'_>, Revoked> {
        let mut st = lock(&self.state);
        if !st.held.contains(&inc) {
            return Err(st.revoked.remove(&inc).unwrap_or_default());
        }
        st.reading.insert(inc);
        Ok(Reading { lease: self, inc })
    }

    /// Reader: drops the lease's pin on `inc` unread, if it holds one (and it is not being
    /// read).
    pub(crate) fn release(&self, inc: Incarnation) {
        let mut st = lock(&self.state);
        if !st.reading.contains(&inc) && st.held.remove(&inc) {
            inc.chunk.get().unpin();
        }
        st.revoked.remove(&inc);
    }

    /// Collector: takes back the lease's pin on `inc`, remembering `what` it held for the
    /// reader. Returns whether it did: `false` if the lease holds no pin on it (or the
    /// reader already read it), or the reader is reading it now.
    pub(crate) fn revoke(&self, inc: Incarnation, what: Revoked) -> bool {
        let mut st = lock(&self.state);
        if st.reading.contains(&inc) || !st.held.remove(&inc) {
            return false;
        }
        inc.chunk.get().unpin();
        st.revoked.insert(inc, what);
        true
    }

    /// Drops every pin the lease still holds but the ones being read (the reader is done
    /// or gave up); returns how many.
    pub(crate) fn release_all(&self) -> usize {
        let mut st = lock(&self.state);
        let st = &mut *st;
        let before = st.held.len();
        st.held.retain(|inc| {
            let keep = st.reading.contains(inc);
            if !keep {
                inc.chunk.get().unpin();
            }
            keep
        });
        st.revoked.clear();
        before - st.held.len()
    }

    /// Pins the lease holds.
    #[cfg(loom)]
    pub(crate) fn held(&self) -> usize {
        lock(&self.state).held.len()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// A chunk a reader reads through its [`Lease`]: pinned, and left alone by the collector,
/// until this ends; then the pin goes.
#[derive(Debug)]
pub(crate) struct Reading<'a> {
    lease: &'a Lease,
    inc: Incarnation,
}

impl Reading<'_> {
    /// The chunk.
    pub(crate) fn chunk(&self) -> &Chunk {
        self.inc.chunk.get()
    }

    /// Copies the chunk's committed bytes into `out` (cleared first); returns their length.
    #[cfg(loom)]
    pub(crate) fn copy_committed(&self, out: &mut Vec<u8>) -> usize {
        self.chunk().copy_committed(out)
    }

    /// The chunk's committed bytes, borrowed for as long as the reading lasts.
    #[cfg(not(loom))]
    pub(crate) fn bytes(&self) -> &[u8] {
        let chunk = self.chunk();
        let len = chunk.committed().min(CHUNK_BYTES);
        // SAFETY: the lease holds a pin on this use of the chunk and no one takes it back
        // while the chunk is being read (`Lease::revoke` skips it), so the chunk is not
        // recycled while the borrow lives; the bytes below the committed length were
        // published by the `Acquire` in `committed()` and are never rewritten while the
        // chunk is pinned (module docs).
        unsafe { std::slice::from_raw_parts(chunk.base_ptr() as *const u8, len) }
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.lease.state);
        st.reading.remove(&self.inc);
        // After the reads (they happen before this call): the chunk may be recycled from here.
        if st.held.remove(&self.inc) {
            self.inc.chunk.get().unpin();
        }
    }
}

/// A thread's published current chunk.
#[derive(Debug)]
pub(crate) struct Slot {
    current: AtomicPtr<Chunk>,
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    /// An empty slot.
    pub(crate) fn new() -> Self {
        Slot {
            current: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Writer: installs `next` (or nothing) as current and returns the previous chunk.
    pub(crate) fn install(&self, next: Option<ChunkPtr>) -> Option<ChunkPtr> {
        let p = next.map_or(std::ptr::null_mut(), |c| c.0 as *mut Chunk);
        let prev = self.current.swap(p, Ordering::AcqRel);
        (!prev.is_null()).then_some(ChunkPtr(prev))
    }

    /// Reader: the current chunk, if any, without pinning it (`Acquire`). Its bytes may be
    /// recycled at any time; its atomics stay readable (chunks are never freed).
    pub(crate) fn peek(&self) -> Option<ChunkPtr> {
        let p = self.current.load(Ordering::Acquire);
        (!p.is_null()).then_some(ChunkPtr(p))
    }

    /// Reader: pins the current chunk if there is one and it stays current while pinning.
    /// The caller must `unpin` it when done.
    pub(crate) fn pin_current(&self) -> Option<ChunkPtr> {
        let p = self.current.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        let c = ChunkPtr(p);
        c.get().pin();
        match self
            .current
            .compare_exchange(p, p, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Some(c),
            Err(_) => {
                c.get().unpin();
                None
            }
        }
    }
}

/// A thread's hand-off line: its slot (the published current chunk) and its mailbox of
/// sealed chunks, in one cache line (see the module docs). Aligned to 128 bytes so no other
/// data shares its pair of lines.
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct Handoff {
    slot: Slot,
    mail: [AtomicPtr<Chunk>; MAILBOX_SLOTS],
}

impl Default for Handoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Handoff {
    /// An empty slot and mailbox.
    pub(crate) fn new() -> Self {
        Handoff {
            slot: Slot::new(),
            mail: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }

    /// The thread's slot.
    pub(crate) fn slot(&self) -> &Slot {
        &self.slot
    }

    /// Writer: asks the CPU to bring the hand-off line into its cache for writing, some
    /// events before the seal that will write it (a hint; it changes no value).
    #[inline]
    pub(crate) fn prefetch_for_seal(&self) {
        prefetch_write(std::ptr::from_ref(self).cast());
    }

    /// Writer: seals `old`, its current chunk. Posts it to the mailbox (or, if the mailbox
    /// is full, pushes it to `overflow`), then installs `next` in the slot, then marks `old`
    /// not current. `posted` is the writer's own count of chunks it posted (it picks the
    /// entry). Returns the chunk back if the overflow queue was full too (the caller keeps
    /// it out of circulation and counts its events lost).
    pub(crate) fn seal(
        &self,
        posted: &mut usize,
        overflow: &Queue<ChunkPtr>,
        old: ChunkPtr,
        next: Option<ChunkPtr>,
    ) -> Result<(), ChunkPtr> {
        let pushed = if self.post(posted, old) {
            Ok(())
        } else {
            overflow.push(old)
        };
        self.slot.install(next);
        old.get().clear_current();
        pushed
    }

    /// Writer: puts `c` into the mailbox's next entry in ring order; `false` if that entry
    /// is still full (the drain has not caught up: the mailbox is full).
    fn post(&self, posted: &mut usize, c: ChunkPtr) -> bool {
        let e = &self.mail[*posted % MAILBOX_SLOTS];
        // `Acquire`: the drain's read of the entry happens before we refill it.
        if !e.load(Ordering::Acquire).is_null() {
            return false;
        }
        // Only the owner fills an entry and a drain only empties a full one, so nobody
        // else writes it meanwhile.
        e.store(c.0 as *mut Chunk, Ordering::Release);
        *posted = posted.wrapping_add(1);
        true
    }

    /// Drainer (under the core lock, so one at a time): moves the posted chunks to `out`,
    /// in ring order from `taken` (the drainer's count of chunks it took from this mailbox),
    /// stopping at the first empty entry. So a chunk is taken only with every chunk its
    /// thread posted before it.
    pub(crate) fn take_sealed(&self, taken: &mut usize, out: &mut Vec<ChunkPtr>) {
        for _ in 0..MAILBOX_SLOTS {
            let e = &self.mail[*taken % MAILBOX_SLOTS];
            let p = e.load(Ordering::Acquire);
            if p.is_null() {
                return;
            }
            // The owner never writes a full entry, so this empties the one just read.
            e.store(std::ptr::null_mut(), Ordering::Release);
            out.push(ChunkPtr(p));
            *taken = taken.wrapping_add(1);
        }
    }
}

/// Drains every sealed chunk into `out` (cleared first): the overflow queue (bounded by
/// its length when we start), then each thread's mailbox (with the drainer's count of
/// chunks taken from it), sorted oldest-first by base timestamp, then thread and
/// sequence (see the module docs for why in that order). The caller holds the core lock,
/// which makes it the only drainer.
pub(crate) fn collect_sealed<'a>(
    handoffs: impl IntoIterator<Item = (&'a Handoff, &'a mut usize)>,
    overflow: &Queue<ChunkPtr>,
    out: &mut Vec<ChunkPtr>,
) {
    out.clear();
    for _ in 0..overflow.len() {
        let Some(c) = overflow.pop() else { break };
        out.push(c);
    }
    for (h, taken) in handoffs {
        h.take_sealed(taken, out);
    }
    out.sort_by_cached_key(|c| {
        let m = c.get().meta();
        (m.base_ts, m.thread, m.seq)
    });
}

/// Room a writer keeps past its limit: every event but a sized one (a log with an inline
/// message, a stack) fits in it, so a writer that is within its limit writes such an event
/// without another check.
#[cfg(not(loom))]
pub(crate) const WRITE_RESERVE: usize = fdr_format::wire::MAX_FIXED_EVENT_LEN;
/// Room a writer keeps past its limit (small under loom, as chunks are).
#[cfg(loom)]
pub(crate) const WRITE_RESERVE: usize = 4;

/// Bytes of the private buffer a writer fills while it has no chunk (its events are
/// discarded and counted).
#[cfg(not(loom))]
pub(crate) const SCRATCH_BYTES: usize = 4096;
/// Bytes of a writer's private buffer (a chunk's size under loom).
#[cfg(loom)]
pub(crate) const SCRATCH_BYTES: usize = CHUNK_BYTES;

const _: () = assert!(CHUNK_BYTES >= WRITE_RESERVE && SCRATCH_BYTES >= WRITE_RESERVE);

/// A thread's writer: the only code that writes a chunk's bytes and publishes its committed
/// word. The hot path (`hot.rs`) and the cold paths (`local.rs`) write through it, and so do
/// the loom models.
///
/// It writes into its current chunk, which its thread owns from [`ChunkWriter::begin_chunk`]
/// (the chunk came from the pool or was just allocated, so no other writer has it and no
/// reader reads past its committed word) until it begins another; or, while it has none,
/// into a private scratch buffer whose events are discarded. Each write lands at or past the
/// committed length (the cursor never moves back while a chunk is current) and inside the
/// buffer: a [`Room`], the only way to write a fixed-size event, exists only while the cursor
/// is within the limit, and the limit stays [`WRITE_RESERVE`] bytes short of the buffer's
/// end; a sized event is written into the slice that is left. Then one `Release` store
/// publishes the new word.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ChunkWriter {
    // What the hot path reads, first.
    /// Bytes written into the buffer (low 32 bits), events (next 17) and the thread's scope
    /// depth (top 15): the word published as the chunk's committed word.
    word: u64,
    /// `limit + 1` while [`ChunkWriter::fast_room`] may be used, else 0.
    fast_end: usize,
    /// The cursor's highest position at which a [`Room`] is given out: at most
    /// `cap - WRITE_RESERVE`.
    limit: usize,
    /// The buffer's first cell: the chunk's, or the scratch buffer's.
    base: *const ByteCell,
    /// Where the word is published: the chunk's committed word, or `dummy`.
    committed: *const AtomicU64,
    /// The buffer's length.
    cap: usize,
    // Cold.
    chunk: Option<ChunkPtr>,
    scratch: Box<[ByteCell]>,
    dummy: Box<AtomicU64>,
}

// SAFETY: the raw pointers point into a chunk (never freed) or into the writer's own boxes;
// a writer moved to another thread writes there as before, and its chunk is still owned by
// it alone.
unsafe impl Send for ChunkWriter {}

impl ChunkWriter {
    /// A writer with no chunk: it writes into its scratch buffer (at depth 0).
    pub(crate) fn new() -> Self {
        let scratch: Box<[ByteCell]> = (0..SCRATCH_BYTES).map(|_| ByteCell::default()).collect();
        let dummy = Box::new(AtomicU64::new(0));
        let mut w = ChunkWriter {
            word: 0,
            fast_end: 0,
            limit: 0,
            base: scratch.as_ptr(),
            committed: &*dummy,
            cap: SCRATCH_BYTES,
            chunk: None,
            scratch,
            dummy,
        };
        w.set_limit(0, false);
        w
    }

    /// Bytes written into the buffer.
    #[inline(always)]
    pub(crate) fn pos(&self) -> usize {
        committed_len(self.word)
    }

    /// Events written into the buffer.
    #[inline(always)]
    pub(crate) fn events(&self) -> u64 {
        committed_events(self.word)
    }

    /// The chunk being written, if any (`None`: discarding into scratch).
    pub(crate) fn chunk(&self) -> Option<ChunkPtr> {
        self.chunk
    }

    /// Places the limit `short_by` bytes before the last position that keeps
    /// [`WRITE_RESERVE`] bytes of room; `fast`: whether [`ChunkWriter::fast_room`] gives
    /// out room at all (it does not while the counter is not the clock).
    pub(crate) fn set_limit(&mut self, short_by: usize, fast: bool) {
        self.limit = self
            .cap
            .saturating_sub(WRITE_RESERVE.saturating_add(short_by));
        self.fast_end = if fast { self.limit + 1 } else { 0 };
    }

    /// Starts writing into `c`: resets it for its owner's `meta`, with an empty word at the
    /// scope depth the writer is at, and marks it current. The caller owns `c` (it took it
    /// from the pool or allocated it: no writer has it, no reader reads it but through a
    /// pin it makes once `c` is installed) and installs it in its slot next, which
    /// publishes the reset. The limit is at the end; the caller sets its own.
    pub(crate) fn begin_chunk(&mut self, c: ChunkPtr, meta: ChunkMeta) {
        let chunk = c.get();
        chunk.reset_for_owner(meta);
        chunk.set_initial_depth(self.word);
        self.word &= COMMITTED_DEPTH_MASK;
        self.base = chunk.data.as_ptr();
        self.committed = &chunk.committed;
        self.cap = CHUNK_BYTES;
        self.chunk = Some(c);
        self.set_limit(0, false);
    }

    /// Stops writing into the chunk (the caller sealed it or will) and writes into the
    /// scratch buffer, from its start, at the same scope depth.
    pub(crate) fn begin_discard(&mut self) {
        self.chunk = None;
        self.word &= COMMITTED_DEPTH_MASK;
        self.base = self.scratch.as_ptr();
        self.committed = &*self.dummy;
        self.cap = SCRATCH_BYTES;
        self.set_limit(0, false);
    }

    /// Empties the scratch buffer (its events were counted as discarded), keeping the scope
    /// depth. Does nothing while writing a chunk: a chunk's written bytes are never
    /// rewritten while it is current.
    pub(crate) fn clear_scratch(&mut self) {
        if self.chunk.is_none() {
            self.word &= COMMITTED_DEPTH_MASK;
        }
    }

    /// Turns the hot path off (every event takes a slow path) until
    /// [`ChunkWriter::resume_fast`] gives back the returned bound. The limit, and so what
    /// the slow paths may write, is unchanged.
    #[inline(always)]
    pub(crate) fn pause_fast(&mut self) -> usize {
        std::mem::replace(&mut self.fast_end, 0)
    }

    /// Gives back the bound [`ChunkWriter::pause_fast`] returned; nothing may have been
    /// written since the pause (a write may have moved the limit).
    #[inline(always)]
    pub(crate) fn resume_fast(&mut self, fast_end: usize) {
        self.fast_end = fast_end;
    }

    /// The hot path's one check: room for an event of up to [`WRITE_RESERVE`] bytes, if the
    /// cursor is within the limit and fast writes are on.
    #[inline(always)]
    pub(crate) fn fast_room(&mut self) -> Option<Room<'_>> {
        (self.pos() < self.fast_end).then_some(Room { w: self })
    }

    /// Room for an event of up to [`WRITE_RESERVE`] bytes, if the cursor is within the
    /// limit (else the caller refills: prepares the seal, or seals and begins another
    /// buffer).
    #[inline(always)]
    pub(crate) fn room(&mut self) -> Option<Room<'_>> {
        (self.pos() <= self.limit).then_some(Room { w: self })
    }

    /// Whether an event of up to `len` bytes fits in what is left of the buffer.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.pos().saturating_add(len) <= self.cap
    }

    /// Writes a sized event: `f` encodes it into the rest of the buffer and returns its
    /// length, or `None` if it does not fit (nothing is published then). `step` as in
    /// [`Room::write`]. Returns whether the event was written.
    pub(crate) fn write_sized(
        &mut self,
        f: impl FnOnce(&mut [u8]) -> Option<usize>,
        step: u64,
    ) -> bool {
        let pos = self.pos().min(self.cap);
        let room = self.cap - pos;
        #[cfg(not(loom))]
        let n = {
            // SAFETY: `[pos, cap)` lies inside the buffer (`base` points at `cap` cells that
            // live as long as the writer or the process), at or past the committed length:
            // no reader reads it and no other writer writes it (type docs), and the cells are
            // `UnsafeCell`s, so writing through a shared pointer is allowed.
            let out = unsafe {
                std::slice::from_raw_parts_mut(UnsafeCell::raw_get(self.base.add(pos).cast()), room)
            };
            f(out)
        };
        #[cfg(loom)]
        let n = {
            let mut tmp = vec![0; room];
            let n = f(&mut tmp);
            if let Some(n) = n.filter(|&n| n <= room) {
                self.put(pos, &tmp[..n]);
            }
            n
        };
        match n {
            Some(n) if n <= room => {
                self.advance(n, step);
                true
            }
            _ => false,
        }
    }

    /// Advances the cursor by `n` bytes and `step` and publishes the new word (`Release`:
    /// the bytes written before it are visible to a reader that `Acquire`s it).
    #[inline(always)]
    fn advance(&mut self, n: usize, step: u64) {
        // Wrapping: a scope's end adds the depth field's two's complement.
        self.word = self.word.wrapping_add(n as u64).wrapping_add(step);
        // SAFETY: `committed` points at the current chunk's committed word (chunks are never
        // freed) or at `dummy`, which this writer owns.
        unsafe { (*self.committed).store(self.word, Ordering::Release) };
    }

    /// Loom: writes `bytes` at `pos` one tracked cell at a time, so loom reports a read
    /// that races them.
    #[cfg(loom)]
    fn put(&mut self, pos: usize, bytes: &[u8]) {
        assert!(pos + bytes.len() <= self.cap);
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: in bounds (asserted), at or past the committed length (type docs).
            unsafe { (*self.base.add(pos + i)).0.with_mut(|p| *p = b) };
        }
    }
}

/// Room for one event of up to [`WRITE_RESERVE`] bytes at a writer's cursor: the proof,
/// checked once, that the cursor is within the limit.
#[derive(Debug)]
pub(crate) struct Room<'w> {
    w: &'w mut ChunkWriter,
}

impl Room<'_> {
    /// Writes an event `f` encodes into `N <= WRITE_RESERVE` bytes and returns the length
    /// of, then publishes it with `step` added to the word (a [`word_step`]: the events and
    /// the scope depth change it makes). A length past `N` is taken as `N`.
    #[inline(always)]
    pub(crate) fn write<const N: usize>(self, f: impl FnOnce(&mut [u8; N]) -> usize, step: u64) {
        const { assert!(N <= WRITE_RESERVE, "room past the limit is WRITE_RESERVE") };
        let pos = self.w.pos();
        #[cfg(not(loom))]
        let n = {
            // SAFETY: `pos <= limit <= cap - WRITE_RESERVE` (a `Room` exists only then) and
            // `N <= WRITE_RESERVE`, so `[pos, pos + N)` lies inside the buffer, at or past
            // the committed length (see `ChunkWriter::write_sized`).
            let out = unsafe {
                &mut *UnsafeCell::raw_get(self.w.base.add(pos).cast::<UnsafeCell<[u8; N]>>())
            };
            f(out)
        };
        #[cfg(loom)]
        let n = {
            let mut tmp = [0; N];
            let n = f(&mut tmp).min(N);
            self.w.put(pos, &tmp[..n]);
            n
        };
        self.w.advance(n.min(N), step);
    }

    /// Writes a 2-byte event (the hot path's region begin or end) and publishes it with
    /// `step` added to the word.
    #[inline(always)]
    pub(crate) fn write_pair(self, bytes: [u8; 2], step: u64) {
        self.write(
            |out: &mut [u8; 2]| {
                *out = bytes;
                2
            },
            step,
        );
    }

    /// Writes a 3-byte event (the hot path's region begin or end with a two-byte name
    /// operand): the low three bytes of `word`, little-endian, as one 4-byte store whose
    /// fourth byte lands in the room past the event (`WRITE_RESERVE >= 4`) and is
    /// overwritten by the next event or never read (readers stop at the committed length).
    #[inline(always)]
    pub(crate) fn write_triple(self, word: u32, step: u64) {
        self.write(
            |out: &mut [u8; 4]| {
                *out = word.to_le_bytes();
                3
            },
            step,
        );
    }
}

/// A hint to bring the cache line at `p` into this CPU's cache for writing (`prefetchw`
/// on x86_64; nothing elsewhere).
#[inline(always)]
fn prefetch_write(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    if has_prefetchw() {
        // SAFETY: the CPU has `prefetchw` (checked above). It only hints the cache: it never
        // faults, whatever the address, and changes no memory or register the program sees.
        unsafe {
            std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = p;
}

/// Whether the CPU has `prefetchw` (CPUID 8000_0001h, ECX bit 8), asked once.
#[cfg(all(target_arch = "x86_64", not(loom)))]
fn has_prefetchw() -> bool {
    static HAS: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        let max_ext = std::arch::x86_64::__cpuid(0x8000_0000).eax;
        max_ext >= 0x8000_0001 && std::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0
    });
    *HAS
}

/// Writer: prefetches a chunk's two header lines for writing (before it is handed out or
/// sealed).
#[inline]
pub(crate) fn prefetch_chunk_header(c: ChunkPtr) {
    let p = c.0.cast::<u8>();
    prefetch_write(p);
    prefetch_write(p.wrapping_add(64));
}
