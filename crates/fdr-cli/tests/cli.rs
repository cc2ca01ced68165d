//! The `fdr` binary end to end: outputs, exit codes, errors on bad files, and the HTML
//! report rendered in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fdr_test_support::scenarios::scenario;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdr-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The scenario `name`'s trace, written once per process: under a name of this thread's
/// first, then renamed into place, so a test on another thread never reads it half written.
fn trace(name: &str) -> PathBuf {
    let p = dir().join(format!("{name}.fdr"));
    if !p.exists() {
        let tmp = dir().join(format!("{name}.{:?}.partial", std::thread::current().id()));
        std::fs::write(&tmp, scenario(name).unwrap()).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
    p
}

fn fdr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_command_runs_on_a_good_trace() {
    let t = trace("long_polls");
    for args in [
        vec!["summary", s(&t)],
        vec!["tasks", s(&t)],
        vec!["tasks", "--alive", s(&t)],
        vec!["waits", s(&t)],
        vec!["waits", "--json", "--window", "all", s(&t)],
        vec!["regions", s(&t)],
        vec!["blocking", "--top", "3", s(&t)],
        vec!["sched", s(&t)],
        vec!["diagnose", s(&t)],
        vec!["diagnose", "--window", "10ms..150ms", s(&t)],
        vec!["cat", "--limit", "5", s(&t)],
    ] {
        let o = fdr(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
    let o = fdr(&["diagnose", "--json", s(&t)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcomes"][0]["rule"], "long_polls");
    // Three polls of 33 ms: 12.5% of the four workers' time.
    assert_eq!(v["outcomes"][0]["severity"], "warning");
    assert!(v["window"]["to_ns"].as_u64().unwrap() > 0);
    assert_eq!(v["truncated"], serde_json::json!([]));
    let o = fdr(&["summary", "--json", s(&t)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["events"].as_u64().unwrap() > 1000);
}

#[test]
fn tasks_filters_by_name_and_otel_trace_id() {
    let t = trace("healthy");
    let o = fdr(&["tasks", "--json", "--name", "handle", s(&t)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 1);
    assert!(v["tasks"][0]["finished"]["count"].as_u64().unwrap() > 100);
    // Task 5's trace id, as the scenario links it: the request itself, not aggregates.
    let id = "00000000000000050000000000000001";
    for args in [
        vec!["tasks", "--json", "--otel-trace-id", id, s(&t)],
        vec!["tasks", "--json", "--task-id", "5", s(&t)],
    ] {
        let o = fdr(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let task = &v["tasks"][0];
        assert_eq!(task["task"], 5, "{v:#}");
        assert_eq!(task["name"], "handle_request");
        assert_eq!(task["otel"][0]["trace_id"], id);
        assert!(task["duration_ns"].as_u64().unwrap() > 0);
        assert!(task["start_wall_unix_ns"].as_i64().unwrap() > 1_750_000_000_000_000_000);
        assert!(task["polls"].as_u64().unwrap() > 0);
        let kinds: Vec<&str> = task["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"poll") && kinds.contains(&"region"),
            "{kinds:?}"
        );
    }
    let o = fdr(&["tasks", "--otel-trace-id", id, s(&t)]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("task 5 async handle_request"), "{text}");
    assert!(
        text.contains("  start    +") && text.contains("Z)"),
        "{text}"
    );
    // A malformed id is a usage error.
    let o = fdr(&["tasks", "--otel-trace-id", "nothex", s(&t)]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn diff_ranks_by_normalized_change() {
    let a = trace("healthy");
    let b = trace("long_polls");
    let o = fdr(&["diff", "--json", s(&a), s(&b)]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for table in ["phases", "requests"] {
        let scores: Vec<f64> = v[table]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["score_ns_per_s"].as_f64().unwrap())
            .collect();
        assert!(scores.len() >= 2, "{table}: {v:#}");
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "{table}: {scores:?}"
        );
    }
    // generate_report runs only in B: not compared per request, listed last.
    let last = v["requests"].as_array().unwrap().last().unwrap();
    assert_eq!(last["name"], "generate_report");
    assert_eq!(last["delta_mean_ns"], serde_json::Value::Null);
    assert!(v["a"]["duration_ns"].as_u64().unwrap() > 0);
}

#[test]
fn bad_files_exit_3_with_offset_and_what_was_kept() {
    let bytes = scenario("healthy").unwrap();
    let cut = dir().join("cut.fdr");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = fdr(&["summary", s(&cut)]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("at byte") && err.contains("kept"), "{err}");
    assert!(!o.stdout.is_empty(), "the prefix is still summarized");
    let o = fdr(&["diagnose", s(&cut)]);
    assert_eq!(o.status.code(), Some(3));

    let junk = dir().join("junk.fdr");
    std::fs::write(&junk, b"definitely not a trace").unwrap();
    let o = fdr(&["tasks", s(&junk)]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an fdr trace"));

    let mut flipped = bytes.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 0x40;
    let f = dir().join("flipped.fdr");
    std::fs::write(&f, &flipped).unwrap();
    let o = fdr(&["cat", s(&f)]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("checksum"));

    let o = fdr(&["summary", "/nonexistent/x.fdr"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn export_writes_chrome_json() {
    let t = trace("sched_delay");
    let out = dir().join("sched.json");
    let o = fdr(&["export", "--format", "chrome-json", "-o", s(&out), s(&t)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(v["traceEvents"].as_array().unwrap().len() > 1000);
}

#[test]
fn export_writes_perfetto_to_a_file_or_standard_output() {
    let t = trace("sched_delay");
    let out = dir().join("sched.pftrace");
    let o = fdr(&["export", "--format", "perfetto", "-o", s(&out), s(&t)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(" packets to "), "{stderr}");
    let file = std::fs::read(&out).unwrap();
    // A `Trace` message: its first field is a packet (field 1, length-delimited).
    assert_eq!(file[0], 0x0a);
    assert!(file.len() > 10_000);
    let o = fdr(&["export", "--format", "perfetto", s(&t)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout == file, "standard output differs from -o");
    let o = fdr(&["export", "--format", "chrome-json", "-o", "-", s(&t)]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["traceEvents"].as_array().unwrap().len() > 1000);
    // Perfetto's binary form is smaller than the JSON of the same trace.
    assert!(
        file.len() < o.stdout.len(),
        "{} vs {}",
        file.len(),
        o.stdout.len()
    );
}

fn chromium() -> Option<String> {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(c.to_string());
        }
    }
    None
}

/// Installs Debian's chromium when it is missing, as `cargo xtask ci` does.
fn ensure_chromium() -> Result<String, String> {
    if let Some(c) = chromium() {
        return Ok(c);
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    match apt(&["update"]) {
        Ok(st) if st.success() => {}
        Ok(st) => return Err(format!("apt-get update failed: {st}")),
        Err(e) => return Err(format!("apt-get is not available: {e}")),
    }
    match apt(&["install", "-y", "chromium"]) {
        Ok(st) if st.success() => {
            chromium().ok_or_else(|| "chromium installed but not on PATH".into())
        }
        Ok(st) => Err(format!("apt-get install chromium failed: {st}")),
        Err(e) => Err(format!("apt-get install failed to start: {e}")),
    }
}

#[test]
fn report_renders_in_headless_chromium() {
    let t = trace("long_polls");
    let html = dir().join("report.html");
    let o = fdr(&["report", "-o", s(&html), s(&t)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("http://")
            || page
                .matches("http://")
                .all(|_| page.contains("http://www.w3.org/2000/svg"))
    );
    assert!(
        !page.contains("https://") && !page.contains("src=\""),
        "the page fetches nothing"
    );
    let chrome = ensure_chromium().unwrap_or_else(|why| {
        panic!(
            "the report check needs headless Chromium (Debian's chromium; `cargo xtask ci` installs it): {why}"
        )
    });
    let profile = dir().join("chromium-profile");
    let shot = dir().join("report.png");
    let url = format!("file://{}", html.display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
    ];
    let user_dir = format!("--user-data-dir={}", profile.display());
    let dom = Command::new(&chrome)
        .args(base)
        .arg(&user_dir)
        .args(["--virtual-time-budget=5000", "--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("data-ok=\"1\""),
        "the page did not finish rendering:\n{}",
        &dom[..dom.len().min(3000)]
    );
    assert!(
        dom.contains("<pre id=\"fdr-errors\"></pre>"),
        "script errors:\n{dom}"
    );
    assert!(dom.contains("<title>fdr report: "), "title not set");
    assert!(dom.matches("<rect").count() > 100, "lanes not drawn");
    let _ = std::fs::remove_file(&shot);
    let st = Command::new(&chrome)
        .args(base)
        .arg(&user_dir)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[1..4], b"PNG");
    // A blank 1400x900 page compresses to a few KiB; lanes, text and tables do not.
    assert!(
        png.len() > 40_000,
        "screenshot looks blank: {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("FDR_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

/// A trace whose strings try to forge output lines and drive the terminal: a log message,
/// a task name, a region name, a site's file name and a thread name with newlines, carriage
/// returns, escape sequences and other control characters.
fn forged_trace() -> PathBuf {
    use fdr_format::{BlockReason, EventKind, Message, TaskId};
    use fdr_test_support::scenarios::TraceBuilder;
    let mut b = TraceBuilder::new();
    let th = b.thread("worker\n    FORGED thread\x1b[2J");
    let task_name = b.string("handler\n1. [critical 100] FORGED: task\x07");
    let region = b.string("region\r\nFORGED region\x1b]0;title\x07");
    let site = b.site("src/lib.rs\n     - FORGED site\x1b[31m", 7);
    let cat = b.string("log");
    let task = TaskId(1);
    b.push(
        th,
        0,
        EventKind::TaskCreate {
            task,
            parent: TaskId::NONE,
            name: task_name,
            site,
        },
    );
    b.push(th, 10, EventKind::PollStart { task });
    b.push(th, 20, EventKind::RegionBegin { name: region });
    b.push(
        th,
        30,
        EventKind::Log {
            category: cat,
            message: Message::Inline(
                b"ok\n      999999999 t1   task=0      log [log] FORGED line\x1b[1A\x7f\xc2\x9b",
            ),
        },
    );
    b.push(
        th,
        40,
        EventKind::BlockBegin {
            reason: BlockReason::Mutex,
            site,
        },
    );
    b.push(th, 5_000_040, EventKind::BlockEnd);
    b.push(th, 5_000_050, EventKind::RegionEnd { name: region });
    b.push(th, 5_000_060, EventKind::PollEnd { task, ready: true });
    b.push(th, 5_000_070, EventKind::TaskDrop { task });
    let p = dir().join("forged.fdr");
    std::fs::write(&p, b.build()).unwrap();
    p
}

#[test]
fn strings_from_the_trace_cannot_forge_lines_or_reach_the_terminal_raw() {
    let t = forged_trace();
    for args in [
        vec!["cat", s(&t)],
        vec!["tasks", s(&t)],
        vec!["regions", s(&t)],
        vec!["blocking", s(&t)],
        vec!["sched", s(&t)],
        vec!["diagnose", s(&t)],
        vec!["summary", s(&t)],
        vec!["diff", s(&t), s(&t)],
    ] {
        let o = fdr(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8(o.stdout).unwrap();
        // Nothing the trace wrote starts a line, and no control character but the line
        // ends reaches the terminal.
        for line in out.lines() {
            assert!(!line.trim_start().starts_with("FORGED"), "{args:?}: {line}");
            assert!(
                !line.trim_start().starts_with("999999999"),
                "{args:?}: {line}"
            );
        }
        let bad: Vec<char> = out
            .chars()
            .filter(|&c| c != '\n' && (c.is_control() || c == '\u{9b}'))
            .collect();
        assert!(bad.is_empty(), "{args:?}: {bad:?} in\n{out}");
        assert!(
            out.contains("FORGED"),
            "{args:?}: the strings are shown:\n{out}"
        );
    }
    // Each shows the strings escaped, as written.
    let cat = String::from_utf8(fdr(&["cat", s(&t)]).stdout).unwrap();
    assert!(
        cat.contains(
            r"ok\n      999999999 t1   task=0      log [log] FORGED line\x1b[1A\x7f\u{009b}"
        ),
        "{cat}"
    );
    assert_eq!(cat.lines().count(), 9, "{cat}");
    let tasks = String::from_utf8(fdr(&["tasks", s(&t)]).stdout).unwrap();
    assert!(
        tasks.contains(r"handler\n1. [critical 100] FORGED: task\x07"),
        "{tasks}"
    );
    let regions = String::from_utf8(fdr(&["regions", s(&t)]).stdout).unwrap();
    assert!(
        regions.contains(r"region\r\nFORGED region\x1b]0;title\x07"),
        "{regions}"
    );
    let blocking = String::from_utf8(fdr(&["blocking", s(&t)]).stdout).unwrap();
    assert!(
        blocking.contains(r"src/lib.rs\n     - FORGED site\x1b[31m:7:5"),
        "{blocking}"
    );
    let diagnose = String::from_utf8(fdr(&["diagnose", s(&t)]).stdout).unwrap();
    assert!(diagnose.contains(r"FORGED site\x1b[31m"), "{diagnose}");
    // JSON keeps the strings whole (serde escapes them).
    let o = fdr(&["tasks", "--json", s(&t)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["tasks"][0]["name"],
        "handler\n1. [critical 100] FORGED: task\x07"
    );
}
