//! The recording API when the `record` feature is on: fdr-recorder's.

pub use fdr_recorder::OsConfig;
pub use fdr_recorder::locks::blocking;
#[allow(deprecated, reason = "the former name, kept for one release")]
pub use fdr_recorder::task::FutureExt;
pub use fdr_recorder::task::{FdrFutureExt, Traced, spawn_with};
pub use fdr_recorder::{
    AsyncRegionGuard, Config, ConfigError, DEFAULT_METRICS_INTERVAL, FlightConfig,
    HistogramSnapshot, InRegion, Lost, MIN_METRICS_INTERVAL, MetricNameProblem, MetricSource,
    MetricsError, MetricsSnapshot, OsConfigError, RegionGuard, Scalar, Stats, TaskGuard,
    async_region, enabled, is_running, log, log_fmt, metrics, record_metrics, region, stats, stop,
    task, with_region,
};
// The control calls, with the facade's opaque error.
pub use crate::control::{
    CaptureGuard, FlightRecorder, Recorder, capture, flight, register_metric, start,
};

/// Spawns `future` on the current tokio runtime as a traced task named `name`.
#[cfg(feature = "tokio")]
pub use fdr_recorder::task::spawn;

/// The live cost meter and its budget: what fdr costs the process, measured while it runs
/// (its threads' CPU time, the events recorded and their estimated cost on the recording
/// threads), as a share of the process's CPU; above the budget (default 1%) fdr sheds
/// detail, wakes first, then short polls, and restores it when the load falls. Long polls,
/// regions, logs, blocks and loss records are recorded at every level.
///
/// ```
/// fdr::cost::set_budget(0.02).unwrap(); // 2% of the process's CPU
/// let c = fdr::cost::cost();
/// assert_eq!(c.budget, 0.02);
/// assert!(fdr::cost::set_budget(0.0).unwrap_err().is_config());
/// ```
pub mod cost {
    pub use fdr_recorder::cost::{
        Cost, DEFAULT_BUDGET, Detail, KEEP_POLL_NS, MIN_SAVING_FRACTION, RESTORE_FRACTION, Role,
        cost, detail,
    };

    /// Sets the budget: fdr's share of the process's CPU above which it sheds detail, in
    /// `(0, 1]` (`0.01`: 1%); `1.0` never sheds. Refused outside that range
    /// ([`Error::is_config`](crate::Error::is_config)), and nothing changes.
    pub fn set_budget(share: f64) -> Result<(), crate::Error> {
        Ok(fdr_recorder::cost::set_budget(share)?)
    }
}

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
    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure", feature = "local"))]
    pub use fdr_sentinel::{BucketConfig, BucketStore, UrlError, bucket};
    pub use fdr_sentinel::{
        DEFAULT_FILE_MODE, DEFAULT_SNAPSHOT_WAIT, DirStore, DumpFn, Engine, EnvProblem, Error,
        FileModeError, Histogram, IncidentMeta, IncidentStore, Limits, Listing, LogFn,
        MAX_ID_BYTES, MetricValue, Metrics, NameError, Retention, Rule, RuleError, RuleProblem,
        Sentinel, SentinelBuilder, SentinelHandle, SentinelStats, SidecarError, Stat, Step,
        StoreError, Suppressed, Trigger, ValueError, engine, env, metric,
    };
}

/// The admin endpoint (`fdr-admin`): a dedicated, locked-down HTTP server for flight-recorder
/// snapshots, throttled captures, the sentinel's incidents and Prometheus metrics.
#[cfg(feature = "admin")]
pub mod admin {
    pub use fdr_admin::{
        Admin, AdminBuilder, AdminHandle, ConfigError, DEFAULT_CAPTURE_COOLDOWN,
        DEFAULT_CAPTURE_SECONDS, DEFAULT_EVICTION_GRACE, DEFAULT_HEADER_READ_TIMEOUT,
        DEFAULT_MAX_CAPTURE_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES,
        DEFAULT_MAX_PIPELINED_REQUESTS, DEFAULT_PORT, DEFAULT_TRANSFER_TIMEOUT,
        DEFAULT_WRITE_TIMEOUT, Error, MAX_BLOCKING_THREADS, MAX_CAPTURE_SECONDS, MAX_HEADER_BYTES,
        MIN_CAPTURE_BYTES, MIN_HEADER_BYTES,
    };
}

/// tokio integration: worker threads' start, stop, park and unpark.
///
/// - A runtime you build: [`instrument`](tokio::instrument) installs fdr's hooks on the
///   `Builder` (workers record park and unpark events); [`instrument_with`](tokio::instrument_with)
///   keeps the application's own hooks too, or call [`Hooks`](tokio::Hooks)' functions from them.
/// - A runtime built by `#[tokio::main]`: [`watch`](tokio::watch) samples its workers' busy
///   time and parks from a thread of fdr's own, with no builder. It cannot record the
///   workers' park cycles (tokio takes those hooks only on the `Builder`), so the per-wake
///   evidence `fdr diagnose` uses on a busy host is absent, and the diagnosis says so.
///
/// ```
/// # fdr::start(fdr::Config::default()).unwrap();
/// # let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
/// # rt.block_on(async {
/// // #[tokio::main]
/// // async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let _watch = fdr::tokio::watch(tokio::runtime::Handle::current())?;
/// #   Ok::<(), fdr::Error>(())
/// // }
/// # }).unwrap();
/// ```
#[cfg(feature = "tokio")]
pub mod tokio {
    #[cfg(target_has_atomic = "64")]
    pub use crate::control::tokio::{watch, watch_every};
    pub use fdr_recorder::tokio_hooks::{
        Hooks, TOKIO_TASK_ID_BIT, UserHooks, instrument, instrument_with,
    };
    #[cfg(target_has_atomic = "64")]
    pub use fdr_recorder::tokio_watch::{DEFAULT_WATCH_INTERVAL, MIN_WATCH_INTERVAL, RuntimeWatch};
}

/// `tracing` integration: a layer that records spans as regions (the first entry) and async
/// regions (first enter to close, across awaits), and span fields and events as logs.
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
/// It is built with `opentelemetry` 0.33.x ([`OPENTELEMETRY_VERSION`](otel::OPENTELEMETRY_VERSION)),
/// re-exported as `fdr::otel::opentelemetry`: spans and tracer providers of another
/// OpenTelemetry release are invisible to it, and the layers warn on their first request when
/// they see none of theirs ([`provider_status`](otel::provider_status)).
///
/// ```
/// use fdr::otel::opentelemetry::Context;
///
/// fdr::start(fdr::Config::default()).unwrap();
/// // Wrap the service: `fdr::otel::ServerLayer::new().layer(service)` (tower::Layer).
/// let _layer = fdr::otel::ServerLayer::new();
/// let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let task = fdr::otel::task_from_traceparent("job", header).unwrap();
/// let _linked = fdr::otel::task_in_context("step", &Context::current());
/// # drop(task);
/// ```
#[cfg(feature = "otel")]
pub mod otel {
    pub use fdr_otel::{
        ClientLayer, ClientService, Field, LOG_CATEGORY, MAX_ROUTE_LEN, MAX_TASK_NAMES,
        OPENTELEMETRY_VERSION, ProviderStatus, RouteFn, ServerLayer, ServerService, TASK_ID_KEY,
        TRACE_URL_KEY, TRACEPARENT, TRACEPARENT_LEN, TRACESTATE, TraceParent, TraceParentError,
        UrlTemplate, UrlTemplateError, annotate, annotate_span, check_provider, link,
        opentelemetry, provider_status, task_from_traceparent, task_in_context, traced_in_context,
    };
}
