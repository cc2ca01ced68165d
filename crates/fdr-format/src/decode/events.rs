//! Decoding one batch's events, lazily, each from its delta-encoded timestamp and kind.

use super::{DecodeError, ErrorKind};
use crate::event::{
    BlockReason, Event, EventKind, LossReason, Message, SampleCause, SiteId, StackFrames, StrId,
    TaskId, ThreadId,
};
use crate::kind::Kind;
use crate::varint;
use crate::wire::*;

/// An event as decoded, before it is made an [`EventKind`]: its time, kind and fields as
/// plain numbers, and the range in its batch's payload of the bytes it borrows (an inline
/// log message; the whole body of an OpenTelemetry link, OS sample, stack or async
/// region, decoded again by [`RawEvent::kind`]). Small and borrowing nothing, it moves
/// cheaply between buffers and threads; [`Events::decode_raw_up_to`] decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    ts: u64,
    a: u64,
    b: u64,
    c: u32,
    d: u32,
    kind: Kind,
    flags: u8,
}

/// Kinds whose [`RawEvent`] holds a task in its first field.
const TASK_KINDS: u32 = 1 << Kind::TaskCreate as u32
    | 1 << Kind::PollStart as u32
    | 1 << Kind::PollEnd as u32
    | 1 << Kind::Wake as u32
    | 1 << Kind::TaskDrop as u32
    | 1 << Kind::UserTaskBegin as u32
    | 1 << Kind::UserTaskEnd as u32;

impl RawEvent {
    #[inline(always)]
    fn new(ts: u64, kind: Kind) -> Self {
        RawEvent {
            ts,
            a: 0,
            b: 0,
            c: 0,
            d: 0,
            kind,
            flags: 0,
        }
    }

    /// Clock ticks, as [`Event::ts`].
    #[inline]
    pub fn ts(&self) -> u64 {
        self.ts
    }

    /// The event's kind.
    #[inline]
    pub fn which(&self) -> Kind {
        self.kind
    }

    /// The task of a task creation, poll start or end, wake, task drop, user-task begin or
    /// end ([`TaskId::NONE`] for other kinds).
    #[inline]
    pub fn task(&self) -> TaskId {
        if TASK_KINDS >> self.kind as u32 & 1 != 0 {
            TaskId(self.a)
        } else {
            TaskId::NONE
        }
    }

    /// The range of the payload's bytes the event borrows (start, length), if it borrows.
    #[inline]
    pub fn bytes(&self) -> Option<(usize, usize)> {
        let borrows = match self.kind {
            Kind::Log => self.flags != 0,
            Kind::OtelLink
            | Kind::OsSample
            | Kind::Stack
            | Kind::AsyncRegionBegin
            | Kind::AsyncRegionEnd => true,
            _ => false,
        };
        borrows.then_some((self.a as usize, self.b as usize))
    }

    /// Appends the bytes the event borrows (a range of `from`, the bytes it was decoded
    /// from) to `to`, and points the event at them there.
    ///
    /// # Panics
    /// If `from` does not hold the event's range.
    #[inline]
    pub fn move_bytes(&mut self, from: &[u8], to: &mut Vec<u8>) {
        if let Some((start, len)) = self.bytes() {
            self.a = to.len() as u64;
            to.extend_from_slice(&from[start..start + len]);
        }
    }

    /// The event as an [`EventKind`], borrowing from `bytes`: the payload it was decoded
    /// from, or the bytes [`RawEvent::move_bytes`] moved its range to.
    ///
    /// # Panics
    /// If `bytes` are not those: the range is missing or does not decode as it did.
    #[inline(always)]
    pub fn kind<'a>(&self, bytes: &'a [u8]) -> EventKind<'a> {
        let (a, b, c, d) = (self.a, self.b, self.c, self.d);
        match self.kind {
            Kind::RegionBegin => EventKind::RegionBegin { name: StrId(c) },
            Kind::RegionEnd => EventKind::RegionEnd { name: StrId(c) },
            Kind::Log => EventKind::Log {
                category: StrId(c),
                message: if self.flags == 0 {
                    Message::Interned(StrId(d))
                } else {
                    Message::Inline(&bytes[a as usize..(a + b) as usize])
                },
            },
            Kind::ThreadStart => EventKind::ThreadStart,
            Kind::ThreadEnd => EventKind::ThreadEnd,
            Kind::TaskCreate => EventKind::TaskCreate {
                task: TaskId(a),
                parent: TaskId(b),
                name: StrId(c),
                site: SiteId(d),
            },
            Kind::PollStart => EventKind::PollStart { task: TaskId(a) },
            Kind::PollEnd => EventKind::PollEnd {
                task: TaskId(a),
                ready: self.flags != 0,
            },
            Kind::Wake => EventKind::Wake {
                task: TaskId(a),
                waker: TaskId(b),
            },
            Kind::TaskDrop => EventKind::TaskDrop { task: TaskId(a) },
            Kind::UserTaskBegin => EventKind::UserTaskBegin {
                task: TaskId(a),
                parent: TaskId(b),
                name: StrId(c),
            },
            Kind::UserTaskEnd => EventKind::UserTaskEnd { task: TaskId(a) },
            Kind::BlockBegin => EventKind::BlockBegin {
                reason: BlockReason::from_wire(self.flags),
                site: SiteId(d),
            },
            Kind::BlockEnd => EventKind::BlockEnd,
            Kind::Metric => EventKind::Metric {
                name: StrId(c),
                value: f64::from_bits(a),
            },
            Kind::Loss => EventKind::Loss {
                reason: LossReason::from_wire(self.flags),
                events: a,
                bytes: b,
            },
            Kind::Park => EventKind::Park,
            Kind::Unpark => EventKind::Unpark,
            Kind::OtelLink
            | Kind::OsSample
            | Kind::Stack
            | Kind::AsyncRegionBegin
            | Kind::AsyncRegionEnd => self.body_kind(&bytes[a as usize..(a + b) as usize]),
        }
    }

    /// A kind whose body is decoded again from `body`.
    #[inline(never)]
    fn body_kind<'a>(&self, body: &'a [u8]) -> EventKind<'a> {
        let mut e = Events {
            buf: body,
            pos: 0,
            ts: 0,
            payload_offset: 0,
            skipped_unknown: 0,
        };
        let ext = match self.kind {
            Kind::OsSample => EXT_OS_SAMPLE,
            Kind::Stack => EXT_STACK,
            Kind::AsyncRegionBegin => EXT_ASYNC_REGION_BEGIN,
            Kind::AsyncRegionEnd => EXT_ASYNC_REGION_END,
            _ => {
                return e
                    .otel_link()
                    .expect("an OpenTelemetry link decodes as it did");
            }
        };
        match e.decode_sized(ext) {
            Ok(Some(k)) => k,
            _ => panic!("a sized event's body decodes as it did"),
        }
    }
}

/// What the decoding loop makes of an event: a [`RawEvent`] (the merger's) or an
/// [`EventKind`] (the iterator's). The loop is written once; each arm hands its fields with
/// its kind a constant, so that [`RawEvent::kind`]'s match folds away in the `EventKind`
/// loop: neither loop tells the kind apart twice (an unpredictable jump per event).
trait Make<'a>: Sized {
    /// The event of a fixed kind (or a log), its fields as a [`RawEvent`] keeps them,
    /// borrowing from `buf`, the payload.
    fn make(r: RawEvent, buf: &'a [u8]) -> Self;
    /// A sized kind's event, already decoded whole as `ev` (the body's range is in `r`).
    fn sized(r: RawEvent, ev: EventKind<'a>) -> Self;
}

impl<'a> Make<'a> for RawEvent {
    #[inline(always)]
    fn make(r: RawEvent, _buf: &'a [u8]) -> Self {
        r
    }
    #[inline(always)]
    fn sized(r: RawEvent, _ev: EventKind<'a>) -> Self {
        r
    }
}

impl<'a> Make<'a> for EventKind<'a> {
    #[inline(always)]
    fn make(r: RawEvent, buf: &'a [u8]) -> Self {
        r.kind(buf)
    }
    #[inline(always)]
    fn sized(_r: RawEvent, ev: EventKind<'a>) -> Self {
        ev
    }
}

/// Why the decoding loop made no event: a kind this version does not know (skipped), or
/// a malformed event.
enum Step {
    Skipped,
    Bad(ErrorKind),
}

/// Lazily decodes one batch's events.
#[derive(Debug, Clone)]
pub struct Events<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) ts: u64,
    pub(super) payload_offset: u64,
    pub(super) skipped_unknown: u64,
}

impl<'a> Events<'a> {
    /// Events of kinds this version does not know, skipped so far.
    pub fn skipped_unknown(&self) -> u64 {
        self.skipped_unknown
    }

    /// Timestamp of the last event decoded (the batch base before the first).
    pub fn last_ts(&self) -> u64 {
        self.ts
    }

    /// Bytes of the payload decoded so far: the events after them decode on their own as
    /// an [`EventBatch`](crate::decode::EventBatch) of the rest of the payload whose base timestamp is
    /// [`Events::last_ts`] (and whose offset is this many bytes further on).
    pub fn bytes_decoded(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn var(&mut self) -> Result<u64, &'static str> {
        varint::get(self.buf, &mut self.pos).ok_or("varint cut short or over 64 bits")
    }

    #[inline(always)]
    fn id32(&mut self) -> Result<u32, &'static str> {
        let v = self.var()?;
        u32::try_from(v).map_err(|_| "id over 32 bits")
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let s = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or("fixed field cut short")?;
        self.pos += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Decodes up to `max` events as `M`s, handing each to `each` with its time; kinds this
    /// version does not know are skipped (not counted). A malformed event stops it and is
    /// returned; nothing follows it (the rest of the payload counts as decoded). The one
    /// loop of [`Iterator::next`], [`Events::decode_up_to`] and
    /// [`Events::decode_raw_up_to`]: a made event goes straight to `each`, never through an
    /// `Option`.
    #[inline(always)]
    fn decode_run<M: Make<'a>>(
        &mut self,
        max: usize,
        mut each: impl FnMut(M, u64),
    ) -> Result<(), DecodeError> {
        let mut n = 0;
        // Bounded: every turn consumes at least one byte, or fails and stops.
        while n < max && self.pos < self.buf.len() {
            let start = self.pos;
            match self.decode_inner::<M>() {
                Ok(m) => {
                    each(m, self.ts);
                    n += 1;
                }
                Err(Step::Skipped) => {}
                Err(Step::Bad(kind)) => {
                    self.pos = self.buf.len();
                    return Err(DecodeError {
                        offset: self.payload_offset + start as u64,
                        kind,
                    });
                }
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn decode_inner<M: Make<'a>>(&mut self) -> Result<M, Step> {
        let bad = |what| Step::Bad(ErrorKind::BadEvent(what));
        let delta = self.var().map_err(bad)?;
        self.ts = self.ts.wrapping_add(delta);
        let h = self.var().map_err(bad)?;
        let op = h >> CODE_BITS;
        let name = |op: u64| u32::try_from(op).map_err(|_| bad("id over 32 bits"));
        let (buf, mut r) = (self.buf, RawEvent::new(self.ts, Kind::RegionBegin));
        // Each arm makes its event with its kind a constant (see [`Make`]).
        Ok(match (h & 3) as u8 {
            CODE_REGION_BEGIN => {
                r.c = name(op)?;
                M::make(r, buf)
            }
            CODE_REGION_END => {
                (r.kind, r.c) = (Kind::RegionEnd, name(op)?);
                M::make(r, buf)
            }
            CODE_LOG => {
                (r.kind, r.c) = (Kind::Log, name(op)?);
                let m = self.var().map_err(bad)?;
                if m & 1 == 0 {
                    r.d = name(m >> 1)?;
                } else {
                    let len = m >> 1;
                    if len > MAX_STRING_LEN as u64 {
                        return Err(bad("inline message over the length limit"));
                    }
                    self.buf
                        .get(self.pos..self.pos + len as usize)
                        .ok_or(bad("inline message cut short"))?;
                    (r.flags, r.a, r.b) = (1, self.pos as u64, len);
                    self.pos += len as usize;
                }
                M::make(r, buf)
            }
            _ => return self.decode_ext(op, r),
        })
    }

    fn otel_link(&mut self) -> Result<EventKind<'a>, &'static str> {
        Ok(EventKind::OtelLink {
            task: TaskId(self.var()?),
            trace_id: self.array::<16>()?,
            span_id: self.array::<8>()?,
        })
    }

    #[inline(always)]
    fn decode_ext<M: Make<'a>>(&mut self, kind: u64, mut r: RawEvent) -> Result<M, Step> {
        let bad = |what| Step::Bad(ErrorKind::BadEvent(what));
        let (buf, start) = (self.buf, self.pos);
        // Made in each arm, with the arm's kind: `make` then folds to that kind's
        // constructor (see [`Make`]).
        let make = |mut r: RawEvent, kind: Kind| {
            r.kind = kind;
            Ok(M::make(r, buf))
        };
        match kind {
            EXT_THREAD_START => make(r, Kind::ThreadStart),
            EXT_THREAD_END => make(r, Kind::ThreadEnd),
            EXT_TASK_CREATE => {
                (r.a, r.b) = (self.var().map_err(bad)?, self.var().map_err(bad)?);
                (r.c, r.d) = (self.id32().map_err(bad)?, self.id32().map_err(bad)?);
                make(r, Kind::TaskCreate)
            }
            EXT_POLL_START => {
                r.a = self.var().map_err(bad)?;
                make(r, Kind::PollStart)
            }
            EXT_POLL_END => {
                r.a = self.var().map_err(bad)?;
                r.flags = match self.var().map_err(bad)? {
                    0 => 0,
                    1 => 1,
                    _ => return Err(bad("poll result is neither 0 nor 1")),
                };
                make(r, Kind::PollEnd)
            }
            EXT_WAKE => {
                (r.a, r.b) = (self.var().map_err(bad)?, self.var().map_err(bad)?);
                make(r, Kind::Wake)
            }
            EXT_TASK_DROP => {
                r.a = self.var().map_err(bad)?;
                make(r, Kind::TaskDrop)
            }
            EXT_USER_TASK_BEGIN => {
                (r.a, r.b) = (self.var().map_err(bad)?, self.var().map_err(bad)?);
                r.c = self.id32().map_err(bad)?;
                make(r, Kind::UserTaskBegin)
            }
            EXT_USER_TASK_END => {
                r.a = self.var().map_err(bad)?;
                make(r, Kind::UserTaskEnd)
            }
            EXT_BLOCK_BEGIN => {
                let v = self.var().map_err(bad)?;
                r.flags = u8::try_from(v).map_err(|_| bad("block reason over 255"))?;
                r.d = self.id32().map_err(bad)?;
                make(r, Kind::BlockBegin)
            }
            EXT_BLOCK_END => make(r, Kind::BlockEnd),
            EXT_METRIC => {
                r.c = self.id32().map_err(bad)?;
                r.a = u64::from_le_bytes(self.array::<8>().map_err(bad)?);
                make(r, Kind::Metric)
            }
            EXT_OTEL_LINK => {
                self.otel_link().map_err(bad)?;
                (r.a, r.b) = (start as u64, (self.pos - start) as u64);
                make(r, Kind::OtelLink)
            }
            EXT_LOSS => {
                let v = self.var().map_err(bad)?;
                r.flags = u8::try_from(v).map_err(|_| bad("loss reason over 255"))?;
                (r.a, r.b) = (self.var().map_err(bad)?, self.var().map_err(bad)?);
                make(r, Kind::Loss)
            }
            EXT_PARK => make(r, Kind::Park),
            EXT_UNPARK => make(r, Kind::Unpark),
            k if k >= EXT_FIRST_SIZED => self.decode_sized_event(k, r),
            k => Err(Step::Bad(ErrorKind::UnknownFixedKind(k))),
        }
    }

    /// A sized kind: its length, then its body (out of line: the OS view's and async
    /// regions' kinds are rarer than the fixed ones).
    #[inline(never)]
    fn decode_sized_event<M: Make<'a>>(&mut self, k: u64, mut r: RawEvent) -> Result<M, Step> {
        let bad = |what| Step::Bad(ErrorKind::BadEvent(what));
        let len = self.var().map_err(bad)?;
        let end = (self.pos as u64)
            .checked_add(len)
            .filter(|&e| e <= self.buf.len() as u64)
            .ok_or(bad("sized event cut short"))? as usize;
        // The body is read within its own length; fields a newer minor appends
        // after the ones this version knows are skipped.
        let (outer, body) = (self.buf, self.pos);
        self.buf = &outer[..end];
        let known = self.decode_sized(k);
        self.buf = outer;
        let ev = known.map_err(bad)?;
        // The range of the body's known fields (not the fields of a newer minor after
        // them, which may be long): `RawEvent::kind` decodes it again (it is valid).
        (r.a, r.b) = (body as u64, (self.pos - body) as u64);
        self.pos = end;
        let Some(ev) = ev else {
            self.skipped_unknown += 1;
            return Err(Step::Skipped);
        };
        r.kind = ev.kind();
        Ok(M::sized(r, ev))
    }
}

impl<'a> Events<'a> {
    /// The body of a sized kind, `self.buf` cut at its end; `None` for a kind this version
    /// does not define.
    fn decode_sized(&mut self, kind: u64) -> Result<Option<EventKind<'a>>, &'static str> {
        let small = |v: u64, what: &'static str| u8::try_from(v).map_err(|_| what);
        Ok(Some(match kind {
            EXT_OS_SAMPLE => {
                let thread = ThreadId(self.id32()?);
                let cause = SampleCause::from_wire(small(self.var()?, "sample cause over 255")?);
                let flags = self.var()?;
                let mut field = |bit: u64| -> Result<Option<u64>, &'static str> {
                    if flags & bit != 0 {
                        self.var().map(Some)
                    } else {
                        Ok(None)
                    }
                };
                let cpu_ns = field(OS_HAS_CPU)?;
                let runq_ns = field(OS_HAS_RUNQ)?;
                let timeslices = field(OS_HAS_SLICES)?;
                let state = if flags & OS_HAS_STATE != 0 {
                    Some(self.array::<1>()?[0])
                } else {
                    None
                };
                EventKind::OsSample {
                    thread,
                    cause,
                    cpu_ns,
                    runq_ns,
                    timeslices,
                    state,
                }
            }
            EXT_STACK => {
                let thread = ThreadId(self.id32()?);
                let cause = SampleCause::from_wire(small(self.var()?, "sample cause over 255")?);
                let flags = self.var()?;
                let count = self.var()?;
                if count > MAX_STACK_FRAMES as u64 {
                    return Err("stack over the frame limit");
                }
                let start = self.pos;
                for _ in 0..count {
                    self.var()?;
                }
                let frames = StackFrames::from_encoded(&self.buf[start..self.pos], count as usize)
                    .ok_or("stack frames malformed")?;
                let age_ticks = if flags & STACK_HAS_AGE != 0 {
                    Some(self.var()?)
                } else {
                    None
                };
                EventKind::Stack {
                    thread,
                    cause,
                    truncated: flags & STACK_TRUNCATED != 0,
                    frames,
                    age_ticks,
                }
            }
            EXT_ASYNC_REGION_BEGIN => EventKind::AsyncRegionBegin {
                region: self.var()?,
                task: TaskId(self.var()?),
                name: StrId(self.id32()?),
            },
            EXT_ASYNC_REGION_END => EventKind::AsyncRegionEnd {
                region: self.var()?,
                task: TaskId(self.var()?),
            },
            _ => return Ok(None),
        }))
    }
}

impl<'a> Events<'a> {
    /// Decodes up to `max` events, handing each to `each` in order (kinds this version
    /// does not know are skipped, as [`Iterator::next`] skips them). A malformed event
    /// stops it and is returned; nothing follows it, as nothing follows an error `next`
    /// returns. The same events as `max` calls of `next`, quicker: the decoding loop is one
    /// function, so its state stays in registers.
    #[inline]
    pub fn decode_up_to(
        &mut self,
        max: usize,
        mut each: impl FnMut(Event<'a>),
    ) -> Result<(), DecodeError> {
        self.decode_run::<EventKind<'a>>(max, |kind, ts| each(Event { ts, kind }))
    }
}

impl Events<'_> {
    /// [`Events::decode_up_to`], the events as [`RawEvent`]s: small values that borrow
    /// nothing, each made an [`EventKind`] by [`RawEvent::kind`] with this batch's payload
    /// (or the bytes its [`RawEvent::bytes`] were moved to).
    #[inline]
    pub fn decode_raw_up_to(
        &mut self,
        max: usize,
        mut each: impl FnMut(RawEvent),
    ) -> Result<(), DecodeError> {
        self.decode_run::<RawEvent>(max, |r, _| each(r))
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<Event<'a>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // The next event made (kinds this version does not know skipped); fused: nothing
        // follows an error.
        let mut out = None;
        match self.decode_run::<EventKind<'a>>(1, |kind, ts| out = Some(Event { ts, kind })) {
            Ok(()) => out.map(Ok),
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Batch, Decoder};

    /// Every event of the every-kind trace, decoded raw (in runs of three), made a kind
    /// from the payload and again after its bytes were moved: the same as `next` decodes.
    #[test]
    fn raw_events_make_the_kinds_next_decodes() {
        let bytes = crate::testing::every_kind_trace();
        let mut d = Decoder::new(&bytes[..]).unwrap();
        let mut seen = 0;
        while let Some(b) = d.next_batch() {
            let Batch::Events(b) = b.unwrap() else {
                continue;
            };
            let want: Vec<_> = b.events().map(|e| e.unwrap()).collect();
            let mut raw = Vec::new();
            let mut events = b.events();
            while events.bytes_decoded() < b.payload.len() {
                events.decode_raw_up_to(3, |r| raw.push(r)).unwrap();
            }
            assert_eq!(raw.len(), want.len());
            let mut moved = vec![0xee; 5];
            for (r, w) in raw.iter().zip(&want) {
                assert_eq!((r.ts(), r.kind(b.payload)), (w.ts, w.kind));
                assert_eq!(r.which(), w.kind.kind());
                let mut m = *r;
                m.move_bytes(b.payload, &mut moved);
                assert_eq!(m.kind(&moved), w.kind);
                assert_eq!(m.bytes().is_some(), r.bytes().is_some());
                seen += 1;
            }
        }
        assert!(seen > 20, "{seen}");
    }

    /// A sized event's range covers its known fields only: bytes a newer minor appends
    /// (here 1,000) are not carried along.
    #[test]
    fn a_raw_sized_event_borrows_its_known_fields_only() {
        use crate::event::{EventKind, SampleCause, ThreadId};
        use crate::wire::{CODE_BITS, CODE_EXT, EXT_OS_SAMPLE};
        let mut payload = Vec::new();
        crate::varint::push(&mut payload, 5);
        crate::varint::push(
            &mut payload,
            EXT_OS_SAMPLE << CODE_BITS | u64::from(CODE_EXT),
        );
        // Thread 3, periodic, no counters; then what a newer minor appended.
        let body = [[3u8, 0, 0].as_slice(), &[0x7f; 1000]].concat();
        crate::varint::push(&mut payload, body.len() as u64);
        payload.extend_from_slice(&body);
        let b = crate::EventBatch {
            offset: 0,
            thread: ThreadId(1),
            seq: 0,
            base_ts: 0,
            payload: &payload,
        };
        let mut raw = Vec::new();
        b.events().decode_raw_up_to(10, |r| raw.push(r)).unwrap();
        assert_eq!(raw.len(), 1);
        assert_eq!(raw[0].bytes().map(|r| r.1), Some(3));
        let mut moved = Vec::new();
        raw[0].move_bytes(&payload, &mut moved);
        assert_eq!(moved.len(), 3);
        let want = EventKind::OsSample {
            thread: ThreadId(3),
            cause: SampleCause::Periodic,
            cpu_ns: None,
            runq_ns: None,
            timeslices: None,
            state: None,
        };
        assert_eq!(raw[0].kind(&moved), want);
        assert_eq!(b.events().next().unwrap().unwrap().kind, want);
    }

    /// A task event's task; none for the others.
    #[test]
    fn a_raw_event_names_the_task_of_task_events_only() {
        use crate::event::{EventKind, StrId, TaskId};
        let mut buf = vec![0u8; 256];
        let mut enc = crate::BatchEncoder::new(&mut buf, 0);
        let kinds = [
            EventKind::PollStart { task: TaskId(7) },
            EventKind::PollEnd {
                task: TaskId(8),
                ready: true,
            },
            EventKind::RegionBegin { name: StrId(9) },
        ];
        for (i, k) in kinds.iter().enumerate() {
            enc.push(i as u64, k).unwrap();
        }
        let payload = enc.payload().to_vec();
        let b = crate::EventBatch {
            offset: 0,
            thread: crate::ThreadId(1),
            seq: 0,
            base_ts: 0,
            payload: &payload,
        };
        let mut raw = Vec::new();
        b.events().decode_raw_up_to(10, |r| raw.push(r)).unwrap();
        let tasks: Vec<_> = raw.iter().map(|r| r.task()).collect();
        assert_eq!(tasks, [TaskId(7), TaskId(8), TaskId::NONE]);
    }
}
