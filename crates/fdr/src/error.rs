//! [`Error`]: what a control call reports, one opaque type in both builds (with and without
//! `record`), asked with `is_*` predicates as hyper's errors are, so that fdr can add a cause
//! without breaking a caller's `match`.

use std::{fmt, io};

use crate::ConfigError;

/// What went wrong with a control call (`start`, `capture`, a snapshot, `register_metric`,
/// `tokio::watch`): ask it with the `is_*` predicates; its `Display` says what happened and
/// its `source` is the underlying error, if any.
///
/// ```
/// # fn main() {
/// match fdr::flight().write_to(&mut Vec::new()) {
///     Ok(bytes) => println!("{bytes} bytes"),
///     Err(e) if e.is_snapshot_in_progress() => println!("busy, retry"),
///     Err(e) if e.is_compiled_out() => println!("fdr is compiled out"),
///     Err(e) => println!("{e}"),
/// }
/// # }
/// ```
pub struct Error {
    kind: Kind,
}

/// The causes, the same in both builds; without `record` only `CompiledOut` is made.
#[cfg_attr(
    not(feature = "record"),
    allow(dead_code, reason = "only CompiledOut is made without `record`")
)]
enum Kind {
    CompiledOut,
    SnapshotInProgress,
    CaptureInProgress,
    NotStarted,
    Config(ConfigError),
    Io {
        written: u64,
        source: io::Error,
    },
    Spawn(io::Error),
    /// A cause the recorder added that has no predicate yet.
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The error of every control call without the `record` feature.
    #[cfg_attr(
        feature = "record",
        allow(dead_code, reason = "made only without `record`")
    )]
    pub(crate) const fn compiled_out() -> Error {
        Error {
            kind: Kind::CompiledOut,
        }
    }

    /// fdr was built without the `record` feature: nothing is recorded, and every control
    /// call reports this.
    pub fn is_compiled_out(&self) -> bool {
        matches!(self.kind, Kind::CompiledOut)
    }

    /// Too many flight-recorder snapshots are being written at once; retry when one finishes.
    pub fn is_snapshot_in_progress(&self) -> bool {
        matches!(self.kind, Kind::SnapshotInProgress)
    }

    /// A capture is running; captures run one at a time.
    pub fn is_capture_in_progress(&self) -> bool {
        matches!(self.kind, Kind::CaptureInProgress)
    }

    /// The recorder was never started (`fdr::start`).
    pub fn is_not_started(&self) -> bool {
        matches!(self.kind, Kind::NotStarted)
    }

    /// The configuration (or a metric's name) was refused; nothing changed.
    /// [`Error::config_error`] says why.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }

    /// Writing a trace failed. [`Error::bytes_written`] says how far it got; the source is
    /// the writer's `io::Error`.
    pub fn is_io(&self) -> bool {
        matches!(self.kind, Kind::Io { .. })
    }

    /// A thread fdr needs (the collector, a watcher) could not be started; the source is
    /// the `io::Error`.
    pub fn is_spawn(&self) -> bool {
        matches!(self.kind, Kind::Spawn(_))
    }

    /// Why the configuration was refused, when [`Error::is_config`].
    pub fn config_error(&self) -> Option<&ConfigError> {
        match &self.kind {
            Kind::Config(c) => Some(c),
            _ => None,
        }
    }

    /// The bytes written before a trace's writer failed, when [`Error::is_io`].
    pub fn bytes_written(&self) -> Option<u64> {
        match self.kind {
            Kind::Io { written, .. } => Some(written),
            _ => None,
        }
    }

    /// The writer's own `io::Error` when the error is one (its kind kept, as a snapshot's
    /// caller reports it), else the error itself.
    #[cfg_attr(
        not(feature = "record"),
        allow(dead_code, reason = "no writer fails without `record`")
    )]
    pub(crate) fn into_io(self) -> Result<io::Error, Error> {
        match self.kind {
            Kind::Io { source, .. } => Ok(source),
            kind => Err(Error { kind }),
        }
    }
}

#[cfg(feature = "record")]
impl From<fdr_recorder::Error> for Error {
    fn from(e: fdr_recorder::Error) -> Error {
        use fdr_recorder::Error as E;
        let kind = match e {
            E::SnapshotInProgress => Kind::SnapshotInProgress,
            E::CaptureInProgress => Kind::CaptureInProgress,
            E::NotStarted => Kind::NotStarted,
            E::Config(c) => Kind::Config(c),
            E::Io { written, source } => Kind::Io { written, source },
            E::Spawn(e) => Kind::Spawn(e),
            other => Kind::Other(Box::new(other)),
        };
        Error { kind }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("fdr::Error");
        match &self.kind {
            Kind::CompiledOut => d.field("kind", &"CompiledOut"),
            Kind::SnapshotInProgress => d.field("kind", &"SnapshotInProgress"),
            Kind::CaptureInProgress => d.field("kind", &"CaptureInProgress"),
            Kind::NotStarted => d.field("kind", &"NotStarted"),
            Kind::Config(c) => d.field("kind", &"Config").field("config", c),
            Kind::Io { written, source } => d
                .field("kind", &"Io")
                .field("written", written)
                .field("source", source),
            Kind::Spawn(e) => d.field("kind", &"Spawn").field("source", e),
            Kind::Other(e) => d.field("kind", &"Other").field("source", e),
        };
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::CompiledOut => {
                f.write_str("fdr was built without the `record` feature: nothing is recorded")
            }
            Kind::SnapshotInProgress => f.write_str(
                "too many flight-recorder snapshots are being written at once; retry when one finishes",
            ),
            Kind::CaptureInProgress => {
                f.write_str("a capture is already running; stop it before starting another")
            }
            Kind::NotStarted => f.write_str("the recorder is not started: call fdr::start first"),
            Kind::Config(c) => write!(f, "invalid recorder configuration: {c}"),
            Kind::Io { written, source } => {
                write!(f, "writing the trace failed after {written} bytes: {source}")
            }
            Kind::Spawn(e) => write!(f, "could not start fdr's thread: {e}"),
            Kind::Other(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Config(c) => Some(c),
            Kind::Io { source, .. } | Kind::Spawn(source) => Some(source),
            Kind::Other(e) => Some(&**e),
            _ => None,
        }
    }
}

#[cfg(all(test, feature = "record"))]
mod tests {
    use super::*;

    #[test]
    fn each_predicate_answers_for_its_cause_only() {
        let io = || std::io::Error::other("disk full");
        let cases: [(Error, &str); 6] = [
            (fdr_recorder::Error::SnapshotInProgress.into(), "snapshot"),
            (fdr_recorder::Error::CaptureInProgress.into(), "capture"),
            (fdr_recorder::Error::NotStarted.into(), "not_started"),
            (
                fdr_recorder::Error::Config(ConfigError::Metrics(
                    fdr_recorder::MetricsError::Interval {
                        interval: std::time::Duration::from_millis(1),
                        min: fdr_recorder::MIN_METRICS_INTERVAL,
                    },
                ))
                .into(),
                "config",
            ),
            (
                fdr_recorder::Error::Io {
                    written: 42,
                    source: io(),
                }
                .into(),
                "io",
            ),
            (fdr_recorder::Error::Spawn(io()).into(), "spawn"),
        ];
        for (e, which) in &cases {
            let answers = [
                ("snapshot", e.is_snapshot_in_progress()),
                ("capture", e.is_capture_in_progress()),
                ("not_started", e.is_not_started()),
                ("config", e.is_config()),
                ("io", e.is_io()),
                ("spawn", e.is_spawn()),
            ];
            for (name, yes) in answers {
                assert_eq!(yes, name == *which, "{e:?}: is_{name}");
            }
            assert!(!e.is_compiled_out());
        }
        assert_eq!(cases[4].0.bytes_written(), Some(42));
        let source = std::error::Error::source(&cases[4].0).expect("the io error");
        assert_eq!(source.to_string(), "disk full");
        assert!(cases[3].0.to_string().contains("below the minimum"));
    }
}
