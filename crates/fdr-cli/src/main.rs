//! `fdr`: read fdr traces from the command line.
//!
//! Exit codes: 0 success; 1 I/O error; 2 usage error; 3 the trace is bad (not a trace, or
//! damaged: results, if printed, cover the whole batches before the damage). A trace
//! argument of `-` reads standard input. See [`exit::HELP`].
#![forbid(unsafe_code)]

mod exit;
#[cfg(feature = "fleet")]
mod fleet;
mod incidents;
mod input;
mod output;
mod pprof;
#[cfg(feature = "query")]
mod query;
mod windowed;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fdr_analyzer::{
    ProfileOptions, TraceError, cat::Cat, chrome::ChromeExport, diagnose, diff,
    perfetto::PerfettoExport, report, text, views,
};

use exit::Usage;
use input::{export, profile, shown};
use output::{ColorChoice, Stdout, note, print};
use windowed::windowed;

#[derive(Parser)]
#[command(
    name = "fdr",
    version,
    about = "Read fdr flight-recorder traces: summarize, profile, compare, diagnose, export.",
    after_help = exit::HELP
)]
struct Cli {
    /// Colour text output: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
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
    /// The trace file (.fdr), or `-` for standard input.
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
    /// Per task name: count, total, p50/p99/max, and where the time went; with --task-id
    /// or --otel-trace-id, those requests themselves: start, duration, polls, phases.
    Tasks {
        #[command(flatten)]
        c: Common,
        /// Only tasks whose name contains this.
        #[arg(long, conflicts_with_all = ["otel_trace_id", "task_id"])]
        name: Option<String>,
        /// The tasks linked to this OpenTelemetry trace id (32 hex digits), and those
        /// they spawned: each with its start (wall clock), duration, polls and phases.
        #[arg(long, value_parser = parse_trace_id)]
        otel_trace_id: Option<[u8; 16]>,
        /// The task with this id (as `fdr cat` and `fdr sched` show it): its start (wall
        /// clock), duration, polls and phases.
        #[arg(long)]
        task_id: Option<u64>,
        /// The tasks alive at the end of the window instead, oldest first: age, last poll,
        /// state (running, awaiting, or woken and by what), spawn site.
        #[arg(long, conflicts_with_all = ["otel_trace_id", "task_id"])]
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
    /// Compare two traces: per phase (region, block) per request of its task and per
    /// request, normalized for window and load, window-edge artifacts left out, largest
    /// normalized change first.
    Diff {
        /// The baseline trace (`-`: standard input).
        a: PathBuf,
        /// The trace to compare with it (`-`: standard input).
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
        /// The trace file, or `-` for standard input.
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
        /// The trace file, or `-` for standard input.
        trace: PathBuf,
        /// Output file.
        #[arg(short, long, default_value = "report.html")]
        output: PathBuf,
        /// The incident's sidecar (the sentinel's `ID.json`); by default `ID.json` beside
        /// `ID.fdr`, when there is one.
        #[arg(long)]
        incident: Option<PathBuf>,
    },
    /// The sentinel's incidents in a directory or a bucket (s3://, gs://, az://, file://),
    /// newest first: time, host, service, rule and values, and each dump's top finding.
    Incidents(incidents::IncidentsArgs),
    /// SQL over the Parquet tables of many dumps (`fdr export --format parquet`) in a
    /// directory or a bucket: `fdr query 'SQL' LOCATION`, or a common question (blocking,
    /// latency, incidents-per-day, releases).
    #[cfg(feature = "query")]
    Query(query::QueryArgs),
    /// Events as text, one a line, in time order.
    Cat {
        /// The trace file, or `-` for standard input.
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
    /// Parquet tables (tasks, polls, awaits, regions, blocks, logs, wakes, metric and
    /// stack samples, findings) for SQL engines: `-o DIR` gets `DIR/TABLE/DUMP.parquet`.
    #[cfg(feature = "fleet")]
    Parquet,
}

/// `--otel-trace-id`'s value: 32 hex digits.
fn parse_trace_id(s: &str) -> Result<[u8; 16], String> {
    text::parse_trace_id(s).ok_or_else(|| format!("{s:?} is not 32 hex digits"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = cli.color;
    match text::with_color(color.stdout(), || run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            exit::report(&e, color.stderr());
            ExitCode::from(exit::code(&e))
        }
    }
}

/// After the output: a damaged trace is reported (exit code 3; 1 if it could not be read).
fn check(path: &Path, err: Option<&TraceError>) -> Result<()> {
    exit::check(&shown(path), err)
}

/// `fdr tasks --task-id` / `--otel-trace-id`: the requests themselves. The trace is read
/// twice for a trace id (first to find its tasks), so standard input is spooled then.
fn requests(c: &Common, task_id: Option<u64>, otel: Option<[u8; 16]>) -> Result<()> {
    use fdr_analyzer::request::{Linked, Requests};
    let mut ids: Vec<fdr_format::TaskId> = task_id.map(fdr_format::TaskId).into_iter().collect();
    let mut more = 0;
    let second = match otel {
        Some(id) => {
            let t = input::Rewindable::new(&c.trace)?;
            let mut l = Linked::new(id);
            // Damage, if any, is reported after the second pass, which meets it too.
            input::read_opened(&c.trace, t.open()?, &mut l)?;
            ids.extend(l.tasks);
            more = l.more;
            t.open()?
        }
        None => input::open(&c.trace)?,
    };
    let mut r = Requests::new(ids);
    r.more += more;
    let out = input::read_opened(&c.trace, second, &mut r)?;
    print(c.json, r.to_json(), r.to_text())?;
    check(&c.trace, out.error.as_ref())
}

fn run(cli: Cli) -> Result<()> {
    let _ = BINARIES.set(cli.binaries);
    match cli.cmd {
        Cmd::Summary(c) => {
            let s = input::summarize(&c.trace)?;
            print(c.json, s.to_json(), s.to_text())?;
            check(&c.trace, s.error.as_ref())
        }
        Cmd::Tasks {
            c,
            name,
            otel_trace_id,
            task_id,
            alive,
            limit,
            w,
        } => {
            if otel_trace_id.is_some() || task_id.is_some() {
                return requests(&c, task_id, otel_trace_id);
            }
            let (p, out) = profile(
                &c.trace,
                ProfileOptions {
                    name,
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
            let (p, out) = profile(&c.trace, window_opts(w))?;
            print(
                c.json,
                fdr_analyzer::waits::waits_json(&p),
                fdr_analyzer::waits::waits_text(&p),
            )?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Regions { c, w } => {
            let (p, out) = profile(&c.trace, window_opts(w))?;
            print(c.json, views::regions_json(&p), views::regions_text(&p))?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Blocking { c, top, w } => {
            let (p, out) = profile(&c.trace, window_opts(w))?;
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
            print(
                c.json,
                windowed(views::sched_json(&p), &p.window, p.origin_wall_unix_ns)?,
                format!("{}\n{}", views::window_text(&p), views::sched_text(&p)),
            )?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Diagnose { c, w } => {
            let (p, out) = profile(&c.trace, window_opts(w))?;
            let d = diagnose(&p);
            print(
                c.json,
                windowed(
                    windowed::DiagnoseView {
                        outcomes: d.outcomes_json(),
                        truncated: fdr_analyzer::limits::notes_json(&d.truncated),
                    },
                    &d.window,
                    p.origin_wall_unix_ns,
                )?,
                format!("{}\n{}", views::window_text(&p), d.to_text()),
            )?;
            check(&c.trace, out.error.as_ref())
        }
        Cmd::Diff { a, b, top, json } => {
            // Only what the diff shows of A is kept while B is read.
            let mut ca = diff::Collect::new();
            let oa = export(&a, &mut ca)?;
            let sa = ca.finish_side();
            let mut cb = diff::Collect::new();
            let ob = export(&b, &mut cb)?;
            let d = diff::compare(sa, cb.finish_side());
            print(json, d.to_json(top), d.to_text(top))?;
            check(&a, oa.error.as_ref())?;
            check(&b, ob.error.as_ref())
        }
        Cmd::Export {
            trace,
            format,
            output,
            pprof,
        } => {
            let refused = match format {
                Format::Pprof => false,
                Format::Perfetto => pprof.filters(),
                Format::ChromeJson => pprof.any(),
                #[cfg(feature = "fleet")]
                Format::Parquet => pprof.any(),
            };
            if refused {
                return Err(Usage(
                    "--task, --from, --to and --long-scopes go with --format pprof, --binary with pprof or perfetto"
                        .into(),
                )
                .into());
            }
            #[cfg(feature = "fleet")]
            if format == Format::Parquet {
                return fleet::export(&trace, output.as_deref());
            }
            let file = output.filter(|p| !input::is_stdin(p));
            let (out, shown_out): (Box<dyn Write>, String) = match &file {
                Some(path) => {
                    let f = std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    (
                        Box::new(std::io::BufWriter::new(f)),
                        path.display().to_string(),
                    )
                }
                None => {
                    if format != Format::ChromeJson && std::io::stdout().is_terminal() {
                        let what = if format == Format::Perfetto {
                            "Perfetto trace"
                        } else {
                            "pprof profile"
                        };
                        return Err(Usage(format!(
                            "a {what} is binary: give -o FILE or redirect standard output"
                        ))
                        .into());
                    }
                    (Box::new(Stdout::new()), "standard output".into())
                }
            };
            if format == Format::Pprof {
                let mut out = out;
                return pprof::export(&trace, pprof, &mut out, &shown_out);
            }
            let (out, written, what, error, truncated) = match format {
                Format::ChromeJson => {
                    let mut x = ChromeExport::new(out);
                    let o = export(&trace, &mut x)?;
                    (o, x.written, "trace events", x.error.take(), x.truncated)
                }
                Format::Perfetto => {
                    let mut binaries = pprof.binaries.clone();
                    binaries.extend(BINARIES.get().into_iter().flatten().cloned());
                    let mut x = PerfettoExport::new(out).with_binaries(binaries);
                    let o = export(&trace, &mut x)?;
                    (o, x.packets, "packets", x.error.take(), x.truncated)
                }
                Format::Pprof => unreachable!("exported above"),
                #[cfg(feature = "fleet")]
                Format::Parquet => unreachable!("exported above"),
            };
            if let Some(e) = error {
                return Err(e).with_context(|| format!("writing {shown_out}"));
            }
            note(&format!("wrote {written} {what} to {shown_out}"));
            for n in &truncated {
                note(&format!("truncated: {}", n.note));
            }
            check(&trace, out.error.as_ref())
        }
        Cmd::Report {
            trace,
            output,
            incident,
        } => {
            let incident = report_incident(&trace, incident.as_deref())?;
            // The report reads its trace three times: standard input is spooled first.
            let t = input::Rewindable::new(&trace)?;
            let mut open_failed = None;
            let built = report::Report::build(
                &mut |v: &mut dyn fdr_analyzer::stream::Visitor| match t.open() {
                    Ok(o) => fdr_analyzer::read_reader(
                        o.reader,
                        o.total_bytes,
                        v,
                        fdr_analyzer::ReadOptions::default(),
                    ),
                    Err(e) => {
                        let io = std::io::Error::other(format!("{e:#}"));
                        open_failed = Some(e);
                        Err(fdr_analyzer::AnalyzeError::Open {
                            path: shown(&trace),
                            source: io,
                        })
                    }
                },
                incident,
            );
            if let Some(e) = open_failed {
                return Err(e);
            }
            let (r, out) = built.map_err(|e| exit::open_err(e, &shown(&trace)))?;
            let html = r.render(&shown(&trace));
            std::fs::write(&output, html)
                .with_context(|| format!("cannot write {}", output.display()))?;
            note(&format!("wrote {}", output.display()));
            for n in &r.diagnosis.truncated {
                note(&format!("truncated: {}", n.note));
            }
            check(&trace, out.error.as_ref())
        }
        Cmd::Incidents(args) => incidents::run(args),
        #[cfg(feature = "query")]
        Cmd::Query(args) => query::run(args),
        Cmd::Cat { trace, limit } => {
            let mut c = Cat::new(Stdout::new(), limit.unwrap_or(u64::MAX));
            let out = export(&trace, &mut c)?;
            if let Some(e) = c.error.take() {
                return Err(e).context("writing to standard output");
            }
            c.into_inner()
                .flush()
                .context("writing to standard output")?;
            check(&trace, out.error.as_ref())
        }
    }
}

/// Profile options with the window asked for.
fn window_opts(w: Win) -> ProfileOptions {
    ProfileOptions {
        window: w.window,
        ..ProfileOptions::default()
    }
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
        None if input::is_stdin(trace) => Ok(None),
        None => {
            let beside = report::Incident::sidecar_path(trace);
            if beside == trace || !beside.is_file() {
                return Ok(None);
            }
            match read(&beside) {
                Ok(i) => Ok(Some(i)),
                Err(e) => {
                    note(&format!("warning: {e:#}; the report shows no trigger"));
                    Ok(None)
                }
            }
        }
    }
}
