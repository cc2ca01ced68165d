//! Packets, interning and the track events every part of the export writes: the event
//! categories and argument names interned in the first packet, the strings interned as
//! they come, and one `TrackEvent` per packet.

use std::collections::HashMap;
use std::io::Write;

use crate::limits::MAX_INTERNED_BYTES;

use super::field::{self, annotation as fa, event as fe, interned as fi, packet as fp};
use super::proto::{self, ProtoWriter};
use super::{MAX_INTERNED, PerfettoExport, SEQUENCE_ID};

/// Event categories, interned in the first packet as iids 1, 2, ….
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cat {
    Region = 1,
    Poll,
    Task,
    Block,
    Park,
    Log,
    Wake,
    Loss,
    AsyncRegion,
    Os,
}

pub(super) const CATEGORIES: [&str; 10] = [
    "region",
    "poll",
    "task",
    "block",
    "park",
    "log",
    "wake",
    "loss",
    "async_region",
    "os",
];

/// Argument names, interned in the first packet as iids 1, 2, ….
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arg {
    Task = 1,
    Ready,
    Site,
    Message,
    WokenTask,
    WakerTask,
    Reason,
    Events,
    Bytes,
    Thread,
    Unfinished,
    OtelTrace,
    OtelSpan,
    SpawnSite,
    OnCpuNs,
    RunqNs,
    OffCpuNs,
    State,
}

pub(super) const ARG_NAMES: [&str; 18] = [
    "task",
    "ready",
    "site",
    "message",
    "woken task",
    "waker task",
    "reason",
    "events",
    "bytes",
    "thread",
    "unfinished",
    "otel trace id",
    "otel span id",
    "spawn site",
    "on-CPU ns",
    "waiting for a CPU ns",
    "off-CPU ns",
    "state",
];

/// An argument value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Val<'a> {
    Uint(u64),
    Bool(bool),
    /// A string that repeats (a site, a static message): interned.
    Interned(&'a str),
    /// A string that may not repeat (a formatted message): written inline.
    Inline(&'a str),
}

/// Strings with an iid each, up to [`MAX_INTERNED`] of them and [`MAX_INTERNED_BYTES`].
#[derive(Debug, Default)]
pub(super) struct Interner {
    ids: HashMap<String, u64>,
    bytes: usize,
}

impl Interner {
    /// The iid of `s`, and whether it is new (to be written in this packet's
    /// interned data); `None` when the table is full.
    pub(super) fn get(&mut self, s: &str) -> Option<(u64, bool)> {
        if let Some(&id) = self.ids.get(s) {
            return Some((id, false));
        }
        if self.ids.len() >= MAX_INTERNED || self.bytes + s.len() > MAX_INTERNED_BYTES {
            return None;
        }
        let id = self.ids.len() as u64 + 1;
        self.ids.insert(s.to_owned(), id);
        self.bytes += s.len();
        Some((id, true))
    }
}

/// One track event to write.
pub(super) struct Ev<'a> {
    pub(super) ns: u64,
    pub(super) track: u64,
    pub(super) ty: u64,
    pub(super) cat: Option<Cat>,
    pub(super) name: Option<&'a str>,
    pub(super) args: &'a [(Arg, Val<'a>)],
    pub(super) flow: Option<u64>,
    pub(super) terminating_flow: Option<u64>,
    pub(super) counter: Option<f64>,
}

impl<'a> Ev<'a> {
    pub(super) fn new(ns: u64, track: u64, ty: u64) -> Self {
        Ev {
            ns,
            track,
            ty,
            cat: None,
            name: None,
            args: &[],
            flow: None,
            terminating_flow: None,
            counter: None,
        }
    }
}

/// An interned-data entry: `{iid = 1, name/str = 2}`.
pub(super) fn entry(w: &mut ProtoWriter, table: u32, iid: u64, s: &[u8]) {
    w.message(table, |e| {
        e.uint(fi::ENTRY_IID, iid).bytes_field(fi::ENTRY_STRING, s);
    });
}

impl<W: Write> PerfettoExport<W> {
    /// Frames the packet under construction as a `Trace.packet` field and writes it.
    pub(super) fn flush_packet(&mut self) {
        let body = self.packet.bytes();
        let mut head = Vec::with_capacity(11);
        head.push(((field::trace::PACKET << 3) | u32::from(proto::WIRE_LEN)) as u8);
        proto::push_varint(&mut head, body.len() as u64);
        if self.error.is_none() {
            let r = self
                .out
                .write_all(&head)
                .and_then(|()| self.out.write_all(body));
            if let Err(e) = r {
                self.error = Some(e);
            }
        }
        self.bytes += (head.len() + body.len()) as u64;
        self.packets += 1;
        self.packet.clear();
    }

    /// A packet holding one track descriptor, written by `body`.
    pub(super) fn descriptor(&mut self, ns: u64, body: impl FnOnce(&mut ProtoWriter)) {
        self.packet
            .uint(fp::TIMESTAMP, ns)
            .uint(fp::TRUSTED_PACKET_SEQUENCE_ID, u64::from(SEQUENCE_ID))
            .message(fp::TRACK_DESCRIPTOR, body);
        self.flush_packet();
    }

    /// The iid of event name `s`, adding it to this packet's interned data when new.
    pub(super) fn name_iid(&mut self, s: &str) -> Option<u64> {
        let (id, new) = self.names.get(s)?;
        if new {
            entry(&mut self.interned, fi::EVENT_NAMES, id, s.as_bytes());
        }
        Some(id)
    }

    /// The iid of argument string `s`, adding it to this packet's interned data when new.
    pub(super) fn value_iid(&mut self, s: &str) -> Option<u64> {
        let (id, new) = self.values.get(s)?;
        if new {
            entry(
                &mut self.interned,
                fi::DEBUG_ANNOTATION_STRING_VALUES,
                id,
                s.as_bytes(),
            );
        }
        Some(id)
    }

    pub(super) fn write_event(&mut self, ev: &Ev<'_>) {
        // Resolve interned ids first: new entries go into this packet's interned data.
        self.interned.clear();
        let name = ev.name.map(|n| (n, self.name_iid(n)));
        // Events have at most four arguments; a fifth's string would be written inline.
        let mut value_ids = [None; 4];
        for (slot, (_, v)) in value_ids.iter_mut().zip(ev.args) {
            if let Val::Interned(s) = v {
                *slot = self.value_iid(s);
            }
        }
        let p = &mut self.packet;
        p.uint(fp::TIMESTAMP, ev.ns)
            .uint(fp::TRUSTED_PACKET_SEQUENCE_ID, u64::from(SEQUENCE_ID))
            .uint(fp::SEQUENCE_FLAGS, fp::SEQ_NEEDS_INCREMENTAL_STATE);
        if !self.interned.is_empty() {
            let interned = self.interned.bytes();
            p.message(fp::INTERNED_DATA, |m| {
                m.raw(interned);
            });
        }
        p.message(fp::TRACK_EVENT, |m| {
            m.uint(fe::TYPE, ev.ty).uint(fe::TRACK_UUID, ev.track);
            if let Some(c) = ev.cat {
                m.uint(fe::CATEGORY_IIDS, c as u64);
            }
            match name {
                Some((_, Some(iid))) => {
                    m.uint(fe::NAME_IID, iid);
                }
                Some((n, None)) => {
                    m.string(fe::NAME, n);
                }
                None => {}
            }
            for (i, (arg, v)) in ev.args.iter().enumerate() {
                m.message(fe::DEBUG_ANNOTATIONS, |a| {
                    a.uint(fa::NAME_IID, *arg as u64);
                    match *v {
                        Val::Uint(x) => {
                            a.uint(fa::UINT_VALUE, x);
                        }
                        Val::Bool(b) => {
                            a.boolean(fa::BOOL_VALUE, b);
                        }
                        Val::Interned(s) => match value_ids.get(i).copied().flatten() {
                            Some(iid) => {
                                a.uint(fa::STRING_VALUE_IID, iid);
                            }
                            None => {
                                a.string(fa::STRING_VALUE, s);
                            }
                        },
                        Val::Inline(s) => {
                            a.string(fa::STRING_VALUE, s);
                        }
                    }
                });
            }
            if let Some(f) = ev.flow {
                m.fixed64(fe::FLOW_IDS, f);
            }
            if let Some(f) = ev.terminating_flow {
                m.fixed64(fe::TERMINATING_FLOW_IDS, f);
            }
            if let Some(v) = ev.counter {
                m.double(fe::DOUBLE_COUNTER_VALUE, v);
            }
        });
        self.flush_packet();
    }
}
