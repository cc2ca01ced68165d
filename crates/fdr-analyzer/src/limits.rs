//! The analyzer's memory limits, and the notes that say where an analysis reached one.
//!
//! Every structure that grows with what a trace contains (threads, live tasks, open spans,
//! distinct names and sites, table strings) has a bound here, so that every command stays
//! within a fixed amount of memory (about 256 MiB at most, target A2) on any input,
//! however large or hostile. A trace within the bounds is analyzed whole; past one, what
//! was left out is counted and every output says so with a `truncated: ...` note.

use fdr_format::TableLimits;
use serde_json::Value;

/// Recording threads tracked: the first this many threads seen get their own lane (merge
/// order, task stack, sequence check) and statistics; batches of later threads are skipped
/// and counted.
pub const MAX_THREADS: usize = 1 << 16;

/// Distinct untracked threads counted exactly; past this the notes say "at least".
pub const MAX_UNTRACKED_THREADS_COUNTED: usize = 1 << 20;

/// Tasks tracked alive at once (async tasks between create and drop, user tasks between
/// begin and end, and tasks seen before their creation); further ones are counted, not
/// tracked, until tracked ones end.
pub const MAX_LIVE_TASKS: usize = 100_000;

/// Distinct entries per table of statistics: task names (per kind), region names, and
/// blocking sites (per reason). Each holds a histogram of at most 7.5 KiB.
pub const MAX_STATS_KEYS: usize = 2048;

/// Nesting tracked per thread (regions, tasks, slices); deeper begins are counted.
pub const MAX_DEPTH: usize = 256;

/// Bytes of open-span stacks one structure keeps for all threads together (the reader's
/// task stacks, the profile's open regions, an export's open slices).
pub const MAX_OPEN_SPAN_BYTES: usize = 8 << 20;

/// Distinct strings an export interns, and their bytes; past them, strings are written
/// inline.
pub const MAX_INTERNED_BYTES: usize = 8 << 20;

/// What the reader's tables keep: strings, sites and threads, and their text.
pub const TABLE_LIMITS: TableLimits = TableLimits {
    max_strings: 1 << 17,
    max_text_bytes: 16 << 20,
    max_sites: 1 << 17,
    max_threads: MAX_THREADS,
};

/// Bytes of open-span stacks in use and the bound ([`MAX_OPEN_SPAN_BYTES`]), shared by
/// every per-thread stack of one structure: a trace of many threads with spans that never
/// end fills the budget, not 256 spans on each thread.
#[derive(Debug, Clone)]
pub struct StackBudget {
    used_bytes: usize,
    max_bytes: usize,
}

impl Default for StackBudget {
    fn default() -> Self {
        StackBudget {
            used_bytes: 0,
            max_bytes: MAX_OPEN_SPAN_BYTES,
        }
    }
}

impl StackBudget {
    /// Pushes `x` onto `stack` unless it is [`MAX_DEPTH`] deep or growing it would pass
    /// the budget; whether it did.
    #[inline]
    pub fn push<T>(&mut self, stack: &mut Vec<T>, x: T) -> bool {
        if stack.len() >= MAX_DEPTH {
            return false;
        }
        if stack.len() == stack.capacity() && !self.grow(stack) {
            return false;
        }
        stack.push(x);
        true
    }

    #[cold]
    fn grow<T>(&mut self, stack: &mut Vec<T>) -> bool {
        let size = size_of::<T>().max(1);
        let more = stack.capacity().max(4).min(MAX_DEPTH - stack.len());
        if self.used_bytes + more * size > self.max_bytes {
            return false;
        }
        let before = stack.capacity();
        stack.reserve_exact(more);
        self.used_bytes += (stack.capacity() - before) * size;
        true
    }

    /// Truncates `stack` to `len`; a stack that empties after growing deep gives its
    /// memory back.
    #[inline]
    pub fn truncate<T>(&mut self, stack: &mut Vec<T>, len: usize) {
        stack.truncate(len);
        if stack.is_empty() && stack.capacity() > 8 {
            self.release(stack);
        }
    }

    /// Empties `stack` and gives its memory back.
    pub fn release<T>(&mut self, stack: &mut Vec<T>) {
        drop(self.take(stack));
    }

    /// Empties `stack`, returning what it held, whose memory no longer counts: for a caller
    /// that reads it once and drops it.
    pub fn take<T>(&mut self, stack: &mut Vec<T>) -> Vec<T> {
        self.used_bytes -= stack.capacity() * size_of::<T>().max(1);
        std::mem::take(stack)
    }
}

/// One limit an analysis reached, and what it left out; as JSON
/// `{"what", "count", "limit", "at_least", "note"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Truncated {
    /// What was left out: `threads`, `live_tasks`, `task_names`, `region_names`,
    /// `blocking_sites`, `open_spans`, `strings`, `sites`, `thread_names`, ...
    pub what: &'static str,
    /// How many were left out (for `threads`, a lower bound when `at_least` is set).
    pub count: u64,
    /// The limit that was reached.
    pub limit: u64,
    /// `count` is a lower bound.
    pub at_least: bool,
    /// The note as printed, without its `truncated: ` prefix.
    pub note: String,
}

impl Truncated {
    pub(crate) fn new(what: &'static str, count: u64, limit: usize, note: String) -> Self {
        Truncated {
            what,
            count,
            limit: limit as u64,
            at_least: false,
            note,
        }
    }

    /// As JSON: `{"what", "count", "limit", "at_least", "note"}`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a note serializes")
    }
}

/// Notes as a JSON array.
pub fn notes_json(notes: &[Truncated]) -> Value {
    Value::Array(notes.iter().map(Truncated::to_json).collect())
}

/// Appends one `truncated: ...` line per note.
pub fn notes_text(out: &mut String, notes: &[Truncated]) {
    for n in notes {
        out.push_str(&crate::text::paint(
            crate::text::Style::Yellow,
            "truncated:",
        ));
        out.push(' ');
        out.push_str(&n.note);
        out.push('\n');
    }
}

/// The note of an export that names tasks by their creation: `unnamed` tasks were created
/// while [`MAX_LIVE_TASKS`] named ones were alive, and `effect` says what the output shows
/// for them instead. `None` when every task was named.
pub(crate) fn task_names_note(unnamed: u64, effect: &str) -> Option<Truncated> {
    (unnamed > 0).then(|| {
        Truncated::new(
            "task_names",
            unnamed,
            MAX_LIVE_TASKS,
            format!("{unnamed} tasks created while {MAX_LIVE_TASKS} were alive: {effect}"),
        )
    })
}

/// The notes about the reader's limits: threads not tracked, tasks not stacked.
pub(crate) fn read_notes(stats: &crate::ReadStats, out: &mut Vec<Truncated>) {
    if stats.untracked_threads > 0 {
        let at_least = stats.untracked_threads >= MAX_UNTRACKED_THREADS_COUNTED as u64;
        let mut t = Truncated::new(
            "threads",
            stats.untracked_threads,
            MAX_THREADS,
            format!(
                "{}{} more threads not tracked (past the first {MAX_THREADS}): their {} batches ({} bytes, {} of the trace) were skipped",
                if at_least { "at least " } else { "" },
                stats.untracked_threads,
                stats.untracked_batches,
                stats.untracked_bytes,
                crate::text::pct(stats.untracked_bytes as f64 / stats.bytes.max(1) as f64),
            ),
        );
        t.at_least = at_least;
        out.push(t);
    }
    if stats.unstacked_tasks > 0 {
        out.push(Truncated::new(
            "task_nesting",
            stats.unstacked_tasks,
            MAX_DEPTH,
            format!(
                "{} task begins nested too deep (over {MAX_DEPTH} on a thread, or past {} MiB of stacks) were not made current: events inside them name the task around them",
                stats.unstacked_tasks,
                MAX_OPEN_SPAN_BYTES >> 20
            ),
        ));
    }
}

/// The notes about the tables' limits: names, sites and threads left undefined.
pub(crate) fn table_notes(tables: &fdr_format::Tables, out: &mut Vec<Truncated>) {
    let d = tables.dropped();
    let l = TABLE_LIMITS;
    if d.strings > 0 {
        out.push(Truncated::new(
            "strings",
            d.strings,
            l.max_strings,
            format!(
                "{} string definitions not kept (past {} strings or {} MiB of text): those names show as #id",
                d.strings,
                l.max_strings,
                l.max_text_bytes >> 20
            ),
        ));
    }
    if d.sites > 0 {
        out.push(Truncated::new(
            "sites",
            d.sites,
            l.max_sites,
            format!(
                "{} call-site definitions not kept (past {}): those sites show as site #id",
                d.sites, l.max_sites
            ),
        ));
    }
    if d.threads > 0 {
        out.push(Truncated::new(
            "thread_names",
            d.threads,
            l.max_threads,
            format!(
                "{} thread definitions not kept (past {} threads or {} MiB of text): those threads show unnamed",
                d.threads,
                l.max_threads,
                l.max_text_bytes >> 20
            ),
        ));
    }
}

/// A set of distinct ids counted exactly up to [`MAX_UNTRACKED_THREADS_COUNTED`].
#[derive(Debug, Default)]
pub(crate) struct DistinctCount {
    seen: std::collections::HashSet<u32>,
}

impl DistinctCount {
    /// Counts `id`; whether it was new (always false once the set is full).
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        self.seen.len() < MAX_UNTRACKED_THREADS_COUNTED && self.seen.insert(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_names_note_counts_the_unnamed_tasks_and_says_what_shows_instead() {
        assert_eq!(task_names_note(0, "x"), None);
        let n = task_names_note(3, "their polls are named `task ID`").unwrap();
        assert_eq!(
            (n.what, n.count, n.limit),
            ("task_names", 3, MAX_LIVE_TASKS as u64)
        );
        assert_eq!(
            n.note,
            format!(
                "3 tasks created while {MAX_LIVE_TASKS} were alive: their polls are named `task ID`"
            )
        );
    }

    #[test]
    fn stacks_stop_at_their_depth_and_at_the_shared_budget() {
        let mut budget = StackBudget {
            used_bytes: 0,
            max_bytes: 400 * 8,
        };
        let mut a: Vec<u64> = Vec::new();
        for i in 0..MAX_DEPTH as u64 {
            assert!(budget.push(&mut a, i));
        }
        assert!(!budget.push(&mut a, 0), "deeper than MAX_DEPTH");
        assert_eq!(budget.used_bytes, a.capacity() * 8);
        let mut b: Vec<u64> = Vec::new();
        let mut pushed = 0;
        while budget.push(&mut b, 0) {
            pushed += 1;
        }
        assert!(
            pushed < MAX_DEPTH && budget.used_bytes <= 400 * 8,
            "{pushed}"
        );
        // Emptying a deep stack gives its memory back to the others.
        budget.truncate(&mut a, 0);
        assert_eq!(a.capacity(), 0);
        assert!(budget.push(&mut b, 0));
    }
}
