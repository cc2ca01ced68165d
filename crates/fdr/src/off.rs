//! The recording API when the `record` feature is off: the same names and signatures,
//! doing nothing. Recording calls inline to nothing; control calls report
//! an error that [`Error::is_compiled_out`].

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::marker::PhantomData;
use std::time::Duration;

use fdr_format::{BlockReason, TaskId};

use crate::Error;

/// Why a configuration was refused (never, without `record`: nothing is checked).
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
        /// The least accepted (`MIN_FLIGHT_BYTES`).
        min: usize,
        /// The most accepted (`MAX_FLIGHT_BYTES`).
        max: usize,
        /// Bytes in one chunk (`CHUNK_BYTES`).
        chunk_bytes: usize,
    },
    /// An OS view setting (`OsConfig`) is outside its bounds.
    #[error(transparent)]
    Os(OsConfigError),
    /// A metrics setting is refused: the sampling interval, the cost budget, or a
    /// registered metric's name or count.
    #[error(transparent)]
    Metrics(MetricsError),
}

/// An OS view setting (`OsConfig`) outside its bounds: the setting, the value and
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
    /// `cpu_profile_hz` is above `max` (`MAX_CPU_PROFILE_HZ`).
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
    /// `Config::metrics_interval` is below `min` (`MIN_METRICS_INTERVAL`).
    #[error("metrics_interval {interval:?} is below the minimum {min:?}")]
    Interval {
        /// The value given.
        interval: Duration,
        /// The least accepted.
        min: Duration,
    },
    /// A cost budget (`set_budget`) outside `(0, 1]`.
    #[error("cost budget {share} is not a share of the process's CPU in (0, 1]")]
    CostBudget {
        /// The share given.
        share: f64,
    },
    /// A name `register_metric` cannot publish.
    #[error("metric name {name:?}: {problem}")]
    Name {
        /// The name given (its first 80 characters).
        name: String,
        /// What is wrong with it.
        problem: MetricNameProblem,
    },
    /// `max` metrics are registered already (`MAX_METRIC_SOURCES`).
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

/// Recorder configuration (accepted and ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The flight recorder's window.
    pub flight: Option<FlightConfig>,
    /// Program name for trace headers.
    pub program: String,
    /// Service version for trace headers.
    pub service_version: String,
    /// Service name for trace headers.
    pub service: String,
    /// Host name for trace headers.
    pub host: String,
    /// The OS view.
    pub os: Option<OsConfig>,
    /// How often metric samples are written into the trace.
    pub metrics_interval: Option<Duration>,
}

/// The default metric sampling interval (nothing is sampled).
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest metric sampling interval (nothing is sampled).
pub const MIN_METRICS_INTERVAL: Duration = Duration::from_millis(10);

/// A registered value (never read).
#[derive(Debug)]
pub struct MetricSource(String);

impl MetricSource {
    /// The name it was registered under.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Accepts the value and never reads it: nothing is recorded.
pub fn register_metric(
    name: &str,
    _read: impl Fn() -> f64 + Send + Sync + 'static,
) -> Result<MetricSource, Error> {
    Ok(MetricSource(name.to_string()))
}

/// Does nothing.
pub fn record_metrics() {}

/// The OS view's configuration (accepted and ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsConfig {
    /// Long-scope threshold.
    pub long_scope_threshold: Duration,
    /// How often threads are looked at.
    pub scan_interval: Duration,
    /// How often every thread gets a CPU sample.
    pub periodic_interval: Duration,
    /// Capture stacks of long scopes.
    pub stacks: bool,
    /// Most stacks of one long scope.
    pub stacks_per_scope: u32,
    /// Capture again this often while a scope stays long.
    pub stack_every: Duration,
    /// Most stacks per second.
    pub stacks_per_sec: u32,
    /// Bytes of stack copied per capture.
    pub stack_copy_bytes: usize,
    /// CPU profiling rate; 0 is off.
    pub cpu_profile_hz: u32,
    /// The capture signal; `None` is the default.
    pub signal: Option<i32>,
}

impl Default for OsConfig {
    fn default() -> Self {
        OsConfig {
            long_scope_threshold: Duration::from_millis(1),
            scan_interval: Duration::from_millis(20),
            periodic_interval: Duration::from_millis(100),
            stacks: true,
            stacks_per_scope: 4,
            stack_every: Duration::from_millis(10),
            stacks_per_sec: 200,
            stack_copy_bytes: 32 << 10,
            cpu_profile_hz: 0,
            signal: None,
        }
    }
}

impl OsConfig {
    /// The OS view this platform would support by default (the same answer as with
    /// `record`): on on Linux, off elsewhere.
    pub fn platform_default() -> Option<OsConfig> {
        cfg!(target_os = "linux").then(OsConfig::default)
    }
}

/// The flight recorder's window (accepted and ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlightConfig {
    /// Keep at least this much history.
    pub min_age: Duration,
    /// Hard cap on the bytes kept.
    pub max_bytes: usize,
}

impl Default for FlightConfig {
    fn default() -> Self {
        FlightConfig {
            min_age: Duration::from_secs(10),
            max_bytes: 64 << 20,
        }
    }
}

/// The recorder's counters: all zero (the fields of the recording build's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events in sealed chunks.
    pub events: u64,
    /// Bytes in sealed chunks.
    pub bytes: u64,
    /// Chunks sealed and collected.
    pub chunks: u64,
    /// Events that aged out of the flight window.
    pub aged_out: Lost,
    /// Losses by reason (capture behind, pool exhausted, oversize).
    pub lost: [Lost; 3],
    /// Events recorded on a thread after its thread-local storage was torn down.
    pub after_thread_exit: u64,
    /// Events recorded from inside the recorder's own work on the same thread.
    pub reentrant: u64,
    /// Threads registered so far.
    pub threads: u64,
    /// Threads currently alive and registered.
    pub live_threads: u64,
    /// Chunks allocated.
    pub chunks_allocated: u64,
    /// Bytes currently in the flight ring.
    pub ring_bytes: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// Snapshots refused: too many were being written at once.
    pub snapshots_refused: u64,
    /// Snapshots being written now.
    pub snapshots_running: u64,
    /// Chunks a snapshot in progress gave back before writing them.
    pub snapshot_chunks_released: u64,
}

impl Stats {
    /// Losses for a reason: none.
    pub fn lost_for(&self, _reason: fdr_format::LossReason) -> Lost {
        Lost::default()
    }

    /// Events lost: none.
    pub fn lost_events(&self) -> u64 {
        0
    }

    /// Bytes of events lost: none.
    pub fn lost_bytes(&self) -> u64 {
        0
    }

    /// Events that aged out of the flight window: none.
    pub fn aged_out_events(&self) -> u64 {
        0
    }
}

/// What was lost for one reason: nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    /// Events.
    pub events: u64,
    /// Encoded bytes.
    pub bytes: u64,
    /// Whole chunks.
    pub chunks: u64,
}

/// A handle to the (absent) recorder.
#[derive(Debug, Clone, Copy)]
pub struct Recorder(());

impl Recorder {
    /// The (absent) flight recorder.
    pub fn flight(&self) -> FlightRecorder {
        flight()
    }

    /// All zero.
    pub fn stats(&self) -> Stats {
        stats()
    }

    /// Does nothing.
    pub fn stop(&self) {
        stop()
    }
}

/// Does nothing; succeeds, so a binary's set-up code runs unchanged.
pub fn start(_config: Config) -> Result<Recorder, Error> {
    Ok(Recorder(()))
}

/// Does nothing.
pub fn stop() {}

/// Always `false`.
pub fn is_running() -> bool {
    false
}

/// All zero.
pub fn stats() -> Stats {
    Stats::default()
}

/// Always `false`: recording is compiled out.
#[inline(always)]
pub fn enabled() -> bool {
    false
}

/// The (absent) flight recorder.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlightRecorder(());

/// The (absent) flight recorder.
pub fn flight() -> FlightRecorder {
    FlightRecorder(())
}

impl FlightRecorder {
    /// Reports an error that [`Error::is_compiled_out`].
    pub fn start(&self, _config: FlightConfig) -> Result<(), Error> {
        Err(Error::compiled_out())
    }
    /// Does nothing.
    pub fn stop(&self) {}
    /// Always `false`.
    pub fn enabled(&self) -> bool {
        false
    }
    /// Always `None`.
    pub fn config(&self) -> Option<FlightConfig> {
        None
    }
    /// Writes nothing; reports an error that [`Error::is_compiled_out`].
    pub fn write_to<W: Write>(&self, _out: &mut W) -> Result<u64, Error> {
        Err(Error::compiled_out())
    }
    /// Writes nothing; reports an error that [`Error::is_compiled_out`].
    pub fn write_incident_to<W: Write>(&self, _out: &mut W) -> Result<u64, Error> {
        Err(Error::compiled_out())
    }
}

/// A capture that never started.
#[derive(Debug)]
pub struct CaptureGuard<W>(PhantomData<fn() -> W>);

impl<W> CaptureGuard<W> {
    /// Reports an error that [`Error::is_compiled_out`].
    pub fn stop(self) -> Result<W, Error> {
        Err(Error::compiled_out())
    }
}

/// Reports an error that [`Error::is_compiled_out`]; the writer is dropped untouched.
pub fn capture<W: Write + Send + 'static>(_writer: W) -> Result<CaptureGuard<W>, Error> {
    Err(Error::compiled_out())
}

/// A region that records nothing.
#[must_use = "a region ends when its guard is dropped"]
#[derive(Debug)]
pub struct RegionGuard(());

/// Records nothing.
#[inline(always)]
pub fn region(_name: &'static str) -> RegionGuard {
    RegionGuard(())
}

/// Runs `f`.
#[inline(always)]
pub fn with_region<R>(_name: &'static str, f: impl FnOnce() -> R) -> R {
    f()
}

/// A task that records nothing.
#[must_use = "a task ends when its guard is dropped"]
#[derive(Debug)]
pub struct TaskGuard(());

impl TaskGuard {
    /// [`TaskId::NONE`].
    pub fn id(&self) -> TaskId {
        TaskId::NONE
    }
}

/// Records nothing.
#[inline(always)]
pub fn task(_name: &'static str) -> TaskGuard {
    TaskGuard(())
}

/// Records nothing.
#[inline(always)]
pub fn log(_category: &'static str, _message: &'static str) {}

/// Records nothing.
#[inline(always)]
pub fn log_fmt(_category: &'static str, _args: fmt::Arguments<'_>) {}

/// A region that records nothing; the name is type-checked, never evaluated.
#[macro_export]
macro_rules! region {
    ($name:expr) => {{
        let _: fn() -> &'static str = || $name;
        $crate::region("")
    }};
}

/// Records nothing; the arguments are type-checked, never evaluated.
#[macro_export]
macro_rules! log {
    ($category:expr, $($arg:tt)+) => {
        if false {
            $crate::log_fmt($category, ::core::format_args!($($arg)+))
        }
    };
}

/// A future that records nothing: the future itself.
pub type Traced<F> = F;

/// A future measured as nothing: the future itself.
pub type InRegion<F> = F;

/// `.traced(name)` and `.in_region(name)` on any future: return the future unchanged.
pub trait FdrFutureExt: Future + Sized {
    /// Returns `self`.
    #[inline(always)]
    fn traced(self, _name: &'static str) -> Traced<Self> {
        self
    }

    /// Returns `self`.
    #[inline(always)]
    fn in_region(self, _name: &'static str) -> InRegion<Self> {
        self
    }
}

impl<F: Future> FdrFutureExt for F {}

/// The former name of [`FdrFutureExt`].
#[deprecated(
    since = "0.1.0",
    note = "renamed `FdrFutureExt` (`FutureExt` collides with the `futures` and OpenTelemetry traits); this alias goes in the next release"
)]
pub trait FutureExt: Future + Sized {
    /// Returns `self`.
    #[inline(always)]
    fn traced(self, _name: &'static str) -> Traced<Self> {
        self
    }
}

#[allow(deprecated, reason = "the alias is implemented for one release")]
impl<F: Future> FutureExt for F {}

/// An async region that records nothing (`Send`, as the recording one is).
#[must_use = "an async region ends when its guard is dropped"]
#[derive(Debug)]
pub struct AsyncRegionGuard(());

impl AsyncRegionGuard {
    /// Always 0: nothing was recorded.
    pub fn id(&self) -> u64 {
        0
    }
}

/// Records nothing.
#[inline(always)]
pub fn async_region(_name: &'static str) -> AsyncRegionGuard {
    AsyncRegionGuard(())
}

/// Hands `future` to `spawn` unchanged.
#[inline(always)]
pub fn spawn_with<F, R>(_name: &'static str, future: F, spawn: impl FnOnce(Traced<F>) -> R) -> R {
    spawn(future)
}

/// Runs `f`.
#[inline(always)]
pub fn blocking<R>(_reason: BlockReason, f: impl FnOnce() -> R) -> R {
    f()
}

/// std's locks: nothing to record.
pub mod sync {
    pub use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
}

/// The live cost meter and its budget (the recording build's API): nothing is metered and
/// nothing shed; [`cost::set_budget`] reports an error that [`Error::is_compiled_out`].
pub mod cost {
    use crate::Error;

    /// The default budget (the recording build's: 1% of the process's CPU).
    pub const DEFAULT_BUDGET: f64 = 0.01;
    /// A shed level is restored only within this fraction of the budget (the recording
    /// build's).
    pub const RESTORE_FRACTION: f64 = 0.8;
    /// Detail is shed only when it saves this fraction of the budget (the recording
    /// build's).
    pub const MIN_SAVING_FRACTION: f64 = 0.25;
    /// A poll at least this long is kept at every level (the recording build's), in ns.
    pub const KEEP_POLL_NS: u64 = 100_000;

    /// How much detail instrumented tasks record, in the order it is shed (the recording
    /// build's levels; always [`Detail::Full`] here).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    #[repr(u8)]
    pub enum Detail {
        /// Everything.
        #[default]
        Full = 0,
        /// Wakes of instrumented tasks are not recorded.
        NoWakes = 1,
        /// Wakes and short polls of instrumented tasks are not recorded.
        NoPolls = 2,
    }

    impl Detail {
        /// Every level, from full detail to the most shed.
        pub const ALL: [Detail; 3] = [Detail::Full, Detail::NoWakes, Detail::NoPolls];

        /// The level as its number (0: full detail).
        pub fn level(self) -> u8 {
            self as u8
        }
    }

    /// Which of fdr's threads a metered thread is (the recording build's roles).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Role {
        /// The collector.
        Collector,
        /// The OS view's sampler.
        Sampler,
        /// The metrics sampler.
        Metrics,
        /// A streaming capture's writer.
        Capture,
        /// The tokio runtime watcher.
        TokioWatch,
        /// The sentinel and its dump writer.
        Sentinel,
        /// The admin endpoint.
        Admin,
    }

    impl Role {
        /// Every role, in [`Cost::thread_cpu_ns`] order.
        pub const ALL: [Role; 7] = [
            Role::Collector,
            Role::Sampler,
            Role::Metrics,
            Role::Capture,
            Role::TokioWatch,
            Role::Sentinel,
            Role::Admin,
        ];

        /// Its name, as `/metrics` labels it.
        pub fn name(self) -> &'static str {
            match self {
                Role::Collector => "collector",
                Role::Sampler => "sampler",
                Role::Metrics => "metrics",
                Role::Capture => "capture",
                Role::TokioWatch => "tokio_watch",
                Role::Sentinel => "sentinel",
                Role::Admin => "admin",
            }
        }
    }

    /// What fdr costs the process: nothing is metered (the fields of the recording
    /// build's, all zero but the budget).
    #[derive(Debug, Clone, Copy, PartialEq, Default)]
    pub struct Cost {
        /// Intervals metered.
        pub intervals: u64,
        /// CPU time of fdr's threads by role, in [`Role::ALL`] order, in ns.
        pub thread_cpu_ns: [u64; 7],
        /// The process's CPU time, in ns.
        pub process_cpu_ns: u64,
        /// Events recorded.
        pub events: u64,
        /// The calibrated cost of one event, in ns.
        pub per_event_ns: f64,
        /// The recording threads' estimated CPU time spent recording, in ns.
        pub recording_cpu_ns: u64,
        /// Events recorded per second over the last interval.
        pub events_per_second: f64,
        /// fdr's share of the process's CPU over the last interval.
        pub share: f64,
        /// The budget.
        pub budget: f64,
        /// The detail recorded now.
        pub detail: Detail,
        /// Times the meter shed more detail.
        pub sheds: u64,
        /// Times the meter restored detail.
        pub restores: u64,
        /// fdr threads not metered.
        pub unmetered_threads: u64,
    }

    impl Cost {
        /// CPU time of fdr's threads of `role`, in ns.
        pub fn thread_cpu_ns_of(&self, role: Role) -> u64 {
            Role::ALL
                .iter()
                .position(|r| *r == role)
                .map_or(0, |i| self.thread_cpu_ns[i])
        }

        /// CPU time of all of fdr's threads, in ns.
        pub fn threads_cpu_ns(&self) -> u64 {
            self.thread_cpu_ns.iter().sum()
        }

        /// fdr's CPU time in all, in ns.
        pub fn total_cpu_ns(&self) -> u64 {
            self.threads_cpu_ns() + self.recording_cpu_ns
        }
    }

    /// The meter's reading: all zero but the budget ([`DEFAULT_BUDGET`]).
    pub fn cost() -> Cost {
        Cost {
            budget: DEFAULT_BUDGET,
            ..Cost::default()
        }
    }

    /// The detail recorded: [`Detail::Full`].
    pub fn detail() -> Detail {
        Detail::Full
    }

    /// Sets the budget: reports an error that [`Error::is_compiled_out`].
    pub fn set_budget(_share: f64) -> Result<(), Error> {
        Err(Error::compiled_out())
    }
}
