//! Target A2 with the real `fdr` binary: every command on hostile traces (a million
//! threads, a million tasks, a million names and sites, spans that never end, the longest
//! strings and batches the format allows, extreme timestamps, OS samples of 70,000
//! threads) stays within 256 MiB of peak
//! resident memory, and says where it capped.
//!
//! Peak memory is the kernel's: `getrusage(RUSAGE_CHILDREN).ru_maxrss`, the largest peak
//! of any child this test process waited for, read after each command. The traces are
//! written into a temporary directory and removed after. `cargo xtask bench` measures the
//! same on 1 GiB traces (`analyze.max_rss_bytes_adversarial`).

use std::path::{Path, PathBuf};
use std::process::Command;

use fdr_test_support::adversarial::{Shape, write};
use nix::sys::resource::{UsageWho, getrusage};

const LIMIT_BYTES: u64 = 256 << 20;

/// The largest peak resident set of the children waited for so far.
fn children_peak_rss_bytes() -> u64 {
    let kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    kib as u64 * 1024
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("fdr-memory-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a trace of `shape` of at least `mib` MiB, runs every command on it, and checks
/// each one's exit, the running peak and the notes. `notes` says which outputs must carry a
/// `truncated:` note (the commands that read through the stream, the summary, or both).
fn every_command_within_the_limit(shape: Shape, mib: u64, notes: Notes) {
    let dir = TempDir::new(shape.name());
    let t = dir.0.join(format!("{}.fdr", shape.name()));
    let f = std::fs::File::create(&t).unwrap();
    write(shape, std::io::BufWriter::new(f), mib << 20).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = |n: &str| s(&dir.0.join(n));
    let commands: Vec<Vec<String>> = vec![
        vec!["summary".into(), s(&t)],
        vec!["summary".into(), "--json".into(), s(&t)],
        vec!["tasks".into(), s(&t)],
        vec!["tasks".into(), "--json".into(), s(&t)],
        vec!["tasks".into(), "--alive".into(), s(&t)],
        vec!["waits".into(), "--json".into(), s(&t)],
        vec!["regions".into(), s(&t)],
        vec!["blocking".into(), "--top".into(), "100000".into(), s(&t)],
        vec!["sched".into(), s(&t)],
        vec!["diagnose".into(), s(&t)],
        vec!["diagnose".into(), "--json".into(), s(&t)],
        vec!["diff".into(), s(&t), s(&t)],
        vec!["report".into(), "-o".into(), out("report.html"), s(&t)],
        // Every event is read; the first thousand are printed, then the notes.
        vec!["cat".into(), "--limit".into(), "1000".into(), s(&t)],
        vec![
            "export".into(),
            "--format".into(),
            "chrome-json".into(),
            // Gigabytes for the big batches: written nowhere, as cat's lines are kept
            // few.
            "-o".into(),
            "/dev/null".into(),
            s(&t),
        ],
        vec![
            "export".into(),
            "--format".into(),
            "perfetto".into(),
            "-o".into(),
            "/dev/null".into(),
            s(&t),
        ],
        vec![
            "export".into(),
            "--format".into(),
            "pprof".into(),
            "--long-scopes".into(),
            "-o".into(),
            "/dev/null".into(),
            s(&t),
        ],
    ];
    for args in commands {
        let o = Command::new(env!("CARGO_BIN_EXE_fdr"))
            .args(&args)
            .output()
            .unwrap();
        let peak = children_peak_rss_bytes();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(
            o.status.success(),
            "{shape:?} {args:?}: {}\n{stderr}",
            o.status
        );
        assert!(
            peak <= LIMIT_BYTES,
            "{shape:?} {args:?}: peak RSS {} MiB (over 256 MiB)",
            peak >> 20
        );
        let is_summary = args[0] == "summary";
        let wanted = if is_summary {
            notes.summary
        } else {
            notes.stream
        };
        if let Some(what) = wanted {
            let text = format!("{stdout}{stderr}");
            let noted = if args.iter().any(|a| a == "--json") {
                let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                v["truncated"].as_array().is_some_and(|n| !n.is_empty())
            } else {
                text.contains("truncated: ")
            };
            assert!(
                noted && text.contains(what),
                "{shape:?} {args:?}: no `truncated: ... {what}` note in\n{}",
                &text[text.len().saturating_sub(3000)..]
            );
        }
    }
    eprintln!(
        "{shape:?} ({mib} MiB): every command within {} MiB so far",
        children_peak_rss_bytes() >> 20
    );
}

/// The note each kind of output must carry: a phrase of it.
#[derive(Clone, Copy)]
struct Notes {
    summary: Option<&'static str>,
    stream: Option<&'static str>,
}

#[test]
fn a_million_threads() {
    every_command_within_the_limit(
        Shape::Threads,
        8,
        Notes {
            summary: Some("more threads not listed"),
            stream: Some("more threads not tracked"),
        },
    );
}

#[test]
fn a_million_tasks_never_dropped() {
    every_command_within_the_limit(
        Shape::Tasks,
        6,
        Notes {
            summary: None,
            stream: Some("task begins nested too deep"),
        },
    );
}

#[test]
fn a_million_names_and_sites() {
    every_command_within_the_limit(
        Shape::Names,
        40,
        Notes {
            summary: Some("string definitions not kept"),
            stream: Some("not kept"),
        },
    );
}

#[test]
fn spans_that_never_end() {
    every_command_within_the_limit(
        Shape::OpenSpans,
        6,
        Notes {
            summary: None,
            stream: Some("nested"),
        },
    );
}

#[test]
fn the_longest_strings() {
    every_command_within_the_limit(
        // Small enough for a debug build in CI (the string-text cap is passed at about
        // 40 MiB of this shape, which `cargo xtask bench`'s 1 GiB traces cover).
        Shape::LongStrings,
        8,
        Notes {
            summary: None,
            stream: None,
        },
    );
}

/// Its own test, beside the longest strings: the largest trace here, so the test threads
/// share the work instead of one running both shapes after the others finished.
#[test]
fn batches_of_the_largest_size() {
    every_command_within_the_limit(
        Shape::BigBatches,
        16,
        Notes {
            summary: None,
            stream: None,
        },
    );
}

#[test]
fn extreme_timestamps_and_counts() {
    every_command_within_the_limit(
        Shape::Extremes,
        8,
        Notes {
            summary: None,
            stream: None,
        },
    );
}

#[test]
fn os_samples_of_many_threads() {
    every_command_within_the_limit(
        Shape::OsView,
        8,
        Notes {
            summary: None,
            stream: None,
        },
    );
}
