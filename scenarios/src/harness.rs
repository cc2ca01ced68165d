//! `fdr-scenarios suite`: runs each scenario as its own process (a fresh recorder, runtime
//! and set of threads each), diagnoses its dump with `fdr_analyzer` (profile + diagnose, as
//! `fdr diagnose --json` does) and compares the diagnosis with the scenario's expectation.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fdr_analyzer::window::WindowSpec;
use serde_json::{Value, json};

use crate::expect::{SCENARIOS, Scenario, Site, Want};
use crate::svc::{BoxError, DUMP_FILE, RUN_FILE};

/// A scenario process that runs longer than this is killed (its run fails).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The suite's options.
#[derive(Debug, Clone)]
pub(crate) struct SuiteArgs {
    /// Only this scenario.
    pub(crate) only: Option<String>,
    /// JSON on standard output instead of the table.
    pub(crate) json: bool,
    /// Where each scenario's directory goes.
    pub(crate) out: PathBuf,
    /// Phase lengths passed to each run.
    pub(crate) warmup: Duration,
    /// The fault window.
    pub(crate) fault: Duration,
}

/// One scenario's outcome.
struct Outcome {
    scenario: &'static Scenario,
    /// What was expected, in words.
    expected: String,
    /// The diagnosis' top finding, if the run and the diagnosis worked.
    top: Option<Value>,
    /// The first finding above info (for a healthy scenario's "got").
    above_info: Vec<String>,
    /// The site the top finding names, if any.
    got_site: Option<String>,
    right: bool,
    /// Whether the scenario ran and its dump was diagnosed.
    ran: bool,
    /// Why it is wrong (empty when right).
    why: String,
    /// The run's own report (load, dump).
    run: Value,
    seconds: f64,
}

/// Runs the suite; prints the table (or JSON). Returns whether every scenario ran (a
/// scenario that ran and was diagnosed wrongly still "ran").
pub(crate) fn suite(args: &SuiteArgs) -> Result<bool, BoxError> {
    let chosen: Vec<&'static Scenario> = match &args.only {
        Some(name) => vec![crate::expect::scenario(name).ok_or_else(|| {
            format!(
                "no scenario `{name}`; there are: {}",
                SCENARIOS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?],
        None => SCENARIOS.iter().collect(),
    };
    fs::create_dir_all(&args.out)?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for s in chosen {
        eprintln!("fdr-scenarios: running {} ...", s.name);
        let o = run_one(&exe, s, args);
        eprintln!(
            "fdr-scenarios: {} {} in {:.1}s{}",
            s.name,
            if o.right { "right" } else { "wrong" },
            o.seconds,
            if o.why.is_empty() {
                String::new()
            } else {
                format!(": {}", o.why)
            }
        );
        outcomes.push(o);
    }
    let seconds = started.elapsed().as_secs_f64();
    let right = outcomes.iter().filter(|o| o.right).count();
    let all_ran = outcomes.iter().all(|o| o.ran);
    if args.json {
        let v = json!({
            "scenarios_right": right,
            "scenarios_total": outcomes.len(),
            "seconds": (seconds * 10.0).round() / 10.0,
            "cpu_model": cpu_model(),
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "scenarios": outcomes.iter().map(outcome_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_table(&outcomes);
        println!(
            "\nright {right} of {} in {seconds:.0}s ({}, {} cores); dumps and logs in {}",
            outcomes.len(),
            cpu_model(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            args.out.display()
        );
    }
    Ok(all_ran)
}

fn run_one(exe: &Path, s: &'static Scenario, args: &SuiteArgs) -> Outcome {
    let t = Instant::now();
    let dir = args.out.join(s.name);
    let mut o = Outcome {
        scenario: s,
        expected: expected_text(s),
        top: None,
        above_info: Vec::new(),
        got_site: None,
        right: false,
        ran: false,
        why: String::new(),
        run: Value::Null,
        seconds: 0.0,
    };
    let dump = dir.join(DUMP_FILE);
    match run_process(exe, s, &dir, args).and_then(|()| diagnose(&dump, WindowSpec::Active)) {
        Ok((findings, trace_ns)) => {
            o.ran = true;
            judge(&mut o, &findings);
            if o.right {
                judge_fault_alone(&mut o, &dump, trace_ns, args.fault);
            }
        }
        Err(e) => o.why = format!("run failed: {e}"),
    }
    o.run = fs::read_to_string(dir.join(RUN_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    o.seconds = t.elapsed().as_secs_f64();
    o
}

/// Runs `fdr-scenarios run NAME` as a child process, its output in `dir/run.log`.
fn run_process(exe: &Path, s: &Scenario, dir: &Path, args: &SuiteArgs) -> Result<(), BoxError> {
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    let log = fs::File::create(dir.join("run.log"))?;
    let mut child = Command::new(exe)
        .args(["run", s.name, "--out"])
        .arg(dir)
        .args([
            "--warmup-ms",
            &args.warmup.as_millis().to_string(),
            "--fault-ms",
            &args.fault.as_millis().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no exit within {RUN_TIMEOUT:?}; killed").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        let log = fs::read_to_string(dir.join("run.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        return Err(format!(
            "{status}; last lines of its log: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
        .into());
    }
    Ok(())
}

/// The share of the fault window, at the dump's end, that [`judge_fault_alone`] analyzes
/// (the rest is margin for the switch from the warm-up).
const FAULT_ALONE_SHARE: f64 = 0.9;

/// Judges the diagnosis again on the fault alone: the last [`FAULT_ALONE_SHARE`] of the
/// fault window, at the dump's end (the dump is taken with the fault on). The default
/// window holds the healthy warm-up too; a verdict must not rest on it (an incident's dump
/// need not hold a healthy stretch, and a healthy one may be all busy host).
fn judge_fault_alone(o: &mut Outcome, dump: &Path, trace_ns: u64, fault: Duration) {
    let span_ns = (fault.as_nanos() as f64 * FAULT_ALONE_SHARE) as u64;
    let window = WindowSpec::Range {
        from_ns: trace_ns.saturating_sub(span_ns),
        to_ns: None,
    };
    let mut alone = Outcome {
        scenario: o.scenario,
        expected: String::new(),
        top: None,
        above_info: Vec::new(),
        got_site: None,
        right: false,
        ran: true,
        why: String::new(),
        run: Value::Null,
        seconds: 0.0,
    };
    match diagnose(dump, window) {
        Ok((findings, _)) => judge(&mut alone, &findings),
        Err(e) => alone.why = e.to_string(),
    }
    if !alone.right {
        o.right = false;
        o.why = format!(
            "on the fault alone (the dump's last {:.2}s): {}",
            span_ns as f64 / 1e9,
            alone.why
        );
        o.top = alone.top;
        o.above_info = alone.above_info;
        o.got_site = alone.got_site;
    }
}

/// The diagnosis of a dump over `window`, as `fdr diagnose --json` prints it: the
/// applicable rules' findings, ranked; and the trace's length (ns).
fn diagnose(dump: &Path, window: WindowSpec) -> Result<(Vec<Value>, u64), BoxError> {
    let (profile, outcome) = fdr_analyzer::profile_file(
        dump,
        fdr_analyzer::ProfileOptions {
            window,
            ..Default::default()
        },
        fdr_analyzer::ReadOptions::default(),
    )?;
    if let Some(e) = outcome.error {
        return Err(format!("the dump {} is damaged: {e}", dump.display()).into());
    }
    let diagnosis = fdr_analyzer::diagnose(&profile).outcomes_json();
    Ok((
        diagnosis
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["applicable"].as_bool() == Some(true))
            .cloned()
            .collect(),
        profile.duration_ns,
    ))
}

fn severity(f: &Value) -> &str {
    f["severity"].as_str().unwrap_or("?")
}

fn above_info(f: &Value) -> bool {
    matches!(severity(f), "warning" | "critical")
}

fn describe(f: &Value) -> String {
    format!(
        "{} {} {:.0}",
        f["rule"].as_str().unwrap_or("?"),
        severity(f),
        f["score"].as_f64().unwrap_or(0.0)
    )
}

/// Compares the findings with the expectation.
fn judge(o: &mut Outcome, findings: &[Value]) {
    let top = findings.first().cloned();
    o.above_info = findings
        .iter()
        .filter(|f| above_info(f))
        .map(describe)
        .collect();
    o.got_site = top.as_ref().and_then(first_site);
    match o.scenario.want {
        Want::NothingAboveInfo => {
            o.right = o.above_info.is_empty();
            if !o.right {
                o.why = format!("above info: {}", o.above_info.join(", "));
            }
        }
        Want::Top { rules, sites } => {
            let Some(f) = &top else {
                o.why = "no finding".into();
                o.top = top;
                return;
            };
            let rule = f["rule"].as_str().unwrap_or("?");
            let want_sites: Result<Vec<Site>, String> = sites.iter().map(|m| m.resolve()).collect();
            o.why = match want_sites {
                Err(e) => e,
                Ok(_) if !rules.contains(&rule) => format!("top finding is {rule}"),
                Ok(_) if !above_info(f) => format!("top finding is only {}", severity(f)),
                Ok(want) if !want.is_empty() && !want.iter().any(|s| leads_with(f, s)) => {
                    format!(
                        "top finding's site is no fault site ({}{})",
                        o.got_site
                            .as_deref()
                            .map_or("no site".into(), |s| format!("it leads with {s}")),
                        if want.iter().any(|s| names(f, s)) {
                            "; it names the fault's line further down"
                        } else {
                            ""
                        }
                    )
                }
                Ok(_) => String::new(),
            };
            o.right = o.why.is_empty();
        }
    }
    o.top = top;
}

/// Every string in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The `path:line` mentions in `text` (a path ends in `.rs`), in order.
fn sites_in(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(".rs:") {
        let dot = from + i;
        let start = text[..dot]
            .rfind(|c: char| c.is_whitespace() || "()[]{}\"'`,;".contains(c))
            .map_or(0, |p| p + 1);
        let digits_from = dot + 4;
        let digits_to = bytes[digits_from..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |p| digits_from + p);
        if let Ok(line) = text[digits_from..digits_to].parse() {
            found.push((text[start..dot + 3].to_string(), line));
        }
        from = digits_from;
    }
    found
}

/// Whether `path` is `want`, as recorded (relative to the workspace) or made absolute (a
/// symbolizer joining debug info's compilation directory).
fn same_file(path: &str, want: &str) -> bool {
    path == want
        || path
            .strip_suffix(want)
            .is_some_and(|prefix| prefix.ends_with('/'))
}

/// Whether finding `f` names a line of `site`.
fn names(f: &Value, site: &Site) -> bool {
    let mut texts = Vec::new();
    strings(f, &mut texts);
    texts.iter().any(|t| {
        sites_in(t)
            .iter()
            .any(|(p, l)| same_file(p, site.path) && (site.first..=site.last).contains(l))
    })
}

/// The site a finding leads with, as a reader meets it: the first `path:line` of its title,
/// else of its evidence lines in order, else of its other fields.
fn lead(f: &Value) -> Option<(String, usize)> {
    let mut texts: Vec<String> = f["title"].as_str().map(str::to_owned).into_iter().collect();
    strings(&f["evidence"], &mut texts);
    strings(f, &mut texts);
    texts.iter().find_map(|t| sites_in(t).into_iter().next())
}

/// Whether finding `f` leads with a line of `site`: the fault's line is the finding's site,
/// not a line (a task's spawn site, say) after some other.
fn leads_with(f: &Value, site: &Site) -> bool {
    lead(f).is_some_and(|(p, l)| same_file(&p, site.path) && (site.first..=site.last).contains(&l))
}

/// The site a finding leads with ([`lead`]), as `path:line`.
fn first_site(f: &Value) -> Option<String> {
    lead(f).map(|(p, l)| format!("{p}:{l}"))
}

fn expected_text(s: &Scenario) -> String {
    match s.want {
        Want::NothingAboveInfo => "nothing above info".into(),
        Want::Top { rules, sites } => {
            let mut t = format!("{} >= warning", rules.join("|"));
            let resolved: Vec<String> = sites
                .iter()
                .map(|m| m.resolve().map_or_else(|e| e, |s| short(&s.to_string())))
                .collect();
            if !resolved.is_empty() {
                t.push_str(&format!(" @ {}", resolved.join(" or ")));
            }
            t
        }
    }
}

fn short(path: &str) -> String {
    path.strip_prefix("scenarios/src/")
        .unwrap_or(path)
        .to_string()
}

fn got_text(o: &Outcome) -> String {
    let Some(top) = &o.top else {
        return "-".into();
    };
    let mut t = describe(top);
    if let Some(s) = &o.got_site {
        t.push_str(&format!(" @ {}", short(s)));
    }
    t
}

fn outcome_json(o: &Outcome) -> Value {
    let (rules, sites): (Vec<&str>, Vec<String>) = match o.scenario.want {
        Want::NothingAboveInfo => (vec![], vec![]),
        Want::Top { rules, sites } => (
            rules.to_vec(),
            sites
                .iter()
                .map(|m| m.resolve().map_or_else(|e| e, |s| s.to_string()))
                .collect(),
        ),
    };
    json!({
        "name": o.scenario.name,
        "fault": o.scenario.fault,
        "expected": {
            "text": o.expected,
            "nothing_above_info": matches!(o.scenario.want, Want::NothingAboveInfo),
            "rules": rules,
            "sites": sites,
        },
        "got": {
            "rule": o.top.as_ref().map(|t| t["rule"].clone()),
            "severity": o.top.as_ref().map(|t| t["severity"].clone()),
            "score": o.top.as_ref().map(|t| t["score"].clone()),
            "title": o.top.as_ref().map(|t| t["title"].clone()),
            "site": o.got_site,
            "above_info": o.above_info,
        },
        "right": o.right,
        "why": o.why,
        "ran": o.ran,
        "seconds": (o.seconds * 10.0).round() / 10.0,
        "run": o.run,
    })
}

fn print_table(outcomes: &[Outcome]) {
    let rows: Vec<[String; 4]> = outcomes
        .iter()
        .map(|o| {
            [
                o.scenario.name.to_string(),
                o.expected.clone(),
                got_text(o),
                if o.right {
                    "right".into()
                } else {
                    format!("WRONG: {}", o.why)
                },
            ]
        })
        .collect();
    let header = ["scenario", "expected", "got (top finding)", "verdict"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    println!(
        "{:<w0$}  {:<w1$}  {:<w2$}  {}",
        header[0], header[1], header[2], header[3]
    );
    for r in &rows {
        println!("{:<w0$}  {:<w1$}  {:<w2$}  {}", r[0], r[1], r[2], r[3]);
    }
    println!();
    for o in outcomes {
        if let Some(load) = o.run.get("load") {
            let phase = |p: &str| {
                let v = &load[p];
                format!(
                    "{}/s p50 {} ms p99 {} ms",
                    v["per_sec"], v["p50_ms"], v["p99_ms"]
                )
            };
            println!(
                "{:<w0$}  clients before: {}; during: {}",
                o.scenario.name,
                phase("before"),
                phase("during")
            );
        }
    }
}

/// The host's CPU model, from /proc/cpuinfo (Linux), else "unknown CPU".
pub(crate) fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_s_site_is_the_first_line_it_shows() {
        let site = Site {
            path: "scenarios/src/a.rs",
            first: 12,
            last: 12,
        };
        // The fault's line after a spawn site: mentioned, but not the finding's site.
        let spawn_first = json!({
            "title": "40 polls held a worker",
            "evidence": [
                "12ms poll of req (spawned at scenarios/src/svc/http.rs:39:64)",
                "blocking inside polls: mutex at scenarios/src/a.rs:12:5",
            ],
            "rule": "long_polls",
        });
        assert!(names(&spawn_first, &site));
        assert!(!leads_with(&spawn_first, &site));
        assert_eq!(
            first_site(&spawn_first).as_deref(),
            Some("scenarios/src/svc/http.rs:39")
        );
        // The title's frame comes first, whatever the evidence names.
        let title_first = json!({
            "title": "long polls blocked off-CPU in handle at /src/ws/scenarios/src/a.rs:12",
            "evidence": ["spawned at scenarios/src/svc/http.rs:39:64"],
        });
        assert!(leads_with(&title_first, &site));
    }

    #[test]
    fn sites_are_found_in_evidence_text() {
        let t =
            "mutex at scenarios/src/a.rs:12:5: 3 waits; spawned at (scenarios/src/b/c.rs:7) x.rs:";
        assert_eq!(
            sites_in(t),
            vec![
                ("scenarios/src/a.rs".to_string(), 12),
                ("scenarios/src/b/c.rs".to_string(), 7)
            ]
        );
    }

    #[test]
    fn a_site_matches_only_its_lines() {
        let f = json!({"rule": "long_polls", "evidence": ["blocked at scenarios/src/a.rs:120:9"]});
        let site = |first, last| Site {
            path: "scenarios/src/a.rs",
            first,
            last,
        };
        assert!(names(&f, &site(120, 120)));
        let absolute = json!({"evidence": ["top frame /work/fdr/scenarios/src/a.rs:120 in a::f"]});
        assert!(names(&absolute, &site(120, 120)));
        let other = json!({"evidence": ["top frame /work/fdr/other_scenarios/src/a.rs:120"]});
        assert!(!names(&other, &site(120, 120)));
        assert!(names(&f, &site(100, 130)));
        assert!(!names(&f, &site(12, 12)));
        assert!(!names(
            &f,
            &Site {
                path: "scenarios/src/b.rs",
                first: 120,
                last: 120
            }
        ));
    }
}
