//! `fdr`: read fdr traces from the command line.
//!
//! Exit codes: 0 success; 1 usage or I/O error; 2 the trace file is bad (not a trace, or
//! damaged: results, if printed, cover the whole batches before the damage).
#![forbid(unsafe_code)]

mod pprof;

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use fdr_analyzer::{
    AnalyzeError, Profile, ProfileOptions, Progress, ReadOptions, ReadOutcome, SummaryOptions,
    TraceError, Visitor, cat::Cat, chrome::ChromeExport, diagnose, diff, perfetto::PerfettoExport,
    report, text, views,
};

#[derive(Parser)]
#[command(
    name = "fdr",
    version,
    about = "Read fdr flight-recorder traces: summarize, profile, compare, diagnose, export."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// The recorded program's binary (or a shared library), to symbolize the trace's
    /// stacks when it is not at the path the recording process saw; matched by build id.
    /// Repeat for several. Without it, unsymbolized frames show as address, module and
    /// offset.
    #[arg(long = "binary", global = true, value_name = "FILE")]
    binaries: Vec<PathBuf>,
}

/// The `--binary` files, for every profile this run makes.
static BINARIES: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();

#[derive(clap::Args)]
struct Common {
    /// The trace file (.fdr).
    trace: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long)]
    json: bool,
}

/// Which part of the trace the figures cover.
#[derive(clap::Args)]
struct Win {
    /// `active` (the common window where every thread has data, trimmed to its recent
    /// active part), `all` (the whole trace) or FROM..TO (since the trace's first event,
    /// like 2s..4.5s; either side may be left out).
    #[arg(long, default_value = "active", value_parser = fdr_analyzer::window::WindowSpec::parse)]
    window: fdr_analyzer::window::WindowSpec,
}

#[derive(Subcommand)]
enum Cmd {
    /// Duration, threads, tasks, events by kind, loss, clock.
    Summary(Common),
    /// Per task name: count, total, p50/p99/max, and where the time went.
    Tasks {
        #[command(flatten)]
        c: Common,
        /// Only tasks whose name contains this.
        #[arg(long)]
        name: Option<String>,
        /// Only tasks linked to this OpenTelemetry trace id (32 hex digits).
        #[arg(long)]
        otel_trace_id: Option<String>,
        /// The tasks alive at the end of the window instead, oldest first: age, last poll,
        /// state (running, awaiting, or woken and by what), spawn site.
        #[arg(long)]
        alive: bool,
        /// With --alive: how many tasks to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        w: Win,
    },
    /// Async waits: per task name, phase and waker (the runtime's I/O or timer driver,
    /// another task, a thread), count and p50/p99/max; the tasks still awaiting.
    Waits {
        #[command(flatten)]
        c: Common,
        #[command(flatten)]
        w: Win,
    },
    /// Per region name: count, total, p50/p99/max.
    Regions {
        #[command(flatten)]
        c: Common,
        #[command(flatten)]
        w: Win,
    },
    /// Blocking sites by cumulative blocked time.
    Blocking {
        #[command(flatten)]
        c: Common,
        /// How many sites.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[command(flatten)]
        w: Win,
    },
    /// Scheduling latency and poll duration distributions; the longest polls.
    Sched {
        #[command(flatten)]
        c: Common,
        /// How many of the longest polls.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[command(flatten)]
        w: Win,
    },
    /// Compare two traces: per region, site and task name, sorted by |delta|.
    Diff {
        /// The baseline trace.
        a: PathBuf,
        /// The trace to compare with it.
        b: PathBuf,
        /// Rows shown.
        #[arg(long, default_value_t = 30)]
        top: usize,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// The on-call runbook as rules: what is wrong, the evidence, the fix.
    Diagnose {
        #[command(flatten)]
        c: Common,
        #[command(flatten)]
        w: Win,
    },
    /// Export for other viewers.
    Export {
        /// The trace file.
        trace: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::ChromeJson)]
        format: Format,
        /// Output file (`-` or none: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        pprof: pprof::PprofArgs,
    },
    /// One self-contained HTML page, an incident view: the trigger, findings, a timeline
    /// of the lanes they involve, tables.
    Report {
        /// The trace file.
        trace: PathBuf,
        /// Output file.
        #[arg(short, long, default_value = "report.html")]
        output: PathBuf,
        /// The incident's sidecar (the sentinel's `ID.json`); by default `ID.json` beside
        /// `ID.fdr`, when there is one.
        #[arg(long)]
        incident: Option<PathBuf>,
    },
    /// Events as text, one a line, in time order.
    Cat {
        /// The trace file.
        trace: PathBuf,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Trace Event JSON (Perfetto UI, chrome://tracing, speedscope).
    ChromeJson,
    /// A native Perfetto protobuf trace (Perfetto UI, trace_processor): smaller, with
    /// wake flows and metric counters.
    Perfetto,
    /// A CPU profile of the trace's CPU samples, gzipped pprof protobuf (go tool pprof,
    /// speedscope, Pyroscope), symbolized, labelled by thread and task.
    Pprof,
}

/// A bad trace file: exit code 2.
#[derive(Debug)]
struct BadTrace(String);

impl std::fmt::Display for BadTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadTrace {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let bad = e.downcast_ref::<BadTrace>().is_some();
            eprintln!("fdr: error: {e:#}");
            ExitCode::from(if bad { 2 } else { 1 })
        }
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct Bar {
    on: bool,
    last: Instant,
    label: String,
}

impl Bar {
    fn new(path: &Path) -> Self {
        let big = std::fs::metadata(path).is_ok_and(|m| m.len() > 32 << 20);
        Bar {
            on: big && std::io::stderr().is_terminal(),
            last: Instant::now(),
            label: path.display().to_string(),
        }
    }

    fn tick(&mut self, p: Progress) {
        if !self.on {
            return;
        }
        let done = p.total_bytes.is_some_and(|t| p.bytes >= t);
        if !done && self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        let mut e = std::io::stderr().lock();
        match p.total_bytes {
            Some(t) if t > 0 => {
                let f = (p.bytes as f64 / t as f64).min(1.0);
                let n = (f * 30.0) as usize;
                let _ = write!(
                    e,
                    "\r{} [{}{}] {:>5.1}% {} MiB",
                    self.label,
                    "#".repeat(n),
                    " ".repeat(30 - n),
                    f * 100.0,
                    p.bytes >> 20
                );
            }
            _ => {
                let _ = write!(e, "\r{} {} MiB", self.label, p.bytes >> 20);
            }
        }
        if done {
            let _ = writeln!(e);
        }
    }
}

fn open_err(e: AnalyzeError) -> anyhow::Error {
    match e {
        AnalyzeError::Header(t) => BadTrace(format!("not a readable fdr trace: {t}")).into(),
        e => anyhow::Error::new(e),
    }
}

/// After the output: a damaged trace is reported and exits 2.
fn check(path: &Path, err: Option<&TraceError>) -> Result<()> {
    match err {
        None => Ok(()),
        Some(e) => {
            let hint = if e.is_cut_short() {
                " (the file was cut short)"
            } else {
                ""
            };
            Err(BadTrace(format!(
                "{}: damaged trace {e}{hint}; the output above covers what was kept",
                path.display()
            ))
            .into())
        }
    }
}

/// Runs `read` on the trace at `path` with read options that drive a progress bar.
fn with_progress<R>(path: &Path, read: impl FnOnce(ReadOptions<'_>) -> R) -> R {
    let mut bar = Bar::new(path);
    let mut tick = |p: Progress| bar.tick(p);
    read(ReadOptions {
        progress: Some(&mut tick),
        ..ReadOptions::default()
    })
}

/// The incident's sidecar for the report: `given`, or the one beside the dump if any (one
/// that cannot be read is then skipped with a warning).
fn report_incident(trace: &Path, given: Option<&Path>) -> Result<Option<report::Incident>> {
    let read = |p: &Path| -> Result<report::Incident> {
        let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        report::Incident::from_json(&bytes)
            .map_err(|why| anyhow::anyhow!("{} is not an incident sidecar: {why}", p.display()))
    };
    match given {
        Some(p) => read(p).map(Some),
        None => {
            let beside = report::Incident::sidecar_path(trace);
            if beside == trace || !beside.is_file() {
                return Ok(None);
            }
            match read(&beside) {
                Ok(i) => Ok(Some(i)),
                Err(e) => {
                    eprintln!("warning: {e:#}; the report shows no trigger");
                    Ok(None)
                }
            }
        }
    }
}

fn profile(path: &Path, mut opts: ProfileOptions) -> Result<(Profile, ReadOutcome)> {
    opts.symbols.binaries = BINARIES.get().cloned().unwrap_or_default();
    with_progress(path, |read| fdr_analyzer::profile_file(path, opts, read)).map_err(open_err)
}

/// Streams the trace at `path` into an exporter, with a progress bar.
fn export(path: &Path, x: &mut dyn Visitor) -> Result<ReadOutcome> {
    with_progress(path, |read| fdr_analyzer::read_file(path, x, read)).map_err(open_err)
}

/// Profile options with the window asked for.
fn windowed(w: Win) -> ProfileOptions {
    ProfileOptions {
        window: w.window,
        ..ProfileOptions::default()
    }
}

fn print(json: bool, v: serde_json::Value, text: String) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let r = if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)
    } else {
        write!(out, "{text}")
    };
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn run(cli: Cli) -> Result<()> {
    let _ = BINARIES.set(cli.binaries);
    match cli.cmd {
        Cmd::Summary(c) => {
            let mut bar = Bar::new(&c.trace);
            let mut tick = |p: Progress| bar.tick(p);
            let s = fdr_analyzer::summarize_file(
                &c.trace,
                SummaryOptions {
                    threads: 0,
                    progress: Some(&mut tick),
                },
            )
            .map_err(open_err)?;
            print(c.json, s.to_json(), s.to_text())?;
            check(&c.trace, s.error.as_ref())
        }
        Cmd::Tasks {
            c,
            name,
            otel_trace_id,
            alive,
            limit,
            w,
        } => {
            let otel = match otel_trace_id {
                Some(s) => Some(
                    text::parse_trace_id(&s)
                        .with_context(|| format!("--otel-trace-id {s:?} is not 32 hex digits"))?,
                ),
                None => None,
            };
            let (p, out) = profile(
                &c.trace,
                ProfileOptions {
                    name,
                    otel_trace_id: otel,
                    window: w.window,
                    ..ProfileOptions::default()
                },
            )?;
            if alive {
                print(
                    c.json,
                    fdr_analyzer::waits::alive_json(&p, limit),
                    fdr_analyzer::waits::alive_text(&p, limit),
                )?;
            } else {
                print(c.json, views::tasks_json(&p), views::tasks_text(&p))?;
            }
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Waits { c, w } => {
            let (p, out) = profile(&c.trace, windowed(w))?;
            print(
                c.json,
                fdr_analyzer::waits::waits_json(&p),
                fdr_analyzer::waits::waits_text(&p),
            )?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Regions { c, w } => {
            let (p, out) = profile(&c.trace, windowed(w))?;
            print(c.json, views::regions_json(&p), views::regions_text(&p))?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Blocking { c, top, w } => {
            let (p, out) = profile(&c.trace, windowed(w))?;
            print(
                c.json,
                views::blocking_json(&p, top),
                views::blocking_text(&p, top),
            )?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Sched { c, top, w } => {
            let (p, out) = profile(
                &c.trace,
                ProfileOptions {
                    top,
                    window: w.window,
                    ..ProfileOptions::default()
                },
            )?;
            print(c.json, views::sched_json(&p), views::sched_text(&p))?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Diagnose { c, w } => {
            let (p, out) = profile(&c.trace, windowed(w))?;
            let d = diagnose(&p);
            print(c.json, d.to_json(), d.to_text())?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Diff { a, b, top, json } => {
            // Keep only what the diff shows of A while B is read.
            let (pa, oa) = profile(&a, ProfileOptions::default())?;
            let sa = diff::DiffSideSet::of(&pa);
            drop(pa);
            let (pb, ob) = profile(&b, ProfileOptions::default())?;
            let sb = diff::DiffSideSet::of(&pb);
            drop(pb);
            let notes = [sa.truncated.clone(), sb.truncated.clone()];
            let rows = diff::diff_sets(sa, sb);
            let notes = [notes[0].as_slice(), notes[1].as_slice()];
            print(
                json,
                diff::diff_json(&rows, top, notes),
                diff::diff_text(&rows, top, notes),
            )?;
            check(&a, oa.error.as_ref())?;
            check(&b, ob.error.as_ref())
        }
        Cmd::Export {
            trace,
            format,
            output,
            pprof,
        } => {
            if format != Format::Pprof && pprof.any() {
                bail!("--task, --from, --to, --long-scopes and --binary go with --format pprof");
            }
            let file = output.filter(|p| p.as_os_str() != "-");
            let (out, shown): (Box<dyn Write>, String) = match &file {
                Some(path) => {
                    let f = File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    (Box::new(BufWriter::new(f)), path.display().to_string())
                }
                None => {
                    let stdout = std::io::stdout();
                    if format != Format::ChromeJson && stdout.is_terminal() {
                        let what = if format == Format::Perfetto {
                            "Perfetto trace"
                        } else {
                            "pprof profile"
                        };
                        bail!("a {what} is binary: give -o FILE or redirect standard output");
                    }
                    (
                        Box::new(BufWriter::new(stdout.lock())),
                        "standard output".into(),
                    )
                }
            };
            if format == Format::Pprof {
                let mut out = out;
                return pprof::export(&trace, pprof, &mut out, &shown);
            }
            let (out, written, what, error, truncated) = match format {
                Format::ChromeJson => {
                    let mut x = ChromeExport::new(out);
                    let o = export(&trace, &mut x)?;
                    (o, x.written, "trace events", x.error.take(), x.truncated)
                }
                Format::Perfetto => {
                    let mut x = PerfettoExport::new(out);
                    let o = export(&trace, &mut x)?;
                    (o, x.packets, "packets", x.error.take(), x.truncated)
                }
                Format::Pprof => unreachable!("exported above"),
            };
            if let Some(e) = error {
                bail!("writing {shown}: {e}");
            }
            eprintln!("wrote {written} {what} to {shown}");
            for n in &truncated {
                eprintln!("truncated: {}", n.note);
            }
            check(&trace, out.error.as_ref())
        }
        Cmd::Report {
            trace,
            output,
            incident,
        } => {
            let incident = report_incident(&trace, incident.as_deref())?;
            let (r, out) = report::Report::from_file(&trace, incident).map_err(open_err)?;
            let html = r.render(&trace.display().to_string());
            std::fs::write(&output, html)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!("wrote {}", output.display());
            for n in &r.diagnosis.truncated {
                eprintln!("truncated: {}", n.note);
            }
            check(&trace, out.error.as_ref())
        }
        Cmd::Cat { trace, limit } => {
            let stdout = std::io::stdout().lock();
            let mut c = Cat::new(BufWriter::new(stdout), limit.unwrap_or(u64::MAX));
            let out = fdr_analyzer::read_file(&trace, &mut c, ReadOptions::default())
                .map_err(open_err)?;
            let err = c.error.take();
            let mut w = c.into_inner();
            let flushed = w.flush();
            match err.map(Err).unwrap_or(flushed) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(e).context("writing to stdout");
                }
                _ => {}
            }
            check(&trace, out.error.as_ref())
        }
    }
}
