//! A trace's byte stream cut into its units, the file header and then whole batches, from
//! their fixed prefixes alone (no checksum is verified, nothing is decoded): for a writer
//! that must cut a stream between two batches (the admin endpoint's byte-capped capture)
//! or close it with a well-formed end marker.
//!
//! [`file_header_len`] and [`batch_len`] are the one reading of a unit's length:
//! [`crate::Decoder`] and [`crate::decode::batch_spans`] call them too, so a declared
//! process-info block over [`MAX_PROCESS_INFO_LEN`], an unknown tag, a payload over
//! [`MAX_BATCH_PAYLOAD`] are refused by all three with the same error at the same offset.
//!
//! ```
//! use fdr_format::framing::{Framer, Unit};
//! let trace = fdr_format::testing::sample_trace();
//! let mut framer = Framer::new();
//! let (mut units, mut rest) = (Vec::new(), &trace[..]);
//! while let Some(unit) = framer.next_unit(&mut rest).unwrap() {
//!     units.push(unit);
//! }
//! assert!(matches!(units.first(), Some(Unit::Header(_))));
//! assert!(matches!(units.last(), Some(Unit::End(_))));
//! assert_eq!(framer.offset(), trace.len() as u64);
//! ```

use bytes::Bytes;

use crate::decode::{DecodeError, ErrorKind};
use crate::encode::batch_header;
use crate::event::ThreadId;
use crate::varint;
use crate::wire::{
    BATCH_HEADER_LEN, FILE_HEADER_CHECKSUM_LEN, FILE_HEADER_FIXED_LEN, MAX_BATCH_PAYLOAD,
    MAX_PROCESS_INFO_LEN, MAX_VARINT_LEN, TAG_END, TAG_EVENTS, TAG_TABLE,
};

/// The longest end marker: a batch header and a varint batch count.
pub const END_MARKER_MAX_LEN: usize = BATCH_HEADER_LEN + MAX_VARINT_LEN;

/// One unit of a trace, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// The file header (magic, versions, process-info block, checksum).
    Header(Bytes),
    /// An event or table batch (header and payload).
    Batch(Bytes),
    /// The end marker.
    End(Bytes),
}

impl Unit {
    /// The unit's bytes.
    pub fn bytes(&self) -> &Bytes {
        match self {
            Unit::Header(b) | Unit::Batch(b) | Unit::End(b) => b,
        }
    }

    /// The unit's bytes, owned.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Unit::Header(b) | Unit::Batch(b) | Unit::End(b) => b,
        }
    }
}

/// The file header's whole length from its first [`FILE_HEADER_FIXED_LEN`] bytes (its
/// process-info length field); `fixed` is that prefix.
pub fn file_header_len(fixed: &[u8; FILE_HEADER_FIXED_LEN]) -> Result<usize, DecodeError> {
    let info_len = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]);
    if info_len > MAX_PROCESS_INFO_LEN {
        return Err(DecodeError {
            offset: 12,
            kind: ErrorKind::BadHeader("process-info block over 64 KiB"),
        });
    }
    Ok(FILE_HEADER_FIXED_LEN + info_len as usize + FILE_HEADER_CHECKSUM_LEN)
}

/// A batch's tag and whole length (header and payload) from its header, which starts at
/// byte `offset` of the trace (for the error's offset).
pub fn batch_len(header: &[u8; BATCH_HEADER_LEN], offset: u64) -> Result<(u8, usize), DecodeError> {
    let tag = header[0];
    if tag != TAG_EVENTS && tag != TAG_TABLE && tag != TAG_END {
        return Err(DecodeError {
            offset,
            kind: ErrorKind::BadTag(tag),
        });
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_BATCH_PAYLOAD {
        return Err(DecodeError {
            offset: offset + 4,
            kind: ErrorKind::BatchTooLarge(len),
        });
    }
    Ok((tag, BATCH_HEADER_LEN + len as usize))
}

/// The end marker after `batches` batches, byte for byte as [`crate::TraceWriter::finish`]
/// writes it.
pub fn end_marker(batches: u64) -> Bytes {
    let mut payload = Vec::with_capacity(MAX_VARINT_LEN);
    varint::push(&mut payload, batches);
    let header = batch_header(TAG_END, 0, ThreadId(0), 0, 0, &payload);
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    Bytes::from(out)
}

/// Cuts a trace's byte stream, fed in pieces of any size, into whole [`Unit`]s. Holds at
/// most one unit (a batch is at most [`MAX_BATCH_PAYLOAD`] bytes past its header).
#[derive(Debug, Default)]
pub struct Framer {
    unit: Vec<u8>,
    /// The current unit's full length, once its fixed prefix has been read.
    need: Option<usize>,
    header_done: bool,
    done: bool,
    /// Bytes of the whole units framed so far.
    offset: u64,
    /// Batches framed (what the end marker counts).
    batches: u64,
}

impl Framer {
    /// A framer at the start of a trace.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Bytes of the whole units framed so far: the offset of the unit being read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Event and table batches framed so far (what an end marker written now counts).
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Whether the end marker was framed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Takes bytes from the front of `input` until a unit is whole and returns it; `None`
    /// once `input` is used up inside a unit (the bytes are kept for the next call). Bytes
    /// after the end marker are [`ErrorKind::TrailingData`]; a unit's bad length field is
    /// the decoder's error for it, at the decoder's offset.
    pub fn next_unit(&mut self, input: &mut &[u8]) -> Result<Option<Unit>, DecodeError> {
        while !input.is_empty() {
            if self.done {
                return Err(DecodeError {
                    offset: self.offset,
                    kind: ErrorKind::TrailingData(input.len() as u64),
                });
            }
            let prefix = if self.header_done {
                BATCH_HEADER_LEN
            } else {
                FILE_HEADER_FIXED_LEN
            };
            let target = self.need.unwrap_or(prefix);
            let take = (target - self.unit.len()).min(input.len());
            self.unit.extend_from_slice(&input[..take]);
            *input = &input[take..];
            if self.unit.len() < target {
                return Ok(None);
            }
            if self.need.is_none() {
                let len = self.unit_len()?;
                self.need = Some(len);
                if self.unit.len() < len {
                    continue;
                }
            }
            return Ok(Some(self.complete()));
        }
        Ok(None)
    }

    /// The current unit's length, from its fixed prefix.
    fn unit_len(&self) -> Result<usize, DecodeError> {
        if !self.header_done {
            let fixed = self.unit[..FILE_HEADER_FIXED_LEN]
                .try_into()
                .expect("the fixed prefix");
            return file_header_len(fixed);
        }
        let header = self.unit[..BATCH_HEADER_LEN]
            .try_into()
            .expect("a batch header");
        batch_len(header, self.offset).map(|(_, len)| len)
    }

    fn complete(&mut self) -> Unit {
        let bytes = Bytes::from(std::mem::take(&mut self.unit));
        self.need = None;
        self.offset += bytes.len() as u64;
        if !self.header_done {
            self.header_done = true;
            return Unit::Header(bytes);
        }
        if bytes[0] == TAG_END {
            self.done = true;
            return Unit::End(bytes);
        }
        self.batches += 1;
        Unit::Batch(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::every_kind_trace;

    /// Frames `data` fed `step` bytes at a time.
    fn frame_all(data: &[u8], step: usize) -> Result<Vec<Unit>, DecodeError> {
        let mut f = Framer::new();
        let mut units = Vec::new();
        for piece in data.chunks(step) {
            let mut piece = piece;
            while let Some(u) = f.next_unit(&mut piece)? {
                units.push(u);
            }
        }
        Ok(units)
    }

    #[test]
    fn units_are_the_trace_in_any_feed_size() {
        let trace = every_kind_trace();
        let whole = frame_all(&trace, trace.len()).unwrap();
        for step in [1, 7, 28, 4096] {
            assert_eq!(frame_all(&trace, step).unwrap(), whole, "step {step}");
        }
        let joined: Vec<u8> = whole.iter().flat_map(|u| u.bytes().to_vec()).collect();
        assert_eq!(joined, trace);
        // Every batch the framer cut is one the decoder's own spans find.
        let spans = crate::decode::batch_spans(&trace)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let batches: Vec<_> = whole
            .iter()
            .filter(|u| matches!(u, Unit::Batch(_)))
            .collect();
        assert_eq!(batches.len(), spans.len());
        for (u, s) in batches.iter().zip(&spans) {
            assert_eq!(u.bytes().len(), s.len());
        }
        let Some(Unit::End(end)) = whole.last() else {
            panic!("no end marker");
        };
        assert_eq!(
            *end,
            end_marker(spans.len() as u64),
            "the writer's end marker"
        );
    }

    #[test]
    fn a_bad_length_or_tag_is_the_decoders_error_at_its_offset() {
        let trace = every_kind_trace();
        let header_len = crate::Decoder::new(&trace[..]).unwrap().stats().bytes as usize;
        let mut bad_tag = trace.clone();
        bad_tag[header_len] = 0x42;
        let e = frame_all(&bad_tag, 5).unwrap_err();
        assert_eq!(
            e,
            crate::Decoder::new(&bad_tag[..])
                .unwrap()
                .next_batch()
                .unwrap()
                .unwrap_err()
        );
        let mut too_long = trace.clone();
        too_long[header_len + 4..header_len + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = frame_all(&too_long, 3).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BatchTooLarge(u32::MAX));
        assert_eq!(e.offset, header_len as u64 + 4);
        let mut big_info = trace.clone();
        big_info[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(frame_all(&big_info, 16).unwrap_err().offset, 12);
        let mut trailing = trace.clone();
        trailing.extend_from_slice(b"xy");
        assert_eq!(
            frame_all(&trailing, 64).unwrap_err(),
            DecodeError {
                offset: trace.len() as u64,
                kind: ErrorKind::TrailingData(2)
            }
        );
    }

    /// The batches the decoder reads from `data` (offset and whole length) and where it
    /// stopped: its error's offset, or the length it read.
    fn decoded(data: &[u8]) -> (Vec<(u64, usize)>, Result<u64, DecodeError>) {
        let mut d = crate::Decoder::new(data).unwrap();
        let mut batches = Vec::new();
        let mut start = d.stats().bytes;
        while let Some(b) = d.next_batch() {
            if let Err(e) = b {
                return (batches, Err(e));
            }
            let next = d.stats().bytes;
            batches.push((start, (next - start) as usize));
            start = next;
        }
        (batches, Ok(d.stats().bytes))
    }

    #[test]
    fn the_decoder_and_the_framer_agree_on_every_batch_and_every_cut() {
        let trace = every_kind_trace();
        let header_len = crate::Decoder::new(&trace[..]).unwrap().stats().bytes as usize;
        for cut in header_len..=trace.len() {
            let data = &trace[..cut];
            let mut f = Framer::new();
            let mut rest = data;
            let mut framed = Vec::new();
            let mut at = 0u64;
            while let Some(u) = f.next_unit(&mut rest).unwrap() {
                if let Unit::Batch(b) = &u {
                    framed.push((at, b.len()));
                }
                at += u.bytes().len() as u64;
            }
            let (batches, stop) = decoded(data);
            assert_eq!(batches, framed, "cut at {cut}");
            if f.is_done() {
                assert_eq!(stop, Ok(f.offset()), "cut at {cut}");
            } else {
                // A cut unit: the decoder names its start, where the framer waits.
                let e = stop.unwrap_err();
                assert_eq!(e.offset, f.offset(), "cut at {cut}: {e}");
                assert!(
                    matches!(
                        e.kind,
                        ErrorKind::MissingEnd
                            | ErrorKind::TruncatedBatchHeader { .. }
                            | ErrorKind::TruncatedBatch { .. }
                    ),
                    "cut at {cut}: {e}"
                );
            }
        }
        // And the parallel decoder's spans are the same batches.
        let spans: Vec<(u64, usize)> = crate::decode::batch_spans(&trace)
            .unwrap()
            .map(|s| s.map(|s| (s.offset() as u64, s.len())))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(spans, decoded(&trace).0);
    }
}
