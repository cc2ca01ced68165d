//! Slices on thread tracks: regions, polls, user tasks, blocks and park, kept nested per
//! thread (an end whose begin is not the innermost open slice also ends the slices opened
//! inside it).

use std::io::Write;

use fdr_format::{StrId, TaskId, ThreadId};

use super::PerfettoExport;
use super::field::event as fe;
use super::packets::{Arg, Ev, Val};

/// What a thread's open slice is, to match its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Open {
    Region(StrId),
    Poll(TaskId),
    User(TaskId),
    Block,
    Park,
}

/// `args` without its last entry (a task argument) when `task` is none.
pub(super) fn task_args<'s, 'a>(task: TaskId, args: &'s [(Arg, Val<'a>)]) -> &'s [(Arg, Val<'a>)] {
    if task == TaskId::NONE {
        &args[..args.len() - 1]
    } else {
        args
    }
}

/// Blocking slice names by reason (wire value; 7: unknown), as chrome-json names them.
pub(super) const BLOCKED: [&str; 8] = [
    "blocked: mutex",
    "blocked: rwlock",
    "blocked: condvar",
    "blocked: channel",
    "blocked: io",
    "blocked: sleep",
    "blocked: other",
    "blocked: unknown",
];

impl<W: Write> PerfettoExport<W> {
    /// Begins a slice on `tid`'s track.
    pub(super) fn begin_slice(&mut self, tid: ThreadId, open: Open, ev: &Ev<'_>) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        if !self.stacks.push(&mut t.stack, open) {
            self.dropped += 1;
            return;
        }
        self.write_event(ev);
    }

    /// Ends the innermost open slice `open` on `tid`'s track (and any opened inside it).
    pub(super) fn end_slice(
        &mut self,
        tid: ThreadId,
        open: Open,
        ns: u64,
        args: &[(Arg, Val<'_>)],
    ) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        let Some(pos) = t.stack.iter().rposition(|o| *o == open) else {
            self.unmatched += 1;
            return;
        };
        let inner = t.stack.len() - pos - 1;
        self.stacks.truncate(&mut t.stack, pos);
        let track = t.uuid;
        for _ in 0..inner {
            self.end_unfinished(track, ns);
        }
        let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_END);
        ev.args = args;
        self.write_event(&ev);
        self.slices += 1;
    }

    pub(super) fn end_unfinished(&mut self, track: u64, ns: u64) {
        let mut ev = Ev::new(ns, track, fe::TYPE_SLICE_END);
        ev.args = &[(Arg::Unfinished, Val::Bool(true))];
        self.write_event(&ev);
        self.slices += 1;
        self.unfinished += 1;
    }
}
