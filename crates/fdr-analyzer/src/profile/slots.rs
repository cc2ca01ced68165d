//! Where each thread's figures are while the trace streams: its slot, by thread id.
//!
//! The recorder numbers threads densely from 1, so ids below [`DIRECT_IDS`] find their slot
//! by indexing a table (most events change thread, so this is looked up on nearly every
//! event); any other id, such as a crafted trace's, through a keyed hash map.

use fdr_format::ThreadId;

use crate::fasthash::FastMap;

/// Thread ids found by index: a table of at most this many entries (16 KiB).
pub(crate) const DIRECT_IDS: u32 = 4096;

/// Thread id to slot.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadSlots {
    /// Slot + 1 of thread id `i` (0: none), for ids below [`DIRECT_IDS`].
    direct: Vec<u32>,
    /// The other ids' slots.
    other: FastMap<ThreadId, usize>,
}

impl ThreadSlots {
    /// The slot of `t`, if it has one.
    #[inline]
    pub(crate) fn get(&self, t: ThreadId) -> Option<usize> {
        if t.0 < DIRECT_IDS {
            match self.direct.get(t.0 as usize) {
                Some(&s) if s > 0 => Some(s as usize - 1),
                _ => None,
            }
        } else {
            self.other.get(&t).copied()
        }
    }

    /// Gives `t` the slot `slot` (below `u32::MAX`: the slots are bounded by
    /// [`crate::limits::MAX_THREADS`]).
    pub(crate) fn insert(&mut self, t: ThreadId, slot: usize) {
        if t.0 < DIRECT_IDS {
            let i = t.0 as usize;
            if self.direct.len() <= i {
                self.direct.resize(i + 1, 0);
            }
            self.direct[i] = u32::try_from(slot + 1).unwrap_or(u32::MAX);
        } else {
            self.other.insert(t, slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_below_and_above_the_table_find_their_slots() {
        let mut s = ThreadSlots::default();
        let ids = [0, 1, 7, DIRECT_IDS - 1, DIRECT_IDS, u32::MAX];
        for (slot, &id) in ids.iter().enumerate() {
            assert_eq!(s.get(ThreadId(id)), None);
            s.insert(ThreadId(id), slot);
        }
        for (slot, &id) in ids.iter().enumerate() {
            assert_eq!(s.get(ThreadId(id)), Some(slot), "id {id}");
        }
        assert_eq!(s.get(ThreadId(2)), None);
        assert_eq!(s.get(ThreadId(DIRECT_IDS + 1)), None);
        assert!(s.direct.len() <= DIRECT_IDS as usize);
    }
}
