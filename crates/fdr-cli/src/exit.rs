//! Exit codes and how a failure is printed.
//!
//! A failure is an `anyhow::Error` whose root says which exit code it gets: [`Usage`] (2,
//! as clap's own usage errors), [`BadTrace`] (3), anything else an I/O failure (1). It is
//! printed once, as `fdr: error: ` and its chain of causes, each cause's text shown only if
//! the text before it does not already hold it.

use std::fmt;
use std::io::Write;

use fdr_analyzer::{AnalyzeError, TraceError};
use fdr_format::ErrorKind;

/// Exit code: success.
pub(crate) const OK: u8 = 0;
/// Exit code: a file or stream could not be opened, read or written.
pub(crate) const IO: u8 = 1;
/// Exit code: the command line is wrong (clap's code for its own usage errors too).
pub(crate) const USAGE: u8 = 2;
/// Exit code: the input is not an fdr trace, or is damaged.
pub(crate) const BAD_TRACE: u8 = 3;

/// What `fdr --help` says of exit codes.
pub(crate) const HELP: &str = "\
Exit codes:
  0  success
  1  I/O error: a file or stream could not be opened, read or written
  2  usage error: bad arguments or options
  3  bad trace: not an fdr trace, or damaged (output, if any, covers the whole batches
     before the damage; the message says where it is and what was kept)

A trace argument of `-` reads the trace from standard input.
Every --json output is an object with \"schema_version\".
Colour: --color auto (a terminal, unless NO_COLOR is set), always or never.";

/// The command line asks for something that cannot be done: exit code 2.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The input is not a trace, or is damaged: exit code 3.
#[derive(Debug)]
pub(crate) struct BadTrace(pub(crate) String);

impl fmt::Display for BadTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadTrace {}

/// The exit code of a failure.
pub(crate) fn code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.downcast_ref::<Usage>().is_some()) {
        USAGE
    } else if e.chain().any(|c| c.downcast_ref::<BadTrace>().is_some()) {
        BAD_TRACE
    } else {
        IO
    }
}

/// The failure's message: its causes outermost first, joined by `: `, each left out when
/// the text before it already holds it (an error that prints its source, as many do).
pub(crate) fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// Prints a failure on standard error (quietly nothing if standard error is closed).
pub(crate) fn report(e: &anyhow::Error, color: bool) {
    let label = if color {
        "\x1b[1;31merror\x1b[0m"
    } else {
        "error"
    };
    let _ = writeln!(std::io::stderr().lock(), "fdr: {label}: {}", message(e));
}

/// An error opening a trace: an unreadable header is a bad trace (3), anything else an I/O
/// error (1).
pub(crate) fn open_err(e: AnalyzeError, what: &str) -> anyhow::Error {
    match e {
        AnalyzeError::Header(t) if matches!(t.kind, ErrorKind::Io(_)) => {
            anyhow::Error::msg(format!("{what}: {t}"))
        }
        AnalyzeError::Header(t) => {
            BadTrace(format!("{what}: not a readable fdr trace: {t}")).into()
        }
        AnalyzeError::Open { path, source } => {
            anyhow::Error::new(source).context(format!("cannot open {path}"))
        }
        e => anyhow::Error::new(e).context(what.to_string()),
    }
}

/// After the output: a trace that stopped early is reported, as damage (3) or, when the
/// input could not be read, an I/O error (1).
pub(crate) fn check(what: &str, err: Option<&TraceError>) -> anyhow::Result<()> {
    let Some(e) = err else {
        return Ok(());
    };
    if matches!(e.kind, ErrorKind::Io(_)) {
        anyhow::bail!("{what}: {e}; the output above covers what was kept");
    }
    let hint = if e.is_cut_short() {
        " (the file was cut short)"
    } else {
        ""
    };
    Err(BadTrace(format!(
        "{what}: damaged trace {e}{hint}; the output above covers what was kept"
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(AnalyzeError::Open {
            path: "x.fdr".into(),
            source: io,
        });
        assert_eq!(message(&e), "cannot open x.fdr: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&e), "outer: inner");
    }

    #[test]
    fn codes_follow_the_root_cause() {
        let e = anyhow::Error::new(Usage("u".into())).context("while parsing");
        assert_eq!(code(&e), USAGE);
        let e = anyhow::Error::new(BadTrace("b".into()));
        assert_eq!(code(&e), BAD_TRACE);
        assert_eq!(code(&anyhow::anyhow!("disk full")), IO);
        assert_eq!(OK, 0);
    }
}
