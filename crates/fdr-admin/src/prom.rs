//! `/metrics`: Prometheus text exposition (format 0.0.4) of fdr's runtime metrics, the
//! recorder's counters, the sentinel's, this endpoint's, and the user's registries.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::server::State;

/// The `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `le` bounds of the exported histograms, in nanoseconds: fixed, so every scrape has
/// the same series. The recorder's finer buckets (8 per power of two) are summed into them:
/// a fine bucket counts under the first bound at or above its upper edge, so a count is
/// never placed under a bound it may exceed.
const LE_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Writes a family's `# HELP` and `# TYPE` lines.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// fdr's runtime metrics and the recorder's counters.
fn runtime(out: &mut String, names: &mut HashSet<String>) {
    let m = fdr_recorder::metrics();
    for (name, help, h) in m.histograms() {
        let base = name.strip_suffix("_ns").unwrap_or(name);
        let metric = format!("fdr_{base}_seconds");
        family(out, &metric, "histogram", help);
        let mut per_bound = [0u64; LE_NS.len()];
        let mut beyond = 0u64;
        for (upper_ns, n) in h.buckets_ns() {
            match LE_NS.iter().position(|&b| b >= upper_ns) {
                Some(i) => per_bound[i] += n,
                None => beyond += n,
            }
        }
        let mut cumulative = 0;
        for (bound, n) in LE_NS.iter().zip(per_bound) {
            cumulative += n;
            let le = *bound as f64 / 1e9;
            let _ = writeln!(out, "{metric}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        // +Inf is the count (never below what the buckets hold).
        let total = h.count.max(cumulative + beyond);
        let _ = writeln!(out, "{metric}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{metric}_sum {}", h.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{metric}_count {total}");
        names.insert(metric);
    }
    for c in m.scalars() {
        let (metric, kind) = if c.gauge {
            (format!("fdr_{}", c.name), "gauge")
        } else {
            (format!("fdr_{}_total", c.name), "counter")
        };
        family(out, &metric, kind, c.help);
        let _ = writeln!(out, "{metric} {}", c.value);
        names.insert(metric);
    }
    let r = &m.recorder;
    family(
        out,
        "fdr_recorder_lost_events_by_reason_total",
        "counter",
        "Events the recorder lost, by reason.",
    );
    for (reason, lost) in fdr_recorder::LOSS_REASONS.iter().zip(r.lost.iter()) {
        let _ = writeln!(
            out,
            "fdr_recorder_lost_events_by_reason_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            lost.events
        );
    }
    let gauges: [(&str, &str, u64); 3] = [
        (
            "fdr_recorder_live_threads",
            "Threads registered with the recorder and alive.",
            r.live_threads,
        ),
        (
            "fdr_recorder_ring_bytes",
            "Bytes in the flight recorder's ring.",
            r.ring_bytes,
        ),
        (
            "fdr_recorder_allocated_bytes",
            "Bytes of chunks the recorder allocated (never more than its budget).",
            r.chunks_allocated * fdr_recorder::CHUNK_BYTES as u64,
        ),
    ];
    for (metric, help, v) in gauges {
        family(out, metric, "gauge", help);
        let _ = writeln!(out, "{metric} {v}");
        names.insert(metric.to_owned());
    }
    let counters: [(&str, &str, u64); 2] = [
        (
            "fdr_recorder_threads_total",
            "Threads registered with the recorder so far.",
            r.threads,
        ),
        (
            "fdr_recorder_snapshots_total",
            "Flight-recorder snapshots written (by anyone).",
            r.snapshots,
        ),
    ];
    for (metric, help, v) in counters {
        family(out, metric, "counter", help);
        let _ = writeln!(out, "{metric} {v}");
        names.insert(metric.to_owned());
    }
    names.insert("fdr_recorder_lost_events_by_reason_total".into());
}

#[cfg(feature = "sentinel")]
fn sentinel(out: &mut String, s: &fdr_sentinel::SentinelHandle) {
    let st = s.stats();
    let counters: [(&str, &str, u64); 11] = [
        (
            "fdr_sentinel_samples_total",
            "Metric samples the sentinel took.",
            st.samples,
        ),
        (
            "fdr_sentinel_triggers_total",
            "Rule triggers let through to the dump thread.",
            st.triggers,
        ),
        (
            "fdr_sentinel_dumps_written_total",
            "Incidents the sentinel wrote.",
            st.dumps_written,
        ),
        (
            "fdr_sentinel_dump_failures_total",
            "Dumps that failed (store error, recorder not running, stopped during the delay).",
            st.dump_failures,
        ),
        (
            "fdr_sentinel_dump_bytes_total",
            "Bytes of dumps the sentinel wrote.",
            st.bytes_written,
        ),
        (
            "fdr_sentinel_rule_errors_total",
            "Rules that could not be evaluated.",
            st.rule_errors,
        ),
        (
            "fdr_sentinel_rules_unknown_metric_total",
            "Rules whose metric a sample did not have (each counted once, logged with the nearest names).",
            st.rules_unknown_metric,
        ),
        (
            "fdr_sentinel_dump_failures_no_space_total",
            "Dumps that failed because the disk or a quota was full (also in dump_failures).",
            st.dump_failures_no_space,
        ),
        (
            "fdr_sentinel_snapshot_waits_total",
            "Dumps that found another flight-recorder snapshot being written and waited for it.",
            st.snapshot_waits,
        ),
        (
            "fdr_sentinel_snapshot_timeouts_total",
            "Dumps whose recorder stayed busy for the whole snapshot wait (also dump failures).",
            st.snapshot_timeouts,
        ),
        (
            "fdr_sentinel_store_warnings_total",
            "Warnings about the incident store logged at start (a directory others may write into).",
            st.store_warnings,
        ),
    ];
    for (metric, help, v) in counters {
        family(out, metric, "counter", help);
        let _ = writeln!(out, "{metric} {v}");
    }
    family(
        out,
        "fdr_sentinel_suppressed_total",
        "counter",
        "Breaches held long enough that a limit kept from dumping, by limit.",
    );
    for (reason, v) in [
        ("cooldown", st.suppressed_cooldown),
        ("limit", st.suppressed_limit),
        ("lifetime", st.suppressed_lifetime),
        ("busy", st.suppressed_busy),
    ] {
        let _ = writeln!(
            out,
            "fdr_sentinel_suppressed_total{{reason=\"{reason}\"}} {v}"
        );
    }
    family(
        out,
        "fdr_sentinel_dumps_pending",
        "gauge",
        "Triggers accepted whose dump is not done yet (in its delay, waiting for the recorder, or being written).",
    );
    let _ = writeln!(out, "fdr_sentinel_dumps_pending {}", st.dumps_pending);
    family(
        out,
        "fdr_sentinel_degraded",
        "gauge",
        "1 while a rule breached at the last sample.",
    );
    let _ = writeln!(out, "fdr_sentinel_degraded {}", u8::from(s.degraded()));
    family(
        out,
        "fdr_sentinel_breaching_rules",
        "gauge",
        "Rules that breached at the last sample.",
    );
    let _ = writeln!(out, "fdr_sentinel_breaching_rules {}", s.breaching().len());
}

/// This endpoint's own counters.
fn admin(out: &mut String, state: &State) {
    let c = &state.counters;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let counters: [(&str, &str, u64); 6] = [
        (
            "fdr_admin_captures_total",
            "On-demand captures started.",
            l(&c.captures),
        ),
        (
            "fdr_admin_capture_bytes_total",
            "Bytes of on-demand captures sent.",
            l(&c.capture_bytes),
        ),
        (
            "fdr_admin_snapshots_total",
            "Flight-recorder snapshots served.",
            l(&c.snapshots),
        ),
        (
            "fdr_admin_snapshots_refused_total",
            "Flight-recorder snapshots refused because another was being written.",
            l(&c.snapshots_refused),
        ),
        (
            "fdr_admin_unauthorized_total",
            "Requests refused for missing or wrong credentials.",
            l(&c.unauthorized),
        ),
        (
            "fdr_admin_misdirected_total",
            "Requests refused (421) because, without credentials, their Host was not a loopback name or an allowed one.",
            l(&c.misdirected),
        ),
    ];
    for (metric, help, v) in counters {
        family(out, metric, "counter", help);
        let _ = writeln!(out, "{metric} {v}");
    }
    family(
        out,
        "fdr_admin_captures_refused_total",
        "counter",
        "On-demand captures refused, by reason.",
    );
    for (reason, v) in [
        ("running", l(&c.captures_refused_running)),
        ("cooldown", l(&c.captures_refused_cooldown)),
        ("degraded", l(&c.captures_refused_degraded)),
    ] {
        let _ = writeln!(
            out,
            "fdr_admin_captures_refused_total{{reason=\"{reason}\"}} {v}"
        );
    }
    family(
        out,
        "fdr_admin_connections_open",
        "gauge",
        "Connections open now (at most max_connections).",
    );
    let _ = writeln!(out, "fdr_admin_connections_open {}", state.table.len());
    family(
        out,
        "fdr_admin_connections_closed_total",
        "counter",
        "Connections the endpoint closed, by reason: evicted to make room for a new one, no request head within the header read timeout, a client that took no bytes within the write timeout, a head over the cap (431), requests pipelined too far ahead.",
    );
    for (reason, v) in [
        ("evicted", l(&c.evicted)),
        ("header_timeout", l(&c.header_timeouts)),
        ("write_timeout", l(&c.write_timeouts)),
        ("header_too_large", l(&c.heads_too_large)),
        ("pipelining", l(&c.pipelining_closes)),
    ] {
        let _ = writeln!(
            out,
            "fdr_admin_connections_closed_total{{reason=\"{reason}\"}} {v}"
        );
    }
}

/// The whole exposition.
pub(crate) fn render(state: &State) -> Result<String, String> {
    let mut out = String::with_capacity(16 << 10);
    let mut names = HashSet::new();
    runtime(&mut out, &mut names);
    crate::cost::write(&mut out, &mut names);
    #[cfg(feature = "sentinel")]
    if let Some(s) = &state.sentinel {
        sentinel(&mut out, s);
    }
    admin(&mut out, state);
    let encoder = prometheus::TextEncoder::new();
    for registry in &state.registries {
        let mut families = registry.gather();
        families.retain(|f| {
            let name = f.name();
            let keep = !name.starts_with("fdr_") && names.insert(name.to_owned());
            if !keep {
                let _ = writeln!(
                    out,
                    "# fdr-admin: skipped the registry's family {name}: the name is fdr's or already exported"
                );
            }
            keep
        });
        encoder
            .encode_utf8(&families, &mut out)
            .map_err(|e| format!("encoding a registry's metrics failed: {e}"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_ascending_and_print_as_plain_seconds() {
        assert!(LE_NS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(format!("{}", LE_NS[0] as f64 / 1e9), "0.000001");
        assert_eq!(format!("{}", LE_NS[1] as f64 / 1e9), "0.0000025");
        assert_eq!(format!("{}", LE_NS[21] as f64 / 1e9), "10");
    }
}
