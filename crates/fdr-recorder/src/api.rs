//! The recording API: regions, user tasks, logs, any event, ids.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use fdr_format::encode;
use fdr_format::wire::{CODE_BITS, CODE_REGION_BEGIN, CODE_REGION_END};
use fdr_format::{EventKind, Message, SiteId, StrId, TaskId};

use crate::local::{peek_local, with_local};

/// Task ids handed to a thread at once, so creating a task writes nothing shared.
const TASK_ID_BLOCK: u64 = 1024;
static NEXT_TASK_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static TASK_IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    static CURRENT_TASK: Cell<u64> = const { Cell::new(0) };
}

/// Whether recording is on: one relaxed load. Instrumentation may skip work when it is off.
#[inline(always)]
pub fn enabled() -> bool {
    crate::ENABLED.load(Ordering::Relaxed)
}

/// Interns a static string (a region, task, category or metric name). Lock-free after the
/// first use of that string on this thread.
#[inline]
pub fn intern(s: &'static str) -> StrId {
    peek_local(|l| l.names.get(s)).unwrap_or_else(|| crate::intern::intern_global(s))
}

/// Interns a call site.
#[inline]
pub fn intern_site(loc: &'static Location<'static>) -> SiteId {
    peek_local(|l| l.sites.get(loc)).unwrap_or_else(|| crate::intern::intern_site_global(loc))
}

/// A fresh task id (dense, never 0), without a shared write per call.
#[inline]
pub fn new_task_id() -> TaskId {
    TASK_IDS.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = NEXT_TASK_BLOCK.fetch_add(TASK_ID_BLOCK, Ordering::Relaxed);
            end = next + TASK_ID_BLOCK;
        }
        c.set((next + 1, end));
        TaskId(next)
    })
}

/// The task current on this thread ([`TaskId::NONE`] if none).
#[inline]
pub fn current_task() -> TaskId {
    TaskId(CURRENT_TASK.with(Cell::get))
}

/// Makes `task` current on this thread; returns the previous one.
#[inline]
pub fn set_current_task(task: TaskId) -> TaskId {
    TaskId(CURRENT_TASK.with(|c| c.replace(task.0)))
}

/// Records `kind` now on this thread (any event; an inline log message is copied).
#[inline]
pub fn record(kind: &EventKind<'_>) {
    if !enabled() {
        return;
    }
    match *kind {
        EventKind::Log {
            category,
            message: Message::Inline(text),
        } => {
            with_local(|l| l.inline_log(category, text));
        }
        _ => {
            with_local(|l| l.fixed(kind));
        }
    }
}

/// A static name interned once per call site: [`region!`](crate::region!) keeps one in a
/// `static`, so a region's name costs one relaxed load instead of a cache lookup.
#[derive(Debug)]
pub struct StaticName {
    name: &'static str,
    /// The name's id plus one; 0 until the first use interns it.
    id: AtomicU32,
}

impl StaticName {
    /// A name, not interned yet.
    pub const fn new(name: &'static str) -> Self {
        StaticName {
            name,
            id: AtomicU32::new(0),
        }
    }

    /// The text.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The name's id, interning it on first use. Every thread gets the same id (the global
    /// interner decides it), so a race between first uses stores the same value twice.
    #[inline(always)]
    pub fn id(&self) -> StrId {
        self.cached().unwrap_or_else(|| self.intern())
    }

    /// The id if it was interned already.
    #[inline(always)]
    fn cached(&self) -> Option<StrId> {
        match self.id.load(Ordering::Relaxed) {
            0 => None,
            v => Some(StrId(v - 1)),
        }
    }

    #[cold]
    #[inline(never)]
    fn intern(&self) -> StrId {
        let id = crate::intern::intern_global(self.name);
        self.id.store(id.0 + 1, Ordering::Relaxed);
        id
    }
}

/// A region in progress; ends (records its end) when dropped, on the same thread.
#[must_use = "a region ends when its guard is dropped"]
#[derive(Debug)]
pub struct RegionGuard {
    name: StrId,
    active: bool,
    _not_send: PhantomData<*const ()>,
}

impl RegionGuard {
    const OFF: RegionGuard = RegionGuard {
        name: StrId(0),
        active: false,
        _not_send: PhantomData,
    };
}

/// Begins a region named `name` on this thread; it ends when the guard drops.
/// [`region!`](crate::region!) does the same with the name's id kept per call site.
///
/// Disabled, this is one relaxed load and a branch; the recording path is out of line,
/// so the caller saves no registers for it.
#[inline]
pub fn region(name: &'static str) -> RegionGuard {
    if enabled() {
        region_begin_str(name)
    } else {
        RegionGuard::OFF
    }
}

/// Begins a region whose name is interned once per call site (what [`region!`](crate::region!)
/// expands to).
#[inline]
pub fn region_static(name: &'static StaticName) -> RegionGuard {
    if enabled() {
        match region_begin_static(name) {
            Some(g) => g,
            None => region_begin_static_slow(name),
        }
    } else {
        RegionGuard::OFF
    }
}

// A disabled call site is a load and a branch: everything that records sits behind
// `enabled()`. The `region!` path (a static name whose id is cached per site) is inlined
// into the call site, begin and end: its fast path makes no call (`try_pair` checks room,
// reads the counter, writes two bytes, publishes the cursor), so nothing is saved or
// restored around it. `cargo bench -p fdr-benches --bench record -- record`, six runs of
// each build interleaved: `record.region_ratio_to_floor` 1.008-1.066 inlined, 1.04-1.12 with
// the begin out of line (as at commit 0b565d8). Anything unusual
// (first use of a name or a thread, a full chunk, the fallback clock) goes to a cold slow
// path that does it all with calls. The `region(&str)` entry point stays out of line: its
// name lookup is too big to copy into every call site.

#[inline(never)]
fn region_begin_str(name: &'static str) -> RegionGuard {
    let fast = peek_local(|l| {
        let id = l.names.lookup(name)?;
        l.try_pair(region_head(id, CODE_REGION_BEGIN), 1)
            .then_some(id)
    });
    match fast {
        Some(Some(id)) => active_region(id),
        _ => region_begin_str_slow(name),
    }
}

#[cold]
#[inline(never)]
fn region_begin_str_slow(name: &'static str) -> RegionGuard {
    region_begin_slow(|l| l.names.get(name))
}

/// `None`: nothing recorded; the caller takes the slow path. Inlined into each `region!`
/// site (see above).
#[inline(always)]
fn region_begin_static(name: &'static StaticName) -> Option<RegionGuard> {
    let id = name.cached()?;
    (peek_local(|l| l.try_pair(region_head(id, CODE_REGION_BEGIN), 1)) == Some(true))
        .then(|| active_region(id))
}

#[cold]
#[inline(never)]
fn region_begin_static_slow(name: &'static StaticName) -> RegionGuard {
    region_begin_slow(|_| name.id())
}

#[inline(always)]
fn region_begin_slow(id: impl FnOnce(&mut crate::local::Local) -> StrId) -> RegionGuard {
    with_local(|l| {
        let id = id(l);
        l.small(|out, delta| encode::region_begin(out, delta, id), 1);
        id
    })
    .map_or(RegionGuard::OFF, active_region)
}

/// A region event's operand (as `encode::region_begin` / `region_end` write it).
#[inline(always)]
fn region_head(name: StrId, code: u8) -> u64 {
    ((name.0 as u64) << CODE_BITS) | code as u64
}

#[inline(always)]
fn active_region(name: StrId) -> RegionGuard {
    RegionGuard {
        name,
        active: true,
        _not_send: PhantomData,
    }
}

/// `Err(name)`: nothing recorded; the caller takes the slow path. Inlined (see above).
#[inline(always)]
fn region_end(name: StrId) -> Result<(), StrId> {
    match peek_local(|l| l.try_pair(region_head(name, CODE_REGION_END), -1)) {
        Some(true) => Ok(()),
        _ => Err(name),
    }
}

#[cold]
#[inline(never)]
fn region_end_slow(name: StrId) {
    with_local(|l| l.small(|out, delta| encode::region_end(out, delta, name), -1));
}

impl Drop for RegionGuard {
    #[inline]
    fn drop(&mut self) {
        if self.active
            && let Err(name) = region_end(self.name)
        {
            region_end_slow(name);
        }
    }
}

/// Begins a region whose name (a `&'static str` constant) is interned once per call site;
/// it ends when the returned guard drops. The fastest way to record a region.
///
/// ```
/// fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
/// let _r = fdr_recorder::region!("db");
/// ```
#[macro_export]
macro_rules! region {
    ($name:expr) => {{
        static __FDR_REGION_NAME: $crate::StaticName = $crate::StaticName::new($name);
        $crate::region_static(&__FDR_REGION_NAME)
    }};
}

/// Runs `f` inside a region named `name`.
#[inline]
pub fn with_region<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let _g = region(name);
    f()
}

/// A user task (a logical operation, Go's `trace.NewTask`) current on this thread until
/// the guard drops.
#[must_use = "a task ends when its guard is dropped"]
#[derive(Debug)]
pub struct TaskGuard {
    task: TaskId,
    previous: TaskId,
    active: bool,
    _not_send: PhantomData<*const ()>,
}

impl TaskGuard {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task
    }
}

/// Begins a user task named `name`, child of the current task, and makes it current.
#[inline]
pub fn task(name: &'static str) -> TaskGuard {
    let task = new_task_id();
    let parent = current_task();
    let mut active = false;
    if enabled() {
        active = with_local(|l| {
            let name = l.names.get(name);
            l.fixed(&EventKind::UserTaskBegin { task, parent, name });
        })
        .is_some();
    }
    let previous = set_current_task(task);
    TaskGuard {
        task,
        previous,
        active,
        _not_send: PhantomData,
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.active {
            let task = self.task;
            with_local(|l| l.fixed(&EventKind::UserTaskEnd { task }));
        }
        set_current_task(self.previous);
    }
}

/// Logs a static message under `category`. Disabled, one relaxed load and a branch.
#[inline]
pub fn log(category: &'static str, message: &'static str) {
    if enabled() {
        log_static(category, message);
    }
}

#[inline(never)]
fn log_static(category: &'static str, message: &'static str) {
    let fast = peek_local(|l| {
        let c = l.names.lookup(category)?;
        let m = l.names.lookup(message)?;
        Some(l.try_small(|out, delta| encode::log_static(out, delta, c, m), 0))
    });
    if fast != Some(Some(true)) {
        log_static_slow(category, message);
    }
}

#[cold]
#[inline(never)]
fn log_static_slow(category: &'static str, message: &'static str) {
    with_local(|l| {
        let c = l.names.get(category);
        let m = l.names.get(message);
        l.small(|out, delta| encode::log_static(out, delta, c, m), 0);
    });
}

/// Longest formatted log message; longer ones are cut (at a character boundary).
pub const MAX_FORMATTED_LOG_LEN: usize = 1024;

struct FmtBuf {
    buf: [u8; MAX_FORMATTED_LOG_LEN],
    len: usize,
}

impl fmt::Write for FmtBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_FORMATTED_LOG_LEN - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Logs a formatted message under `category` (a message without arguments is interned).
pub fn log_fmt(category: &'static str, args: fmt::Arguments<'_>) {
    if !enabled() {
        return;
    }
    if let Some(s) = args.as_str() {
        return log(category, s);
    }
    let mut b = FmtBuf {
        buf: [0; MAX_FORMATTED_LOG_LEN],
        len: 0,
    };
    // Formatting runs user code, so it happens before the recorder is borrowed.
    let _ = fmt::write(&mut b, args);
    with_local(|l| {
        let c = l.names.get(category);
        l.inline_log(c, &b.buf[..b.len]);
    });
}

/// Logs under a category: `log!("db", "connected")` records a static message,
/// `log!("db", "{} rows", n)` a formatted one. Costs one relaxed load when recording is off.
#[macro_export]
macro_rules! log {
    ($category:expr, $($arg:tt)+) => {
        if $crate::enabled() {
            $crate::log_fmt($category, ::core::format_args!($($arg)+))
        }
    };
}
