//! What a sample holds: every metric by name, as a counter, a gauge or a cumulative
//! histogram, and where the values come from (fdr's runtime metrics, a `prometheus`
//! registry, the process).
//!
//! Names carry their unit last (`fdr_sched_latency_ns`, `process_resident_memory_bytes`), so
//! a rule's threshold can be written in time or size units and converted to the metric's.

use std::collections::BTreeMap;

use prometheus::proto::MetricType;

/// One metric's value at a sample.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// Only goes up (a rule can read its rate).
    Counter(f64),
    /// A level (a rule can read it, or its growth over the window).
    Gauge(f64),
    /// A cumulative histogram (a rule reads a quantile, the max or the mean of the values
    /// recorded since the previous sample).
    Histogram(Histogram),
}

/// A cumulative histogram: per bucket, its upper bound and the values at or below it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// `(upper bound, cumulative count)`, bounds ascending; the last bound may be infinite.
    pub buckets: Vec<(f64, u64)>,
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

impl Histogram {
    /// The values recorded since `earlier` (a previous sample of the same histogram): bucket
    /// by bucket, counts subtracted; `None` if the histogram was reset (a count went down).
    pub fn since(&self, earlier: &Histogram) -> Option<Histogram> {
        let before = |bound: f64| -> u64 {
            // Cumulative count of `earlier` at `bound`: its last bucket at or below it.
            earlier
                .buckets
                .iter()
                .take_while(|(b, _)| *b <= bound)
                .last()
                .map_or(0, |(_, c)| *c)
        };
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for &(bound, c) in &self.buckets {
            buckets.push((bound, c.checked_sub(before(bound))?));
        }
        Some(Histogram {
            buckets,
            count: self.count.checked_sub(earlier.count)?,
            sum: self.sum - earlier.sum,
        })
    }

    /// The sum of two cumulative histograms (two series of one family), bucket by bucket over
    /// the union of their bounds.
    pub fn merged(&self, other: &Histogram) -> Histogram {
        let at = |h: &Histogram, bound: f64| -> u64 {
            h.buckets
                .iter()
                .take_while(|(b, _)| *b <= bound)
                .last()
                .map_or(0, |(_, c)| *c)
        };
        let mut bounds: Vec<f64> = self
            .buckets
            .iter()
            .chain(&other.buckets)
            .map(|(b, _)| *b)
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        Histogram {
            buckets: bounds
                .into_iter()
                .map(|b| (b, at(self, b) + at(other, b)))
                .collect(),
            count: self.count + other.count,
            sum: self.sum + other.sum,
        }
    }

    /// The value at quantile `q` (0..=1), as PromQL's `histogram_quantile` estimates it:
    /// the bucket holding rank `q * count`, interpolated linearly between its lower and upper
    /// bounds (values assumed spread evenly within it; the first bucket's lower bound is 0
    /// when its upper bound is positive). A rank in the infinite last bucket answers with the
    /// largest finite bound. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut lower = None::<f64>;
        let mut below = 0u64;
        for &(bound, c) in &self.buckets {
            if c as f64 >= rank && c > below {
                if !bound.is_finite() {
                    return Some(lower.unwrap_or(0.0));
                }
                let from = match lower {
                    Some(l) => l,
                    None if bound > 0.0 => 0.0,
                    None => return Some(bound),
                };
                let within = (rank - below as f64) / (c - below) as f64;
                return Some(from + (bound - from) * within.clamp(0.0, 1.0));
            }
            if bound.is_finite() {
                lower = Some(bound);
            }
            below = c;
        }
        Some(lower.unwrap_or(0.0))
    }

    /// The upper bound of the highest non-empty bucket; `None` when empty.
    pub fn max(&self) -> Option<f64> {
        self.quantile(1.0)
    }

    /// The mean; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// Every metric of one sample, by name.
pub type Metrics = BTreeMap<String, MetricValue>;

/// Adds fdr's runtime metrics, under the names `/metrics` publishes them with (fdr-admin):
/// a histogram `NAME_ns` of `fdr_recorder::metrics()` as `fdr_NAME_seconds` (bounds and sum
/// in seconds), a counter as `fdr_NAME_total`, a gauge as `fdr_NAME`. Each is also added under
/// its older name, kept as an alias: `fdr_NAME_ns` (nanoseconds) and `fdr_NAME` for a counter.
pub fn add_runtime(into: &mut Metrics) {
    let m = fdr_recorder::metrics();
    for (name, _, h) in m.histograms() {
        let mut cumulative = 0;
        let buckets_ns: Vec<(f64, u64)> = h
            .buckets_ns()
            .map(|(upper_ns, n)| {
                cumulative += n;
                (upper_ns as f64, cumulative)
            })
            .collect();
        let seconds = Histogram {
            buckets: buckets_ns.iter().map(|&(b, c)| (b / 1e9, c)).collect(),
            count: h.count,
            sum: h.sum_ns as f64 / 1e9,
        };
        let base = name.strip_suffix("_ns").unwrap_or(name);
        into.insert(
            format!("fdr_{base}_seconds"),
            MetricValue::Histogram(seconds),
        );
        into.insert(
            format!("fdr_{name}"),
            MetricValue::Histogram(Histogram {
                buckets: buckets_ns,
                count: h.count,
                sum: h.sum_ns as f64,
            }),
        );
    }
    for c in m.scalars() {
        let v = c.value as f64;
        if c.gauge {
            into.insert(format!("fdr_{}", c.name), MetricValue::Gauge(v));
        } else {
            into.insert(format!("fdr_{}_total", c.name), MetricValue::Counter(v));
            into.insert(format!("fdr_{}", c.name), MetricValue::Counter(v));
        }
    }
}

/// The value a rule naming `selector` reads from `metrics`: the series of that exact name;
/// else, for `name` or `name{label="value",...}`, every series `name{...}` carrying all the
/// selector's labels (any others too), aggregated: counters summed, histograms summed bucket
/// by bucket, gauges by their maximum (the level a worst-case rule wants). `None` when no
/// series matches.
pub fn select(metrics: &Metrics, selector: &str) -> Option<MetricValue> {
    if let Some(v) = metrics.get(selector) {
        return Some(v.clone());
    }
    let (name, wanted) = match selector.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (selector, ""),
    };
    let wanted: Vec<String> = split_labels(wanted)
        .map(|pair| {
            // `k = "v"` and `k="v"` alike.
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            format!("{}={}", k.trim(), v.trim())
        })
        .collect();
    let from = format!("{name}{{");
    let to = format!("{name}|");
    let mut out: Option<MetricValue> = None;
    for (key, value) in metrics.range(from..to) {
        let labels = &key[name.len() + 1..key.len().saturating_sub(1)];
        let have: Vec<&str> = split_labels(labels).collect();
        if !wanted.iter().all(|w| have.contains(&w.as_str())) {
            continue;
        }
        out = Some(match (out, value) {
            (None, v) => v.clone(),
            (Some(MetricValue::Counter(a)), MetricValue::Counter(b)) => MetricValue::Counter(a + b),
            (Some(MetricValue::Gauge(a)), MetricValue::Gauge(b)) => MetricValue::Gauge(a.max(*b)),
            (Some(MetricValue::Histogram(a)), MetricValue::Histogram(b)) => {
                MetricValue::Histogram(a.merged(b))
            }
            // Series of one family share a kind; a mix keeps the first.
            (Some(a), _) => a,
        });
    }
    out
}

/// The `k="v"` pairs of a label list, split at commas outside quotes.
fn split_labels(labels: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in labels.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&labels[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// Every name [`add_runtime`] adds (published names and their aliases), sorted.
pub fn runtime_names() -> Vec<String> {
    let mut m = Metrics::new();
    add_runtime(&mut m);
    m.into_keys().collect()
}

/// Up to three of `names` closest to `name` (by edit distance of the names without labels),
/// for an error naming a metric that is not there.
pub fn near_names<'a>(name: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let base = |n: &str| n.split('{').next().unwrap_or(n).to_owned();
    let target = base(name);
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .map(|n| (edit_distance(&target, &base(n)), n.to_owned()))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    let limit = target.len().max(4) / 2;
    scored
        .into_iter()
        .filter(|(d, n)| *d <= limit || n.starts_with(&target) || target.starts_with(&base(n)))
        .take(3)
        .map(|(_, n)| n)
        .collect()
}

/// Levenshtein distance in bytes (names are ASCII; both at most a few hundred bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (diag + usize::from(ca != cb)).min(row[j] + 1).min(up + 1);
            diag = up;
        }
    }
    row[b.len()]
}

/// The value of a gathered counter or gauge under either of `prometheus`'s models.
///
/// An application depending on `prometheus` with its default features turns on `protobuf`
/// (features unify), which swaps the types `Registry::gather` returns: the plain model's
/// `Counter` and `Gauge` have only `get_value()`, the protobuf model's only `value()`. This
/// crate cannot see which is enabled, so each method here calls the other name: an inherent
/// method wins over a trait method, so `value()` resolves to the protobuf accessor or, through
/// `get_value()`, to the plain one, and neither calls back into this trait. Under the protobuf
/// model the inherent `value()` is used directly and this trait is not.
#[allow(dead_code)]
trait ValueOfEitherModel {
    fn value(&self) -> f64;
    fn get_value(&self) -> f64;
}

impl ValueOfEitherModel for prometheus::proto::Counter {
    fn value(&self) -> f64 {
        self.get_value()
    }
    fn get_value(&self) -> f64 {
        self.value()
    }
}

impl ValueOfEitherModel for prometheus::proto::Gauge {
    fn value(&self) -> f64 {
        self.get_value()
    }
    fn get_value(&self) -> f64 {
        self.value()
    }
}

/// Adds every counter, gauge and histogram a `prometheus` registry gathers. A series with
/// labels is named `name{label="value",...}`, labels sorted; summaries are skipped (their
/// quantiles cannot be merged over a window), and so are untyped series.
pub fn add_prometheus(registry: &prometheus::Registry, into: &mut Metrics) {
    for family in registry.gather() {
        let kind = family.get_field_type();
        for m in family.get_metric() {
            let mut labels: Vec<(&str, &str)> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            labels.sort_unstable();
            let name = if labels.is_empty() {
                family.name().to_owned()
            } else {
                let inner: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                format!("{}{{{}}}", family.name(), inner.join(","))
            };
            let value = match kind {
                MetricType::COUNTER => MetricValue::Counter(m.get_counter().value()),
                MetricType::GAUGE => MetricValue::Gauge(m.get_gauge().value()),
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut buckets: Vec<(f64, u64)> = h
                        .get_bucket()
                        .iter()
                        .map(|b| (b.upper_bound(), b.cumulative_count()))
                        .collect();
                    if buckets.last().is_none_or(|(b, _)| b.is_finite()) {
                        buckets.push((f64::INFINITY, h.get_sample_count()));
                    }
                    MetricValue::Histogram(Histogram {
                        buckets,
                        count: h.get_sample_count(),
                        sum: h.get_sample_sum(),
                    })
                }
                // Untyped series are not made by this crate's collectors any more.
                MetricType::SUMMARY | MetricType::UNTYPED => continue,
            };
            into.insert(name, value);
        }
    }
}

/// Adds the process's CPU time, resident memory, threads and open file descriptors (Linux;
/// elsewhere nothing): `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_threads`, `process_open_fds`. A value that cannot be read is left out.
pub fn add_process(into: &mut Metrics) {
    #[cfg(target_os = "linux")]
    {
        if let Some(cpu) = proc_cpu_seconds() {
            into.insert(
                "process_cpu_seconds_total".into(),
                MetricValue::Counter(cpu),
            );
        }
        if let Some(rss) = proc_rss_bytes() {
            into.insert(
                "process_resident_memory_bytes".into(),
                MetricValue::Gauge(rss),
            );
        }
        if let Some(threads) = proc_status_field("Threads:") {
            into.insert("process_threads".into(), MetricValue::Gauge(threads));
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of them.
            let fds = dir.count().saturating_sub(1);
            into.insert("process_open_fds".into(), MetricValue::Gauge(fds as f64));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = into;
}

/// User plus system CPU time of every thread, from `/proc/self/stat` (in clock ticks of
/// `USER_HZ`, 100 on every Linux ABI).
#[cfg(target_os = "linux")]
fn proc_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, so split after its `)`).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resident memory, from `/proc/self/status` (`VmRSS`, in kB).
#[cfg(target_os = "linux")]
fn proc_rss_bytes() -> Option<f64> {
    proc_status_field("VmRSS:").map(|kb| kb * 1024.0)
}

/// A numeric field of `/proc/self/status` (its first number).
#[cfg(target_os = "linux")]
fn proc_status_field(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(buckets: &[(f64, u64)], sum: f64) -> Histogram {
        Histogram {
            buckets: buckets.to_vec(),
            count: buckets.last().map_or(0, |b| b.1),
            sum,
        }
    }

    #[test]
    fn a_window_is_the_difference_of_two_cumulative_histograms() {
        let before = hist(&[(1.0, 10), (2.0, 10), (f64::INFINITY, 10)], 5.0);
        let after = hist(&[(1.0, 10), (2.0, 15), (f64::INFINITY, 20)], 45.0);
        let w = after.since(&before).unwrap();
        assert_eq!(w.buckets, [(1.0, 0), (2.0, 5), (f64::INFINITY, 10)]);
        assert_eq!(w.count, 10);
        // Half the window's values at or below 2, the rest above the largest bound.
        assert_eq!(w.quantile(0.5), Some(2.0));
        assert_eq!(w.quantile(0.99), Some(2.0));
        assert_eq!(w.mean(), Some(4.0));
        // A reset histogram has no window.
        assert_eq!(before.since(&after), None);
        // An empty window has no quantile.
        assert_eq!(before.since(&before).unwrap().quantile(0.99), None);
    }

    #[test]
    fn a_registry_gives_counters_gauges_and_histograms_by_series() {
        let r = prometheus::Registry::new();
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("requests_total", "requests"),
            &["route", "code"],
        )
        .unwrap();
        r.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["/user", "200"]).inc_by(3);
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("latency_seconds", "latency").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        r.register(Box::new(h.clone())).unwrap();
        h.observe(0.5);
        let mut m = Metrics::new();
        add_prometheus(&r, &mut m);
        assert_eq!(
            m["requests_total{code=\"200\",route=\"/user\"}"],
            MetricValue::Counter(3.0)
        );
        let MetricValue::Histogram(h) = &m["latency_seconds"] else {
            panic!("{m:?}")
        };
        assert_eq!(h.buckets, [(0.1, 0), (1.0, 1), (f64::INFINITY, 1)]);
        // Interpolated within (0.1, 1]: 0.1 + 0.9 * 0.99.
        assert!((h.quantile(0.99).unwrap() - 0.991).abs() < 1e-9, "{h:?}");
        assert_eq!(h.max(), Some(1.0));
    }

    #[test]
    fn a_quantile_is_interpolated_within_its_bucket_like_histogram_quantile() {
        // 1,000 requests: 979 at 0.5 ms, 20 spread evenly over (1 ms, 2.5 ms], one at 4 ms.
        // The true p99 (the 990th value) is 1.79 ms; the bucket's upper bound is 2.5 ms.
        let r = prometheus::Registry::new();
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("http_latency_seconds", "latency")
                .buckets(vec![0.001, 0.0025, 0.005]),
        )
        .unwrap();
        r.register(Box::new(h.clone())).unwrap();
        let sample = || {
            let mut m = Metrics::new();
            add_prometheus(&r, &mut m);
            m
        };
        let before = sample();
        let mut values = vec![0.0005; 979];
        values.extend((0..20).map(|i| 0.001 + 0.0015 * (i as f64 + 0.5) / 20.0));
        values.push(0.004);
        for v in &values {
            h.observe(*v);
        }
        let after = sample();
        let rule = crate::Rule::parse("slow: http_latency_seconds p99 > 2ms").unwrap();
        let p99 = rule
            .stat
            .of(
                before.get(&rule.metric),
                &after[&rule.metric],
                std::time::Duration::from_secs(5),
            )
            .unwrap()
            .unwrap();
        // 1 ms + 1.5 ms * (990 - 979) / 20.
        assert!((p99 - 0.001825).abs() < 1e-9, "{p99}");
        assert!(!rule.breaches(p99), "a healthy p99 of {p99} s fired {rule}");
    }

    #[test]
    fn labelled_series_are_selected_by_label_or_aggregated() {
        let r = prometheus::Registry::new();
        let h = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new("http_latency_seconds", "latency")
                .buckets(vec![0.01, 0.1]),
            &["route", "code"],
        )
        .unwrap();
        r.register(Box::new(h.clone())).unwrap();
        let g =
            prometheus::GaugeVec::new(prometheus::Opts::new("queue_depth", "queued"), &["queue"])
                .unwrap();
        r.register(Box::new(g.clone())).unwrap();
        let sample = || {
            let mut m = Metrics::new();
            add_prometheus(&r, &mut m);
            m
        };
        // The series exist (no values yet) at the first sample.
        for labels in [["/user", "200"], ["/health", "200"], ["/user", "500"]] {
            h.with_label_values(&labels);
        }
        let before = sample();
        for _ in 0..100 {
            h.with_label_values(&["/user", "200"]).observe(0.05);
            h.with_label_values(&["/health", "200"]).observe(0.001);
        }
        h.with_label_values(&["/user", "500"]).observe(0.05);
        g.with_label_values(&["a"]).set(3.0);
        g.with_label_values(&["b"]).set(9.0);
        let after = sample();
        let p99 = |text: &str| {
            let rule = crate::Rule::parse(text).unwrap();
            let now = select(&after, &rule.metric).unwrap_or_else(|| panic!("{text}: {after:?}"));
            let then = select(&before, &rule.metric);
            rule.stat
                .of(then.as_ref(), &now, std::time::Duration::from_secs(5))
                .unwrap()
        };
        // One route, over both of its codes: 101 values in (10 ms, 100 ms].
        let user = p99(r#"slow: http_latency_seconds{route="/user"} p99 > 20ms"#).unwrap();
        assert!(user > 0.09, "{user}");
        // All series: 100 of the 201 values are fast; p25 is rank 50.25 of the first bucket's
        // 100, interpolated in (0, 10 ms].
        let all = p99("slow: http_latency_seconds p25 > 20ms").unwrap();
        assert!((all - 0.005025).abs() < 1e-9, "{all}");
        // Both labels, order free.
        let one = p99(r#"slow: http_latency_seconds{code="500", route="/user"} max > 1ms"#);
        assert_eq!(one, Some(0.1));
        assert_eq!(select(&after, "queue_depth"), Some(MetricValue::Gauge(9.0)));
        assert_eq!(
            select(&after, r#"http_latency_seconds{route="/none"}"#),
            None
        );
    }

    #[test]
    fn runtime_metrics_carry_the_published_names_and_the_older_aliases() {
        let mut m = Metrics::new();
        add_runtime(&mut m);
        for name in [
            "fdr_lock_wait_seconds",
            "fdr_lock_wait_ns",
            "fdr_polls_total",
            "fdr_polls",
            "fdr_tasks_alive",
        ] {
            assert!(m.contains_key(name), "{name} missing from {:?}", m.keys());
        }
        let (MetricValue::Histogram(s), MetricValue::Histogram(ns)) =
            (&m["fdr_sched_latency_seconds"], &m["fdr_sched_latency_ns"])
        else {
            panic!("{m:?}")
        };
        assert_eq!(s.count, ns.count);
        for (a, b) in s.buckets.iter().zip(&ns.buckets) {
            assert_eq!((a.0 * 1e9).round(), b.0.round());
            assert_eq!(a.1, b.1);
        }
        assert_eq!(m["fdr_polls_total"], m["fdr_polls"]);
        let near = near_names("fdr_lock_wait_secs", m.keys().map(String::as_str));
        assert!(
            near.contains(&"fdr_lock_wait_seconds".to_owned()),
            "{near:?}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_reports_its_cpu_memory_threads_and_fds() {
        let mut m = Metrics::new();
        add_process(&mut m);
        let gauge = |k: &str| match m.get(k) {
            Some(MetricValue::Gauge(v)) => *v,
            other => panic!("{k}: {other:?}"),
        };
        assert!(gauge("process_resident_memory_bytes") > 1e6);
        assert!(gauge("process_threads") >= 1.0);
        // stdin, stdout and stderr at least.
        assert!(gauge("process_open_fds") >= 3.0);
        assert!(matches!(m["process_cpu_seconds_total"], MetricValue::Counter(v) if v >= 0.0));
    }
}
