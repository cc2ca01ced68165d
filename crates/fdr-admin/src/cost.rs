//! `/metrics`' cost families: fdr's own CPU time and its share of the process's, from the
//! recorder's live cost meter (`fdr_recorder::cost`), as of its last interval.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::prom::family;

/// Writes the cost meter's families (nothing before its first interval).
pub(crate) fn write(out: &mut String, names: &mut HashSet<String>) {
    let c = fdr_recorder::cost::cost();
    if c.intervals == 0 {
        return;
    }
    let metric = "fdr_cost_thread_cpu_seconds_total";
    family(
        out,
        metric,
        "counter",
        "CPU time of fdr's own threads, by thread.",
    );
    for (role, ns) in fdr_recorder::cost::Role::ALL.iter().zip(c.thread_cpu_ns) {
        let _ = writeln!(
            out,
            "{metric}{{thread=\"{}\"}} {}",
            role.name(),
            ns as f64 / 1e9
        );
    }
    names.insert(metric.to_owned());
    let counters: [(&str, &str, f64); 3] = [
        (
            "fdr_cost_recording_cpu_seconds_total",
            "Estimated CPU time recording threads spent recording: events times the calibrated cost of one.",
            c.recording_cpu_ns as f64 / 1e9,
        ),
        (
            "fdr_cost_process_cpu_seconds_total",
            "The process's CPU time, every thread, as the cost meter last read it.",
            c.process_cpu_ns as f64 / 1e9,
        ),
        (
            "fdr_cost_sheds_total",
            "Times fdr shed detail to keep within its cost budget.",
            c.sheds as f64,
        ),
    ];
    let gauges: [(&str, &str, f64); 5] = [
        (
            "fdr_cost_share",
            "fdr's share of the process's CPU over the cost meter's last interval (its threads and the recording estimate).",
            c.share,
        ),
        (
            "fdr_cost_budget",
            "The share of the process's CPU above which fdr sheds detail.",
            c.budget,
        ),
        (
            "fdr_cost_shed_level",
            "Detail shed: 0 none, 1 wakes, 2 wakes and polls.",
            f64::from(c.detail.level()),
        ),
        (
            "fdr_cost_events_per_second",
            "Events recorded per second over the cost meter's last interval.",
            c.events_per_second,
        ),
        (
            "fdr_cost_event_seconds",
            "The calibrated CPU cost of recording one event.",
            c.per_event_ns / 1e9,
        ),
    ];
    for (metric, help, v) in counters {
        family(out, metric, "counter", help);
        let _ = writeln!(out, "{metric} {v}");
        names.insert(metric.to_owned());
    }
    for (metric, help, v) in gauges {
        family(out, metric, "gauge", help);
        let _ = writeln!(out, "{metric} {v}");
        names.insert(metric.to_owned());
    }
}
