//! A whole trace decoded for assertions: every event with its thread and batch, in file
//! order, and the tables that name them.

use std::borrow::Cow;

use fdr_format::decode::{batch_at, batch_spans};
use fdr_format::{Batch, DecodeError, Event, EventKind, Tables, ThreadId};

/// One event as it is in the trace.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// The thread that recorded it.
    pub thread: ThreadId,
    /// Its batch's sequence number on that thread.
    pub seq: u32,
    /// The event.
    pub event: Event<'a>,
}

/// A decoded trace.
#[derive(Debug)]
pub struct Trace<'a> {
    /// The tables after the last table batch (ids are never redefined, so they name every
    /// event).
    pub tables: Tables,
    /// Every event of every event batch, in file order.
    pub events: Vec<Recorded<'a>>,
    /// Event batches read.
    pub batches: usize,
}

impl<'a> Trace<'a> {
    /// The event kinds in file order.
    pub fn kinds(&self) -> impl Iterator<Item = &EventKind<'a>> {
        self.events.iter().map(|r| &r.event.kind)
    }

    /// The names of the regions begun, in file order.
    pub fn region_names(&self) -> Vec<String> {
        self.kinds()
            .filter_map(|k| match k {
                EventKind::RegionBegin { name } => Some(self.tables.name(*name).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// A thread's name from the tables, or an empty string.
    pub fn thread_name(&self, thread: ThreadId) -> Cow<'_, str> {
        self.tables
            .threads()
            .find(|(t, _)| *t == thread)
            .map_or(Cow::Borrowed(""), |(_, i)| Cow::Borrowed(i.name.as_str()))
    }

    /// The id of the thread named `name`, if the tables name one so.
    pub fn thread_named(&self, name: &str) -> Option<ThreadId> {
        self.tables
            .threads()
            .find(|(_, i)| i.name == name)
            .map(|(t, _)| t)
    }
}

/// Decodes a whole trace; the first damage is an error (the decoder's: where and what).
pub fn try_decode(bytes: &[u8]) -> Result<Trace<'_>, DecodeError> {
    let mut out = Trace {
        tables: Tables::new(),
        events: Vec::new(),
        batches: 0,
    };
    // The spans and `batch_at` yield exactly what `Decoder` does, borrowing the input.
    for span in batch_spans(bytes)? {
        match batch_at(bytes, span?)? {
            Batch::Table(t) => out.tables.apply(&t)?,
            Batch::Events(b) => {
                out.batches += 1;
                for e in b.events() {
                    out.events.push(Recorded {
                        thread: b.thread,
                        seq: b.seq,
                        event: e?,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Checks that a whole trace decodes (every table applies and every event reads) without
/// keeping what it decodes: memory stays at one batch, so tests that measure a process's
/// RSS can check large traces; returns the number of events.
pub fn check_whole(bytes: &[u8]) -> Result<u64, DecodeError> {
    let mut tables = Tables::new();
    let mut events = 0;
    for span in batch_spans(bytes)? {
        match batch_at(bytes, span?)? {
            Batch::Table(t) => tables.apply(&t)?,
            Batch::Events(b) => {
                for e in b.events() {
                    e?;
                    events += 1;
                }
            }
        }
    }
    Ok(events)
}

/// Decodes a whole trace, panicking with the decoder's message on any damage.
#[track_caller]
pub fn decode(bytes: &[u8]) -> Trace<'_> {
    match try_decode(bytes) {
        Ok(t) => t,
        Err(e) => panic!("the trace ({} bytes) does not decode: {e}", bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_trace_decodes_whole_and_damage_names_its_offset() {
        let bytes = fdr_format::testing::every_kind_trace();
        let t = decode(&bytes);
        assert!(t.batches > 0 && !t.events.is_empty());
        let cut = &bytes[..bytes.len() - 3];
        let e = try_decode(cut).unwrap_err();
        assert!(e.offset > 0 && e.offset <= cut.len() as u64, "{e}");
    }
}
