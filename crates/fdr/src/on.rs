//! The recording API when the `record` feature is on: fdr-recorder's.

pub use fdr_recorder::locks::blocking;
pub use fdr_recorder::task::{FutureExt, Traced, spawn_with};
pub use fdr_recorder::{
    CaptureGuard, Config, Error, FlightConfig, FlightRecorder, HistogramSnapshot, Lost,
    MetricsSnapshot, Recorder, RegionGuard, Stats, TaskGuard, capture, enabled, flight, is_running,
    log, log_fmt, metrics, region, start, stats, stop, task, with_region,
};

/// Spawns `future` on the current tokio runtime as a traced task named `name`.
#[cfg(feature = "tokio")]
pub use fdr_recorder::task::spawn;

/// Locks that record where they were contended (block begin/end with the caller's site),
/// with the std API. Uncontended, they cost what std's do plus a try.
pub mod sync {
    pub use fdr_recorder::locks::{
        Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
    };
}

/// tokio integration: worker threads' start, stop, park and unpark.
#[cfg(feature = "tokio")]
pub mod tokio {
    pub use fdr_recorder::tokio_hooks::instrument;
}

/// `tracing` integration: a layer that records spans as regions and events as logs.
#[cfg(feature = "tracing")]
pub mod tracing {
    pub use fdr_tracing::FdrLayer;
}
