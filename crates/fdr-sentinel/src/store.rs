//! Where dumps go: an incident is a flight-recorder dump and a metadata sidecar (the rule,
//! the metric values, the threshold, host, pid, service version, time). A store makes an
//! incident visible only once both are complete, and keeps a bounded number of them.
//!
//! [`DirStore`] keeps them in a directory: `ID.fdr` and `ID.json`, each written to a
//! temporary name, synced and renamed, the sidecar last; a listing shows an incident only
//! when its sidecar exists, so a dump cut short by a full disk or a crash is never seen.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// What is known of an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentMeta {
    /// Unique, sortable by time, safe as a file name (`20261202T040512.123Z-slow_sched`).
    pub id: String,
    /// The rule that fired.
    pub rule: String,
    /// The rule, as text (`slow_sched: fdr_sched_latency_ns p99 > 20000000 for 3`).
    pub condition: String,
    /// The rule's metric.
    pub metric: String,
    /// The statistic's value that breached.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Every rule's statistic at the trigger.
    pub values: Vec<(String, f64)>,
    /// When the rule fired, in milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// The host's name.
    pub host: String,
    /// The process.
    pub pid: u32,
    /// The service's version, if the sentinel was told it.
    pub service_version: Option<String>,
    /// The dump's size (set by the store).
    pub bytes: u64,
}

impl IncidentMeta {
    /// The sidecar's JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "rule": self.rule,
            "condition": self.condition,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "values": self.values.iter().map(|(k, v)| serde_json::json!({"rule": k, "value": v})).collect::<Vec<_>>(),
            "time_unix_ms": self.time_unix_ms,
            "host": self.host,
            "pid": self.pid,
            "service_version": self.service_version,
            "bytes": self.bytes,
        })
    }

    /// Reads a sidecar; the error names the first field missing or of the wrong type.
    pub fn from_json(v: &serde_json::Value) -> Result<IncidentMeta, String> {
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("field `{k}`: expected a string"))
        };
        let f = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_f64())
                .ok_or_else(|| format!("field `{k}`: expected a number"))
        };
        let u = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .ok_or_else(|| format!("field `{k}`: expected a whole number"))
        };
        let (id, rule, condition, metric) = (s("id")?, s("rule")?, s("condition")?, s("metric")?);
        let (value, threshold) = (f("value")?, f("threshold")?);
        let values = v
            .get("values")
            .and_then(|x| x.as_array())
            .ok_or("field `values`: expected an array")?
            .iter()
            .map(|e| {
                Some((
                    e.get("rule")?.as_str()?.to_owned(),
                    e.get("value")?.as_f64()?,
                ))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or("field `values`: expected {rule, value} entries")?;
        Ok(IncidentMeta {
            id,
            rule,
            condition,
            metric,
            value,
            threshold,
            values,
            time_unix_ms: u("time_unix_ms")?,
            host: s("host")?,
            pid: u32::try_from(u("pid")?).map_err(|_| "field `pid`: out of range")?,
            service_version: v
                .get("service_version")
                .and_then(|x| x.as_str())
                .map(str::to_owned),
            bytes: u("bytes")?,
        })
    }
}

/// Incidents as listed, newest first, with those whose sidecar could not be read.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete incidents, newest first.
    pub incidents: Vec<IncidentMeta>,
    /// `(id, why)` of sidecars that could not be read (their dumps are left in place).
    pub unreadable: Vec<(String, String)>,
}

/// A store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("incident store: {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// To which file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Writing the dump failed (it was discarded; nothing is visible).
    #[error("incident store: writing the dump failed after {written} bytes (discarded): {source}")]
    Dump {
        /// Bytes written before the failure.
        written: u64,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No incident has this id.
    #[error("incident store: no incident `{0}`")]
    NotFound(String),
    /// The id is not one this store could have made.
    #[error("incident store: `{0}` is not an incident id (letters, digits, `.`, `_`, `-`)")]
    BadId(String),
    /// A request to an object store failed: no answer, or an error answer.
    #[error("incident store: {op} {object}: {}", remote_why(*.status, .code.as_deref(), .message))]
    Remote {
        /// What was being done (`uploading the dump`).
        op: &'static str,
        /// The object (`s3://bucket/prefix/ID.fdr`).
        object: String,
        /// The HTTP status, if the store answered.
        status: Option<u16>,
        /// The store's error code (S3's `<Code>`: `NoSuchBucket`, `SignatureDoesNotMatch`).
        code: Option<String>,
        /// The store's message, or why there was no answer.
        message: String,
    },
    /// Another store's failure, in its words.
    #[error("incident store: {0}")]
    Other(String),
}

fn remote_why(status: Option<u16>, code: Option<&str>, message: &str) -> String {
    match (status, code) {
        (Some(s), Some(c)) => format!("HTTP {s} {c}: {message}"),
        (Some(s), None) => format!("HTTP {s}: {message}"),
        (None, _) => format!("no answer: {message}"),
    }
}

/// Writes a dump into `out` and returns its size.
pub type DumpFn<'a> = dyn FnMut(&mut dyn Write) -> io::Result<u64> + 'a;

/// A place for incidents.
pub trait IncidentStore: Send + Sync {
    /// Stores an incident: `dump` writes the dump. Visible to [`IncidentStore::list`] and
    /// [`IncidentStore::open`] only once it is complete; on failure nothing is left
    /// visible. Returns the metadata as stored (with its size).
    fn put(&self, meta: &IncidentMeta, dump: &mut DumpFn<'_>) -> Result<IncidentMeta, StoreError>;

    /// The complete incidents, newest first.
    fn list(&self) -> Result<Listing, StoreError>;

    /// Reads an incident's dump.
    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>, StoreError>;
}

/// How many incidents a store keeps: the oldest go first once either bound is passed (the
/// newest is always kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Incidents kept.
    pub max_count: usize,
    /// Bytes of dumps kept.
    pub max_bytes: u64,
}

impl Default for Retention {
    /// 20 incidents, 1 GiB.
    fn default() -> Self {
        Retention {
            max_count: 20,
            max_bytes: 1 << 30,
        }
    }
}

/// Whether `id` could be one of ours: a file name with no path in it.
pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadId(id.to_owned()))
    }
}

/// Prefix of files being written.
const TMP: &str = ".tmp-";

/// Incidents in a directory (see the module docs).
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    retention: Retention,
}

impl DirStore {
    /// A store in `dir` (created if missing). Removes what an interrupted write left
    /// behind: temporary files, and dumps without a sidecar.
    pub fn new(dir: impl Into<PathBuf>, retention: Retention) -> Result<DirStore, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            op: "creating the directory",
            path: dir.clone(),
            source,
        })?;
        let store = DirStore { dir, retention };
        for entry in store.entries()? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let orphan = name
                .strip_suffix(".fdr")
                .is_some_and(|id| !name.starts_with(TMP) && !store.path(id, "json").exists());
            if name.starts_with(TMP) || orphan {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    fn entries(&self) -> Result<Vec<fs::DirEntry>, StoreError> {
        let io = |source| StoreError::Io {
            op: "listing",
            path: self.dir.clone(),
            source,
        };
        fs::read_dir(&self.dir)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)
    }

    /// Writes `what` to a temporary file next to `dest`, syncs it and renames it over.
    fn write_atomically(
        &self,
        dest: &Path,
        what: &mut dyn FnMut(&mut dyn Write) -> io::Result<u64>,
    ) -> Result<u64, StoreError> {
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let tmp = self.dir.join(format!("{TMP}{name}"));
        let result = (|| {
            let file = File::create_new(&tmp).map_err(|source| StoreError::Io {
                op: "creating",
                path: tmp.clone(),
                source,
            })?;
            let mut out = Counting {
                inner: BufWriter::with_capacity(1 << 20, file),
                written: 0,
            };
            let dump = what(&mut out);
            let written = out.written;
            let flushed = dump.and_then(|n| out.inner.flush().map(|()| n));
            let n = flushed.map_err(|source| StoreError::Dump { written, source })?;
            let file = out.inner.into_inner().map_err(|e| StoreError::Dump {
                written,
                source: e.into_error(),
            })?;
            file.sync_all().map_err(|source| StoreError::Io {
                op: "syncing",
                path: tmp.clone(),
                source,
            })?;
            fs::rename(&tmp, dest).map_err(|source| StoreError::Io {
                op: "renaming into place",
                path: dest.to_owned(),
                source,
            })?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Syncs the directory, so the renames survive a crash.
    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::Io {
                op: "syncing the directory",
                path: self.dir.clone(),
                source,
            })
    }

    /// Removes the oldest incidents past the retention (sidecar first: it is what makes an
    /// incident visible).
    fn retain(&self) -> Result<(), StoreError> {
        let listing = self.list()?;
        let mut bytes = 0;
        for (i, m) in listing.incidents.iter().enumerate() {
            bytes += m.bytes;
            let keep =
                i == 0 || (i < self.retention.max_count && bytes <= self.retention.max_bytes);
            if !keep {
                let _ = fs::remove_file(self.path(&m.id, "json"));
                let _ = fs::remove_file(self.path(&m.id, "fdr"));
            }
        }
        Ok(())
    }
}

impl IncidentStore for DirStore {
    fn put(&self, meta: &IncidentMeta, dump: &mut DumpFn<'_>) -> Result<IncidentMeta, StoreError> {
        check_id(&meta.id)?;
        let dump_path = self.path(&meta.id, "fdr");
        let bytes = self.write_atomically(&dump_path, dump)?;
        let stored = IncidentMeta {
            bytes,
            ..meta.clone()
        };
        let json = serde_json::to_vec_pretty(&stored.to_json()).unwrap_or_default();
        let sidecar = self.write_atomically(&self.path(&meta.id, "json"), &mut |out| {
            out.write_all(&json).map(|()| json.len() as u64)
        });
        if let Err(e) = sidecar {
            // Without its sidecar the dump is invisible; do not leave it to take space.
            let _ = fs::remove_file(&dump_path);
            return Err(e);
        }
        self.sync_dir()?;
        self.retain()?;
        Ok(stored)
    }

    fn list(&self) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        for entry in self.entries()? {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if id.starts_with(TMP) || check_id(id).is_err() || !self.path(id, "fdr").exists() {
                continue;
            }
            let read = fs::read(entry.path())
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .and_then(|v| IncidentMeta::from_json(&v));
            match read {
                Ok(m) => listing.incidents.push(m),
                Err(why) => listing.unreadable.push((id.to_owned(), why)),
            }
        }
        listing
            .incidents
            .sort_by(|a, b| (b.time_unix_ms, &b.id).cmp(&(a.time_unix_ms, &a.id)));
        Ok(listing)
    }

    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        check_id(id)?;
        if !self.path(id, "json").exists() {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        let path = self.path(id, "fdr");
        match File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(id.to_owned()))
            }
            Err(source) => Err(StoreError::Io {
                op: "opening",
                path,
                source,
            }),
        }
    }
}

/// Counts the bytes that reach the writer.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, t: u64) -> IncidentMeta {
        IncidentMeta {
            id: id.to_owned(),
            rule: "r".into(),
            condition: "r: m value > 1 for 1".into(),
            metric: "m".into(),
            value: 2.0,
            threshold: 1.0,
            values: vec![("r".into(), 2.0)],
            time_unix_ms: t,
            host: "h".into(),
            pid: 7,
            service_version: Some("1.2.3".into()),
            bytes: 0,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fdr-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    /// The ids a store lists, newest first.
    fn ids(s: &DirStore) -> Vec<String> {
        s.list()
            .unwrap()
            .incidents
            .into_iter()
            .map(|m| m.id)
            .collect()
    }

    fn write(n: usize) -> impl FnMut(&mut dyn Write) -> io::Result<u64> {
        move |out| out.write_all(&vec![7u8; n]).map(|()| n as u64)
    }

    #[test]
    fn incidents_round_trip_and_list_newest_first() {
        let dir = temp_dir("round-trip");
        let s = DirStore::new(&dir, Retention::default()).unwrap();
        let stored = s.put(&meta("a", 1), &mut write(10)).unwrap();
        assert_eq!(stored.bytes, 10);
        s.put(&meta("b", 2), &mut write(20)).unwrap();
        let l = s.list().unwrap();
        let ids: Vec<_> = l.incidents.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(
            l.incidents[1],
            IncidentMeta {
                bytes: 10,
                ..meta("a", 1)
            }
        );
        let mut got = Vec::new();
        s.open("b").unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, vec![7u8; 20]);
        assert!(matches!(s.open("zz"), Err(StoreError::NotFound(_))));
        assert!(matches!(s.open("../etc/passwd"), Err(StoreError::BadId(_))));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dump_that_fails_midway_leaves_nothing_visible() {
        let dir = temp_dir("fails");
        let s = DirStore::new(&dir, Retention::default()).unwrap();
        let e = s
            .put(&meta("a", 1), &mut |out| {
                out.write_all(&[1; 100])?;
                Err(io::Error::other("the ring went away"))
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::Dump { written: 100, .. }), "{e}");
        assert!(s.list().unwrap().incidents.is_empty());
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "no file left behind"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retention_drops_the_oldest_by_count_and_bytes() {
        let dir = temp_dir("retention");
        let s = DirStore::new(
            &dir,
            Retention {
                max_count: 3,
                max_bytes: 250,
            },
        )
        .unwrap();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            s.put(&meta(id, i as u64), &mut write(100)).unwrap();
        }
        // Three fit the count but not the bytes: two are kept.
        assert_eq!(ids(&s), ["d", "c"]);
        // The newest stays even when it alone is over.
        s.put(&meta("e", 9), &mut write(1000)).unwrap();
        assert_eq!(ids(&s), ["e"]);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leftovers_of_an_interrupted_write_are_cleared_and_bad_sidecars_reported() {
        let dir = temp_dir("leftovers");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".tmp-x.fdr"), b"partial").unwrap();
        fs::write(dir.join("y.fdr"), b"no sidecar").unwrap();
        fs::write(dir.join("z.fdr"), b"dump").unwrap();
        fs::write(dir.join("z.json"), b"{\"id\": 3}").unwrap();
        let s = DirStore::new(&dir, Retention::default()).unwrap();
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["z.fdr", "z.json"]);
        let l = s.list().unwrap();
        assert!(l.incidents.is_empty());
        assert_eq!(
            l.unreadable,
            [("z".to_owned(), "field `id`: expected a string".to_owned())]
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
