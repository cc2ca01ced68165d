//! The recorder's errors. The hot path never returns one: it records, or counts what it
//! could not record.

use std::io;
use std::time::Duration;

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
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    /// An OS view setting ([`crate::OsConfig`]) is outside its bounds.
    #[error(transparent)]
    Os(OsConfigError),
    /// A metrics setting is refused: the sampling interval, the cost budget, or a
    /// registered metric's name or count.
    #[error(transparent)]
    Metrics(MetricsError),
}

/// An OS view setting ([`crate::OsConfig`]) outside its bounds: the setting, the value and
/// the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OsConfigError {
    /// `scan_interval` is below `min`.
    #[error("os scan_interval {scan_interval:?} is below {min:?}")]
    ScanInterval {
        /// The value given.
        scan_interval: Duration,
        /// The least accepted.
        min: Duration,
    },
    /// `stack_copy_bytes` is outside `min..=max` (`min` is 0 when stacks are off).
    #[error("os stack_copy_bytes {stack_copy_bytes} is outside {min}..={max}")]
    StackCopyBytes {
        /// The value given.
        stack_copy_bytes: usize,
        /// The least accepted.
        min: usize,
        /// The most accepted.
        max: usize,
    },
    /// `cpu_profile_hz` is above `max` ([`crate::os::MAX_CPU_PROFILE_HZ`]).
    #[error("os cpu_profile_hz {cpu_profile_hz} is above {max}")]
    CpuProfileHz {
        /// The value given.
        cpu_profile_hz: u32,
        /// The most accepted.
        max: u32,
    },
}

/// A metrics setting that was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// `Config::metrics_interval` is below `min` ([`crate::MIN_METRICS_INTERVAL`]).
    #[error("metrics_interval {interval:?} is below the minimum {min:?}")]
    Interval {
        /// The value given.
        interval: Duration,
        /// The least accepted.
        min: Duration,
    },
    /// A cost budget ([`crate::cost::set_budget`]) outside `(0, 1]`.
    #[error("cost budget {share} is not a share of the process's CPU in (0, 1]")]
    CostBudget {
        /// The share given.
        share: f64,
    },
    /// A name [`crate::register_metric`] cannot publish.
    #[error("metric name {name:?}: {problem}")]
    Name {
        /// The name given (its first 80 characters).
        name: String,
        /// What is wrong with it.
        problem: MetricNameProblem,
    },
    /// `max` metrics are registered already ([`crate::MAX_METRIC_SOURCES`]).
    #[error("metric {name:?}: {max} metrics are registered already")]
    TooMany {
        /// The name given.
        name: String,
        /// The most registered at once.
        max: usize,
    },
    /// The table of run-time strings, which names the metric in traces, is full.
    #[error("metric {name:?}: the table of run-time strings is full")]
    NamesFull {
        /// The name given.
        name: String,
    },
    /// A metric of that name (labels compared sorted) is registered and not dropped.
    #[error("metric {name:?} is registered already")]
    Registered {
        /// The name, as published.
        name: String,
    },
}

/// What is wrong with a metric's name: `name` or `name{key="value",...}` in Prometheus'
/// form, not starting with `fdr_`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricNameProblem {
    /// Longer than `max_bytes`.
    #[error("longer than {max_bytes} bytes")]
    TooLong {
        /// The most accepted.
        max_bytes: usize,
    },
    /// Labels that do not end the name with `}`.
    #[error("labels must end the name with `}}`")]
    LabelsNotClosed,
    /// The base name has a character other than letters, digits, `_` and `:`, or starts
    /// with a digit (or is empty).
    #[error("a name is letters, digits, `_` and `:`, not starting with a digit")]
    NotAName,
    /// A label without `=`.
    #[error("a label is key=\"value\"")]
    LabelNotKeyValue,
    /// A label's name is not a name (letters, digits and `_`, not starting with a digit).
    #[error("label name {label:?} is not a name")]
    LabelName {
        /// The label's name.
        label: String,
    },
    /// A label's value without its opening quote.
    #[error("a label's value is quoted")]
    ValueNotQuoted,
    /// A label's value without its closing quote.
    #[error("a label's value ends with a quote")]
    ValueNotClosed,
    /// A label's value with a backslash or a newline.
    #[error("a label's value has no backslash or newline")]
    ValueEscapes,
    /// A label given twice.
    #[error("label {label:?} appears twice")]
    LabelTwice {
        /// The label's name.
        label: String,
    },
    /// Labels not separated by commas.
    #[error("labels are separated by commas")]
    LabelsNotSeparated,
    /// A name starting with `fdr_`.
    #[error("names starting with fdr_ are fdr's own")]
    Reserved,
}
