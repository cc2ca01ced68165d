//! The recorder's shared state: the hand-off queues, the chunk pool and budget, the thread
//! registry, the flight ring, and the collector thread that moves chunks between them.
//!
//! Writers touch only their own hand-off line and the lock-free queues (and the registry
//! lock once, when a thread registers or exits). The collector and snapshot writers take
//! the core lock, under which every drain of the mailboxes and the overflow queue runs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use fdr_format::{LossReason, ProcessInfo};

use crate::capture::CaptureCtl;
use crate::chunk::{
    CHUNK_BYTES, ChunkMeta, ChunkPtr, Handoff, Incarnation, Lease, Revoked, collect_sealed,
};
use crate::clock;
use crate::stats::StatCells;
use crate::sync::{Queue, lock};

/// Capacity of the sealed-chunk overflow queue (a seal goes there only when its thread's
/// mailbox is full): more than the chunks that can exist under any budget fdr accepts, so
/// a push only fails in a broken configuration (and is counted).
pub(crate) const SEALED_QUEUE_CAP: usize = 1 << 16;
/// Capacity of the free-chunk pool queue.
pub(crate) const POOL_QUEUE_CAP: usize = 1 << 16;
/// Chunk budget when no flight recorder is configured (capture only): 4 MiB.
pub(crate) const CAPTURE_ONLY_CHUNKS: usize = 64;
/// How long the collector sleeps between rounds while writers drain the pool fast.
pub(crate) const COLLECT_INTERVAL: Duration = Duration::from_millis(1);
/// Longest sleep between rounds: while the pool stays above half its target between
/// rounds, the collector doubles its sleep up to this; it goes back to
/// [`COLLECT_INTERVAL`] as soon as writers took more than half (or a writer wakes it
/// because the pool ran low). Fewer rounds, fewer preemptions of writers on a small
/// machine; the pool is sized to cover the longest sleep.
pub(crate) const COLLECT_INTERVAL_IDLE: Duration = Duration::from_millis(8);
/// Longest sleep while writers took less than a quarter of the pool's target between rounds
/// (a service recording tens of chunks a second): each round costs the collector a wake-up
/// (about ten microseconds of CPU on a busy VM) and such writers need one every few
/// seconds. A writer that starts drawing fast still wakes the collector when the pool runs
/// low; the next round then sleeps [`COLLECT_INTERVAL`] again.
pub(crate) const COLLECT_INTERVAL_QUIET: Duration = Duration::from_millis(32);

/// The smallest flight `max_bytes` accepted: one chunk.
pub const MIN_FLIGHT_BYTES: usize = CHUNK_BYTES;
/// The largest flight `max_bytes` accepted: 2 GiB (32,768 chunks), so that every chunk the
/// budget allows fits the hand-off and pool queues with room to spare.
pub const MAX_FLIGHT_BYTES: usize = (POOL_QUEUE_CAP / 2) * CHUNK_BYTES;

/// Flight-recorder configuration (Go's `FlightRecorderConfig`, made sharp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlightConfig {
    /// Keep at least this much history when `max_bytes` allows; chunks older than this
    /// are dropped from the window.
    pub min_age: Duration,
    /// Hard cap on the bytes the ring and its free pool keep, in whole chunks of
    /// [`CHUNK_BYTES`] (rounded down), from [`MIN_FLIGHT_BYTES`] (one chunk) to
    /// [`MAX_FLIGHT_BYTES`]; anything else is refused by [`crate::start`] with
    /// [`crate::Error::Config`]. A small ring works but holds little: a quarter of it at
    /// most (at least two chunks) is kept free for the writers, the rest is the window.
    pub max_bytes: usize,
}

impl Default for FlightConfig {
    fn default() -> Self {
        FlightConfig {
            min_age: Duration::from_secs(10),
            max_bytes: 64 << 20,
        }
    }
}

impl FlightConfig {
    /// The chunks `max_bytes` pays for (whole ones: the cap is hard).
    pub(crate) fn chunks(&self) -> usize {
        self.max_bytes / CHUNK_BYTES
    }

    /// Checks the configuration; the error names the field, the value and the bounds.
    pub(crate) fn check(&self) -> Result<(), crate::error::ConfigError> {
        if !(MIN_FLIGHT_BYTES..=MAX_FLIGHT_BYTES).contains(&self.max_bytes) {
            return Err(crate::error::ConfigError::FlightMaxBytes {
                max_bytes: self.max_bytes,
                min: MIN_FLIGHT_BYTES,
                max: MAX_FLIGHT_BYTES,
                chunk_bytes: CHUNK_BYTES,
            });
        }
        Ok(())
    }
}

/// A registered thread, as others see it.
#[derive(Debug)]
pub(crate) struct ThreadShared {
    pub(crate) id: u32,
    /// Its slot and mailbox of sealed chunks (one cache line; see `chunk`).
    pub(crate) handoff: Handoff,
    /// Discarded events never reported in a chunk (the thread exited without a free chunk).
    pub(crate) exit_discards: AtomicU64,
    pub(crate) exit_discard_bytes: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct ThreadEntry {
    pub(crate) shared: Arc<ThreadShared>,
    pub(crate) name: String,
    pub(crate) os_tid: u64,
    /// Chunks of this thread in the ring.
    in_ring: usize,
    /// Its last chunk was collected (or it exited without one).
    finished: bool,
    /// Events, bytes and discards of its chunks that left the ring.
    evicted: [u64; 3],
    /// Chunks the drain took from its mailbox (picks the next entry to take).
    mail_taken: usize,
}

/// Losses of threads whose every chunk left the ring and that are gone from the registry.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Gone {
    pub(crate) events: u64,
    pub(crate) bytes: u64,
    pub(crate) discards: u64,
}

/// Whose pins a lease holds, for counting what the collector takes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    /// A flight-recorder snapshot: a chunk taken back had left the window (aged out).
    Snapshot,
    /// A capture: a chunk taken back is lost to it (it fell behind).
    Capture,
}

/// A registered lease: a reader's pins the collector may take back.
#[derive(Debug)]
pub(crate) struct Leased {
    reader: Reader,
    lease: Arc<Lease>,
}

/// State under the core lock.
#[derive(Debug, Default)]
pub(crate) struct Core {
    pub(crate) ring: VecDeque<ChunkPtr>,
    ring_bytes: usize,
    pub(crate) flight: Option<FlightConfig>,
    pub(crate) threads: BTreeMap<u32, ThreadEntry>,
    retired: Vec<ChunkPtr>,
    /// The drain's batch (kept to reuse its allocation).
    batch: Vec<ChunkPtr>,
    pub(crate) gone: Gone,
    pub(crate) capture: Option<CaptureCtl>,
    /// Readers' leases (snapshots and the capture in progress).
    leases: Vec<Leased>,
}

/// Everything shared; one per process.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) sealed: Queue<ChunkPtr>,
    pub(crate) pool: Queue<ChunkPtr>,
    pub(crate) core: Mutex<Core>,
    pub(crate) stats: StatCells,
    pub(crate) allocated: AtomicUsize,
    pub(crate) live_threads: AtomicUsize,
    pub(crate) max_chunks: AtomicUsize,
    pub(crate) next_thread: AtomicU32,
    /// Snapshots being written through `write_to` and `write_incident_to`.
    pub(crate) snapshots_running: AtomicUsize,
    pub(crate) incident_snapshots_running: AtomicUsize,
    /// A writer asked the collector for a round it has not started yet.
    pub(crate) wake_pending: AtomicBool,
    pub(crate) collector: OnceLock<Thread>,
    pub(crate) process: Mutex<ProcessInfo>,
}

pub(crate) static SHARED: LazyLock<Shared> = LazyLock::new(|| Shared {
    sealed: Queue::new(SEALED_QUEUE_CAP),
    pool: Queue::new(POOL_QUEUE_CAP),
    core: Mutex::new(Core::default()),
    stats: StatCells::default(),
    allocated: AtomicUsize::new(0),
    live_threads: AtomicUsize::new(0),
    max_chunks: AtomicUsize::new(CAPTURE_ONLY_CHUNKS),
    next_thread: AtomicU32::new(1),
    snapshots_running: AtomicUsize::new(0),
    incident_snapshots_running: AtomicUsize::new(0),
    wake_pending: AtomicBool::new(false),
    collector: OnceLock::new(),
    process: Mutex::new(ProcessInfo::default()),
});

#[inline]
pub(crate) fn shared() -> &'static Shared {
    &SHARED
}

impl Shared {
    /// Chunks that may exist: the ring's share, one per live thread, and 5% headroom
    /// (at least 2) for chunks in flight between the queues.
    pub(crate) fn chunk_limit(&self) -> usize {
        let max = self.max_chunks.load(Ordering::Relaxed);
        max + self.live_threads.load(Ordering::Relaxed) + (max / 20).max(2)
    }

    /// Allocates a chunk if the budget allows (registration and the collector only).
    pub(crate) fn try_alloc(&self) -> Option<ChunkPtr> {
        let limit = self.chunk_limit();
        self.allocated
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| ChunkPtr::alloc())
    }

    /// Free chunks the collector keeps ready for writers ([`pool_target`]).
    pub(crate) fn pool_target(&self) -> usize {
        pool_target(
            self.max_chunks.load(Ordering::Relaxed),
            self.live_threads.load(Ordering::Relaxed),
        )
    }

    /// Below this many free chunks a writer that just took one wakes the collector (a
    /// syscall if it sleeps); above it, the collector's own polling keeps up.
    pub(crate) fn pool_low_water(&self) -> usize {
        let live = self.live_threads.load(Ordering::Relaxed);
        (live + 1).min(self.pool_target() / 2).max(1)
    }

    /// Wakes the collector.
    pub(crate) fn wake_collector(&self) {
        if let Some(t) = self.collector.get() {
            t.unpark();
        }
    }

    /// A writer that just took a chunk: wakes the collector early (a syscall, if it
    /// sleeps) only when the pool runs low, which its polling normally prevents.
    pub(crate) fn wake_if_pool_low(&self) {
        if self.pool.len() < self.pool_low_water() {
            self.writer_wakes_collector();
        }
    }

    /// A writer found the pool low: wakes the collector, at most once per collector round
    /// (a wake is a syscall if the collector sleeps; a writer short of chunks refills
    /// often, and one wake is enough).
    pub(crate) fn writer_wakes_collector(&self) {
        if !self.wake_pending.swap(true, Ordering::Relaxed) {
            self.wake_collector();
        }
    }

    /// Registers a thread; returns its shared part.
    pub(crate) fn register_thread(&self, name: String, os_tid: u64) -> Arc<ThreadShared> {
        let id = self.next_thread.fetch_add(1, Ordering::Relaxed);
        let ts = Arc::new(ThreadShared {
            id,
            handoff: Handoff::new(),
            exit_discards: AtomicU64::new(0),
            exit_discard_bytes: AtomicU64::new(0),
        });
        self.live_threads.fetch_add(1, Ordering::Relaxed);
        self.stats.threads.fetch_add(1, Ordering::Relaxed);
        lock(&self.core).threads.insert(
            id,
            ThreadEntry {
                shared: ts.clone(),
                name,
                os_tid,
                in_ring: 0,
                finished: false,
                evicted: [0; 3],
                mail_taken: 0,
            },
        );
        ts
    }

    /// A thread exits; `with_last_chunk` says whether its last chunk went to the queue
    /// (the collector then finishes it) or it had none.
    pub(crate) fn thread_exited(&self, id: u32, with_last_chunk: bool) {
        self.live_threads.fetch_sub(1, Ordering::Relaxed);
        if !with_last_chunk {
            let mut core = lock(&self.core);
            // Collect its chunks still queued first, so none arrives after it is forgotten.
            core.drain(self);
            if let Some(e) = core.threads.get_mut(&id) {
                e.finished = true;
            }
            core.forget_if_done(id);
        }
        self.wake_collector();
    }

    /// One collector round (also run by snapshots, under the same lock); returns the
    /// number of sealed chunks it moved.
    pub(crate) fn collect(&self, core: &mut Core) -> usize {
        let moved = core.drain(self);
        core.maintain(self);
        moved
    }
}

impl Core {
    /// Moves sealed chunks (the overflow queue, then every thread's mailbox) into the ring
    /// and the capture, oldest first; returns how many.
    pub(crate) fn drain(&mut self, sh: &Shared) -> usize {
        // Bounded by the queue's contents when we start and the mailboxes' size, so a flood
        // cannot hold the lock.
        let mut batch = std::mem::take(&mut self.batch);
        collect_sealed(
            self.threads
                .values_mut()
                .map(|e| (&e.shared.handoff, &mut e.mail_taken)),
            &sh.sealed,
            &mut batch,
        );
        let moved = batch.len();
        for &c in &batch {
            let chunk = c.get();
            let meta = chunk.meta();
            let seal = chunk.seal_info();
            let len = chunk.committed();
            sh.stats.events.fetch_add(seal.events, Ordering::Relaxed);
            sh.stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
            sh.stats.chunks.fetch_add(1, Ordering::Relaxed);
            if let Some(cap) = &mut self.capture {
                cap.offer(c, meta, &self.threads, sh);
            }
            if self.flight.is_some() {
                chunk.set_in_ring(true);
                self.ring.push_back(c);
                self.ring_bytes += len;
                if let Some(e) = self.threads.get_mut(&meta.thread) {
                    e.in_ring += 1;
                }
            } else {
                self.retired.push(c);
            }
            if seal.last {
                if let Some(e) = self.threads.get_mut(&meta.thread) {
                    e.finished = true;
                }
                self.forget_if_done(meta.thread);
            }
        }
        self.batch = batch;
        sh.stats
            .ring_bytes
            .store(self.ring_bytes as u64, Ordering::Relaxed);
        if moved > 0
            && let Some(cap) = &self.capture
        {
            cap.wake_if_pending();
        }
        moved
    }

    /// Drops a finished thread whose chunks all left the ring, keeping its losses.
    fn forget_if_done(&mut self, id: u32) {
        let done = self
            .threads
            .get(&id)
            .is_some_and(|e| e.finished && e.in_ring == 0);
        if done && let Some(e) = self.threads.remove(&id) {
            self.gone.events += e.evicted[0];
            self.gone.bytes += e.evicted[1];
            self.gone.discards += e.evicted[2] + e.shared.exit_discards.load(Ordering::Relaxed);
            if let Some(cap) = &mut self.capture {
                cap.forget_thread(id);
            }
        }
    }

    /// Drops the ring's oldest chunk, counting its events lost.
    fn evict_front(&mut self, sh: &Shared) -> bool {
        let Some(c) = self.ring.pop_front() else {
            return false;
        };
        let chunk = c.get();
        chunk.set_in_ring(false);
        let meta = chunk.meta();
        let seal = chunk.seal_info();
        let len = chunk.committed();
        self.ring_bytes -= len;
        sh.stats
            .lose(LossReason::RingOverwrite, seal.events, len as u64, 1);
        if let Some(e) = self.threads.get_mut(&meta.thread) {
            e.in_ring -= 1;
            e.evicted[0] += seal.events;
            e.evicted[1] += len as u64;
            e.evicted[2] += seal.discards;
        }
        self.forget_if_done(meta.thread);
        self.retired.push(c);
        true
    }

    /// Registers a reader's lease, so the collector may take its pins back.
    pub(crate) fn add_lease(&mut self, reader: Reader, lease: Arc<Lease>) {
        self.leases.push(Leased { reader, lease });
    }

    /// Forgets a lease (its reader is done).
    pub(crate) fn remove_lease(&mut self, lease: &Arc<Lease>) {
        self.leases.retain(|l| !Arc::ptr_eq(&l.lease, lease));
    }

    /// Takes back the readers' pins on the oldest chunk that left the ring and that only
    /// leased pins keep from the pool, and returns it to the pool. A capture counts the
    /// chunk lost (it fell behind); a snapshot reports it aged out. `false` if there is
    /// none.
    fn revoke_oldest_retired(&mut self, sh: &Shared) -> bool {
        for i in 0..self.retired.len() {
            let c = self.retired[i];
            let chunk = c.get();
            if chunk.in_ring() || !chunk.pinned() {
                continue;
            }
            // Out of the ring and sealed: its owner's facts are final until it is recycled.
            let inc: Incarnation = c.incarnation();
            let seal = chunk.seal_info();
            let what = Revoked {
                events: seal.events,
                bytes: chunk.committed() as u64,
                discards: seal.discards,
                last: seal.last,
            };
            for l in &self.leases {
                if l.lease.revoke(inc, what) {
                    match l.reader {
                        Reader::Capture => {
                            sh.stats
                                .lose(LossReason::CaptureBehind, what.events, what.bytes, 1);
                        }
                        Reader::Snapshot => {
                            sh.stats
                                .snapshot_chunks_released
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            // Still pinned only by a pin not yet handed to a lease (for an instant): skip.
            if chunk.reclaimable() && sh.pool.push(c).is_ok() {
                self.retired.remove(i);
                return true;
            }
        }
        false
    }

    /// Ages the window, keeps the ring under its cap, recycles retired chunks, and keeps
    /// the pool stocked.
    pub(crate) fn maintain(&mut self, sh: &Shared) {
        let max = sh.max_chunks.load(Ordering::Relaxed);
        let target = sh.pool_target();
        let ring_cap = max.saturating_sub(target).max(1);
        if let Some(cfg) = self.flight {
            while self.ring.len() > ring_cap {
                self.evict_front(sh);
            }
            let ticks_per_sec = clock::calibrate().ticks_per_sec;
            let min_age_ticks = (cfg.min_age.as_secs_f64() * ticks_per_sec) as u64;
            let horizon = clock::now_ticks().saturating_sub(min_age_ticks);
            while let Some(c) = self.ring.front() {
                if c.get().seal_info().last_ts >= horizon || self.ring.len() <= 1 {
                    break;
                }
                self.evict_front(sh);
            }
        }
        self.recycle(sh);
        // Stock the pool: allocate within the budget; else take back a chunk that left the
        // ring but a reader (a slow snapshot or capture) still pins, so that readers never
        // cost the window its chunks or the writers theirs; else take the ring's oldest.
        let mut rounds = target;
        while sh.pool.len() < target && rounds > 0 {
            rounds -= 1;
            if let Some(c) = sh.try_alloc() {
                let _ = sh.pool.push(c);
            } else if self.revoke_oldest_retired(sh) {
                continue;
            } else if self.evict_front(sh) {
                self.recycle(sh);
            } else {
                break;
            }
        }
    }

    /// Returns retired chunks that nobody reads any more to the pool.
    fn recycle(&mut self, sh: &Shared) {
        self.retired.retain(|c| {
            if c.get().in_ring() || !c.get().reclaimable() {
                return true;
            }
            // The pool queue is larger than any budget; if it were full, keep the chunk.
            sh.pool.push(*c).is_err()
        });
    }

    /// Empties the ring (a new flight recording starts), counting what it held as lost.
    pub(crate) fn clear_ring(&mut self, sh: &Shared) {
        while self.evict_front(sh) {}
    }

    /// Thread records for a trace's table.
    pub(crate) fn thread_records(&self) -> Vec<(u32, u64, String)> {
        self.threads
            .values()
            .map(|e| (e.shared.id, e.os_tid, e.name.clone()))
            .collect()
    }
}

/// A chunk a reader pinned (its lease holds the pin), with its owner's facts, for
/// ordering and gap accounting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub(crate) chunk: ChunkPtr,
    pub(crate) meta: ChunkMeta,
}

impl Held {
    /// A chunk the caller pinned (or finds in the ring, under the core lock).
    pub(crate) fn of(chunk: ChunkPtr) -> Self {
        Held {
            chunk,
            meta: chunk.get().meta(),
        }
    }

    /// The use of the chunk the reader pinned.
    pub(crate) fn inc(&self) -> Incarnation {
        Incarnation {
            chunk: self.chunk,
            thread: self.meta.thread,
            seq: self.meta.seq,
        }
    }
}

/// The collector thread's body: sleeps (parked) between rounds, never spins.
pub(crate) fn collector_loop() {
    let sh = shared();
    let mut sleep = COLLECT_INTERVAL;
    loop {
        std::thread::park_timeout(sleep);
        sh.wake_pending.store(false, Ordering::Relaxed);
        // How far writers drew the pool down since the last round decides the next sleep.
        let (pool, target) = (sh.pool.len(), sh.pool_target());
        sh.collect(&mut lock(&sh.core));
        sleep = next_sleep(sleep, pool < target / 2, pool >= target - target / 4);
    }
}

/// Free chunks the collector keeps ready for writers, for a budget of `max` chunks and
/// `live` threads: four per live thread or a sixteenth of the ring, whichever is more, and
/// at most a quarter of the ring (at least two chunks, so a ring of one chunk still has a
/// free one for a writer's next chunk). A writer flat out fills a chunk in about 0.3 ms,
/// and on a busy machine the collector may wait several milliseconds for a CPU; the pool's
/// chunks count within `max_bytes`.
pub(crate) fn pool_target(max: usize, live: usize) -> usize {
    (4 * live + 4).max(max / 16).min((max / 4).max(2))
}

/// The collector's next sleep: short while writers draw the pool down fast (`busy`: below
/// half its target), doubling while they do not, up to the idle interval, or up to the
/// quiet one while they took less than a quarter of it (`quiet`).
pub(crate) fn next_sleep(prev: Duration, busy: bool, quiet: bool) -> Duration {
    if busy {
        COLLECT_INTERVAL
    } else if quiet {
        (prev * 2).min(COLLECT_INTERVAL_QUIET)
    } else {
        (prev * 2).min(COLLECT_INTERVAL_IDLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_target_fits_every_ring_size() {
        for max in 1..=(MAX_FLIGHT_BYTES / CHUNK_BYTES) {
            for live in [0, 1, 3, 64, 10_000] {
                let t = pool_target(max, live);
                assert!(t >= 2, "max {max}, live {live}: target {t}");
                assert!(t <= (max / 4).max(2), "max {max}, live {live}: target {t}");
            }
        }
        // Rings of 16 chunks and more keep at least four free, as they always did.
        assert_eq!(pool_target(16, 0), 4);
        assert_eq!(pool_target(1024, 3), 64);
        assert_eq!(pool_target(1024, 100), 256);
    }

    #[test]
    fn the_collector_backs_off_when_idle_and_returns_when_busy() {
        let mut s = COLLECT_INTERVAL;
        for _ in 0..10 {
            s = next_sleep(s, false, false);
        }
        assert_eq!(s, COLLECT_INTERVAL_IDLE);
        assert_eq!(next_sleep(s, true, false), COLLECT_INTERVAL);
        // Writers that hardly draw on the pool: longer sleeps, back to the idle cap (not
        // doubling past it) as soon as they draw more, and the shortest when they draw fast.
        for _ in 0..10 {
            s = next_sleep(s, false, true);
        }
        assert_eq!(s, COLLECT_INTERVAL_QUIET);
        assert_eq!(next_sleep(s, false, false), COLLECT_INTERVAL_IDLE);
        assert_eq!(next_sleep(s, true, false), COLLECT_INTERVAL);
    }
}
