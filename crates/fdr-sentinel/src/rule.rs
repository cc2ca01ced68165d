//! Rules: a statistic of one metric compared with a threshold, held for N consecutive
//! samples, with limits on how often it may dump.
//!
//! In code: `Rule::above("slow_sched", "fdr_sched_latency_ns", Stat::Quantile(0.99), 20e6)`;
//! as text (for `FDR_SENTINEL_RULES`):
//! `slow_sched: fdr_sched_latency_ns p99 > 20ms for 3 cooldown 5m max 3 per 1h delay 2s`.

use std::fmt;
use std::time::Duration;

use crate::metric::MetricValue;

/// What a rule reads of its metric at each sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A quantile (0..=1) of a histogram's values since the previous sample.
    Quantile(f64),
    /// The largest of a histogram's values since the previous sample (its bucket's bound).
    Max,
    /// The mean of a histogram's values since the previous sample.
    Mean,
    /// A gauge's (or counter's) value.
    Value,
    /// A counter's increase per second since the previous sample.
    Rate,
    /// A gauge's (or counter's) change since the previous sample.
    Growth,
}

impl Stat {
    /// The statistic of `now`, given the previous sample's value of the same metric and the
    /// time between them; `Ok(None)` when there is nothing to read yet (no previous sample,
    /// no values in the window, a reset); `Err` when the statistic does not apply to the
    /// metric's kind.
    pub fn of(
        &self,
        before: Option<&MetricValue>,
        now: &MetricValue,
        elapsed: Duration,
    ) -> Result<Option<f64>, String> {
        use MetricValue::{Counter, Gauge, Histogram};
        match (self, now) {
            (Stat::Quantile(_) | Stat::Max | Stat::Mean, Histogram(h)) => {
                let Some(Histogram(b)) = before else {
                    return Ok(None);
                };
                let Some(w) = h.since(b) else { return Ok(None) };
                Ok(match self {
                    Stat::Quantile(q) => w.quantile(*q),
                    Stat::Max => w.max(),
                    _ => w.mean(),
                })
            }
            (Stat::Value, Counter(v) | Gauge(v)) => Ok(Some(*v)),
            (Stat::Rate | Stat::Growth, Counter(v) | Gauge(v)) => {
                let b = match before {
                    Some(Counter(b) | Gauge(b)) => *b,
                    _ => return Ok(None),
                };
                if *self == Stat::Growth {
                    return Ok(Some(v - b));
                }
                let secs = elapsed.as_secs_f64();
                if v < &b || secs <= 0.0 {
                    return Ok(None);
                }
                Ok(Some((v - b) / secs))
            }
            (s, m) => Err(format!(
                "{s} does not apply to a {}",
                match m {
                    Counter(_) => "counter",
                    Gauge(_) => "gauge",
                    Histogram(_) => "histogram",
                }
            )),
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stat::Quantile(q) => write!(f, "p{}", (q * 100_000.0).round() / 1000.0),
            Stat::Max => f.write_str("max"),
            Stat::Mean => f.write_str("mean"),
            Stat::Value => f.write_str("value"),
            Stat::Rate => f.write_str("rate"),
            Stat::Growth => f.write_str("growth"),
        }
    }
}

/// How often dumps may happen (per rule, and for the sentinel as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At least this long between two dumps.
    pub cooldown: Duration,
    /// At most this many dumps within any `window`.
    pub max_dumps: u32,
    /// The sliding window `max_dumps` counts over.
    pub window: Duration,
    /// Stop dumping this long after the sentinel starts (`None`: never).
    pub lifetime: Option<Duration>,
}

impl Limits {
    /// A rule's defaults: 5 minutes apart, at most 3 an hour, no lifetime.
    pub const RULE: Limits = Limits {
        cooldown: Duration::from_secs(5 * 60),
        max_dumps: 3,
        window: Duration::from_secs(3600),
        lifetime: None,
    };
    /// The sentinel's defaults across rules: a minute apart, at most 10 an hour.
    pub const GLOBAL: Limits = Limits {
        cooldown: Duration::from_secs(60),
        max_dumps: 10,
        window: Duration::from_secs(3600),
        lifetime: None,
    };
}

/// A rule: when `stat` of `metric` is above (or below) `threshold` for `for_samples`
/// consecutive samples, dump the flight recorder (after `delay`, to catch the aftermath).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Names the rule in incidents and logs: letters, digits, `_`, `-`, at most
    /// [`Rule::MAX_NAME_BYTES`] (checked by [`Rule::parse`] and when the sentinel starts).
    pub name: String,
    /// The metric, as a sample names it (`fdr_sched_latency_ns`, `requests_total{code="500"}`).
    pub metric: String,
    /// What is read of it.
    pub stat: Stat,
    /// Breach above the threshold (`true`) or below it.
    pub above: bool,
    /// In the metric's unit.
    pub threshold: f64,
    /// Consecutive breaching samples before a dump.
    pub for_samples: u32,
    /// How often this rule may dump.
    pub limits: Limits,
    /// Wait this long after the trigger before dumping (the ring then holds the aftermath
    /// too).
    pub delay: Duration,
}

impl Rule {
    /// The longest rule name, in bytes: its incidents' ids (`20261202T040512.123Z-NAME`)
    /// are at most [`crate::MAX_ID_BYTES`].
    pub const MAX_NAME_BYTES: usize = crate::layout::MAX_ID_BYTES - crate::layout::ID_TIME_BYTES;

    /// Whether `name` can name a rule: letters, digits, `_` or `-`, at most
    /// [`Rule::MAX_NAME_BYTES`]; the error says what is wrong.
    pub fn check_name(name: &str) -> Result<(), NameError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            return Err(NameError::Characters {
                name: name.to_owned(),
            });
        }
        if name.len() > Rule::MAX_NAME_BYTES {
            return Err(NameError::TooLong {
                start: name.chars().take(24).collect(),
                bytes: name.len(),
            });
        }
        Ok(())
    }

    /// A rule that breaches when `stat` of `metric` exceeds `threshold`, with one sample,
    /// [`Limits::RULE`] and no delay.
    pub fn above(name: &str, metric: &str, stat: Stat, threshold: f64) -> Rule {
        Rule {
            name: name.to_owned(),
            metric: metric.to_owned(),
            stat,
            above: true,
            threshold,
            for_samples: 1,
            limits: Limits::RULE,
            delay: Duration::ZERO,
        }
    }

    /// As [`Rule::above`], breaching below the threshold.
    pub fn below(name: &str, metric: &str, stat: Stat, threshold: f64) -> Rule {
        Rule {
            above: false,
            ..Rule::above(name, metric, stat, threshold)
        }
    }

    /// Breach only after `n` consecutive breaching samples (at least 1).
    pub fn for_samples(mut self, n: u32) -> Rule {
        self.for_samples = n.max(1);
        self
    }

    /// At least `d` between two dumps of this rule.
    pub fn cooldown(mut self, d: Duration) -> Rule {
        self.limits.cooldown = d;
        self
    }

    /// At most `n` dumps of this rule within any `window`.
    pub fn max_dumps(mut self, n: u32, window: Duration) -> Rule {
        self.limits.max_dumps = n;
        self.limits.window = window;
        self
    }

    /// This rule dumps only during the first `d` after the sentinel starts.
    pub fn lifetime(mut self, d: Duration) -> Rule {
        self.limits.lifetime = Some(d);
        self
    }

    /// Dump `d` after the trigger.
    pub fn delay(mut self, d: Duration) -> Rule {
        self.delay = d;
        self
    }

    /// Whether `value` breaches.
    pub fn breaches(&self, value: f64) -> bool {
        if self.above {
            value > self.threshold
        } else {
            value < self.threshold
        }
    }

    /// Parses the text form (see the module docs):
    /// `NAME: METRIC STAT (>|<) THRESHOLD [for N] [cooldown DUR] [max N per DUR]
    /// [lifetime DUR] [delay DUR]`, where STAT is `p50`, `p90`, `p99`, `p99.9` (any `pQ`),
    /// `max`, `mean`, `value`, `rate` or `growth`, DUR is a number with `ms`, `s`, `m` or
    /// `h`, and THRESHOLD a number, or a duration (`20ms`, `1.5s`) for a metric named in
    /// time units (`_ns`, `_us`, `_ms`, `_seconds`), or a size (`512MiB`, `2GB`) for one in
    /// `_bytes`.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let err = |reason: RuleProblem| RuleError {
            rule: text.trim().to_owned(),
            reason,
        };
        let (name, rest) = text
            .split_once(':')
            .ok_or_else(|| err(RuleProblem::NoColon))?;
        let name = name.trim();
        Rule::check_name(name).map_err(|e| err(e.into()))?;
        let mut words = rest.split_ascii_whitespace();
        let mut next = |expected: &'static str| {
            words
                .next()
                .ok_or_else(|| err(RuleProblem::Missing { expected }))
        };
        let mut metric = next("a metric name")?.to_owned();
        // A label selector may hold spaces: `name{a="x", b="y"}`.
        while metric.contains('{') && !metric.ends_with('}') {
            let more = next("the `}` closing the metric's labels")?;
            metric.push(' ');
            metric.push_str(more);
        }
        let metric = metric.as_str();
        let stat_text = next("a statistic (p99, max, mean, value, rate, growth)")?;
        let stat = parse_stat(stat_text).map_err(err)?;
        let above = match next("`>` or `<`")? {
            ">" => true,
            "<" => false,
            other => {
                return Err(err(RuleProblem::NotAComparison {
                    found: other.to_owned(),
                }));
            }
        };
        let threshold_text = next("a threshold")?;
        let threshold = parse_threshold(threshold_text, metric).map_err(|e| err(e.into()))?;
        let mut rule = Rule {
            above,
            ..Rule::above(name, metric, stat, threshold)
        };
        while let Ok(key) = next("") {
            match key {
                "for" => {
                    let n = next("a sample count after `for`")?;
                    let n: u32 = n.parse().map_err(|_| {
                        err(RuleProblem::NotACount {
                            option: "for",
                            found: n.to_owned(),
                        })
                    })?;
                    rule = rule.for_samples(n);
                }
                "cooldown" => {
                    rule.limits.cooldown =
                        parse_duration(next("a duration")?).map_err(|e| err(e.into()))?
                }
                "max" => {
                    let n = next("a dump count after `max`")?;
                    rule.limits.max_dumps = n.parse().map_err(|_| {
                        err(RuleProblem::NotACount {
                            option: "max",
                            found: n.to_owned(),
                        })
                    })?;
                    match next("`per DURATION` after `max N`")? {
                        "per" => {}
                        other => {
                            return Err(err(RuleProblem::NoPer {
                                max: n.to_owned(),
                                found: other.to_owned(),
                            }));
                        }
                    }
                    rule.limits.window =
                        parse_duration(next("a duration")?).map_err(|e| err(e.into()))?;
                }
                "lifetime" => {
                    rule.limits.lifetime =
                        Some(parse_duration(next("a duration")?).map_err(|e| err(e.into()))?)
                }
                "delay" => {
                    rule.delay = parse_duration(next("a duration")?).map_err(|e| err(e.into()))?
                }
                other => {
                    return Err(err(RuleProblem::UnknownOption {
                        found: other.to_owned(),
                    }));
                }
            }
        }
        Ok(rule)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.above { '>' } else { '<' };
        write!(
            f,
            "{}: {} {} {op} {} for {}",
            self.name, self.metric, self.stat, self.threshold, self.for_samples
        )
    }
}

/// Why a rule name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty, or a character other than letters, digits, `_` and `-`.
    #[error("the name `{name}` must be letters, digits, `_` or `-`")]
    Characters {
        /// The name.
        name: String,
    },
    /// Longer than [`Rule::MAX_NAME_BYTES`].
    #[error(
        "the name `{start}...` is {bytes} bytes long; a rule name is at most {max} (its \
         incidents are named `TIME-NAME`, at most {id_max} bytes)",
        max = Rule::MAX_NAME_BYTES,
        id_max = crate::layout::MAX_ID_BYTES
    )]
    TooLong {
        /// Its first 24 characters.
        start: String,
        /// Its length in bytes.
        bytes: usize,
    },
}

/// A rule that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}`: {reason}")]
pub struct RuleError {
    /// The rule's text.
    pub rule: String,
    /// What is wrong with it.
    pub reason: RuleProblem,
}

/// What is wrong with a rule's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleProblem {
    /// No `:` after the name.
    #[error("expected `NAME: METRIC STAT > THRESHOLD`, found no `:`")]
    NoColon,
    /// The name cannot name incidents.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The text ended where a word was expected.
    #[error("expected {expected}, found the end")]
    Missing {
        /// What was expected.
        expected: &'static str,
    },
    /// The statistic is not one of the known ones.
    #[error(
        "unknown statistic `{found}` (expected p50, p90, p99, p99.9, max, mean, value, rate or growth)"
    )]
    UnknownStat {
        /// The word found.
        found: String,
    },
    /// Neither `>` nor `<` after the statistic.
    #[error("expected `>` or `<`, found `{found}`")]
    NotAComparison {
        /// The word found.
        found: String,
    },
    /// The threshold or a duration could not be read.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// `for N` or `max N` without a whole number.
    #[error("`{option} {found}`: expected a whole number")]
    NotACount {
        /// `for` or `max`.
        option: &'static str,
        /// The word found.
        found: String,
    },
    /// `max N` not followed by `per`.
    #[error("expected `per` after `max {max}`, found `{found}`")]
    NoPer {
        /// The count after `max`.
        max: String,
        /// The word found instead of `per`.
        found: String,
    },
    /// An option other than `for`, `cooldown`, `max`, `lifetime` and `delay`.
    #[error("unknown option `{found}` (expected for, cooldown, max, lifetime or delay)")]
    UnknownOption {
        /// The word found.
        found: String,
    },
}

/// A number, duration, size or threshold that could not be read; each names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a number.
    #[error("`{text}`: expected a number, with a unit or not")]
    NotANumber {
        /// The text.
        text: String,
    },
    /// Infinite or NaN.
    #[error("`{text}`: not a finite number")]
    NotFinite {
        /// The text.
        text: String,
    },
    /// A number without a time unit where a duration was expected.
    #[error("`{text}`: expected a duration like 500ms, 5s, 2m or 1h")]
    NotADuration {
        /// The text.
        text: String,
    },
    /// A duration out of range (negative, or too long).
    #[error("`{text}`: not a valid duration")]
    InvalidDuration {
        /// The text.
        text: String,
    },
    /// A number with a unit that is not a size's.
    #[error("`{text}`: expected a size like 4096, 64KiB, 512MiB or 2GB")]
    NotASize {
        /// The text.
        text: String,
    },
    /// A negative size.
    #[error("`{text}`: a size cannot be negative")]
    NegativeSize {
        /// The text.
        text: String,
    },
    /// A duration as the threshold of a metric not named in a time unit.
    #[error(
        "`{text}` is a duration, but `{metric}` is not named in a time unit (_ns, _us, _ms, _seconds): write a plain number"
    )]
    DurationForUntimedMetric {
        /// The threshold's text.
        text: String,
        /// The metric.
        metric: String,
    },
    /// A unit that fits neither a duration nor a size of the metric.
    #[error(
        "`{text}`: unknown unit `{unit}` for `{metric}` (durations for metrics in time units, sizes for _bytes, else a plain number)"
    )]
    UnknownUnit {
        /// The threshold's text.
        text: String,
        /// Its unit.
        unit: String,
        /// The metric.
        metric: String,
    },
}

fn parse_stat(s: &str) -> Result<Stat, RuleProblem> {
    Ok(match s {
        "max" => Stat::Max,
        "mean" => Stat::Mean,
        "value" => Stat::Value,
        "rate" => Stat::Rate,
        "growth" => Stat::Growth,
        _ => {
            let q = s
                .strip_prefix('p')
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or_else(|| RuleProblem::UnknownStat {
                    found: s.to_owned(),
                })?;
            // Percent to a fraction, exact for up to three decimals (99.9 is 0.999).
            Stat::Quantile((q * 1000.0).round() / 100_000.0)
        }
    })
}

/// Splits `12.5ms` into `(12.5, "ms")`.
fn split_number(s: &str) -> Result<(f64, &str), ValueError> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let v: f64 = num
        .parse()
        .map_err(|_| ValueError::NotANumber { text: s.to_owned() })?;
    if !v.is_finite() {
        return Err(ValueError::NotFinite { text: s.to_owned() });
    }
    Ok((v, unit))
}

/// Seconds in one of a time unit.
fn time_unit_secs(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    })
}

/// A duration: `500ms`, `5s`, `2m`, `1h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let (v, unit) = split_number(s)?;
    let secs =
        time_unit_secs(unit).ok_or_else(|| ValueError::NotADuration { text: s.to_owned() })?;
    Duration::try_from_secs_f64(v * secs)
        .map_err(|_| ValueError::InvalidDuration { text: s.to_owned() })
}

/// A size: `512`, `64KiB`, `512MiB`, `2GB`.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, ValueError> {
    let (v, unit) = split_number(s)?;
    let mult: f64 = match unit {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(ValueError::NotASize { text: s.to_owned() }),
    };
    if v < 0.0 {
        return Err(ValueError::NegativeSize { text: s.to_owned() });
    }
    Ok((v * mult) as u64)
}

/// A threshold in `metric`'s unit: a plain number, or a duration or size converted to it.
fn parse_threshold(s: &str, metric: &str) -> Result<f64, ValueError> {
    let (v, unit) = split_number(s)?;
    if unit.is_empty() {
        return Ok(v);
    }
    // The metric's unit: the last word of its name, before any labels.
    let base = metric.split('{').next().unwrap_or(metric);
    let base = base.strip_suffix("_total").unwrap_or(base);
    if let Some(secs) = time_unit_secs(unit) {
        let metric_unit_secs = if base.ends_with("_ns") {
            1e-9
        } else if base.ends_with("_us") {
            1e-6
        } else if base.ends_with("_ms") {
            1e-3
        } else if base.ends_with("_seconds") {
            1.0
        } else {
            return Err(ValueError::DurationForUntimedMetric {
                text: s.to_owned(),
                metric: metric.to_owned(),
            });
        };
        return Ok(v * secs / metric_unit_secs);
    }
    if base.ends_with("_bytes") {
        return parse_bytes(s).map(|b| b as f64);
    }
    Err(ValueError::UnknownUnit {
        text: s.to_owned(),
        unit: unit.to_owned(),
        metric: metric.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_parses_with_units_converted_to_the_metrics() {
        let r = Rule::parse(
            "slow_sched: fdr_sched_latency_ns p99 > 20ms for 3 cooldown 5m max 2 per 1h lifetime 1h delay 2s",
        )
        .unwrap();
        assert_eq!(r.name, "slow_sched");
        assert_eq!(r.metric, "fdr_sched_latency_ns");
        assert_eq!(r.stat, Stat::Quantile(0.99));
        assert!(r.above);
        assert_eq!(r.threshold, 20e6);
        assert_eq!(r.for_samples, 3);
        assert_eq!(r.limits.cooldown, Duration::from_secs(300));
        assert_eq!(r.limits.max_dumps, 2);
        assert_eq!(r.limits.window, Duration::from_secs(3600));
        assert_eq!(r.limits.lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(r.delay, Duration::from_secs(2));

        let r = Rule::parse("rss: process_resident_memory_bytes value > 512MiB").unwrap();
        assert_eq!(r.threshold, 512.0 * 1024.0 * 1024.0);
        let r = Rule::parse("lat: http_latency_seconds p99.9 > 250ms").unwrap();
        assert!((r.threshold - 0.25).abs() < 1e-12);
        assert_eq!(r.stat, Stat::Quantile(0.999));
        let r = Rule::parse("idle: requests_total rate < 1").unwrap();
        assert!(!r.above);
        assert_eq!(r.limits, Limits::RULE);
    }

    #[test]
    fn a_bad_rule_says_what_is_wrong() {
        let cases = [
            ("no colon here", "no `:`"),
            ("bad name!: m value > 1", "letters, digits"),
            ("r: m p99", "expected `>` or `<`, found the end"),
            ("r: m p101 > 1", "unknown statistic `p101`"),
            ("r: m value >= 1", "expected `>` or `<`, found `>=`"),
            ("r: requests_total value > 5ms", "not named in a time unit"),
            ("r: m_ns value > 5parsecs", "unknown unit `parsecs`"),
            (
                "r: m value > 1 for three",
                "`for three`: expected a whole number",
            ),
            ("r: m value > 1 max 3 in 1h", "expected `per` after `max 3`"),
            ("r: m value > 1 cooldown soon", "expected a number"),
            ("r: m value > 1 often", "unknown option `often`"),
        ];
        let long = format!("{}: m value > 1", "n".repeat(180));
        let e = Rule::parse(&long).unwrap_err();
        assert!(
            e.to_string()
                .contains("is 180 bytes long; a rule name is at most 179"),
            "{e}"
        );
        // The longest name that fits, and its incidents' ids with it.
        let name = "n".repeat(Rule::MAX_NAME_BYTES);
        let r = Rule::parse(&format!("{name}: m value > 1")).unwrap();
        // 9999-12-31 23:59:59.999, the last time of the id's width.
        let id = crate::layout::incident_id(253_402_300_799_999, &r.name);
        assert_eq!(id.len(), crate::MAX_ID_BYTES);
        assert!(crate::layout::is_id(&id), "{id}");
        for (text, want) in cases {
            let e = Rule::parse(text).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
            assert_eq!(e.rule, text);
        }
        // A caller can tell the problems apart without reading the text.
        let reason = |text: &str| Rule::parse(text).unwrap_err().reason;
        assert_eq!(
            reason("r: m p99 > 5ms"),
            RuleProblem::Value(ValueError::DurationForUntimedMetric {
                text: "5ms".into(),
                metric: "m".into()
            })
        );
        assert_eq!(
            reason("r: m value > 1 often"),
            RuleProblem::UnknownOption {
                found: "often".into()
            }
        );
        assert!(matches!(
            reason(&long),
            RuleProblem::Name(NameError::TooLong { bytes: 180, .. })
        ));
        assert_eq!(
            reason("r: m value"),
            RuleProblem::Missing {
                expected: "`>` or `<`"
            }
        );
    }

    #[test]
    fn statistics_read_the_window_or_the_level() {
        use crate::metric::Histogram;
        let h = |n: u64, sum: f64| {
            MetricValue::Histogram(Histogram {
                buckets: vec![(10.0, n / 2), (100.0, n)],
                count: n,
                sum,
            })
        };
        let s = Duration::from_secs(2);
        assert_eq!(Stat::Quantile(0.99).of(None, &h(4, 100.0), s), Ok(None));
        // Rank 3.96 of 4, interpolated within (10, 100]: 10 + 90 * 1.96 / 2.
        let p99 = Stat::Quantile(0.99)
            .of(Some(&h(4, 100.0)), &h(8, 300.0), s)
            .unwrap()
            .unwrap();
        assert!((p99 - 98.2).abs() < 1e-9, "{p99}");
        assert_eq!(
            Stat::Max.of(Some(&h(4, 100.0)), &h(8, 300.0), s),
            Ok(Some(100.0))
        );
        assert_eq!(
            Stat::Mean.of(Some(&h(4, 100.0)), &h(8, 300.0), s),
            Ok(Some(50.0))
        );
        let c = |v| MetricValue::Counter(v);
        assert_eq!(Stat::Rate.of(Some(&c(10.0)), &c(30.0), s), Ok(Some(10.0)));
        // A counter reset has no rate.
        assert_eq!(Stat::Rate.of(Some(&c(30.0)), &c(10.0), s), Ok(None));
        let g = |v| MetricValue::Gauge(v);
        assert_eq!(Stat::Growth.of(Some(&g(10.0)), &g(4.0), s), Ok(Some(-6.0)));
        assert_eq!(Stat::Value.of(None, &g(4.0), s), Ok(Some(4.0)));
        assert_eq!(Stat::Quantile(0.999).to_string(), "p99.9");
        let e = Stat::Quantile(0.5).of(None, &g(1.0), s).unwrap_err();
        assert_eq!(e, "p50 does not apply to a gauge");
    }
}
