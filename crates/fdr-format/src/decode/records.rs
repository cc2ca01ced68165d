//! Decoding one table batch's records: strings, sites, threads, clock syncs, modules.

use super::{DecodeError, ErrorKind};
use crate::event::{ClockSync, SiteId, StrId, TableRecord, ThreadId};
use crate::varint;
use crate::wire::*;

/// Lazily decodes one table batch's records.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) payload_offset: u64,
    pub(super) skipped_unknown: u64,
    pub(super) failed: bool,
}

impl<'a> Records<'a> {
    /// Records of kinds this version does not know, skipped so far.
    pub fn skipped_unknown(&self) -> u64 {
        self.skipped_unknown
    }

    fn var(&mut self) -> Result<u64, ErrorKind> {
        varint::get(self.buf, &mut self.pos)
            .ok_or(ErrorKind::BadRecord("varint cut short or over 64 bits"))
    }

    fn id32(&mut self) -> Result<u32, ErrorKind> {
        u32::try_from(self.var()?).map_err(|_| ErrorKind::BadRecord("id over 32 bits"))
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8], ErrorKind> {
        if len > MAX_STRING_LEN as u64 {
            return Err(ErrorKind::BadRecord("string over the length limit"));
        }
        let s = self
            .buf
            .get(self.pos..self.pos + len as usize)
            .ok_or(ErrorKind::BadRecord("string cut short"))?;
        self.pos += len as usize;
        Ok(s)
    }

    /// A module record's body (`self.buf` cut at its end).
    fn module(&mut self) -> Result<TableRecord<'a>, ErrorKind> {
        let start = self.var()?;
        let end = self.var()?;
        let file_offset = self.var()?;
        let len = self.var()?;
        let path = self.bytes(len)?;
        let len = self.var()?;
        if len > MAX_BUILD_ID_LEN as u64 {
            return Err(ErrorKind::BadRecord("build id over the length limit"));
        }
        let build_id = self.bytes(len)?;
        if end < start {
            return Err(ErrorKind::BadRecord("module ends before it starts"));
        }
        Ok(TableRecord::Module {
            start,
            end,
            file_offset,
            path,
            build_id,
        })
    }

    fn decode_inner(&mut self) -> Result<Option<TableRecord<'a>>, ErrorKind> {
        let tag = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(match tag {
            REC_STRING => {
                let id = StrId(self.id32()?);
                let len = self.var()?;
                TableRecord::String {
                    id,
                    text: self.bytes(len)?,
                }
            }
            REC_SITE => TableRecord::Site {
                id: SiteId(self.id32()?),
                file: StrId(self.id32()?),
                line: self.id32()?,
                col: self.id32()?,
            },
            REC_THREAD => {
                let thread = ThreadId(self.id32()?);
                let os_tid = self.var()?;
                let len = self.var()?;
                TableRecord::Thread {
                    thread,
                    os_tid,
                    name: self.bytes(len)?,
                }
            }
            REC_CLOCK => {
                let ticks = self.var()?;
                let mono_ns = self.var()?;
                let wall_unix_ns = self.var()?;
                let f = self
                    .buf
                    .get(self.pos..self.pos + 8)
                    .ok_or(ErrorKind::BadRecord("clock record cut short"))?;
                self.pos += 8;
                let ticks_per_sec = f64::from_le_bytes(f.try_into().expect("8 bytes"));
                if !(ticks_per_sec.is_finite() && ticks_per_sec > 0.0) {
                    return Err(ErrorKind::BadRecord(
                        "clock frequency is not a positive number",
                    ));
                }
                TableRecord::Clock(ClockSync {
                    ticks,
                    mono_ns,
                    wall_unix_ns,
                    ticks_per_sec,
                })
            }
            REC_MODULE => {
                let len = self.var()?;
                let end = (self.pos as u64)
                    .checked_add(len)
                    .filter(|&e| e <= self.buf.len() as u64)
                    .ok_or(ErrorKind::BadRecord("sized record cut short"))?
                    as usize;
                let outer = self.buf;
                self.buf = &outer[..end];
                let module = self.module();
                self.buf = outer;
                self.pos = end;
                module?
            }
            t if t >= REC_FIRST_SIZED => {
                let len = self.var()?;
                let end = (self.pos as u64)
                    .checked_add(len)
                    .filter(|&e| e <= self.buf.len() as u64)
                    .ok_or(ErrorKind::BadRecord("sized record cut short"))?;
                self.pos = end as usize;
                self.skipped_unknown += 1;
                return Ok(None);
            }
            _ => return Err(ErrorKind::BadRecord("undefined record kind")),
        }))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<TableRecord<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.pos < self.buf.len() && !self.failed {
            let start = self.pos;
            match self.decode_inner() {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => continue,
                Err(kind) => {
                    self.failed = true;
                    return Some(Err(DecodeError {
                        offset: self.payload_offset + start as u64,
                        kind,
                    }));
                }
            }
        }
        None
    }
}
