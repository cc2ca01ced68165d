//! Text and JSON views of a [`Profile`]: `fdr tasks`, `regions`, `blocking`, `sched`.
//!
//! Each JSON view is an object holding its rows and `truncated`, the notes of
//! [`Profile::truncated`]; each text view ends with those notes, one `truncated: ...` line
//! each.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::limits::{notes_json, notes_text};
use crate::profile::{Profile, REASON_NAMES, SpanStats};
use crate::text::{self, dur};

/// A value as JSON; the views' rows are plain data, so this cannot fail.
fn to_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("rows of numbers and strings serialize")
}

/// Count, total and quantiles of spans (tasks' lifetimes, regions, blocks).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SpanRow {
    /// Spans finished.
    pub count: u64,
    /// Their total duration.
    pub total_ns: u64,
    /// Median duration.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Longest.
    pub max_ns: u64,
}

impl SpanRow {
    fn of(s: &SpanStats) -> SpanRow {
        SpanRow {
            count: s.hist.count(),
            total_ns: s.hist.sum(),
            p50_ns: s.hist.p50(),
            p99_ns: s.hist.p99(),
            max_ns: s.hist.max(),
        }
    }
}

/// One task name's row of `fdr tasks --json`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow<'a> {
    /// The task name.
    pub name: Cow<'a, str>,
    /// `async` or `user`.
    pub kind: &'static str,
    /// Where it was spawned.
    pub spawn_site: Cow<'a, str>,
    /// Its finished instances.
    pub finished: SpanRow,
    /// Instances alive at the window's end.
    pub alive_at_end: u64,
    /// Polls.
    pub polls: u64,
    /// Time polled.
    pub running_ns: u64,
    /// Time woken but not yet polled.
    pub sched_wait_ns: u64,
    /// Time blocked, by reason (only reasons with time).
    pub blocked_ns: BTreeMap<&'static str, u64>,
    /// Time awaiting.
    pub idle_ns: u64,
    /// Its long polls split into on-CPU, waiting for a CPU and off-CPU (the OS view).
    pub long_polls_split: Value,
    /// Its awaits by waker class.
    pub awaits: Value,
}

/// One region name's row of `fdr regions --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RegionRow<'a> {
    /// The region name.
    pub name: Cow<'a, str>,
    /// Its spans.
    #[serde(flatten)]
    pub spans: SpanRow,
}

/// One blocking site's row of `fdr blocking --json`.
#[derive(Debug, Clone, Serialize)]
pub struct BlockingRow<'a> {
    /// The site, `file:line`.
    pub site: Cow<'a, str>,
    /// Why it blocked.
    pub reason: &'static str,
    /// Its blocks.
    #[serde(flatten)]
    pub spans: SpanRow,
    /// Its long blocks split into on-CPU, waiting for a CPU and off-CPU (the OS view).
    pub long_blocks_split: Value,
}

/// A distribution in `fdr sched --json`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Distribution {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: u64,
}

impl Distribution {
    fn of(h: &crate::hist::Histogram) -> Distribution {
        Distribution {
            count: h.count(),
            p50_ns: h.p50(),
            p90_ns: h.quantile(0.9),
            p99_ns: h.p99(),
            p999_ns: h.quantile(0.999),
            max_ns: h.max(),
            mean_ns: h.mean(),
        }
    }
}

/// Polls at least [`LONG_POLL_NS`](crate::profile::LONG_POLL_NS) long.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LongPolls {
    /// The threshold.
    pub threshold_ns: u64,
    /// How many.
    pub count: u64,
    /// Their total duration.
    pub total_ns: u64,
}

/// One of the longest polls in `fdr sched --json`.
#[derive(Debug, Clone, Serialize)]
pub struct LongestPoll<'a> {
    /// Its duration.
    pub dur_ns: u64,
    /// When it started (ns since the trace's first event).
    pub start_ns: u64,
    /// The task's id.
    pub task: u64,
    /// The task's name.
    pub name: Cow<'a, str>,
    /// Where the task was spawned.
    pub spawn_site: Cow<'a, str>,
    /// The thread that polled it.
    pub thread: u32,
}

/// `fdr sched --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Sched<'a> {
    /// From a wake to the poll it caused.
    pub sched_latency: Distribution,
    /// Poll durations.
    pub poll_duration: Distribution,
    /// The long polls.
    pub long_polls: LongPolls,
    /// The longest polls, longest first.
    pub longest_polls: Vec<LongestPoll<'a>>,
    /// What was left out past a bound.
    pub truncated: Value,
}

fn span_cells(s: &SpanStats) -> Vec<String> {
    vec![
        s.hist.count().to_string(),
        dur(s.hist.sum()),
        dur(s.hist.p50()),
        dur(s.hist.p99()),
        dur(s.hist.max()),
    ]
}

/// `{"tasks": [per task name, most total time first], "truncated": [...]}`.
pub fn tasks_json(p: &Profile) -> Value {
    #[derive(Serialize)]
    struct Tasks<'a> {
        window: Value,
        tasks: Vec<TaskRow<'a>>,
        truncated: Value,
    }
    to_json(&Tasks {
        window: p.window.to_json(),
        tasks: task_rows(p),
        truncated: notes_json(&p.truncated()),
    })
}

/// Per task name, most total time first.
pub fn task_rows(p: &Profile) -> Vec<TaskRow<'_>> {
    let mut rows: Vec<_> = p.tasks.iter().collect();
    rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.lifetime.hist.sum()));
    let awaits = p.waits.by_class();
    rows.into_iter()
        .map(|((kind, name), s)| TaskRow {
            name: p.name(*name),
            kind: kind.as_str(),
            spawn_site: p.site_name(s.site),
            finished: SpanRow::of(&s.lifetime),
            alive_at_end: s.alive_at_end,
            polls: s.polls,
            running_ns: s.running_ns,
            sched_wait_ns: s.sched_wait_ns,
            blocked_ns: REASON_NAMES
                .iter()
                .zip(s.blocked_ns)
                .filter(|(_, v)| *v > 0)
                .map(|(k, v)| (*k, v))
                .collect(),
            idle_ns: s.idle_ns,
            long_polls_split: os_split_json(p, *kind, *name),
            awaits: crate::waits::class_json(&awaits, *name),
        })
        .collect()
}

/// Per task name, as a text table.
pub fn tasks_text(p: &Profile) -> String {
    let mut out = format!("{}\n", p.window);
    let mut rows: Vec<_> = p.tasks.iter().collect();
    rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.lifetime.hist.sum()));
    let awaits = p.waits.by_class();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|((kind, name), s)| {
            let known = s
                .running_ns
                .saturating_add(s.sched_wait_ns)
                .saturating_add(s.blocked_total_ns())
                .saturating_add(s.idle_ns);
            let share = |x: u64| {
                if known == 0 {
                    "-".to_string()
                } else {
                    text::pct(x as f64 / known as f64)
                }
            };
            let mut blocked: Vec<String> = REASON_NAMES
                .iter()
                .zip(s.blocked_ns)
                .filter(|(_, v)| *v > 0)
                .map(|(k, v)| format!("{k} {}", share(v)))
                .collect();
            if blocked.is_empty() {
                blocked.push("-".into());
            }
            let mut row = vec![p.name(*name).into_owned(), kind.as_str().into()];
            row.extend(span_cells(&s.lifetime));
            row.extend([
                s.alive_at_end.to_string(),
                share(s.running_ns),
                share(s.sched_wait_ns),
                blocked.join(", "),
                share(s.idle_ns),
                os_split_cell(p, *kind, *name),
                crate::waits::class_cell(&awaits, *name),
            ]);
            row
        })
        .collect();
    text::table(
        &mut out,
        &[
            "task",
            "kind",
            "count",
            "total",
            "p50",
            "p99",
            "max",
            "alive",
            "running",
            "sched-wait",
            "blocked",
            "awaiting",
            "long polls: on-CPU / waiting for CPU / off-CPU",
            "awaits p50/p99 by waker",
        ],
        &rows,
    );
    if p.filtered_out > 0 {
        out.push_str(&format!(
            "({} tasks did not match the filters)\n",
            p.filtered_out
        ));
    }
    notes_text(&mut out, &p.truncated());
    out
}

fn os_split(
    p: &Profile,
    kind: crate::profile::TaskKind,
    name: fdr_format::StrId,
) -> (crate::osview::SplitTotals, crate::osview::SplitTotals) {
    match kind {
        crate::profile::TaskKind::Async => p.os.poll_split(name).unwrap_or_default(),
        crate::profile::TaskKind::User => Default::default(),
    }
}

fn os_split_cell(p: &Profile, kind: crate::profile::TaskKind, name: fdr_format::StrId) -> String {
    let (m, e) = os_split(p, kind, name);
    p.os.cell(m, e)
}

fn os_split_json(p: &Profile, kind: crate::profile::TaskKind, name: fdr_format::StrId) -> Value {
    let (m, e) = os_split(p, kind, name);
    p.os.json(m, e)
}

/// `{"regions": [per region name, most total time first], "truncated": [...]}`.
pub fn regions_json(p: &Profile) -> Value {
    #[derive(Serialize)]
    struct Regions<'a> {
        regions: Vec<RegionRow<'a>>,
        truncated: Value,
    }
    to_json(&Regions {
        regions: region_rows(p),
        truncated: notes_json(&p.truncated()),
    })
}

/// Per region name, most total time first.
pub fn region_rows(p: &Profile) -> Vec<RegionRow<'_>> {
    let mut rows: Vec<_> = p.regions.iter().collect();
    rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.hist.sum()));
    rows.into_iter()
        .map(|(name, s)| RegionRow {
            name: p.name(*name),
            spans: SpanRow::of(s),
        })
        .collect()
}

/// Per region name, as a text table.
pub fn regions_text(p: &Profile) -> String {
    let mut out = String::new();
    let mut rows: Vec<_> = p.regions.iter().collect();
    rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.hist.sum()));
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, s)| {
            let mut r = vec![p.name(*name).into_owned()];
            r.extend(span_cells(s));
            r
        })
        .collect();
    text::table(
        &mut out,
        &["region", "count", "total", "p50", "p99", "max"],
        &rows,
    );
    notes_text(&mut out, &p.truncated());
    out
}

/// `{"blocking": [top `n` blocking sites by cumulative blocked time], "long_polls_by_stack":
/// {...}, "truncated": [...]}`: the sites, then the long polls' top user frames (the OS view).
pub fn blocking_json(p: &Profile, n: usize) -> Value {
    #[derive(Serialize)]
    struct Blocking<'a> {
        blocking: Vec<BlockingRow<'a>>,
        long_polls_by_stack: Value,
        truncated: Value,
    }
    to_json(&Blocking {
        blocking: blocking_rows(p, n),
        long_polls_by_stack: p.os.frames_json(n),
        truncated: notes_json(&p.truncated()),
    })
}

/// Blocking sites by cumulative blocked time, top `n`.
pub fn blocking_rows(p: &Profile, n: usize) -> Vec<BlockingRow<'_>> {
    let mut rows: Vec<_> = p.blocking.iter().collect();
    rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.hist.sum()));
    rows.into_iter()
        .take(n)
        .map(|((site, r), s)| {
            let m =
                p.os.measured
                    .get(&crate::osview::ScopeKey::Block(*site, *r))
                    .copied()
                    .unwrap_or_default();
            BlockingRow {
                site: p.site_name(*site),
                reason: REASON_NAMES[*r],
                spans: SpanRow::of(s),
                long_blocks_split: p.os.json(m, Default::default()),
            }
        })
        .collect()
}

/// Blocking sites as a text table.
pub fn blocking_text(p: &Profile, n: usize) -> String {
    let mut out = String::new();
    let mut rows: Vec<_> = p.blocking.iter().collect();
    rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.hist.sum()));
    let total = rows
        .iter()
        .fold(0u64, |a, (_, s)| a.saturating_add(s.hist.sum()));
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .take(n)
        .map(|((site, r), s)| {
            let mut row = vec![p.site_name(*site).into_owned(), REASON_NAMES[*r].into()];
            row.extend(span_cells(s));
            row.push(if total == 0 {
                "-".into()
            } else {
                text::pct(s.hist.sum() as f64 / total as f64)
            });
            let m =
                p.os.measured
                    .get(&crate::osview::ScopeKey::Block(*site, *r))
                    .copied()
                    .unwrap_or_default();
            row.push(p.os.cell(m, Default::default()));
            row
        })
        .collect();
    text::table(
        &mut out,
        &[
            "site",
            "reason",
            "count",
            "total",
            "p50",
            "p99",
            "max",
            "share",
            "long blocks: on-CPU / waiting for CPU / off-CPU",
        ],
        &rows,
    );
    out.push_str(&p.os.frames_text(n));
    notes_text(&mut out, &p.truncated());
    out
}

/// Scheduling latency, poll durations, longest polls.
pub fn sched_json(p: &Profile) -> Value {
    to_json(&Sched {
        sched_latency: Distribution::of(&p.sched_latency),
        poll_duration: Distribution::of(&p.poll_duration),
        long_polls: LongPolls {
            threshold_ns: crate::profile::LONG_POLL_NS,
            count: p.long_polls.0,
            total_ns: p.long_polls.1,
        },
        longest_polls: p
            .longest_polls
            .iter()
            .map(|x| LongestPoll {
                dur_ns: x.dur_ns,
                start_ns: x.start_ns,
                task: x.task.0,
                name: p.name(x.name),
                spawn_site: p.site_name(x.site),
                thread: x.thread.0,
            })
            .collect(),
        truncated: notes_json(&p.truncated()),
    })
}

/// The window a profile covers, as a line: its length and, when the trace has a clock
/// sync, its wall-clock start and end (UTC); relative times (`+1.20s`) count from its start.
pub fn window_text(p: &Profile) -> String {
    match p.origin_wall_unix_ns {
        Some(w) => format!(
            "window {} from {} to {} (times +N are from its start)\n",
            dur(p.duration_ns),
            text::wall(w),
            text::wall(w.saturating_add(i128::from(p.duration_ns)))
        ),
        None => format!(
            "window {} (no clock sync: no wall-clock time)\n",
            dur(p.duration_ns)
        ),
    }
}

/// Scheduling as text.
pub fn sched_text(p: &Profile) -> String {
    let mut out = String::new();
    let row = |name: &str, h: &crate::hist::Histogram| {
        vec![
            name.to_string(),
            h.count().to_string(),
            dur(h.p50()),
            dur(h.quantile(0.9)),
            dur(h.p99()),
            dur(h.quantile(0.999)),
            dur(h.max()),
        ]
    };
    text::table(
        &mut out,
        &["distribution", "count", "p50", "p90", "p99", "p99.9", "max"],
        &[
            row("sched latency (wake -> poll)", &p.sched_latency),
            row("poll duration", &p.poll_duration),
        ],
    );
    out.push_str(&format!(
        "\npolls >= {}: {} ({} in total)\n\nlongest polls\n",
        dur(crate::profile::LONG_POLL_NS),
        p.long_polls.0,
        dur(p.long_polls.1)
    ));
    let rows: Vec<Vec<String>> = p
        .longest_polls
        .iter()
        .map(|x| {
            vec![
                dur(x.dur_ns),
                text::at(x.start_ns, p.origin_wall_unix_ns),
                p.name(x.name).into_owned(),
                x.task.0.to_string(),
                p.site_name(x.site).into_owned(),
                p.thread_name(x.thread).into_owned(),
            ]
        })
        .collect();
    text::table(
        &mut out,
        &["duration", "at", "task", "id", "spawn site", "thread"],
        &rows,
    );
    notes_text(&mut out, &p.truncated());
    out
}

/// A thread's name (cut to [`text::MAX_SHOWN_BYTES`]), or `thread N`.
pub fn thread_name(p: &Profile, t: fdr_format::ThreadId) -> String {
    p.thread_name(t).into_owned()
}
