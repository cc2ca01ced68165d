//! Walking a trace held in memory: the batches' places from their headers alone, so that
//! several threads can each verify and decode a share of them.

use super::{Batch, DecodeError, DecodeStats, Decoder, ErrorKind, SliceInput, batch_from};
use crate::checksum::batch_checksum;
use crate::event::ProcessInfo;
use crate::wire::*;

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
    let (tag, whole_len) = crate::framing::batch_len(&h, at)?;
    let available = rest.len() - BATCH_HEADER_LEN;
    let len = whole_len - BATCH_HEADER_LEN;
    if available < len && tag != TAG_END {
        return fail(
            at,
            ErrorKind::TruncatedBatch {
                declared: len as u32,
                available: available as u64,
            },
        );
    }
    let span = BatchSpan {
        offset,
        len: whole_len,
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
