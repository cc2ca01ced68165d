//! `fdr incidents LOCATION`: the sentinel's incidents in a directory or a bucket, newest
//! first: when, which host and service, which rule with the values of every rule at the
//! trigger (from the sidecars), and the top finding of each dump's diagnosis.
//!
//! A directory is only read (never the directory store's recovery or retention, which
//! write). A bucket URL (`s3://`, `gs://`, `az://`, `file://`) is read through the
//! sentinel's object store, with the provider's standard credentials (`AWS_*`, ...), when
//! this `fdr` was built with the `buckets` feature (the default).

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use fdr_analyzer::diagnose::RuleOutcome;
use fdr_analyzer::{ProfileOptions, ReadOptions};
use fdr_sentinel::{IncidentMeta, Listing};
use serde_json::{Value, json};

use crate::exit::Usage;

/// The most sidecar files read from a directory (a directory store keeps far fewer).
const MAX_DIR_ENTRIES: usize = 100_000;

/// `fdr incidents`' arguments.
#[derive(clap::Args)]
pub(crate) struct IncidentsArgs {
    /// A directory of incidents (`ID.fdr` with `ID.json`), or a bucket URL: `s3://BUCKET/PREFIX`,
    /// `gs://...`, `az://...`, `file:///DIR`.
    location: String,
    /// List at most this many incidents (the newest).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Do not diagnose the dumps (no top finding; only the sidecars are read).
    #[arg(long)]
    no_diagnose: bool,
    /// Machine-readable JSON output.
    #[arg(long)]
    json: bool,
}

/// A source of incidents: sidecars listed, dumps opened.
trait Source {
    fn list(&self) -> Result<Listing>;
    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>>;
}

/// A directory, read only.
struct Dir<'a>(&'a Path);

impl Source for Dir<'_> {
    fn list(&self) -> Result<Listing> {
        let mut listing = Listing::default();
        let entries = fs::read_dir(self.0)
            .with_context(|| format!("cannot read the directory {}", self.0.display()))?;
        for entry in entries.take(MAX_DIR_ENTRIES) {
            let entry = entry.with_context(|| format!("reading {}", self.0.display()))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            // Temporary names start with `.`; an incident has both files.
            if id.starts_with('.') || !self.0.join(format!("{id}.fdr")).is_file() {
                continue;
            }
            let read = fs::read(entry.path())
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
                .and_then(|v| IncidentMeta::from_json(&v).map_err(|e| e.to_string()));
            match read {
                Ok(m) => listing.incidents.push(IncidentMeta {
                    // The id is the file's name, never the sidecar's content.
                    id: id.to_owned(),
                    ..m
                }),
                Err(why) => listing.unreadable.push((id.to_owned(), why)),
            }
        }
        listing
            .incidents
            .sort_by(|a, b| (b.time_unix_ms, &b.id).cmp(&(a.time_unix_ms, &a.id)));
        Ok(listing)
    }

    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.0.join(format!("{id}.fdr"));
        let f = fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Box::new(f))
    }
}

#[cfg(feature = "buckets")]
struct Bucket(fdr_sentinel::BucketStore);

#[cfg(feature = "buckets")]
impl Source for Bucket {
    fn list(&self) -> Result<Listing> {
        use fdr_sentinel::IncidentStore;
        Ok(self.0.list()?)
    }

    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>> {
        use fdr_sentinel::IncidentStore;
        Ok(self.0.open(id)?)
    }
}

/// Whether `location` is a URL rather than a path.
fn is_url(location: &str) -> bool {
    location.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

#[cfg(feature = "buckets")]
fn bucket(url: &str) -> Result<Box<dyn Source>> {
    let config =
        fdr_sentinel::BucketConfig::from_url(url).map_err(|why| Usage(format!("{url}: {why}")))?;
    Ok(Box::new(Bucket(fdr_sentinel::BucketStore::new(config)?)))
}

#[cfg(not(feature = "buckets"))]
fn bucket(url: &str) -> Result<Box<dyn Source>> {
    Err(Usage(format!(
        "{url}: this fdr was built without object stores (fdr-cli's `buckets` feature)"
    ))
    .into())
}

/// The top finding of the dump's diagnosis: `(severity, rule, title)`, or why there is none.
fn top_finding(source: &dyn Source, id: &str) -> std::result::Result<Option<Value>, String> {
    let reader = source.open(id).map_err(|e| format!("{e:#}"))?;
    let (p, out) = fdr_analyzer::profile_reader(
        reader,
        None,
        ProfileOptions::default(),
        ReadOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let d = fdr_analyzer::diagnose(&p);
    let top = d.outcomes.iter().find_map(|o| match o {
        RuleOutcome::Finding(f) => Some(json!({
            "severity": f.severity.as_str(),
            "rule": f.rule,
            "title": f.title,
            "score": f.score,
        })),
        RuleOutcome::NotApplicable { .. } => None,
    });
    match (top, out.error) {
        (top, None) => Ok(top),
        // What the damaged dump's whole batches show, said so.
        (Some(mut top), Some(e)) => {
            top["damaged"] = e.to_string().into();
            Ok(Some(top))
        }
        (None, Some(e)) => Err(e.to_string()),
    }
}

fn row(m: &IncidentMeta, finding: Option<std::result::Result<Option<Value>, String>>) -> Value {
    let values: serde_json::Map<String, Value> = m
        .values
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut v = json!({
        "id": m.id,
        "time_unix_ms": m.time_unix_ms,
        "host": m.host,
        "service": m.service,
        "service_version": m.service_version,
        "pid": m.pid,
        "rule": m.rule,
        "condition": m.condition,
        "value": m.value,
        "threshold": m.threshold,
        "values": values,
        "bytes": m.bytes,
    });
    match finding {
        None => {}
        Some(Ok(top)) => v["top_finding"] = top.unwrap_or(Value::Null),
        Some(Err(why)) => {
            v["top_finding"] = Value::Null;
            v["diagnosis_error"] = why.into();
        }
    }
    v
}

/// A number as short as it reads.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 1e6 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

fn text(location: &str, rows: &[Value], listed: usize, unreadable: &[(String, String)]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str(&format!("no incidents in {location}\n"));
    }
    for r in rows {
        let time =
            fdr_analyzer::report::utc(r["time_unix_ms"].as_u64().unwrap_or(0) as i128 * 1_000_000);
        let service = match (r["service"].as_str(), r["service_version"].as_str()) {
            (Some(s), Some(v)) => format!("{s} {v}"),
            (Some(s), None) => s.to_owned(),
            (None, Some(v)) => format!("version {v}"),
            (None, None) => "-".to_owned(),
        };
        out.push_str(&format!(
            "{time}  {}  {service} (pid {})  {}\n",
            r["host"].as_str().unwrap_or("-"),
            r["pid"],
            r["id"].as_str().unwrap_or(""),
        ));
        let values: Vec<String> = r["values"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k}={}", num(v.as_f64().unwrap_or(f64::NAN))))
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}, at {}; every rule: {}\n",
            r["condition"].as_str().unwrap_or(""),
            num(r["value"].as_f64().unwrap_or(f64::NAN)),
            if values.is_empty() {
                "-".to_owned()
            } else {
                values.join(" ")
            },
        ));
        if let Some(top) = r.get("top_finding") {
            if top.is_null() {
                match r["diagnosis_error"].as_str() {
                    Some(why) => out.push_str(&format!(
                        "  top finding: none (the dump could not be diagnosed: {why})\n"
                    )),
                    None => out.push_str("  top finding: none\n"),
                }
            } else {
                out.push_str(&format!(
                    "  top finding: {} {}: {}\n",
                    top["severity"].as_str().unwrap_or(""),
                    top["rule"].as_str().unwrap_or(""),
                    top["title"].as_str().unwrap_or(""),
                ));
            }
        }
    }
    if listed > rows.len() {
        out.push_str(&format!(
            "({} older incidents not shown: --limit {listed})\n",
            listed - rows.len()
        ));
    }
    for (id, why) in unreadable {
        out.push_str(&format!("unreadable sidecar {id}.json: {why}\n"));
    }
    out
}

/// Runs `fdr incidents`.
pub(crate) fn run(args: IncidentsArgs) -> Result<()> {
    let source: Box<dyn Source> = if is_url(&args.location) {
        bucket(&args.location)?
    } else {
        let dir = Path::new(&args.location);
        if !dir.is_dir() {
            return Err(anyhow!(
                "{}: not a directory (give a directory of incidents or a bucket URL such as \
                 s3://BUCKET/PREFIX)",
                dir.display()
            ));
        }
        Box::new(Dir(dir))
    };
    let listing = source
        .list()
        .with_context(|| format!("listing the incidents in {}", args.location))?;
    let listed = listing.incidents.len();
    let rows: Vec<Value> = listing
        .incidents
        .iter()
        .take(args.limit)
        .map(|m| {
            let finding = (!args.no_diagnose).then(|| top_finding(source.as_ref(), &m.id));
            row(m, finding)
        })
        .collect();
    let unreadable: Vec<Value> = listing
        .unreadable
        .iter()
        .map(|(id, why)| json!({"id": id, "why": why}))
        .collect();
    let shown = text(&args.location, &rows, listed, &listing.unreadable);
    let v = json!({
        "location": args.location,
        "incidents": rows,
        "listed": listed,
        "unreadable": unreadable,
    });
    crate::output::print(args.json, v, shown)
}
