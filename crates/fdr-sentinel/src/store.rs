//! Where dumps go: an incident is a flight-recorder dump and a metadata sidecar (the rule,
//! the metric values, the threshold, host, pid, service version, time). A store makes an
//! incident visible only once both are complete, and keeps a bounded number of them.
//!
//! [`DirStore`] keeps them in a directory: `ID.fdr` and `ID.json`, each written to a
//! temporary name (created exclusively, never through a symlink, mode 0600 by default),
//! synced and renamed, the sidecar last; a listing shows an incident only when its sidecar
//! exists, so a dump cut short by a full disk or a crash is never seen. An incident's id and
//! size come from its file names and its dump file, never from its sidecar's content.
//! Before a dump is written, the oldest incidents make room for it within `max_bytes`.
//! `fdr::dump_on_panic` writes its dumps in the same layout (see `layout.rs`), so a panic
//! dump in the directory is an incident like the others.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::layout::{self, DEFAULT_FILE_MODE};

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
    /// The service's version, if the sentinel or the recorder was told it.
    pub service_version: Option<String>,
    /// The service's name, from the recorder's identity (absent from older sidecars).
    pub service: Option<String>,
    /// When the process started, in milliseconds since the Unix epoch (absent if unknown).
    pub process_start_unix_ms: Option<u64>,
    /// The version of fdr that wrote the dump.
    pub fdr_version: Option<String>,
    /// The program's build id, in hex (absent if it has none).
    pub build_id: Option<String>,
    /// The dump's size (set by the store).
    pub bytes: u64,
    /// What fdr cost the process then (the recorder's cost meter); `None` when it had not
    /// metered yet, or in a sidecar written before it was kept.
    pub cost: Option<crate::IncidentCost>,
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
            "service": self.service,
            "process_start_unix_ms": self.process_start_unix_ms,
            "fdr_version": self.fdr_version,
            "build_id": self.build_id,
            "bytes": self.bytes,
            "cost": self.cost.as_ref().map(crate::IncidentCost::to_json),
        })
    }

    /// Reads a sidecar; the error names the first field missing or of the wrong type.
    pub fn from_json(v: &serde_json::Value) -> Result<IncidentMeta, SidecarError> {
        let field = |field: &'static str, expected: &'static str| SidecarError { field, expected };
        let s = |k: &'static str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_owned)
                .ok_or_else(|| field(k, "a string"))
        };
        let f = |k: &'static str| {
            v.get(k)
                .and_then(|x| x.as_f64())
                .ok_or_else(|| field(k, "a number"))
        };
        let u = |k: &'static str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .ok_or_else(|| field(k, "a whole number"))
        };
        let opt_s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let (id, rule, condition, metric) = (s("id")?, s("rule")?, s("condition")?, s("metric")?);
        let (value, threshold) = (f("value")?, f("threshold")?);
        let values = v
            .get("values")
            .and_then(|x| x.as_array())
            .ok_or_else(|| field("values", "an array"))?
            .iter()
            .map(|e| {
                Some((
                    e.get("rule")?.as_str()?.to_owned(),
                    e.get("value")?.as_f64()?,
                ))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| field("values", "{rule, value} entries"))?;
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
            pid: u32::try_from(u("pid")?).map_err(|_| field("pid", "a process id (u32)"))?,
            service_version: opt_s("service_version"),
            // Written since sidecars name the process; older ones have none.
            service: opt_s("service"),
            process_start_unix_ms: v.get("process_start_unix_ms").and_then(|x| x.as_u64()),
            fdr_version: opt_s("fdr_version"),
            build_id: opt_s("build_id"),
            bytes: u("bytes")?,
            cost: match v.get("cost") {
                None | Some(serde_json::Value::Null) => None,
                Some(c) => Some(crate::IncidentCost::from_json(c)?),
            },
        })
    }
}

/// A sidecar that could not be read: its first field missing or of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: expected {expected}")]
#[non_exhaustive]
pub struct SidecarError {
    /// The field (`cost.share` for one inside `cost`).
    pub field: &'static str,
    /// What it should have been.
    pub expected: &'static str,
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
#[non_exhaustive]
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
    #[error(
        "incident store: `{0}` is not an incident id (at most 200 letters, digits, `.`, `_` \
         or `-`, not starting with `.`)"
    )]
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
        /// The kind of error (object_store's: `NotFound`, `PermissionDenied`, `Unauthenticated`, `Generic`).
        code: Option<String>,
        /// The store's message, or why there was no answer.
        message: String,
    },
    /// Another store's failure, in its words.
    #[error("incident store: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether the disk (or the quota) was full.
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::Io { source, .. } | StoreError::Dump { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

fn remote_why(status: Option<u16>, code: Option<&str>, message: &str) -> String {
    match (status, code) {
        (Some(s), Some(c)) => format!("HTTP {s} {c}: {message}"),
        (Some(s), None) => format!("HTTP {s}: {message}"),
        (None, Some(c)) => format!("{c}: {message}"),
        (None, None) => format!("no answer: {message}"),
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

    /// What is unsafe about the store as it is now (a directory others may write into),
    /// one sentence each; the sentinel logs and counts them at start.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
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

/// Whether `id` could be one of ours: `[A-Za-z0-9._-]`, at most [`MAX_ID_BYTES`], not
/// starting with `.` (so never a path, nor a temporary name).
pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    if layout::is_id(id) {
        Ok(())
    } else {
        Err(StoreError::BadId(id.to_owned()))
    }
}

/// The most of a sidecar read (a sentinel's is a few hundred bytes).
pub(crate) const SIDECAR_MAX_BYTES: u64 = 1 << 20;

/// The oldest incidents (of `newest_first`) past `retention`: the newest is always kept.
/// With `incoming_bytes`, those that must go, by bytes alone, to make room for a new dump
/// of that size before it is written (the count is applied once it is).
pub(crate) fn retention_victims(
    newest_first: &[IncidentMeta],
    retention: Retention,
    incoming_bytes: Option<u64>,
) -> Vec<&str> {
    let mut victims = Vec::new();
    let mut bytes = incoming_bytes.unwrap_or(0);
    for (i, m) in newest_first.iter().enumerate() {
        bytes = bytes.saturating_add(m.bytes);
        let keep = match incoming_bytes {
            Some(_) => bytes <= retention.max_bytes,
            None => i == 0 || (i < retention.max_count && bytes <= retention.max_bytes),
        };
        if !keep {
            victims.push(m.id.as_str());
        }
    }
    victims
}

/// Temporary files this process is writing into incident directories, which a store opened
/// meanwhile must not take for leftovers.
static WRITING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes its path from [`WRITING`] when dropped.
struct Writing(PathBuf);

impl Writing {
    fn new(path: &Path) -> Writing {
        lock(&WRITING).push(path.to_owned());
        Writing(path.to_owned())
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        lock(&WRITING).retain(|p| *p != self.0);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether the writer of a temporary file of process `pid` is gone.
fn writer_gone(pid: u32, path: &Path) -> bool {
    if pid == std::process::id() {
        return !lock(&WRITING).iter().any(|p| p == path);
    }
    // Another process's: gone if /proc has no such process (where there is no /proc, every
    // other process counts as gone).
    !Path::new("/proc").join(pid.to_string()).exists()
}

/// Incidents in a directory (see the module docs).
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    retention: Retention,
    file_mode: u32,
    /// The next temporary name's number.
    next_temp: AtomicU64,
    /// The bytes the last dump reached before the disk filled (0: it did not).
    short_dump_bytes: AtomicU64,
}

impl DirStore {
    /// A store in `dir` (created, mode 0700, if missing) whose files are created with mode
    /// 0600 ([`DEFAULT_FILE_MODE`]). See [`DirStore::with_file_mode`].
    pub fn new(dir: impl Into<PathBuf>, retention: Retention) -> Result<DirStore, StoreError> {
        DirStore::with_file_mode(dir, retention, DEFAULT_FILE_MODE)
    }

    /// A store in `dir` whose dumps and sidecars are created with exactly `file_mode`
    /// (0o600 or 0o640, say; the owner must read and write them and no one else may write
    /// them); a directory it creates gets the matching mode (0o700, 0o750).
    ///
    /// At start it removes what interrupted writes left (temporary names,
    /// `.ID.fdr.tmp-PID-N`, of processes that are gone, and sidecars whose dump is gone),
    /// makes an incident of each dump found without a sidecar (a panic dump written by an
    /// earlier version, `panic-PID-SECS.fdr`, or a dump whose process stopped before its
    /// sidecar), and applies the retention. Nothing else in the directory is touched.
    pub fn with_file_mode(
        dir: impl Into<PathBuf>,
        retention: Retention,
        file_mode: u32,
    ) -> Result<DirStore, StoreError> {
        let dir = dir.into();
        layout::check_file_mode(file_mode).map_err(|why| {
            StoreError::Other(format!("incident directory {}: {why}", dir.display()))
        })?;
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, layout::dir_mode(file_mode));
        builder.create(&dir).map_err(|source| StoreError::Io {
            op: "creating the directory",
            path: dir.clone(),
            source,
        })?;
        let store = DirStore {
            dir,
            retention,
            file_mode,
            next_temp: AtomicU64::new(0),
            short_dump_bytes: AtomicU64::new(0),
        };
        store.recover()?;
        store.retain()?;
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mode of the files it creates.
    pub fn file_mode(&self) -> u32 {
        self.file_mode
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

    /// What interrupted writes left (see [`DirStore::with_file_mode`]).
    fn recover(&self) -> Result<(), StoreError> {
        for entry in self.entries()? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if let Some(pid) = layout::temp_name_pid(name) {
                if writer_gone(pid, &path) {
                    // A symlink is removed, never followed.
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            if let Some(id) = name.strip_suffix(".json") {
                if layout::is_id(id) && fs::symlink_metadata(self.path(id, "fdr")).is_err() {
                    // Retention removes the dump first: it stopped before the sidecar.
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            let Some(id) = name.strip_suffix(".fdr") else {
                continue;
            };
            let Some(bytes) = layout::regular_len(&path) else {
                continue;
            };
            if !layout::is_id(id) || fs::symlink_metadata(self.path(id, "json")).is_ok() {
                continue;
            }
            let modified_ms = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            let meta = adopted(id, bytes, modified_ms);
            let json = serde_json::to_vec_pretty(&meta.to_json()).unwrap_or_default();
            // Linked, not renamed, into place: a sidecar its writer renames meanwhile wins.
            let _ = self.write_file(id, "json", false, &mut |out| {
                out.write_all(&json).map(|()| json.len() as u64)
            });
        }
        Ok(())
    }

    /// Writes `what` to a temporary file for `ID.EXT`, syncs it and moves it into place:
    /// renamed over whatever is there (`replace`), or linked only if nothing is.
    fn write_file(
        &self,
        id: &str,
        ext: &str,
        replace: bool,
        what: &mut dyn FnMut(&mut dyn Write) -> io::Result<u64>,
    ) -> Result<u64, StoreError> {
        let dest = self.path(id, ext);
        let (file, tmp) =
            layout::create_temp(&self.dir, id, ext, self.file_mode, false, &self.next_temp)
                .map_err(|source| StoreError::Io {
                    op: "creating a temporary file",
                    path: self.dir.clone(),
                    source,
                })?;
        let _writing = Writing::new(&tmp);
        let result = (|| {
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
            let placed = if replace {
                fs::rename(&tmp, &dest)
            } else {
                fs::hard_link(&tmp, &dest)
            };
            placed.map_err(|source| StoreError::Io {
                op: "moving into place",
                path: dest.clone(),
                source,
            })?;
            Ok(n)
        })();
        if result.is_err() || !replace {
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

    /// Removes an incident: its dump first, so a crash in between leaves only a sidecar
    /// without its dump (never listed, removed at the next start).
    fn remove(&self, id: &str) {
        let _ = fs::remove_file(self.path(id, "fdr"));
        let _ = fs::remove_file(self.path(id, "json"));
    }

    /// Removes the oldest incidents past the retention.
    fn retain(&self) -> Result<(), StoreError> {
        let listing = self.list()?;
        for id in retention_victims(&listing.incidents, self.retention, None) {
            self.remove(id);
        }
        Ok(())
    }

    /// Before a dump is written: removes the oldest incidents that would leave no room
    /// within `max_bytes` for a dump as big as the newest one (or as far as the last dump
    /// got before the disk filled, if further), so a full disk frees itself.
    fn make_room(&self) -> Result<(), StoreError> {
        let listing = self.list()?;
        let expected_bytes = listing
            .incidents
            .first()
            .map_or(0, |m| m.bytes)
            .max(self.short_dump_bytes.load(Ordering::Relaxed));
        for id in retention_victims(&listing.incidents, self.retention, Some(expected_bytes)) {
            self.remove(id);
        }
        Ok(())
    }
}

/// What is known of a dump found without its sidecar, from its name: a panic dump of an
/// earlier version (`panic-PID-SECS`), an incident id (`TIME-RULE`, `TIME-panic-PID`), or
/// anything else (then its time is the file's).
fn adopted(id: &str, bytes: u64, modified_ms: u64) -> IncidentMeta {
    let numbers = |s: &str| -> Option<(u32, u64)> {
        let (a, b) = s.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let panic_pid = |rest: &str| rest.strip_prefix("panic-").and_then(|p| p.parse().ok());
    let (rule, pid, time_unix_ms) =
        if let Some((pid, secs)) = id.strip_prefix("panic-").and_then(numbers) {
            ("panic".to_owned(), pid, secs.saturating_mul(1000))
        } else if let Some((ms, rest)) = layout::parse_incident_id(id) {
            match panic_pid(rest) {
                Some(pid) => ("panic".to_owned(), pid, ms),
                None => (rest.to_owned(), 0, ms),
            }
        } else {
            ("unknown".to_owned(), 0, modified_ms)
        };
    IncidentMeta {
        id: id.to_owned(),
        condition: format!(
            "{rule}: a dump found without its sidecar (written by an earlier version, or its \
             process stopped before the sidecar); what is known comes from its name"
        ),
        rule,
        metric: String::new(),
        value: 0.0,
        threshold: 0.0,
        values: Vec::new(),
        time_unix_ms,
        host: layout::host_name(),
        pid,
        service_version: None,
        service: None,
        process_start_unix_ms: None,
        fdr_version: None,
        build_id: None,
        bytes,
        cost: None,
    }
}

impl IncidentStore for DirStore {
    fn put(&self, meta: &IncidentMeta, dump: &mut DumpFn<'_>) -> Result<IncidentMeta, StoreError> {
        check_id(&meta.id)?;
        self.make_room()?;
        let bytes = match self.write_file(&meta.id, "fdr", true, dump) {
            Ok(n) => n,
            Err(e) => {
                if let StoreError::Dump { written, .. } = &e
                    && e.is_no_space()
                {
                    self.short_dump_bytes.fetch_max(*written, Ordering::Relaxed);
                }
                return Err(e);
            }
        };
        let stored = IncidentMeta {
            bytes,
            ..meta.clone()
        };
        let json = serde_json::to_vec_pretty(&stored.to_json()).unwrap_or_default();
        let sidecar = self.write_file(&meta.id, "json", true, &mut |out| {
            out.write_all(&json).map(|()| json.len() as u64)
        });
        if let Err(e) = sidecar {
            // Without its sidecar the dump is invisible; do not leave it to take space.
            let _ = fs::remove_file(self.path(&meta.id, "fdr"));
            return Err(e);
        }
        self.short_dump_bytes.store(0, Ordering::Relaxed);
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
            if check_id(id).is_err() {
                continue;
            }
            // The id and the size come from the names and the files, never from the
            // sidecar's content.
            let Some(bytes) = layout::regular_len(&self.path(id, "fdr")) else {
                continue;
            };
            match read_sidecar(&entry.path()) {
                Ok(m) => listing.incidents.push(IncidentMeta {
                    id: id.to_owned(),
                    bytes,
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

    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        check_id(id)?;
        if layout::regular_len(&self.path(id, "json")).is_none() {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        let path = self.path(id, "fdr");
        match layout::open_regular(&path) {
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

    fn warnings(&self) -> Vec<String> {
        layout::dir_warning(&self.dir, "the incident directory", false)
            .into_iter()
            .collect()
    }
}

/// A sidecar, read from a regular file of at most [`SIDECAR_MAX_BYTES`].
fn read_sidecar(path: &Path) -> Result<IncidentMeta, String> {
    let file = layout::open_regular(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(SIDECAR_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > SIDECAR_MAX_BYTES {
        return Err(format!("a sidecar over {SIDECAR_MAX_BYTES} bytes"));
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    IncidentMeta::from_json(&v).map_err(|e| e.to_string())
}

/// Counts the bytes that reach the writer (the directory and bucket stores' spools).
pub(crate) struct Counting<W> {
    pub(crate) inner: W,
    pub(crate) written: u64,
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

// The incident the store tests put: one for the crate's unit and integration tests.
#[cfg(test)]
#[path = "../tests/sentinel/common/meta.rs"]
mod test_meta;

#[cfg(test)]
mod tests {
    use super::*;

    use test_meta::meta;

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
        let stored = s.put(&meta("a", 1, None), &mut write(10)).unwrap();
        assert_eq!(stored.bytes, 10);
        s.put(&meta("b", 2, None), &mut write(20)).unwrap();
        let l = s.list().unwrap();
        let ids: Vec<_> = l.incidents.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(
            l.incidents[1],
            IncidentMeta {
                bytes: 10,
                ..meta("a", 1, None)
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
            .put(&meta("a", 1, None), &mut |out| {
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
            s.put(&meta(id, i as u64, None), &mut write(100)).unwrap();
        }
        // Three fit the count but not the bytes: two are kept.
        assert_eq!(ids(&s), ["d", "c"]);
        // The newest stays even when it alone is over.
        s.put(&meta("e", 9, None), &mut write(1000)).unwrap();
        assert_eq!(ids(&s), ["e"]);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn only_temporary_names_of_gone_writers_are_removed_and_orphan_dumps_become_incidents() {
        let dir = temp_dir("leftovers");
        fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        // No process has a pid over the kernel's limit (2^22).
        let gone = 4_194_400;
        for name in [
            format!(".20260101T000000.000Z-r.fdr.tmp-{gone}-0"),
            format!(".panic.json.tmp-{gone}-3"),
            format!(".fdr-s3.spool.tmp-{me}-1"),
        ] {
            fs::write(dir.join(name), b"partial").unwrap();
        }
        // A live writer's (pid 1 is always there), and names that are not ours.
        let kept = [
            ".x.fdr.tmp-1-0",
            ".tmp-x.fdr",
            "notes.txt",
            "x.fdr.tmp",
            "bad name.fdr",
        ];
        for name in kept {
            fs::write(dir.join(name), b"someone's").unwrap();
        }
        // Dumps without a sidecar: a panic dump of an earlier version, one whose process
        // stopped before its sidecar, and one named otherwise.
        fs::write(dir.join("panic-4242-1700000000.fdr"), b"panic dump").unwrap();
        fs::write(dir.join("20260102T030405.678Z-slow.fdr"), b"dump").unwrap();
        fs::write(dir.join("y.fdr"), b"no sidecar").unwrap();
        // A sidecar whose dump retention removed, and an unreadable one.
        fs::write(dir.join("w.json"), b"{}").unwrap();
        fs::write(dir.join("z.fdr"), b"dump").unwrap();
        fs::write(dir.join("z.json"), b"{\"id\": 3}").unwrap();

        let s = DirStore::new(&dir, Retention::default()).unwrap();
        let mut want: Vec<String> = kept.iter().map(|n| n.to_string()).collect();
        for id in [
            "20260102T030405.678Z-slow",
            "panic-4242-1700000000",
            "y",
            "z",
        ] {
            want.push(format!("{id}.fdr"));
            want.push(format!("{id}.json"));
        }
        want.sort();
        assert_eq!(names(&dir), want);
        let l = s.list().unwrap();
        let got: Vec<_> = l
            .incidents
            .iter()
            .map(|m| (m.id.as_str(), m.rule.as_str(), m.pid, m.bytes))
            .collect();
        // The found dump's time is its file's: now, the newest.
        assert_eq!(
            got,
            [
                ("y", "unknown", 0, 10),
                ("20260102T030405.678Z-slow", "slow", 0, 4),
                ("panic-4242-1700000000", "panic", 4242, 10),
            ]
        );
        assert_eq!(l.incidents[2].time_unix_ms, 1_700_000_000_000);
        assert_eq!(l.incidents[1].time_unix_ms, 1_767_323_045_678);
        assert_eq!(
            l.unreadable,
            [("z".to_owned(), "field `id`: expected a string".to_owned())]
        );
        // A second start finds nothing more to do.
        drop(s);
        DirStore::new(&dir, Retention::default()).unwrap();
        assert_eq!(names(&dir), want);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn room_is_made_before_a_dump_by_bytes_and_the_count_after() {
        let dir = temp_dir("make-room");
        let s = DirStore::new(
            &dir,
            Retention {
                max_count: 2,
                max_bytes: 300,
            },
        )
        .unwrap();
        s.put(&meta("a", 1, None), &mut write(100)).unwrap();
        s.put(&meta("b", 2, None), &mut write(100)).unwrap();
        s.put(&meta("c", 3, None), &mut write(100)).unwrap();
        assert_eq!(ids(&s), ["c", "b"]);
        // A dump that fails: the count is not applied before it, so both stay.
        let e = s
            .put(&meta("d", 4, None), &mut |_| {
                Err(io::Error::other("no snapshot"))
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::Dump { written: 0, .. }), "{e}");
        assert_eq!(ids(&s), ["c", "b"]);
        // Bytes: with a 100-byte dump expected (the newest's size), 200 + 100 fit; a
        // 150-byte newest makes room for 150.
        s.put(&meta("e", 5, None), &mut write(150)).unwrap();
        assert_eq!(ids(&s), ["e", "c"]);
        let mut seen = Vec::new();
        s.put(&meta("f", 6, None), &mut |out| {
            seen = ids(&s);
            out.write_all(&[7; 10]).map(|()| 10)
        })
        .unwrap();
        assert_eq!(
            seen,
            ["e"],
            "c went before f was written: 150 + 100 + 150 > 300"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn taken_temporary_names_are_skipped_up_to_a_bound() {
        let dir = temp_dir("taken-names");
        let s = DirStore::new(&dir, Retention::default()).unwrap();
        let pid = std::process::id();
        for n in 0..u64::from(layout::TEMP_NAME_TRIES) {
            fs::write(dir.join(layout::temp_name("a", "fdr", pid, n)), b"x").unwrap();
        }
        let e = s.put(&meta("a", 1, None), &mut write(10)).unwrap_err();
        assert!(e.to_string().contains("64 temporary names up to"), "{e}");
        // The next names are free.
        s.put(&meta("a", 1, None), &mut write(10)).unwrap();
        assert_eq!(ids(&s), ["a"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
