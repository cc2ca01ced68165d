//! The recording API when the `record` feature is on: fdr-recorder's.

pub use fdr_recorder::OsConfig;
pub use fdr_recorder::locks::blocking;
pub use fdr_recorder::task::{FutureExt, Traced, spawn_with};
pub use fdr_recorder::{
    CaptureGuard, Config, Error, FlightConfig, FlightRecorder, HistogramSnapshot, Lost,
    MetricsSnapshot, Recorder, RegionGuard, Scalar, Stats, TaskGuard, capture, enabled, flight,
    is_running, log, log_fmt, metrics, region, start, stats, stop, task, with_region,
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

/// The sentinel (`fdr-sentinel`): rules over fdr's runtime metrics, Prometheus registries
/// and process metrics that dump the flight recorder into an incident store when an SLO is
/// breached.
#[cfg(feature = "sentinel")]
pub mod sentinel {
    pub use fdr_sentinel::*;
}

/// The admin endpoint (`fdr-admin`): a dedicated, locked-down HTTP server for flight-recorder
/// snapshots, throttled captures, the sentinel's incidents and Prometheus metrics.
#[cfg(feature = "admin")]
pub mod admin {
    pub use fdr_admin::*;
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

/// OpenTelemetry bridge: each request's task carries its OpenTelemetry trace and span ids
/// (so `fdr tasks dump.fdr --otel-trace-id ID` finds it), and its span carries `fdr.task_id`.
/// [`ServerLayer`](otel::ServerLayer) and [`ClientLayer`](otel::ClientLayer) do it for tower
/// and hyper services; [`task_in_context`](otel::task_in_context) and
/// [`traced_in_context`](otel::traced_in_context) for other code.
///
/// ```
/// fdr::start(fdr::Config::default()).unwrap();
/// // Wrap the service: `fdr::otel::ServerLayer::new().layer(service)` (tower::Layer).
/// let _layer = fdr::otel::ServerLayer::new();
/// let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let task = fdr::otel::task_from_traceparent("job", header).unwrap();
/// # drop(task);
/// ```
#[cfg(feature = "otel")]
pub mod otel {
    pub use fdr_otel::*;
}
