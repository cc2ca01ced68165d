//! The command line's conventions, for every command: quiet on a closed pipe, `-` for
//! standard input, `--json` objects with a schema version, exit codes, errors said once,
//! colour only when asked for (or on a terminal) and never from the trace's strings.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fdr_test_support::scenarios::scenario;

/// A directory of the test's own, removed when it ends.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let d =
            std::env::temp_dir().join(format!("fdr-cli-conventions-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn trace(&self, name: &str) -> PathBuf {
        let p = self.join(&format!("{name}.fdr"));
        std::fs::write(&p, scenario(name).unwrap()).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fdr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

/// Runs `fdr` with `input`'s bytes on standard input.
fn fdr_stdin(args: &[&str], input: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(input).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // The command may stop reading early (damage, an error): that is its answer.
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every command reading one trace, with `T` standing for the trace.
fn commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["summary", "T"],
        vec!["tasks", "T"],
        vec!["tasks", "--task-id", "5", "T"],
        vec![
            "tasks",
            "--otel-trace-id",
            "00000000000000050000000000000001",
            "T",
        ],
        vec!["regions", "T"],
        vec!["blocking", "T"],
        vec!["sched", "T"],
        vec!["diagnose", "T"],
        vec!["cat", "T"],
        vec!["export", "--format", "chrome-json", "T"],
        vec!["diff", "T", "T"],
    ]
}

fn with(args: &[&'static str], t: &str) -> Vec<String> {
    args.iter()
        .map(|a| {
            if *a == "T" {
                t.to_string()
            } else {
                a.to_string()
            }
        })
        .collect()
}

#[test]
fn every_command_is_quiet_on_a_closed_pipe() {
    let dir = Dir::new("every_command_is_quiet_o");
    let t = dir.trace("healthy");
    let mut all = commands();
    all.extend(
        commands()
            .into_iter()
            .filter(|c| !matches!(c[0], "cat" | "export"))
            .map(|mut c| {
                c.insert(1, "--json");
                c
            }),
    );
    all.push(vec!["export", "--format", "perfetto", "T"]);
    for args in all {
        let args = with(&args, s(&t));
        let mut child = Command::new(env!("CARGO_BIN_EXE_fdr"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn a_trace_on_standard_input_reads_as_from_a_file() {
    let dir = Dir::new("a_trace_on_standard_inpu");
    let t = dir.trace("healthy");
    for args in commands() {
        let from_file = fdr(&with(&args, s(&t)).iter().map(|x| &**x).collect::<Vec<_>>());
        assert!(from_file.status.success(), "{args:?}");
        // diff reads standard input as its first trace, the file as its second.
        let mut piped_args = with(&args, "-");
        if args[0] == "diff" {
            piped_args[2] = s(&t).to_string();
        }
        let piped_args: Vec<&str> = piped_args.iter().map(|x| &**x).collect();
        let from_stdin = fdr_stdin(&piped_args, &t);
        assert!(
            from_stdin.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&from_stdin.stderr)
        );
        assert!(
            from_stdin.stdout == from_file.stdout,
            "{args:?}: standard input gives another output"
        );
    }
    // Standard input is one trace.
    let o = fdr_stdin(&["diff", "-", "-"], &t);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("standard input"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A damaged stream is a bad trace, as a damaged file is.
    let bytes = std::fs::read(&t).unwrap();
    let cut = dir.join("cut.fdr");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = fdr_stdin(&["diagnose", "-"], &cut);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("standard input: damaged trace"));
}

#[test]
fn every_json_output_is_an_object_with_a_schema_version() {
    let dir = Dir::new("every_json_output_is_an_");
    let t = dir.trace("healthy");
    for mut args in commands()
        .into_iter()
        .filter(|c| !matches!(c[0], "cat" | "export"))
    {
        args.insert(1, "--json");
        let args = with(&args, s(&t));
        let o = fdr(&args.iter().map(|x| &**x).collect::<Vec<_>>());
        assert!(o.status.success(), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let obj = v.as_object().unwrap_or_else(|| panic!("{args:?}: {v}"));
        assert_eq!(obj["schema_version"], 1, "{args:?}");
        assert!(obj.len() > 1, "{args:?}: {v}");
    }
}

#[test]
fn exit_codes_and_errors_say_each_thing_once() {
    let dir = Dir::new("exit_codes_and_errors_sa");
    let o = fdr(&["summary", "/nonexistent/x.fdr"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(
        err.starts_with("fdr: error: cannot open /nonexistent/x.fdr"),
        "{err}"
    );

    let o = fdr(&["summary", "--no-such-flag", "x.fdr"]);
    assert_eq!(o.status.code(), Some(2));
    let o = fdr(&["tasks", "--name", "x", "--task-id", "1", "x.fdr"]);
    assert_eq!(o.status.code(), Some(2));

    let junk = dir.join("junk.fdr");
    std::fs::write(&junk, b"definitely not a trace").unwrap();
    let o = fdr(&["regions", s(&junk)]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.matches("not a readable fdr trace").count(), 1, "{err}");

    let help = String::from_utf8(fdr(&["--help"]).stdout).unwrap();
    for line in ["1  I/O error", "2  usage error", "3  bad trace"] {
        assert!(help.contains(line), "{help}");
    }
}

#[test]
fn colour_is_asked_for_and_never_comes_from_the_trace() {
    let dir = Dir::new("colour_is_asked_for_and_");
    let t = dir.trace("long_polls");
    let never = fdr(&["diagnose", s(&t)]);
    assert!(
        !never.stdout.contains(&0x1b),
        "no colour into a pipe by default"
    );
    let always = fdr(&["--color", "always", "diagnose", s(&t)]);
    let text = String::from_utf8(always.stdout).unwrap();
    assert!(text.contains("\x1b[33mwarning\x1b[0m"), "{text}");
    let o = fdr(&["--color", "never", "regions", s(&t)]);
    assert!(!o.stdout.contains(&0x1b));

    // A trace's own escape sequences stay escaped with colour on: every escape character
    // in the output starts one of the command's own SGR sequences.
    use fdr_format::{EventKind, TaskId};
    use fdr_test_support::scenarios::TraceBuilder;
    let mut b = TraceBuilder::new();
    let th = b.thread("w\x1b[2J");
    let name = b.string("evil\x1b]0;title\x07\x1b[31m");
    let region = b.string("r\x1b[1A");
    let site = b.site("src/x\x1b[31m.rs", 1);
    let task = TaskId(1);
    b.push(
        th,
        0,
        EventKind::TaskCreate {
            task,
            parent: TaskId::NONE,
            name,
            site,
        },
    );
    b.push(th, 1, EventKind::PollStart { task });
    b.push(th, 2, EventKind::RegionBegin { name: region });
    b.push(th, 2_000_000, EventKind::RegionEnd { name: region });
    b.push(th, 2_000_001, EventKind::PollEnd { task, ready: true });
    b.push(th, 2_000_002, EventKind::TaskDrop { task });
    let forged = dir.join("forged-colour.fdr");
    std::fs::write(&forged, b.build()).unwrap();
    for args in [
        vec!["tasks"],
        vec!["tasks", "--task-id", "1"],
        vec!["regions"],
        vec!["sched"],
        vec!["diagnose"],
        vec!["diff", s(&forged)],
    ] {
        let mut full = vec!["--color", "always"];
        full.extend(args.iter());
        full.push(s(&forged));
        let o = fdr(&full);
        assert!(o.status.success(), "{args:?}");
        let out = String::from_utf8(o.stdout).unwrap();
        let mut rest = out.as_str();
        while let Some(i) = rest.find('\x1b') {
            let seq = &rest[i + 1..];
            let end = seq.find('m').unwrap_or_else(|| panic!("{args:?}: {out:?}"));
            assert!(
                seq.starts_with('[') && seq[1..end].chars().all(|c| c.is_ascii_digit() || c == ';'),
                "{args:?}: a raw escape from the trace: {out:?}"
            );
            rest = &seq[end..];
        }
    }
}
