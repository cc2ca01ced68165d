//! `fdr report -o report.html`: one self-contained HTML page (no network fetches): timeline
//! lanes per thread and per task, findings, and the tables of the other commands.
//!
//! The timeline is drawn by a small inline script into SVG from data embedded in the page.
//! When it has drawn the lanes it sets `document.title` to `fdr report: N lanes` and marks
//! `#fdr-status` with `data-ok="1"`; any script error is written into `#fdr-errors`, so a
//! headless browser's DOM dump shows whether the page rendered cleanly.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{Value, json};

use crate::diagnose::{Diagnosis, RuleOutcome};
use crate::profile::{LaneId, Profile, REASON_NAMES, SliceKind};
use crate::text::dur;
use crate::views;

/// Task lanes drawn at most (the tasks with the most drawn time).
pub const MAX_TASK_LANES: usize = 24;
/// Thread lanes drawn at most (the threads with the most drawn time, then the most active).
pub const MAX_THREAD_LANES: usize = 256;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Null => "-".into(),
        Value::Number(n) => n.to_string(),
        Value::Object(m) if m.contains_key("total_ns") => esc(&format!(
            "{} x, total {}, p50 {}, p99 {}",
            m["count"],
            dur(m["total_ns"].as_u64().unwrap_or(0)),
            dur(m["p50_ns"].as_u64().unwrap_or(0)),
            dur(m["p99_ns"].as_u64().unwrap_or(0))
        )),
        other => esc(&other.to_string()),
    }
}

fn table(out: &mut String, title: &str, rows: &Value, ns_cols: &[&str]) {
    let _ = writeln!(out, "<h2>{}</h2>", esc(title));
    let Some(rows) = rows.as_array().filter(|r| !r.is_empty()) else {
        out.push_str("<p class=\"muted\">none in this trace</p>\n");
        return;
    };
    let cols: Vec<String> = rows[0]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    out.push_str("<table><tr>");
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr>\n");
    for r in rows.iter().take(50) {
        out.push_str("<tr>");
        for c in &cols {
            let v = &r[c];
            let text = match v.as_u64() {
                Some(n) if ns_cols.iter().any(|x| c.ends_with(x)) => dur(n),
                _ => cell(v),
            };
            let _ = write!(out, "<td>{text}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The timeline data: lanes and their slices, as the page's script reads it.
fn timeline(p: &Profile) -> Value {
    let mut task_time: HashMap<u64, u64> = HashMap::new();
    for s in &p.slices {
        if let LaneId::Task(t) = s.lane {
            let time = task_time.entry(t.0).or_default();
            *time = time.saturating_add(s.dur_ns);
        }
    }
    let mut tasks: Vec<(u64, u64)> = task_time.into_iter().collect();
    tasks.sort_by_key(|&(id, t)| (std::cmp::Reverse(t), id));
    tasks.truncate(MAX_TASK_LANES);
    let mut threads: Vec<fdr_format::ThreadId> = p.threads.keys().copied().collect();
    if threads.len() > MAX_THREAD_LANES {
        let mut drawn: HashMap<fdr_format::ThreadId, u64> = HashMap::new();
        for s in &p.slices {
            if let LaneId::Thread(t) = s.lane {
                let time = drawn.entry(t).or_default();
                *time = time.saturating_add(s.dur_ns);
            }
        }
        threads.sort_by_key(|t| {
            let active = p.threads.get(t).map_or(0, |s| s.active_ns);
            (
                std::cmp::Reverse((drawn.get(t).copied().unwrap_or(0), active)),
                *t,
            )
        });
        threads.truncate(MAX_THREAD_LANES);
        threads.sort();
    }
    let mut lanes: Vec<(LaneId, String)> = threads
        .into_iter()
        .map(|t| (LaneId::Thread(t), p.thread_name(t).into_owned()))
        .collect();
    let mut task_names: HashMap<u64, String> = HashMap::new();
    for s in &p.slices {
        if let LaneId::Task(t) = s.lane
            && s.kind == SliceKind::TaskLife
        {
            task_names.insert(t.0, p.name(s.name).into_owned());
        }
    }
    let mut tasks_sorted = tasks.clone();
    tasks_sorted.sort();
    for (id, _) in tasks_sorted {
        let name = task_names.get(&id).cloned().unwrap_or_default();
        lanes.push((
            LaneId::Task(fdr_format::TaskId(id)),
            format!("task {id} {name}"),
        ));
    }
    let index: HashMap<LaneId, usize> = lanes.iter().enumerate().map(|(i, l)| (l.0, i)).collect();
    let slices: Vec<Value> = p
        .slices
        .iter()
        .filter_map(|s| {
            let lane = *index.get(&s.lane)?;
            let label = match (s.kind, s.block) {
                (SliceKind::Block, Some((r, site))) => {
                    format!("blocked {} at {}", r.as_str(), p.site_name(site))
                }
                (SliceKind::Park, _) => "parked".into(),
                (k, _) => format!("{} {}", k.as_str(), p.name(s.name)),
            };
            Some(json!([lane, s.kind.as_str(), s.start_ns, s.dur_ns, label]))
        })
        .collect();
    json!({
        "duration_ns": p.duration_ns,
        "lanes": lanes.iter().map(|l| json!({"name": l.1, "kind": matches!(l.0, LaneId::Thread(_)).then_some("thread").unwrap_or("task")})).collect::<Vec<_>>(),
        "slices": slices,
        "min_slice_ns": p.slice_min_ns,
    })
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 6px}
table{border-collapse:collapse;font-size:12px;background:#fff}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0} .muted{color:#888}
.finding{background:#fff;border-left:5px solid #999;padding:6px 10px;margin:6px 0}
.finding.critical{border-color:#d33}.finding.warning{border-color:#e90}.finding.info{border-color:#39c}
#timeline{background:#fff;border:1px solid #ddd;overflow-x:auto}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
#fdr-errors{color:#d33}
"#;

const SCRIPT: &str = r#"
(function(){
  var errs = document.getElementById('fdr-errors');
  window.onerror = function(msg, src, line){ errs.textContent += 'error: ' + msg + ' (line ' + line + ')\n'; return false; };
  var data = JSON.parse(document.getElementById('fdr-data').textContent);
  var colors = {poll:'#4a90d9', region:'#7cb342', block:'#e53935', park:'#cfd8dc', user_task:'#ffb74d', task:'#b39ddb'};
  var lanes = data.lanes, W = 1320, left = 190, laneH = 22, top = 24;
  var span = Math.max(1, data.duration_ns), scale = (W - left - 10) / span;
  var svgNS = 'http://www.w3.org/2000/svg';
  var svg = document.createElementNS(svgNS, 'svg');
  svg.setAttribute('width', W); svg.setAttribute('height', top + lanes.length * laneH + 10);
  function el(name, attrs, text){ var e = document.createElementNS(svgNS, name); for (var k in attrs) e.setAttribute(k, attrs[k]); if (text) e.textContent = text; return e; }
  for (var t = 0; t <= 10; t++) {
    var x = left + t * (W - left - 10) / 10;
    svg.appendChild(el('line', {x1:x, x2:x, y1:top - 4, y2:top + lanes.length * laneH, stroke:'#eee'}));
    svg.appendChild(el('text', {x:x + 2, y:14, 'font-size':10, fill:'#666'}, fmt(span * t / 10)));
  }
  lanes.forEach(function(l, i){
    var y = top + i * laneH;
    svg.appendChild(el('rect', {x:0, y:y, width:W, height:laneH, fill: i % 2 ? '#fbfbfb' : '#f3f3f3'}));
    svg.appendChild(el('text', {x:4, y:y + 15, 'font-size':11, fill: l.kind == 'thread' ? '#222' : '#555'}, l.name.slice(0, 30)));
  });
  var order = {task:0, park:0, user_task:1, poll:2, region:3, block:4};
  var slices = data.slices.slice().sort(function(a, b){ return order[a[1]] - order[b[1]]; });
  slices.forEach(function(s){
    var y = top + s[0] * laneH, depth = order[s[1]];
    var h = Math.max(4, laneH - 4 - depth * 3);
    var r = el('rect', {x: left + s[2] * scale, y: y + 2 + (laneH - 4 - h), width: Math.max(1, s[3] * scale), height: h, fill: colors[s[1]] || '#999'});
    r.appendChild(el('title', {}, s[4] + ' (' + fmt(s[3]) + ' at ' + fmt(s[2]) + ')'));
    svg.appendChild(r);
  });
  document.getElementById('timeline').appendChild(svg);
  var legend = document.getElementById('legend');
  Object.keys(colors).forEach(function(k){ var s = document.createElement('span'); s.innerHTML = '<i style="background:' + colors[k] + '"></i>' + k; legend.appendChild(s); });
  function fmt(ns){ if (ns < 1e3) return Math.round(ns) + 'ns'; if (ns < 1e6) return (ns / 1e3).toFixed(1) + 'us'; if (ns < 1e9) return (ns / 1e6).toFixed(2) + 'ms'; return (ns / 1e9).toFixed(2) + 's'; }
  var status = document.getElementById('fdr-status');
  status.textContent = 'rendered ' + lanes.length + ' lanes, ' + data.slices.length + ' slices';
  status.setAttribute('data-ok', errs.textContent ? '0' : '1');
  status.setAttribute('data-lanes', lanes.length);
  document.title = 'fdr report: ' + lanes.length + ' lanes';
})();
"#;

/// Renders the report page.
pub fn render(p: &Profile, d: &Diagnosis, title: &str) -> String {
    let mut out = String::with_capacity(256 << 10);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n<title>fdr report (loading)</title>\n<style>{STYLE}</style></head><body>\n"
    );
    let _ = writeln!(out, "<h1>fdr report: {}</h1>", esc(title));
    let events = p.kinds.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let _ = writeln!(
        out,
        "<p>{} events over {} on {} threads; {} async tasks created, {} dropped; {} events lost, {} batches missing.</p>",
        events,
        dur(p.duration_ns),
        p.threads.len(),
        p.created_dropped.0,
        p.created_dropped.1,
        p.loss.values().fold(0u64, |a, l| a.saturating_add(l.1)),
        p.missing_batches
    );
    let truncated = p.truncated();
    if !truncated.is_empty() {
        out.push_str("<div class=\"finding warning\"><b>Truncated</b>: this trace went past the analyzer's memory limits; what is below leaves out:<ul>");
        for n in &truncated {
            let _ = write!(out, "<li>{}</li>", esc(&n.note));
        }
        out.push_str("</ul></div>\n");
    }
    out.push_str("<div id=\"fdr-status\" data-ok=\"0\">timeline not rendered (scripts disabled?)</div>\n<pre id=\"fdr-errors\"></pre>\n");
    out.push_str("<h2>Timeline</h2>\n<div class=\"legend\" id=\"legend\"></div>\n<div id=\"timeline\"></div>\n");
    if p.threads.len() > MAX_THREAD_LANES {
        let _ = writeln!(
            out,
            "<p class=\"muted\">{} threads are not drawn: the {MAX_THREAD_LANES} with the most drawn time are.</p>",
            p.threads.len() - MAX_THREAD_LANES
        );
    }
    if p.slices_dropped > 0 {
        let _ = writeln!(
            out,
            "<p class=\"muted\">{} slices shorter than {} (and some as long) are not drawn.</p>",
            p.slices_dropped,
            dur(p.slice_min_ns)
        );
    }
    out.push_str("<h2>Findings</h2>\n");
    for o in &d.outcomes {
        match o {
            RuleOutcome::Finding(f) => {
                let _ = writeln!(
                    out,
                    "<div class=\"finding {}\"><b>[{} {:.0}] {}</b>: {}<ul>{}</ul>{}</div>",
                    f.severity.as_str(),
                    f.severity.as_str(),
                    f.score,
                    f.rule,
                    esc(&f.title),
                    f.evidence
                        .iter()
                        .map(|e| format!("<li>{}</li>", esc(e)))
                        .collect::<String>(),
                    if f.severity > crate::diagnose::Severity::Info {
                        format!("<p><b>Fix:</b> {}</p>", esc(&f.fix))
                    } else {
                        String::new()
                    }
                );
            }
            RuleOutcome::NotApplicable { rule, needs } => {
                let _ = writeln!(
                    out,
                    "<div class=\"finding muted\">{rule}: not applicable (no {} events)</div>",
                    needs.join(" / ")
                );
            }
        }
    }
    table(&mut out, "Tasks", &views::task_rows(p), &["_ns"]);
    table(&mut out, "Regions", &views::region_rows(p), &["_ns"]);
    table(
        &mut out,
        "Blocking sites",
        &views::blocking_rows(p, 20),
        &["_ns"],
    );
    let s = views::sched_json(p);
    let sched_rows = json!([
        {"distribution": "sched latency", "count": s["sched_latency"]["count"], "p50_ns": s["sched_latency"]["p50_ns"], "p99_ns": s["sched_latency"]["p99_ns"], "max_ns": s["sched_latency"]["max_ns"]},
        {"distribution": "poll duration", "count": s["poll_duration"]["count"], "p50_ns": s["poll_duration"]["p50_ns"], "p99_ns": s["poll_duration"]["p99_ns"], "max_ns": s["poll_duration"]["max_ns"]},
    ]);
    table(&mut out, "Scheduling", &sched_rows, &["_ns"]);
    table(&mut out, "Longest polls", &s["longest_polls"], &["_ns"]);
    let threads: Vec<Value> = p
        .threads
        .iter()
        .take(50)
        .map(|(t, s)| json!({"thread": p.thread_name(*t), "busy_ns": s.busy_ns(), "blocked_ns": s.blocked_ns, "parked_ns": s.parked_ns}))
        .collect();
    table(&mut out, "Threads", &Value::Array(threads), &["_ns"]);
    let _ = REASON_NAMES;
    let data = timeline(p).to_string().replace("</", "<\\/");
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"fdr-data\">{data}</script>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    out
}
