//! Live tasks: a bounded registry of the traced tasks alive now, the goroutine dump of
//! fdr (the admin endpoint's `/debug/fdr/tasks`).
//!
//! A [`Traced`](crate::task::Traced) task created while recording registers at its
//! creation (id, name, spawn site, creation time) and leaves at its drop; at its first poll
//! (and when its executor hands it a waker that would not wake it) it lends the registry a
//! weak reference to the wake word it already shares with its wakers. Nothing is written
//! on a poll's or a wake's path for it: the word is the one the scheduling-latency metric
//! already keeps (the time of the first wake since the last poll), which now also says
//! whether that wake is still pending, what class of waker gave it, and, once a poll took
//! it, that poll's start.
//!
//! The registry holds at most [`MAX_LIVE_TASKS`] tasks in 16 shards (a mutex each,
//! taken at creation, first poll and drop, by task id); a task created while its shard is
//! full is not listed and is counted ([`LiveTasks::unlisted`]). Tasks stay listed however
//! old they are: the flight ring's window does not bound them.

use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

use fdr_format::TaskId;

use crate::task::Shim;

/// Most live tasks listed at once.
pub const MAX_LIVE_TASKS: usize = 65_536;
/// Shards of the registry (one mutex each).
pub(crate) const SHARDS: usize = 16;
const PER_SHARD: usize = MAX_LIVE_TASKS / SHARDS;

/// Tasks not listed because their shard was full when they were created.
static UNLISTED: AtomicU64 = AtomicU64::new(0);

// The wake word (`Shim::word`), one relaxed atomic the task shares with its wakers:
// bit 0, a wake is pending (no poll since it); bits 1-2, the class of the waker that
// gave the last wake; bits 3.., ticks: the pending wake's time, or else the start of the
// poll that took the last wake (or of the first poll).
const PENDING: u64 = 1;
const CLASS_SHIFT: u32 = 1;
const TICKS_SHIFT: u32 = 3;

/// Who woke a task, as its waker's thread saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WakerClass {
    /// Nothing woke it yet: it was created and polled once.
    Created,
    /// Another task, polled on the waking thread.
    Task,
    /// The task itself (a yield, or a wake from inside its own poll).
    SameTask,
    /// A thread with no task current: a runtime's I/O or timer driver, a blocking pool,
    /// or a thread of the application's own.
    NoTask,
}

impl WakerClass {
    fn from_bits(b: u64) -> Self {
        match b & 3 {
            0 => WakerClass::Created,
            1 => WakerClass::Task,
            2 => WakerClass::SameTask,
            _ => WakerClass::NoTask,
        }
    }

    fn bits(self) -> u64 {
        match self {
            WakerClass::Created => 0,
            WakerClass::Task => 1,
            WakerClass::SameTask => 2,
            WakerClass::NoTask => 3,
        }
    }

    /// `created`, `task`, `same_task`, `no_task`.
    pub fn as_str(self) -> &'static str {
        match self {
            WakerClass::Created => "created",
            WakerClass::Task => "task",
            WakerClass::SameTask => "same_task",
            WakerClass::NoTask => "no_task",
        }
    }

    /// The class of a wake of `task` given while `current` is the waking thread's task.
    #[inline(always)]
    pub(crate) fn of(task: TaskId, current: TaskId) -> Self {
        if current == TaskId::NONE {
            WakerClass::NoTask
        } else if current == task {
            WakerClass::SameTask
        } else {
            WakerClass::Task
        }
    }
}

/// A wake word holding a pending wake at `ticks` (at least 1) of class `c`.
#[inline(always)]
pub(crate) fn pending_word(ticks: u64, c: WakerClass) -> u64 {
    (ticks << TICKS_SHIFT) | (c.bits() << CLASS_SHIFT) | PENDING
}

/// A wake word after a poll that started at `ticks` took a wake of class `c`.
#[inline(always)]
pub(crate) fn polled_word(ticks: u64, c: WakerClass) -> u64 {
    (ticks << TICKS_SHIFT) | (c.bits() << CLASS_SHIFT)
}

/// The pending wake's ticks, if the word holds one.
#[inline(always)]
pub(crate) fn pending_ticks(word: u64) -> Option<u64> {
    (word & PENDING != 0).then_some(word >> TICKS_SHIFT)
}

/// The class of the word's last wake.
#[inline(always)]
pub(crate) fn word_class(word: u64) -> WakerClass {
    WakerClass::from_bits(word >> CLASS_SHIFT)
}

/// A task's place in the registry (its shard and index), kept by the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(u32);

#[derive(Debug)]
struct Entry {
    id: TaskId,
    name: &'static str,
    site: &'static Location<'static>,
    created_ticks: u64,
    shim: Weak<Shim>,
}

#[derive(Debug, Default)]
struct Shard {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
}

static REGISTRY: [Mutex<Shard>; SHARDS] = [const {
    Mutex::new(Shard {
        entries: Vec::new(),
        free: Vec::new(),
    })
}; SHARDS];

fn shard(i: usize) -> std::sync::MutexGuard<'static, Shard> {
    // A panic while a shard was held (none of its code panics) leaves a consistent shard.
    REGISTRY[i].lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a task created at `created_ticks`; `None` when its shard is full (counted).
pub(crate) fn register(
    id: TaskId,
    name: &'static str,
    site: &'static Location<'static>,
    created_ticks: u64,
) -> Option<Slot> {
    let s = (id.0 % SHARDS as u64) as usize;
    let mut sh = shard(s);
    let e = Entry {
        id,
        name,
        site,
        created_ticks,
        shim: Weak::new(),
    };
    let i = match sh.free.pop() {
        Some(i) => {
            sh.entries[i as usize] = Some(e);
            i
        }
        None if sh.entries.len() < PER_SHARD => {
            sh.entries.push(Some(e));
            (sh.entries.len() - 1) as u32
        }
        None => {
            drop(sh);
            UNLISTED.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    Some(Slot((s * PER_SHARD) as u32 + i))
}

fn split(slot: Slot) -> (usize, usize) {
    let s = slot.0 as usize;
    (s / PER_SHARD, s % PER_SHARD)
}

/// Lends the registry the task's wake word (at its first poll, or a new shim).
pub(crate) fn set_shim(slot: Slot, shim: Weak<Shim>) {
    let (s, i) = split(slot);
    if let Some(Some(e)) = shard(s).entries.get_mut(i) {
        e.shim = shim;
    }
}

/// The task left (dropped).
pub(crate) fn unregister(slot: Slot) {
    let (s, i) = split(slot);
    let mut sh = shard(s);
    if let Some(e) = sh.entries.get_mut(i)
        && e.take().is_some()
    {
        sh.free.push(i as u32);
    }
}

/// What a live task is doing, as far as its wake word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveState {
    /// Created, never polled.
    NotPolled,
    /// Woken and not polled since: waiting for its executor to run it.
    Woken,
    /// Polled since its last wake: awaiting a wake (or being polled right now).
    Awaiting,
}

impl LiveState {
    /// `not_polled`, `woken`, `awaiting`.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::NotPolled => "not_polled",
            LiveState::Woken => "woken",
            LiveState::Awaiting => "awaiting",
        }
    }
}

/// One live task ([`live_tasks`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LiveTask {
    /// Its id (the trace's).
    pub id: TaskId,
    /// Its name.
    pub name: &'static str,
    /// Where it was created.
    pub spawn_site: &'static Location<'static>,
    /// When it was created, ns since the Unix epoch.
    pub created_unix_ns: i128,
    /// What it is doing.
    pub state: LiveState,
    /// With [`LiveState::Woken`], when the pending wake came; with
    /// [`LiveState::Awaiting`], when the poll that took its last wake (or its first poll)
    /// started; ns since the Unix epoch.
    pub since_unix_ns: Option<i128>,
    /// Who gave its last wake.
    pub last_waker: Option<WakerClass>,
}

/// The live tasks, oldest first ([`live_tasks`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LiveTasks {
    /// The tasks listed, oldest first.
    pub tasks: Vec<LiveTask>,
    /// Tasks created while their shard of the registry was full, since the process
    /// started (not listed, whether or not still alive).
    pub unlisted: u64,
    /// The registry's bound, [`MAX_LIVE_TASKS`].
    pub bound: usize,
}

/// The traced tasks alive now, created while recording, oldest first: at most
/// [`MAX_LIVE_TASKS`], each shard's lock held only while its entries are copied.
pub fn live_tasks() -> LiveTasks {
    let sync = crate::clock::clock_sync();
    let to_unix = |ticks: u64| -> i128 {
        let d = ticks as f64 - sync.ticks as f64;
        i128::from(sync.wall_unix_ns) + (d * 1e9 / sync.ticks_per_sec) as i128
    };
    let mut tasks = Vec::new();
    for s in 0..SHARDS {
        let copied: Vec<(
            TaskId,
            &'static str,
            &'static Location<'static>,
            u64,
            Weak<Shim>,
        )> = shard(s)
            .entries
            .iter()
            .flatten()
            .map(|e| (e.id, e.name, e.site, e.created_ticks, e.shim.clone()))
            .collect();
        for (id, name, site, created, shim) in copied {
            let word = shim.upgrade().map(|s| s.word.load(Ordering::Relaxed));
            let (state, since, waker) = match word {
                None => (LiveState::NotPolled, None, None),
                Some(w) => match pending_ticks(w) {
                    Some(t) => (LiveState::Woken, Some(to_unix(t)), Some(word_class(w))),
                    None => (
                        LiveState::Awaiting,
                        Some(to_unix(w >> TICKS_SHIFT)),
                        Some(word_class(w)),
                    ),
                },
            };
            tasks.push(LiveTask {
                id,
                name,
                spawn_site: site,
                created_unix_ns: to_unix(created),
                state,
                since_unix_ns: since,
                last_waker: waker,
            });
        }
    }
    tasks.sort_by_key(|t| (t.created_unix_ns, t.id.0));
    LiveTasks {
        tasks,
        unlisted: UNLISTED.load(Ordering::Relaxed),
        bound: MAX_LIVE_TASKS,
    }
}
