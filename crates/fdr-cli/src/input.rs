//! Trace inputs: a file, or `-` for standard input, read with a progress bar.
//!
//! Standard input is streamed: every analysis reads a trace in one pass with bounded
//! memory. A command that reads its trace twice ([`Rewindable`]) spools standard input to
//! an unnamed temporary file first (created owner-only and unlinked at once, so nothing is
//! left behind however the process ends).

use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fdr_analyzer::{
    Profile, ProfileOptions, Progress, ReadOptions, ReadOutcome, Summary, SummaryOptions, Visitor,
};

use crate::exit::{Usage, open_err};

/// Set once standard input has been taken by a trace argument.
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Whether `path` names standard input.
pub(crate) fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How a trace is named in messages.
pub(crate) fn shown(path: &Path) -> String {
    if is_stdin(path) {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

/// An open trace: its bytes and, when known, their length.
pub(crate) struct Opened {
    pub(crate) reader: Box<dyn Read>,
    pub(crate) total_bytes: Option<u64>,
}

/// Opens the trace `path` names (`-`: standard input, at most once per run).
pub(crate) fn open(path: &Path) -> Result<Opened> {
    if is_stdin(path) {
        if STDIN_TAKEN.swap(true, Ordering::Relaxed) {
            return Err(Usage("standard input (`-`) can be read as one trace only".into()).into());
        }
        if std::io::stdin().is_terminal() {
            return Err(Usage(
                "`-` reads the trace from standard input, which is a terminal: pipe or redirect a trace into it".into(),
            )
            .into());
        }
        return Ok(Opened {
            reader: Box::new(std::io::stdin().lock()),
            total_bytes: None,
        });
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total_bytes = file.metadata().ok().map(|m| m.len());
    Ok(Opened {
        reader: Box::new(file),
        total_bytes,
    })
}

/// A trace that can be read more than once: a file, or standard input spooled to an
/// unnamed temporary file.
pub(crate) enum Rewindable {
    /// A file, opened anew for each pass.
    Path(PathBuf),
    /// Standard input's bytes.
    Spooled(File),
}

impl Rewindable {
    /// The trace `path` names; standard input is copied to a temporary file now.
    pub(crate) fn new(path: &Path) -> Result<Self> {
        if !is_stdin(path) {
            return Ok(Rewindable::Path(path.to_path_buf()));
        }
        let mut input = open(path)?;
        let mut spool = spool_file()?;
        std::io::copy(&mut input.reader, &mut spool)
            .context("spooling standard input to a temporary file")?;
        Ok(Rewindable::Spooled(spool))
    }

    /// A pass over the trace, from its start.
    pub(crate) fn open(&self) -> Result<Opened> {
        match self {
            Rewindable::Path(p) => open(p),
            Rewindable::Spooled(f) => {
                let mut f = f.try_clone().context("reopening the spooled trace")?;
                f.seek(SeekFrom::Start(0))
                    .context("rewinding the spooled trace")?;
                let total_bytes = f.metadata().ok().map(|m| m.len());
                Ok(Opened {
                    reader: Box::new(f),
                    total_bytes,
                })
            }
        }
    }
}

/// A new owner-only file in the temporary directory, already unlinked.
fn spool_file() -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    // Bounded: a name is taken only if another process made it in between.
    for n in 0..64u32 {
        let path = dir.join(format!(".fdr-stdin-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot unlink {}", path.display()))?;
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create {}", path.display()));
            }
        }
    }
    anyhow::bail!("cannot create a spool file in {}", dir.display())
}

/// A progress bar on stderr, drawn only when stderr is a terminal and the trace is big.
pub(crate) struct Bar {
    on: bool,
    last: Instant,
    label: String,
}

/// Traces at least this big get a progress bar.
const BAR_MIN_BYTES: u64 = 32 << 20;

impl Bar {
    pub(crate) fn new(path: &Path, total_bytes: Option<u64>) -> Self {
        let big = total_bytes.is_none_or(|n| n > BAR_MIN_BYTES);
        Bar {
            on: big && std::io::stderr().is_terminal(),
            last: Instant::now(),
            label: shown(path),
        }
    }

    pub(crate) fn tick(&mut self, p: Progress) {
        if !self.on || p.bytes < BAR_MIN_BYTES {
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

/// Reads `input` (the trace `path` names) with read options that drive a progress bar.
fn with_progress<R>(
    path: &Path,
    total_bytes: Option<u64>,
    read: impl FnOnce(ReadOptions<'_>) -> R,
) -> R {
    let mut bar = Bar::new(path, total_bytes);
    let mut tick = |p: Progress| bar.tick(p);
    read(ReadOptions {
        progress: Some(&mut tick),
        ..ReadOptions::default()
    })
}

/// Profiles an opened trace.
pub(crate) fn profile_opened(
    path: &Path,
    input: Opened,
    mut opts: ProfileOptions,
) -> Result<(Profile, ReadOutcome)> {
    opts.symbols.binaries = crate::BINARIES.get().cloned().unwrap_or_default();
    let Opened {
        reader,
        total_bytes,
    } = input;
    with_progress(path, total_bytes, |read| {
        fdr_analyzer::profile_reader(reader, total_bytes, opts, read)
    })
    .map_err(|e| open_err(e, &shown(path)))
}

/// Profiles the trace `path` names.
pub(crate) fn profile(path: &Path, opts: ProfileOptions) -> Result<(Profile, ReadOutcome)> {
    profile_opened(path, open(path)?, opts)
}

/// Streams the trace `path` names through a visitor (an exporter), with a progress bar.
pub(crate) fn export(path: &Path, x: &mut dyn Visitor) -> Result<ReadOutcome> {
    read_opened(path, open(path)?, x)
}

/// Streams an opened trace through a visitor, with a progress bar.
pub(crate) fn read_opened(path: &Path, input: Opened, x: &mut dyn Visitor) -> Result<ReadOutcome> {
    let Opened {
        reader,
        total_bytes,
    } = input;
    with_progress(path, total_bytes, |read| {
        fdr_analyzer::read_reader(reader, total_bytes, x, read)
    })
    .map_err(|e| open_err(e, &shown(path)))
}

/// Summarizes the trace `path` names, decoding in parallel.
pub(crate) fn summarize(path: &Path) -> Result<Summary> {
    let Opened {
        reader,
        total_bytes,
    } = open(path)?;
    let mut bar = Bar::new(path, total_bytes);
    let mut tick = |p: Progress| bar.tick(p);
    fdr_analyzer::summarize_reader(
        reader,
        total_bytes,
        SummaryOptions {
            threads: 0,
            progress: Some(&mut tick),
        },
    )
    .map_err(|e| open_err(e, &shown(path)))
}
