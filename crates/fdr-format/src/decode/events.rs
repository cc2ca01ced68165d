//! Decoding one batch's events, lazily, each from its delta-encoded timestamp and kind.

use super::{DecodeError, ErrorKind};
use crate::event::{
    BlockReason, Event, EventKind, LossReason, Message, SampleCause, SiteId, StackFrames, StrId,
    TaskId, ThreadId,
};
use crate::varint;
use crate::wire::*;

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

    #[inline(always)]
    fn decode_one(&mut self) -> Result<Option<EventKind<'a>>, DecodeError> {
        let start = self.pos;
        self.decode_inner().map_err(|kind| DecodeError {
            offset: self.payload_offset + start as u64,
            kind,
        })
    }

    #[inline(always)]
    fn decode_inner(&mut self) -> Result<Option<EventKind<'a>>, ErrorKind> {
        let bad = ErrorKind::BadEvent;
        let delta = self.var().map_err(bad)?;
        self.ts = self.ts.wrapping_add(delta);
        let h = self.var().map_err(bad)?;
        let op = h >> CODE_BITS;
        let name = |op: u64| {
            u32::try_from(op)
                .map(StrId)
                .map_err(|_| bad("id over 32 bits"))
        };
        Ok(Some(match (h & 3) as u8 {
            CODE_REGION_BEGIN => EventKind::RegionBegin { name: name(op)? },
            CODE_REGION_END => EventKind::RegionEnd { name: name(op)? },
            CODE_LOG => {
                let category = name(op)?;
                let m = self.var().map_err(bad)?;
                let message = if m & 1 == 0 {
                    Message::Interned(name(m >> 1)?)
                } else {
                    let len = m >> 1;
                    if len > MAX_STRING_LEN as u64 {
                        return Err(bad("inline message over the length limit"));
                    }
                    let text = self
                        .buf
                        .get(self.pos..self.pos + len as usize)
                        .ok_or(bad("inline message cut short"))?;
                    self.pos += len as usize;
                    Message::Inline(text)
                };
                EventKind::Log { category, message }
            }
            _ => return self.decode_ext(op),
        }))
    }

    #[inline(always)]
    fn decode_ext(&mut self, kind: u64) -> Result<Option<EventKind<'a>>, ErrorKind> {
        let bad = ErrorKind::BadEvent;
        let ev = match kind {
            EXT_THREAD_START => EventKind::ThreadStart,
            EXT_THREAD_END => EventKind::ThreadEnd,
            EXT_TASK_CREATE => EventKind::TaskCreate {
                task: TaskId(self.var().map_err(bad)?),
                parent: TaskId(self.var().map_err(bad)?),
                name: StrId(self.id32().map_err(bad)?),
                site: SiteId(self.id32().map_err(bad)?),
            },
            EXT_POLL_START => EventKind::PollStart {
                task: TaskId(self.var().map_err(bad)?),
            },
            EXT_POLL_END => EventKind::PollEnd {
                task: TaskId(self.var().map_err(bad)?),
                ready: match self.var().map_err(bad)? {
                    0 => false,
                    1 => true,
                    _ => return Err(bad("poll result is neither 0 nor 1")),
                },
            },
            EXT_WAKE => EventKind::Wake {
                task: TaskId(self.var().map_err(bad)?),
                waker: TaskId(self.var().map_err(bad)?),
            },
            EXT_TASK_DROP => EventKind::TaskDrop {
                task: TaskId(self.var().map_err(bad)?),
            },
            EXT_USER_TASK_BEGIN => EventKind::UserTaskBegin {
                task: TaskId(self.var().map_err(bad)?),
                parent: TaskId(self.var().map_err(bad)?),
                name: StrId(self.id32().map_err(bad)?),
            },
            EXT_USER_TASK_END => EventKind::UserTaskEnd {
                task: TaskId(self.var().map_err(bad)?),
            },
            EXT_BLOCK_BEGIN => {
                let r = self.var().map_err(bad)?;
                let r = u8::try_from(r).map_err(|_| bad("block reason over 255"))?;
                EventKind::BlockBegin {
                    reason: BlockReason::from_wire(r),
                    site: SiteId(self.id32().map_err(bad)?),
                }
            }
            EXT_BLOCK_END => EventKind::BlockEnd,
            EXT_METRIC => EventKind::Metric {
                name: StrId(self.id32().map_err(bad)?),
                value: f64::from_le_bytes(self.array::<8>().map_err(bad)?),
            },
            EXT_OTEL_LINK => EventKind::OtelLink {
                task: TaskId(self.var().map_err(bad)?),
                trace_id: self.array::<16>().map_err(bad)?,
                span_id: self.array::<8>().map_err(bad)?,
            },
            EXT_LOSS => {
                let r = self.var().map_err(bad)?;
                let r = u8::try_from(r).map_err(|_| bad("loss reason over 255"))?;
                EventKind::Loss {
                    reason: LossReason::from_wire(r),
                    events: self.var().map_err(bad)?,
                    bytes: self.var().map_err(bad)?,
                }
            }
            EXT_PARK => EventKind::Park,
            EXT_UNPARK => EventKind::Unpark,
            k if k >= EXT_FIRST_SIZED => return self.decode_sized_event(k),
            k => return Err(ErrorKind::UnknownFixedKind(k)),
        };
        Ok(Some(ev))
    }

    /// A sized kind: its length, then its body (out of line: the OS view's and async
    /// regions' kinds are rarer than the fixed ones).
    #[inline(never)]
    fn decode_sized_event(&mut self, k: u64) -> Result<Option<EventKind<'a>>, ErrorKind> {
        let bad = ErrorKind::BadEvent;
        let len = self.var().map_err(bad)?;
        let end = (self.pos as u64)
            .checked_add(len)
            .filter(|&e| e <= self.buf.len() as u64)
            .ok_or(bad("sized event cut short"))? as usize;
        // The body is read within its own length; fields a newer minor appends
        // after the ones this version knows are skipped.
        let outer = self.buf;
        self.buf = &outer[..end];
        let known = self.decode_sized(k);
        self.buf = outer;
        let ev = known.map_err(bad)?;
        self.pos = end;
        if ev.is_none() {
            self.skipped_unknown += 1;
        }
        Ok(ev)
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
        let mut n = 0;
        // Bounded: every turn consumes at least one byte, or fails and stops.
        while n < max && self.pos < self.buf.len() {
            match self.decode_one() {
                Ok(Some(kind)) => {
                    each(Event { ts: self.ts, kind });
                    n += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    self.pos = self.buf.len();
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<Event<'a>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // Bounded: every turn consumes at least one byte, or fails and stops.
        while self.pos < self.buf.len() {
            match self.decode_one() {
                Ok(Some(kind)) => return Some(Ok(Event { ts: self.ts, kind })),
                Ok(None) => continue,
                Err(e) => {
                    // Fused: nothing follows an error.
                    self.pos = self.buf.len();
                    return Some(Err(e));
                }
            }
        }
        None
    }
}
