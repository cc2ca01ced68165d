//! The event model: what a trace says happened, as plain values.
//!
//! Names and call sites are interned into tables ([`StrId`], [`SiteId`]), so events carry
//! small integers; [`crate::Tables`] resolves them.

/// Id of an interned string (a region, task, category or metric name, a file path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StrId(pub u32);

/// Id of an interned call site (`file:line:col`); 0 means "no site recorded".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SiteId(pub u32);

/// Id of a task (async or user task), unique within a process run; 0 means "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TaskId(pub u64);

impl TaskId {
    /// No task: a plain thread, or a task the trace does not know.
    pub const NONE: TaskId = TaskId(0);
}

/// fdr's id of a recording thread (dense, assigned at the thread's first event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ThreadId(pub u32);

/// Why a thread blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockReason {
    /// Waiting for a mutex.
    Mutex,
    /// Waiting for a reader-writer lock.
    RwLock,
    /// Waiting on a condition variable.
    Condvar,
    /// Waiting on a channel.
    Channel,
    /// Waiting for I/O.
    Io,
    /// Sleeping.
    Sleep,
    /// Something else.
    Other,
    /// A reason this version does not know (written by a newer writer).
    Unknown(u8),
}

impl BlockReason {
    /// All reasons this version defines, in wire order.
    pub const ALL: [BlockReason; 7] = [
        BlockReason::Mutex,
        BlockReason::RwLock,
        BlockReason::Condvar,
        BlockReason::Channel,
        BlockReason::Io,
        BlockReason::Sleep,
        BlockReason::Other,
    ];

    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            BlockReason::Mutex => 0,
            BlockReason::RwLock => 1,
            BlockReason::Condvar => 2,
            BlockReason::Channel => 3,
            BlockReason::Io => 4,
            BlockReason::Sleep => 5,
            BlockReason::Other => 6,
            BlockReason::Unknown(v) => v,
        }
    }

    /// From the wire value; unknown values are kept, not rejected.
    pub fn from_wire(v: u8) -> Self {
        match v {
            0 => BlockReason::Mutex,
            1 => BlockReason::RwLock,
            2 => BlockReason::Condvar,
            3 => BlockReason::Channel,
            4 => BlockReason::Io,
            5 => BlockReason::Sleep,
            6 => BlockReason::Other,
            v => BlockReason::Unknown(v),
        }
    }

    /// Lower-case name, as the analyzer prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::Mutex => "mutex",
            BlockReason::RwLock => "rwlock",
            BlockReason::Condvar => "condvar",
            BlockReason::Channel => "channel",
            BlockReason::Io => "io",
            BlockReason::Sleep => "sleep",
            BlockReason::Other => "other",
            BlockReason::Unknown(_) => "unknown",
        }
    }
}

/// Why events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// The flight-recorder ring overwrote its oldest chunks to stay within `max_bytes`.
    RingOverwrite,
    /// A streaming capture's writer could not keep up.
    CaptureBehind,
    /// No free chunk was available to a writing thread (pool exhausted).
    PoolExhausted,
    /// A single event was too large to record.
    Oversize,
    /// A reason this version does not know.
    Unknown(u8),
}

impl LossReason {
    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            LossReason::RingOverwrite => 0,
            LossReason::CaptureBehind => 1,
            LossReason::PoolExhausted => 2,
            LossReason::Oversize => 3,
            LossReason::Unknown(v) => v,
        }
    }

    /// From the wire value; unknown values are kept.
    pub fn from_wire(v: u8) -> Self {
        match v {
            0 => LossReason::RingOverwrite,
            1 => LossReason::CaptureBehind,
            2 => LossReason::PoolExhausted,
            3 => LossReason::Oversize,
            v => LossReason::Unknown(v),
        }
    }

    /// Lower-case name, as the analyzer prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::RingOverwrite => "ring_overwrite",
            LossReason::CaptureBehind => "capture_behind",
            LossReason::PoolExhausted => "pool_exhausted",
            LossReason::Oversize => "oversize",
            LossReason::Unknown(_) => "unknown",
        }
    }
}

/// A log message: interned (a static string) or carried inline (formatted at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A static message, resolved through the string table.
    Interned(StrId),
    /// A formatted message's UTF-8 bytes (not validated: decoders show them lossily).
    Inline(&'a [u8]),
}

/// One event, as decoded: its timestamp in clock ticks and what happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event<'a> {
    /// Clock ticks (see the trace's clock-sync records to convert to time).
    pub ts: u64,
    /// What happened.
    pub kind: EventKind<'a>,
}

/// What an event records. Events belong to the thread of the batch that holds them;
/// regions and logs belong to the task current on that thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventKind<'a> {
    /// A region (a named phase of work) begins.
    RegionBegin {
        /// Region name.
        name: StrId,
    },
    /// A region ends.
    RegionEnd {
        /// Region name (the same as its begin).
        name: StrId,
    },
    /// A log line.
    Log {
        /// Category, as Go's `trace.Log` has.
        category: StrId,
        /// The message.
        message: Message<'a>,
    },
    /// The thread recorded its first event.
    ThreadStart,
    /// The thread ended.
    ThreadEnd,
    /// An async task was created.
    TaskCreate {
        /// The new task.
        task: TaskId,
        /// The task current on the creating thread, if any.
        parent: TaskId,
        /// Task name.
        name: StrId,
        /// Where it was spawned.
        site: SiteId,
    },
    /// A poll of an async task starts on this thread; the task is current until its poll ends.
    PollStart {
        /// The polled task.
        task: TaskId,
    },
    /// A poll ends.
    PollEnd {
        /// The polled task.
        task: TaskId,
        /// `true` if the future completed (`Poll::Ready`).
        ready: bool,
    },
    /// A task was woken, recorded on the waking thread.
    Wake {
        /// The woken task.
        task: TaskId,
        /// The task that woke it, or [`TaskId::NONE`] for a plain thread.
        waker: TaskId,
    },
    /// An async task was dropped.
    TaskDrop {
        /// The dropped task.
        task: TaskId,
    },
    /// A user task (a logical operation, like Go's `trace.NewTask`) begins on this thread.
    UserTaskBegin {
        /// The task.
        task: TaskId,
        /// Its parent.
        parent: TaskId,
        /// Task name.
        name: StrId,
    },
    /// A user task ends.
    UserTaskEnd {
        /// The task.
        task: TaskId,
    },
    /// The thread blocks.
    BlockBegin {
        /// Why.
        reason: BlockReason,
        /// Where.
        site: SiteId,
    },
    /// The thread stops blocking.
    BlockEnd,
    /// A metric sample.
    Metric {
        /// Metric name.
        name: StrId,
        /// Its value.
        value: f64,
    },
    /// The current request's OpenTelemetry ids, tied to an fdr task.
    OtelLink {
        /// The fdr task.
        task: TaskId,
        /// W3C trace id.
        trace_id: [u8; 16],
        /// W3C span id.
        span_id: [u8; 8],
    },
    /// Events were lost here.
    Loss {
        /// Why.
        reason: LossReason,
        /// How many events.
        events: u64,
        /// How many bytes.
        bytes: u64,
    },
    /// An executor worker on this thread parks (goes idle).
    Park,
    /// An executor worker on this thread unparks.
    Unpark,
}

impl EventKind<'_> {
    /// A short stable name for the kind, as `fdr summary` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RegionBegin { .. } => "region_begin",
            EventKind::RegionEnd { .. } => "region_end",
            EventKind::Log { .. } => "log",
            EventKind::ThreadStart => "thread_start",
            EventKind::ThreadEnd => "thread_end",
            EventKind::TaskCreate { .. } => "task_create",
            EventKind::PollStart { .. } => "poll_start",
            EventKind::PollEnd { .. } => "poll_end",
            EventKind::Wake { .. } => "wake",
            EventKind::TaskDrop { .. } => "task_drop",
            EventKind::UserTaskBegin { .. } => "user_task_begin",
            EventKind::UserTaskEnd { .. } => "user_task_end",
            EventKind::BlockBegin { .. } => "block_begin",
            EventKind::BlockEnd => "block_end",
            EventKind::Metric { .. } => "metric",
            EventKind::OtelLink { .. } => "otel_link",
            EventKind::Loss { .. } => "loss",
            EventKind::Park => "park",
            EventKind::Unpark => "unpark",
        }
    }
}

/// Number of distinct [`EventKind`] variants (for per-kind counters).
pub const EVENT_KIND_COUNT: usize = 19;

impl EventKind<'_> {
    /// Dense index of the kind, `0..EVENT_KIND_COUNT`, for per-kind counters.
    pub fn index(&self) -> usize {
        match self {
            EventKind::RegionBegin { .. } => 0,
            EventKind::RegionEnd { .. } => 1,
            EventKind::Log { .. } => 2,
            EventKind::ThreadStart => 3,
            EventKind::ThreadEnd => 4,
            EventKind::TaskCreate { .. } => 5,
            EventKind::PollStart { .. } => 6,
            EventKind::PollEnd { .. } => 7,
            EventKind::Wake { .. } => 8,
            EventKind::TaskDrop { .. } => 9,
            EventKind::UserTaskBegin { .. } => 10,
            EventKind::UserTaskEnd { .. } => 11,
            EventKind::BlockBegin { .. } => 12,
            EventKind::BlockEnd => 13,
            EventKind::Metric { .. } => 14,
            EventKind::OtelLink { .. } => 15,
            EventKind::Loss { .. } => 16,
            EventKind::Park => 17,
            EventKind::Unpark => 18,
        }
    }
}

/// Names of the kinds by [`EventKind::index`].
pub const EVENT_KIND_NAMES: [&str; EVENT_KIND_COUNT] = [
    "region_begin",
    "region_end",
    "log",
    "thread_start",
    "thread_end",
    "task_create",
    "poll_start",
    "poll_end",
    "wake",
    "task_drop",
    "user_task_begin",
    "user_task_end",
    "block_begin",
    "block_end",
    "metric",
    "otel_link",
    "loss",
    "park",
    "unpark",
];

/// A clock-sync record: one instant read on every clock, so ticks convert to wall-clock time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockSync {
    /// The event clock, in ticks.
    pub ticks: u64,
    /// The monotonic clock, in nanoseconds since an arbitrary origin.
    pub mono_ns: u64,
    /// The wall clock, in nanoseconds since the Unix epoch.
    pub wall_unix_ns: u64,
    /// Event-clock ticks per second.
    pub ticks_per_sec: f64,
}

impl ClockSync {
    /// Wall-clock Unix nanoseconds of a tick value.
    pub fn wall_ns(&self, ticks: u64) -> i128 {
        // Saturating: a clock of a tick per century puts `ticks` far past i128's range.
        (self.wall_unix_ns as i128).saturating_add(self.ticks_to_ns_signed(ticks))
    }

    /// Nanoseconds from this sync point to `ticks` (negative if before).
    pub fn ticks_to_ns_signed(&self, ticks: u64) -> i128 {
        let d = ticks as i128 - self.ticks as i128;
        (d as f64 * 1e9 / self.ticks_per_sec) as i128
    }

    /// A tick count as a duration in nanoseconds.
    pub fn duration_ns(&self, ticks: u64) -> u64 {
        (ticks as f64 * 1e9 / self.ticks_per_sec) as u64
    }
}

/// A table record, as decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TableRecord<'a> {
    /// An interned string.
    String {
        /// Its id.
        id: StrId,
        /// Its UTF-8 bytes (shown lossily if invalid).
        text: &'a [u8],
    },
    /// A call site.
    Site {
        /// Its id.
        id: SiteId,
        /// The source file, as a string id.
        file: StrId,
        /// Line (1-based).
        line: u32,
        /// Column (1-based).
        col: u32,
    },
    /// A recording thread.
    Thread {
        /// fdr's id.
        thread: ThreadId,
        /// The OS thread id.
        os_tid: u64,
        /// The thread's name (may be empty).
        name: &'a [u8],
    },
    /// A clock sync.
    Clock(ClockSync),
}

/// Facts about the recorded process, from the file header.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProcessInfo {
    /// OS process id.
    pub pid: u32,
    /// When recording started, Unix nanoseconds.
    pub start_unix_ns: u64,
    /// Program name.
    pub program: String,
    /// Service version, as the user configured it (may be empty).
    pub service_version: String,
    /// Host name (may be empty).
    pub host: String,
}
