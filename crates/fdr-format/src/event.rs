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

/// Why the OS sampler took an OS sample or a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleCause {
    /// The periodic sample every recorded thread gets (its CPU time so far).
    Periodic,
    /// The thread has been inside one poll, region or block past the sampler's threshold.
    LongScope,
    /// The long scope the sampler was watching has ended.
    ScopeEnd,
    /// A CPU-time profiling timer fired on the thread.
    CpuTimer,
    /// The thread (a runtime worker) recorded its own counters as it parked.
    Park,
    /// The thread recorded its own counters as it unparked: the run-queue wait since its
    /// `Park` sample is how long the kernel kept it waiting for a CPU after waking it.
    Unpark,
    /// A cause this version does not know.
    Unknown(u8),
}

impl SampleCause {
    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            SampleCause::Periodic => 0,
            SampleCause::LongScope => 1,
            SampleCause::ScopeEnd => 2,
            SampleCause::CpuTimer => 3,
            SampleCause::Park => 4,
            SampleCause::Unpark => 5,
            SampleCause::Unknown(v) => v,
        }
    }

    /// From the wire value; unknown values are kept.
    pub fn from_wire(v: u8) -> Self {
        match v {
            0 => SampleCause::Periodic,
            1 => SampleCause::LongScope,
            2 => SampleCause::ScopeEnd,
            3 => SampleCause::CpuTimer,
            4 => SampleCause::Park,
            5 => SampleCause::Unpark,
            v => SampleCause::Unknown(v),
        }
    }

    /// Lower-case name, as the analyzer prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            SampleCause::Periodic => "periodic",
            SampleCause::LongScope => "long_scope",
            SampleCause::ScopeEnd => "scope_end",
            SampleCause::CpuTimer => "cpu_timer",
            SampleCause::Park => "park",
            SampleCause::Unpark => "unpark",
            SampleCause::Unknown(_) => "unknown",
        }
    }
}

/// The metric (an [`EventKind::Metric`] the OS sampler records on its own thread) that gives
/// the CPU profiling rate, in samples per second of each thread's CPU time, in effect for the
/// [`SampleCause::CpuTimer`] stacks that follow it (0: profiling is off). Recorded when the
/// rate changes and again with every periodic sample while profiling.
pub const METRIC_CPU_PROFILE_HZ: &str = "os_cpu_profile_hz";

/// The frames of a stack sample, as encoded: innermost first, each a zigzag varint delta
/// from the previous frame's address (the first from 0). The first frame is the
/// interrupted instruction; the others are return addresses. Decoding validated them, so
/// iterating never fails.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StackFrames<'a> {
    bytes: &'a [u8],
    count: u16,
}

impl StackFrames<'static> {
    /// No frames.
    pub const EMPTY: StackFrames<'static> = StackFrames {
        bytes: &[],
        count: 0,
    };
}

impl<'a> StackFrames<'a> {
    /// Frames already encoded by [`StackFrames::encode`] (or read from a trace), if `bytes`
    /// holds exactly `count` well-formed deltas and `count` is at most
    /// [`crate::wire::MAX_STACK_FRAMES`].
    pub fn from_encoded(bytes: &'a [u8], count: usize) -> Option<Self> {
        if count > crate::wire::MAX_STACK_FRAMES {
            return None;
        }
        let mut pos = 0;
        for _ in 0..count {
            crate::varint::get(bytes, &mut pos)?;
        }
        (pos == bytes.len()).then_some(StackFrames {
            bytes,
            count: count as u16,
        })
    }

    /// Encodes addresses (innermost first, at most [`crate::wire::MAX_STACK_FRAMES`]; the
    /// rest are ignored) into `out`, which is cleared first; returns how many were encoded.
    pub fn encode(addrs: &[u64], out: &mut Vec<u8>) -> usize {
        out.clear();
        let n = addrs.len().min(crate::wire::MAX_STACK_FRAMES);
        let mut prev = 0u64;
        for &a in &addrs[..n] {
            crate::varint::push(out, zigzag(a.wrapping_sub(prev) as i64));
            prev = a;
        }
        n
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the stack has no frame.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded bytes.
    pub fn encoded(&self) -> &'a [u8] {
        self.bytes
    }

    /// The addresses, innermost first.
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        let bytes = self.bytes;
        let mut pos = 0;
        let mut prev = 0u64;
        (0..self.count).map_while(move |_| {
            let d = crate::varint::get(bytes, &mut pos)?;
            prev = prev.wrapping_add(unzigzag(d) as u64);
            Some(prev)
        })
    }
}

impl std::fmt::Debug for StackFrames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|a| format!("{a:#x}")))
            .finish()
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
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
    /// The kernel's view of a recorded thread (Linux), recorded by the OS sampler on its own
    /// thread. Counters are cumulative since the thread started, so two samples of a thread
    /// give the interval between them: on-CPU time, run-queue wait (runnable, not running),
    /// and the rest off-CPU (sleeping or blocked in the kernel).
    OsSample {
        /// The sampled thread.
        thread: ThreadId,
        /// Why the sample was taken.
        cause: SampleCause,
        /// Time on a CPU, ns.
        cpu_ns: Option<u64>,
        /// Time runnable but waiting for a CPU, ns.
        runq_ns: Option<u64>,
        /// Timeslices run on a CPU.
        timeslices: Option<u64>,
        /// Scheduler state, one ASCII byte as in `/proc/PID/stat` (`R` running or runnable,
        /// `S` sleeping, `D` uninterruptible wait, ...).
        state: Option<u8>,
    },
    /// A recorded thread's user stack, captured by the OS sampler without stopping other
    /// threads. Addresses resolve through the trace's module records.
    Stack {
        /// The thread whose stack this is.
        thread: ThreadId,
        /// Why it was captured.
        cause: SampleCause,
        /// The stack was cut short.
        truncated: bool,
        /// Innermost first.
        frames: StackFrames<'a>,
        /// How long before this event's time the stack was captured, in clock ticks (a
        /// CPU-timer stack is recorded after the timer fired): the capture happened at
        /// `ts - age_ticks`. `None` in traces written before stacks carried it.
        age_ticks: Option<u64>,
    },
    /// An async region (a named phase of a task that may span awaits and threads) begins,
    /// recorded on the thread polling the task.
    AsyncRegionBegin {
        /// The region's id, unique within the process run.
        region: u64,
        /// The task it belongs to.
        task: TaskId,
        /// Region name.
        name: StrId,
    },
    /// An async region ends.
    AsyncRegionEnd {
        /// The region's id.
        region: u64,
        /// The task it belongs to.
        task: TaskId,
    },
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
            EventKind::OsSample { .. } => "os_sample",
            EventKind::Stack { .. } => "stack",
            EventKind::AsyncRegionBegin { .. } => "async_region_begin",
            EventKind::AsyncRegionEnd { .. } => "async_region_end",
        }
    }
}

/// Number of distinct [`EventKind`] variants (for per-kind counters).
pub const EVENT_KIND_COUNT: usize = 23;

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
            EventKind::OsSample { .. } => 19,
            EventKind::Stack { .. } => 20,
            EventKind::AsyncRegionBegin { .. } => 21,
            EventKind::AsyncRegionEnd { .. } => 22,
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
    "os_sample",
    "stack",
    "async_region_begin",
    "async_region_end",
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
    /// An executable mapping of a module (the program or a shared library), so stack
    /// addresses resolve to a file and, with its build id, symbolize on another machine.
    Module {
        /// First address of the mapping.
        start: u64,
        /// One past its last address.
        end: u64,
        /// Offset in the file of the mapping's first byte.
        file_offset: u64,
        /// The file's path as the process saw it.
        path: &'a [u8],
        /// The ELF build id (GNU note), empty if the file has none.
        build_id: &'a [u8],
    },
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
    /// Service name (may be empty; from minor version 2 on).
    pub service: String,
    /// When the process started, Unix nanoseconds (0 if unknown; from minor version 2 on).
    pub process_start_unix_ns: u64,
    /// The version of fdr that wrote the trace (may be empty; from minor version 2 on).
    pub fdr_version: String,
    /// The program's build id, in lowercase hex (the ELF GNU build id; may be empty; from
    /// minor version 2 on).
    pub build_id: String,
}
