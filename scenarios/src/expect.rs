//! The golden expectations: for each scenario, what `fdr diagnose` should say of its dump.
//!
//! A fault's expected site is a marker comment in the scenario's source, resolved to
//! `file:line` when the suite runs: `// FAULT: name` at the end of a line marks that line;
//! `// FAULT-BEGIN: name` and `// FAULT-END: name` on lines of their own mark the lines
//! between them (a function whose hot loop a CPU sample may land anywhere in). A finding
//! names the site when the first `path:line` a reader meets in it (in its title, else its
//! evidence lines in order) is a line of one of the accepted markers: the line that
//! blocks, not a task's spawn site mentioned before it.
//!
//! Rule ids: `sched_delay`, `long_polls`, `lock_contention`, `async_lock_contention` (async
//! lock and channel contention, naming the holder task and its phase), `task_leak`,
//! `serial_bottleneck`, `slow_downstream` (blocking io and, for unannotated async code,
//! awaits on the runtime's I/O or timer driver), `recorder_loss`, and the rules of the OS
//! view (the scenarios record with it on), which split a long poll by where its time went:
//! `blocking_in_async` (off-CPU, naming the stack's top user frame), `cpu_heavy_polls`
//! (on-CPU, naming the hot frames) and `host_cpu_contention` (waiting for a CPU; info by
//! design, so the busy-sibling scenario expects nothing above info). With the split, the
//! long polls it explains are carried by those rules, so `long_polls` is no answer for
//! the blocking and CPU-heavy scenarios.

use crate::svc::{BoxError, Ctx};
use crate::{
    blocking_sleep, cpu_heavy, healthy, legacy_codec, oversubscribed, recorder_loss, rpc_blocking,
    serial_worker, slow_downstream, std_mutex, task_leak, thread_per_conn, tokio_mutex,
};

/// Off-CPU time inside polls: a thread blocked in async code.
const BLOCKING: &[&str] = &["blocking_in_async"];
/// On-CPU time inside polls.
const CPU_HEAVY: &[&str] = &["cpu_heavy_polls"];

/// What the diagnosis of a scenario's dump should say.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want {
    /// No finding above info.
    NothingAboveInfo,
    /// The top finding is one of `rules`, warning or critical, and (when `sites` is not
    /// empty) names a line of one of the markers.
    Top {
        /// Acceptable rule ids.
        rules: &'static [&'static str],
        /// Acceptable fault sites.
        sites: &'static [Marker],
    },
}

/// A marker comment in a source file of the crate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marker {
    /// The file's path as fdr records it (from the workspace root).
    pub(crate) path: &'static str,
    /// The file's text.
    pub(crate) source: &'static str,
    /// The marker's name.
    pub(crate) name: &'static str,
}

/// A marker's lines (1-based, inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    /// The file's path.
    pub(crate) path: &'static str,
    /// First line.
    pub(crate) first: usize,
    /// Last line.
    pub(crate) last: usize,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}:{}", self.path, self.first)
        } else {
            write!(f, "{}:{}-{}", self.path, self.first, self.last)
        }
    }
}

impl Marker {
    /// The marked lines; an error names the marker and file when it is missing or malformed.
    pub(crate) fn resolve(&self) -> Result<Site, String> {
        let matches = |line: &str, tag: &str| {
            line.split_once(tag)
                .is_some_and(|(_, rest)| rest.trim() == self.name)
        };
        let lines: Vec<&str> = self.source.lines().collect();
        let find = |tag: &str| -> Vec<usize> {
            (0..lines.len())
                .filter(|i| matches(lines[*i], tag))
                .map(|i| i + 1)
                .collect()
        };
        let single = find("// FAULT: ");
        let begin = find("// FAULT-BEGIN: ");
        let end = find("// FAULT-END: ");
        match (single.as_slice(), begin.as_slice(), end.as_slice()) {
            ([line], [], []) => Ok(Site {
                path: self.path,
                first: *line,
                last: *line,
            }),
            ([], [b], [e]) if b + 1 < *e => Ok(Site {
                path: self.path,
                first: b + 1,
                last: e - 1,
            }),
            _ => Err(format!(
                "marker `{}` in {}: want one `// FAULT: {0}` or one FAULT-BEGIN/FAULT-END pair \
                 around at least one line; found {} single, {} begin, {} end",
                self.name,
                self.path,
                single.len(),
                begin.len(),
                end.len()
            )),
        }
    }
}

macro_rules! marker {
    ($file:literal, $name:literal) => {
        Marker {
            path: concat!("scenarios/src/", $file),
            source: include_str!($file),
            name: $name,
        }
    };
}

/// One scenario of the suite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Its name (`fdr-scenarios run NAME`).
    pub(crate) name: &'static str,
    /// The fault, in a few words.
    pub(crate) fault: &'static str,
    /// What the diagnosis should say.
    pub(crate) want: Want,
    /// The program.
    pub(crate) run: fn(&Ctx) -> Result<(), BoxError>,
}

/// Every scenario, in the order the suite runs them.
pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "std_mutex",
        fault: "std::sync::Mutex held across a blocking auth call in async handlers",
        want: Want::Top {
            rules: &["lock_contention", "blocking_in_async"],
            sites: &[
                marker!("std_mutex.rs", "std-mutex"),
                marker!("std_mutex.rs", "std-mutex-held"),
            ],
        },
        run: std_mutex::run,
    },
    Scenario {
        name: "tokio_mutex",
        fault: "tokio::sync::Mutex held across a 5 ms store call's .await",
        want: Want::Top {
            rules: &["async_lock_contention"],
            sites: &[],
        },
        run: tokio_mutex::run,
    },
    Scenario {
        name: "slow_downstream",
        fault: "async downstream over TCP answers in 30-50 ms",
        want: Want::Top {
            rules: &["slow_downstream"],
            sites: &[],
        },
        run: slow_downstream::run,
    },
    Scenario {
        name: "cpu_heavy",
        fault: "every request re-aggregates a table: ~5 ms of CPU in the handler",
        want: Want::Top {
            rules: CPU_HEAVY,
            sites: &[
                marker!("cpu_heavy.rs", "cpu-heavy"),
                marker!("cpu_heavy.rs", "cpu-heavy-loop"),
            ],
        },
        run: cpu_heavy::run,
    },
    Scenario {
        name: "blocking_sleep",
        fault: "std::thread::sleep as retry backoff in an async handler",
        want: Want::Top {
            rules: BLOCKING,
            sites: &[marker!("blocking_sleep.rs", "blocking-sleep")],
        },
        run: blocking_sleep::run,
    },
    Scenario {
        name: "legacy_codec",
        fault: "blocking std::net lookup in codec/legacy.rs, called from async handlers",
        want: Want::Top {
            rules: BLOCKING,
            sites: &[marker!("legacy_codec/codec/legacy.rs", "legacy-codec")],
        },
        run: legacy_codec::run,
    },
    Scenario {
        name: "rpc_spawned",
        fault: "blocking rate limiter (thread sleep), a task spawned per request",
        want: Want::Top {
            rules: BLOCKING,
            sites: &[marker!("rpc_blocking.rs", "rate-limiter-sleep")],
        },
        run: |ctx| rpc_blocking::run(ctx, rpc_blocking::Shape::Spawned),
    },
    Scenario {
        name: "rpc_inline",
        fault: "blocking rate limiter (thread sleep), requests handled in the connection task",
        want: Want::Top {
            rules: BLOCKING,
            sites: &[marker!("rpc_blocking.rs", "rate-limiter-sleep")],
        },
        run: |ctx| rpc_blocking::run(ctx, rpc_blocking::Shape::Inline),
    },
    Scenario {
        name: "healthy",
        fault: "none",
        want: Want::NothingAboveInfo,
        run: |ctx| healthy::run(ctx, false),
    },
    Scenario {
        name: "healthy_busy_sibling",
        fault: "none; a CPU-bound sibling process keeps every core busy",
        want: Want::NothingAboveInfo,
        run: |ctx| healthy::run(ctx, true),
    },
    Scenario {
        name: "task_leak",
        fault: "a watcher task per request waits on a notifier nobody fires",
        want: Want::Top {
            rules: &["task_leak"],
            sites: &[marker!("task_leak.rs", "task-leak")],
        },
        run: task_leak::run,
    },
    Scenario {
        name: "serial_worker",
        fault: "every transfer funnels through one ledger thread",
        want: Want::Top {
            rules: &["serial_bottleneck"],
            sites: &[],
        },
        run: serial_worker::run,
    },
    Scenario {
        name: "oversubscribed",
        fault: "unbounded CPU fan-out: hundreds of runnable tasks on 2 workers",
        want: Want::Top {
            rules: &["sched_delay"],
            sites: &[],
        },
        run: oversubscribed::run,
    },
    Scenario {
        name: "recorder_loss",
        fault: "a log per imported row outruns a 1 MiB flight recorder",
        want: Want::Top {
            rules: &["recorder_loss"],
            sites: &[],
        },
        run: recorder_loss::run,
    },
    Scenario {
        name: "thread_per_conn",
        fault: "std threads; fdr::sync::Mutex held across a report rebuild",
        want: Want::Top {
            rules: &["lock_contention"],
            sites: &[
                marker!("thread_per_conn.rs", "inventory-lock"),
                marker!("thread_per_conn.rs", "inventory-lock-held"),
            ],
        },
        run: thread_per_conn::run,
    },
];

/// The scenario named `name`.
pub(crate) fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_resolves_to_lines_of_its_file() {
        for s in SCENARIOS {
            if let Want::Top { sites, .. } = s.want {
                for m in sites {
                    let site = m.resolve().unwrap_or_else(|e| panic!("{}: {e}", s.name));
                    assert!(site.first >= 1 && site.last >= site.first, "{site}");
                    assert!(site.last <= m.source.lines().count(), "{site}");
                }
            }
        }
    }

    #[test]
    fn scenario_names_are_unique() {
        for (i, s) in SCENARIOS.iter().enumerate() {
            assert!(
                SCENARIOS[i + 1..].iter().all(|o| o.name != s.name),
                "{} twice",
                s.name
            );
        }
    }

    const SOURCE: &str = "fn a() {\n    x(); // FAULT: one\n    // FAULT-BEGIN: two\n    y();\n    z();\n    // FAULT-END: two\n    w(); // FAULT: one-more\n}\n";

    fn m(name: &'static str) -> Marker {
        Marker {
            path: "p.rs",
            source: SOURCE,
            name,
        }
    }

    #[test]
    fn markers_resolve_by_exact_name() {
        assert_eq!(m("one").resolve().unwrap().to_string(), "p.rs:2");
        assert_eq!(m("two").resolve().unwrap().to_string(), "p.rs:4-5");
        assert_eq!(m("one-more").resolve().unwrap().to_string(), "p.rs:7");
        let missing = m("three").resolve().unwrap_err();
        assert!(
            missing.contains("`three`") && missing.contains("p.rs"),
            "{missing}"
        );
    }
}
