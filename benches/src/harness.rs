//! The interleaved harness the recording costs are judged with: cases timed in batches,
//! round by round, every ratio taken within a round and reported with its spread.
//!
//! On a shared machine the speed drifts between rounds; within one round (a few
//! milliseconds) it is about the same for every case, so the ratio of two cases is taken
//! round by round and summarized by its median, its 10th and its 90th percentile over
//! rounds. A batch during which the thread was switched out (its run-queue wait or its count
//! of timeslices moved) measured the host, not the code: a ratio is taken over the rounds in
//! which neither of its two batches was, as long as there are [`MIN_CLEAN_ROUNDS`] of them.
//!
//! A floor is measured in several [`Shape`]s and black-box placements, and the fastest is
//! the floor; [`plain`] loops of the same stores, written out by hand, say whether that
//! floor agrees with the simplest code that does the same work.

use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

/// One timed batch of a case: ns per op, wall-clock and on-CPU (wall-clock less the time
/// the thread waited for a CPU), and whether the thread was switched out during it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Wall-clock ns per op.
    pub wall_ns: f64,
    /// On-CPU ns per op.
    pub cpu_ns: f64,
    /// The whole process's CPU time per op, all threads (a recorder's or a profiler's
    /// collector thread included), in ns; 0 where it is not available.
    pub process_cpu_ns: f64,
    /// The thread waited for a CPU or gave it up during the batch (always false where
    /// schedstat is not available).
    pub switched: bool,
}

/// Fewest rounds a ratio is taken over when it leaves out those with a switched batch;
/// with fewer clean rounds it is taken over all of them, and says so.
pub const MIN_CLEAN_ROUNDS: usize = 30;

/// How the timed loop calls a case's op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A loop compiled for the op, with the op inlined into it: the shape every recording
    /// cost is measured in.
    Inline,
    /// A call through `&mut dyn FnMut()` per op.
    Dyn,
    /// A call through a `fn()` pointer the compiler cannot see through, per op.
    FnPtr,
    /// A loop written out by hand, timed by itself.
    Plain,
}

/// A measured case: a name, its shape, and what times one batch of its op.
pub struct Case<'a> {
    /// What the case measures, as printed.
    pub name: &'static str,
    /// How its op is called.
    pub shape: Shape,
    time: Box<dyn FnMut(u64) -> Sample + 'a>,
}

impl<'a> Case<'a> {
    /// `op` inlined into a loop compiled for it ([`Shape::Inline`]).
    pub fn inline(name: &'static str, mut op: impl FnMut() + 'a) -> Case<'a> {
        Case::new(name, Shape::Inline, move |n| time_inline(&mut op, n))
    }

    /// `op` called through `&mut dyn FnMut()` ([`Shape::Dyn`]).
    pub fn dyn_call(name: &'static str, mut op: impl FnMut() + 'a) -> Case<'a> {
        Case::new(name, Shape::Dyn, move |n| time_dyn(&mut op, n))
    }

    /// `op` called through an opaque `fn()` pointer ([`Shape::FnPtr`]).
    pub fn fn_ptr(name: &'static str, op: fn()) -> Case<'a> {
        Case::new(name, Shape::FnPtr, move |n| time_fn_ptr(op, n))
    }

    /// A loop written out by hand: `batch(n)` runs `n` ops and times them with [`timed`]
    /// ([`Shape::Plain`]).
    pub fn plain(name: &'static str, batch: impl FnMut(u64) -> Sample + 'a) -> Case<'a> {
        Case::new(name, Shape::Plain, batch)
    }

    /// A case whose `batch(n)` runs `n` ops in `shape` and times them with [`timed`] (for
    /// ops with state to set up or end within the timed span).
    pub fn new(
        name: &'static str,
        shape: Shape,
        batch: impl FnMut(u64) -> Sample + 'a,
    ) -> Case<'a> {
        Case {
            name,
            shape,
            time: Box::new(batch),
        }
    }

    /// Times one batch of `n` ops.
    pub fn time(&mut self, n: u64) -> Sample {
        (self.time)(n)
    }
}

/// Field `n` of this thread's Linux schedstat (0: ns on a CPU, 1: ns runnable but waiting
/// for one, 2: timeslices run); `None` where it is not available.
pub fn schedstat(n: usize) -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(n)?.parse().ok())
}

/// This thread's (run-queue wait ns, timeslices) from one read of schedstat; zeros where
/// it is not available.
fn sched_now() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/thread-self/schedstat") else {
        return (0, 0);
    };
    let mut fields = text
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

/// The process's CPU time so far, all threads, in ns (0 where it is not available).
#[cfg(target_os = "linux")]
fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(not(target_os = "linux"))]
fn process_cpu_ns() -> u64 {
    0
}

/// Times `body`, which runs `n` ops: ns per op, wall-clock, on-CPU and the process's CPU
/// time. The thread's wait for a CPU and its timeslices are read before and after,
/// outside the timed span.
#[inline(always)]
pub fn timed(n: u64, body: impl FnOnce()) -> Sample {
    let (wait0, slices0) = sched_now();
    let cpu0 = process_cpu_ns();
    let t = Instant::now();
    body();
    let wall = t.elapsed().as_nanos() as f64;
    let cpu1 = process_cpu_ns();
    let (wait1, slices1) = sched_now();
    let waited = wait1.saturating_sub(wait0) as f64;
    Sample {
        wall_ns: wall / n as f64,
        cpu_ns: (wall - waited).max(0.0) / n as f64,
        process_cpu_ns: cpu1.saturating_sub(cpu0) as f64 / n as f64,
        switched: wait1 != wait0 || slices1 != slices0,
    }
}

#[inline(never)]
fn time_inline<F: FnMut()>(op: &mut F, n: u64) -> Sample {
    timed(n, || {
        for _ in 0..n {
            op();
        }
    })
}

#[inline(never)]
fn time_dyn(op: &mut dyn FnMut(), n: u64) -> Sample {
    timed(n, || {
        for _ in 0..n {
            op();
        }
    })
}

#[inline(never)]
fn time_fn_ptr(op: fn(), n: u64) -> Sample {
    let op = black_box(op);
    timed(n, || {
        for _ in 0..n {
            op();
        }
    })
}

/// Runs the cases interleaved for `rounds` rounds of one `batch` each (after one warm-up
/// batch each), the order reversed every other round so that no case always runs first,
/// and returns every batch: `[case][round]`.
pub fn rounds(cases: &mut [Case<'_>], batch: u64, rounds: usize) -> Vec<Vec<Sample>> {
    let mut samples = vec![Vec::with_capacity(rounds); cases.len()];
    for c in cases.iter_mut() {
        c.time(batch);
    }
    for round in 0..rounds {
        for k in 0..cases.len() {
            let i = if round % 2 == 0 {
                k
            } else {
                cases.len() - 1 - k
            };
            samples[i].push(cases[i].time(batch));
        }
    }
    samples
}

/// The median and the 10th and 90th percentiles of a set of values (nearest rank), and how
/// many values they summarize.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The 10th percentile.
    pub p10: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// How many values (rounds).
    pub n: usize,
}

impl Spread {
    /// The spread of `values` (at least one).
    pub fn of(mut values: Vec<f64>) -> Spread {
        assert!(!values.is_empty(), "the spread of no values");
        values.sort_by(f64::total_cmp);
        let at = |q: usize| values[(values.len() - 1) * q / 100];
        Spread {
            median: values[values.len() / 2],
            p10: at(10),
            p90: at(90),
            n: values.len(),
        }
    }
}

/// Wall-clock ns per op of each batch.
pub fn wall(samples: &[Sample]) -> Vec<f64> {
    samples.iter().map(|s| s.wall_ns).collect()
}

/// On-CPU ns per op of each batch.
pub fn on_cpu(samples: &[Sample]) -> Vec<f64> {
    samples.iter().map(|s| s.cpu_ns).collect()
}

/// The process's CPU ns per op of each batch.
pub fn process_cpu(samples: &[Sample]) -> Vec<f64> {
    samples.iter().map(|s| s.process_cpu_ns).collect()
}

/// Each round's `a / b` (same length).
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    assert_eq!(a.len(), b.len(), "ratios of unequal rounds");
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

/// The rounds in which none of `cases`' batches was switched out, or every round (with a
/// warning naming `what`) if there are fewer than [`MIN_CLEAN_ROUNDS`] such.
pub fn clean_rounds(what: &str, cases: &[&[Sample]]) -> Vec<usize> {
    let rounds = cases.iter().map(|c| c.len()).min().unwrap_or(0);
    let clean: Vec<usize> = (0..rounds)
        .filter(|&r| cases.iter().all(|c| !c[r].switched))
        .collect();
    if clean.len() >= MIN_CLEAN_ROUNDS.min(rounds) {
        clean
    } else {
        println!(
            "warning: {what}: only {} of {rounds} rounds ran without a switch; taken over all rounds",
            clean.len()
        );
        (0..rounds).collect()
    }
}

/// The spread of `a / b` (wall-clock) over the rounds in which neither batch was switched
/// out ([`clean_rounds`]; `what` names it in a warning).
pub fn ratio_spread(what: &str, a: &[Sample], b: &[Sample]) -> Spread {
    let rounds = clean_rounds(what, &[a, b]);
    Spread::of(
        rounds
            .iter()
            .map(|&r| a[r].wall_ns / b[r].wall_ns)
            .collect(),
    )
}

/// The median wall-clock ns of a case's batches that were not switched out (of all of
/// them if fewer than [`MIN_CLEAN_ROUNDS`] were not).
pub fn clean_median(what: &str, v: &[Sample]) -> f64 {
    let rounds = clean_rounds(what, &[v]);
    crate::median(rounds.iter().map(|&r| v[r].wall_ns).collect::<Vec<_>>())
}

/// Reports a spread as four figures: `name` (the median), `name_p10`, `name_p90` and
/// `name_rounds` (how many rounds they summarize).
pub fn report_spread(name: &str, s: Spread) {
    crate::report(name, s.median);
    crate::report(&format!("{name}_p10"), s.p10);
    crate::report(&format!("{name}_p90"), s.p90);
    crate::report(&format!("{name}_rounds"), s.n as f64);
}

/// Of several variants of the same work (`[variant][round]`), the index of the one with
/// the lowest median wall-clock ns ([`clean_median`]): a floor that runs slow in one shape
/// cannot be the floor.
pub fn fastest(variants: &[&[Sample]]) -> usize {
    let medians: Vec<f64> = variants
        .iter()
        .map(|v| clean_median("a floor variant", v))
        .collect();
    (0..medians.len())
        .min_by(|&a, &b| medians[a].total_cmp(&medians[b]))
        .expect("at least one variant")
}

/// Whether an agreement figure (a ratio that should be 1) is within `tolerance` of 1;
/// if not, prints a warning that a reader of the bench's output cannot miss.
pub fn check_agreement(name: &str, value: f64, tolerance: f64, what: &str) -> bool {
    let ok = (value - 1.0).abs() <= tolerance;
    if !ok {
        let line = "!".repeat(88);
        let msg = format!(
            "{line}\nWARNING: {name} = {value:.3}, off 1 by more than {:.0}%: {what}\n{line}",
            tolerance * 100.0
        );
        println!("{msg}");
        eprintln!("{msg}");
    }
    ok
}

thread_local! {
    static PLAIN_BUF: [Cell<[u64; 2]>; 4096] = const { [const { Cell::new([0; 2]) }; 4096] };
}

/// A plain loop of `EVENTS` timestamped 16-byte thread-local stores per op, `n` ops,
/// written out by hand (the buffer's address taken once, the position in a register, no
/// call and no black box between the stores): the simplest code that does a floor's work,
/// which the floor variants must agree with.
#[inline(never)]
pub fn plain<const EVENTS: u64>(n: u64) -> Sample {
    PLAIN_BUF.with(|buf| {
        // The buffer escapes, so its stores can be neither left out nor moved out of the
        // timed span.
        let buf = black_box(buf);
        let mut pos = 0usize;
        timed(n, || {
            for _ in 0..n {
                for tag in 0..EVENTS {
                    let ts = fdr_recorder::now_ticks();
                    buf[pos & 4095].set([ts, tag]);
                    pos = pos.wrapping_add(1);
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall_ns: f64, switched: bool) -> Sample {
        Sample {
            wall_ns,
            cpu_ns: wall_ns,
            process_cpu_ns: wall_ns,
            switched,
        }
    }

    #[test]
    fn spread_is_nearest_rank() {
        let s = Spread::of((1..=11).rev().map(f64::from).collect());
        assert_eq!((s.median, s.p10, s.p90, s.n), (6.0, 2.0, 10.0, 11));
    }

    #[test]
    fn ratios_leave_out_rounds_with_a_switched_batch() {
        let rounds = MIN_CLEAN_ROUNDS + 10;
        // Every fourth round the code's batch was switched out and took ten times as long.
        let code: Vec<Sample> = (0..rounds)
            .map(|r| sample(if r % 4 == 0 { 200.0 } else { 22.0 }, r % 4 == 0))
            .collect();
        let floor: Vec<Sample> = (0..rounds).map(|_| sample(20.0, false)).collect();
        let s = ratio_spread("test", &code, &floor);
        assert_eq!((s.median, s.p90), (1.1, 1.1));
        assert_eq!(s.n, rounds - rounds.div_ceil(4));
    }

    #[test]
    fn too_few_clean_rounds_take_them_all() {
        let code: Vec<Sample> = (0..40).map(|r| sample(30.0, r % 2 == 0)).collect();
        let floor: Vec<Sample> = (0..40).map(|r| sample(20.0, r % 2 == 1)).collect();
        assert_eq!(ratio_spread("test", &code, &floor).n, 40);
    }

    #[test]
    fn the_fastest_variant_is_the_floor() {
        let slow: Vec<Sample> = (0..40).map(|_| sample(23.0, false)).collect();
        let fast: Vec<Sample> = (0..40).map(|_| sample(20.0, false)).collect();
        assert_eq!(fastest(&[&slow, &fast, &slow]), 1);
    }
}
