//! The recording API beside regions (`hot.rs`): user tasks, logs, any event, ids.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};

use fdr_format::encode;
use fdr_format::{EventKind, Message, SiteId, StrId, TaskId};

use fdr_format::wire::CODE_LOG;

use crate::hot::{enabled, peek_local, region_head, with_local};

/// Task ids handed to a thread at once, so creating a task writes nothing shared.
const TASK_ID_BLOCK: u64 = 1024;
static NEXT_TASK_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static TASK_IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    static CURRENT_TASK: Cell<u64> = const { Cell::new(0) };
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
/// Enabled, it looks both names up each call; `log!("db", "connected")` with literals keeps
/// their ids at the call site instead (`record.log_static_ratio_to_floor` against
/// `record.log_fn_ratio_to_floor`).
#[inline]
pub fn log(category: &'static str, message: &'static str) {
    if enabled() {
        log_static(category, message);
    }
}

#[inline(never)]
fn log_static(category: &'static str, message: &'static str) {
    // The operands `encode::log_static` writes: the category's head, the message's id
    // shifted past its inline flag (0: interned).
    let fast = peek_local(|l| {
        let c = l.names.lookup(category)?;
        let m = l.names.lookup(message)?;
        Some(l.try_log(region_head(c, CODE_LOG), u64::from(m.0) << 1))
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

/// A static log's category and message interned once per call site: `log!` with two
/// string literals and no format braces keeps one in a `static`, so the call costs one
/// relaxed load of the event's operands, already encoded, instead of two look-ups in the
/// name tables and their encoding ([`log`]'s).
#[derive(Debug)]
pub struct StaticLog {
    category: &'static str,
    message: &'static str,
    /// 0 until the first use interns both names, then set once: [`SITE_ENCODED`] with the
    /// operands' bytes (low 32 bits) and their length (bits 32 to 35) as
    /// [`crate::hot::log_operands`] gives them, or [`SITE_TOO_LONG`] when they take more
    /// than two varint bytes each (such a site takes the path [`log`] takes, every call).
    word: AtomicU64,
}

const SITE_ENCODED: u64 = 1 << 63;
const SITE_TOO_LONG: u64 = 1 << 62;

impl StaticLog {
    /// A call site's category and message, not interned yet.
    pub const fn new(category: &'static str, message: &'static str) -> Self {
        StaticLog {
            category,
            message,
            word: AtomicU64::new(0),
        }
    }

    /// The encoded operands and their length, if the site has them.
    #[inline(always)]
    fn encoded(&self) -> Option<(u64, usize)> {
        let w = self.word.load(Ordering::Relaxed);
        (w & SITE_ENCODED != 0).then_some((w & 0xffff_ffff, (w >> 32 & 0xf) as usize))
    }

    /// Keeps the operands of `category` and `message` (their ids) on first use. Every
    /// thread gets the same ids (the global interner decides them), so a race between
    /// first uses stores the same value twice; later calls write nothing.
    fn remember(&self, category: StrId, message: StrId) {
        if self.word.load(Ordering::Relaxed) != 0 {
            return;
        }
        let word = match crate::hot::log_operands(
            region_head(category, CODE_LOG),
            u64::from(message.0) << 1,
        ) {
            Some((operands, len)) => SITE_ENCODED | (len as u64) << 32 | operands,
            None => SITE_TOO_LONG,
        };
        self.word.store(word, Ordering::Relaxed);
    }
}

/// Logs a call site's static message (what `log!("db", "connected")` expands to). Always
/// inlined, as `region!`'s begin is: with the operands kept, the thread registered and room
/// in its chunk, the event is one load of the operands, the counter and one store, with no
/// call.
#[inline(always)]
pub fn log_static_site(site: &'static StaticLog) {
    if enabled() {
        let recorded = site.encoded().is_some_and(|(operands, len)| {
            peek_local(|l| l.try_log_operands(operands, len)) == Some(true)
        });
        if !recorded {
            log_static_site_slow(site);
        }
    }
}

#[cold]
#[inline(never)]
fn log_static_site_slow(site: &'static StaticLog) {
    with_local(|l| {
        let c = l.names.get(site.category);
        let m = l.names.get(site.message);
        site.remember(c, m);
        l.small(|out, delta| encode::log_static(out, delta, c, m), 0);
    });
}

/// Whether a format string holds a brace (an argument, or an escaped `{{` or `}}`): `log!`
/// records a literal without any as a static message, interned once per call site.
pub const fn has_format_braces(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' || b[i] == b'}' {
            return true;
        }
        i += 1;
    }
    false
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
///
/// A category and message that are both string literals, the message without braces, are
/// interned once per call site (a `StaticLog` in a `static`), the cheapest log there is.
#[macro_export]
macro_rules! log {
    ($category:literal, $message:literal $(,)?) => {{
        const __FDR_LOG_IS_STATIC: bool =
            !$crate::__macro_support::has_format_braces($message);
        if __FDR_LOG_IS_STATIC {
            static __FDR_LOG_SITE: $crate::__macro_support::StaticLog =
                $crate::__macro_support::StaticLog::new($category, $message);
            $crate::__macro_support::log_static_site(&__FDR_LOG_SITE)
        } else if $crate::enabled() {
            $crate::log_fmt($category, ::core::format_args!($message))
        }
    }};
    ($category:expr, $($arg:tt)+) => {
        if $crate::enabled() {
            $crate::log_fmt($category, ::core::format_args!($($arg)+))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::has_format_braces;

    /// `log!` interns a literal at its call site only when `format_args!` would give the
    /// same text back: no argument, no escaped brace.
    #[test]
    fn only_text_without_braces_is_a_static_message() {
        for text in ["", "connected", "a: b; c", "é ✓", "percent % and \\n"] {
            assert!(!has_format_braces(text), "{text:?}");
        }
        for text in ["{}", "{n} rows", "{{", "}}", "a {{b}} c", "x{0}"] {
            assert!(has_format_braces(text), "{text:?}");
        }
        // Decided at compile time, as the macro does.
        const { assert!(!has_format_braces("query done")) };
    }
}
