//! `fdr export --format chrome-json`: the Trace Event format (JSON object form), which
//! Perfetto UI, chrome://tracing and speedscope open.
//!
//! Written as the trace streams: a complete (`X`) event when a region, poll, user task,
//! block or park ends, an instant (`i`) event per log, and metadata (`M`) events naming the
//! process and threads at the end. `ts` and `dur` are microseconds since the trace start;
//! `pid` is the recorded process id, `tid` fdr's thread id.
//!
//! Memory follows the open slices (at most [`MAX_DEPTH`] per thread and
//! [`MAX_OPEN_SPAN_BYTES`] in all) and the live tasks' names (at most [`MAX_LIVE_TASKS`]);
//! what is left out is counted in [`ChromeExport::truncated`].

use std::collections::HashMap;
use std::io::Write;

use fdr_format::{BlockReason, EventKind, Message, ProcessInfo, SiteId, StrId, TaskId, ThreadId};

use crate::limits::{
    MAX_DEPTH, MAX_LIVE_TASKS, MAX_OPEN_SPAN_BYTES, StackBudget, Truncated, read_notes,
    table_notes, task_names_note,
};
use crate::stream::{EndCx, EventCx, Visitor};

#[derive(Default)]
struct Open {
    regions: Vec<(StrId, u64)>,
    polls: Vec<(TaskId, u64)>,
    user: Vec<(TaskId, StrId, u64)>,
    block: Option<(BlockReason, SiteId, u64)>,
    park: Option<u64>,
}

/// Streams a trace out as Chrome Trace Event JSON.
pub struct ChromeExport<W: Write> {
    out: W,
    pid: u32,
    program: String,
    first: bool,
    /// The event being written (reused: one allocation for the whole export).
    line: Vec<u8>,
    /// A slice's name when it is made of parts (reused like `line`).
    name: String,
    open: HashMap<ThreadId, Open>,
    task_names: HashMap<TaskId, StrId>,
    stacks: StackBudget,
    unopened: u64,
    unnamed: u64,
    /// Events written.
    pub written: u64,
    /// What the export left out to stay within its memory limits, known at the end.
    pub truncated: Vec<Truncated>,
    /// First write error (writing stops there).
    pub error: Option<std::io::Error>,
}

impl<W: Write> std::fmt::Debug for ChromeExport<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromeExport")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ChromeExport<W> {
    /// An exporter writing to `out`.
    pub fn new(out: W) -> Self {
        ChromeExport {
            out,
            pid: 0,
            program: String::new(),
            first: true,
            line: Vec::new(),
            name: String::new(),
            open: HashMap::new(),
            task_names: HashMap::new(),
            stacks: StackBudget::default(),
            unopened: 0,
            unnamed: 0,
            written: 0,
            truncated: Vec::new(),
            error: None,
        }
    }

    /// The writer, after the trace ended.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn raw(&mut self, s: &str) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(s.as_bytes())
        {
            self.error = Some(e);
        }
    }

    fn emit(&mut self, ev: &Event<'_>) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        line.extend_from_slice(if self.first { b"\n" } else { b",\n" });
        self.first = false;
        ev.write(&mut line);
        if self.error.is_none()
            && let Err(e) = self.out.write_all(&line)
        {
            self.error = Some(e);
        }
        self.line = line;
        self.written += 1;
    }

    fn complete(&mut self, name: &str, cat: &str, tid: ThreadId, start: u64, end: u64, args: Args) {
        self.emit(&Event {
            args,
            cat: Some(cat),
            dur_ns: Some(end.saturating_sub(start)),
            name,
            ph: "X",
            pid: self.pid,
            s: None,
            tid: tid.0,
            ts_ns: Some(start),
        });
    }
}

/// One Trace Event. Written by hand rather than through serde: an export writes one per
/// slice, tens of millions for a large trace, and the generic serializer costs several
/// times the rest of the export. The output is what serde_json gives for the same object
/// with sorted keys (the order the export has always had): see [`Event::write`].
struct Event<'a> {
    args: Args<'a>,
    cat: Option<&'a str>,
    dur_ns: Option<u64>,
    name: &'a str,
    ph: &'a str,
    pid: u32,
    s: Option<&'a str>,
    tid: u32,
    ts_ns: Option<u64>,
}

/// An event's `args` object.
enum Args<'a> {
    None,
    Task(u64),
    Poll { ready: bool, task: u64 },
    Block { site: &'a str, task: u64 },
    Log { message: &'a str, task: u64 },
    Loss { events: u64, reason: &'a str },
    Name(&'a str),
}

impl Event<'_> {
    /// The event as one JSON object, keys sorted, numbers in their shortest form, strings
    /// escaped as serde_json escapes them (tests compare with it).
    fn write(&self, b: &mut Vec<u8>) {
        b.extend_from_slice(b"{\"args\":{");
        match self.args {
            Args::None => {}
            Args::Task(task) => key_u64(b, "task", task),
            Args::Poll { ready, task } => {
                b.extend_from_slice(if ready {
                    b"\"ready\":true,"
                } else {
                    b"\"ready\":false,"
                });
                key_u64(b, "task", task);
            }
            Args::Block { site, task } => {
                key_str(b, "site", site);
                b.push(b',');
                key_u64(b, "task", task);
            }
            Args::Log { message, task } => {
                key_str(b, "message", message);
                b.push(b',');
                key_u64(b, "task", task);
            }
            Args::Loss { events, reason } => {
                key_u64(b, "events", events);
                b.push(b',');
                key_str(b, "reason", reason);
            }
            Args::Name(name) => key_str(b, "name", name),
        }
        b.push(b'}');
        if let Some(cat) = self.cat {
            b.push(b',');
            key_str(b, "cat", cat);
        }
        if let Some(dur) = self.dur_ns {
            b.extend_from_slice(b",\"dur\":");
            json::micros(b, dur);
        }
        b.push(b',');
        key_str(b, "name", self.name);
        b.push(b',');
        key_str(b, "ph", self.ph);
        b.push(b',');
        key_u64(b, "pid", self.pid.into());
        if let Some(s) = self.s {
            b.push(b',');
            key_str(b, "s", s);
        }
        b.push(b',');
        key_u64(b, "tid", self.tid.into());
        if let Some(ts) = self.ts_ns {
            b.extend_from_slice(b",\"ts\":");
            json::micros(b, ts);
        }
        b.push(b'}');
    }
}

fn key_str(b: &mut Vec<u8>, key: &str, value: &str) {
    json::string(b, key);
    b.push(b':');
    json::string(b, value);
}

fn key_u64(b: &mut Vec<u8>, key: &str, value: u64) {
    json::string(b, key);
    b.push(b':');
    json::u64(b, value);
}

/// JSON values written as serde_json writes them.
mod json {
    /// A string, quoted and escaped: `"` and `\\` by a backslash, the control characters by
    /// their short escape where JSON has one and `\\u00xx` otherwise; all else as is.
    pub(super) fn string(b: &mut Vec<u8>, s: &str) {
        b.push(b'"');
        let bytes = s.as_bytes();
        let mut plain = 0;
        for (i, &c) in bytes.iter().enumerate() {
            let short = match c {
                b'"' => b'"',
                b'\\' => b'\\',
                0x08 => b'b',
                0x0c => b'f',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0..=0x1f => b'u',
                _ => continue,
            };
            b.extend_from_slice(&bytes[plain..i]);
            plain = i + 1;
            if short == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                b.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ]);
            } else {
                b.extend_from_slice(&[b'\\', short]);
            }
        }
        b.extend_from_slice(&bytes[plain..]);
        b.push(b'"');
    }

    /// An unsigned integer in decimal.
    pub(super) fn u64(b: &mut Vec<u8>, v: u64) {
        b.extend_from_slice(crate::text::decimal(v, &mut [0u8; 20]).as_bytes());
    }

    /// Below this many nanoseconds (about 11.6 days) a time in microseconds has at most 15
    /// significant digits, so the nearest `f64` prints back as the exact decimal.
    const EXACT_BELOW_NS: u64 = 1_000_000_000_000_000;

    /// Nanoseconds as microseconds: the `f64` nearest `ns / 1000` in its shortest form,
    /// which serde_json gives for it (`1.0`, `0.001`, `1234.5`). Below [`EXACT_BELOW_NS`]
    /// that is the exact decimal, written here; above, the float is formatted by serde_json.
    pub(super) fn micros(b: &mut Vec<u8>, ns: u64) {
        if ns >= EXACT_BELOW_NS {
            let us = (ns as f64 / 1000.0 * 1000.0).round() / 1000.0;
            serde_json::to_writer(&mut *b, &us).expect("a finite float serializes");
            return;
        }
        u64(b, ns / 1000);
        let frac = ns % 1000;
        if frac == 0 {
            b.extend_from_slice(b".0");
            return;
        }
        let d = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let len = if d[2] != b'0' {
            3
        } else if d[1] != b'0' {
            2
        } else {
            1
        };
        b.push(b'.');
        b.extend_from_slice(&d[..len]);
    }
}

/// A metadata (`M`) event naming the process or a thread.
fn metadata<'a>(what: &'a str, pid: u32, tid: u32, name: &'a str) -> Event<'a> {
    Event {
        args: Args::Name(name),
        cat: None,
        dur_ns: None,
        name: what,
        ph: "M",
        pid,
        s: None,
        tid,
        ts_ns: None,
    }
}

impl<W: Write> Visitor for ChromeExport<W> {
    fn start(&mut self, info: &ProcessInfo) {
        self.pid = info.pid;
        self.program = info.program.clone();
        self.raw("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
    }

    fn event(&mut self, cx: &EventCx<'_>) {
        let t = cx.tables;
        let ns = cx.ns;
        let tid = cx.thread;
        let o = self.open.entry(tid).or_default();
        let stacks = &mut self.stacks;
        // A begin's guard pushes it onto its stack; the arm counts a begin it could not.
        match cx.kind {
            EventKind::RegionBegin { name } if !stacks.push(&mut o.regions, (name, ns)) => {
                self.unopened += 1;
            }
            EventKind::RegionEnd { name } => {
                if let Some(pos) = o.regions.iter().rposition(|r| r.0 == name) {
                    let start = o.regions[pos].1;
                    stacks.truncate(&mut o.regions, pos);
                    let task = cx.task.0;
                    self.complete(&t.name(name), "region", tid, start, ns, Args::Task(task));
                }
            }
            EventKind::PollStart { task } if !stacks.push(&mut o.polls, (task, ns)) => {
                self.unopened += 1;
            }
            EventKind::PollEnd { task, ready } => {
                if let Some(pos) = o.polls.iter().rposition(|p| p.0 == task) {
                    let start = o.polls[pos].1;
                    stacks.truncate(&mut o.polls, pos);
                    let mut name = std::mem::take(&mut self.name);
                    name.clear();
                    match self.task_names.get(&task) {
                        Some(n) => {
                            name.push_str("poll ");
                            name.push_str(&t.name(*n));
                        }
                        None => {
                            use std::fmt::Write as _;
                            let _ = write!(name, "poll task {}", task.0);
                        }
                    }
                    let args = Args::Poll {
                        ready,
                        task: task.0,
                    };
                    self.complete(&name, "poll", tid, start, ns, args);
                    self.name = name;
                }
            }
            EventKind::UserTaskBegin { task, name, .. }
                if !stacks.push(&mut o.user, (task, name, ns)) =>
            {
                self.unopened += 1;
            }
            EventKind::UserTaskEnd { task } => {
                if let Some(pos) = o.user.iter().rposition(|p| p.0 == task) {
                    let (_, name, start) = o.user[pos];
                    stacks.truncate(&mut o.user, pos);
                    self.complete(&t.name(name), "task", tid, start, ns, Args::Task(task.0));
                }
            }
            EventKind::BlockBegin { reason, site } => o.block = Some((reason, site, ns)),
            EventKind::BlockEnd => {
                if let Some((reason, site, start)) = o.block.take() {
                    let mut name = std::mem::take(&mut self.name);
                    name.clear();
                    name.push_str("blocked: ");
                    name.push_str(reason.as_str());
                    let args = Args::Block {
                        site: &t.site_name(site),
                        task: cx.task.0,
                    };
                    self.complete(&name, "block", tid, start, ns, args);
                    self.name = name;
                }
            }
            EventKind::Park => o.park = Some(ns),
            EventKind::Unpark => {
                if let Some(start) = o.park.take() {
                    self.complete("parked", "park", tid, start, ns, Args::None);
                }
            }
            EventKind::TaskCreate { task, name, .. } => {
                if self.task_names.len() < MAX_LIVE_TASKS || self.task_names.contains_key(&task) {
                    self.task_names.insert(task, name);
                } else {
                    self.unnamed += 1;
                }
            }
            EventKind::TaskDrop { task } => {
                self.task_names.remove(&task);
            }
            EventKind::Log { category, message } => {
                let m = match message {
                    Message::Interned(id) => t.name(id),
                    Message::Inline(b) => String::from_utf8_lossy(b),
                };
                self.emit(&Event {
                    args: Args::Log {
                        message: &m,
                        task: cx.task.0,
                    },
                    cat: Some("log"),
                    dur_ns: None,
                    name: &t.name(category),
                    ph: "i",
                    pid: self.pid,
                    s: Some("t"),
                    tid: tid.0,
                    ts_ns: Some(ns),
                });
            }
            EventKind::Loss { reason, events, .. } => {
                self.emit(&Event {
                    args: Args::Loss {
                        events,
                        reason: reason.as_str(),
                    },
                    cat: Some("loss"),
                    dur_ns: None,
                    name: "events lost",
                    ph: "i",
                    pid: self.pid,
                    s: Some("p"),
                    tid: tid.0,
                    ts_ns: Some(ns),
                });
            }
            _ => {}
        }
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        let pid = self.pid;
        let program = if self.program.is_empty() {
            "fdr trace".to_string()
        } else {
            self.program.clone()
        };
        self.emit(&metadata("process_name", pid, 0, &program));
        let mut threads: Vec<ThreadId> = self.open.keys().copied().collect();
        threads.sort();
        for tid in threads {
            let name = cx
                .tables
                .thread(tid)
                .map(|i| i.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("thread {}", tid.0));
            self.emit(&metadata("thread_name", pid, tid.0, &name));
        }
        read_notes(cx.stats, &mut self.truncated);
        if self.unopened > 0 {
            self.truncated.push(Truncated::new(
                "open_slices",
                self.unopened,
                MAX_DEPTH,
                format!(
                    "{} slices not written: nested over {MAX_DEPTH} deep on a thread, or past {} MiB of open slices",
                    self.unopened,
                    MAX_OPEN_SPAN_BYTES >> 20
                ),
            ));
        }
        self.truncated.extend(task_names_note(
            self.unnamed,
            "their polls are named `task ID`",
        ));
        table_notes(cx.tables, &mut self.truncated);
        self.raw("\n]}\n");
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json;

    fn ours(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut b = Vec::new();
        f(&mut b);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = (0u32..0x80)
            .map(|c| format!("a{}b", char::from_u32(c).unwrap()))
            .collect();
        cases.extend(
            [
                "",
                "plain",
                "\"quoted\" \\ path\\",
                "tab\there\r\n",
                "é ✓ 🦀 \u{7f}\u{1b}[0m",
            ]
            .map(String::from),
        );
        for s in cases {
            assert_eq!(
                ours(|b| json::string(b, &s)),
                serde_json::to_string(&s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn integers_and_microseconds_print_as_serde_json_prints_them() {
        // The float an export has always written: `ns / 1000` rounded to the nanosecond.
        let reference = |ns: u64| {
            let us = (ns as f64 / 1000.0 * 1000.0).round() / 1000.0;
            serde_json::to_string(&us).unwrap()
        };
        let mut values = vec![0, 1, 9, 10, 999, 1000, 1001, 1010, 1100, 123_456_789];
        // Both sides of the exact range's end, and the largest times a trace can hold.
        values.extend([
            999_999_999_999_999,
            1_000_000_000_000_000,
            1_000_000_000_000_001,
            (1 << 53) - 1,
            1 << 53,
            (1 << 63) + 12345,
            u64::MAX,
        ]);
        // And a spread of everyday values (a fixed linear congruential sequence).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            values.push(x >> (x % 64));
        }
        for ns in values {
            assert_eq!(ours(|b| json::micros(b, ns)), reference(ns), "{ns} ns");
            assert_eq!(ours(|b| json::u64(b, ns)), ns.to_string());
        }
    }
}
