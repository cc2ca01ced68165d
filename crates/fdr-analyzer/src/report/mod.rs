//! `fdr report -o report.html`: an incident view on one self-contained HTML page (no
//! network fetches).
//!
//! At the top, the trigger (the incident's sidecar: rule, value, threshold, time) and the
//! trace's wall-clock span; then the findings, ranked, each with its time window; then the
//! timeline, opened on the top finding's window, which is marked (as every finding's is)
//! over lanes chosen by the findings: the threads and tasks with the most time blocked,
//! polled or running inside the findings' windows, not the busiest ones of the whole
//! trace; and the metric samples of the trace as counter lanes. The timeline zooms (wheel,
//! buttons, keys) and pans (drag); every slice of its lanes is in the page (within
//! [`timeline::MAX_REPORT_SLICES`], kept nearest the findings) and reachable: slices
//! narrower than a pixel are drawn as one pixel that says how many it holds and zooms in
//! on a click. Then tables with named columns and units.
//!
//! A report reads its trace three times ([`Report::from_file`], [`Report::from_slice`]):
//! the profile and diagnosis, the lanes' scores inside the findings' windows, the slices
//! of the chosen lanes.
//!
//! When the page has drawn the timeline it sets `document.title` to `fdr report: N lanes`
//! and marks `#fdr-status` with `data-ok="1"`; any script error is written into
//! `#fdr-errors`, so a headless browser's DOM dump shows whether the page rendered cleanly.
//! Each finding's window is an SVG `rect.fwin` with `data-rule`, `data-rank` and its
//! window in `data-start-ns`/`data-end-ns`; `#view=A,B` (ns) in the URL opens that range.

pub mod incident;
mod os;
mod page_data;
pub mod timeline;

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use crate::diagnose::{Diagnosis, RuleOutcome, Severity, diagnose};
use crate::error::AnalyzeError;
use crate::profile::{Profile, ProfileOptions, REASON_NAMES, TaskKind};
use crate::stream::{ReadOptions, ReadOutcome, Visitor, read_file, read_slice};
use crate::text::{dur, pct};

pub use incident::{Incident, SidecarError};
pub use timeline::{Kind, Lane, LaneScore, MetricSeries, Slice};

use timeline::{Keep, MAX_TASK_LANES, MAX_THREAD_LANES, Meta, Name, Scores, Slicer};

/// Findings whose windows choose the lanes and are marked (the top ones with a window).
const MAX_FOCUS_FINDINGS: usize = 3;
/// Counter lanes drawn at most.
const MAX_COUNTER_LANES: usize = 8;

/// `s` with `&`, `<`, `>` and `"` written as entities (borrowed when it has none).
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    let special = |b: &u8| matches!(b, b'&' | b'<' | b'>' | b'"');
    let Some(first) = s.bytes().position(|b| special(&b)) else {
        return std::borrow::Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    // The special characters are ASCII: every cut between runs is a character boundary.
    let mut rest = &s[first..];
    while let Some(at) = rest.bytes().position(|b| special(&b)) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => "&quot;",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// A chosen lane: where it is, its label, why it was chosen.
#[derive(Debug, Clone)]
pub struct ChosenLane {
    /// The lane.
    pub lane: Lane,
    /// Its label (thread name, `task ID name`).
    pub name: String,
    /// Its time inside the findings' windows.
    pub score: LaneScore,
}

/// A finding's window, marked on the timeline.
#[derive(Debug, Clone)]
pub struct MarkedWindow {
    /// The finding's rank (1: the top one).
    pub rank: usize,
    /// Its rule.
    pub rule: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// Its title.
    pub title: String,
    /// Its window, ns since the trace's first event.
    pub window_ns: (u64, u64),
}

/// Everything the page shows, from one trace.
#[derive(Debug)]
pub struct Report {
    /// The profile (tables, findings' numbers).
    pub profile: Profile,
    /// The findings.
    pub diagnosis: Diagnosis,
    /// The incident's sidecar, when there is one.
    pub incident: Option<Incident>,
    /// Wall-clock Unix ns of the trace's first event, when it has a clock sync.
    pub origin_wall_unix_ns: Option<i128>,
    /// The findings' windows marked on the timeline.
    pub windows: Vec<MarkedWindow>,
    /// The lanes drawn.
    pub lanes: Vec<ChosenLane>,
    /// Every slice of those lanes within `complete_ns`, by lane and start.
    pub slices: Vec<Slice>,
    /// The range within which `slices` is whole.
    pub complete_ns: (u64, u64),
    /// Slices of the drawn lanes outside `complete_ns`, not in the page.
    pub slices_left_out: u64,
    /// Metric samples by name.
    pub metrics: std::collections::BTreeMap<String, MetricSeries>,
    /// Metric samples of names past the report's bound.
    pub metrics_left_out: u64,
    /// Scopes (polls, regions, blocks, tasks) the timeline could not follow: nested past
    /// its depth, open past the memory all open scopes share, or past its bound of live
    /// tasks.
    pub untracked_scopes: u64,
}

impl Report {
    /// The report of the trace at `path`, with its incident's sidecar if given.
    pub fn from_file(
        path: &Path,
        incident: Option<Incident>,
    ) -> Result<(Report, ReadOutcome), AnalyzeError> {
        Report::build(
            &mut |v: &mut dyn Visitor| read_file(path, v, ReadOptions::default()),
            incident,
        )
    }

    /// The report of a trace held in memory.
    pub fn from_slice(
        bytes: &[u8],
        incident: Option<Incident>,
    ) -> Result<(Report, ReadOutcome), AnalyzeError> {
        Report::build(
            &mut |v: &mut dyn Visitor| read_slice(bytes, v, ReadOptions::default()),
            incident,
        )
    }

    /// The report of a trace `read` delivers (each call reads it whole again).
    pub fn build(
        read: &mut dyn FnMut(&mut dyn Visitor) -> Result<ReadOutcome, AnalyzeError>,
        incident: Option<Incident>,
    ) -> Result<(Report, ReadOutcome), AnalyzeError> {
        let mut first = (Profile::new(ProfileOptions::default()), Meta::default());
        let outcome = read(&mut first)?;
        let (profile, meta) = first;
        let diagnosis = diagnose(&profile);
        let duration = profile.duration_ns;

        // The windows: the top findings that have one, those above info first.
        let mut windows = Vec::new();
        let with_window: Vec<_> = diagnosis
            .findings()
            .enumerate()
            .filter_map(|(i, f)| f.window_ns.map(|w| (i + 1, f, w)))
            .collect();
        let serious = with_window
            .iter()
            .filter(|(_, f, _)| f.severity > Severity::Info && f.score > 0.0);
        let chosen: Vec<_> = if serious.clone().count() > 0 {
            serious.take(MAX_FOCUS_FINDINGS).collect()
        } else {
            with_window.iter().take(1).collect()
        };
        for (rank, f, (a, b)) in chosen {
            let (a, b) = ((*a).min(duration), (*b).min(duration));
            windows.push(MarkedWindow {
                rank: *rank,
                rule: f.rule,
                severity: f.severity,
                title: f.title.clone(),
                window_ns: (a, b.max(a)),
            });
        }
        let focus: Vec<(u64, u64)> = if windows.is_empty() {
            vec![(0, duration)]
        } else {
            windows
                .iter()
                .map(|w| {
                    // A window of an instant still counts what overlaps it.
                    let (a, b) = w.window_ns;
                    (a, b.max(a.saturating_add(1)))
                })
                .collect()
        };

        // Second pass: every lane's time inside the windows.
        let mut scoring = Slicer::new(Scores {
            windows: focus.clone(),
            lanes: HashMap::new(),
        });
        read(&mut scoring)?;
        let lanes = choose_lanes(&profile, &scoring.sink.lanes);

        // Third pass: every slice of the chosen lanes, nearest the top window first.
        let center = focus.first().map_or(duration / 2, |&(a, b)| a / 2 + b / 2);
        let mut keep = Slicer::new(Keep {
            lanes: lanes.iter().map(|l| l.lane).collect(),
            center,
            radius: u64::MAX,
            slices: Vec::new(),
            left_out: 0,
            overflowed: false,
        });
        read(&mut keep)?;
        let untracked_scopes = keep.untracked;
        let k = keep.sink;
        let mut slices = k.slices;
        slices.sort_by_key(|s| (s.lane, s.start_ns, s.depth));
        let mut lanes = lanes;
        for l in &mut lanes {
            if let Lane::Task(t) = l.lane {
                let named = slices
                    .iter()
                    .find_map(|s| match (s.lane == l.lane, s.name) {
                        (true, Name::Str(n)) if matches!(s.kind, Kind::TaskLife | Kind::Poll) => {
                            Some(profile.name(n).into_owned())
                        }
                        _ => None,
                    });
                l.name = match named {
                    Some(n) => format!("task {} {n}", t.0),
                    None => format!("task {} (created before the window)", t.0),
                };
            }
        }
        let complete_ns = if k.overflowed {
            (center, center)
        } else if k.radius == u64::MAX {
            (0, duration)
        } else {
            (
                center.saturating_sub(k.radius),
                center.saturating_add(k.radius).min(duration),
            )
        };
        Ok((
            Report {
                profile,
                diagnosis,
                incident,
                origin_wall_unix_ns: meta.origin_wall_unix_ns,
                windows,
                lanes,
                slices,
                complete_ns,
                slices_left_out: k.left_out,
                metrics: meta.metrics,
                metrics_left_out: meta.metrics_left_out,
                untracked_scopes,
            },
            outcome,
        ))
    }

    /// The page.
    pub fn render(&self, title: &str) -> String {
        let mut out = String::with_capacity(256 << 10);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n<title>fdr report (loading)</title>\n<style>{}</style></head><body>\n",
            include_str!("page.css")
        );
        let _ = writeln!(out, "<h1>fdr report: {}</h1>", esc(title));
        self.header(&mut out);
        self.findings(&mut out);
        out.push_str("<div id=\"fdr-status\" data-ok=\"0\">timeline not drawn (scripts disabled?)</div>\n<pre id=\"fdr-errors\"></pre>\n");
        out.push_str("<h2>Timeline</h2>\n<div class=\"controls\"><button id=\"zin\">zoom in</button> <button id=\"zout\">zoom out</button> <button id=\"ztop\">top finding</button> <button id=\"zall\">whole trace</button> <span class=\"muted\">wheel: zoom at the pointer; drag: pan; keys W S A D; a narrow mark holds several slices: click it to zoom in</span> <span id=\"viewinfo\"></span></div>\n<div class=\"legend\" id=\"legend\"></div>\n<div id=\"timeline\"></div>\n<div id=\"detail\" class=\"muted\">point at a slice for its details</div>\n");
        self.coverage(&mut out);
        self.tables(&mut out);
        let data = serde_json::to_string(&self.page_data())
            .expect("rows of numbers and strings serialize")
            .replace("</", "<\\/");
        let _ = write!(
            out,
            "<script type=\"application/json\" id=\"fdr-data\">{data}</script>\n<script>{}</script>\n</body></html>\n",
            include_str!("page.js")
        );
        out
    }

    fn wall(&self, ns: u64) -> Option<String> {
        self.origin_wall_unix_ns
            .map(|o| utc(o.saturating_add(ns as i128)))
    }

    fn at(&self, ns: u64) -> String {
        match self.wall(ns) {
            Some(w) => format!("{w} (+{})", dur(ns)),
            None => format!("+{}", dur(ns)),
        }
    }

    fn header(&self, out: &mut String) {
        let p = &self.profile;
        if let Some(i) = &self.incident {
            let trig_ns = i.time_unix_ms as i128 * 1_000_000;
            let rel = self
                .origin_wall_unix_ns
                .map(|o| trig_ns - o)
                .filter(|d| *d >= 0 && *d as u64 <= p.duration_ns.saturating_add(60_000_000_000));
            let _ = writeln!(
                out,
                "<div class=\"trigger\" id=\"trigger\"><b>Trigger: rule <code>{}</code> fired at {}</b>{}<br>{}<br>value <b>{}</b> against threshold <b>{}</b> on <code>{}</code>{}<br><span class=\"muted\">incident {} on host {} (pid {}{})</span></div>",
                esc(&i.rule),
                esc(&utc(trig_ns)),
                rel.map_or(String::new(), |d| format!(
                    ", {} into the trace",
                    dur(d as u64)
                )),
                esc(&i.condition),
                esc(&metric_value(&i.metric, i.value)),
                esc(&metric_value(&i.metric, i.threshold)),
                esc(&i.metric),
                if i.values.len() > 1 {
                    format!(
                        "; every rule at the trigger: {}",
                        esc(&i
                            .values
                            .iter()
                            .map(|(r, v)| format!("{r} = {v}"))
                            .collect::<Vec<_>>()
                            .join(", "))
                    )
                } else {
                    String::new()
                },
                esc(&i.id),
                esc(&i.host),
                i.pid,
                i.service_version
                    .as_deref()
                    .map_or(String::new(), |v| format!(", version {}", esc(v)))
            );
        }
        let span = match (self.wall(0), self.wall(p.duration_ns)) {
            (Some(a), Some(b)) => format!("from {a} to {b}"),
            _ => "wall clock unknown (the trace has no clock sync)".into(),
        };
        let events = p.kinds.iter().fold(0u64, |a, &b| a.saturating_add(b));
        let _ = writeln!(
            out,
            "<p class=\"span\">Trace: {} {}; {} events on {} threads; {} async tasks created, {} dropped; {} events lost, {} batches missing.</p>",
            dur(p.duration_ns),
            esc(&span),
            events,
            p.threads.len(),
            p.created_dropped.0,
            p.created_dropped.1,
            p.loss.values().fold(0u64, |a, l| a.saturating_add(l.1)),
            p.missing_batches
        );
        let truncated = p.truncated();
        if !truncated.is_empty() {
            out.push_str("<div class=\"finding warning\"><b>Truncated</b>: this trace went past the analyzer's memory limits; what is below leaves out:<ul>");
            for n in &truncated {
                let _ = write!(out, "<li>{}</li>", esc(&n.note));
            }
            out.push_str("</ul></div>\n");
        }
    }

    fn findings(&self, out: &mut String) {
        out.push_str("<h2>Findings</h2>\n");
        let mut na = Vec::new();
        for (i, o) in self.diagnosis.outcomes.iter().enumerate() {
            match o {
                RuleOutcome::Finding(f) => {
                    let window = match f.window_ns {
                        Some((a, b)) => format!(
                            "<p class=\"win\">window: {} to {} ({}) <a href=\"#\" class=\"show\" data-rank=\"{}\" data-start-ns=\"{a}\" data-end-ns=\"{b}\">show on the timeline</a></p>",
                            esc(&self.at(a)),
                            esc(&self.at(b)),
                            dur(b.saturating_sub(a)),
                            i + 1
                        ),
                        None => String::new(),
                    };
                    if f.severity == Severity::Info {
                        // Info: one line, its evidence folded.
                        let _ = writeln!(
                            out,
                            "<details class=\"finding info\" data-rule=\"{}\"><summary>{}. [info {:.0}] {}: {}</summary><ul>{}</ul>{window}</details>",
                            f.rule,
                            i + 1,
                            f.score,
                            f.rule,
                            esc(&f.title),
                            f.evidence
                                .iter()
                                .map(|e| format!("<li>{}</li>", esc(e)))
                                .collect::<String>(),
                        );
                        continue;
                    }
                    let _ = writeln!(
                        out,
                        "<div class=\"finding {}\" data-rule=\"{}\"><b>{}. [{} {:.0}] {}</b>: {}<ul>{}</ul>{window}{}</div>",
                        f.severity.as_str(),
                        f.rule,
                        i + 1,
                        f.severity.as_str(),
                        f.score,
                        f.rule,
                        esc(&f.title),
                        f.evidence
                            .iter()
                            .map(|e| format!("<li>{}</li>", esc(e)))
                            .collect::<String>(),
                        if f.severity > Severity::Info {
                            format!("<p><b>Fix:</b> {}</p>", esc(&f.fix))
                        } else {
                            String::new()
                        }
                    );
                }
                RuleOutcome::NotApplicable { rule, needs } => {
                    na.push(format!(
                        "{rule} (no {} events)",
                        crate::diagnose::kind_names(needs)
                    ));
                }
            }
        }
        if !na.is_empty() {
            let _ = writeln!(
                out,
                "<p class=\"muted\">Not applicable: {}.</p>",
                esc(&na.join("; "))
            );
        }
    }

    fn coverage(&self, out: &mut String) {
        let (a, b) = self.complete_ns;
        if self.untracked_scopes > 0 || self.metrics_left_out > 0 {
            let _ = writeln!(
                out,
                "<p class=\"muted\">Not drawn: {} scopes nested deeper than the timeline follows, begun while {} MiB of scopes were open, or begun while it followed {} tasks; {} samples of metrics past the first {}.</p>",
                self.untracked_scopes,
                crate::limits::MAX_OPEN_SPAN_BYTES >> 20,
                crate::limits::MAX_LIVE_TASKS,
                self.metrics_left_out,
                timeline::MAX_METRICS
            );
        }
        if self.slices_left_out > 0 && a == b {
            let _ = writeln!(
                out,
                "<p class=\"muted\">More than {} slices of these lanes cross {}: the page holds {} of them; {} are not in this page.</p>",
                timeline::MAX_REPORT_SLICES,
                esc(&self.at(a)),
                self.slices.len(),
                self.slices_left_out
            );
        } else if self.slices_left_out > 0 {
            let _ = writeln!(
                out,
                "<p class=\"muted\">The lanes' slices are all here from {} to {}; {} slices of these lanes outside that range are not in this page (at most {} are kept, nearest the top finding).</p>",
                esc(&self.at(a)),
                esc(&self.at(b)),
                self.slices_left_out,
                timeline::MAX_REPORT_SLICES
            );
        }
        let threads = self
            .lanes
            .iter()
            .filter(|l| matches!(l.lane, Lane::Thread(_)))
            .count();
        if self.profile.threads.len() > threads {
            let _ = writeln!(
                out,
                "<p class=\"muted\">{} of {} threads drawn: those with the most time blocked, polled or running inside the findings' windows.</p>",
                threads,
                self.profile.threads.len()
            );
        }
    }

    fn tables(&self, out: &mut String) {
        let p = &self.profile;
        // Tasks, most total time first.
        let mut tasks: Vec<_> = p.tasks.iter().collect();
        tasks.sort_by_key(|(_, s)| std::cmp::Reverse(s.lifetime.hist.sum()));
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .take(50)
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
                        format!("{} ({})", dur(x), pct(x as f64 / known as f64))
                    }
                };
                let blocked: Vec<String> = REASON_NAMES
                    .iter()
                    .zip(s.blocked_ns)
                    .filter(|(_, v)| *v > 0)
                    .map(|(k, v)| format!("{k} {}", dur(v)))
                    .collect();
                vec![
                    p.name(*name).into_owned(),
                    match kind {
                        TaskKind::Async => "async".into(),
                        TaskKind::User => "user".into(),
                    },
                    s.lifetime.hist.count().to_string(),
                    dur(s.lifetime.hist.p50()),
                    dur(s.lifetime.hist.p99()),
                    dur(s.lifetime.hist.max()),
                    s.alive_at_end.to_string(),
                    share(s.running_ns),
                    share(s.sched_wait_ns),
                    if blocked.is_empty() {
                        "-".into()
                    } else {
                        blocked.join(", ")
                    },
                    share(s.idle_ns),
                    s.polls.to_string(),
                    p.site_name(s.site).into_owned(),
                ]
            })
            .collect();
        table(
            out,
            "Tasks",
            "per task name, most total time first; lifetimes of the tasks that finished in the trace",
            &[
                "task",
                "kind",
                "finished",
                "lifetime p50",
                "lifetime p99",
                "lifetime max",
                "alive at end",
                "running",
                "waiting to run",
                "blocked",
                "awaiting",
                "polls",
                "spawn site",
            ],
            &rows,
        );
        let mut regions: Vec<_> = p.regions.iter().collect();
        regions.sort_by_key(|(_, s)| std::cmp::Reverse(s.hist.sum()));
        let rows: Vec<Vec<String>> = regions
            .iter()
            .take(50)
            .map(|(n, s)| {
                vec![
                    p.name(**n).into_owned(),
                    s.hist.count().to_string(),
                    dur(s.hist.sum()),
                    dur(s.hist.p50()),
                    dur(s.hist.p99()),
                    dur(s.hist.max()),
                ]
            })
            .collect();
        table(
            out,
            "Regions",
            "per region name, most total time first",
            &["region", "count", "total time", "p50", "p99", "max"],
            &rows,
        );
        let mut blocking: Vec<_> = p.blocking.iter().collect();
        blocking.sort_by_key(|(_, s)| std::cmp::Reverse(s.hist.sum()));
        let total = blocking
            .iter()
            .fold(0u64, |a, (_, s)| a.saturating_add(s.hist.sum()));
        let rows: Vec<Vec<String>> = blocking
            .iter()
            .take(20)
            .map(|((site, r), s)| {
                vec![
                    p.site_name(*site).into_owned(),
                    REASON_NAMES[*r].into(),
                    s.hist.count().to_string(),
                    dur(s.hist.sum()),
                    if total == 0 {
                        "-".into()
                    } else {
                        pct(s.hist.sum() as f64 / total as f64)
                    },
                    dur(s.hist.p50()),
                    dur(s.hist.p99()),
                    dur(s.hist.max()),
                ]
            })
            .collect();
        table(
            out,
            "Blocking sites",
            "where threads blocked (lock waits, blocking calls), most total time first",
            &[
                "site",
                "reason",
                "waits",
                "total time",
                "share",
                "p50",
                "p99",
                "max",
            ],
            &rows,
        );
        let h = |name: &str, h: &crate::hist::Histogram| {
            vec![
                name.to_string(),
                h.count().to_string(),
                dur(h.p50()),
                dur(h.quantile(0.9)),
                dur(h.p99()),
                dur(h.max()),
            ]
        };
        table(
            out,
            "Scheduling",
            "",
            &["distribution", "count", "p50", "p90", "p99", "max"],
            &[
                h("scheduling latency (wake to poll)", &p.sched_latency),
                h("poll duration", &p.poll_duration),
            ],
        );
        let with_os = p.os.has_data();
        if with_os {
            table(
                out,
                "Long polls: where the time went",
                "per task name, from the OS view: long polls measured inside by OS samples or estimated from the samples around them; most off-CPU time first",
                &[
                    "task",
                    "long polls split",
                    "their time",
                    "on-CPU",
                    "waiting for a CPU",
                    "off-CPU",
                ],
                &os::by_task_rows(p),
            );
        } else {
            table(
                out,
                "Long polls: where the time went",
                os::NO_OS_VIEW,
                &[],
                &[],
            );
        }
        let rows: Vec<Vec<String>> = p
            .longest_polls
            .iter()
            .map(|x| {
                let mut row = vec![
                    dur(x.dur_ns),
                    self.at(x.start_ns),
                    p.name(x.name).into_owned(),
                    x.task.0.to_string(),
                    p.site_name(x.site).into_owned(),
                    p.thread_name(x.thread).into_owned(),
                ];
                if with_os {
                    row.extend(os::example_cells(&p.os, x));
                }
                row
            })
            .collect();
        let mut cols = vec![
            "duration",
            "started",
            "task",
            "task id",
            "spawn site",
            "thread",
        ];
        if with_os {
            cols.extend(["where the time went", "stack inside it (top frames)"]);
        }
        table(
            out,
            "Longest polls",
            if with_os {
                "the stack's frames: the application's innermost frame first, then the frames inside it"
            } else {
                os::NO_OS_VIEW
            },
            &cols,
            &rows,
        );
        let span = p.duration_ns.max(1) as f64;
        let mut threads: Vec<_> = p.threads.iter().collect();
        threads.sort_by_key(|(_, s)| std::cmp::Reverse(s.busy_ns()));
        let rows: Vec<Vec<String>> = threads
            .iter()
            .take(50)
            .map(|(t, s)| {
                vec![
                    p.thread_name(**t).into_owned(),
                    format!("{} ({})", dur(s.busy_ns()), pct(s.busy_ns() as f64 / span)),
                    format!(
                        "{} ({})",
                        dur(s.blocked_ns),
                        pct(s.blocked_ns as f64 / span)
                    ),
                    format!("{} ({})", dur(s.parked_ns), pct(s.parked_ns as f64 / span)),
                    s.parks.to_string(),
                ]
            })
            .collect();
        table(
            out,
            "Threads",
            "busiest first; shares of the trace's span",
            &["thread", "busy", "blocked", "parked", "parks"],
            &rows,
        );
        let rows: Vec<Vec<String>> = self
            .metrics
            .iter()
            .filter_map(|(n, s)| {
                let first = s.points.first()?;
                let last = s.points.last()?;
                let max = s.points.iter().map(|x| x.1).fold(f64::MIN, f64::max);
                Some(vec![
                    n.clone(),
                    s.points.len().to_string(),
                    metric_value(n, first.1),
                    metric_value(n, last.1),
                    metric_value(n, max),
                ])
            })
            .collect();
        table(
            out,
            "Metric samples",
            "the trace's metric samples: first, last and largest value of each",
            &["metric", "samples", "first", "last", "largest"],
            &rows,
        );
    }
}

/// A window with room around it: its length again on each side (at least 1 ms), within
/// the trace.
fn pad((a, b): (u64, u64), duration: u64) -> (u64, u64) {
    let margin = b.saturating_sub(a).max(1_000_000);
    (
        a.saturating_sub(margin),
        b.saturating_add(margin).min(duration.max(1)),
    )
}

fn choose_lanes(p: &Profile, scores: &HashMap<Lane, LaneScore>) -> Vec<ChosenLane> {
    let mut scored: Vec<(&Lane, &LaneScore)> =
        scores.iter().filter(|(_, s)| s.weight() > 0).collect();
    scored.sort_by_key(|(l, s)| (std::cmp::Reverse(s.weight()), **l));
    let mut threads: Vec<(Lane, LaneScore)> = scored
        .iter()
        .filter(|(l, _)| matches!(l, Lane::Thread(_)))
        .take(MAX_THREAD_LANES)
        .map(|(l, s)| (**l, **s))
        .collect();
    let tasks: Vec<(Lane, LaneScore)> = scored
        .iter()
        .filter(|(l, _)| matches!(l, Lane::Task(_)))
        .take(MAX_TASK_LANES)
        .map(|(l, s)| (**l, **s))
        .collect();
    if threads.is_empty() {
        // Nothing in the windows: the most active threads.
        let mut all: Vec<_> = p.threads.iter().collect();
        all.sort_by_key(|(t, s)| {
            (
                std::cmp::Reverse(s.active_ns.saturating_add(s.blocked_ns)),
                **t,
            )
        });
        threads = all
            .into_iter()
            .take(MAX_THREAD_LANES)
            .map(|(t, _)| (Lane::Thread(*t), LaneScore::default()))
            .collect();
    }
    threads.sort_by_key(|(l, _)| *l);
    let mut out: Vec<ChosenLane> = threads
        .into_iter()
        .map(|(lane, score)| ChosenLane {
            name: match lane {
                Lane::Thread(t) => p.thread_name(t).into_owned(),
                Lane::Task(_) => String::new(),
            },
            lane,
            score,
        })
        .collect();
    let mut tasks = tasks;
    tasks.sort_by_key(|(l, _)| *l);
    out.extend(tasks.into_iter().map(|(lane, score)| ChosenLane {
        name: match lane {
            Lane::Task(t) => format!("task {}", t.0),
            Lane::Thread(_) => String::new(),
        },
        lane,
        score,
    }));
    out
}

/// A table with its named columns; "none in this trace" when it has no rows.
fn table(out: &mut String, title: &str, note: &str, cols: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "<h2>{}</h2>", esc(title));
    if !note.is_empty() {
        let _ = writeln!(out, "<p class=\"muted\">{}</p>", esc(note));
    }
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">none in this trace</p>\n");
        return;
    }
    out.push_str("<table><tr>");
    for c in cols {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// A metric's value with its unit, from its name: `_seconds` as a duration, `_bytes` as
/// bytes, `_ns` as a duration, others as a number.
pub fn metric_value(name: &str, v: f64) -> String {
    let base = name.split('{').next().unwrap_or(name);
    if !v.is_finite() {
        return v.to_string();
    }
    if (base.ends_with("_seconds") || base.contains("_seconds_")) && !base.ends_with("_count") {
        if v >= 0.0 {
            return dur((v * 1e9) as u64);
        }
    } else if base.ends_with("_ns") && v >= 0.0 {
        return dur(v as u64);
    } else if base.ends_with("_bytes") && v >= 0.0 {
        return format!("{:.1} MiB", v / (1u64 << 20) as f64);
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// Unix nanoseconds as `YYYY-MM-DD HH:MM:SS.mmm UTC`.
pub fn utc(unix_ns: i128) -> String {
    let ms = unix_ns.div_euclid(1_000_000);
    let secs = ms.div_euclid(1000);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::text::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_civil() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_123_000_000), "2000-02-29 00:00:00.123 UTC");
        assert_eq!(
            utc(1_796_184_312_123_456_789),
            "2026-12-02 04:05:12.123 UTC"
        );
    }

    #[test]
    fn metric_values_carry_units() {
        assert_eq!(
            metric_value("fdr_lock_wait_seconds{quantile=\"0.99\"}", 0.0123),
            "12.30ms"
        );
        assert_eq!(metric_value("fdr_polls_total", 42.0), "42");
        assert_eq!(metric_value("fdr_lock_wait_seconds_count", 3.0), "3");
    }

    #[test]
    fn markup_is_escaped_and_the_rest_kept() {
        assert_eq!(esc("plain é text"), "plain é text");
        assert_eq!(
            esc("<a href=\"x\">&é</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;é&lt;/a&gt;"
        );
        assert_eq!(esc("&&"), "&amp;&amp;");
        assert_eq!(esc("tail>"), "tail&gt;");
        assert_eq!(esc(""), "");
    }
}
