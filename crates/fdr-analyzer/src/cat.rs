//! `fdr cat`: events as text, one a line, in time order; strings from the trace are
//! escaped ([`crate::text::esc`]), so each event is exactly one line.

use std::io::Write;

use fdr_format::{EventKind, Message};

use crate::limits::{Truncated, read_notes, table_notes};
use crate::stream::{EndCx, EventCx, Visitor};
use crate::text::{esc, hex};

/// Writes each event as a line: time (ns since the trace's start, then the wall clock in
/// UTC, or `-` without a clock sync), thread, task, kind, fields with names resolved.
pub struct Cat<W: Write> {
    out: W,
    /// First write error, if any (writing stops there).
    pub error: Option<std::io::Error>,
    /// Lines written.
    pub lines: u64,
    /// What the reader left out to stay within its memory limits, known at the end; also
    /// written as the last lines, `truncated: ...`.
    pub truncated: Vec<Truncated>,
    limit: u64,
}

impl<W: Write> std::fmt::Debug for Cat<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cat")
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Cat<W> {
    /// Writes at most `limit` lines (`u64::MAX` for all) to `out`.
    pub fn new(out: W, limit: u64) -> Self {
        Cat {
            out,
            error: None,
            lines: 0,
            truncated: Vec::new(),
            limit,
        }
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One event as text (without the time and thread columns), its strings as the trace
/// has them: escape it ([`crate::text::esc`]) before it reaches a terminal.
pub fn describe(cx: &EventCx<'_>) -> String {
    let t = cx.tables;
    match cx.kind {
        EventKind::RegionBegin { name } => format!("region_begin {}", t.name(name)),
        EventKind::RegionEnd { name } => format!("region_end {}", t.name(name)),
        EventKind::Log { category, message } => {
            let m = match message {
                Message::Interned(id) => t.name(id).into_owned(),
                Message::Inline(b) => String::from_utf8_lossy(b).into_owned(),
            };
            format!("log [{}] {m}", t.name(category))
        }
        EventKind::TaskCreate {
            task,
            parent,
            name,
            site,
        } => {
            format!(
                "task_create {} {} parent={} site={}",
                task.0,
                t.name(name),
                parent.0,
                t.site_name(site)
            )
        }
        EventKind::PollStart { task } => format!("poll_start {}", task.0),
        EventKind::PollEnd { task, ready } => format!(
            "poll_end {} {}",
            task.0,
            if ready { "ready" } else { "pending" }
        ),
        EventKind::Wake { task, waker } => format!("wake {} by={}", task.0, waker.0),
        EventKind::TaskDrop { task } => format!("task_drop {}", task.0),
        EventKind::UserTaskBegin { task, parent, name } => format!(
            "user_task_begin {} {} parent={}",
            task.0,
            t.name(name),
            parent.0
        ),
        EventKind::UserTaskEnd { task } => format!("user_task_end {}", task.0),
        EventKind::BlockBegin { reason, site } => {
            format!("block_begin {} {}", reason.as_str(), t.site_name(site))
        }
        EventKind::Metric { name, value } => format!("metric {} {value}", t.name(name)),
        EventKind::OtelLink {
            task,
            trace_id,
            span_id,
        } => format!(
            "otel_link {} trace={} span={}",
            task.0,
            hex(&trace_id),
            hex(&span_id)
        ),
        EventKind::Loss {
            reason,
            events,
            bytes,
        } => format!("loss {} events={events} bytes={bytes}", reason.as_str()),
        EventKind::OsSample {
            thread,
            cause,
            cpu_ns,
            runq_ns,
            timeslices,
            state,
        } => {
            let mut s = format!("os_sample t{} {}", thread.0, cause.as_str());
            for (k, v) in [
                ("cpu_ns", cpu_ns),
                ("runq_ns", runq_ns),
                ("slices", timeslices),
            ] {
                if let Some(v) = v {
                    s.push_str(&format!(" {k}={v}"));
                }
            }
            if let Some(b) = state {
                s.push_str(&format!(" state={}", char::from(b).escape_default()));
            }
            s
        }
        EventKind::Stack {
            thread,
            cause,
            truncated,
            frames,
            age_ticks,
        } => {
            let mut s = format!(
                "stack t{} {} frames={}{}",
                thread.0,
                cause.as_str(),
                frames.len(),
                if truncated { " truncated" } else { "" }
            );
            if let Some(a) = age_ticks {
                s.push_str(&format!(" age_ticks={a}"));
            }
            for a in frames.iter() {
                s.push_str(&format!(" {a:#x}"));
            }
            s
        }
        k => k.name().to_string(),
    }
}

impl<W: Write> Visitor for Cat<W> {
    fn event(&mut self, cx: &EventCx<'_>) {
        if self.error.is_some() || self.lines >= self.limit {
            return;
        }
        let wall = cx.clock.origin_wall_unix_ns.map_or_else(
            || "-".to_string(),
            |w| crate::text::wall(w.saturating_add(i128::from(cx.ns))),
        );
        let r = writeln!(
            self.out,
            "{:>15} {wall} t{:<3} task={:<6} {}{}",
            cx.ns,
            cx.thread.0,
            cx.task.0,
            esc(&describe(cx)),
            if cx.late { " (late)" } else { "" }
        );
        match r {
            Ok(()) => self.lines += 1,
            Err(e) => self.error = Some(e),
        }
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        read_notes(cx.stats, &mut self.truncated);
        table_notes(cx.tables, &mut self.truncated);
        for n in &self.truncated {
            if self.error.is_some() {
                break;
            }
            if let Err(e) = writeln!(self.out, "truncated: {}", n.note) {
                self.error = Some(e);
            }
        }
    }
}
