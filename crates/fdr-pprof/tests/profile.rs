//! Profiles of traces whose stacks point into this test binary's own functions, read back
//! by an independent reader (protobuf's Python runtime and the published `profile.proto`,
//! see `reader/`).

mod reader;

use std::path::PathBuf;

use fdr_format::event::METRIC_CPU_PROFILE_HZ;
use fdr_format::{
    BatchEncoder, ClockSync, EventKind, ProcessInfo, SampleCause, StackFrames, StrId, TableEncoder,
    ThreadId, TraceWriter,
};
use fdr_pprof::{Collector, Options, read_trace};
use serde_json::Value;

#[inline(never)]
fn pprof_test_leaf_function(x: u64) -> u64 {
    x ^ 0x5555
}

#[inline(never)]
fn pprof_test_caller_function(x: u64) -> u64 {
    std::hint::black_box(pprof_test_leaf_function(x)) ^ 1
}

/// This process's executable mapping holding `addr`: (start, end, file offset, path).
fn mapping_of(addr: u64) -> (u64, u64, u64, String) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (s, e) = f[0].split_once('-').unwrap();
        let (s, e) = (
            u64::from_str_radix(s, 16).unwrap(),
            u64::from_str_radix(e, 16).unwrap(),
        );
        if (s..e).contains(&addr) && f[1].contains('x') {
            let offset = u64::from_str_radix(f[2], 16).unwrap();
            return (s, e, offset, f[5..].join(" "));
        }
    }
    panic!("no executable mapping holds {addr:#x}");
}

struct Trace {
    bytes: Vec<u8>,
    exe: String,
}

/// A trace of `n` CPU samples of the stack leaf <- caller on thread "worker" (every
/// seventh cut short), one long-scope stack, and the rate first if `rate` is given.
fn trace(n: u32, rate: Option<f64>) -> Trace {
    let leaf = pprof_test_leaf_function as *const () as u64;
    let caller = pprof_test_caller_function as *const () as u64;
    let (start, end, offset, exe) = mapping_of(leaf);
    assert!(caller >= start && caller < end);
    let program = PathBuf::from(&exe)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut w = TraceWriter::new(
        Vec::new(),
        &ProcessInfo {
            pid: std::process::id(),
            program,
            ..ProcessInfo::default()
        },
    )
    .unwrap();
    let mut t = TableEncoder::new();
    t.string(StrId(1), METRIC_CPU_PROFILE_HZ)
        .thread(ThreadId(1), 100, "fdr-sampler")
        .thread(ThreadId(2), 101, "worker")
        .module(start, end, offset, exe.as_bytes(), b"")
        .module(0x1000, 0x2000, 0, b"/nonexistent/libgone.so", b"\x01\x02")
        .clock(&ClockSync {
            ticks: 0,
            mono_ns: 0,
            wall_unix_ns: 1_700_000_000_000_000_000,
            ticks_per_sec: 1e9,
        });
    w.write_table(&t, true).unwrap();
    let mut buf = vec![0u8; 60_000];
    let mut b = BatchEncoder::new(&mut buf, 1_000);
    let mut ts = 1_000;
    if let Some(hz) = rate {
        b.push(
            ts,
            &EventKind::Metric {
                name: StrId(1),
                value: hz,
            },
        )
        .unwrap();
    }
    let mut enc = Vec::new();
    // The interrupted instruction inside the leaf, a return address inside the caller.
    StackFrames::encode(&[leaf + 1, caller + 4], &mut enc);
    let frames = StackFrames::from_encoded(&enc, 2).unwrap();
    let mut enc2 = Vec::new();
    StackFrames::encode(&[0x1010, 0x1020], &mut enc2);
    let gone = StackFrames::from_encoded(&enc2, 2).unwrap();
    for i in 0..n {
        ts += 10_000_000;
        b.push(
            ts,
            &EventKind::Stack {
                thread: ThreadId(2),
                cause: SampleCause::CpuTimer,
                truncated: i % 7 == 0,
                frames,
                age_ticks: None,
            },
        )
        .unwrap();
    }
    b.push(
        ts + 1,
        &EventKind::Stack {
            thread: ThreadId(2),
            cause: SampleCause::CpuTimer,
            truncated: false,
            frames: gone,
            age_ticks: None,
        },
    )
    .unwrap();
    b.push(
        ts + 2,
        &EventKind::Stack {
            thread: ThreadId(2),
            cause: SampleCause::LongScope,
            truncated: false,
            frames,
            age_ticks: None,
        },
    )
    .unwrap();
    let base = b.base_ts();
    let payload = b.payload().to_vec();
    w.write_events(ThreadId(1), 0, base, &payload).unwrap();
    Trace {
        bytes: w.finish().unwrap(),
        exe,
    }
}

fn profile(t: &Trace, opts: Options, name: &str) -> (fdr_pprof::Profile, Value) {
    let mut c = Collector::new(opts);
    let (tables, info) = read_trace(&t.bytes[..], &mut c).unwrap();
    let p = c.finish(&tables, &info, None);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.pb.gz"));
    std::fs::write(&path, &p.gzipped).unwrap();
    let v = reader::read(&path);
    (p, v)
}

#[test]
fn cpu_samples_become_a_symbolized_cpu_profile() {
    let t = trace(50, Some(100.0));
    let (p, v) = profile(&t, Options::default(), "cpu");
    assert_eq!(p.cpu_samples, 51);
    assert_eq!(
        v["sample_types"],
        serde_json::json!([["samples", "count"], ["cpu", "nanoseconds"]])
    );
    assert_eq!(v["default_sample_type"], "cpu");
    assert_eq!(v["period_type"], serde_json::json!(["cpu", "nanoseconds"]));
    assert_eq!(v["period"], 10_000_000);
    assert_eq!(v["totals"], serde_json::json!([51, 510_000_000]));
    assert_eq!(v["time_nanos"], 1_700_000_000_000_000_000u64 + 10_001_000);
    assert_eq!(v["duration_nanos"], 49 * 10_000_000 + 1);

    // The leaf is the hottest function, flat; its caller is under it.
    let flat = reader::top(&v, "flat");
    assert!(flat[0].0.ends_with("pprof_test_leaf_function"), "{flat:?}");
    assert_eq!(flat[0].1, 50 * 10_000_000);
    let cum = reader::top(&v, "cum");
    assert!(
        cum.iter()
            .any(|(f, w)| f.ends_with("pprof_test_caller_function") && *w == 50 * 10_000_000),
        "{cum:?}"
    );
    // Lines name this file.
    let sample = &v["samples"][0];
    let leaf = &sample["frames"][0].as_array().unwrap().last().unwrap();
    assert!(
        leaf["file"].as_str().unwrap().ends_with("tests/profile.rs"),
        "{leaf}"
    );
    assert!(leaf["line"].as_i64().unwrap() > 0);
    assert_eq!(sample["labels"]["thread"], "worker");
    // Every seventh stack was cut short: those end in the truncation frame.
    let truncated: i64 = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["frames"].as_array().unwrap().last().unwrap()[0]["function"]
                == "[fdr: stack truncated]"
        })
        .map(|s| s["values"][0].as_i64().unwrap())
        .sum();
    assert_eq!(truncated, 8);

    // The program's mapping comes first, symbolized; the missing library is said so.
    let maps = v["mappings"].as_array().unwrap();
    let first = v["mapping_order"][0].as_u64().unwrap();
    let main = maps.iter().find(|m| m["id"] == first).unwrap();
    assert_eq!(main["filename"], t.exe.as_str());
    assert_eq!(main["has_functions"], true);
    assert_eq!(main["has_line_numbers"], true);
    let gone = maps
        .iter()
        .find(|m| m["filename"] == "/nonexistent/libgone.so")
        .unwrap();
    assert_eq!(gone["build_id"], "0102");
    assert_eq!(gone["has_functions"], false);
    let comments = v["comments"].as_array().unwrap();
    assert!(
        comments.iter().any(|c| c
            .as_str()
            .unwrap()
            .starts_with("not symbolized: /nonexistent/libgone.so")),
        "{comments:?}"
    );
}

#[test]
fn long_scope_stacks_are_a_sample_type_of_their_own() {
    let t = trace(5, Some(100.0));
    let (p, v) = profile(
        &t,
        Options {
            long_scopes: true,
            ..Options::default()
        },
        "long",
    );
    assert_eq!(p.long_scope_stacks, 1);
    assert_eq!(
        v["sample_types"],
        serde_json::json!([
            ["samples", "count"],
            ["cpu", "nanoseconds"],
            ["long_scope_stacks", "count"]
        ])
    );
    assert_eq!(v["totals"], serde_json::json!([6, 60_000_000, 1]));
}

#[test]
fn without_a_rate_the_profile_counts_samples_and_says_why() {
    let t = trace(5, None);
    let (p, v) = profile(&t, Options::default(), "norate");
    assert!(!p.has_cpu_time);
    assert_eq!(v["sample_types"], serde_json::json!([["samples", "count"]]));
    assert_eq!(v["default_sample_type"], "samples");
    assert_eq!(v["totals"], serde_json::json!([6]));
    assert!(
        v["comments"][0]
            .as_str()
            .unwrap()
            .contains("does not give its CPU profiling rate"),
        "{}",
        v["comments"]
    );
    // A caller that knows the rate it asked for gives it.
    let (_, v) = profile(
        &t,
        Options {
            fallback_cpu_hz: Some(250),
            ..Options::default()
        },
        "fallback",
    );
    assert_eq!(v["totals"], serde_json::json!([6, 24_000_000]));
    assert_eq!(v["period"], 4_000_000);
}
