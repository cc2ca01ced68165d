//! What every scenario's service shares, as a small service framework would provide it:
//! fdr set up as the README's quick start shows, a tokio runtime with fdr's worker hooks,
//! the HTTP glue, the load generator, the downstream service, the incident timeline and the
//! dump.

pub(crate) mod backend;
pub(crate) mod http;
pub(crate) mod load;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use load::LoadReport;

/// The error type of the scenario programs.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The file a run's dump is written to, in its output directory.
pub(crate) const DUMP_FILE: &str = "dump.fdr";
/// The file a run's own report (load, dump) is written to.
pub(crate) const RUN_FILE: &str = "run.json";

/// One run of one scenario: where its files go and how long its phases last.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The run's output directory.
    pub(crate) out: PathBuf,
    /// Healthy traffic before the fault.
    pub(crate) warmup: Duration,
    /// How long the fault lasts; the dump is taken at its end, with the fault still on.
    pub(crate) fault: Duration,
}

impl Ctx {
    /// The dump's path.
    pub(crate) fn dump_path(&self) -> PathBuf {
        self.out.join(DUMP_FILE)
    }
}

/// Starts fdr as a service does: the flight recorder on (by default a 10 s window within
/// 64 MiB), and a panic leaves the last seconds behind in the output directory.
pub(crate) fn start_fdr(ctx: &Ctx, flight: fdr::FlightConfig) -> Result<(), BoxError> {
    fdr::start(fdr::Config {
        flight: Some(flight),
        service_version: env!("CARGO_PKG_VERSION").into(),
        os: fdr::OsConfig::platform_default(),
        ..fdr::Config::default()
    })?;
    // The suite runs debug builds, where recording an event costs several times what it
    // does in release; at the default 1% budget the cost meter would shed the wakes and
    // short polls some faults' evidence is made of (seen: 2.2% of the process's CPU in a
    // debug `blocking_sleep` run). The suite judges the diagnosis, so it records full
    // detail; the budget has its own tests.
    fdr::cost::set_budget(1.0)?;
    fdr::dump_on_panic(&ctx.out);
    Ok(())
}

/// The service's tokio runtime: multi-threaded (one worker per core unless `workers` says
/// otherwise), fdr's worker hooks installed.
pub(crate) fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, BoxError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("service-worker");
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    fdr::tokio::instrument(&mut builder);
    Ok(builder.build()?)
}

/// The incident's timeline: load starts at once and runs through a healthy warm-up and the
/// fault window; `inject` turns the fault on after the warm-up; at the window's end, with
/// the fault still on and the clients still sending, the flight recorder is dumped (the
/// moment an operator would take it). Returns what the clients saw.
pub(crate) fn incident<L>(
    ctx: &Ctx,
    inject: impl FnOnce(),
    load: L,
) -> Result<(LoadReport, u64), BoxError>
where
    L: FnOnce(Instant, Instant) -> Result<LoadReport, BoxError> + Send + 'static,
{
    let start = Instant::now();
    let fault_at = start + ctx.warmup;
    let dump_at = fault_at + ctx.fault;
    // The clients stop a little after the dump, so it is taken under full load.
    let load_end = dump_at + Duration::from_millis(150);
    let clients = std::thread::Builder::new()
        .name("load-generator".into())
        .spawn(move || load(fault_at, load_end))?;
    sleep_until(fault_at);
    inject();
    sleep_until(dump_at);
    let bytes = dump(&ctx.dump_path())?;
    let report = clients
        .join()
        .map_err(|_| "the load generator panicked")??;
    Ok((report, bytes))
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Writes the flight recorder to `path` through a temporary file and a rename; its size.
pub(crate) fn dump(path: &Path) -> Result<u64, BoxError> {
    let tmp = path.with_extension("fdr.tmp");
    let mut out = BufWriter::new(fs::File::create(&tmp)?);
    let bytes = fdr::flight().write_to(&mut out)?;
    out.flush()?;
    drop(out);
    fs::rename(&tmp, path)?;
    Ok(bytes)
}

/// Writes the run's report beside the dump and prints it.
pub(crate) fn finish(
    ctx: &Ctx,
    scenario: &str,
    load: &LoadReport,
    dump_bytes: u64,
) -> Result<(), BoxError> {
    let stats = fdr::stats();
    let aged_out = stats.lost_for(fdr::LossReason::RingOverwrite).events;
    let report = json!({
        "scenario": scenario,
        "dump": ctx.dump_path().display().to_string(),
        "dump_bytes": dump_bytes,
        "load": load.to_json(),
        "recorder": {
            "events": stats.events,
            "aged_out_events": aged_out,
            "lost_events": stats.lost_events() - aged_out,
        },
    });
    fs::write(
        ctx.out.join(RUN_FILE),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    println!("{scenario}: before the fault {}", load.before);
    println!("{scenario}: during the fault {}", load.during);
    println!(
        "{scenario}: dumped {} ({dump_bytes} bytes); recorder: {} events, {} lost",
        ctx.dump_path().display(),
        stats.events,
        stats.lost_events() - aged_out
    );
    if load.before.requests + load.during.requests == 0 {
        return Err(format!("{scenario}: the clients completed no request").into());
    }
    Ok(())
}

/// Timed runs per size in [`size_for`]. On a loaded 2-core host (a CPU burner and builds
/// beside the suite) the best of three runs was preempted too: `cpu_heavy` sized its table
/// to 122 rows instead of the 2882-5760 of other runs, and its fault all but vanished.
const SIZING_RUNS: usize = 25;

/// How much of some work this host does in `target`: the size `n` for which the work
/// `prepare(n)` returns takes about `target`, at best of [`SIZING_RUNS`] runs (the best run
/// is the least disturbed by whatever else the host is doing). `prepare` builds what the work needs
/// and is not timed, and the work runs once untimed first (page faults, caches).
pub(crate) fn size_for<W: FnMut()>(
    target: Duration,
    start: usize,
    prepare: impl Fn(usize) -> W,
) -> usize {
    let best = |n: usize| {
        let mut work = prepare(n);
        work();
        (0..SIZING_RUNS)
            .map(|_| {
                let t = Instant::now();
                work();
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let mut n = start.max(1);
    // Bounded: 2^40 times the start is beyond any work a scenario measures.
    for _ in 0..40 {
        let took = best(n);
        if took >= target / 4 {
            // Close enough to scale linearly from here.
            let scaled = n as f64 * target.as_secs_f64() / took.as_secs_f64().max(1e-9);
            return scaled.ceil().max(1.0) as usize;
        }
        n *= 2;
    }
    n
}

/// A small xorshift generator: request keys and backend latencies, no cryptography.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from `seed` (any value).
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi.saturating_sub(lo) + 1)
    }
}
