//! The wall time of each step of `cargo xtask ci`: printed as each step ends, and as a table
//! at the end, also when a step fails (the steps run so far, and which one failed).

use std::time::{Duration, Instant};

use anyhow::Result;

/// The steps run so far and how long each took.
pub(crate) struct Steps {
    started: Instant,
    done: Vec<(&'static str, Duration, bool)>,
}

impl Steps {
    /// Starts the clock of the whole run.
    pub(crate) fn new() -> Self {
        Steps {
            started: Instant::now(),
            done: Vec::new(),
        }
    }

    /// Runs one step, timing it; on failure the table so far is printed before the error
    /// is passed on.
    pub(crate) fn run(
        &mut self,
        name: &'static str,
        step: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let began = Instant::now();
        let outcome = step();
        let took = began.elapsed();
        self.done.push((name, took, outcome.is_ok()));
        eprintln!(
            "xtask ci: step `{name}` {} in {}",
            if outcome.is_ok() { "passed" } else { "FAILED" },
            seconds(took)
        );
        if outcome.is_err() {
            eprintln!("{}", self.table());
        }
        outcome
    }

    /// The table of the steps run, with the whole run's wall time.
    pub(crate) fn table(&self) -> String {
        let mut out = String::from("xtask ci: wall time per step\n");
        for (name, took, ok) in &self.done {
            let mark = if *ok { "" } else { "  FAILED" };
            out.push_str(&format!("  {name:<14} {:>8}{mark}\n", seconds(*took)));
        }
        out.push_str(&format!(
            "  {:<14} {:>8}",
            "total",
            seconds(self.started.elapsed())
        ));
        out
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_is_passed_on_and_marked_in_the_table() {
        let mut steps = Steps::new();
        steps.run("fmt", || Ok(())).unwrap();
        let err = steps
            .run("clippy", || anyhow::bail!("clippy found 2 warnings"))
            .unwrap_err();
        assert_eq!(err.to_string(), "clippy found 2 warnings");
        let table = steps.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[1].trim_start().starts_with("fmt") && !lines[1].contains("FAILED"));
        assert!(lines[2].trim_start().starts_with("clippy") && lines[2].ends_with("FAILED"));
        assert!(lines[3].trim_start().starts_with("total"));
    }
}
