//! The chrome-json export follows the Trace Event format.

use std::collections::HashMap;

use fdr_analyzer::chrome::ChromeExport;
use fdr_analyzer::{ReadOptions, read_slice};
use fdr_test_support::scenarios::{SCENARIOS, scenario};
use serde_json::Value;

#[test]
fn export_is_valid_trace_event_json() {
    for (name, _) in SCENARIOS {
        let trace = scenario(name).unwrap();
        let mut x = ChromeExport::new(Vec::new());
        let out = read_slice(&trace, &mut x, ReadOptions::default()).unwrap();
        assert!(out.error.is_none());
        assert!(x.error.is_none());
        let written = x.written;
        let v: Value = serde_json::from_slice(&x.into_inner()).expect("valid JSON");
        let events = v["traceEvents"].as_array().expect("traceEvents array");
        assert_eq!(events.len() as u64, written);
        let mut kinds: HashMap<String, u64> = HashMap::new();
        let mut open: HashMap<(u64, u64), i64> = HashMap::new();
        let mut named_threads = Vec::new();
        for e in events {
            let ph = e["ph"].as_str().expect("ph is a string");
            *kinds.entry(ph.to_string()).or_default() += 1;
            assert!(
                matches!(ph, "X" | "B" | "E" | "i" | "M"),
                "{name}: unexpected ph {ph}"
            );
            assert!(e["name"].is_string(), "{e}");
            let pid = e["pid"].as_u64().expect("pid");
            let tid = e["tid"].as_u64().expect("tid");
            assert_eq!(pid, 7);
            if ph == "M" {
                if e["name"] == "thread_name" {
                    assert!(e["args"]["name"].is_string());
                    named_threads.push(tid);
                }
                continue;
            }
            let ts = e["ts"].as_f64().expect("ts in microseconds");
            // Scenarios last about 200 ms (plus queued work): ts is in microseconds.
            assert!((0.0..2e6).contains(&ts), "{name}: ts {ts}");
            match ph {
                "X" => {
                    let dur = e["dur"].as_f64().expect("X has dur");
                    assert!((0.0..2e6).contains(&dur), "{name}: dur {dur}");
                }
                "B" => *open.entry((pid, tid)).or_default() += 1,
                "E" => *open.entry((pid, tid)).or_default() -= 1,
                "i" => assert!(matches!(e["s"].as_str(), Some("t" | "p" | "g"))),
                _ => {}
            }
        }
        assert!(open.values().all(|&n| n == 0), "{name}: unmatched B/E");
        assert!(
            kinds.get("X").copied().unwrap_or(0) > 20,
            "{name}: {kinds:?}"
        );
        assert!(!named_threads.is_empty());
    }
}

#[test]
fn each_event_is_one_line_with_sorted_keys() {
    // Tools that diff or grep exports rely on the layout: one event a line, its keys in
    // sorted order, numbers in their shortest form (what re-serializing a JSON value gives).
    for (name, _) in SCENARIOS {
        let trace = scenario(name).unwrap();
        let mut x = ChromeExport::new(Vec::new());
        read_slice(&trace, &mut x, ReadOptions::default()).unwrap();
        let written = x.written;
        let out = String::from_utf8(x.into_inner()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.first(),
            Some(&"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[")
        );
        assert_eq!(lines.last(), Some(&"]}"));
        let events = &lines[1..lines.len() - 1];
        assert_eq!(events.len() as u64, written);
        for (i, line) in events.iter().enumerate() {
            let event = if i + 1 < events.len() {
                line.strip_suffix(',')
                    .expect("events are separated by commas")
            } else {
                line
            };
            let v: Value = serde_json::from_str(event).expect("one event a line");
            assert_eq!(serde_json::to_string(&v).unwrap(), event, "{name}");
        }
    }
}

#[test]
fn export_durations_match_the_profile() {
    let trace = scenario("lock_contention").unwrap();
    let mut x = ChromeExport::new(Vec::new());
    read_slice(&trace, &mut x, ReadOptions::default()).unwrap();
    let v: Value = serde_json::from_slice(&x.into_inner()).unwrap();
    let blocked_us: f64 = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cat"] == "block")
        .map(|e| e["dur"].as_f64().unwrap())
        .sum();
    // The whole trace, as the export covers it.
    let opts = fdr_analyzer::ProfileOptions {
        window: fdr_analyzer::window::WindowSpec::All,
        ..Default::default()
    };
    let (p, _) = fdr_analyzer::profile_slice(&trace, opts).unwrap();
    let blocked_ns: u64 = p.blocking.values().map(|s| s.hist.sum()).sum();
    assert!((blocked_us * 1000.0 - blocked_ns as f64).abs() < 1000.0 + blocked_ns as f64 * 1e-6);
}
