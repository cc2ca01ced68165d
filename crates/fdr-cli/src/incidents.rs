//! `fdr incidents LOCATION`: the sentinel's incidents in a directory or a bucket, newest
//! first: when, which host and service, which rule with the values of every rule at the
//! trigger (from the sidecars), and the top finding of each dump's diagnosis.
//!
//! A directory is only read (never the directory store's recovery or retention, which
//! write). A bucket URL (`s3://`, `gs://`, `az://`, `file://`) is read through the
//! sentinel's object store, with the provider's standard credentials (`AWS_*`, ...), when
//! this `fdr` was built with the `buckets` feature (the default).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use fdr_analyzer::diagnose::RuleOutcome;
use fdr_analyzer::{ProfileOptions, ReadOptions};
use fdr_sentinel::{IncidentMeta, Listing};
use serde::Serialize;

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
    /// For a bucket served over TLS with a private CA (MinIO, a proxy): a PEM file of root
    /// certificates to trust besides the system's.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
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
                .and_then(|b| {
                    serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string())
                })
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
fn bucket(url: &str, ca_file: Option<&Path>) -> Result<Box<dyn Source>> {
    let mut config =
        fdr_sentinel::BucketConfig::from_url(url).map_err(|why| Usage(format!("{url}: {why}")))?;
    config.root_certificates = ca_file.map(Path::to_path_buf);
    Ok(Box::new(Bucket(fdr_sentinel::BucketStore::new(config)?)))
}

#[cfg(not(feature = "buckets"))]
fn bucket(url: &str, _ca_file: Option<&Path>) -> Result<Box<dyn Source>> {
    Err(Usage(format!(
        "{url}: this fdr was built without object stores (fdr-cli's `buckets` feature)"
    ))
    .into())
}

/// The top finding of a dump's diagnosis.
#[derive(Serialize)]
struct TopFinding {
    /// The trace's damage, when the finding comes from the whole batches before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    damaged: Option<String>,
    rule: &'static str,
    score: f64,
    severity: &'static str,
    title: String,
}

/// One incident as listed.
#[derive(Serialize)]
struct IncidentRow {
    bytes: u64,
    condition: String,
    /// Why the dump could not be diagnosed (then `top_finding` is `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnosis_error: Option<String>,
    host: String,
    id: String,
    pid: u32,
    rule: String,
    service: Option<String>,
    service_version: Option<String>,
    threshold: f64,
    time_unix_ms: u64,
    /// Absent with `--no-diagnose`; `null` when no rule applied or the dump could not be
    /// diagnosed.
    #[serde(skip_serializing_if = "Option::is_none")]
    top_finding: Option<Option<TopFinding>>,
    value: f64,
    values: BTreeMap<String, f64>,
}

/// A sidecar that could not be read.
#[derive(Serialize)]
struct Unreadable<'a> {
    id: &'a str,
    why: &'a str,
}

/// `fdr incidents --json`.
#[derive(Serialize)]
struct IncidentsJson<'a> {
    incidents: &'a [IncidentRow],
    listed: usize,
    location: &'a str,
    unreadable: Vec<Unreadable<'a>>,
}

/// The top finding of the dump's diagnosis, or why there is none.
fn top_finding(source: &dyn Source, id: &str) -> std::result::Result<Option<TopFinding>, String> {
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
        RuleOutcome::Finding(f) => Some(TopFinding {
            damaged: None,
            rule: f.rule,
            score: f.score,
            severity: f.severity.as_str(),
            title: f.title.clone(),
        }),
        RuleOutcome::NotApplicable { .. } => None,
    });
    match (top, out.error) {
        (top, None) => Ok(top),
        // What the damaged dump's whole batches show, said so.
        (Some(top), Some(e)) => Ok(Some(TopFinding {
            damaged: Some(e.to_string()),
            ..top
        })),
        (None, Some(e)) => Err(e.to_string()),
    }
}

fn row(
    m: &IncidentMeta,
    finding: Option<std::result::Result<Option<TopFinding>, String>>,
) -> IncidentRow {
    let (top_finding, diagnosis_error) = match finding {
        None => (None, None),
        Some(Ok(top)) => (Some(top), None),
        Some(Err(why)) => (Some(None), Some(why)),
    };
    IncidentRow {
        bytes: m.bytes,
        condition: m.condition.clone(),
        diagnosis_error,
        host: m.host.clone(),
        id: m.id.clone(),
        pid: m.pid,
        rule: m.rule.clone(),
        service: m.service.clone(),
        service_version: m.service_version.clone(),
        threshold: m.threshold,
        time_unix_ms: m.time_unix_ms,
        top_finding,
        value: m.value,
        values: m.values.iter().cloned().collect(),
    }
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

fn text(
    location: &str,
    rows: &[IncidentRow],
    listed: usize,
    unreadable: &[(String, String)],
) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str(&format!("no incidents in {location}\n"));
    }
    for r in rows {
        let time = fdr_analyzer::report::utc(r.time_unix_ms as i128 * 1_000_000);
        let service = match (&r.service, &r.service_version) {
            (Some(s), Some(v)) => format!("{s} {v}"),
            (Some(s), None) => s.clone(),
            (None, Some(v)) => format!("version {v}"),
            (None, None) => "-".to_owned(),
        };
        out.push_str(&format!(
            "{time}  {}  {service} (pid {})  {}\n",
            r.host, r.pid, r.id,
        ));
        let values: Vec<String> = r
            .values
            .iter()
            .map(|(k, v)| format!("{k}={}", num(*v)))
            .collect();
        out.push_str(&format!(
            "  {}, at {}; every rule: {}\n",
            r.condition,
            num(r.value),
            if values.is_empty() {
                "-".to_owned()
            } else {
                values.join(" ")
            },
        ));
        match (&r.top_finding, &r.diagnosis_error) {
            (None, _) => {}
            (Some(None), Some(why)) => out.push_str(&format!(
                "  top finding: none (the dump could not be diagnosed: {why})\n"
            )),
            (Some(None), None) => out.push_str("  top finding: none\n"),
            (Some(Some(top)), _) => out.push_str(&format!(
                "  top finding: {} {}: {}\n",
                top.severity, top.rule, top.title,
            )),
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
        bucket(&args.location, args.ca_file.as_deref())?
    } else if args.ca_file.is_some() {
        return Err(Usage(format!(
            "{}: --ca-file is for a bucket URL (https://), not a directory",
            args.location
        ))
        .into());
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
    let rows: Vec<IncidentRow> = listing
        .incidents
        .iter()
        .take(args.limit)
        .map(|m| {
            let finding = (!args.no_diagnose).then(|| top_finding(source.as_ref(), &m.id));
            row(m, finding)
        })
        .collect();
    let shown = text(&args.location, &rows, listed, &listing.unreadable);
    let v = serde_json::to_value(IncidentsJson {
        incidents: &rows,
        listed,
        location: &args.location,
        unreadable: listing
            .unreadable
            .iter()
            .map(|(id, why)| Unreadable { id, why })
            .collect(),
    })?;
    crate::output::print(args.json, v, shown)
}
