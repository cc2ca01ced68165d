//! Streaming decoding: batches from a slice, `Bytes` or any `io::Read`; events and table
//! records lazily from each batch.
//!
//! The decoder never panics on bad input and never allocates more than the input backs:
//! a slice or `Bytes` input is borrowed, a reader's batch is read into one reused buffer
//! that grows only as bytes actually arrive. On damage it stops with a [`DecodeError`]
//! naming the byte offset; everything before it was already yielded.

use std::io::{self, Read};

use bytes::Bytes;

use crate::checksum::batch_checksum;
use crate::event::{
    BlockReason, ClockSync, Event, EventKind, LossReason, Message, ProcessInfo, SampleCause,
    SiteId, StackFrames, StrId, TableRecord, TaskId, ThreadId,
};
use crate::varint;
use crate::wire::*;

/// Where and why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Byte offset in the input where the problem starts.
    pub offset: u64,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The first bytes are not the fdr magic.
    #[error("not an fdr trace (the file does not start with the fdr magic bytes)")]
    BadMagic,
    /// A major version this reader does not read.
    #[error(
        "trace format version {major}.{minor} is not supported (this reader reads {VERSION_MAJOR}.x)"
    )]
    UnsupportedVersion {
        /// Major version in the file.
        major: u16,
        /// Minor version in the file.
        minor: u16,
    },
    /// The input ended inside the file header.
    #[error("file header cut short: {needed} bytes needed, {available} present")]
    TruncatedHeader {
        /// Bytes the header needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The process-info block is implausibly large or malformed.
    #[error("malformed file header: {0}")]
    BadHeader(&'static str),
    /// The input ended inside a batch header.
    #[error("batch header cut short: {available} of {BATCH_HEADER_LEN} bytes present")]
    TruncatedBatchHeader {
        /// Bytes present.
        available: u64,
    },
    /// The input ended inside a batch payload.
    #[error("batch cut short: header declares {declared} payload bytes, {available} present")]
    TruncatedBatch {
        /// Declared payload length.
        declared: u32,
        /// Bytes present.
        available: u64,
    },
    /// A batch tag this reader does not know.
    #[error("unknown batch tag 0x{0:02x}")]
    BadTag(u8),
    /// A declared payload length over the limit.
    #[error("batch declares {0} payload bytes, over the {MAX_BATCH_PAYLOAD}-byte limit")]
    BatchTooLarge(u32),
    /// The batch's checksum does not match its bytes.
    #[error("batch checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The input ended without an end marker.
    #[error("trace ends without an end marker: cut short, or its writer stopped mid-way")]
    MissingEnd,
    /// The end marker's batch count disagrees with the batches read.
    #[error("end marker counts {declared} batches, {read} were read")]
    BatchCountMismatch {
        /// Batches the end marker declares.
        declared: u64,
        /// Batches read.
        read: u64,
    },
    /// Bytes follow the end marker (from a reader input, counted up to
    /// [`MAX_TRAILING_COUNT_BYTES`]).
    #[error("{0} unexpected bytes after the end marker")]
    TrailingData(u64),
    /// A malformed event inside a batch whose checksum matched (a writer bug or crafted input).
    #[error("malformed event: {0}")]
    BadEvent(&'static str),
    /// An extended kind in the fixed-layout range that this version does not define.
    #[error("undefined fixed-layout event kind {0} (written by a newer major version?)")]
    UnknownFixedKind(u64),
    /// A malformed table record.
    #[error("malformed table record: {0}")]
    BadRecord(&'static str),
    /// Reading the input failed.
    #[error("read failed: {0}")]
    Io(io::ErrorKind),
}

/// A byte source the decoder reads batches from.
pub trait Input {
    /// Returns up to `n` next bytes (fewer only at the end of the input) and consumes them.
    fn take(&mut self, n: usize) -> io::Result<&[u8]>;
    /// Whether any input remains (may read ahead).
    fn at_end(&mut self) -> io::Result<bool>;
    /// Bytes remaining, if known without reading.
    fn remaining_hint(&self) -> Option<u64>;
    /// Bytes remaining: [`Input::remaining_hint`] if known, else counted by reading and
    /// discarding at most `max` bytes (so the count is a lower bound when it reaches `max`).
    fn count_remaining(&mut self, max: u64) -> io::Result<u64> {
        if let Some(n) = self.remaining_hint() {
            return Ok(n);
        }
        let mut count = 0u64;
        while count < max {
            let step = (max - count).min(4096) as usize;
            let got = self.take(step)?.len();
            count += got as u64;
            if got < step {
                break;
            }
        }
        Ok(count)
    }
}

/// How many bytes after the end marker a reader input counts before it stops reading.
pub const MAX_TRAILING_COUNT_BYTES: u64 = 64 * 1024;

/// A borrowed slice as input.
#[derive(Debug, Clone)]
pub struct SliceInput<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input for SliceInput<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.pos >= self.data.len())
    }
    fn remaining_hint(&self) -> Option<u64> {
        Some((self.data.len() - self.pos) as u64)
    }
}

/// A `Bytes` buffer as input.
#[derive(Debug, Clone)]
pub struct BytesInput {
    data: Bytes,
    pos: usize,
}

impl Input for BytesInput {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let start = self.pos;
        self.pos = end;
        Ok(&self.data[start..end])
    }
    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.pos >= self.data.len())
    }
    fn remaining_hint(&self) -> Option<u64> {
        Some((self.data.len() - self.pos) as u64)
    }
}

/// Any reader as input; one batch at a time is held in a reused buffer.
#[derive(Debug)]
pub struct ReadInput<R> {
    inner: R,
    /// Zero-initialised scratch, reused across batches; its length only grows, and only
    /// as bytes actually arrive (see [`ReadInput::take`]).
    buf: Vec<u8>,
    /// Bytes of `buf` the current `take` filled.
    filled: usize,
    peeked: Option<u8>,
}

/// The first step of a reader's buffer, before it grows by doubling.
const READ_FIRST_STEP_BYTES: usize = 4096;

impl<R: Read> Input for ReadInput<R> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        self.filled = 0;
        if n > 0
            && let Some(b) = self.peeked.take()
        {
            if self.buf.is_empty() {
                self.buf.push(0);
            }
            self.buf[0] = b;
            self.filled = 1;
        }
        // The buffer doubles as data arrives and never grows past `n`: a lying length costs
        // at most twice the bytes the reader actually delivered (or the first step), and a
        // whole batch at most its own size.
        while self.filled < n {
            if self.filled == self.buf.len() {
                let len = (self.buf.len() * 2).max(READ_FIRST_STEP_BYTES).min(n);
                self.buf.reserve_exact(len - self.buf.len());
                self.buf.resize(len, 0);
            }
            let end = self.buf.len().min(n);
            match self.inner.read(&mut self.buf[self.filled..end]) {
                Ok(0) => break,
                Ok(k) => self.filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf[..self.filled])
    }
    fn at_end(&mut self) -> io::Result<bool> {
        if self.peeked.is_some() {
            return Ok(false);
        }
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.peeked = Some(b[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    fn remaining_hint(&self) -> Option<u64> {
        None
    }
}

/// Counts of what a decoder has read so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Whole batches read (event and table).
    pub batches: u64,
    /// Event batches read.
    pub event_batches: u64,
    /// Table batches read.
    pub table_batches: u64,
    /// Bytes consumed, through the end of the last whole batch.
    pub bytes: u64,
}

/// One batch: a thread's events, or table records.
#[derive(Debug, Clone, Copy)]
pub enum Batch<'a> {
    /// Events of one thread.
    Events(EventBatch<'a>),
    /// Table records.
    Table(TableBatch<'a>),
}

/// A batch of one thread's events.
#[derive(Debug, Clone, Copy)]
pub struct EventBatch<'a> {
    /// Byte offset of the batch header in the input.
    pub offset: u64,
    /// The recording thread.
    pub thread: ThreadId,
    /// The thread's batch sequence number (gaps mean lost batches).
    pub seq: u32,
    /// Timestamp the first event's delta is relative to.
    pub base_ts: u64,
    /// The encoded events.
    pub payload: &'a [u8],
}

impl<'a> EventBatch<'a> {
    /// The batch's events, decoded lazily.
    pub fn events(&self) -> Events<'a> {
        Events {
            buf: self.payload,
            pos: 0,
            ts: self.base_ts,
            payload_offset: self.offset + BATCH_HEADER_LEN as u64,
            skipped_unknown: 0,
        }
    }
}

/// A batch of table records.
#[derive(Debug, Clone, Copy)]
pub struct TableBatch<'a> {
    /// Byte offset of the batch header in the input.
    pub offset: u64,
    /// Whether this batch holds the whole table (a table boundary: decoding may start here).
    pub full: bool,
    /// The encoded records.
    pub payload: &'a [u8],
}

impl<'a> TableBatch<'a> {
    /// The batch's records, decoded lazily.
    pub fn records(&self) -> Records<'a> {
        Records {
            buf: self.payload,
            pos: 0,
            payload_offset: self.offset + BATCH_HEADER_LEN as u64,
            skipped_unknown: 0,
            failed: false,
        }
    }
}

/// Reads a trace batch by batch.
///
/// ```
/// use fdr_format::{Decoder, Batch};
/// # fn main() -> Result<(), fdr_format::DecodeError> {
/// # let bytes = fdr_format::testing::sample_trace();
/// let mut decoder = Decoder::new(&bytes)?;
/// let mut events = 0;
/// while let Some(batch) = decoder.next_batch() {
///     if let Batch::Events(b) = batch? {
///         for event in b.events() {
///             event?;
///             events += 1;
///         }
///     }
/// }
/// assert!(events > 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Decoder<I> {
    input: I,
    info: ProcessInfo,
    version_minor: u16,
    stats: DecodeStats,
    done: bool,
}

impl<'a> Decoder<SliceInput<'a>> {
    /// Decodes a trace held in memory (borrowed; nothing is copied).
    pub fn new(data: &'a [u8]) -> Result<Self, DecodeError> {
        Self::with_input(SliceInput { data, pos: 0 })
    }
}

impl Decoder<BytesInput> {
    /// Decodes a trace held in a `Bytes` buffer (nothing is copied).
    pub fn from_bytes(data: Bytes) -> Result<Self, DecodeError> {
        Self::with_input(BytesInput { data, pos: 0 })
    }
}

impl<R: Read> Decoder<ReadInput<R>> {
    /// Decodes a trace from a reader, one batch in memory at a time.
    /// Wrap files in a `BufReader` for speed.
    pub fn from_reader(reader: R) -> Result<Self, DecodeError> {
        Self::with_input(ReadInput {
            inner: reader,
            buf: Vec::new(),
            filled: 0,
            peeked: None,
        })
    }
}

fn io_err(offset: u64, e: io::Error) -> DecodeError {
    DecodeError {
        offset,
        kind: ErrorKind::Io(e.kind()),
    }
}

impl<I: Input> Decoder<I> {
    /// Decodes from any [`Input`]; reads and checks the file header.
    pub fn with_input(mut input: I) -> Result<Self, DecodeError> {
        let fixed = input
            .take(FILE_HEADER_FIXED_LEN)
            .map_err(|e| io_err(0, e))?;
        if fixed.len() < MAGIC.len() || fixed[..MAGIC.len()] != MAGIC {
            let available = fixed.len() as u64;
            let kind = if MAGIC.starts_with(fixed) {
                ErrorKind::TruncatedHeader {
                    needed: FILE_HEADER_FIXED_LEN as u64,
                    available,
                }
            } else {
                ErrorKind::BadMagic
            };
            return Err(DecodeError { offset: 0, kind });
        }
        if fixed.len() < FILE_HEADER_FIXED_LEN {
            return Err(DecodeError {
                offset: 0,
                kind: ErrorKind::TruncatedHeader {
                    needed: FILE_HEADER_FIXED_LEN as u64,
                    available: fixed.len() as u64,
                },
            });
        }
        let major = u16::from_le_bytes([fixed[8], fixed[9]]);
        let minor = u16::from_le_bytes([fixed[10], fixed[11]]);
        let info_len = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]);
        if major != VERSION_MAJOR {
            return Err(DecodeError {
                offset: 8,
                kind: ErrorKind::UnsupportedVersion { major, minor },
            });
        }
        if info_len > MAX_PROCESS_INFO_LEN {
            return Err(DecodeError {
                offset: 12,
                kind: ErrorKind::BadHeader("process-info block over 64 KiB"),
            });
        }
        let mut checked = [0u8; FILE_HEADER_FIXED_LEN - MAGIC.len()];
        checked.copy_from_slice(&fixed[MAGIC.len()..]);
        let need = info_len as usize + FILE_HEADER_CHECKSUM_LEN;
        let header_len = (FILE_HEADER_FIXED_LEN + need) as u64;
        let rest = input.take(need).map_err(|e| io_err(16, e))?;
        if rest.len() < need {
            let available = FILE_HEADER_FIXED_LEN as u64 + rest.len() as u64;
            return Err(DecodeError {
                offset: available,
                kind: ErrorKind::TruncatedHeader {
                    needed: header_len,
                    available,
                },
            });
        }
        let (body, sum) = rest.split_at(info_len as usize);
        let stored = u32::from_le_bytes(sum.try_into().expect("4 bytes"));
        let computed = crate::checksum::check_parts(&checked, body);
        if stored != computed {
            return Err(DecodeError {
                offset: 8,
                kind: ErrorKind::Checksum { stored, computed },
            });
        }
        let info = parse_process_info(body).ok_or(DecodeError {
            offset: FILE_HEADER_FIXED_LEN as u64,
            kind: ErrorKind::BadHeader("process-info block is malformed"),
        })?;
        Ok(Decoder {
            input,
            info,
            version_minor: minor,
            stats: DecodeStats {
                bytes: header_len,
                ..DecodeStats::default()
            },
            done: false,
        })
    }

    /// The process facts from the file header.
    pub fn process_info(&self) -> &ProcessInfo {
        &self.info
    }

    /// The file's minor format version.
    pub fn version_minor(&self) -> u16 {
        self.version_minor
    }

    /// What has been read so far; `stats().bytes` is the offset of the next batch.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Bytes of input left, when the input knows (slices and `Bytes` do).
    pub fn remaining_hint(&self) -> Option<u64> {
        self.input.remaining_hint()
    }

    /// The next batch; `None` after the end marker or after an error.
    pub fn next_batch(&mut self) -> Option<Result<Batch<'_>, DecodeError>> {
        if self.done {
            return None;
        }
        self.read_batch().transpose()
    }

    /// Reads one batch. Sets `done` on the end marker and on every error, so that a
    /// damaged input yields its error once and then nothing.
    fn read_batch(&mut self) -> Result<Option<Batch<'_>>, DecodeError> {
        macro_rules! fail {
            ($offset:expr, $kind:expr) => {{
                self.done = true;
                return Err(DecodeError {
                    offset: $offset,
                    kind: $kind,
                });
            }};
        }
        let offset = self.stats.bytes;
        let h: [u8; BATCH_HEADER_LEN] = match self.input.take(BATCH_HEADER_LEN) {
            Err(e) => fail!(offset, ErrorKind::Io(e.kind())),
            Ok([]) => fail!(offset, ErrorKind::MissingEnd),
            Ok(raw) if raw.len() < BATCH_HEADER_LEN => {
                fail!(
                    offset,
                    ErrorKind::TruncatedBatchHeader {
                        available: raw.len() as u64
                    }
                )
            }
            Ok(raw) => raw.try_into().expect("checked length"),
        };
        let tag = h[0];
        if tag != TAG_EVENTS && tag != TAG_TABLE && tag != TAG_END {
            fail!(offset, ErrorKind::BadTag(tag));
        }
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if len > MAX_BATCH_PAYLOAD {
            fail!(offset + 4, ErrorKind::BatchTooLarge(len));
        }
        let next = offset + BATCH_HEADER_LEN as u64 + len as u64;
        let stored = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
        if tag == TAG_END {
            return self.read_end(offset, &h, len, stored);
        }
        let payload = match self.input.take(len as usize) {
            Err(e) => fail!(offset + BATCH_HEADER_LEN as u64, ErrorKind::Io(e.kind())),
            Ok(p) if p.len() < len as usize => fail!(
                offset,
                ErrorKind::TruncatedBatch {
                    declared: len,
                    available: p.len() as u64
                }
            ),
            Ok(p) => p,
        };
        let computed = batch_checksum(&h[..BATCH_HEADER_CHECKED_LEN], payload);
        if stored != computed {
            fail!(offset, ErrorKind::Checksum { stored, computed });
        }
        self.stats.bytes = next;
        self.stats.batches += 1;
        if tag == TAG_TABLE {
            self.stats.table_batches += 1;
        } else {
            self.stats.event_batches += 1;
        }
        Ok(Some(batch_from(offset, &h, payload)))
    }

    fn read_end(
        &mut self,
        offset: u64,
        h: &[u8; BATCH_HEADER_LEN],
        len: u32,
        stored: u32,
    ) -> Result<Option<Batch<'_>>, DecodeError> {
        self.done = true;
        let err = |offset, kind| Err(DecodeError { offset, kind });
        let payload_offset = offset + BATCH_HEADER_LEN as u64;
        let (declared, computed) = match self.input.take(len as usize) {
            Err(e) => return err(payload_offset, ErrorKind::Io(e.kind())),
            Ok(p) if p.len() < len as usize => {
                let available = p.len() as u64;
                return err(
                    offset,
                    ErrorKind::TruncatedBatch {
                        declared: len,
                        available,
                    },
                );
            }
            Ok(p) => {
                let mut pos = 0;
                (
                    varint::get(p, &mut pos),
                    batch_checksum(&h[..BATCH_HEADER_CHECKED_LEN], p),
                )
            }
        };
        if stored != computed {
            return err(offset, ErrorKind::Checksum { stored, computed });
        }
        let Some(declared) = declared else {
            return err(
                payload_offset,
                ErrorKind::BadRecord("end marker without a batch count"),
            );
        };
        if declared != self.stats.batches {
            let read = self.stats.batches;
            return err(offset, ErrorKind::BatchCountMismatch { declared, read });
        }
        let next = payload_offset + len as u64;
        self.stats.bytes = next;
        match self.input.at_end() {
            Err(e) => err(next, ErrorKind::Io(e.kind())),
            Ok(false) => match self.input.count_remaining(MAX_TRAILING_COUNT_BYTES) {
                Err(e) => err(next, ErrorKind::Io(e.kind())),
                Ok(extra) => err(next, ErrorKind::TrailingData(extra)),
            },
            Ok(true) => Ok(None),
        }
    }
}

/// The batch a checked header (tag events or table) and its verified payload make.
fn batch_from<'a>(offset: u64, h: &[u8; BATCH_HEADER_LEN], payload: &'a [u8]) -> Batch<'a> {
    if h[0] == TAG_TABLE {
        return Batch::Table(TableBatch {
            offset,
            full: h[1] & TABLE_FLAG_FULL != 0,
            payload,
        });
    }
    Batch::Events(EventBatch {
        offset,
        thread: ThreadId(u32::from_le_bytes([h[8], h[9], h[10], h[11]])),
        seq: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
        base_ts: u64::from_le_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]),
        payload,
    })
}

/// Where one batch (header and payload) lies in a trace held in memory, as
/// [`batch_spans`] found it; [`batch_at`] decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    offset: usize,
    len: usize,
}

impl BatchSpan {
    /// Byte offset of the batch header.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes of header and payload.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the span is empty (never: a batch has at least its header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Finds the batches of a trace held in memory by reading their headers only (tag and
/// length, not the checksum), so that several threads can each decode a share of them
/// with [`batch_at`]:
///
/// ```
/// use fdr_format::decode::{batch_at, batch_spans};
/// use fdr_format::Batch;
/// # fn main() -> Result<(), fdr_format::DecodeError> {
/// let bytes = fdr_format::testing::sample_trace();
/// let spans = batch_spans(&bytes)?.collect::<Result<Vec<_>, _>>()?;
/// let events: usize = std::thread::scope(|s| {
///     let workers: Vec<_> = spans
///         .chunks(spans.len().div_ceil(2))
///         .map(|share| {
///             let bytes = &bytes;
///             s.spawn(move || {
///                 let mut n = 0;
///                 for span in share {
///                     if let Ok(Batch::Events(b)) = batch_at(bytes, *span) {
///                         n += b.events().filter(Result::is_ok).count();
///                     }
///                 }
///                 n
///             })
///         })
///         .collect();
///     workers.into_iter().map(|w| w.join().unwrap()).sum()
/// });
/// assert!(events > 0);
/// # Ok(()) }
/// ```
///
/// The spans come in file order; the iterator checks the file header first, and after the
/// last batch the end marker, exactly as [`Decoder`] does, yielding the same errors at the same
/// offsets. Checksums are verified by [`batch_at`]: to yield what [`Decoder`] yields, keep the
/// batches before the first error from either. Tables apply in file order
/// ([`crate::Tables`] is sequential); events of different batches decode independently.
pub fn batch_spans(data: &[u8]) -> Result<BatchSpans<'_>, DecodeError> {
    let header_len = Decoder::new(data)?.stats().bytes as usize;
    Ok(BatchSpans {
        data,
        pos: header_len,
        batches: 0,
        done: false,
    })
}

/// Iterator over the [`BatchSpan`]s of a trace in memory; see [`batch_spans`].
#[derive(Debug, Clone)]
pub struct BatchSpans<'a> {
    data: &'a [u8],
    pos: usize,
    batches: u64,
    done: bool,
}

impl Iterator for BatchSpans<'_> {
    type Item = Result<BatchSpan, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let framed = frame(self.data, self.pos);
        let (h, span) = match framed {
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
            Ok(f) => f,
        };
        if h[0] != TAG_END {
            self.pos += span.len;
            self.batches += 1;
            return Some(Ok(span));
        }
        // The end marker: checked by the sequential decoder's own code.
        self.done = true;
        let payload_len = (span.len - BATCH_HEADER_LEN) as u32;
        let stored = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
        let mut tail = Decoder {
            input: SliceInput {
                data: self.data,
                pos: span.offset + BATCH_HEADER_LEN,
            },
            info: ProcessInfo::default(),
            version_minor: 0,
            stats: DecodeStats {
                batches: self.batches,
                bytes: span.offset as u64,
                ..DecodeStats::default()
            },
            done: false,
        };
        match tail.read_end(span.offset as u64, &h, payload_len, stored) {
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Checks the batch header at `offset` (tag, declared length, payload present), as the
/// sequential decoder does, with the same errors.
fn frame(data: &[u8], offset: usize) -> Result<([u8; BATCH_HEADER_LEN], BatchSpan), DecodeError> {
    let at = offset as u64;
    let fail = |offset, kind| Err(DecodeError { offset, kind });
    let rest = data.get(offset..).unwrap_or_default();
    let Some(h) = rest.get(..BATCH_HEADER_LEN) else {
        return fail(
            at,
            if rest.is_empty() {
                ErrorKind::MissingEnd
            } else {
                ErrorKind::TruncatedBatchHeader {
                    available: rest.len() as u64,
                }
            },
        );
    };
    let h: [u8; BATCH_HEADER_LEN] = h.try_into().expect("header length");
    let tag = h[0];
    if tag != TAG_EVENTS && tag != TAG_TABLE && tag != TAG_END {
        return fail(at, ErrorKind::BadTag(tag));
    }
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len > MAX_BATCH_PAYLOAD {
        return fail(at + 4, ErrorKind::BatchTooLarge(len));
    }
    let available = rest.len() - BATCH_HEADER_LEN;
    if available < len as usize && tag != TAG_END {
        return fail(
            at,
            ErrorKind::TruncatedBatch {
                declared: len,
                available: available as u64,
            },
        );
    }
    let span = BatchSpan {
        offset,
        len: BATCH_HEADER_LEN + len as usize,
    };
    Ok((h, span))
}

/// Decodes the batch at `span` (from [`batch_spans`] over the same `data`), verifying its
/// checksum. Safe to call from many threads at once; each call reads only its batch.
pub fn batch_at(data: &[u8], span: BatchSpan) -> Result<Batch<'_>, DecodeError> {
    let (h, framed) = frame(data, span.offset)?;
    if h[0] == TAG_END || framed != span {
        // Only a span from other data can get here.
        return Err(DecodeError {
            offset: span.offset as u64,
            kind: ErrorKind::BadTag(h[0]),
        });
    }
    let payload = &data[span.offset + BATCH_HEADER_LEN..span.offset + span.len];
    let stored = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    let computed = batch_checksum(&h[..BATCH_HEADER_CHECKED_LEN], payload);
    if stored != computed {
        return Err(DecodeError {
            offset: span.offset as u64,
            kind: ErrorKind::Checksum { stored, computed },
        });
    }
    Ok(batch_from(span.offset as u64, &h, payload))
}

/// Reads the process-info block's fields in order.
struct InfoFields<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> InfoFields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let field = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(field)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        Some(lossy_exact(self.take(n)?))
    }
}

fn parse_process_info(b: &[u8]) -> Option<ProcessInfo> {
    let mut f = InfoFields { b, pos: 0 };
    let pid = u32::from_le_bytes(f.take(4)?.try_into().ok()?);
    let start_unix_ns = f.u64()?;
    let mut info = ProcessInfo {
        pid,
        start_unix_ns,
        program: f.text()?,
        service_version: f.text()?,
        host: f.text()?,
        ..ProcessInfo::default()
    };
    // Minor version 2's identity fields: a header of minor 1 ends before them (they stay
    // empty); one cut inside them is corrupt.
    if f.pos < b.len() {
        info.service = f.text()?;
        info.process_start_unix_ns = f.u64()?;
        info.fdr_version = f.text()?;
        info.build_id = f.text()?;
    }
    // Bytes beyond these fields are newer minor versions' additions: ignored.
    Some(info)
}

/// `text` as UTF-8, each invalid sequence shown as U+FFFD, in a `String` of exactly the
/// size it needs (so that memory stays within a small multiple of the input).
pub(crate) fn lossy_exact(text: &[u8]) -> String {
    let len: usize = text
        .utf8_chunks()
        .map(|c| c.valid().len() + if c.invalid().is_empty() { 0 } else { 3 })
        .sum();
    let mut s = String::with_capacity(len);
    for c in text.utf8_chunks() {
        s.push_str(c.valid());
        if !c.invalid().is_empty() {
            s.push(char::REPLACEMENT_CHARACTER);
        }
    }
    s
}

/// Lazily decodes one batch's events.
#[derive(Debug, Clone)]
pub struct Events<'a> {
    buf: &'a [u8],
    pos: usize,
    ts: u64,
    payload_offset: u64,
    skipped_unknown: u64,
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
    /// an [`EventBatch`] of the rest of the payload whose base timestamp is
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

    #[inline]
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
            k if k >= EXT_FIRST_SIZED => {
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
                return Ok(ev);
            }
            k => return Err(ErrorKind::UnknownFixedKind(k)),
        };
        Ok(Some(ev))
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
                EventKind::Stack {
                    thread,
                    cause,
                    truncated: flags & STACK_TRUNCATED != 0,
                    frames,
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

/// Lazily decodes one table batch's records.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    payload_offset: u64,
    skipped_unknown: u64,
    failed: bool,
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
