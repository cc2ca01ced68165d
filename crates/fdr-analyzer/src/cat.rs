//! `fdr cat`: events as text, one a line, in time order; strings from the trace are
//! escaped ([`crate::text::esc`]), so each event is exactly one line.

use std::io::Write;

use fdr_format::{EventKind, Message};

use crate::limits::{Truncated, read_notes, table_notes};
use crate::stream::{EndCx, EventCx, Visitor};
use crate::text::{WallClock, esc, hex};

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
    /// The line being written, and its event's description before escaping.
    line: String,
    desc: String,
    wall: WallClock,
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
            line: String::new(),
            desc: String::new(),
            wall: WallClock::default(),
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
    let mut s = String::new();
    describe_into(cx, &mut s);
    s
}

/// [`describe`], appended to `out`.
pub fn describe_into(cx: &EventCx<'_>, out: &mut String) {
    use std::fmt::Write;
    let t = cx.tables;
    // Writing to a String cannot fail.
    let _ = match cx.kind {
        EventKind::RegionBegin { name } => write!(out, "region_begin {}", t.name(name)),
        EventKind::RegionEnd { name } => write!(out, "region_end {}", t.name(name)),
        EventKind::Log { category, message } => {
            let m = match message {
                Message::Interned(id) => t.name(id),
                Message::Inline(b) => String::from_utf8_lossy(b),
            };
            write!(out, "log [{}] {m}", t.name(category))
        }
        EventKind::TaskCreate {
            task,
            parent,
            name,
            site,
        } => write!(
            out,
            "task_create {} {} parent={} site={}",
            task.0,
            t.name(name),
            parent.0,
            t.site_name(site)
        ),
        EventKind::PollStart { task } => write!(out, "poll_start {}", task.0),
        EventKind::PollEnd { task, ready } => write!(
            out,
            "poll_end {} {}",
            task.0,
            if ready { "ready" } else { "pending" }
        ),
        EventKind::Wake { task, waker } => write!(out, "wake {} by={}", task.0, waker.0),
        EventKind::TaskDrop { task } => write!(out, "task_drop {}", task.0),
        EventKind::UserTaskBegin { task, parent, name } => write!(
            out,
            "user_task_begin {} {} parent={}",
            task.0,
            t.name(name),
            parent.0
        ),
        EventKind::UserTaskEnd { task } => write!(out, "user_task_end {}", task.0),
        EventKind::BlockBegin { reason, site } => {
            write!(out, "block_begin {} {}", reason.as_str(), t.site_name(site))
        }
        EventKind::Metric { name, value } => write!(out, "metric {} {value}", t.name(name)),
        EventKind::OtelLink {
            task,
            trace_id,
            span_id,
        } => write!(
            out,
            "otel_link {} trace={} span={}",
            task.0,
            hex(&trace_id),
            hex(&span_id)
        ),
        EventKind::Loss {
            reason,
            events,
            bytes,
        } => write!(
            out,
            "loss {} events={events} bytes={bytes}",
            reason.as_str()
        ),
        EventKind::OsSample {
            thread,
            cause,
            cpu_ns,
            runq_ns,
            timeslices,
            state,
        } => {
            let _ = write!(out, "os_sample t{} {}", thread.0, cause.as_str());
            for (k, v) in [
                ("cpu_ns", cpu_ns),
                ("runq_ns", runq_ns),
                ("slices", timeslices),
            ] {
                if let Some(v) = v {
                    let _ = write!(out, " {k}={v}");
                }
            }
            match state {
                Some(b) => write!(out, " state={}", char::from(b).escape_default()),
                None => Ok(()),
            }
        }
        EventKind::Stack {
            thread,
            cause,
            truncated,
            frames,
            age_ticks,
        } => {
            let _ = write!(
                out,
                "stack t{} {} frames={}{}",
                thread.0,
                cause.as_str(),
                frames.len(),
                if truncated { " truncated" } else { "" }
            );
            if let Some(a) = age_ticks {
                let _ = write!(out, " age_ticks={a}");
            }
            for a in frames.iter() {
                let _ = write!(out, " {a:#x}");
            }
            Ok(())
        }
        k => {
            out.push_str(k.name());
            Ok(())
        }
    };
}

/// Where [`push_padded`] puts a number in its width.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Appends `v` in decimal, padded with spaces to `width` (as `{v:>width$}` or
/// `{v:<width$}`): the formatter pads one character at a time, a cost on every line.
fn push_padded(out: &mut String, v: u64, width: usize, align: Align) {
    let mut buf = [0u8; 20];
    let digits = crate::text::decimal(v, &mut buf);
    let pad = width.saturating_sub(digits.len());
    const SPACES: &str = "                    ";
    if let Align::Right = align {
        out.push_str(&SPACES[..pad.min(SPACES.len())]);
    }
    out.push_str(digits);
    if let Align::Left = align {
        out.push_str(&SPACES[..pad.min(SPACES.len())]);
    }
}

impl<W: Write> Visitor for Cat<W> {
    fn event(&mut self, cx: &EventCx<'_>) {
        if self.error.is_some() || self.lines >= self.limit {
            return;
        }
        // One line built in reused buffers and written at once: `cat` prints every event
        // of a trace, so formatting is its whole cost.
        let line = &mut self.line;
        line.clear();
        push_padded(line, cx.ns, 15, Align::Right);
        line.push(' ');
        match cx.clock.origin_wall_unix_ns {
            Some(w) => self.wall.push(w.saturating_add(i128::from(cx.ns)), line),
            None => line.push('-'),
        }
        line.push_str(" t");
        push_padded(line, u64::from(cx.thread.0), 3, Align::Left);
        line.push_str(" task=");
        push_padded(line, cx.task.0, 6, Align::Left);
        line.push(' ');
        self.desc.clear();
        describe_into(cx, &mut self.desc);
        line.push_str(&esc(&self.desc));
        if cx.late {
            line.push_str(" (late)");
        }
        line.push('\n');
        match self.out.write_all(line.as_bytes()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_numbers_read_as_the_formatter_writes_them() {
        for v in [0, 7, 42, 999, 1_000, 123_456, 99_999_999_999_999, u64::MAX] {
            for width in [0, 3, 6, 15] {
                let mut s = String::from("|");
                push_padded(&mut s, v, width, Align::Right);
                push_padded(&mut s, v, width, Align::Left);
                assert_eq!(s, format!("|{v:>width$}{v:<width$}"));
            }
        }
    }
}
