//! The wall time of each step of `cargo xtask ci`, and the CPU time of the processes it ran
//! (so a slow step shows whether it waited or computed, and how well it used the cores):
//! printed as each step ends, and as a table at the end, also when a step fails (the steps
//! run so far, and which one failed).

use std::time::{Duration, Instant};

use anyhow::Result;

/// The steps run so far and how long each took.
pub(crate) struct Steps {
    started: Instant,
    cpu_at_start: Duration,
    done: Vec<(&'static str, Duration, Duration, bool)>,
}

impl Steps {
    /// Starts the clock of the whole run.
    pub(crate) fn new() -> Self {
        Steps {
            started: Instant::now(),
            cpu_at_start: children_cpu(),
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
        let cpu_before = children_cpu();
        let outcome = step();
        let took = began.elapsed();
        let cpu = children_cpu().saturating_sub(cpu_before);
        self.done.push((name, took, cpu, outcome.is_ok()));
        eprintln!(
            "xtask ci: step `{name}` {} in {} (CPU {})",
            if outcome.is_ok() { "passed" } else { "FAILED" },
            seconds(took),
            seconds(cpu)
        );
        if outcome.is_err() {
            eprintln!("{}", self.table());
        }
        outcome
    }

    /// The table of the steps run, with the whole run's wall time.
    pub(crate) fn table(&self) -> String {
        let mut out = String::from("xtask ci: wall time per step, CPU time of its processes\n");
        let line = |name: &str, wall: Duration, cpu: Duration| {
            format!(
                "  {name:<14} {:>8} {:>8}  {:.2} cores",
                seconds(wall),
                seconds(cpu),
                cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
            )
        };
        for (name, took, cpu, ok) in &self.done {
            let mark = if *ok { "" } else { "  FAILED" };
            out.push_str(&format!("{}{mark}\n", line(name, *took, *cpu)));
        }
        out.push_str(&line(
            "total",
            self.started.elapsed(),
            children_cpu().saturating_sub(self.cpu_at_start),
        ));
        out
    }
}

/// The user and system CPU time of this process's children that have been waited for, and
/// of theirs (`cutime` and `cstime` in `/proc/self/stat`); zero where it cannot be read.
fn children_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The fields after the command name (which may hold spaces), from `state` (field 3):
    // cutime and cstime are fields 16 and 17.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(13)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

/// The kernel's clock tick for the times in `/proc` (`USER_HZ`, 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
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

    #[test]
    fn a_steps_cpu_is_its_childrens() {
        // Alone in its process: the other tests' children would count too.
        if fdr_test_support::isolated::ran_in_child() {
            return;
        }
        let mut steps = Steps::new();
        steps
            .run("burn", || {
                // A child that computes for a while, waited for.
                let st = std::process::Command::new("sh")
                    .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
                    .status()?;
                anyhow::ensure!(st.success());
                Ok(())
            })
            .unwrap();
        steps.run("idle", || Ok(())).unwrap();
        let (burn, idle) = (steps.done[0].2, steps.done[1].2);
        assert!(burn > Duration::from_millis(20), "{burn:?}");
        assert_eq!(idle, Duration::ZERO);
    }
}
