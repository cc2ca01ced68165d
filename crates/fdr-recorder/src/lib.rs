//! fdr's recorder: per-thread, lock-free event recording, the flight recorder, and
//! streaming capture.
//!
//! Each recording thread encodes events straight into its own chunk (64 KiB); full chunks are
//! handed, lock-free, to a collector thread that keeps the newest in a ring bounded by
//! `max_bytes` (the flight recorder) and streams them to a capture, if one runs. Nothing is
//! lost silently: whatever is dropped is counted in [`stats`] and in a loss record in the
//! trace.
//!
//! ```
//! use fdr_recorder::{Config, FlightConfig};
//!
//! fdr_recorder::start(Config::default()).unwrap();
//! {
//!     let _task = fdr_recorder::task("request");
//!     let _r = fdr_recorder::region("db");
//!     fdr_recorder::log!("db", "{} rows", 3);
//! }
//! let mut dump = Vec::new();
//! fdr_recorder::flight().write_to(&mut dump).unwrap();
//! assert!(fdr_format::Decoder::new(&dump).is_ok());
//! ```
//!
//! # Costs
//!
//! A region (begin and end) costs about the floor of two timestamped thread-local stores;
//! `cargo xtask bench --filter record` measures it against that floor in the same run. When
//! recording is off, every entry point costs one relaxed load ([`enabled`]).
//!
//! # Feature flags
//!
//! - `tokio`: [`tokio_hooks::instrument`] (worker start, park, unpark; composing with the
//!   application's hooks through [`tokio_hooks::instrument_with`] or [`tokio_hooks::Hooks`]),
//!   [`tokio_watch::watch`] (a runtime's workers sampled from outside, for `#[tokio::main]`)
//!   and [`task::spawn`].
//! - `tokio-unstable-hooks`: every tokio task seen without wrapping; needs
//!   `RUSTFLAGS="--cfg tokio_unstable"` too, and fails the build without it.
//!
//! Under `--cfg loom` only the chunk hand-off protocol, a thread's metric cells and the OS
//! view's capture areas are built, with the loom models of their protocols (`src/tests/`,
//! `RUSTFLAGS="--cfg loom" cargo test -p fdr-recorder --release --lib`).

#![cfg_attr(
    loom,
    allow(dead_code, reason = "under loom only the protocols are built")
)]

#[cfg(not(loom))]
mod api;
#[cfg(not(loom))]
mod async_region;
#[cfg(not(loom))]
mod capture;
mod chunk;
#[cfg(not(loom))]
mod clock;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod flight;
#[cfg(not(loom))]
mod hot;
#[cfg(not(loom))]
mod identity;
#[cfg(not(loom))]
mod intern;
#[cfg(not(loom))]
mod live;
#[cfg(not(loom))]
mod local;
#[cfg(not(loom))]
mod state;
#[cfg(not(loom))]
mod stats;
mod sync;
#[cfg(not(loom))]
mod tls;
#[cfg(not(loom))]
mod trace;

// Async tasks, contended locks, runtime metrics, tokio hooks.
#[cfg(not(loom))]
pub mod cost;
#[cfg(not(loom))]
pub mod locks;
mod metric_cells;
#[cfg(not(loom))]
mod metric_samples;
#[cfg(not(loom))]
mod metrics;
#[cfg(not(loom))]
pub mod os;
/// The OS view's capture areas, for the loom model of their hand-off.
#[cfg(loom)]
#[path = "os/signal.rs"]
mod os_signal;
#[cfg(not(loom))]
pub mod task;
#[cfg(all(not(loom), feature = "tokio"))]
pub mod tokio_hooks;
#[cfg(all(not(loom), feature = "tokio", target_has_atomic = "64"))]
pub mod tokio_watch;
#[cfg(not(loom))]
pub use fdr_format::BlockReason;
#[cfg(not(loom))]
pub use metric_samples::{
    DEFAULT_METRICS_INTERVAL, MAX_METRIC_NAME_BYTES, MAX_METRIC_SOURCES, MIN_METRICS_INTERVAL,
    MetricSource, metric_source_panics, record_metrics, register_metric,
};
#[cfg(not(loom))]
pub use metrics::{HISTOGRAM_BUCKETS, HistogramSnapshot, MetricsSnapshot, Scalar, metrics};

#[cfg(test)]
mod tests;

#[cfg(not(loom))]
pub use recorder::*;

/// What the recorder's macros expand to; not part of the API.
#[cfg(not(loom))]
#[doc(hidden)]
pub mod __macro_support {
    pub use crate::api::{StaticLog, has_format_braces, log_static_site};
    pub use crate::hot::{StaticName, region_static};
}

#[cfg(not(loom))]
mod recorder {
    pub use crate::api::{
        MAX_FORMATTED_LOG_LEN, TaskGuard, current_task, intern, intern_site, log, log_fmt,
        new_task_id, record, set_current_task, task,
    };
    pub use crate::async_region::{AsyncRegionGuard, InRegion, async_region, new_region_id};
    pub use crate::capture::{CAPTURE_PENDING_MAX, CaptureGuard, capture, capture_running};
    pub use crate::chunk::CHUNK_BYTES;
    pub use crate::clock::{Calibration, calibrate, now_ticks};
    pub use crate::error::{ConfigError, Error, MetricNameProblem, MetricsError, OsConfigError};
    pub use crate::flight::{FlightRecorder, MAX_INCIDENT_SNAPSHOTS, MAX_SNAPSHOTS, flight};
    pub use crate::hot::{RegionGuard, enabled, region, with_region};
    pub use crate::intern::{
        MAX_DYNAMIC_STRINGS, MAX_SITES, MAX_STRINGS, OVERFLOW, intern_dynamic,
    };
    pub use crate::os::OsConfig;
    pub use crate::state::{FlightConfig, MAX_FLIGHT_BYTES, MIN_FLIGHT_BYTES};
    pub use crate::stats::{LOSS_REASONS, Lost, Stats};
    pub use fdr_format::{EventKind, SiteId, StrId, TaskId};

    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

    use fdr_format::ProcessInfo;

    use crate::state::{Core, shared};
    use crate::sync::lock;

    /// What every event checks, in one cache line: whether recording is on, and the
    /// detail the cost budget sheds (`cost::Detail` as a byte), which a poll or a wake
    /// reads right after the switch.
    #[repr(C, align(64))]
    pub(crate) struct Switches {
        pub(crate) enabled: AtomicBool,
        pub(crate) shed: AtomicU8,
    }

    pub(crate) static SWITCHES: Switches = Switches {
        enabled: AtomicBool::new(false),
        shed: AtomicU8::new(0),
    };
    static RUNNING: AtomicBool = AtomicBool::new(false);

    /// Recorder configuration.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Config {
        /// The flight recorder's window; `None` records only while a capture runs.
        pub flight: Option<FlightConfig>,
        /// Program name for trace headers (default: the executable's file name).
        pub program: String,
        /// Service version for trace headers (default: `service.version` in
        /// `OTEL_RESOURCE_ATTRIBUTES`, else empty).
        pub service_version: String,
        /// Service name for trace headers (default: `OTEL_SERVICE_NAME`, else `service.name`
        /// in `OTEL_RESOURCE_ATTRIBUTES`, else the program name).
        pub service: String,
        /// Host name for trace headers (default: `host.name` in `OTEL_RESOURCE_ATTRIBUTES`,
        /// else the system's host name).
        pub host: String,
        /// The OS view: per-thread CPU and scheduler samples and the stacks of long scopes
        /// (see [`os`](crate::os)); `None` turns it off. Off by default until a stack capture
        /// costs at most 20 µs (`os.stack_capture_ns` in `cargo xtask bench`);
        /// `OsConfig::platform_default()` turns it
        /// on where the platform supports it (Linux; x86_64 and aarch64 for stacks).
        pub os: Option<OsConfig>,
        /// How often fdr's runtime metrics and the values registered with
        /// [`register_metric`](crate::register_metric) are written into the trace as metric
        /// samples, by a thread of fdr's own (`fdr-metrics`); `None` writes none. Default
        /// [`DEFAULT_METRICS_INTERVAL`](crate::DEFAULT_METRICS_INTERVAL) (1 s), at least
        /// [`MIN_METRICS_INTERVAL`](crate::MIN_METRICS_INTERVAL) (10 ms).
        pub metrics_interval: Option<std::time::Duration>,
    }

    impl Default for Config {
        fn default() -> Self {
            let program = std::env::current_exe()
                .ok()
                .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
                .unwrap_or_default();
            Config {
                flight: Some(FlightConfig::default()),
                os: None,
                metrics_interval: Some(crate::DEFAULT_METRICS_INTERVAL),
                service: crate::identity::default_service(&program),
                program,
                service_version: crate::identity::default_service_version(),
                host: crate::identity::default_host(),
            }
        }
    }

    /// A handle to the process's recorder.
    #[derive(Debug, Clone, Copy)]
    pub struct Recorder(());

    impl Recorder {
        /// The flight recorder.
        pub fn flight(&self) -> FlightRecorder {
            flight()
        }

        /// The recorder's counters.
        pub fn stats(&self) -> Stats {
            stats()
        }

        /// Stops recording (see [`stop`]).
        pub fn stop(&self) {
            stop()
        }
    }

    /// Starts the process's recorder: calibrates the clock (about 20 ms, once), starts the
    /// collector thread (once), and the flight recorder if configured. Calling it again
    /// applies the new configuration. A flight `max_bytes` outside
    /// [`MIN_FLIGHT_BYTES`]`..=`[`MAX_FLIGHT_BYTES`] is refused with [`Error::Config`], and
    /// nothing changes.
    pub fn start(config: Config) -> Result<Recorder, Error> {
        // A configuration that cannot work is refused before anything changes.
        if let Some(flight) = &config.flight {
            flight.check().map_err(Error::Config)?;
        }
        if let Some(i) = config.metrics_interval
            && i < crate::MIN_METRICS_INTERVAL
        {
            return Err(Error::Config(crate::error::ConfigError::Metrics(
                crate::error::MetricsError::Interval {
                    interval: i,
                    min: crate::MIN_METRICS_INTERVAL,
                },
            )));
        }
        crate::clock::calibrate();
        let sh = shared();
        {
            let mut p = lock(&sh.process);
            *p = ProcessInfo {
                pid: std::process::id(),
                start_unix_ns: crate::clock::clock_sync().wall_unix_ns,
                program: config.program.clone(),
                service_version: config.service_version.clone(),
                host: config.host.clone(),
                service: config.service.clone(),
                process_start_unix_ns: crate::identity::process_start_unix_ns(),
                fdr_version: env!("CARGO_PKG_VERSION").to_owned(),
                build_id: crate::identity::build_id(),
            };
        }
        if sh.collector.get().is_none() {
            let handle = std::thread::Builder::new()
                .name("fdr-collector".into())
                .spawn(|| {
                    crate::cost::register_thread(crate::cost::Role::Collector);
                    crate::state::collector_loop()
                })
                .map_err(Error::Spawn)?;
            let _ = sh.collector.set(handle.thread().clone());
        }
        RUNNING.store(true, Ordering::Relaxed);
        match config.flight {
            Some(cfg) => flight().start(cfg)?,
            None => flight().stop(),
        }
        refresh_enabled(&lock(&sh.core));
        crate::os::configure(config.os)?;
        crate::metric_samples::configure(config.metrics_interval)?;
        Ok(Recorder(()))
    }

    /// Stops recording: events are no longer recorded. The flight window and a running
    /// capture stay; `start` resumes.
    pub fn stop() {
        RUNNING.store(false, Ordering::Relaxed);
        SWITCHES.enabled.store(false, Ordering::Relaxed);
    }

    /// The identity written in trace headers (host, service, version, pid, process start,
    /// fdr version, build id), as the last [`start`] set it; all empty before.
    pub fn process_info() -> ProcessInfo {
        lock(&shared().process).clone()
    }

    /// Whether the recorder was started and not stopped.
    pub fn is_running() -> bool {
        RUNNING.load(Ordering::Relaxed)
    }

    /// The recorder's counters.
    pub fn stats() -> Stats {
        let sh = shared();
        let snapshots = sh.snapshots_running.load(Ordering::Relaxed)
            + sh.incident_snapshots_running.load(Ordering::Relaxed);
        sh.stats.read(
            sh.live_threads.load(Ordering::Relaxed) as u64,
            sh.allocated.load(Ordering::Relaxed) as u64,
            snapshots as u64,
        )
    }

    pub(crate) fn refresh_enabled(core: &Core) {
        let on =
            RUNNING.load(Ordering::Relaxed) && (core.flight.is_some() || core.capture.is_some());
        SWITCHES.enabled.store(on, Ordering::Relaxed);
    }
}
