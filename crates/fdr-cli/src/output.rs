//! Standard output: quiet on a closed pipe, JSON with a schema version, colour on a
//! terminal.
//!
//! A reader that goes away (`fdr cat t.fdr | head`) ends the command at once with exit
//! code 0 and nothing on standard error, as a program killed by `SIGPIPE` would, but
//! without the signal: every write to standard output goes through [`Stdout`].

use std::io::{BufWriter, IsTerminal, StdoutLock, Write};

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde_json::Value;

/// The version of every `--json` output's shape; it changes when a field is removed or
/// changes meaning (added fields keep it).
pub(crate) const SCHEMA_VERSION: u64 = 1;

/// When to colour text output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set to a non-empty value.
    #[default]
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether a stream that `is_terminal` gets colour, `NO_COLOR` being `no_color`.
    pub(crate) fn on_with(self, is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    /// Whether a stream that `is_terminal` gets colour.
    pub(crate) fn on(self, is_terminal: bool) -> bool {
        self.on_with(is_terminal, std::env::var_os("NO_COLOR").as_deref())
    }

    /// Whether standard output gets colour.
    pub(crate) fn stdout(self) -> bool {
        self.on(std::io::stdout().is_terminal())
    }

    /// Whether standard error gets colour.
    pub(crate) fn stderr(self) -> bool {
        self.on(std::io::stderr().is_terminal())
    }
}

/// Ends the process quietly: standard output's reader is gone.
fn closed() -> ! {
    std::process::exit(i32::from(crate::exit::OK))
}

/// Buffered standard output; a broken pipe ends the process quietly (see the module docs).
pub(crate) struct Stdout(BufWriter<StdoutLock<'static>>);

impl Stdout {
    /// Standard output, locked, buffered.
    pub(crate) fn new() -> Self {
        Stdout(BufWriter::with_capacity(1 << 16, std::io::stdout().lock()))
    }
}

fn quiet<T>(r: std::io::Result<T>) -> std::io::Result<T> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => closed(),
        r => r,
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        quiet(self.0.write(buf))
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        quiet(self.0.write_all(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        quiet(self.0.flush())
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// `v` with `"schema_version"` added; `v` must be an object (every `--json` output is).
pub(crate) fn versioned(mut v: Value) -> Value {
    match v.as_object_mut() {
        Some(o) => {
            o.insert("schema_version".into(), SCHEMA_VERSION.into());
        }
        None => {
            let mut o = serde_json::Map::new();
            o.insert("schema_version".into(), SCHEMA_VERSION.into());
            o.insert("value".into(), v);
            v = Value::Object(o);
            debug_assert!(false, "a --json output must be an object");
        }
    }
    v
}

/// Writes a command's output: `json` (with its schema version) when asked for, `text`
/// otherwise.
pub(crate) fn print(json: bool, v: Value, text: String) -> Result<()> {
    let mut out = Stdout::new();
    if json {
        let s = serde_json::to_string_pretty(&versioned(v))?;
        writeln!(out, "{s}").context("writing to standard output")?;
    } else {
        write!(out, "{text}").context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")
}

/// A line on standard error (nothing if standard error is closed).
pub(crate) fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn auto_colours_a_terminal_unless_no_color_is_set() {
        let auto = ColorChoice::Auto;
        assert!(auto.on_with(true, None));
        assert!(auto.on_with(true, Some(OsStr::new(""))));
        assert!(!auto.on_with(true, Some(OsStr::new("1"))));
        assert!(!auto.on_with(false, None));
        assert!(ColorChoice::Always.on_with(false, Some(OsStr::new("1"))));
        assert!(!ColorChoice::Never.on_with(true, None));
    }

    #[test]
    fn json_outputs_carry_the_schema_version() {
        let v = versioned(serde_json::json!({"rows": []}));
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert!(v["rows"].is_array());
    }
}
