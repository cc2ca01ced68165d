//! The recorder's errors. The hot path never returns one: it records, or counts what it
//! could not record.

use std::io;

/// What went wrong with a recorder operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    Config(#[source] ConfigError),
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

/// Why a configuration was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The flight recorder's `max_bytes` is outside `min..=max` (one chunk to the most the
    /// hand-off queues can hold).
    #[error(
        "flight max_bytes {max_bytes} is outside {min}..={max} (one {chunk_bytes}-byte chunk to {} chunks)",
        max / chunk_bytes
    )]
    FlightMaxBytes {
        /// The value given.
        max_bytes: usize,
        /// The least accepted ([`crate::MIN_FLIGHT_BYTES`]).
        min: usize,
        /// The most accepted ([`crate::MAX_FLIGHT_BYTES`]).
        max: usize,
        /// Bytes in one chunk ([`crate::CHUNK_BYTES`]).
        chunk_bytes: usize,
    },
    /// An OS view setting is outside its bounds; the text names the setting, the value and
    /// the bound.
    #[error("{0}")]
    Os(String),
}
