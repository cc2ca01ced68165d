//! The wire constants of the fdr trace format, version 1.
//!
//! `docs/FORMAT.md` specifies every byte; a tidy test checks that the numbers in
//! that document are the numbers here.

/// First eight bytes of every trace file. The high byte and the CR LF / SUB bytes catch
/// transfers that mangle binary data, as PNG's signature does.
pub const MAGIC: [u8; 8] = *b"\x89FDR\r\n\x1a\n";
/// Major version: a reader refuses a file with a different major version.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version: may only add length-prefixed kinds and records, which older readers skip.
pub const VERSION_MINOR: u16 = 2;
/// Size of the fixed part of the file header (magic, versions, process-info length).
pub const FILE_HEADER_FIXED_LEN: usize = 16;
/// Size of the file-header checksum that follows the process-info block; it covers
/// the versions, the length and the block (bytes 8 up to the checksum).
pub const FILE_HEADER_CHECKSUM_LEN: usize = 4;
/// Upper bound on the process-info block of the file header.
pub const MAX_PROCESS_INFO_LEN: u32 = 64 * 1024;

/// Size of a batch header.
pub const BATCH_HEADER_LEN: usize = 28;
/// Number of leading batch-header bytes covered by the batch checksum (all but the checksum).
pub const BATCH_HEADER_CHECKED_LEN: usize = 24;
/// Upper bound on one batch's payload; a larger declared length is corruption.
pub const MAX_BATCH_PAYLOAD: u32 = 16 * 1024 * 1024;

/// Batch tag: a batch of one thread's events.
pub const TAG_EVENTS: u8 = 0xE5;
/// Batch tag: a batch of table records (strings, sites, threads, clock syncs).
pub const TAG_TABLE: u8 = 0x7A;
/// Batch tag: the end-of-trace marker; a file without one was cut short.
pub const TAG_END: u8 = 0xED;

/// Table batch flag: this batch holds the whole table, so decoding may start here.
pub const TABLE_FLAG_FULL: u8 = 0x01;

/// Short event code in the low two bits of an event head: region begin, operand = name id.
pub const CODE_REGION_BEGIN: u8 = 0;
/// Short event code: region end, operand = name id.
pub const CODE_REGION_END: u8 = 1;
/// Short event code: log, operand = category id, then a message word.
pub const CODE_LOG: u8 = 2;
/// Short event code: extended kind, operand = the extended kind number.
pub const CODE_EXT: u8 = 3;
/// Number of low bits of an event head that hold the short code.
pub const CODE_BITS: u32 = 2;

/// Extended kind: the recording thread started (its first event).
pub const EXT_THREAD_START: u64 = 0;
/// Extended kind: the recording thread ended.
pub const EXT_THREAD_END: u64 = 1;
/// Extended kind: an async task was created: task, parent, name, site.
pub const EXT_TASK_CREATE: u64 = 2;
/// Extended kind: a poll of an async task starts: task.
pub const EXT_POLL_START: u64 = 3;
/// Extended kind: a poll ends: task, then 1 if it returned Ready, 0 if Pending.
pub const EXT_POLL_END: u64 = 4;
/// Extended kind: a task was woken, recorded on the waking thread: wakee, waker (0: not a task).
pub const EXT_WAKE: u64 = 5;
/// Extended kind: an async task was dropped: task.
pub const EXT_TASK_DROP: u64 = 6;
/// Extended kind: a user task begins on this thread: task, parent, name.
pub const EXT_USER_TASK_BEGIN: u64 = 7;
/// Extended kind: a user task ends: task.
pub const EXT_USER_TASK_END: u64 = 8;
/// Extended kind: the thread blocks: reason, site.
pub const EXT_BLOCK_BEGIN: u64 = 9;
/// Extended kind: the thread stops blocking.
pub const EXT_BLOCK_END: u64 = 10;
/// Extended kind: a metric sample: name, then the value as 8 bytes of an IEEE 754 f64.
pub const EXT_METRIC: u64 = 11;
/// Extended kind: an OpenTelemetry link: task, 16-byte trace id, 8-byte span id.
pub const EXT_OTEL_LINK: u64 = 12;
/// Extended kind: a loss record: reason, events lost, bytes lost.
pub const EXT_LOSS: u64 = 13;
/// Extended kind: the thread's worker park (idle) begins.
pub const EXT_PARK: u64 = 14;
/// Extended kind: the thread's worker park ends.
pub const EXT_UNPARK: u64 = 15;
/// Extended kinds from here on are length-prefixed (a varint byte count, then the bytes),
/// so a reader that does not know one skips it and counts it.
pub const EXT_FIRST_SIZED: u64 = 64;
/// Extended kinds below [`EXT_FIRST_SIZED`] that version 1 does not define are corruption.
pub const EXT_LAST_FIXED_V1: u64 = EXT_UNPARK;
/// Sized extended kind (minor 1): the kernel's view of a recorded thread, taken by the OS
/// sampler: thread, cause, flags, then the counters the flags name.
pub const EXT_OS_SAMPLE: u64 = 64;
/// Sized extended kind (minor 1): a recorded thread's user stack: thread, cause, flags,
/// frame count, frames (zigzag varint deltas of addresses, innermost first).
pub const EXT_STACK: u64 = 65;
/// Sized extended kind (minor 1): an async region (a phase of a task across awaits and
/// threads) begins: region id, task, name.
pub const EXT_ASYNC_REGION_BEGIN: u64 = 66;
/// Sized extended kind (minor 1): an async region ends: region id, task.
pub const EXT_ASYNC_REGION_END: u64 = 67;

/// Table record: an interned string: id, byte length, UTF-8 bytes.
pub const REC_STRING: u8 = 1;
/// Table record: a call site: id, file string id, line, column.
pub const REC_SITE: u8 = 2;
/// Table record: a thread: fdr thread id, OS thread id, name length, name bytes.
pub const REC_THREAD: u8 = 3;
/// Table record: a clock sync: ticks, monotonic ns, wall-clock Unix ns, ticks per second (f64).
pub const REC_CLOCK: u8 = 4;
/// Table records from here on are length-prefixed and skipped when unknown.
pub const REC_FIRST_SIZED: u8 = 128;
/// Sized table record (minor 1): an executable mapping of a module (the program or a
/// shared library): start and end address, file offset, path, build id.
pub const REC_MODULE: u8 = 128;

/// OS-sample flag: the thread's on-CPU time (ns) follows.
pub const OS_HAS_CPU: u64 = 1;
/// OS-sample flag: the thread's run-queue wait (ns) follows.
pub const OS_HAS_RUNQ: u64 = 2;
/// OS-sample flag: the thread's count of timeslices on a CPU follows.
pub const OS_HAS_SLICES: u64 = 4;
/// OS-sample flag: the thread's scheduler state (one ASCII byte, as in `/proc/PID/stat`) follows.
pub const OS_HAS_STATE: u64 = 8;
/// Stack flag: the stack was cut short (more frames than recorded, or unwinding stopped early).
pub const STACK_TRUNCATED: u64 = 1;
/// Stack flag: the frames are followed by the capture's age in ticks (a varint).
pub const STACK_HAS_AGE: u64 = 2;
/// Most frames a stack sample carries; a reader rejects more.
pub const MAX_STACK_FRAMES: usize = 256;
/// Longest build id a module record carries.
pub const MAX_BUILD_ID_LEN: usize = 64;

/// Longest string (interned or inline log message) the format carries; longer ones are cut.
pub const MAX_STRING_LEN: usize = 64 * 1024;
/// Longest a LEB128 varint of a u64 can be.
pub const MAX_VARINT_LEN: usize = 10;
/// Room the hot path reserves for a region or a static log: two varints of a u64 and one of a u32 id.
pub const MAX_SMALL_EVENT_LEN: usize = 24;
/// Room any event other than a log with an inline message or a stack needs.
pub const MAX_FIXED_EVENT_LEN: usize = 64;
/// Room a stack event needs at most: the fixed part and [`MAX_STACK_FRAMES`] varints.
pub const MAX_STACK_EVENT_LEN: usize = MAX_FIXED_EVENT_LEN + MAX_STACK_FRAMES * MAX_VARINT_LEN;
