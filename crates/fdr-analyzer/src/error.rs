//! Errors: what is wrong, where, and what was still read.

use std::fmt;

use fdr_format::{DecodeError, ErrorKind};

use crate::stream::ReadStats;

/// Damage in a trace: the decoder's error, and what had been read (and delivered) before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// Byte offset where the damage starts.
    pub offset: u64,
    /// What is wrong.
    pub kind: ErrorKind,
    /// What was read before it; every analysis covers exactly this prefix.
    pub kept: ReadStats,
}

impl TraceError {
    pub(crate) fn new(e: DecodeError, kept: ReadStats) -> Self {
        TraceError {
            offset: e.offset,
            kind: e.kind,
            kept,
        }
    }

    /// Whether the trace is whole up to a missing end marker (a dump cut short, a
    /// recorder that stopped mid-way), rather than corrupt.
    pub fn is_cut_short(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::MissingEnd
                | ErrorKind::TruncatedBatch { .. }
                | ErrorKind::TruncatedBatchHeader { .. }
        )
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at byte {}: {}; kept the {} whole batches ({} events, bytes 0..{}) before it",
            self.offset, self.kind, self.kept.batches, self.kept.events, self.kept.bytes
        )
    }
}

impl std::error::Error for TraceError {}

/// Why an analysis could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyzeError {
    /// The file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file header is unreadable (not a trace, a version this reader does not read,
    /// or cut short); nothing was read.
    #[error("not a readable fdr trace: {0}")]
    Header(TraceError),
    /// Writing output failed.
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
}
