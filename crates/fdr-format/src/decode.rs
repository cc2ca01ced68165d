//! Streaming decoding: batches from a slice, `Bytes` or any `io::Read`; events and table
//! records lazily from each batch.
//!
//! The decoder never panics on bad input and never allocates more than the input backs:
//! a slice or `Bytes` input is borrowed, a reader's batch is read into one reused buffer
//! that grows only as bytes actually arrive. On damage it stops with a [`DecodeError`]
//! naming the byte offset; everything before it was already yielded.
//!
//! By concern: this file holds the errors, the file header and batch framing
//! ([`Decoder`]); `input` the byte sources; `spans` the walk over a trace held in memory
//! that finds its batches for parallel decoding ([`batch_spans`], [`batch_at`]); `events`
//! the decoding of one batch's events ([`Events`]); `records` of one table batch's records
//! ([`Records`]).

use std::io::{self, Read};

use bytes::Bytes;

use crate::checksum::batch_checksum;
use crate::event::{ProcessInfo, ThreadId};
use crate::varint;
use crate::wire::*;

mod events;
mod input;
mod records;
mod spans;

pub use events::{Events, RawEvent};
pub use input::{BytesInput, Input, MAX_TRAILING_COUNT_BYTES, ReadInput, SliceInput};
pub use records::Records;
pub use spans::{BatchSpan, BatchSpans, batch_at, batch_spans};

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
        if major != VERSION_MAJOR {
            return Err(DecodeError {
                offset: 8,
                kind: ErrorKind::UnsupportedVersion { major, minor },
            });
        }
        // The header's length is the framer's own reading of it.
        let header_len = crate::framing::file_header_len(
            fixed[..FILE_HEADER_FIXED_LEN]
                .try_into()
                .expect("checked length"),
        )?;
        let info_len = header_len - FILE_HEADER_FIXED_LEN - FILE_HEADER_CHECKSUM_LEN;
        let mut checked = [0u8; FILE_HEADER_FIXED_LEN - MAGIC.len()];
        checked.copy_from_slice(&fixed[MAGIC.len()..]);
        let need = info_len + FILE_HEADER_CHECKSUM_LEN;
        let header_len = header_len as u64;
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
        let (body, sum) = rest.split_at(info_len);
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
        // The tag and length checks are the framer's own, so the two cannot disagree.
        let (tag, whole_len) = match crate::framing::batch_len(&h, offset) {
            Ok(x) => x,
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        let len = (whole_len - BATCH_HEADER_LEN) as u32;
        let next = offset + whole_len as u64;
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
