//! The running sentinel: a watcher thread that samples the metrics every `interval` and
//! feeds the [`Engine`], and a dump thread that writes what the engine triggers into the
//! store, so a slow store never delays sampling and a failing one never reaches the service.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::engine::{Engine, Suppressed, Trigger};
use crate::metric::{self, Metrics};
use crate::rule::{Limits, Rule};
use crate::store::{DirStore, IncidentMeta, IncidentStore, Retention, StoreError};

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
    /// An [`crate::S3Store`], made at start.
    #[cfg(feature = "s3")]
    S3(crate::s3::S3Config),
}

impl StoreChoice {
    /// The retention of a store made at start.
    pub(crate) fn retention_mut(&mut self) -> Option<&mut Retention> {
        match self {
            StoreChoice::Dir(_, r) => Some(r),
            #[cfg(feature = "s3")]
            StoreChoice::S3(c) => Some(&mut c.retention),
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
            #[cfg(feature = "s3")]
            StoreChoice::S3(c) => f.debug_tuple("S3").field(c).finish(),
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

    /// Keep incidents in an S3-compatible object store ([`crate::S3Store`], made at
    /// [`SentinelBuilder::start`]; `FDR_SENTINEL_RETAIN_*` can still change its retention).
    #[cfg(feature = "s3")]
    pub fn s3(mut self, config: crate::s3::S3Config) -> Self {
        self.store = StoreChoice::S3(config);
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

    /// Where the sentinel's log lines go (default: standard error).
    pub fn log_with(mut self, log: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.log = Arc::new(log);
        self
    }

    /// Starts the watcher and dump threads. Fails if there are no rules, no store, or the
    /// store's directory cannot be created.
    pub fn start(self) -> Result<Sentinel, Error> {
        if self.rules.is_empty() {
            return Err(Error::Config(
                "no rules: add one with .rule(..) or FDR_SENTINEL_RULES".into(),
            ));
        }
        if self.interval.is_zero() {
            return Err(Error::Config("the interval must be above zero".into()));
        }
        let store: Arc<dyn IncidentStore> = match self.store {
            StoreChoice::Custom(s) => s,
            StoreChoice::Dir(dir, retention) => Arc::new(DirStore::new(dir, retention)?),
            #[cfg(feature = "s3")]
            StoreChoice::S3(config) => Arc::new(crate::s3::S3Store::new(config)?),
            StoreChoice::Unset => {
                return Err(Error::Config(if cfg!(feature = "s3") {
                    "no incident store: set .dir(..), .s3(..), .store(..), FDR_SENTINEL_DIR or \
                     FDR_SENTINEL_S3_URL"
                        .into()
                } else {
                    "no incident store: set .dir(..), .store(..) or FDR_SENTINEL_DIR".into()
                }));
            }
        };
        let shared = Arc::new(Shared {
            stats: Counters::default(),
            degraded: AtomicBool::new(false),
            breaching: Mutex::new(Vec::new()),
            last_incident: Mutex::new(None),
            store,
            log: self.log,
            service_version: self.service_version,
        });
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (dump_tx, dump_rx) = mpsc::sync_channel::<Request>(1);
        let (dump_stop_tx, dump_stop_rx) = mpsc::channel::<()>();
        let dumper = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fdr-sentinel-dump".into())
                .spawn(move || dump_loop(&shared, &dump_rx, &dump_stop_rx))
                .map_err(Error::Spawn)?
        };
        let watcher = {
            let shared = shared.clone();
            let sources = Sources {
                runtime: self.runtime_metrics,
                process: self.process_metrics,
                registries: self.registries,
            };
            let engine = Engine::new(self.rules, self.limits);
            let interval = self.interval;
            std::thread::Builder::new()
                .name("fdr-sentinel".into())
                .spawn(move || {
                    watch_loop(&shared, engine, &sources, interval, &stop_rx, &dump_tx);
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

/// The sentinel could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is incomplete or wrong.
    #[error("fdr-sentinel: {0}")]
    Config(String),
    /// A `FDR_*` variable could not be used.
    #[error("fdr-sentinel: {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
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
    /// delay is dropped and counted as failed).
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
    /// Dumps that failed (store error, recorder not running, stopped during the delay).
    pub dump_failures: u64,
    /// Bytes of dumps written.
    pub bytes_written: u64,
    /// Breaches held long enough that a cooldown stopped.
    pub suppressed_cooldown: u64,
    /// ... that a dump limit per window stopped.
    pub suppressed_limit: u64,
    /// ... that came after a rule's lifetime.
    pub suppressed_lifetime: u64,
    /// ... that came while a dump was still being written.
    pub suppressed_busy: u64,
    /// Rules that could not be evaluated (reported once each).
    pub rule_errors: u64,
    /// The newest incident written.
    pub last_incident: Option<String>,
}

#[derive(Default)]
struct Counters {
    samples: AtomicU64,
    triggers: AtomicU64,
    dumps_written: AtomicU64,
    dump_failures: AtomicU64,
    bytes_written: AtomicU64,
    suppressed: [AtomicU64; 4],
    rule_errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self, shared: &Shared) -> SentinelStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SentinelStats {
            samples: l(&self.samples),
            triggers: l(&self.triggers),
            dumps_written: l(&self.dumps_written),
            dump_failures: l(&self.dump_failures),
            bytes_written: l(&self.bytes_written),
            suppressed_cooldown: l(&self.suppressed[0]),
            suppressed_limit: l(&self.suppressed[1]),
            suppressed_lifetime: l(&self.suppressed[2]),
            suppressed_busy: l(&self.suppressed[3]),
            rule_errors: l(&self.rule_errors),
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
    store: Arc<dyn IncidentStore>,
    log: Arc<LogFn>,
    service_version: Option<String>,
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
    mut engine: Engine,
    sources: &Sources,
    interval: Duration,
    stop: &Receiver<()>,
    dumps: &SyncSender<Request>,
) {
    let start = Instant::now();
    let mut next = start;
    loop {
        let metrics = sources.sample();
        let step = engine.step(start.elapsed(), metrics);
        shared.stats.samples.fetch_add(1, Ordering::Relaxed);
        shared.degraded.store(engine.degraded(), Ordering::Relaxed);
        *lock(&shared.breaching) = engine.breaching().map(|r| r.name.clone()).collect();
        for e in &step.errors {
            shared.stats.rule_errors.fetch_add(1, Ordering::Relaxed);
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
            match dumps.try_send(request) {
                Ok(()) => {
                    shared.stats.triggers.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_)) => {
                    shared.stats.suppressed(Suppressed::Busy);
                    (shared.log)(&format!(
                        "rule `{name}` breached while a dump was being written; skipped"
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
        let rule = &req.trigger.rule;
        if !rule.delay.is_zero() {
            match stop.recv_timeout(rule.delay) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    shared.stats.dump_failures.fetch_add(1, Ordering::Relaxed);
                    (shared.log)(&format!(
                        "rule `{}`: stopped during the post-trigger delay; no dump",
                        rule.name
                    ));
                    return;
                }
            }
        }
        let meta = IncidentMeta {
            id: incident_id(req.time_unix_ms, &rule.name),
            rule: rule.name.clone(),
            condition: rule.to_string(),
            metric: rule.metric.clone(),
            value: req.trigger.value,
            threshold: rule.threshold,
            values: req.values,
            time_unix_ms: req.time_unix_ms,
            host: host_name(),
            pid: std::process::id(),
            service_version: shared.service_version.clone(),
            bytes: 0,
        };
        // A store is user code: its panic is a failed dump, not a dead sentinel.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| write_incident(shared, &meta)))
            .unwrap_or_else(|_| Err(StoreError::Other("the store panicked".into())));
        match outcome {
            Ok(stored) => {
                shared.stats.dumps_written.fetch_add(1, Ordering::Relaxed);
                shared
                    .stats
                    .bytes_written
                    .fetch_add(stored.bytes, Ordering::Relaxed);
                *lock(&shared.last_incident) = Some(stored.id.clone());
                (shared.log)(&format!(
                    "rule `{}` fired ({} = {} against {}): incident {} ({} bytes)",
                    rule.name, rule.metric, meta.value, rule.threshold, stored.id, stored.bytes
                ));
            }
            Err(e) => {
                shared.stats.dump_failures.fetch_add(1, Ordering::Relaxed);
                (shared.log)(&format!(
                    "rule `{}` fired but the dump failed: {e}",
                    rule.name
                ));
            }
        }
    }
}

/// Writes the flight recorder into the store, retrying briefly while another snapshot (an
/// admin download, say) is being written.
fn write_incident(shared: &Shared, meta: &IncidentMeta) -> Result<IncidentMeta, StoreError> {
    let mut tries = 0;
    loop {
        let mut busy = false;
        let result = shared.store.put(meta, &mut |mut out| {
            fdr_recorder::flight().write_to(&mut out).map_err(|e| {
                busy = matches!(e, fdr_recorder::Error::SnapshotInProgress);
                std::io::Error::other(e)
            })
        });
        tries += 1;
        if !(busy && tries < 20) {
            return result;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `20261202T040512.123Z-rule`: sorts by time, safe as a file name.
pub(crate) fn incident_id(unix_ms: u64, rule: &str) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let rule: String = rule
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z-{rule}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_are_utc_times_and_safe_names() {
        // 2026-12-02 04:05:12.123 UTC.
        assert_eq!(
            incident_id(1_796_184_312_123, "slow sched/1"),
            "20261202T040512.123Z-slow_sched_1"
        );
        assert_eq!(incident_id(0, "r"), "19700101T000000.000Z-r");
        // A leap day.
        assert_eq!(incident_id(951_782_400_000, "r"), "20000229T000000.000Z-r");
    }
}
