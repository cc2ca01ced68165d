//! The report's OS view: where long polls' time went (on a CPU, waiting for a CPU,
//! off-CPU) per task name, and for each long-poll example its split and the top frames of
//! the stack captured inside it; "no OS view in this trace" when the trace has no OS
//! samples (a recorder without `Config::os`, or not Linux).

use crate::osview::{OsView, Split, SplitTotals};
use crate::profile::{PollRecord, Profile, TaskKind};
use crate::text::{dur, pct};

/// What the report says where the OS view does not apply.
pub(super) const NO_OS_VIEW: &str = "no OS view in this trace";

/// Frames of a long poll's stack shown in its row.
const SHOWN_FRAMES: usize = 3;

/// `x (p%)` of `total`.
fn part(x: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{} ({})", dur(x), pct(x as f64 / total as f64))
    }
}

/// The split's three parts as cells: on-CPU, waiting for a CPU, off-CPU.
fn parts(s: &Split) -> [String; 3] {
    let t = s.total();
    [
        part(s.on_cpu_ns, t),
        part(s.runq_ns, t),
        part(s.off_cpu_ns, t),
    ]
}

/// Rows of the per-task-name table: task, long polls split (measured, estimated), their
/// wall time, on-CPU, waiting for a CPU, off-CPU; most off-CPU time first.
pub(super) fn by_task_rows(p: &Profile) -> Vec<Vec<String>> {
    let os = &p.os;
    let mut rows: Vec<(u64, Vec<String>)> = Vec::new();
    for (kind, name) in p.tasks.keys() {
        if *kind != TaskKind::Async {
            continue;
        }
        let Some((m, e)) = os.poll_split(*name) else {
            continue;
        };
        let mut all = SplitTotals::default();
        for t in [m, e] {
            all.count += t.count;
            all.wall_ns = all.wall_ns.saturating_add(t.wall_ns);
            all.split.on_cpu_ns = all.split.on_cpu_ns.saturating_add(t.split.on_cpu_ns);
            all.split.runq_ns = all.split.runq_ns.saturating_add(t.split.runq_ns);
            all.split.off_cpu_ns = all.split.off_cpu_ns.saturating_add(t.split.off_cpu_ns);
        }
        let [on, runq, off] = parts(&all.split);
        rows.push((
            all.split.off_cpu_ns,
            vec![
                p.name(*name).into_owned(),
                format!(
                    "{} ({} measured, {} estimated)",
                    all.count, m.count, e.count
                ),
                dur(all.wall_ns),
                on,
                runq,
                off,
            ],
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().map(|r| r.1).take(50).collect()
}

/// The two cells a long-poll example gets: where its time went, and the top frames of
/// the stack captured inside it.
pub(super) fn example_cells(os: &OsView, x: &PollRecord) -> [String; 2] {
    let Some(e) = os.poll_example(x.thread, x.start_ns) else {
        return [
            "not split (no OS sample around it)".into(),
            "no stack captured".into(),
        ];
    };
    let s = &e.split;
    let t = s.total().max(1) as f64;
    let split = format!(
        "on-CPU {} · waiting for a CPU {} · off-CPU {}{}",
        pct(s.on_cpu_ns as f64 / t),
        pct(s.runq_ns as f64 / t),
        pct(s.off_cpu_ns as f64 / t),
        if e.measured { "" } else { " (estimated)" }
    );
    let stack = match e.stacks.first() {
        Some(&id) => {
            let frames = os.top_frames(id, SHOWN_FRAMES);
            if frames.is_empty() {
                "stack not symbolized".into()
            } else {
                frames.join(" ← ")
            }
        }
        None => "no stack captured".into(),
    };
    [split, stack]
}

#[cfg(test)]
mod tests {
    use fdr_format::{EventKind, SampleCause, TaskId};

    use crate::report::Report;
    use fdr_test_support::events::{module_of, os_sample};
    use fdr_test_support::scenarios::{TraceBuilder, scenario};

    /// Where a long poll of the test below blocks.
    #[inline(never)]
    fn report_test_blocking_call() -> u64 {
        std::hint::black_box(11)
    }

    /// The HTML between the `<h2>` titled `title` and the next one.
    fn section<'a>(html: &'a str, title: &str) -> &'a str {
        let at = html
            .find(&format!("<h2>{title}</h2>"))
            .unwrap_or_else(|| panic!("no section {title}"));
        let rest = &html[at + 4..];
        &rest[..rest.find("<h2>").unwrap_or(rest.len())]
    }

    #[test]
    fn a_long_poll_shows_its_split_and_the_top_frames_of_its_stack() {
        let ip = report_test_blocking_call as *const () as usize as u64 + 1;
        let mut b = TraceBuilder::new();
        b.module(module_of(ip));
        let worker = b.thread("worker");
        let sampler = b.thread("fdr-sampler");
        let name = b.string("rpc touch");
        let site = b.site("src/main.rs", 9);
        let task = TaskId(5);
        let ms = 1_000_000;
        b.task(worker, 0, task, name, site);
        b.poll(worker, 10 * ms, 80 * ms, task, true);
        b.push(worker, 90 * ms, EventKind::TaskDrop { task });
        let sample = |cause, cpu, runq| os_sample(worker, cause, cpu, runq, b'S');
        b.push(sampler, ms, sample(SampleCause::Periodic, 0, 0));
        b.push(sampler, 12 * ms, sample(SampleCause::LongScope, 2 * ms, 0));
        b.stack(
            sampler,
            12 * ms + 500_000,
            worker,
            SampleCause::LongScope,
            &[ip],
            None,
        );
        b.push(sampler, 81 * ms, sample(SampleCause::ScopeEnd, 3 * ms, 0));
        b.push(sampler, 95 * ms, sample(SampleCause::Periodic, 3 * ms, 0));
        let (r, _) = Report::from_slice(&b.build(), None).unwrap();
        let html = r.render("os view");
        let by_task = section(&html, "Long polls: where the time went");
        assert!(by_task.contains("<td>rpc touch</td>"), "{by_task}");
        assert!(by_task.contains("1 (1 measured, 0 estimated)"), "{by_task}");
        assert!(!html.contains(super::NO_OS_VIEW));
        let longest = section(&html, "Longest polls");
        assert!(longest.contains("off-CPU 9"), "mostly off-CPU: {longest}");
        assert!(
            longest.contains("report_test_blocking_call at ") && longest.contains("os.rs:"),
            "the blocking function with its file and line: {longest}"
        );
    }

    #[test]
    fn a_trace_without_os_samples_says_so() {
        let (r, _) = Report::from_slice(&scenario("long_polls").unwrap(), None).unwrap();
        let html = r.render("no os view");
        assert!(
            section(&html, "Long polls: where the time went").contains(super::NO_OS_VIEW),
            "{html}"
        );
        assert!(section(&html, "Longest polls").contains(super::NO_OS_VIEW));
    }
}
