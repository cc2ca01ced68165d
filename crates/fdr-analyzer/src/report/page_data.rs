//! The data the page's script draws (`page.js` reads it from the `fdr-data` block): typed
//! rows, serialized as they are declared. Objects keep their keys in alphabetical order,
//! the order the script has always been given.

use std::collections::HashMap;

use serde::Serialize;

use super::timeline::Name;
use super::{Kind, Lane, MAX_COUNTER_LANES, MetricSeries, Report, metric_value, pad};
use crate::profile::REASON_NAMES;
use crate::text::dur;

/// The slice kinds in the order a slice row's kind index counts them.
const KINDS: [Kind; 7] = [
    Kind::Poll,
    Kind::Region,
    Kind::Block,
    Kind::Park,
    Kind::UserTask,
    Kind::TaskLife,
    Kind::AsyncRegion,
];

/// Everything the timeline draws.
#[derive(Debug, Serialize)]
pub(crate) struct PageData<'a> {
    /// The range within which `slices` is whole, ns.
    complete: [u64; 2],
    /// Counter lanes: metric samples.
    counters: Vec<CounterLane>,
    /// The trace's length.
    duration_ns: u64,
    /// The names of the slice kinds, by a slice row's kind index.
    kinds: Vec<&'static str>,
    /// Slice labels, by a slice row's label index.
    labels: Vec<String>,
    /// The lanes drawn, by a slice row's lane index.
    lanes: Vec<LaneRow<'a>>,
    /// Wall-clock Unix ms of the trace's first event, when it has a clock sync.
    origin_wall_ms: Option<f64>,
    /// The slices.
    slices: Vec<SliceRow>,
    /// The incident's trigger, when it falls inside the trace.
    trigger: Option<Trigger<'a>>,
    /// The range the timeline opens on, ns.
    view: [u64; 2],
    /// The findings' windows.
    windows: Vec<WindowRow<'a>>,
}

/// A slice: `[lane, kind, depth, start_ns, dur_ns, label, unfinished]`, indexes into the
/// page data's `lanes`, `kinds` and `labels`.
type SliceRow = (usize, usize, u8, u64, u64, usize, u8);

/// A lane drawn.
#[derive(Debug, Serialize)]
struct LaneRow<'a> {
    /// `thread` or `task`.
    kind: &'static str,
    /// Its label.
    name: &'a str,
    /// Why it was chosen.
    why: String,
}

/// A finding's window.
#[derive(Debug, Serialize)]
struct WindowRow<'a> {
    end_ns: u64,
    rank: usize,
    rule: &'static str,
    severity: &'static str,
    start_ns: u64,
    title: &'a str,
}

/// The incident's trigger on the timeline.
#[derive(Debug, Serialize)]
struct Trigger<'a> {
    at_ns: u64,
    rule: &'a str,
    text: String,
}

/// A metric drawn as a counter lane: its samples, or for counters their rate.
#[derive(Debug, Serialize)]
struct CounterLane {
    name: String,
    /// `[ns, value]`.
    points: Vec<(u64, f64)>,
    /// `s`, `ns`, `B` or empty.
    unit: &'static str,
}

impl Report {
    /// The data the page's script draws.
    pub(crate) fn page_data(&self) -> PageData<'_> {
        let p = &self.profile;
        let mut labels: Vec<String> = Vec::new();
        let mut label_ids: HashMap<Name, usize> = HashMap::new();
        let mut label = |n: Name| -> usize {
            *label_ids.entry(n).or_insert_with(|| {
                labels.push(match n {
                    Name::Str(id) => p.name(id).into_owned(),
                    Name::Block(r, site) => format!(
                        "{} at {}",
                        REASON_NAMES[usize::from(r.min(7))],
                        p.site_name(site)
                    ),
                    Name::Unseen => "(created before the window)".into(),
                    Name::Parked => "parked".into(),
                });
                labels.len() - 1
            })
        };
        let index: HashMap<Lane, usize> = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, l)| (l.lane, i))
            .collect();
        let slices: Vec<SliceRow> = self
            .slices
            .iter()
            .filter_map(|s| {
                let lane = *index.get(&s.lane)?;
                let k = KINDS.iter().position(|k| *k == s.kind).unwrap_or(0);
                Some((
                    lane,
                    k,
                    s.depth,
                    s.start_ns,
                    s.dur_ns,
                    label(s.name),
                    u8::from(s.unfinished),
                ))
            })
            .collect();
        let lanes = self
            .lanes
            .iter()
            .map(|l| {
                let s = l.score;
                LaneRow {
                    kind: match l.lane {
                        Lane::Thread(_) => "thread",
                        Lane::Task(_) => "task",
                    },
                    name: &l.name,
                    why: if s.weight() == 0 {
                        "not active in the findings' windows".to_string()
                    } else {
                        format!(
                            "in the findings' windows: blocked {}, polled {}, in regions and tasks {}",
                            dur(s.blocked_ns),
                            dur(s.polled_ns),
                            dur(s.other_ns)
                        )
                    },
                }
            })
            .collect();
        let windows = self
            .windows
            .iter()
            .map(|w| WindowRow {
                end_ns: w.window_ns.1,
                rank: w.rank,
                rule: w.rule,
                severity: w.severity.as_str(),
                start_ns: w.window_ns.0,
                title: &w.title,
            })
            .collect();
        let trigger = self.incident.as_ref().and_then(|i| {
            let o = self.origin_wall_unix_ns?;
            let d = i.time_unix_ms as i128 * 1_000_000 - o;
            (d >= 0 && d as u64 <= p.duration_ns).then(|| Trigger {
                at_ns: d as u64,
                rule: &i.rule,
                text: format!(
                    "{}: {} against {}",
                    i.rule,
                    metric_value(&i.metric, i.value),
                    metric_value(&i.metric, i.threshold)
                ),
            })
        });
        let view = self
            .windows
            .first()
            .map(|w| pad(w.window_ns, p.duration_ns))
            .unwrap_or((0, p.duration_ns));
        PageData {
            complete: [self.complete_ns.0, self.complete_ns.1],
            counters: self.counter_lanes(),
            duration_ns: p.duration_ns,
            kinds: KINDS.iter().map(|k| k.as_str()).collect(),
            labels,
            lanes,
            origin_wall_ms: self.origin_wall_unix_ns.map(|o| o as f64 / 1e6),
            slices,
            trigger,
            view: [view.0, view.1],
            windows,
        }
    }

    /// Counter lanes: the metrics whose values change, the rule's own first. Of fdr's
    /// histogram series, the interval p99 stands for the rest (the tables list them all).
    fn counter_lanes(&self) -> Vec<CounterLane> {
        let redundant = |n: &str| {
            n.starts_with("fdr_")
                && (n.ends_with("_count")
                    || n.ends_with("_sum")
                    || n.contains("{quantile=\"0.5\"}")
                    || n.contains("{quantile=\"1\"}")
                    || n.ends_with("_bytes_total"))
        };
        let mut counters: Vec<(&String, &MetricSeries)> = self
            .metrics
            .iter()
            .filter(|(n, s)| !redundant(n) && s.points.windows(2).any(|w| w[0].1 != w[1].1))
            .collect();
        let rule_metric = self.incident.as_ref().map(|i| i.metric.as_str());
        counters.sort_by_key(|(n, _)| {
            (
                !rule_metric.is_some_and(|m| !m.is_empty() && n.starts_with(m)),
                !n.starts_with("fdr_"),
                n.to_string(),
            )
        });
        counters.truncate(MAX_COUNTER_LANES);
        counters
            .into_iter()
            .map(|(n, s)| {
                let rate = n.ends_with("_total") || n.ends_with("_count") || n.ends_with("_sum");
                let points = if rate {
                    s.points
                        .windows(2)
                        .filter(|w| w[1].0 > w[0].0)
                        .map(|w| (w[1].0, (w[1].1 - w[0].1) / ((w[1].0 - w[0].0) as f64 / 1e9)))
                        .collect()
                } else {
                    s.points.clone()
                };
                CounterLane {
                    name: if rate {
                        format!("{n} per second")
                    } else {
                        n.clone()
                    },
                    points,
                    unit: if n.contains("_seconds") && !n.ends_with("_count") {
                        "s"
                    } else if n.ends_with("_ns") {
                        "ns"
                    } else if n.contains("_bytes") {
                        "B"
                    } else {
                        ""
                    },
                }
            })
            .collect()
    }
}
