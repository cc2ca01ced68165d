//! The analyzed window: which part of a trace the profile's figures cover.
//!
//! A flight-recorder dump is ragged: each thread's history starts where its oldest chunk
//! still in the ring starts, and a quiet thread's can reach back minutes before a busy one's.
//! Figures over the whole trace count tasks created on one thread whose drop fell in
//! another thread's lost history as alive (false leaks), and idle history dilutes every
//! share. So by default ([`WindowSpec::Active`]) the profile covers:
//!
//! - the common window where every thread has data: from the latest start of a thread whose
//!   history was cut (its first event in the trace is not its thread-start event); threads
//!   that started later have their whole history anyway;
//! - within it, the recent active part: after a stretch of [`IDLE_GAP_NS`] in which no task,
//!   poll, user task, block or region began on any thread, the window restarts at the next
//!   one; and it ends at the last such event, so an idle tail does not dilute it either.
//!
//! [`WindowSpec::All`] covers the whole trace; [`WindowSpec::Range`] a fixed span of it.
//! The profile reads the whole trace either way (names, live tasks and open spans come from
//! before the window) and counts only what falls inside: a span that crosses the start
//! counts from the start. Loss is charged to the window only when it happened inside it: a
//! thread's loss records ahead of its first data (discards and ring aging before its
//! history in the dump) and the records of threads wholly gone are counted apart, as before
//! the window.

use std::fmt;

use crate::profile::{LiveTask, Profile, ThreadStats};
use crate::text::dur;

/// An idle stretch this long (no task, poll, block or region beginning on any thread)
/// restarts the default window.
pub const IDLE_GAP_NS: u64 = 2_000_000_000;

/// Which part of a trace to analyze.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WindowSpec {
    /// The common window where every thread has data, trimmed to its recent active part.
    #[default]
    Active,
    /// The whole trace.
    All,
    /// From `from_ns` to `to_ns` (ns since the trace's first event; `None`: its end).
    Range {
        /// Start.
        from_ns: u64,
        /// End.
        to_ns: Option<u64>,
    },
}

impl WindowSpec {
    /// Parses `all`, `active` or `FROM..TO` (durations since the trace's first event, with a
    /// unit: `1.5s`, `200ms`, `300us`, `50ns`; either side may be left out).
    pub fn parse(s: &str) -> Result<WindowSpec, WindowError> {
        match s {
            "active" => return Ok(WindowSpec::Active),
            "all" => return Ok(WindowSpec::All),
            _ => {}
        }
        let Some((a, b)) = s.split_once("..") else {
            return Err(WindowError::Shape(s.to_owned()));
        };
        let from_ns = if a.is_empty() { 0 } else { parse_dur(a)? };
        let to_ns = if b.is_empty() {
            None
        } else {
            Some(parse_dur(b)?)
        };
        if to_ns.is_some_and(|t| t <= from_ns) {
            return Err(WindowError::Empty(s.to_owned()));
        }
        Ok(WindowSpec::Range { from_ns, to_ns })
    }
}

/// Why a window could not be parsed; each variant holds the text it refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// Neither `all`, `active` nor `FROM..TO`.
    #[error("window {0:?}: want `all`, `active` or FROM..TO (like 2s..4.5s)")]
    Shape(String),
    /// `FROM..TO` whose end is not after its start.
    #[error("window {0:?}: its end is not after its start")]
    Empty(String),
    /// A duration without a unit.
    #[error("{0:?}: a duration needs a unit (s, ms, us or ns)")]
    NoUnit(String),
    /// A duration whose number does not parse.
    #[error("{0:?}: not a duration")]
    NotADuration(String),
    /// A negative, infinite or too long duration (at most about 584 years in ns).
    #[error("{0:?}: out of range")]
    OutOfRange(String),
}

/// A duration with a unit (`s`, `ms`, `us`, `ns`) as nanoseconds.
fn parse_dur(s: &str) -> Result<u64, WindowError> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e9)
    } else {
        return Err(WindowError::NoUnit(s.to_owned()));
    };
    let v: f64 = num
        .parse()
        .map_err(|_| WindowError::NotADuration(s.to_owned()))?;
    if !(v.is_finite() && v >= 0.0 && v * mul < 1.8e19) {
        return Err(WindowError::OutOfRange(s.to_owned()));
    }
    Ok((v * mul) as u64)
}

/// Why the window starts where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// The trace's first event.
    #[default]
    TraceStart,
    /// The latest start of a thread whose history was cut.
    CommonStart,
    /// The first activity after an idle stretch.
    AfterIdle,
    /// Asked for.
    Asked,
}

/// The window a profile covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// What was asked for.
    pub spec: WindowSpec,
    /// Start (ns since the trace's first event).
    pub from_ns: u64,
    /// End.
    pub to_ns: u64,
    /// The trace's length.
    pub trace_ns: u64,
    /// Why it starts at `from_ns`.
    pub start: Start,
    /// The idle stretch skipped before it (when `start` is [`Start::AfterIdle`]).
    pub idle_ns: u64,
    /// Events lost before the window (discards and aging ahead of a thread's history in the
    /// dump, records of threads wholly gone, records before the start): not charged to it.
    pub lost_before: u64,
    /// Of those, the events discarded (every reason but ring aging): a recorder that
    /// cannot keep up, at times the trace does not tell.
    pub discarded_before: u64,
    // --- online state ---
    pub(crate) last_work_ns: Option<u64>,
}

impl Window {
    /// Counts `events` lost for `reason` before the window.
    pub(crate) fn note_lost_before(&mut self, reason: &str, events: u64) {
        self.lost_before = self.lost_before.saturating_add(events);
        if reason != fdr_format::LossReason::RingOverwrite.as_str() {
            self.discarded_before = self.discarded_before.saturating_add(events);
        }
    }

    /// Its length.
    pub fn len_ns(&self) -> u64 {
        self.to_ns.saturating_sub(self.from_ns)
    }

    /// As the row `--json` outputs carry.
    pub fn row(&self) -> WindowRow {
        WindowRow {
            from_ns: self.from_ns,
            to_ns: self.to_ns,
            trace_ns: self.trace_ns,
            spec: match self.spec {
                WindowSpec::Active => "active".to_string(),
                WindowSpec::All => "all".to_string(),
                WindowSpec::Range { from_ns, to_ns } => {
                    format!("{}..{}", dur(from_ns), to_ns.map(dur).unwrap_or_default())
                }
            },
            starts_at: match self.start {
                Start::TraceStart => "trace_start",
                Start::CommonStart => "common_start",
                Start::AfterIdle => "after_idle",
                Start::Asked => "asked",
            },
            idle_skipped_ns: self.idle_ns,
            lost_before_window_events: self.lost_before,
            discarded_before_window_events: self.discarded_before,
        }
    }

    /// As JSON: [`Window::row`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.row()).expect("a window serializes")
    }
}

/// The window as `--json` outputs carry it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WindowRow {
    /// Start, ns since the trace's first event.
    pub from_ns: u64,
    /// End.
    pub to_ns: u64,
    /// The trace's length.
    pub trace_ns: u64,
    /// What was asked for: `active`, `all` or `FROM..TO`.
    pub spec: String,
    /// Why it starts where it does: `trace_start`, `common_start`, `after_idle`, `asked`.
    pub starts_at: &'static str,
    /// The idle stretch skipped before it.
    pub idle_skipped_ns: u64,
    /// Events lost before the window.
    pub lost_before_window_events: u64,
    /// Of those, the events discarded.
    pub discarded_before_window_events: u64,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "window: {} .. {} ({} of the trace's {}",
            dur(self.from_ns),
            dur(self.to_ns),
            dur(self.len_ns()),
            dur(self.trace_ns)
        )?;
        match self.start {
            Start::TraceStart => {}
            Start::CommonStart => write!(f, "; from where every thread has data")?,
            Start::AfterIdle => write!(
                f,
                "; the recent active part, after {} idle",
                dur(self.idle_ns)
            )?,
            Start::Asked => write!(f, "; as asked")?,
        }
        if self.spec == WindowSpec::Active {
            write!(f, "; --window all for the whole trace")?;
        }
        f.write_str(")")
    }
}

/// Where the window starts and how many times that start has moved. Moving it restarts
/// every thread's and live task's figures; a hostile trace moves it once per thread (each
/// thread's history starting later than the last), so a move does not visit them: each
/// catches up when next touched, and all of them at the end ([`ThreadStats::caught_up`],
/// [`LiveTask::caught_up`]). Catching up once with the latest start is the same as with
/// every start in turn: starts only move forward, figures restart at zero and open
/// intervals are clipped to the latest start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowMark {
    /// Moves so far.
    pub(crate) moves: u64,
    /// The window's start (ns since trace start).
    pub(crate) from_ns: u64,
}

impl ThreadStats {
    /// This thread's state, restarted at the window's start if the window moved since it
    /// was last touched.
    pub(crate) fn caught_up(&mut self, mark: WindowMark) -> &mut ThreadStats {
        if self.window_moves != mark.moves {
            self.window_moves = mark.moves;
            let from_ns = mark.from_ns;
            self.first_ns = from_ns;
            self.last_ns = self.last_ns.max(from_ns);
            self.active_ns = 0;
            self.blocked_ns = 0;
            self.blocked_active_ns = 0;
            self.blocked_lock_ns = 0;
            self.parked_ns = 0;
            self.parks = 0;
            self.longest_active = Default::default();
            self.active_since = self.active_since.max(from_ns);
            self.known_from_ns = self.known_from_ns.map(|k| k.max(from_ns));
            if let Some(p) = &mut self.parked_since {
                *p = (*p).max(from_ns);
            }
            if let Some(b) = &mut self.block {
                b.start = b.start.max(from_ns);
            }
            if let Some(p) = &mut self.poll {
                p.1 = p.1.max(from_ns);
            }
            for r in &mut self.regions {
                r.1 = r.1.max(from_ns);
            }
        }
        self
    }
}

impl LiveTask {
    /// This task's state, restarted at the window's start if the window moved since it was
    /// last touched: created before the window, nothing counted before it.
    pub(crate) fn caught_up(&mut self, mark: WindowMark) -> &mut LiveTask {
        if self.window_moves != mark.moves {
            self.window_moves = mark.moves;
            let from_ns = mark.from_ns;
            self.created_here = false;
            self.running_ns = 0;
            self.wait_ns = 0;
            self.blocked_ns = [0; 8];
            self.polls = 0;
            if let Some(s) = &mut self.scheduled_at {
                *s = (*s).max(from_ns);
            }
            if let Some(s) = &mut self.poll_start {
                *s = (*s).max(from_ns);
            }
            self.wait.clip(from_ns);
        }
        self
    }
}

impl Profile {
    /// The window's start and its moves so far, for catching state up.
    #[inline]
    pub(crate) fn window_mark(&self) -> WindowMark {
        WindowMark {
            moves: self.window_moves,
            from_ns: self.window.from_ns,
        }
    }

    /// Restarts every figure at `from_ns`, keeping what is alive (tasks, open polls,
    /// blocks, parks, regions, awaits), each counted from `from_ns` on: the per-thread and
    /// per-task state when next touched ([`WindowMark`]).
    pub(crate) fn reset_at(&mut self, from_ns: u64, start: Start) {
        self.kinds = [0; fdr_format::EVENT_KIND_COUNT];
        self.window_moves += 1;
        self.tasks.clear();
        self.regions.clear();
        self.blocking.clear();
        self.blocking_in_poll.clear();
        self.sched_latency = Default::default();
        self.worst_latency = Default::default();
        self.poll_duration = Default::default();
        self.longest_polls.clear();
        self.long_polls = (0, 0);
        for (reason, l) in &self.loss {
            self.window.note_lost_before(reason, l.1);
        }
        self.loss.clear();
        self.loss_window_ns = None;
        self.live_series = Default::default();
        self.created_dropped = (0, 0);
        self.slices.clear();
        self.slice_min_ns = 0;
        self.slices_dropped = 0;
        self.late_events = 0;
        self.filtered_out = 0;
        self.live_created = 0;
        self.waits.reset();
        self.wake_delay.reset();
        self.window.from_ns = from_ns;
        self.window.start = start;
    }
}
