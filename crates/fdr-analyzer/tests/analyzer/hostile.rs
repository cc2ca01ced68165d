//! Hostile traces: every analysis finishes, never overflows, stays within its limits and
//! says where it capped.

use fdr_analyzer::chrome::ChromeExport;
use fdr_analyzer::limits::{MAX_LIVE_TASKS, MAX_STATS_KEYS, MAX_THREADS};
use fdr_analyzer::perfetto::PerfettoExport;
use fdr_analyzer::{
    ProfileOptions, ReadOptions, SummaryOptions, diagnose, profile_slice, read_slice, report,
    summarize_slice, views,
};
use fdr_format::encode::encode_event;
use fdr_format::{
    BlockReason, ClockSync, EventKind, ProcessInfo, SiteId, StrId, TableEncoder, TaskId, ThreadId,
    TraceWriter,
};
use fdr_test_support::adversarial::{Shape, build};

/// About 227 KB: 4,800 rounds, each a region, a park, a block and a poll (two timeline
/// slices) begun at one instant and ended 2^63 ticks later, the timestamp wrapping back
/// for the next round: 24,000 slices of 2^63 ns, more than the report keeps.
const ROUNDS: u64 = 4_800;

fn spans_of_2_pow_63() -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
    let mut t = TableEncoder::new();
    t.string(StrId(1), "r").clock(&ClockSync {
        ticks: 0,
        mono_ns: 0,
        wall_unix_ns: 0,
        ticks_per_sec: 1e9,
    });
    w.write_table(&t, true).unwrap();
    let half = 1u64 << 63;
    let mut buf = vec![0u8; 60_000];
    let (mut len, mut seq) = (0, 0);
    for round in 0..ROUNDS {
        let task = TaskId(round + 1);
        let round_events: [(u64, EventKind<'_>); 10] = [
            (0, EventKind::RegionBegin { name: StrId(1) }),
            (0, EventKind::Park),
            (
                0,
                EventKind::BlockBegin {
                    reason: BlockReason::Io,
                    site: SiteId(0),
                },
            ),
            (0, EventKind::PollStart { task }),
            (half, EventKind::PollEnd { task, ready: true }),
            (0, EventKind::BlockEnd),
            (0, EventKind::Unpark),
            (0, EventKind::RegionEnd { name: StrId(1) }),
            (0, EventKind::TaskDrop { task }),
            // Back to the instant of the next round's begins.
            (half, EventKind::ThreadStart),
        ];
        if len + 100 > buf.len() {
            w.write_events(ThreadId(1), seq, 0, &buf[..len]).unwrap();
            (len, seq) = (0, seq + 1);
        }
        for (delta, k) in round_events {
            len += encode_event(&mut buf[len..], delta, &k).unwrap();
        }
    }
    w.write_events(ThreadId(1), seq, 0, &buf[..len]).unwrap();
    w.finish().unwrap()
}

#[test]
fn the_report_profile_of_spans_of_2_pow_63_ns_finishes() {
    let trace = spans_of_2_pow_63();
    assert!((220_000..235_000).contains(&trace.len()), "{}", trace.len());
    let opts = ProfileOptions {
        timeline_slices: 20_000,
        ..ProfileOptions::default()
    };
    let (p, out) = profile_slice(&trace, opts).unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(p.regions.values().next().unwrap().hist.count(), ROUNDS);
    assert_eq!(p.regions.values().next().unwrap().hist.max(), 1 << 63);
    assert!(p.slices.len() <= 20_000);
    assert!(p.slices_dropped > 0);
    assert_eq!(p.slices.len() as u64 + p.slices_dropped, ROUNDS * 5);
    assert!(p.slices.iter().all(|s| s.dur_ns == 1 << 63));
    // The report keeps every slice of its lanes within its bound, nearest the findings,
    // and says which range is whole and how many it left out.
    let (r, _) = report::Report::from_slice(&trace, None).unwrap();
    assert!(r.slices.len() <= report::timeline::MAX_REPORT_SLICES);
    let html = r.render("spans");
    assert!(html.ends_with("</html>\n"));
}

/// Every analysis of `trace` in one place: profile, diagnose, views, report, summary and
/// both exports; returns the profile's and the summary's notes.
fn analyze_all(trace: &[u8]) -> (Vec<String>, Vec<String>) {
    let opts = ProfileOptions {
        timeline_slices: 2_000,
        ..ProfileOptions::default()
    };
    let (p, out) = profile_slice(trace, opts).unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    let d = diagnose(&p);
    let _ = (d.to_text(), d.to_json());
    for v in [
        views::tasks_json(&p),
        views::regions_json(&p),
        views::blocking_json(&p, 10_000),
        views::sched_json(&p),
    ] {
        assert!(v["truncated"].is_array());
    }
    let _ = (
        views::tasks_text(&p),
        views::regions_text(&p),
        views::blocking_text(&p, 10),
        views::sched_text(&p),
    );
    let (r, _) = report::Report::from_slice(trace, None).unwrap();
    assert!(r.slices.len() <= report::timeline::MAX_REPORT_SLICES);
    let _ = r.render("hostile");
    let (side, _) = fdr_analyzer::diff::DiffSideSet::of_slice(trace).unwrap();
    let d = fdr_analyzer::diff::compare(side.clone(), side);
    let _ = (d.to_text(10), d.to_json(10));
    let s = summarize_slice(trace, SummaryOptions::default()).unwrap();
    assert!(s.error.is_none());
    let _ = (s.to_text(), s.to_json());
    let mut c = ChromeExport::new(std::io::sink());
    read_slice(trace, &mut c, ReadOptions::default()).unwrap();
    assert!(c.error.is_none());
    let mut x = PerfettoExport::new(std::io::sink());
    read_slice(trace, &mut x, ReadOptions::default()).unwrap();
    assert!(x.error.is_none());
    (
        p.truncated().iter().map(|t| t.what.to_string()).collect(),
        s.truncated.iter().map(|t| t.what.to_string()).collect(),
    )
}

#[test]
fn extreme_times_and_counts_saturate_instead_of_overflowing() {
    let trace = build(Shape::Extremes, 400 << 10);
    let (p, out) = profile_slice(&trace, ProfileOptions::default()).unwrap();
    assert!(out.error.is_none());
    assert_eq!(p.loss.values().next().unwrap().1, u64::MAX);
    assert_eq!(p.regions.values().next().unwrap().hist.max(), u64::MAX);
    assert!(p.missing_batches > u64::from(u32::MAX));
    let d = diagnose(&p);
    let loss = d.findings().find(|f| f.rule == "recorder_loss").unwrap();
    // Saturated to the top; a finding tied with one above it is ranked one point below.
    assert!(loss.score >= 99.0, "{loss:?}");
    assert_eq!(loss.severity, fdr_analyzer::Severity::Critical);
    analyze_all(&trace);
}

#[test]
fn a_trace_within_the_limits_is_not_truncated() {
    for (name, _) in fdr_test_support::scenarios::SCENARIOS {
        let trace = fdr_test_support::scenarios::scenario(name).unwrap();
        let (p, s) = analyze_all(&trace);
        assert!(p.is_empty() && s.is_empty(), "{name}: {p:?} {s:?}");
    }
}

#[test]
fn threads_past_the_limit_are_skipped_and_said_so() {
    // 4096 threads per 4096-thread group: a little over MAX_THREADS threads.
    let trace = build(Shape::Threads, (MAX_THREADS as u64 + 8192) * 64);
    let (p, out) = profile_slice(&trace, ProfileOptions::default()).unwrap();
    assert_eq!(p.thread_count(), MAX_THREADS);
    assert!(out.stats.untracked_threads >= 4096, "{:?}", out.stats);
    let notes = p.truncated();
    let t = notes.iter().find(|n| n.what == "threads").expect("a note");
    assert_eq!(t.count, out.stats.untracked_threads);
    assert!(t.note.contains("more threads not tracked"), "{}", t.note);
    assert!(views::regions_text(&p).contains("truncated: "));
    let s = summarize_slice(&trace, SummaryOptions::default()).unwrap();
    assert_eq!(s.threads.len(), MAX_THREADS);
    assert_eq!(s.stats.untracked_threads, out.stats.untracked_threads);
    // Events of untracked threads still count in the summary's totals.
    assert_eq!(
        s.stats.events,
        s.threads.values().map(|t| t.events).sum::<u64>() + s.untracked_thread_events
    );
    assert!(s.to_text().contains("more threads not listed"));
    assert_eq!(s.to_json()["truncated"][0]["what"], "threads");
}

#[test]
fn tasks_names_and_open_spans_past_the_limits_are_counted() {
    let trace = build(Shape::Tasks, (MAX_LIVE_TASKS as u64 + 20_000) * 30);
    let (p, _) = analyze_all(&trace);
    assert!(p.contains(&"live_tasks".to_string()), "{p:?}");
    assert!(p.contains(&"task_nesting".to_string()), "{p:?}");

    let trace = build(Shape::Names, (MAX_STATS_KEYS as u64 + 8192) * 80);
    let (profile, _) = profile_slice(&trace, ProfileOptions::default()).unwrap();
    assert_eq!(profile.regions.len(), MAX_STATS_KEYS);
    assert_eq!(profile.blocking.len(), MAX_STATS_KEYS);
    let (p, _) = analyze_all(&trace);
    for what in ["region_names", "blocking_sites", "task_names"] {
        assert!(p.contains(&what.to_string()), "{what}: {p:?}");
    }

    let trace = build(Shape::OpenSpans, 2 << 20);
    let (p, _) = analyze_all(&trace);
    assert!(p.contains(&"open_regions".to_string()), "{p:?}");
}

/// A sampler's OS samples and stacks of 70,000 threads: the OS view keeps what its
/// bounds across threads allow, says what it did not keep, and every analysis finishes.
#[test]
fn os_samples_of_many_threads_are_kept_within_the_views_bounds() {
    let trace = build(Shape::OsView, 8 << 20);
    let (p, _) = analyze_all(&trace);
    assert!(p.contains(&"os_view".to_string()), "{p:?}");
    let (profile, _) = profile_slice(&trace, ProfileOptions::default()).unwrap();
    assert!(profile.os.has_data());
    assert!(profile.os.cpu_left_out > 0);
}

#[test]
fn long_strings_are_shown_cut_and_tables_stop_at_their_limit() {
    // 64 KiB strings and thread names: past the tables' 16 MiB of text.
    let trace = build(Shape::LongStrings, 30 << 20);
    let (p, _) = profile_slice(&trace, ProfileOptions::default()).unwrap();
    let row = &views::regions_json(&p)["regions"][0];
    let name = row["name"].as_str().unwrap();
    assert!(name.len() <= fdr_analyzer::text::MAX_SHOWN_BYTES && name.ends_with('…'));
    let whats: Vec<_> = p.truncated().iter().map(|t| t.what).collect();
    assert!(whats.contains(&"strings"), "{whats:?}");
    assert!(whats.contains(&"thread_names"), "{whats:?}");
    let s = summarize_slice(&trace, SummaryOptions::default()).unwrap();
    assert!(s.truncated.iter().any(|t| t.what == "strings"));
    // The rest of the analyses on a smaller one.
    analyze_all(&build(Shape::LongStrings, 2 << 20));
}
