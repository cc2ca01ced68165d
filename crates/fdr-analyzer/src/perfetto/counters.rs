//! Counter tracks: one per metric name (the recorder's periodic samples, the
//! application's registered values, tokio's workers), under the process track.

use std::io::Write;

use fdr_format::{StrId, Tables};

use crate::limits::MAX_INTERNED_BYTES;

use super::field::{self, event as fe};
use super::packets::Ev;
use super::{COUNTER_TRACK_UUID_BASE, MAX_COUNTERS, PROCESS_TRACK_UUID, PerfettoExport};

impl<W: Write> PerfettoExport<W> {
    /// A metric sample: a value on its counter track (described on first use; past
    /// [`MAX_COUNTERS`] names, counted as dropped).
    pub(super) fn metric(&mut self, name: StrId, value: f64, ns: u64, t: &Tables) {
        let n = t.name(name);
        let uuid = match self.counters.get(n.as_ref()) {
            Some(&u) => u,
            None if self.counters.len() >= MAX_COUNTERS
                || self.counter_bytes + n.len() > MAX_INTERNED_BYTES =>
            {
                self.dropped += 1;
                return;
            }
            None => {
                let u = COUNTER_TRACK_UUID_BASE + self.counters.len() as u64;
                self.counters.insert(n.to_string(), u);
                self.counter_bytes += n.len();
                self.descriptor(ns, |d| {
                    d.uint(field::track::UUID, u)
                        .uint(field::track::PARENT_UUID, PROCESS_TRACK_UUID)
                        .string(field::track::NAME, &n)
                        .message(field::track::COUNTER, |_| {});
                });
                u
            }
        };
        let mut ev = Ev::new(ns, uuid, fe::TYPE_COUNTER);
        ev.counter = Some(value);
        self.write_event(&ev);
    }
}
