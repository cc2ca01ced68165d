//! `fdr export --format pprof`: the trace's CPU samples as a gzipped pprof profile.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fdr_analyzer::pprof::{PprofExport, PprofOptions};

/// What `--format pprof` takes beyond the trace and the output.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct PprofArgs {
    /// pprof: only samples taken while a task whose name contains this ran on their thread.
    #[arg(long)]
    pub(crate) task: Option<String>,
    /// pprof: only samples from this time on (since the trace's first event: `2.5s`,
    /// `1500ms`, `250us`, `3` for seconds).
    #[arg(long, value_parser = parse_time_ns)]
    pub(crate) from: Option<u64>,
    /// pprof: only samples up to this time (as `--from`).
    #[arg(long, value_parser = parse_time_ns)]
    pub(crate) to: Option<u64>,
    /// pprof: also the long-scope stacks, as sample type `long_scope_stacks`.
    #[arg(long)]
    pub(crate) long_scopes: bool,
    /// pprof and perfetto: a binary to symbolize with, matched by build id (repeatable); the modules'
    /// recorded paths are tried after these.
    #[arg(long = "binary", value_name = "FILE")]
    pub(crate) binaries: Vec<PathBuf>,
}

impl PprofArgs {
    /// Whether any pprof-only option is given (an error with another format).
    pub(crate) fn any(&self) -> bool {
        self.filters() || !self.binaries.is_empty()
    }

    /// Whether a pprof-only filter is given (`--binary` also serves `--format perfetto`).
    pub(crate) fn filters(&self) -> bool {
        self.task.is_some() || self.from.is_some() || self.to.is_some() || self.long_scopes
    }
}

/// A time since the trace's first event, in ns.
fn parse_time_ns(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" | "µs" => 1e3,
        "ns" => 1.0,
        "m" | "min" => 60e9,
        _ => return Err(format!("unknown unit {unit:?} (use ns, us, ms, s or m)")),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a time such as 2.5s or 1500ms"))?;
    if !v.is_finite() || v < 0.0 || v * scale > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok((v * scale) as u64)
}

/// Exports the trace at `trace` into `out` (`shown` names it in messages).
pub(crate) fn export(
    trace: &Path,
    args: PprofArgs,
    out: &mut dyn Write,
    shown: &str,
) -> Result<()> {
    if let (Some(f), Some(t)) = (args.from, args.to)
        && f > t
    {
        bail!("--from is after --to");
    }
    let mut x = PprofExport::new(PprofOptions {
        task: args.task,
        from_ns: args.from,
        to_ns: args.to,
        profile: fdr_pprof_options(args.long_scopes, args.binaries),
    });
    let read = crate::export(trace, &mut x)?;
    let filtered = x.filtered_out;
    let (p, truncated) = x.finish();
    out.write_all(&p.gzipped)
        .and_then(|()| out.flush())
        .with_context(|| format!("writing {shown}"))?;
    eprintln!(
        "wrote a pprof profile of {} CPU samples{} ({} stacks, {} of {} addresses symbolized) to {shown}",
        p.cpu_samples,
        if p.long_scope_stacks > 0 {
            format!(" and {} long-scope stacks", p.long_scope_stacks)
        } else {
            String::new()
        },
        p.distinct_samples,
        p.symbolized_locations,
        p.locations
    );
    if filtered > 0 {
        eprintln!("left out by --task/--from/--to: {filtered} stacks");
    }
    if p.cpu_samples == 0 && p.long_scope_stacks == 0 {
        eprintln!(
            "note: the trace has no CPU samples: record with the OS view's CPU profiling on (OsConfig::cpu_profile_hz, or fdr_recorder::os::cpu_profile)"
        );
    }
    for n in &p.notes {
        eprintln!("note: {n}");
    }
    for n in &truncated {
        eprintln!("truncated: {}", n.note);
    }
    crate::check(trace, read.error.as_ref())
}

fn fdr_pprof_options(
    long_scopes: bool,
    binaries: Vec<PathBuf>,
) -> fdr_analyzer::pprof::ProfileOptions {
    fdr_analyzer::pprof::ProfileOptions {
        long_scopes,
        fallback_cpu_hz: None,
        symbolize: fdr_analyzer::pprof::SymbolizeOptions {
            binaries,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time_ns;

    #[test]
    fn times_take_units() {
        assert_eq!(parse_time_ns("2.5s"), Ok(2_500_000_000));
        assert_eq!(parse_time_ns("1500ms"), Ok(1_500_000_000));
        assert_eq!(parse_time_ns("250us"), Ok(250_000));
        assert_eq!(parse_time_ns("3"), Ok(3_000_000_000));
        assert_eq!(parse_time_ns("1m"), Ok(60_000_000_000));
        assert!(parse_time_ns("2h").is_err());
        assert!(parse_time_ns("-1s").is_err());
        assert!(parse_time_ns("s").is_err());
    }
}
