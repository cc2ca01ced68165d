//! The runbook rules that read the OS view ([`crate::osview`]): where the long polls'
//! time went. Off-CPU inside polls is blocking in async (`blocking_in_async`, naming the
//! top user frame of their stacks and what the frames show them waiting in); on-CPU is a
//! CPU-heavy poll (`cpu_heavy_polls`, naming the hot frames); mostly waiting for a CPU is
//! host CPU contention (`host_cpu_contention`: not the service's fault, info unless the
//! service's threads wait for a CPU most of the time). A trace without OS samples makes
//! each "not applicable (no OS data)".
//!
//! A rule rises above info only with measured evidence (long polls the sampler saw and
//! split); long polls estimated from periodic samples add to its totals. The long polls a
//! split explains leave `long_polls` ([`explained_share`]), so the cause ranks first and
//! carries them as evidence.

use crate::diagnose::{Finding, finding, log_ramp};
use crate::osview::{FrameTotals, SplitClass, SplitTotals};
use crate::profile::{LONG_POLL_NS, Profile};
use crate::text::{dur, pct};

/// Measured long polls of a class needed for a rule to rise above info.
const MIN_MEASURED: u64 = 2;
/// Highest score without measured evidence (info).
const UNMEASURED_CAP: f64 = 20.0;

/// The share of the long polls' time the OS view splits (measured or estimated): the part
/// of `long_polls` its cause rules carry instead. 0 without OS data.
pub fn explained_share(p: &Profile) -> f64 {
    if !p.os.has_data() || p.long_polls.1 == 0 {
        return 0.0;
    }
    let split =
        p.os.polls_measured
            .wall_ns
            .saturating_add(p.os.polls_estimated.wall_ns);
    (split as f64 / p.long_polls.1 as f64).min(1.0)
}

/// How the OS view split the long polls it did split, for those it did not: the share of
/// the split polls' wall time that was mostly waiting for a CPU (the host's, not the
/// service's), and the evidence line. `None` without OS data, without unsplit long polls,
/// or with fewer than [`MIN_MEASURED`] measured splits to judge by.
pub(crate) fn unsplit_host_share(p: &Profile) -> Option<(f64, String)> {
    let m = &p.os.polls_measured;
    let e = &p.os.polls_estimated;
    let split = m.wall_ns.saturating_add(e.wall_ns);
    let unsplit = p.long_polls.1.saturating_sub(split);
    if !p.os.has_data() || unsplit == 0 || split == 0 || m.count < MIN_MEASURED {
        return None;
    }
    let c = SplitClass::WaitingForCpu;
    let host = m.wall_of(c).saturating_add(e.wall_of(c));
    let share = (host as f64 / split as f64).min(1.0);
    Some((
        share,
        format!(
            "{} of long polls (about {} polls) the OS view did not split: judged like those it split, of whose time {} was mostly waiting for a CPU (the host's, see host_cpu_contention), so that share of them is not counted against the service",
            dur(unsplit),
            p.long_polls
                .0
                .saturating_sub(m.count.saturating_add(e.count)),
            pct(share)
        ),
    ))
}

/// The split long polls of class `c`: (measured, estimated) count and wall time.
fn of_class(p: &Profile, c: SplitClass) -> ((u64, u64), (u64, u64)) {
    let pick = |t: &SplitTotals| (t.by_class[c as usize], t.wall_of(c));
    (pick(&p.os.polls_measured), pick(&p.os.polls_estimated))
}

fn coverage_line(p: &Profile) -> String {
    let m = &p.os.polls_measured;
    let e = &p.os.polls_estimated;
    format!(
        "of {} long polls ({}), the OS sampler measured {} ({}: {}) and {} were estimated from periodic samples ({}); {} not split",
        p.long_polls.0,
        dur(p.long_polls.1),
        m.count,
        dur(m.wall_ns),
        m.split.describe(),
        e.count,
        e.split.describe(),
        p.os.polls_unsplit
    )
}

fn symbols_line(p: &Profile, out: &mut Vec<String>) {
    if let Some(problem) = p.os.symbol_problems.first() {
        out.push(format!(
            "some frames are not symbolized ({problem}): shown as address, module and offset; give the binary to symbolize them"
        ));
    }
}

/// The evidence both stack rules end with: the top frame's stack, how much the OS view
/// measured, and what could not be symbolized.
fn top_frame_evidence(p: &Profile, top: Option<&FrameTotals>, evidence: &mut Vec<String>) {
    if let Some(f) = top
        && let Some(info) =
            p.os.stacks
                .get(f.stack as usize)
                .and_then(|s| s.info.as_ref())
    {
        evidence.push(format!("stack: {}", info.shown.join(" <- ")));
    }
    evidence.push(coverage_line(p));
    symbols_line(p, evidence);
}

/// The window of a frame's longest poll.
fn longest_poll_window(f: &FrameTotals) -> (u64, u64) {
    (
        f.max_poll_at_ns,
        f.max_poll_at_ns.saturating_add(f.max_poll_ns),
    )
}

/// Above info only for a meaningful share of the threads' time (1%), with measured
/// evidence; critical from a fifth of it.
fn cause_score(p: &Profile, measured: u64, wall: u64, max_ns: u64) -> f64 {
    let threads = crate::diagnose::thread_time(p).max(1) as f64;
    let share = (wall as f64 / threads).min(1.0);
    let score = if share < 0.01 {
        UNMEASURED_CAP * share / 0.01
    } else {
        25.0 + 65.0 * log_ramp(share, 0.01, 0.2)
            + 10.0 * log_ramp(max_ns as f64, LONG_POLL_NS as f64, 100e6)
    };
    if measured >= MIN_MEASURED {
        score
    } else {
        score.min(UNMEASURED_CAP)
    }
}

/// `blocking_in_async`: long polls mostly off-CPU.
pub(crate) fn blocking_in_async(p: &Profile) -> Finding {
    let ((mn, mw), (en, ew)) = of_class(p, SplitClass::OffCpu);
    let off =
        p.os.polls_measured
            .off_by_class
            .saturating_add(p.os.polls_estimated.off_by_class);
    let frames: Vec<_> =
        p.os.by_top_frame(false)
            .into_iter()
            .filter(|f| f.split.off_cpu_ns >= f.split.on_cpu_ns && f.split.off_cpu_ns > 0)
            .collect();
    let max_ns = frames.iter().map(|f| f.max_poll_ns).max().unwrap_or(0);
    let score = cause_score(p, mn, off, max_ns.max(LONG_POLL_NS));
    let mut evidence = vec![format!(
        "{} long polls were mostly off-CPU (blocked or sleeping in the kernel while holding a worker): {} measured ({}), {} estimated ({})",
        mn + en,
        mn,
        dur(mw),
        en,
        dur(ew)
    )];
    for f in frames.iter().take(3) {
        evidence.push(format!(
            "{}{}: {} long polls, {} off-CPU, longest {} at {}",
            f.frame,
            f.waits_in
                .map(|w| format!(" (waiting in {w})"))
                .unwrap_or_default(),
            f.polls,
            dur(f.split.off_cpu_ns),
            dur(f.max_poll_ns),
            dur(f.max_poll_at_ns)
        ));
    }
    top_frame_evidence(p, frames.first(), &mut evidence);
    let title = match frames.first() {
        Some(f) => format!(
            "long polls blocked off-CPU{} in {}",
            f.waits_in.map(|w| format!(" ({w})")).unwrap_or_default(),
            f.frame
        ),
        None => format!("{} long polls mostly off-CPU", mn + en),
    };
    let window = frames.first().map(longest_poll_window);
    finding(
        "blocking_in_async",
        title,
        score,
        evidence,
        window,
        "Blocking in async code: the poll held its worker thread while the thread slept or waited in the kernel at the frame above. Make that call async (tokio's locks, sleep, net and fs), or move it off the workers (tokio::task::spawn_blocking, a dedicated thread); never hold a std lock across slow work.",
    )
}

/// `cpu_heavy_polls`: long polls mostly on a CPU. With CPU samples inside long polls (the
/// profiler on), the hot frames are the samples' top user frames, most samples first;
/// otherwise the top user frames of the stacks the sampler captured in them.
pub(crate) fn cpu_heavy_polls(p: &Profile) -> Finding {
    let ((mn, mw), (en, ew)) = of_class(p, SplitClass::OnCpu);
    let sampled = p.os.cpu_in_polls.0 > 0;
    let mut frames: Vec<_> =
        p.os.by_top_frame(true)
            .into_iter()
            .filter(|f| {
                if sampled {
                    f.cpu_samples > 0
                } else {
                    f.split.on_cpu_ns > f.split.off_cpu_ns && f.user_on_cpu_ns > 0
                }
            })
            .collect();
    if sampled {
        frames.sort_by_key(|f| std::cmp::Reverse((f.user_cpu_samples, f.cpu_samples)));
    } else {
        frames.sort_by_key(|f| std::cmp::Reverse(f.user_on_cpu_ns));
    }
    let max_ns = frames.iter().map(|f| f.max_poll_ns).max().unwrap_or(0);
    // The hot time is the on-CPU time of the long polls mostly on a CPU (long on their CPU
    // time alone), measured and estimated; a poll made long by a wait for a CPU is the
    // host's (`host_cpu_contention`), whatever its on-CPU share, so neither its wall time
    // nor its CPU counts. Only stacks in the application's code count as hot (a thread
    // inside a system call is the kernel's work, loopback I/O for one): the share of the
    // measured long polls' on-CPU time whose stacks were there. CPU samples inside long
    // polls are their CPU time directly.
    let user_on: u64 = frames.iter().map(|f| f.user_on_cpu_ns).sum();
    let stacks_on: u64 =
        p.os.by_top_frame(true)
            .iter()
            .map(|f| f.split.on_cpu_ns)
            .fold(0, u64::saturating_add);
    let on_class_on =
        p.os.polls_measured
            .on_by_class
            .saturating_add(p.os.polls_estimated.on_by_class);
    let split_hot = if stacks_on == 0 {
        0
    } else {
        (on_class_on as f64 * (user_on as f64 / stacks_on as f64).min(1.0)) as u64
    };
    let sampled_hot: u64 = frames.iter().map(|f| f.user_cpu_ns).sum();
    let hot = split_hot.max(sampled_hot);
    let measured = mn.max(p.os.polls_cpu_sampled);
    let score = cause_score(p, measured, hot, max_ns.max(LONG_POLL_NS));
    let mut evidence = vec![format!(
        "{} long polls were mostly on a CPU: {} measured ({}), {} estimated ({}); {} of their time on a CPU",
        mn + en,
        mn,
        dur(mw),
        en,
        dur(ew),
        dur(on_class_on)
    )];
    evidence.push(format!(
        "hot: {} on a CPU in the application's code inside long polls, {} of the threads' time ({})",
        dur(hot),
        pct(hot as f64 / crate::diagnose::thread_time(p).max(1) as f64),
        if sampled_hot >= split_hot && sampled_hot > 0 {
            "from CPU samples"
        } else {
            "the polls' on-CPU time times the share of the measured polls' on-CPU time in the application's code"
        }
    ));
    if sampled {
        let (n, ns) = p.os.cpu_in_polls;
        evidence.push(format!(
            "{} CPU samples fell inside {} long polls ({} of CPU time)",
            n,
            p.os.polls_cpu_sampled,
            dur(ns)
        ));
    }
    for f in frames.iter().take(3) {
        if sampled {
            evidence.push(format!(
                "hot: {}: {} CPU samples inside long polls ({} of them, {}), longest poll {} at {}",
                f.frame,
                f.cpu_samples,
                pct(f.cpu_samples as f64 / p.os.cpu_in_polls.0.max(1) as f64),
                dur(f.cpu_ns),
                dur(f.max_poll_ns),
                dur(f.max_poll_at_ns)
            ));
            continue;
        }
        evidence.push(format!(
            "hot: {}: {} long polls, {} on-CPU in the application's code ({} of the measured), longest {} at {}",
            f.frame,
            f.polls,
            dur(f.user_on_cpu_ns),
            pct(f.user_on_cpu_ns as f64 / user_on.max(1) as f64),
            dur(f.max_poll_ns),
            dur(f.max_poll_at_ns)
        ));
    }
    top_frame_evidence(p, frames.first(), &mut evidence);
    let title = match frames.first() {
        Some(f) => format!("long polls busy on a CPU in {}", f.frame),
        None => format!("{} long polls mostly on a CPU", mn + en),
    };
    let window = frames.first().map(longest_poll_window);
    finding(
        "cpu_heavy_polls",
        title,
        score,
        evidence,
        window,
        "CPU-heavy work inside polls: the poll ran on its CPU for milliseconds at the hot frames above, and every task queued on that worker waited. Cache or precompute the result, move the work to tokio::task::spawn_blocking or a rayon pool, or split it with tokio::task::yield_now between chunks.",
    )
}

/// `host_cpu_contention`: long polls mostly waiting for a CPU.
pub(crate) fn host_cpu_contention(p: &Profile) -> Finding {
    let ((mn, mw), (en, ew)) = of_class(p, SplitClass::WaitingForCpu);
    let (wall, cpu, runq) = p.os.thread_time;
    let waiting = if wall == 0 {
        0.0
    } else {
        runq as f64 / wall as f64
    };
    let runnable = if cpu.saturating_add(runq) == 0 {
        0.0
    } else {
        runq as f64 / (cpu + runq) as f64
    };
    // Info unless widespread: the service's threads wait for a CPU most of their time.
    let mut score = UNMEASURED_CAP * log_ramp(runnable.max(1e-9), 0.05, 0.5);
    if waiting >= 0.5 {
        score = 30.0 + 40.0 * ((waiting - 0.5) / 0.5).min(1.0);
    }
    let evidence = vec![
        format!(
            "{} long polls were mostly waiting for a CPU (runnable, not running: the host preempted their thread): {} measured ({}), {} estimated ({}); they are not counted as long polls of the service",
            mn + en,
            mn,
            dur(mw),
            en,
            dur(ew)
        ),
        format!(
            "the recorded threads waited for a CPU {} of their time and {} of the time they were runnable (periodic samples over {})",
            pct(waiting),
            pct(runnable),
            dur(wall)
        ),
        coverage_line(p),
    ];
    finding(
        "host_cpu_contention",
        format!(
            "threads waited for a CPU {} of their runnable time",
            pct(runnable)
        ),
        score,
        evidence,
        None,
        "Host CPU contention: other processes (or more busy threads than cores) take the CPUs, so the service's threads wait in the run queue. Not a fault of the service's code: give it dedicated cores or a CPU quota that matches its threads, lower the batch jobs' priority, or reduce worker threads to the cores it really has.",
    )
}

#[cfg(test)]
mod tests {
    use crate::diagnose::Severity;
    use fdr_format::{EventKind, Module, SampleCause, TaskId};
    use fdr_test_support::events::os_sample;
    use fdr_test_support::scenarios::TraceBuilder;

    const MS: u64 = 1_000_000;

    /// A tokio worker whose long polls the sampler measured, each with one stack in the
    /// application's code: `preempted` polls of 10 ms that ran 0.4 ms and waited for a CPU
    /// the rest (a busy host), then `heavy` polls of `heavy_ms` that ran on their CPU all
    /// along but for a tenth of a millisecond. Every poll ends 1 ms before the next starts.
    fn trace(preempted: u64, heavy: u64, heavy_ms: u64) -> crate::Profile {
        trace_with_unsplit(preempted, heavy, heavy_ms, 0)
    }

    /// [`trace`], then `unsplit` polls of 10 ms after the sampler's last sample (the dump
    /// ends before it samples again, so the OS view cannot split them).
    fn trace_with_unsplit(
        preempted: u64,
        heavy: u64,
        heavy_ms: u64,
        unsplit: u64,
    ) -> crate::Profile {
        let mut b = TraceBuilder::new();
        // The application's executable (not on this host: its frames stay addresses).
        b.module(Module {
            start: 0x5566_0000_0000,
            end: 0x5566_0100_0000,
            file_offset: 0,
            path: "/srv/profiles/profile-service".into(),
            build_id: Vec::new(),
        });
        let worker = b.thread("service-worker");
        let sampler = b.thread("fdr-sampler");
        let name = b.string("http GET /profile");
        let site = b.site("src/http.rs", 44);
        let sample = |cause, cpu, runq| os_sample(worker, cause, cpu, runq, b'R');
        let (mut cpu, mut runq) = (0u64, 0u64);
        b.push(sampler, 0, sample(SampleCause::Periodic, cpu, runq));
        let mut t = MS;
        for i in 0..preempted + heavy {
            let task = TaskId(i + 1);
            let (wall, on) = if i < preempted {
                (10 * MS, 400_000)
            } else {
                (heavy_ms * MS, heavy_ms * MS - MS / 10)
            };
            b.task(worker, t, task, name, site);
            let end = t + 1_000 + wall;
            b.poll(worker, t + 1_000, end, task, true);
            // The sampler finds the poll long a quarter in, and sees it end.
            let seen = t + 1_000 + wall / 4;
            b.push(sampler, seen, sample(SampleCause::LongScope, cpu, runq));
            b.stack(
                sampler,
                seen + 1_000,
                worker,
                SampleCause::LongScope,
                &[0x5566_0000_1000],
                None,
            );
            cpu += on * 3 / 4;
            runq += (wall - on) * 3 / 4;
            b.push(
                sampler,
                end + 1_000,
                sample(SampleCause::ScopeEnd, cpu, runq),
            );
            b.push(worker, end + 2_000, EventKind::TaskDrop { task });
            t = end + MS;
        }
        b.push(sampler, t, sample(SampleCause::Periodic, cpu, runq));
        for i in 0..unsplit {
            let task = TaskId(preempted + heavy + i + 1);
            t += MS;
            b.push(
                worker,
                t,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name,
                    site,
                },
            );
            b.push(worker, t + 1_000, EventKind::PollStart { task });
            t += 10 * MS;
            b.push(worker, t, EventKind::PollEnd { task, ready: true });
            b.push(worker, t + 1_000, EventKind::TaskDrop { task });
        }
        let bytes = b.write_to(Vec::new()).expect("written");
        crate::profile_slice(&bytes, crate::ProfileOptions::default())
            .expect("read")
            .0
    }

    fn cpu_heavy(p: &crate::Profile) -> crate::Finding {
        crate::diagnose(p)
            .findings()
            .find(|f| f.rule == "cpu_heavy_polls")
            .cloned()
            .expect("cpu_heavy_polls applies")
    }

    #[test]
    fn polls_long_from_waiting_for_a_cpu_are_not_cpu_heavy() {
        // 200 preempted polls (80 ms on a CPU in all, 4% of their time) and a few that
        // are long on their own CPU time (about 8 ms): the host's contention, not a hot
        // handler.
        let p = trace(200, 4, 2);
        assert_eq!(p.os.polls_measured.count, 204, "{:?}", p.os.polls_measured);
        let f = cpu_heavy(&p);
        assert_eq!(f.severity, Severity::Info, "{f:?}");
    }

    #[test]
    fn polls_long_on_their_cpu_are_cpu_heavy_on_a_busy_host_too() {
        let f = cpu_heavy(&trace(200, 60, 5));
        assert!(f.severity > Severity::Info, "{f:?}");
        let f = cpu_heavy(&trace(0, 60, 5));
        assert!(f.severity > Severity::Info, "{f:?}");
    }

    fn long_polls(p: &crate::Profile) -> crate::Finding {
        crate::diagnose(p)
            .findings()
            .find(|f| f.rule == "long_polls")
            .cloned()
            .expect("long_polls applies")
    }

    #[test]
    fn long_polls_the_os_view_did_not_split_are_judged_like_those_it_did() {
        // 200 measured long polls, all the host's (waiting for a CPU), and 150 more the
        // sampler never saw: on a starved host, the unsplit ones are the host's too.
        let p = trace_with_unsplit(200, 0, 0, 150);
        assert!(p.os.polls_unsplit >= 150, "{:?}", p.os.polls_unsplit);
        let f = long_polls(&p);
        assert_eq!(f.severity, Severity::Info, "{f:?}");
        assert!(
            f.evidence.iter().any(|e| e.contains("did not split")),
            "{f:?}"
        );
        // Split polls that are the service's own (on their CPU) leave the unsplit ones
        // counted against the service.
        let f = long_polls(&trace_with_unsplit(0, 60, 5, 150));
        assert!(f.severity > Severity::Info, "{f:?}");
    }
}
