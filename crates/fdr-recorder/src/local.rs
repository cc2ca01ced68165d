//! A thread's recorder state and the cold half of recording: registration, sealing a full
//! chunk and starting the next, events too large for the hot path, the thread's exit.
//! The hot half (`region!` to the bytes) is `hot.rs`; every byte is written through the
//! thread's [`ChunkWriter`].
//!
//! Each thread that records owns a `Local` (boxed, reached through a const thread-local
//! pointer, `hot::LOCAL`). An event is encoded straight into the thread's current chunk.
//! No lock, allocation, syscall or shared write per event. Full chunks are sealed on a cold
//! path, which allocates only during warm-up (until the chunk budget is first reached) and
//! makes a syscall only when the free pool runs low. A little before the chunk fills, the
//! writer's limit stops it twice more, [`PREPARE_STEP_BYTES`] apart: at the first stop the
//! thread takes its next chunk from the pool and prefetches the lines the seal will write;
//! at the second it checks whether the pool runs low. Each of these slow events, and the
//! seal itself, then touches at most about one line another core may have written (the
//! seal: its hand-off line, see `chunk`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use fdr_format::encode;
use fdr_format::{EventKind, LossReason, StrId, TaskId};

use crate::chunk::{
    CHUNK_BYTES, ChunkMeta, ChunkPtr, ChunkWriter, SCRATCH_BYTES, SealInfo, prefetch_chunk_header,
    word_step,
};
use crate::clock::now_ticks;
use crate::hot::LOCAL;
use crate::intern::{NameCache, SiteCache};
use crate::state::{ThreadShared, shared};
use crate::tls::{Absent, ThreadBox};

pub(crate) use crate::hot::{peek_local, with_local};

/// The distance between the stops that prepare a seal (see the module docs): the first is
/// two steps before the chunk's limit, a few hundred events (microseconds) ahead of the
/// seal, while a drain touches the hand-off line once per collector round (milliseconds).
const PREPARE_STEP_BYTES: usize = 512;

/// Aligned to 128 bytes (a pair of cache lines) so its hot fields, written per event, never
/// share a line with another thread's data.
#[repr(align(128))]
pub(crate) struct Local {
    // Hot fields first.
    /// The thread's writer: its current chunk (or scratch buffer) and cursor.
    pub(crate) w: ChunkWriter,
    /// Ticks of the last event.
    pub(crate) last_ts: u64,
    pub(crate) names: NameCache,
    pub(crate) sites: SiteCache,
    /// A poll start not written yet (shed detail, see `cost`): its task, its ticks and the
    /// writer's fast-path bound to restore. While it is set the hot path is off, so the
    /// thread's next event, whatever it is, takes a slow path that writes the start first.
    deferred: Option<Deferred>,
    // Cold.
    /// The next chunk, taken from the pool when the seal was prepared.
    next: Option<ChunkPtr>,
    /// Stops left before the seal: the writer's limit stops short of the chunk's end by
    /// this many [`PREPARE_STEP_BYTES`].
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
}

impl Local {
    /// The thread's id in the trace.
    #[cfg(all(target_os = "linux", feature = "tokio"))]
    pub(crate) fn thread_id(&self) -> u32 {
        self.shared.id
    }
}

thread_local! {
    static EXIT: ExitGuard = const { ExitGuard };
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some(mut l) = LOCAL.with(ThreadBox::kill) {
            l.exit();
        }
    }
}

/// Registers this thread on its first event; `None` if it cannot record now: its storage is
/// being torn down (counted in `after_thread_exit`), or the recorder is already at work on
/// this thread (a global allocator or a panic hook that records while the recorder
/// allocates or panics: counted in `reentrant`).
#[cold]
#[inline(never)]
pub(crate) fn register(cell: &ThreadBox<Local>) -> Option<()> {
    let sh = shared();
    match cell.state() {
        Ok(()) => return Some(()),
        Err(Absent::Dead) => {
            sh.stats.after_thread_exit.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Err(Absent::Busy) => {
            sh.stats.reentrant.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Err(Absent::Unset) => {}
    }
    // Register the exit guard first: if storage is already being torn down, give up.
    EXIT.try_with(|_| ()).ok()?;
    let name = std::thread::current().name().unwrap_or("").to_owned();
    let tid = os_tid();
    let ts = sh.register_thread(name, tid);
    crate::os::on_thread_start(&ts, tid);
    let now = now_ticks();
    let mut l = Box::new(Local {
        w: ChunkWriter::new(),
        last_ts: now,
        names: NameCache::new(),
        sites: SiteCache::new(),
        deferred: None,
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
    });
    // The thread's own first chunk may be allocated here (its budget share just grew).
    let first = sh.pool.pop().or_else(|| sh.try_alloc());
    match first {
        Some(c) => {
            l.w.begin_chunk(c, l.meta(now));
            l.seq += 1;
            l.shared.handoff.slot().install(Some(c));
            l.began_chunk(now);
        }
        None => l.began_discard(),
    }
    if cell.set(l).is_err() {
        return None;
    }
    cell.with(|l| l.fixed(&EventKind::ThreadStart)).ok()
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
    /// Ticks of this thread's last recorded event (so metrics reuse an event's clock read).
    #[inline(always)]
    pub(crate) fn last_ts(&self) -> u64 {
        self.last_ts
    }

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

    /// Sets the writer's limit: short of the buffer's end by a step per stop left, and the
    /// hot path on only while the counter is the clock.
    fn set_limit(&mut self) {
        let short_by = usize::from(self.stops) * PREPARE_STEP_BYTES;
        self.w.set_limit(short_by, crate::clock::counter_is_clock());
    }

    /// Reads the clock and returns the delta since the previous event.
    #[inline(always)]
    fn tick(&mut self) -> u64 {
        let now = now_ticks();
        let delta = now.saturating_sub(self.last_ts);
        self.last_ts += delta;
        delta
    }

    /// Records an event a fixed-array writer writes (a region begin/end, a static log, a
    /// task event) into at most `N` bytes (up to `WRITE_RESERVE`); `depth` as in
    /// [`Local::try_small`].
    #[inline(always)]
    pub(crate) fn small<const N: usize>(
        &mut self,
        f: impl FnOnce(&mut [u8; N], u64) -> usize,
        depth: i64,
    ) {
        if self.deferred.is_some() {
            self.write_deferred();
        }
        if self.w.room().is_none() {
            self.refill();
        }
        let delta = self.tick();
        if let Some(room) = self.w.room() {
            room.write(|out| f(out, delta), word_step(1, depth));
        }
    }

    /// Records any event but a log with an inline message or a stack.
    #[inline]
    pub(crate) fn fixed(&mut self, kind: &EventKind<'_>) {
        if self.deferred.is_some() {
            self.write_deferred();
        }
        if self.w.room().is_none() {
            self.refill();
        }
        let delta = self.tick();
        // Loss records are not events the program recorded.
        let events = u64::from(!matches!(kind, EventKind::Loss { .. }));
        if let Some(room) = self.w.room() {
            room.write(
                |out| encode::event_fixed(out, delta, kind),
                word_step(events, scope_depth_change(kind)),
            );
        }
    }

    /// Records an event too large for [`Local::fixed`] (a stack sample), encoded into at
    /// most `max_len` bytes; counted as lost (`Oversize`) if it does not fit a chunk.
    pub(crate) fn large(&mut self, kind: &EventKind<'_>, max_len: usize) {
        if self.deferred.is_some() {
            self.write_deferred();
        }
        if !self.make_room(max_len) {
            shared()
                .stats
                .lose(LossReason::Oversize, 1, max_len as u64, 0);
            return;
        }
        let delta = self.tick();
        let step = word_step(1, scope_depth_change(kind));
        if !self
            .w
            .write_sized(|out| encode::encode_event(out, delta, kind), step)
        {
            shared()
                .stats
                .lose(LossReason::Oversize, 1, max_len as u64, 0);
        }
    }

    /// Records a log whose message is carried inline.
    pub(crate) fn inline_log(&mut self, category: StrId, message: &[u8]) {
        if self.deferred.is_some() {
            self.write_deferred();
        }
        let need = encode::log_inline_max_len(message.len());
        if !self.make_room(need) {
            shared()
                .stats
                .lose(LossReason::Oversize, 1, message.len() as u64, 0);
            return;
        }
        let delta = self.tick();
        self.w.write_sized(
            |out| encode::log_inline(out, delta, category, message),
            word_step(1, 0),
        );
    }

    /// Defers the start of task `task`'s poll at `ticks` (see [`Deferred`]); `false` if a
    /// start is deferred already (the caller writes it, then defers this one).
    #[inline(always)]
    pub(crate) fn defer_poll_start(&mut self, task: TaskId, ticks: u64) -> bool {
        if self.deferred.is_some() {
            return false;
        }
        let fast_end = self.w.pause_fast();
        self.deferred = Some(Deferred {
            task,
            ticks,
            fast_end,
        });
        true
    }

    /// Forgets the deferred start of task `task`'s poll at `ticks`, if it is still
    /// deferred (nothing was recorded on the thread since), and turns the writer's hot path
    /// back on.
    #[inline(always)]
    pub(crate) fn forget_deferred(&mut self, task: TaskId, ticks: u64) {
        if let Some(d) = self.deferred
            && d.task == task
            && d.ticks == ticks
        {
            self.deferred = None;
            self.w.resume_fast(d.fast_end);
        }
    }

    /// Whether the start of task `task`'s poll at `ticks` is still deferred.
    #[inline(always)]
    pub(crate) fn is_deferred(&self, task: TaskId, ticks: u64) -> bool {
        matches!(self.deferred, Some(d) if d.task == task && d.ticks == ticks)
    }

    /// Writes the deferred poll start, at its own time, before the event being recorded:
    /// the thread's events stay in the order and at the times an unshed trace has them.
    /// (Should the chunk fill just then, the start lands in the next chunk at its first
    /// instant, which no earlier event can precede.)
    #[cold]
    #[inline(never)]
    pub(crate) fn write_deferred(&mut self) {
        let Some(d) = self.deferred.take() else {
            return;
        };
        self.w.resume_fast(d.fast_end);
        if self.w.room().is_none() {
            self.refill();
        }
        let delta = d.ticks.saturating_sub(self.last_ts);
        self.last_ts += delta;
        if let Some(room) = self.w.room() {
            room.write(
                |out| encode::poll_start(out, delta, d.task),
                word_step(1, 1),
            );
        }
    }

    /// Makes room for a sized event of up to `len` bytes, sealing the chunk if it lacks
    /// it; `false` if no buffer can hold it.
    fn make_room(&mut self, len: usize) -> bool {
        if len > CHUNK_BYTES.min(SCRATCH_BYTES) {
            return false;
        }
        if !self.w.fits(len) {
            self.seal_and_refill();
        }
        self.w.fits(len)
    }

    /// The buffer reached its limit: takes the next step preparing the seal if one is left
    /// (and returns if the event still fits), else seals the current chunk and starts the
    /// next.
    #[cold]
    #[inline(never)]
    fn refill(&mut self) {
        if self.stops > 0 {
            self.prepare_step();
            if self.w.room().is_some() {
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
        self.set_limit();
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
        let old = self.w.chunk();
        let mut seal = SealInfo::default();
        if let Some(c) = old {
            seal = SealInfo {
                events: self.w.events(),
                discards: self.reported,
                last_ts: self.last_ts,
                last: false,
            };
            c.get().set_seal_info(seal);
            self.events_before += self.w.events();
            self.bytes_before += self.w.pos() as u64;
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
        // The writer moves on first (the new chunk's word carries the thread's scope depth
        // from the start); the seal then installs the new chunk, which publishes its reset.
        match next {
            Some(n) => {
                self.w.begin_chunk(n, self.meta(now));
                self.seq += 1;
            }
            None => self.w.begin_discard(),
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
            Some(_) => self.began_chunk(now),
            None => self.began_discard(),
        }
    }

    /// The writer began a chunk: the seal is two stops ahead; a loss record reports what
    /// was discarded since the last chunk.
    fn began_chunk(&mut self, now: u64) {
        self.stops = 2;
        self.set_limit();
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

    /// The writer began discarding into its scratch buffer.
    fn began_discard(&mut self) {
        self.stops = 0;
        self.set_limit();
    }

    fn discard_scratch(&mut self) {
        let (events, bytes) = (self.w.events(), self.w.pos() as u64);
        if events > 0 {
            shared()
                .stats
                .lose(LossReason::PoolExhausted, events, bytes, 0);
        }
        self.pending_discards += events;
        self.pending_discard_bytes += bytes;
        self.w.clear_scratch();
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
        match self.w.chunk() {
            Some(c) => {
                let seal = SealInfo {
                    events: self.w.events(),
                    discards: self.reported,
                    last_ts: self.last_ts,
                    last: true,
                };
                c.get().set_seal_info(seal);
                self.w.begin_discard();
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

/// A poll start the thread has not written yet: while the cost budget sheds polls, a poll's
/// start is kept here and written only if something is recorded inside the poll (first,
/// at its own time) or the poll turns out long (at its end); a short poll with nothing in
/// it leaves no event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deferred {
    task: TaskId,
    ticks: u64,
    /// The writer's fast-path bound when the start was deferred.
    fast_end: usize,
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
