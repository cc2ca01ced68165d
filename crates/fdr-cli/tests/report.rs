//! `fdr report` as an incident view, checked in headless Chromium: the trigger from the
//! incident's sidecar and the wall clock at the top, the findings before the timeline, the
//! top finding's window drawn on the timeline the page opens on, short slices reachable by
//! zooming in, tables with named columns. Chromium is Debian's (`cargo xtask ci` installs
//! it); without it these tests fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use fdr_analyzer::{EndCx, EventCx, ReadOptions, Visitor, read_slice};
use fdr_format::{EventKind, TaskId, ThreadId};
use fdr_test_support::scenarios::scenario;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdr-report-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!(
        "the report check needs headless Chromium (Debian's chromium; `cargo xtask ci` installs it)"
    );
}

/// The DOM of `url` after its scripts ran, in headless Chromium.
fn page_dom(url: &str, profile: &Path) -> String {
    let o = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .unwrap();
    let d = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        d.contains("data-ok=\"1\""),
        "the page did not finish drawing:\n{}",
        &d[..d.len().min(3000)]
    );
    assert!(
        d.contains("<pre id=\"fdr-errors\"></pre>"),
        "script errors:\n{d}"
    );
    d
}

/// The value of attribute `name` in the tag `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// Every opening tag `<rect ...>` of class `class`.
fn rects<'a>(dom: &'a str, class: &str) -> Vec<&'a str> {
    dom.match_indices("<rect ")
        .filter_map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>')?];
            (attr(tag, "class") == Some(class)).then_some(tag)
        })
        .collect()
}

/// The wall clock of the trace's first event, and a short poll of a thread (start, end).
#[derive(Default)]
struct Facts {
    origin_wall_unix_ns: Option<i128>,
    open: std::collections::HashMap<ThreadId, (TaskId, u64)>,
    polls: Vec<(u64, u64)>,
}

impl Visitor for Facts {
    fn event(&mut self, cx: &EventCx<'_>) {
        match cx.kind {
            EventKind::PollStart { task } => {
                self.open.insert(cx.thread, (task, cx.ns));
            }
            EventKind::PollEnd { task, .. } => {
                if let Some((t, s)) = self.open.remove(&cx.thread)
                    && t == task
                {
                    self.polls.push((s, cx.ns));
                }
            }
            _ => {}
        }
    }
    fn end(&mut self, cx: &EndCx<'_>) {
        self.origin_wall_unix_ns = cx.clock.origin_wall_unix_ns;
    }
}

#[test]
fn the_report_is_an_incident_view_with_the_top_findings_window_drawn() {
    let d = dir();
    let bytes = scenario("long_polls").unwrap();
    let trace = d.join("20250615T150640.100Z-slow_polls.fdr");
    std::fs::write(&trace, &bytes).unwrap();
    let mut facts = Facts::default();
    read_slice(&bytes, &mut facts, ReadOptions::default()).unwrap();
    let origin = facts
        .origin_wall_unix_ns
        .expect("the scenario has a clock sync");
    // The sentinel's sidecar beside the dump: the rule fired 100 ms into the trace.
    let fired_ms = (origin / 1_000_000) as u64 + 100;
    let sidecar = serde_json::json!({
        "id": "20250615T150640.100Z-slow_polls", "rule": "slow_polls",
        "condition": "slow_polls: fdr_poll_duration_seconds p99 > 0.005 for 1",
        "metric": "fdr_poll_duration_seconds", "value": 0.0391, "threshold": 0.005,
        "values": [{"rule": "slow_polls", "value": 0.0391}], "time_unix_ms": fired_ms,
        "host": "test-host", "pid": 4242, "service_version": "1.2.3", "bytes": bytes.len(),
    });
    std::fs::write(
        d.join("20250615T150640.100Z-slow_polls.json"),
        sidecar.to_string(),
    )
    .unwrap();
    let html = d.join("incident.html");
    let o = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(["report", "-o"])
        .arg(&html)
        .arg(&trace)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();

    // The trigger and the wall clock first, then the findings, then the timeline.
    let trig = page.find("id=\"trigger\"").expect("the trigger is shown");
    let findings = page.find("<h2>Findings</h2>").unwrap();
    let timeline = page.find("<h2>Timeline</h2>").unwrap();
    assert!(trig < findings && findings < timeline);
    assert!(page.contains("rule <code>slow_polls</code> fired at 2025-06-15 15:06:40.1"));
    assert!(page.contains("value <b>39.10ms</b> against threshold <b>5.00ms</b>"));
    let into = fdr_analyzer::text::dur((fired_ms as i128 * 1_000_000 - origin) as u64);
    assert!(
        page.contains(&format!("{into} into the trace")),
        "{}",
        &page[trig..trig + 600]
    );
    assert!(page.contains("from 2025-06-15 15:06:40.000 UTC to "));
    // Human tables: named columns with units, no raw JSON cells.
    assert!(page.contains("<th>lifetime p99</th>") && page.contains("<th>spawn site</th>"));
    assert!(
        !page.contains("{\"") || page.find("{\"").unwrap() > page.find("id=\"fdr-data\"").unwrap()
    );
    assert!(!page.contains("min_slice_ns"), "no debug line");

    let diag = Command::new(env!("CARGO_BIN_EXE_fdr"))
        .args(["diagnose", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&diag.stdout).unwrap();
    let top = &v["outcomes"][0];
    let (rule, a, b) = (
        top["rule"].as_str().unwrap(),
        top["window_ns"][0].as_u64().unwrap(),
        top["window_ns"][1].as_u64().unwrap(),
    );
    assert_eq!(rule, "long_polls");

    let dom = page_dom(&format!("file://{}", html.display()), &d.join("profile"));
    let wins = rects(&dom, "fwin");
    let first = wins
        .iter()
        .find(|t| attr(t, "data-rank") == Some("1"))
        .unwrap_or_else(|| panic!("no window of the top finding: {wins:?}"));
    assert_eq!(attr(first, "data-rule"), Some(rule));
    assert_eq!(attr(first, "data-start-ns"), Some(a.to_string().as_str()));
    assert_eq!(attr(first, "data-end-ns"), Some(b.to_string().as_str()));
    assert_eq!(attr(first, "data-visible"), Some("1"), "{first}");
    let x: f64 = attr(first, "x").unwrap().parse().unwrap();
    let w: f64 = attr(first, "width").unwrap().parse().unwrap();
    // The page opens on the window with its length again on each side: it is the middle
    // third of the plot, whatever the plot's width.
    assert!(w > 100.0 && x > 200.0, "{first}");
    // The trigger, 100 ms in, is inside the view (about 35 to 152 ms).
    assert!(dom.contains("class=\"trigger\""), "trigger not drawn");
    // Lanes the finding involves: the worker the long poll held, the task it polled.
    assert!(dom.contains(">tokio-worker-2<"));
    assert!(
        dom.contains(">task 325 generate_report<"),
        "the long poll's task has a lane"
    );

    // A poll far shorter than a pixel of the whole trace is drawn when zoomed in on.
    let &(s, e) = facts
        .polls
        .iter()
        .find(|(s, e)| e - s < 60_000 && *s > a && *e < b)
        .expect("a short poll inside the window");
    let len = e - s;
    let url = format!("file://{}#view={},{}", html.display(), s - len, e + len);
    let zoomed = page_dom(&url, &d.join("profile"));
    let polls: Vec<&str> = rects(&zoomed, "slice")
        .into_iter()
        .filter(|t| attr(t, "width").is_some_and(|w| w.parse::<f64>().unwrap() > 100.0))
        .collect();
    assert!(
        !polls.is_empty(),
        "the {len} ns poll at {s} ns is not drawn when zoomed in on"
    );
    // At the whole trace's scale it is one pixel holding several slices, not nothing.
    let url = format!("file://{}#view=0,{}", html.display(), b * 2);
    let whole = page_dom(&url, &d.join("profile"));
    assert!(!rects(&whole, "agg").is_empty(), "narrow slices are marked");
}
