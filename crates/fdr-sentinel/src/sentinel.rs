//! The running sentinel: a watcher thread that samples the metrics every `interval` and
//! feeds the [`Engine`], and a dump thread that writes what the engine triggers into the
//! store, so a slow store never delays sampling and a failing one never reaches the service.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{Engine, Suppressed, Trigger};
use crate::layout::{self, FileModeError, host_name, incident_id, unix_ms};
use crate::metric::{self, Metrics};
use crate::rule::{Limits, NameError, Rule};
use crate::store::{DirStore, IncidentMeta, IncidentStore, Retention, StoreError};

/// How long a trigger waits, by default, for an incident snapshot slot of the flight recorder.
/// Dumps take incident snapshots, which downloads and other `write_to` snapshots never crowd
/// out; a slot is short only while `MAX_INCIDENT_SNAPSHOTS` incident snapshots are written at
/// once.
pub const DEFAULT_SNAPSHOT_WAIT: Duration = Duration::from_secs(90);

/// The first pause before a trigger asks the recorder again for its snapshot; each pause
/// doubles, up to [`SNAPSHOT_RETRY_MAX`].
const SNAPSHOT_RETRY_FIRST: Duration = Duration::from_millis(50);
const SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(2);

/// Writes a line of the sentinel's log.
pub type LogFn = dyn Fn(&str) + Send + Sync;

/// Where a sentinel keeps its incidents.
pub(crate) enum StoreChoice {
    /// Not chosen yet (starting fails).
    Unset,
    /// A store the user made.
    Custom(Arc<dyn IncidentStore>),
    /// A [`DirStore`], made at start.
    Dir(std::path::PathBuf, Retention),
    /// A [`crate::BucketStore`], made at start.
    #[cfg(feature = "object-store")]
    Bucket(crate::bucket::BucketConfig),
}

impl StoreChoice {
    /// The retention of a store made at start.
    pub(crate) fn retention_mut(&mut self) -> Option<&mut Retention> {
        match self {
            StoreChoice::Dir(_, r) => Some(r),
            #[cfg(feature = "object-store")]
            StoreChoice::Bucket(c) => Some(&mut c.retention),
            StoreChoice::Unset | StoreChoice::Custom(_) => None,
        }
    }
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Unset => f.write_str("Unset"),
            StoreChoice::Custom(_) => f.write_str("Custom"),
            StoreChoice::Dir(d, r) => f.debug_tuple("Dir").field(d).field(r).finish(),
            #[cfg(feature = "object-store")]
            StoreChoice::Bucket(c) => f.debug_tuple("Bucket").field(c).finish(),
        }
    }
}

/// Sets up a [`Sentinel`].
pub struct SentinelBuilder {
    pub(crate) interval: Duration,
    pub(crate) rules: Vec<Rule>,
    pub(crate) limits: Limits,
    pub(crate) store: StoreChoice,
    pub(crate) registries: Vec<prometheus::Registry>,
    pub(crate) runtime_metrics: bool,
    pub(crate) process_metrics: bool,
    pub(crate) service_version: Option<String>,
    pub(crate) snapshot_wait: Duration,
    pub(crate) file_mode: Option<u32>,
    pub(crate) log: Arc<LogFn>,
}

impl std::fmt::Debug for SentinelBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelBuilder")
            .field("interval", &self.interval)
            .field("rules", &self.rules)
            .field("limits", &self.limits)
            .field("store", &self.store)
            .field("registries", &self.registries.len())
            .field("snapshot_wait", &self.snapshot_wait)
            .field("file_mode", &self.file_mode.map(|m| format!("{m:#o}")))
            .finish_non_exhaustive()
    }
}

impl Default for SentinelBuilder {
    fn default() -> Self {
        SentinelBuilder {
            interval: Duration::from_secs(5),
            rules: Vec::new(),
            limits: Limits::GLOBAL,
            store: StoreChoice::Unset,
            registries: Vec::new(),
            runtime_metrics: true,
            process_metrics: true,
            service_version: None,
            snapshot_wait: DEFAULT_SNAPSHOT_WAIT,
            file_mode: None,
            log: Arc::new(|line| eprintln!("fdr-sentinel: {line}")),
        }
    }
}

impl SentinelBuilder {
    /// Sample every `interval` (default 5 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Limits across rules (default [`Limits::GLOBAL`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Keep incidents in `dir` ([`DirStore`]) with `retention`.
    pub fn dir(mut self, dir: impl Into<std::path::PathBuf>, retention: Retention) -> Self {
        self.store = StoreChoice::Dir(dir.into(), retention);
        self
    }

    /// Keep incidents in `store`.
    pub fn store(mut self, store: impl IncidentStore + 'static) -> Self {
        self.store = StoreChoice::Custom(Arc::new(store));
        self
    }

    /// Keep incidents in an object store ([`crate::BucketStore`], made at
    /// [`SentinelBuilder::start`]; `FDR_SENTINEL_RETAIN_*` can still change its retention).
    #[cfg(feature = "object-store")]
    pub fn bucket(mut self, config: crate::bucket::BucketConfig) -> Self {
        self.store = StoreChoice::Bucket(config);
        self
    }

    /// Also sample every metric of `registry` (counters, gauges, histograms).
    pub fn registry(mut self, registry: prometheus::Registry) -> Self {
        self.registries.push(registry);
        self
    }

    /// Sample fdr's runtime metrics (`fdr_*`, default on).
    pub fn runtime_metrics(mut self, on: bool) -> Self {
        self.runtime_metrics = on;
        self
    }

    /// Sample the process's CPU, memory, threads and fds (`process_*`, default on).
    pub fn process_metrics(mut self, on: bool) -> Self {
        self.process_metrics = on;
        self
    }

    /// The service's version, written into each incident.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// How long a trigger waits for an incident snapshot slot of the flight recorder while
    /// every one is taken (default [`DEFAULT_SNAPSHOT_WAIT`]); it asks again
    /// after 50 ms, then after pauses that double up to 2 s. A trigger that never gets its
    /// snapshot is a failed dump and spends none of the rule's limits.
    pub fn snapshot_wait(mut self, wait: Duration) -> Self {
        self.snapshot_wait = wait;
        self
    }

    /// The mode of the files a directory or object store made at start creates (dumps,
    /// sidecars, spool files; default 0o600, [`crate::DEFAULT_FILE_MODE`]). The owner must
    /// read and write them and no one else may write them (0o640 lets a group read them).
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = Some(mode);
        self
    }

    /// Where the sentinel's log lines go (default: standard error).
    pub fn log_with(mut self, log: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.log = Arc::new(log);
        self
    }

    /// Starts the watcher and dump threads. Fails if there are no rules, a rule's name
    /// cannot name its incidents, a rule reads an `fdr_*` metric fdr does not have, there is no store, or the store cannot be opened; the
    /// store's warnings (a directory others may write into) are logged and counted.
    pub fn start(self) -> Result<Sentinel, Error> {
        if self.rules.is_empty() {
            return Err(Error::NoRules);
        }
        let fdr_names = metric::runtime_names();
        for rule in &self.rules {
            Rule::check_name(&rule.name).map_err(Error::RuleName)?;
            // fdr's own metrics are known now: a name of fdr's that is not one of them can
            // never appear.
            let base = rule.metric.split('{').next().unwrap_or(&rule.metric);
            if base.starts_with("fdr_") && !fdr_names.iter().any(|n| n == base) {
                let near = metric::near_names(base, fdr_names.iter().map(String::as_str));
                return Err(Error::UnknownFdrMetric {
                    rule: rule.name.clone(),
                    metric: rule.metric.clone(),
                    near,
                    known: fdr_names.clone(),
                });
            }
        }
        if self.interval.is_zero() {
            return Err(Error::ZeroInterval);
        }
        if let Some(mode) = self.file_mode {
            layout::check_file_mode(mode).map_err(Error::FileMode)?;
        }
        let file_mode = self.file_mode.unwrap_or(layout::DEFAULT_FILE_MODE);
        let store: Arc<dyn IncidentStore> = match self.store {
            StoreChoice::Custom(s) => s,
            StoreChoice::Dir(dir, retention) => {
                Arc::new(DirStore::with_file_mode(dir, retention, file_mode)?)
            }
            #[cfg(feature = "object-store")]
            StoreChoice::Bucket(config) => Arc::new(crate::bucket::BucketStore::new(
                crate::bucket::BucketConfig {
                    file_mode: self.file_mode.unwrap_or(config.file_mode),
                    ..config
                },
            )?),
            StoreChoice::Unset => {
                return Err(Error::NoStore);
            }
        };
        let shared = Arc::new(Shared {
            stats: Counters::default(),
            degraded: AtomicBool::new(false),
            breaching: Mutex::new(Vec::new()),
            last_incident: Mutex::new(None),
            engine: Mutex::new(Engine::new(self.rules, self.limits)),
            store,
            log: self.log,
            service_version: self.service_version,
            snapshot_wait: self.snapshot_wait,
        });
        for warning in shared.store.warnings() {
            shared.stats.store_warnings.fetch_add(1, Ordering::Relaxed);
            (shared.log)(&format!("warning: {warning}"));
        }
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (dump_tx, dump_rx) = mpsc::sync_channel::<Request>(1);
        let (dump_stop_tx, dump_stop_rx) = mpsc::channel::<()>();
        let dumper = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fdr-sentinel-dump".into())
                .spawn(move || {
                    fdr_recorder::cost::register_thread(fdr_recorder::cost::Role::Sentinel);
                    dump_loop(&shared, &dump_rx, &dump_stop_rx)
                })
                .map_err(Error::Spawn)?
        };
        let watcher = {
            let shared = shared.clone();
            let sources = Sources {
                runtime: self.runtime_metrics,
                process: self.process_metrics,
                registries: self.registries,
            };
            let interval = self.interval;
            std::thread::Builder::new()
                .name("fdr-sentinel".into())
                .spawn(move || {
                    fdr_recorder::cost::register_thread(fdr_recorder::cost::Role::Sentinel);
                    watch_loop(&shared, &sources, interval, &stop_rx, &dump_tx);
                })
                .map_err(Error::Spawn)?
        };
        Ok(Sentinel {
            view: SentinelHandle { shared },
            stop: Some((stop_tx, dump_stop_tx)),
            threads: vec![watcher, dumper],
        })
    }
}

/// The ways to choose an incident store, as [`Error::NoStore`] lists them.
const STORE_CHOICES: &str = if cfg!(feature = "object-store") {
    ".dir(..), .bucket(..), .store(..), FDR_SENTINEL_DIR or FDR_SENTINEL_URL"
} else {
    ".dir(..), .store(..) or FDR_SENTINEL_DIR"
};

/// The sentinel could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No rules were given.
    #[error("fdr-sentinel: no rules: add one with .rule(..) or FDR_SENTINEL_RULES")]
    NoRules,
    /// A rule's name cannot name its incidents.
    #[error("fdr-sentinel: a rule: {0}")]
    RuleName(NameError),
    /// A rule reads an `fdr_*` metric that fdr does not have, so it could never fire.
    #[error(
        "fdr-sentinel: rule `{rule}` reads `{metric}`, which is not one of fdr's metrics \
         (did you mean {}?); fdr's are {}",
        if near.is_empty() { "another".to_owned() } else { near.join(" or ") },
        known.join(", ")
    )]
    UnknownFdrMetric {
        /// The rule's name.
        rule: String,
        /// The metric it reads.
        metric: String,
        /// fdr's metrics of the nearest names.
        near: Vec<String>,
        /// fdr's metrics.
        known: Vec<String>,
    },
    /// The sampling interval is zero.
    #[error("fdr-sentinel: the interval must be above zero")]
    ZeroInterval,
    /// The mode for incident files is refused.
    #[error("fdr-sentinel: {0}")]
    FileMode(FileModeError),
    /// No incident store was chosen.
    #[error("fdr-sentinel: no incident store: set {STORE_CHOICES}")]
    NoStore,
    /// A `FDR_*` variable could not be used.
    #[error("fdr-sentinel: {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: crate::env::EnvProblem,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thread could not be started.
    #[error("fdr-sentinel: could not start its thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// A running sentinel; dropping it (or [`Sentinel::stop`]) stops its threads.
pub struct Sentinel {
    view: SentinelHandle,
    stop: Option<(mpsc::Sender<()>, mpsc::Sender<()>)>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Sentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sentinel")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Sentinel {
    /// A sentinel to set up.
    pub fn builder() -> SentinelBuilder {
        SentinelBuilder::default()
    }

    /// What it has done so far.
    pub fn stats(&self) -> SentinelStats {
        self.view.stats()
    }

    /// Whether a rule breached at the last sample (the admin endpoint can refuse
    /// on-demand captures meanwhile).
    pub fn degraded(&self) -> bool {
        self.view.degraded()
    }

    /// The names of the rules that breached at the last sample.
    pub fn breaching(&self) -> Vec<String> {
        self.view.breaching()
    }

    /// The incident store.
    pub fn store(&self) -> Arc<dyn IncidentStore> {
        self.view.store()
    }

    /// A cloneable view of this sentinel's state (degraded, breaching rules, stats, store)
    /// for another thread, such as the admin endpoint's. It does not keep the sentinel
    /// running: once the sentinel stops, the handle reports it not degraded.
    pub fn handle(&self) -> SentinelHandle {
        self.view.clone()
    }

    /// Stops sampling and dumping (a dump being written finishes first; one waiting for its
    /// delay or for the recorder is dropped and counted as failed).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some((a, b)) = self.stop.take() {
            let _ = a.send(());
            let _ = b.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // A stopped sentinel watches nothing: it reports no breach to its handles.
        self.view.shared.degraded.store(false, Ordering::Relaxed);
        lock(&self.view.shared.breaching).clear();
    }
}

/// A cloneable view of a [`Sentinel`]'s state ([`Sentinel::handle`]).
#[derive(Clone)]
pub struct SentinelHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SentinelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelHandle")
            .field("degraded", &self.degraded())
            .finish_non_exhaustive()
    }
}

impl SentinelHandle {
    /// What the sentinel has done so far ([`Sentinel::stats`]).
    pub fn stats(&self) -> SentinelStats {
        self.shared.stats.snapshot(&self.shared)
    }

    /// Whether a rule breached at the last sample ([`Sentinel::degraded`]); false once the
    /// sentinel stopped.
    pub fn degraded(&self) -> bool {
        self.shared.degraded.load(Ordering::Relaxed)
    }

    /// The names of the rules that breached at the last sample.
    pub fn breaching(&self) -> Vec<String> {
        lock(&self.shared.breaching).clone()
    }

    /// The incident store.
    pub fn store(&self) -> Arc<dyn IncidentStore> {
        self.shared.store.clone()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the sentinel has done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentinelStats {
    /// Samples taken.
    pub samples: u64,
    /// Rule triggers that were let through to the dump thread.
    pub triggers: u64,
    /// Incidents written.
    pub dumps_written: u64,
    /// Dumps that failed (store error, full disk, recorder not running or busy for the
    /// whole snapshot wait, stopped before the dump). None spent its rule's limits.
    pub dump_failures: u64,
    /// ... of which the disk (or a quota) was full.
    pub dump_failures_no_space: u64,
    /// Triggers whose dump found every incident snapshot slot of the flight recorder taken
    /// and waited for one.
    pub snapshot_waits: u64,
    /// ... of which the recorder stayed busy for the whole snapshot wait (each also a
    /// dump failure).
    pub snapshot_timeouts: u64,
    /// Triggers accepted whose dump is not done yet (in its delay, waiting for the
    /// recorder, or being written): 0, 1 or 2.
    pub dumps_pending: u64,
    /// Warnings about the store, logged at start (a directory others may write into).
    pub store_warnings: u64,
    /// Bytes of dumps written.
    pub bytes_written: u64,
    /// Breaches held long enough that a cooldown stopped.
    pub suppressed_cooldown: u64,
    /// ... that a dump limit per window stopped.
    pub suppressed_limit: u64,
    /// ... that came after a rule's lifetime.
    pub suppressed_lifetime: u64,
    /// ... that came while the rule's previous trigger, or another rule's, was still
    /// waiting for its dump.
    pub suppressed_busy: u64,
    /// Rules that could not be evaluated (reported once each).
    pub rule_errors: u64,
    /// Rules whose metric a sample did not have (a misspelled name, a series not created
    /// yet): each logged once, naming the rule, the metric and the nearest names.
    pub rules_unknown_metric: u64,
    /// The newest incident written.
    pub last_incident: Option<String>,
}

#[derive(Default)]
struct Counters {
    samples: AtomicU64,
    triggers: AtomicU64,
    dumps_written: AtomicU64,
    dump_failures: AtomicU64,
    dump_failures_no_space: AtomicU64,
    snapshot_waits: AtomicU64,
    snapshot_timeouts: AtomicU64,
    dumps_pending: AtomicU64,
    store_warnings: AtomicU64,
    bytes_written: AtomicU64,
    suppressed: [AtomicU64; 4],
    rule_errors: AtomicU64,
    rules_unknown_metric: AtomicU64,
}

impl Counters {
    fn snapshot(&self, shared: &Shared) -> SentinelStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SentinelStats {
            samples: l(&self.samples),
            triggers: l(&self.triggers),
            // Read before the bytes and the last incident (acquired): see `dump`.
            dumps_written: self.dumps_written.load(Ordering::Acquire),
            dump_failures: l(&self.dump_failures),
            dump_failures_no_space: l(&self.dump_failures_no_space),
            snapshot_waits: l(&self.snapshot_waits),
            snapshot_timeouts: l(&self.snapshot_timeouts),
            dumps_pending: l(&self.dumps_pending),
            store_warnings: l(&self.store_warnings),
            bytes_written: l(&self.bytes_written),
            suppressed_cooldown: l(&self.suppressed[0]),
            suppressed_limit: l(&self.suppressed[1]),
            suppressed_lifetime: l(&self.suppressed[2]),
            suppressed_busy: l(&self.suppressed[3]),
            rule_errors: l(&self.rule_errors),
            rules_unknown_metric: l(&self.rules_unknown_metric),
            last_incident: lock(&shared.last_incident).clone(),
        }
    }

    fn suppressed(&self, why: Suppressed) {
        let i = match why {
            Suppressed::Cooldown => 0,
            Suppressed::Limit => 1,
            Suppressed::Lifetime => 2,
            Suppressed::Busy => 3,
        };
        self.suppressed[i].fetch_add(1, Ordering::Relaxed);
    }
}

struct Shared {
    stats: Counters,
    degraded: AtomicBool,
    breaching: Mutex<Vec<String>>,
    last_incident: Mutex<Option<String>>,
    /// The watcher steps it; the dump thread settles the triggers it was handed.
    engine: Mutex<Engine>,
    store: Arc<dyn IncidentStore>,
    log: Arc<LogFn>,
    service_version: Option<String>,
    snapshot_wait: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Sources {
    runtime: bool,
    process: bool,
    registries: Vec<prometheus::Registry>,
}

impl Sources {
    fn sample(&self) -> Metrics {
        let mut m = Metrics::new();
        if self.runtime {
            metric::add_runtime(&mut m);
        }
        if self.process {
            metric::add_process(&mut m);
        }
        for r in &self.registries {
            metric::add_prometheus(r, &mut m);
        }
        m
    }
}

/// A dump to write.
struct Request {
    trigger: Trigger,
    values: Vec<(String, f64)>,
    time_unix_ms: u64,
}

fn watch_loop(
    shared: &Shared,
    sources: &Sources,
    interval: Duration,
    stop: &Receiver<()>,
    dumps: &SyncSender<Request>,
) {
    let start = Instant::now();
    let mut next = start;
    loop {
        let metrics = sources.sample();
        let step = {
            let mut engine = lock(&shared.engine);
            let step = engine.step(start.elapsed(), metrics);
            shared.degraded.store(engine.degraded(), Ordering::Relaxed);
            *lock(&shared.breaching) = engine.breaching().map(|r| r.name.clone()).collect();
            step
        };
        shared.stats.samples.fetch_add(1, Ordering::Relaxed);
        for e in &step.errors {
            shared.stats.rule_errors.fetch_add(1, Ordering::Relaxed);
            (shared.log)(e);
        }
        for e in &step.unknown_metrics {
            shared
                .stats
                .rules_unknown_metric
                .fetch_add(1, Ordering::Relaxed);
            (shared.log)(e);
        }
        for (_, why) in &step.suppressed {
            shared.stats.suppressed(*why);
        }
        for trigger in step.triggers {
            let name = trigger.rule.name.clone();
            let request = Request {
                trigger,
                values: step.values.clone(),
                time_unix_ms: unix_ms(),
            };
            shared.stats.dumps_pending.fetch_add(1, Ordering::Relaxed);
            match dumps.try_send(request) {
                Ok(()) => {
                    shared.stats.triggers.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(request)) => {
                    // Not dumped: it spends none of the limits.
                    lock(&shared.engine).settle(&request.trigger, false);
                    shared.stats.dumps_pending.fetch_sub(1, Ordering::Relaxed);
                    shared.stats.suppressed(Suppressed::Busy);
                    (shared.log)(&format!(
                        "rule `{name}` breached while two dumps were pending; skipped"
                    ));
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        // Fixed-rate sampling; a late sample does not bunch the next ones up.
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        match stop.recv_timeout(next - now) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn dump_loop(shared: &Shared, requests: &Receiver<Request>, stop: &Receiver<()>) {
    // Incident ids are times to the millisecond: keep them distinct and increasing.
    let mut last_ms = 0;
    while let Ok(mut req) = requests.recv() {
        req.time_unix_ms = req.time_unix_ms.max(last_ms + 1);
        last_ms = req.time_unix_ms;
        let outcome = dump(shared, &req, stop);
        let written = matches!(outcome, Outcome::Written);
        lock(&shared.engine).settle(&req.trigger, written);
        shared.stats.dumps_pending.fetch_sub(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Stopped) {
            return;
        }
    }
}

/// How a trigger's dump went.
enum Outcome {
    Written,
    Failed,
    /// The sentinel stopped before the dump was written.
    Stopped,
}

/// Waits for the rule's delay, then writes the incident, counting and logging how it went.
fn dump(shared: &Shared, req: &Request, stop: &Receiver<()>) -> Outcome {
    let rule = &req.trigger.rule;
    let failed = |why: &str| {
        shared.stats.dump_failures.fetch_add(1, Ordering::Relaxed);
        (shared.log)(&format!("rule `{}` fired but {why}", rule.name));
    };
    if !rule.delay.is_zero() {
        match stop.recv_timeout(rule.delay) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                failed("the sentinel stopped during the post-trigger delay; no dump");
                return Outcome::Stopped;
            }
        }
    }
    // The identity the recorder writes in the dump's header, in the sidecar too.
    let process = fdr_recorder::process_info();
    let nonempty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    let meta = IncidentMeta {
        id: incident_id(req.time_unix_ms, &rule.name),
        rule: rule.name.clone(),
        condition: rule.to_string(),
        metric: rule.metric.clone(),
        value: req.trigger.value,
        threshold: rule.threshold,
        values: req.values.clone(),
        time_unix_ms: req.time_unix_ms,
        host: Some(process.host.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(host_name),
        pid: std::process::id(),
        service_version: shared
            .service_version
            .clone()
            .or_else(|| nonempty(&process.service_version)),
        service: nonempty(&process.service),
        process_start_unix_ms: Some(process.process_start_unix_ns / 1_000_000).filter(|&ms| ms > 0),
        fdr_version: nonempty(&process.fdr_version),
        build_id: nonempty(&process.build_id),
        bytes: 0,
        cost: crate::IncidentCost::now(),
    };
    // A store is user code: its panic is a failed dump, not a dead sentinel.
    let outcome =
        std::panic::catch_unwind(AssertUnwindSafe(|| write_incident(shared, &meta, stop)))
            .unwrap_or_else(|_| Attempt::Failed(StoreError::Other("the store panicked".into())));
    match outcome {
        Attempt::Written(stored) => {
            shared
                .stats
                .bytes_written
                .fetch_add(stored.bytes, Ordering::Relaxed);
            *lock(&shared.last_incident) = Some(stored.id.clone());
            // Counted last (released): whoever sees the count sees the dump's bytes and id.
            shared.stats.dumps_written.fetch_add(1, Ordering::Release);
            (shared.log)(&format!(
                "rule `{}` fired ({} = {} against {}): incident {} ({} bytes)",
                rule.name, rule.metric, meta.value, rule.threshold, stored.id, stored.bytes
            ));
            Outcome::Written
        }
        Attempt::Failed(e) => {
            if e.is_no_space() {
                shared
                    .stats
                    .dump_failures_no_space
                    .fetch_add(1, Ordering::Relaxed);
            }
            failed(&format!(
                "the dump failed: {e} (the rule's limits are not spent: its next breach \
                 dumps)"
            ));
            Outcome::Failed
        }
        Attempt::Stopped => {
            failed("the sentinel stopped while waiting for the flight recorder; no dump");
            Outcome::Stopped
        }
    }
}

/// How writing an incident went.
enum Attempt {
    Written(Box<IncidentMeta>),
    Failed(StoreError),
    Stopped,
}

/// Writes the flight recorder into the store as an incident snapshot, which downloads never
/// crowd out. While every incident slot is taken the recorder refuses one: ask again, after
/// pauses that double from 50 ms to 2 s, for up to the snapshot wait.
fn write_incident(shared: &Shared, meta: &IncidentMeta, stop: &Receiver<()>) -> Attempt {
    let wait = shared.snapshot_wait;
    let deadline = Instant::now() + wait;
    let mut pause = SNAPSHOT_RETRY_FIRST;
    let mut waited = false;
    loop {
        let mut busy = false;
        let result = shared.store.put(meta, &mut |mut out| {
            fdr_recorder::flight()
                .write_incident_to(&mut out)
                .map_err(|e| match e {
                    fdr_recorder::Error::SnapshotInProgress => {
                        busy = true;
                        std::io::Error::new(std::io::ErrorKind::ResourceBusy, e)
                    }
                    // The writer's error kind (a full disk) stays visible to the store.
                    fdr_recorder::Error::Io { ref source, .. } => {
                        std::io::Error::new(source.kind(), e)
                    }
                    e => std::io::Error::other(e),
                })
        });
        let e = match result {
            Ok(stored) => return Attempt::Written(Box::new(stored)),
            Err(e) if !busy => return Attempt::Failed(e),
            Err(e) => e,
        };
        if !std::mem::replace(&mut waited, true) {
            shared.stats.snapshot_waits.fetch_add(1, Ordering::Relaxed);
            (shared.log)(&format!(
                "rule `{}`: every incident snapshot slot of the flight recorder is taken; \
                 waiting up to {wait:?} for one",
                meta.rule
            ));
        }
        let now = Instant::now();
        if now >= deadline {
            shared
                .stats
                .snapshot_timeouts
                .fetch_add(1, Ordering::Relaxed);
            return Attempt::Failed(StoreError::Other(format!(
                "the flight recorder was busy with another snapshot for {wait:?} ({e})"
            )));
        }
        match stop.recv_timeout(pause.min(deadline - now)) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Attempt::Stopped,
        }
        pause = (pause * 2).min(SNAPSHOT_RETRY_MAX);
    }
}
