//! [`Kind`]: an event's kind without its fields, for per-kind counters and for code that
//! names kinds (the analyzer's rules), so that a misspelt kind fails to compile instead of
//! matching nothing.

use crate::event::{EVENT_KIND_COUNT, EVENT_KIND_NAMES, EventKind};

/// An [`EventKind`]'s kind, without its fields, in [`EventKind::index`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// [`EventKind::RegionBegin`].
    RegionBegin,
    /// [`EventKind::RegionEnd`].
    RegionEnd,
    /// [`EventKind::Log`].
    Log,
    /// [`EventKind::ThreadStart`].
    ThreadStart,
    /// [`EventKind::ThreadEnd`].
    ThreadEnd,
    /// [`EventKind::TaskCreate`].
    TaskCreate,
    /// [`EventKind::PollStart`].
    PollStart,
    /// [`EventKind::PollEnd`].
    PollEnd,
    /// [`EventKind::Wake`].
    Wake,
    /// [`EventKind::TaskDrop`].
    TaskDrop,
    /// [`EventKind::UserTaskBegin`].
    UserTaskBegin,
    /// [`EventKind::UserTaskEnd`].
    UserTaskEnd,
    /// [`EventKind::BlockBegin`].
    BlockBegin,
    /// [`EventKind::BlockEnd`].
    BlockEnd,
    /// [`EventKind::Metric`].
    Metric,
    /// [`EventKind::OtelLink`].
    OtelLink,
    /// [`EventKind::Loss`].
    Loss,
    /// [`EventKind::Park`].
    Park,
    /// [`EventKind::Unpark`].
    Unpark,
    /// [`EventKind::OsSample`].
    OsSample,
    /// [`EventKind::Stack`].
    Stack,
    /// [`EventKind::AsyncRegionBegin`].
    AsyncRegionBegin,
    /// [`EventKind::AsyncRegionEnd`].
    AsyncRegionEnd,
}

impl Kind {
    /// Every kind, in [`EventKind::index`] order.
    pub const ALL: [Kind; EVENT_KIND_COUNT] = [
        Kind::RegionBegin,
        Kind::RegionEnd,
        Kind::Log,
        Kind::ThreadStart,
        Kind::ThreadEnd,
        Kind::TaskCreate,
        Kind::PollStart,
        Kind::PollEnd,
        Kind::Wake,
        Kind::TaskDrop,
        Kind::UserTaskBegin,
        Kind::UserTaskEnd,
        Kind::BlockBegin,
        Kind::BlockEnd,
        Kind::Metric,
        Kind::OtelLink,
        Kind::Loss,
        Kind::Park,
        Kind::Unpark,
        Kind::OsSample,
        Kind::Stack,
        Kind::AsyncRegionBegin,
        Kind::AsyncRegionEnd,
    ];

    /// Its dense index, the same as [`EventKind::index`] of its events.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Its stable name, the same as [`EventKind::name`] of its events.
    pub const fn name(self) -> &'static str {
        EVENT_KIND_NAMES[self as usize]
    }
}

impl EventKind<'_> {
    /// The event's [`Kind`].
    pub fn kind(&self) -> Kind {
        Kind::ALL[self.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Batch, Decoder, Tables};

    #[test]
    fn kinds_index_and_name_as_their_events_do() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let bytes = crate::testing::every_kind_trace();
        let mut d = Decoder::new(&bytes).unwrap();
        let mut tables = Tables::new();
        let mut seen = [false; EVENT_KIND_COUNT];
        while let Some(b) = d.next_batch() {
            match b.unwrap() {
                Batch::Table(t) => tables.apply(&t).unwrap(),
                Batch::Events(b) => {
                    for e in b.events() {
                        let e = e.unwrap().kind;
                        assert_eq!(e.kind().index(), e.index());
                        assert_eq!(e.kind().name(), e.name());
                        seen[e.index()] = true;
                    }
                }
            }
        }
        assert!(
            seen.iter().all(|s| *s),
            "the every-kind trace lacks {seen:?}"
        );
    }
}
