//! Periodic metric samples in the trace: fdr's runtime metrics and the application's own,
//! written as [`EventKind::Metric`] events, so a dump holds the metrics beside the events
//! that explain them.
//!
//! A thread of fdr's own (`fdr-metrics`, started by [`crate::start`] when
//! [`Config::metrics_interval`](crate::Config::metrics_interval) is set, 1 s by default)
//! reads [`crate::metrics`] every interval and records, under the names `/metrics`
//! publishes:
//!
//! - every counter of [`MetricsSnapshot::scalars`] (`fdr_polls_total`, cumulative) and the
//!   gauge `fdr_tasks_alive`;
//! - for each histogram (`fdr_sched_latency_seconds`, `fdr_poll_duration_seconds`,
//!   `fdr_lock_wait_seconds`): its cumulative `_count` and `_sum` (seconds), and over the
//!   interval since the previous sample the quantiles `{quantile="0.5"}`,
//!   `{quantile="0.99"}` and `{quantile="1"}` (the largest), in seconds (0 when the
//!   interval recorded no value);
//! - each value an application registered with [`register_metric`], under its name.
//!
//! Nothing here runs on a recording thread: a sample costs the sampler one read of the
//! metric cells (the registry lock, briefly) and about thirty events of its own.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fdr_format::{EventKind, StrId};

use crate::error::{ConfigError, Error, MetricNameProblem, MetricsError};
use crate::metrics::{HistogramSnapshot, MetricsSnapshot};
use crate::sync::lock;
use crate::{enabled, intern_dynamic, record};

/// How often the recorder samples its metrics by default: a 10 s flight window holds ten
/// samples of each.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest sampling interval; shorter ones are refused by [`crate::start`].
pub const MIN_METRICS_INTERVAL: Duration = Duration::from_millis(10);

/// Most values registered with [`register_metric`] at once.
pub const MAX_METRIC_SOURCES: usize = 256;

/// Longest metric name [`register_metric`] takes, labels included.
pub const MAX_METRIC_NAME_BYTES: usize = 256;

/// The quantiles recorded of each histogram over an interval, with their label values.
const QUANTILES: [(f64, &str); 3] = [(0.5, "0.5"), (0.99, "0.99"), (1.0, "1")];

type Source = Box<dyn Fn() -> f64 + Send + Sync>;

struct Registered {
    id: u64,
    name: StrId,
    read: Source,
}

/// The sampler's state: its interval, the application's sources, the previous sample.
struct Sampler {
    /// `None`: not sampling.
    interval: Option<Duration>,
    /// Bumped by each configuration, so the thread wakes to it.
    generation: u64,
    started: bool,
    sources: Vec<Registered>,
    names: Option<Names>,
    prev: Option<MetricsSnapshot>,
}

struct Shared {
    state: Mutex<Sampler>,
    wake: Condvar,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| Shared {
        state: Mutex::new(Sampler {
            interval: None,
            generation: 0,
            started: false,
            sources: Vec::new(),
            names: None,
            prev: None,
        }),
        wake: Condvar::new(),
    })
}

static NEXT_SOURCE: AtomicU64 = AtomicU64::new(1);
static SOURCE_PANICS: AtomicU64 = AtomicU64::new(0);

/// Applies `interval` (from `start`): starts the sampler thread on first use, changes its
/// period, or (`None`) stops sampling.
pub(crate) fn configure(interval: Option<Duration>) -> Result<(), Error> {
    if let Some(i) = interval
        && i < MIN_METRICS_INTERVAL
    {
        return Err(Error::Config(ConfigError::Metrics(
            MetricsError::Interval {
                interval: i,
                min: MIN_METRICS_INTERVAL,
            },
        )));
    }
    let sh = shared();
    let mut s = lock(&sh.state);
    s.interval = interval;
    s.generation += 1;
    if interval.is_some() && !s.started {
        std::thread::Builder::new()
            .name("fdr-metrics".into())
            .spawn(run)
            .map_err(Error::Spawn)?;
        s.started = true;
    }
    sh.wake.notify_all();
    Ok(())
}

/// The sampler thread: a sample at each configuration and every interval after it. It
/// runs for the life of the process; with sampling off it waits for the next
/// configuration.
fn run() {
    crate::cost::register_thread(crate::cost::Role::Metrics);
    let sh = shared();
    let mut seen = u64::MAX;
    let mut next = Instant::now();
    loop {
        let mut s = lock(&sh.state);
        // Bounded: each wait ends at the deadline or at a new configuration.
        loop {
            if s.generation != seen {
                seen = s.generation;
                next = Instant::now();
            }
            match s.interval {
                None => s = sh.wake.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(_) => {
                    let left = next.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    s = sh
                        .wake
                        .wait_timeout(s, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        let interval = s.interval.unwrap_or(DEFAULT_METRICS_INTERVAL);
        sample_locked(&mut s);
        drop(s);
        next += interval;
        let now = Instant::now();
        if next < now {
            // A sampler that fell behind (a stopped process, a suspended machine) samples
            // once, not once per missed interval.
            next = now + interval;
        }
    }
}

/// Records one sample of every metric now, on the calling thread (the sampler does this
/// every interval). Does nothing while fdr does not record.
pub fn record_metrics() {
    sample_locked(&mut lock(&shared().state));
}

fn sample_locked(s: &mut Sampler) {
    let now = crate::metrics();
    let level_name = enabled().then(|| s.names.get_or_insert_with(Names::new).cost_shed_level);
    let level_sample = |level: crate::cost::Detail| {
        if let Some(name) = level_name {
            record(&EventKind::Metric {
                name,
                value: f64::from(level.level()),
            });
        }
    };
    // The cost meter's interval is the sampler's, recording or not; a change of level is
    // sampled at the switch (see `cost::tick`).
    let (cost, shed_from) = crate::cost::tick(&now, level_sample);
    if !enabled() {
        // The next sample's intervals start from a sample that was recorded.
        s.prev = None;
        return;
    }
    let names = s.names.get_or_insert_with(Names::new);
    let metric = |name: StrId, value: f64| record(&EventKind::Metric { name, value });
    if let Some(from) = shed_from {
        crate::log_fmt(
            "fdr.cost",
            format_args!(
                "fdr's share of the process's CPU {:.4} against a budget of {}: detail level {} (was {})",
                cost.share,
                cost.budget,
                cost.detail.level(),
                from.level()
            ),
        );
    }
    metric(names.cost_share, cost.share);
    if shed_from.is_none() {
        level_sample(cost.detail);
    }
    metric(names.cost_events_per_second, cost.events_per_second);
    for (sc, &name) in now.scalars().iter().zip(&names.scalars) {
        metric(name, sc.value as f64);
    }
    let prev = s.prev.as_ref().map(|p| p.histograms());
    for (i, (_, _, h)) in now.histograms().iter().enumerate() {
        let n = &names.histograms[i];
        metric(n.count, h.count as f64);
        metric(n.sum, h.sum_ns as f64 / 1e9);
        let before = prev.as_ref().map(|p| p[i].2);
        for (&(q, _), &name) in QUANTILES.iter().zip(&n.quantiles) {
            let ns = h.interval_quantile_ns(before, q);
            metric(name, ns as f64 / 1e9);
        }
    }
    let mut dead = Vec::new();
    for src in &s.sources {
        match std::panic::catch_unwind(AssertUnwindSafe(|| (src.read)())) {
            Ok(v) if v.is_finite() => metric(src.name, v),
            Ok(_) => {}
            Err(_) => dead.push(src.id),
        }
    }
    if !dead.is_empty() {
        // A value that panicked is not read again.
        SOURCE_PANICS.fetch_add(dead.len() as u64, Ordering::Relaxed);
        s.sources.retain(|r| !dead.contains(&r.id));
    }
    s.prev = Some(now);
}

/// Values registered with [`register_metric`] that panicked when read (each was
/// unregistered then).
pub fn metric_source_panics() -> u64 {
    SOURCE_PANICS.load(Ordering::Relaxed)
}

/// The interned names of fdr's own samples.
struct Names {
    cost_share: StrId,
    cost_shed_level: StrId,
    cost_events_per_second: StrId,
    scalars: Vec<StrId>,
    histograms: Vec<HistNames>,
}

struct HistNames {
    count: StrId,
    sum: StrId,
    quantiles: Vec<StrId>,
}

impl Names {
    fn new() -> Self {
        let m = crate::metrics();
        Names {
            cost_share: intern_dynamic("fdr_cost_share"),
            cost_shed_level: intern_dynamic("fdr_cost_shed_level"),
            cost_events_per_second: intern_dynamic("fdr_cost_events_per_second"),
            scalars: m
                .scalars()
                .iter()
                .map(|s| intern_dynamic(&scalar_name(s.name, s.gauge)))
                .collect(),
            histograms: m
                .histograms()
                .iter()
                .map(|(name, _, _)| {
                    let base = histogram_name(name);
                    HistNames {
                        count: intern_dynamic(&format!("{base}_count")),
                        sum: intern_dynamic(&format!("{base}_sum")),
                        quantiles: QUANTILES
                            .iter()
                            .map(|(_, q)| intern_dynamic(&format!("{base}{{quantile=\"{q}\"}}")))
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

/// A counter's or gauge's export name: `fdr_NAME_total`, or `fdr_NAME` for a gauge.
pub(crate) fn scalar_name(name: &str, gauge: bool) -> String {
    if gauge {
        format!("fdr_{name}")
    } else {
        format!("fdr_{name}_total")
    }
}

/// A histogram's export name: `fdr_BASE_seconds` for `BASE_ns`.
pub(crate) fn histogram_name(name: &str) -> String {
    format!("fdr_{}_seconds", name.strip_suffix("_ns").unwrap_or(name))
}

/// A value registered with [`register_metric`]; it is read every sample until this is
/// dropped.
#[must_use = "the value is sampled until this is dropped"]
pub struct MetricSource {
    id: u64,
    name: String,
}

impl fmt::Debug for MetricSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricSource")
            .field("name", &self.name)
            .finish()
    }
}

impl MetricSource {
    /// The name its samples carry (labels sorted).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for MetricSource {
    fn drop(&mut self) {
        let id = self.id;
        lock(&shared().state).sources.retain(|r| r.id != id);
    }
}

/// Registers a value of the application's to be written into the trace every sample, as a
/// metric sample named `name`: a Prometheus-style name with optional labels,
/// `http_in_flight` or `queue_depth{queue="jobs"}` (labels are sorted). `read` runs on the
/// sampler's thread, never on a recording thread; keep it quick (an atomic load, a
/// gauge's `get()`). A value that is not finite is not written; a `read` that panics is
/// unregistered and counted ([`metric_source_panics`]).
///
/// Fails on a name that is not of that form, a name starting with `fdr_` (fdr's own), a
/// name already registered, or past [`MAX_METRIC_SOURCES`].
///
/// ```
/// # fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// let in_flight = Arc::new(AtomicU64::new(0));
/// let seen = in_flight.clone();
/// let _source = fdr_recorder::register_metric("http_in_flight", move || {
///     seen.load(Ordering::Relaxed) as f64
/// })?;
/// # Ok::<(), fdr_recorder::Error>(())
/// ```
pub fn register_metric(
    name: &str,
    read: impl Fn() -> f64 + Send + Sync + 'static,
) -> Result<MetricSource, Error> {
    let refused = |e: MetricsError| Error::Config(ConfigError::Metrics(e));
    let name = normalize_name(name).map_err(|problem| {
        refused(MetricsError::Name {
            name: name.chars().take(80).collect(),
            problem,
        })
    })?;
    if name.starts_with("fdr_") {
        return Err(refused(MetricsError::Name {
            name,
            problem: MetricNameProblem::Reserved,
        }));
    }
    let mut s = lock(&shared().state);
    if s.sources.len() >= MAX_METRIC_SOURCES {
        return Err(refused(MetricsError::TooMany {
            name,
            max: MAX_METRIC_SOURCES,
        }));
    }
    let id_name = intern_dynamic(&name);
    if id_name == crate::OVERFLOW {
        return Err(refused(MetricsError::NamesFull { name }));
    }
    if s.sources.iter().any(|r| r.name == id_name) {
        return Err(refused(MetricsError::Registered { name }));
    }
    let id = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed);
    s.sources.push(Registered {
        id,
        name: id_name,
        read: Box::new(read),
    });
    Ok(MetricSource { id, name })
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name` or `name{k="v",...}` with its labels sorted; why not, otherwise.
fn normalize_name(name: &str) -> Result<String, MetricNameProblem> {
    if name.len() > MAX_METRIC_NAME_BYTES {
        return Err(MetricNameProblem::TooLong {
            max_bytes: MAX_METRIC_NAME_BYTES,
        });
    }
    let (base, labels) = match name.split_once('{') {
        None => (name, None),
        Some((b, rest)) => {
            let body = rest
                .strip_suffix('}')
                .ok_or(MetricNameProblem::LabelsNotClosed)?;
            (b, Some(body))
        }
    };
    if !is_name(base) {
        return Err(MetricNameProblem::NotAName);
    }
    let Some(body) = labels else {
        return Ok(base.to_string());
    };
    let mut pairs = BTreeMap::new();
    let mut rest = body.trim();
    // Bounded: each round consumes at least one label.
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or(MetricNameProblem::LabelNotKeyValue)?;
        let key = key.trim();
        if !is_name(key) || key.contains(':') {
            return Err(MetricNameProblem::LabelName {
                label: key.to_string(),
            });
        }
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or(MetricNameProblem::ValueNotQuoted)?;
        let end = after.find('"').ok_or(MetricNameProblem::ValueNotClosed)?;
        let value = &after[..end];
        if value.contains('\\') || value.contains('\n') {
            return Err(MetricNameProblem::ValueEscapes);
        }
        if pairs.insert(key.to_string(), value.to_string()).is_some() {
            return Err(MetricNameProblem::LabelTwice {
                label: key.to_string(),
            });
        }
        rest = after[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(MetricNameProblem::LabelsNotSeparated);
        }
    }
    let labels: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    Ok(format!("{base}{{{}}}", labels.join(",")))
}

impl HistogramSnapshot {
    /// The value at quantile `q` of the values recorded since `before` (an earlier read
    /// of the same histogram; `None`: since the start), in nanoseconds: linear within the
    /// bucket holding it, as PromQL's `histogram_quantile` estimates; 0 when none was
    /// recorded.
    pub(crate) fn interval_quantile_ns(&self, before: Option<&HistogramSnapshot>, q: f64) -> u64 {
        let (now, was) = (self.ticks(), before.map(|b| b.ticks()));
        let delta = |i: usize| now.buckets[i].saturating_sub(was.map_or(0, |w| w.buckets[i]));
        let count: u64 = (0..now.buckets.len()).map(delta).sum();
        if count == 0 {
            return 0;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut seen = 0u64;
        for i in 0..now.buckets.len() {
            let n = delta(i);
            if n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let lo = crate::metric_cells::bucket_low(i) as f64;
                let hi = crate::metric_cells::bucket_high(i).min(now.max) as f64;
                let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
                let ticks = lo + (hi - lo).max(0.0) * within;
                return self.ticks_to_ns(ticks);
            }
            seen += n;
        }
        self.max_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_labels_sorted() {
        assert_eq!(normalize_name("queue_depth").unwrap(), "queue_depth");
        assert_eq!(
            normalize_name(r#"q{z="1", a="x y"}"#).unwrap(),
            r#"q{a="x y",z="1"}"#
        );
        use MetricNameProblem as P;
        let label = |l: &str| l.to_string();
        for (bad, problem) in [
            ("", P::NotAName),
            ("1abc", P::NotAName),
            ("a b", P::NotAName),
            ("a{", P::LabelsNotClosed),
            ("a{x}", P::LabelNotKeyValue),
            ("a{1x=\"1\"}", P::LabelName { label: label("1x") }),
            (r#"a{x=1}"#, P::ValueNotQuoted),
            (r#"a{x="1}"#, P::ValueNotClosed),
            (r#"a{x="1",x="2"}"#, P::LabelTwice { label: label("x") }),
            (r#"a{x="1" y="2"}"#, P::LabelsNotSeparated),
            (r#"a{x="\n"}"#, P::ValueEscapes),
        ] {
            assert_eq!(normalize_name(bad), Err(problem), "{bad:?}");
        }
        assert_eq!(
            normalize_name(&"a".repeat(MAX_METRIC_NAME_BYTES + 1)),
            Err(P::TooLong {
                max_bytes: MAX_METRIC_NAME_BYTES
            })
        );
    }

    #[test]
    fn export_names_match_the_prometheus_ones() {
        assert_eq!(scalar_name("polls", false), "fdr_polls_total");
        assert_eq!(scalar_name("tasks_alive", true), "fdr_tasks_alive");
        assert_eq!(histogram_name("lock_wait_ns"), "fdr_lock_wait_seconds");
    }
}
