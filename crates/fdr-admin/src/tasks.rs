//! `GET /debug/fdr/tasks`: the process's live traced tasks, oldest first, from the
//! recorder's registry ([`fdr_recorder::task::live_tasks`]): id, name, spawn site, age,
//! state (not polled, woken and waiting to run, or awaiting a wake) since when, and the
//! class of the waker that gave the last wake. Tasks older than the flight recorder's
//! window are listed too; the registry holds at most
//! [`MAX_LIVE_TASKS`](fdr_recorder::task::MAX_LIVE_TASKS) and says how many it could not.
//!
//! `?format=text` (the default: one line per task under a header) or `json`;
//! `?limit=N` lists the oldest N (default [`DEFAULT_TASKS`], at most the registry's
//! bound), so an answer is at most about 300 bytes per task.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use fdr_recorder::task::{LiveTasks, MAX_LIVE_TASKS, live_tasks};

/// Tasks listed when `limit` is not given.
pub(crate) const DEFAULT_TASKS: usize = 1000;

/// Most bytes of a name or a site shown.
const MAX_SHOWN_BYTES: usize = 200;

/// How the list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

/// The answer's content type and body: the live tasks, at most `limit` of them.
pub(crate) fn render(format: Format, limit: usize) -> (&'static str, String) {
    let live = live_tasks();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    match format {
        Format::Text => ("text/plain; charset=utf-8", text(&live, limit, now)),
        Format::Json => ("application/json", json(&live, limit, now)),
    }
}

/// `s` cut to [`MAX_SHOWN_BYTES`] on a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_SHOWN_BYTES {
        return s;
    }
    let mut end = MAX_SHOWN_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A duration in ns as `1.234s`, `12.3ms`, `45us`.
fn age(ns: i128) -> String {
    let ns = ns.max(0) as f64;
    if ns >= 1e9 {
        format!("{:.3}s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1}ms", ns / 1e6)
    } else {
        format!("{:.0}us", ns / 1e3)
    }
}

fn header(live: &LiveTasks, shown: usize) -> String {
    format!(
        "{} live traced tasks, {shown} listed, oldest first (the registry lists at most {}; {} not listed since the process started: it was full)",
        live.tasks.len(),
        live.bound,
        live.unlisted
    )
}

fn text(live: &LiveTasks, limit: usize, now: i128) -> String {
    let shown = live.tasks.len().min(limit);
    let mut out = header(live, shown);
    out.push_str("\n\nage        id                    state       since       last waker  name  (spawn site)\n");
    for t in live.tasks.iter().take(limit) {
        let since = t.since_unix_ns.map_or("-".into(), |s| age(now - s));
        let waker = t.last_waker.map_or("-", |w| w.as_str());
        let _ = writeln!(
            out,
            "{:<10} {:<21} {:<11} {:<11} {:<11} {}  ({}:{}:{})",
            age(now - t.created_unix_ns),
            t.id.0,
            t.state.as_str(),
            since,
            waker,
            cut(t.name).escape_debug(),
            cut(t.spawn_site.file()).escape_debug(),
            t.spawn_site.line(),
            t.spawn_site.column()
        );
    }
    out
}

/// `s` as a JSON string.
fn js(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json(live: &LiveTasks, limit: usize, now: i128) -> String {
    let shown = live.tasks.len().min(limit);
    let mut out = String::with_capacity(128 + 300 * shown);
    let _ = write!(
        out,
        "{{\"alive\":{},\"listed\":{shown},\"bound\":{},\"unlisted\":{},\"now_unix_ns\":{now},\"tasks\":[",
        live.tasks.len(),
        live.bound,
        live.unlisted
    );
    for (i, t) in live.tasks.iter().take(limit).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\n{{\"id\":{},\"name\":", t.id.0);
        js(&mut out, cut(t.name));
        out.push_str(",\"spawn_site\":");
        js(
            &mut out,
            &format!(
                "{}:{}:{}",
                cut(t.spawn_site.file()),
                t.spawn_site.line(),
                t.spawn_site.column()
            ),
        );
        let _ = write!(
            out,
            ",\"created_unix_ns\":{},\"age_ns\":{},\"state\":\"{}\",\"since_unix_ns\":",
            t.created_unix_ns,
            (now - t.created_unix_ns).max(0),
            t.state.as_str()
        );
        match t.since_unix_ns {
            Some(s) => {
                let _ = write!(out, "{s}");
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"last_waker\":");
        match t.last_waker {
            Some(w) => {
                let _ = write!(out, "\"{}\"", w.as_str());
            }
            None => out.push_str("null"),
        }
        out.push('}');
    }
    out.push_str("\n]}\n");
    out
}

/// Parses `limit`: 1 to the registry's bound.
pub(crate) fn parse_limit(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_LIVE_TASKS).contains(&n) => Ok(n),
        _ => Err(format!(
            "bad limit {}: a number of tasks from 1 to {MAX_LIVE_TASKS}",
            crate::routes::shown(v)
        )),
    }
}
