//! The recorder's errors. The hot path never returns one: it records, or counts what it
//! could not record.

use std::io;

/// What went wrong with a recorder operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Too many snapshots are being written at once ([`crate::MAX_SNAPSHOTS`] through
    /// `write_to`, or [`crate::MAX_INCIDENT_SNAPSHOTS`] through `write_incident_to`).
    #[error(
        "too many flight-recorder snapshots are being written at once; retry when one finishes"
    )]
    SnapshotInProgress,
    /// A capture is running; captures run one at a time.
    #[error("a capture is already running; stop it before starting another")]
    CaptureInProgress,
    /// The recorder was never started.
    #[error("the recorder is not started: call fdr_recorder::start first")]
    NotStarted,
    /// The configuration is unusable.
    #[error("invalid recorder configuration: {0}")]
    Config(String),
    /// Writing a trace failed; the bytes before `written` were written.
    #[error("writing the trace failed after {written} bytes: {source}")]
    Io {
        /// Bytes written before the failure.
        written: u64,
        /// The writer's error.
        #[source]
        source: io::Error,
    },
    /// The collector thread could not be started.
    #[error("could not start the collector thread: {0}")]
    Spawn(#[source] io::Error),
}
