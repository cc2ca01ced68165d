//! The Perfetto export, decoded by an independent decoder: Perfetto's own protobuf classes
//! (the `perfetto` package on PyPI, generated from Perfetto's `perfetto_trace.proto`), run
//! by `tests/perfetto/check_trace.py`, which checks the trace's structure. What it decoded
//! is then compared with the fdr trace itself and with the chrome-json export of it.
//!
//! The decoder is installed into this target directory with pip on first use (pinned
//! versions, nothing outside `target/`). Without Python, pip or PyPI the tests fail, saying
//! what is missing: `cargo xtask ci` installs pip, and a check that cannot run is not a pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fdr_analyzer::chrome::ChromeExport;
use fdr_analyzer::perfetto::PerfettoExport;
use fdr_analyzer::{EventCx, ReadOptions, Visitor, read_slice};
use fdr_format::{EventKind, SampleCause, StrId, TaskId};
use fdr_test_support::events::{module_of, os_sample};
use fdr_test_support::python::{PERFETTO as DECODER, PERFETTO_PY, PROTOBUF_PY};
use fdr_test_support::scenarios::{SCENARIOS, TraceBuilder, scenario};
use serde_json::Value;

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The directory holding the decoder's Python packages, installed there when missing.
fn decoder() -> Result<&'static Path, String> {
    static SITE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SITE.get_or_init(|| DECODER.site_in(&tmp()))
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// The exporter's counters.
#[derive(Debug, Clone, Copy)]
struct Counts {
    packets: u64,
    slices: u64,
    task_slices: u64,
    unfinished: u64,
    unmatched: u64,
}

/// Exports `trace` as Perfetto and decodes it; fails when the decoder cannot be had.
fn decode(trace: &[u8], name: &str) -> Option<(Value, Counts)> {
    let site = match decoder() {
        Ok(s) => s,
        Err(why) => panic!(
            "the Perfetto check needs python3 with pip and PyPI ({PERFETTO_PY}, {PROTOBUF_PY}; `cargo xtask ci` installs pip): {why}"
        ),
    };
    let mut x = PerfettoExport::new(Vec::new());
    let out = read_slice(trace, &mut x, ReadOptions::default()).unwrap();
    assert!(out.error.is_none(), "{name}: {:?}", out.error);
    assert!(x.error.is_none());
    let file = tmp().join(format!("{name}.pftrace"));
    let summary = tmp().join(format!("{name}.summary.json"));
    let counts = Counts {
        packets: x.packets,
        slices: x.slices,
        task_slices: x.task_slices,
        unfinished: x.unfinished,
        unmatched: x.unmatched,
    };
    let (states, samples) = (x.thread_states, x.stack_samples);
    let written = x.bytes;
    let bytes = x.into_inner();
    assert_eq!(bytes.len() as u64, written);
    std::fs::write(&file, &bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/perfetto/check_trace.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .arg(&summary)
        .env("PYTHONPATH", site)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name}: the decoder rejected the export:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(v["packets"].as_u64(), Some(counts.packets), "{name}");
    assert_eq!(
        v["states"].as_array().unwrap().len() as u64,
        states,
        "{name}"
    );
    assert_eq!(
        v["samples"].as_array().unwrap().len() as u64,
        samples,
        "{name}"
    );
    Some((v, counts))
}

type Key = (u64, String, String, u64, u64);

/// Chrome-json's complete events, log and loss instants, threads and process, as multisets.
#[derive(Default, Debug)]
struct Chrome {
    slices: BTreeMap<Key, u32>,
    logs: BTreeMap<(u64, String, u64, String), u32>,
    losses: BTreeMap<(u64, String, u64), u32>,
    threads: BTreeMap<String, String>,
    process: (u64, String),
}

fn ns(us: &Value) -> u64 {
    (us.as_f64().unwrap() * 1000.0).round() as u64
}

fn chrome(trace: &[u8]) -> Chrome {
    let mut x = ChromeExport::new(Vec::new());
    read_slice(trace, &mut x, ReadOptions::default()).unwrap();
    let v: Value = serde_json::from_slice(&x.into_inner()).unwrap();
    let mut c = Chrome::default();
    for e in v["traceEvents"].as_array().unwrap() {
        let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        let tid = e["tid"].as_u64().unwrap();
        match (s("ph").as_str(), s("cat").as_str()) {
            ("X", cat) => {
                let k = (tid, cat.to_string(), s("name"), ns(&e["ts"]), ns(&e["dur"]));
                *c.slices.entry(k).or_default() += 1;
            }
            ("i", "log") => {
                let m = e["args"]["message"].as_str().unwrap().to_string();
                *c.logs.entry((tid, s("name"), ns(&e["ts"]), m)).or_default() += 1;
            }
            ("i", "loss") => {
                let r = e["args"]["reason"].as_str().unwrap().to_string();
                let events = e["args"]["events"].as_u64().unwrap();
                *c.losses.entry((ns(&e["ts"]), r, events)).or_default() += 1;
            }
            ("M", _) if s("name") == "thread_name" => {
                c.threads
                    .insert(tid.to_string(), e["args"]["name"].as_str().unwrap().into());
            }
            ("M", _) => {
                c.process = (
                    e["pid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap().into(),
                );
            }
            other => panic!("unexpected chrome event {other:?}"),
        }
    }
    c
}

/// What the fdr trace itself holds, counted straight from its events.
#[derive(Default)]
struct Counted {
    wakes: u64,
    metrics: Vec<(u64, f64)>,
    created: u64,
    wall: Option<i128>,
}

impl Visitor for Counted {
    fn event(&mut self, cx: &EventCx<'_>) {
        match cx.kind {
            EventKind::Wake { .. } => self.wakes += 1,
            EventKind::Metric { value, .. } => self.metrics.push((cx.ns, value)),
            EventKind::TaskCreate { .. } => self.created += 1,
            _ => {}
        }
    }
    fn end(&mut self, cx: &fdr_analyzer::EndCx<'_>) {
        self.wall = cx.clock.origin_wall_unix_ns;
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap().to_string()
}

/// Checks one trace's export against chrome-json and the trace; returns the summary.
fn check_trace(trace: &[u8], name: &str) -> Option<Value> {
    let (v, x) = decode(trace, name)?;
    let c = chrome(trace);
    let mut counted = Counted::default();
    read_slice(trace, &mut counted, ReadOptions::default()).unwrap();

    // Process and threads, named as chrome-json names them.
    assert_eq!(v["process"]["pid"].as_u64(), Some(c.process.0), "{name}");
    assert_eq!(str_of(&v["process"]["name"]), c.process.1, "{name}");
    let threads: BTreeMap<String, String> = v["threads"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), str_of(n)))
        .collect();
    assert_eq!(threads, c.threads, "{name}: thread tracks");

    // Every slice chrome-json writes, at the same nanosecond, and no other finished one.
    let mut slices: BTreeMap<Key, u32> = BTreeMap::new();
    let mut unfinished = 0u64;
    for s in v["slices"].as_array().unwrap() {
        if s["args"]["unfinished"] == Value::Bool(true) {
            unfinished += 1;
            continue;
        }
        let k = (
            s["tid"].as_u64().unwrap(),
            str_of(&s["cat"]),
            str_of(&s["name"]),
            s["ts"].as_u64().unwrap(),
            s["dur"].as_u64().unwrap(),
        );
        *slices.entry(k).or_default() += 1;
    }
    assert_eq!(unfinished, x.unfinished, "{name}");
    assert_eq!(
        v["slices"].as_array().unwrap().len() as u64,
        x.slices,
        "{name}"
    );
    if slices != c.slices {
        let only_p: Vec<_> = slices
            .keys()
            .filter(|k| !c.slices.contains_key(k))
            .take(5)
            .collect();
        let only_c: Vec<_> = c
            .slices
            .keys()
            .filter(|k| !slices.contains_key(k))
            .take(5)
            .collect();
        panic!(
            "{name}: slices differ from chrome-json: only perfetto {only_p:?}, only chrome {only_c:?}"
        );
    }

    // Logs with their messages, losses, wakes, metric samples.
    let mut logs = BTreeMap::new();
    let mut losses = BTreeMap::new();
    let mut wakes = 0u64;
    for i in v["instants"].as_array().unwrap() {
        let ts = i["ts"].as_u64().unwrap();
        match i["cat"].as_str().unwrap() {
            "log" => {
                let k = (
                    i["tid"].as_u64().unwrap(),
                    str_of(&i["name"]),
                    ts,
                    str_of(&i["args"]["message"]),
                );
                *logs.entry(k).or_default() += 1;
            }
            "loss" => {
                assert_eq!(
                    i["process"],
                    Value::Bool(true),
                    "{name}: loss is process-wide"
                );
                let k = (
                    ts,
                    str_of(&i["args"]["reason"]),
                    i["args"]["events"].as_u64().unwrap(),
                );
                *losses.entry(k).or_default() += 1;
            }
            "wake" => {
                wakes += 1;
                assert!(str_of(&i["name"]).starts_with("wake "), "{name}: {i}");
                assert!(i["args"]["woken task"].is_u64(), "{name}: {i}");
            }
            other => panic!("{name}: unexpected instant category {other}"),
        }
    }
    assert_eq!(logs, c.logs, "{name}: logs");
    assert_eq!(losses, c.losses, "{name}: losses");
    assert_eq!(wakes, counted.wakes, "{name}: wakes");
    let flows = v["flows_started"].as_u64().unwrap();
    assert!(
        flows <= wakes && (flows > 0) == (wakes > 0),
        "{name}: {flows} flows"
    );
    assert!(v["flows_ended"].as_u64().unwrap() <= flows);
    let metrics: Vec<(u64, f64)> = v["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["ts"].as_u64().unwrap(), m["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(metrics, counted.metrics, "{name}: metric samples");

    // The wall clock of the trace's time 0.
    match counted.wall {
        Some(w) => {
            assert_eq!(v["clock"]["trace"].as_u64(), Some(0), "{name}");
            assert_eq!(v["clock"]["realtime"].as_u64(), Some(w as u64), "{name}");
        }
        None => assert!(v["clock"].is_null(), "{name}"),
    }
    // Each task's async track: its life and phases (its polls stay on the threads).
    let task_slices = v["task_slices"].as_array().unwrap();
    assert_eq!(task_slices.len() as u64, x.task_slices, "{name}");
    let lives = task_slices.iter().filter(|s| s["cat"] == "task").count() as u64;
    assert!(
        lives >= counted.created,
        "{name}: {lives} task lives, {} created",
        counted.created
    );
    assert!(
        task_slices
            .iter()
            .all(|s| s["cat"] == "task" || s["cat"] == "async_region"),
        "{name}"
    );
    for s in task_slices.iter().filter(|s| s["cat"] == "task") {
        assert_eq!(
            s["name"], s["track"],
            "{name}: a life is named as its track: {s}"
        );
    }
    Some(v)
}

/// A request's OpenTelemetry ids reach its polls and its life, and those of a task it
/// creates; async regions are the task's phases.
#[test]
fn otel_ids_are_arguments_and_async_regions_are_phases() {
    let mut b = TraceBuilder::new();
    let t = b.thread("worker");
    let name = b.string("http GET /user/{id}");
    let child_name = b.string("db call");
    let phase = b.string("db");
    let site = b.site("src/main.rs", 7);
    let (req, child) = (TaskId(1), TaskId(2));
    let trace_id = [0x4b; 16];
    let span_id = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
    let events = [
        EventKind::TaskCreate {
            task: req,
            parent: TaskId::NONE,
            name,
            site,
        },
        EventKind::OtelLink {
            task: req,
            trace_id,
            span_id,
        },
        EventKind::PollStart { task: req },
        EventKind::AsyncRegionBegin {
            region: 11,
            task: req,
            name: phase,
        },
        EventKind::TaskCreate {
            task: child,
            parent: req,
            name: child_name,
            site,
        },
        EventKind::PollEnd {
            task: req,
            ready: false,
        },
        EventKind::PollStart { task: child },
        EventKind::PollEnd {
            task: child,
            ready: true,
        },
        EventKind::TaskDrop { task: child },
        EventKind::PollStart { task: req },
        EventKind::AsyncRegionEnd {
            region: 11,
            task: req,
        },
        EventKind::PollEnd {
            task: req,
            ready: true,
        },
        EventKind::TaskDrop { task: req },
    ];
    for (i, e) in events.into_iter().enumerate() {
        b.push(t, 1000 * (i as u64 + 1), e);
    }
    let trace = b.build();
    let (v, _) = decode(&trace, "otel").unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (tid, sid) = (hex(&trace_id), hex(&span_id));
    let polls: Vec<&Value> = v["slices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cat"] == "poll")
        .collect();
    assert_eq!(polls.len(), 3);
    for p in &polls {
        assert_eq!(p["args"]["otel trace id"], tid.as_str(), "{p}");
        assert_eq!(p["args"]["otel span id"], sid.as_str(), "{p}");
    }
    let tasks = v["task_slices"].as_array().unwrap();
    let life = |n: &str| {
        tasks
            .iter()
            .find(|s| s["cat"] == "task" && s["name"] == n)
            .unwrap_or_else(|| panic!("no life of {n}: {tasks:?}"))
    };
    let req_life = life("http GET /user/{id}");
    assert_eq!(
        (req_life["ts"].as_u64(), req_life["dur"].as_u64()),
        (Some(0), Some(12_000))
    );
    assert_eq!(req_life["args"]["otel trace id"], tid.as_str());
    assert_eq!(req_life["args"]["spawn site"], "src/main.rs:7:5");
    assert_eq!(
        life("db call")["args"]["otel trace id"],
        tid.as_str(),
        "inherited"
    );
    let phase = tasks.iter().find(|s| s["cat"] == "async_region").unwrap();
    assert_eq!(phase["name"], "db");
    assert_eq!(phase["phases"], Value::Bool(true));
    assert_eq!(
        (phase["ts"].as_u64(), phase["dur"].as_u64()),
        (Some(3000), Some(7000))
    );
    assert!(v["clock"]["realtime"].as_u64().is_some());
}

#[test]
fn every_scenario_decodes_and_matches_chrome_json() {
    for (name, _) in SCENARIOS {
        let trace = scenario(name).unwrap();
        let Some(v) = check_trace(&trace, name) else {
            return;
        };
        assert!(v["slices"].as_array().unwrap().len() > 20, "{name}");
    }
    // Wakes become flows into the woken task's next poll.
    let (v, _) = decode(&scenario("healthy").unwrap(), "healthy-flows").unwrap();
    assert!(v["flows_started"].as_u64().unwrap() > 100);
    assert_eq!(v["flows_started"], v["flows_ended"]);
}

#[test]
fn sample_and_every_kind_traces_decode() {
    let sample = fdr_format::testing::sample_trace();
    let Some(v) = check_trace(&sample, "sample") else {
        return;
    };
    assert!(v["slices"].as_array().unwrap().len() > 1000);
    assert!(!v["instants"].as_array().unwrap().is_empty());

    let every = fdr_format::testing::every_kind_trace();
    let v = check_trace(&every, "every_kind").unwrap();
    let cats: Vec<String> = v["slices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| str_of(&s["cat"]))
        .collect();
    for cat in ["poll", "task", "region", "block", "park"] {
        assert!(cats.iter().any(|c| c == cat), "no {cat} slice: {cats:?}");
    }
    let block = v["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["cat"] == "block")
        .unwrap();
    assert_eq!(block["name"], "blocked: channel");
    assert!(str_of(&block["args"]["site"]).contains(":3"), "{block}");
    assert_eq!(v["counters"].as_array().unwrap().len(), 1);
    assert_eq!(v["counters"][0]["value"].as_f64(), Some(2.5));
    let msgs: Vec<String> = v["instants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["cat"] == "log")
        .map(|i| str_of(&i["args"]["message"]))
        .collect();
    assert_eq!(msgs, ["x=1", "a"], "an inline and an interned message");
    // Its stacks (a long scope's, and a CPU sample with its age): callstack samples on
    // thread 1, outermost frame first, each frame in the trace's module (whose file is not
    // there: module file name and offset).
    let samples = v["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2, "{samples:?}");
    for sample in samples {
        let names: Vec<String> = sample["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| str_of(&f["function"]))
            .collect();
        assert_eq!(names, ["seed+0x4000", "seed+0x1456", "seed+0x1123"]);
        assert_eq!(sample["frames"][0]["mapping"], "/bin/seed");
    }
}

/// Where a blocked poll's thread was: it sleeps in a known function of this test.
#[inline(never)]
fn perfetto_test_blocking_call() -> u64 {
    std::hint::black_box(7)
}

/// A long poll with the OS view: its thread's state track says where each interval
/// between two OS samples went (the one inside the poll mostly off-CPU: `sleeping`), and
/// the stack captured inside it is a callstack sample on its thread, symbolized to the
/// function it blocked in, with file and line.
#[test]
fn a_long_poll_shows_its_thread_state_and_its_blocking_stack() {
    let ip = perfetto_test_blocking_call as *const () as usize as u64 + 1;
    let module = module_of(ip);
    let mut b = TraceBuilder::new();
    b.module(module);
    let worker = b.thread("worker");
    let sampler = b.thread("fdr-sampler");
    let name = b.string("rpc touch");
    let site = b.site("src/main.rs", 9);
    let task = TaskId(5);
    let ms = 1_000_000;
    b.task(worker, 0, task, name, site);
    b.poll(worker, 10 * ms, 80 * ms, task, true);
    let sample = |cause, cpu, runq, state| os_sample(worker, cause, cpu, runq, state);
    b.push(sampler, 0, sample(SampleCause::Periodic, 0, 0, b'R'));
    b.push(
        sampler,
        12 * ms,
        sample(SampleCause::LongScope, 11 * ms, 0, b'S'),
    );
    b.stack(
        sampler,
        12 * ms + 500_000,
        worker,
        SampleCause::LongScope,
        &[ip],
        None,
    );
    b.push(
        sampler,
        81 * ms,
        sample(SampleCause::ScopeEnd, 11 * ms + 500_000, 100_000, b'S'),
    );
    let trace = b.build();
    let (v, _) = decode(&trace, "os-view").unwrap();

    let states = v["states"].as_array().unwrap();
    let got: Vec<(String, u64, u64)> = states
        .iter()
        .map(|s| {
            (
                str_of(&s["name"]),
                s["dur"].as_u64().unwrap(),
                s["args"]["off-CPU ns"].as_u64().unwrap(),
            )
        })
        .collect();
    // 0-12 ms: 11 ms on a CPU; 12-81 ms: 0.5 ms on a CPU, 0.1 ms waiting, the rest off.
    assert_eq!(
        got,
        [
            ("running".to_string(), 12 * ms, ms),
            ("sleeping".to_string(), 69 * ms, 69 * ms - 600_000),
        ]
    );
    let worker_tid = states[0]["tid"].clone();
    assert_eq!(v["threads"][worker_tid.to_string()], "worker");
    assert_eq!(states[1]["args"]["state"], "S");

    let samples = v["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0]["tid"], worker_tid);
    let frames = samples[0]["frames"].as_array().unwrap();
    let leaf = frames.last().unwrap();
    assert!(
        str_of(&leaf["function"]).ends_with("perfetto_test_blocking_call"),
        "{frames:?}"
    );
    assert!(
        str_of(&leaf["file"]).ends_with("perfetto_export.rs"),
        "{leaf}"
    );
    assert!(leaf["line"].as_u64().is_some(), "{leaf}");
    assert_eq!(leaf["mapping"], module_of(ip).path.as_str());
}

/// A CPU sample recorded 30 ms after it was taken, inside a poll that ended meanwhile: its
/// callstack sample is at the moment it was taken, inside that poll's slice.
#[test]
fn a_late_cpu_sample_lands_inside_the_poll_it_was_taken_in() {
    let ip = perfetto_test_blocking_call as *const () as usize as u64 + 1;
    let mut b = TraceBuilder::new();
    b.module(module_of(ip));
    let worker = b.thread("worker");
    let sampler = b.thread("fdr-sampler");
    let site = b.site("src/main.rs", 3);
    let ms = 1_000_000;
    for (task, name) in [(TaskId(1), "alpha"), (TaskId(2), "beta")] {
        let name = b.string(name);
        b.task(worker, 0, task, name, site);
    }
    b.poll(worker, 10 * ms, 30 * ms, TaskId(1), false);
    b.poll(worker, 40 * ms, 100 * ms, TaskId(2), false);
    b.stack(
        sampler,
        50 * ms,
        worker,
        SampleCause::CpuTimer,
        &[ip],
        Some(30 * ms),
    );
    let (v, _) = decode(&b.build(), "late-sample").unwrap();
    let samples = v["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0]["ts"].as_u64(), Some(20 * ms), "{samples:?}");
}

/// A region held across a poll's end, a poll left open at the end of the trace, and an
/// end whose begin came before the trace: slices still nest on the thread's track, and
/// the slices cut short say so.
#[test]
fn slices_nest_even_when_the_trace_does_not() {
    let mut b = TraceBuilder::new();
    let t = b.thread("worker");
    let name = b.string("job");
    let region = b.string("held across an await");
    let task = TaskId(9);
    let before = TaskId(8);
    let mut at = 0;
    let mut push = |b: &mut TraceBuilder, kind| {
        at += 1000;
        b.push(t, at, kind);
    };
    push(
        &mut b,
        EventKind::PollEnd {
            task: before,
            ready: false,
        },
    );
    push(
        &mut b,
        EventKind::TaskCreate {
            task,
            parent: TaskId::NONE,
            name,
            site: fdr_format::SiteId(0),
        },
    );
    push(&mut b, EventKind::PollStart { task });
    push(&mut b, EventKind::RegionBegin { name: region });
    push(&mut b, EventKind::PollEnd { task, ready: false });
    push(&mut b, EventKind::RegionEnd { name: region });
    push(&mut b, EventKind::PollStart { task });
    push(
        &mut b,
        EventKind::RegionBegin {
            name: StrId(name.0),
        },
    );
    let trace = b.build();
    let Some((v, x)) = decode(&trace, "unnested") else {
        return;
    };
    assert_eq!(
        x.unmatched, 2,
        "the early poll end and the region's own end"
    );
    assert_eq!(x.unfinished, 3);
    let slices: Vec<(String, u64, u64, bool)> = v["slices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                str_of(&s["name"]),
                s["ts"].as_u64().unwrap(),
                s["dur"].as_u64().unwrap(),
                s["args"]["unfinished"] == Value::Bool(true),
            )
        })
        .collect();
    // Times are since the first event: one event every 1000 ns.
    assert_eq!(
        slices,
        [
            ("held across an await".to_string(), 3000, 1000, true),
            ("poll job".to_string(), 2000, 2000, false),
            ("job".to_string(), 7000, 0, true),
            ("poll job".to_string(), 6000, 1000, true),
        ]
    );
}
