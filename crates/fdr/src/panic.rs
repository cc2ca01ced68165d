//! The emergency dump: write the flight recorder when the process panics, as an incident
//! of the sentinel's directory store.
//!
//! A panic dump is an incident like the sentinel's: `ID.fdr` (the dump) and `ID.json` (its
//! sidecar, rule `panic`), `ID` being `20261202T040512.123Z-panic-PID`, each written under a
//! temporary name `.panic.EXT.tmp-PID-N` created exclusively (`O_CREAT|O_EXCL`: a symlink
//! planted there makes the creation fail, never followed; the next `N` is tried) with mode
//! 0600, synced, then renamed. This is the layout `fdr_sentinel::DirStore` lists, removes
//! leftovers of and retains (`fdr-sentinel`'s `layout.rs`); the facade writes it without
//! depending on the sentinel, and `tests/panic_dump.rs` checks that a `DirStore` lists it.

use std::path::PathBuf;
use std::time::Duration;

/// Installs a panic hook that writes the flight recorder into `dir` as an incident (see
/// [`PanicDump`]; its defaults), prints where, then runs the hook that was installed before.
/// Does nothing without the `record` feature.
pub fn dump_on_panic(dir: impl Into<PathBuf>) {
    PanicDump::new(dir).install();
}

/// The emergency dump's settings: [`PanicDump::install`] installs it.
///
/// Every panic dumps, up to `max_dumps` within any `window` (default 3 in 10 minutes: a
/// panic in a loop must not fill the disk); the panics past that are counted
/// ([`panic_dump_stats`]) and reported on stderr. While another snapshot is being written (a
/// download from the admin endpoint, say), the panicking thread waits for the recorder, up
/// to `snapshot_wait` (default 90 s, past the admin endpoint's 60 s transfer timeout). A
/// failing dump is reported on stderr and never hides the panic.
///
/// Point it at the sentinel's incident directory: the sentinel lists panic dumps with its
/// own incidents and applies its retention to them.
///
/// ```no_run
/// # use std::time::Duration;
/// fdr::PanicDump::new("/var/lib/my-service/incidents")
///     .service_version(env!("CARGO_PKG_VERSION"))
///     .max_dumps(5, Duration::from_secs(3600))
///     .install();
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(
    not(feature = "record"),
    allow(dead_code, reason = "without a recorder there is nothing to dump")
)]
pub struct PanicDump {
    dir: PathBuf,
    file_mode: u32,
    max_dumps: u32,
    window: Duration,
    snapshot_wait: Duration,
    service_version: Option<String>,
}

impl PanicDump {
    /// Dumps into `dir` (created, mode 0700, if missing) with the defaults.
    pub fn new(dir: impl Into<PathBuf>) -> PanicDump {
        PanicDump {
            dir: dir.into(),
            file_mode: 0o600,
            max_dumps: 3,
            window: Duration::from_secs(600),
            snapshot_wait: Duration::from_secs(90),
            service_version: None,
        }
    }

    /// The mode of the dump and its sidecar (default 0o600; 0o640 lets a group read them).
    /// The owner always reads and writes them, no one else may write them, and they are not
    /// executable: such bits are dropped.
    pub fn file_mode(mut self, mode: u32) -> PanicDump {
        self.file_mode = (mode & 0o644) | 0o600;
        self
    }

    /// At most `n` dumps within any `window` (default 3 in 10 minutes).
    pub fn max_dumps(mut self, n: u32, window: Duration) -> PanicDump {
        self.max_dumps = n;
        self.window = window;
        self
    }

    /// How long a panic waits for the recorder while another snapshot is being written
    /// (default 90 s).
    pub fn snapshot_wait(mut self, wait: Duration) -> PanicDump {
        self.snapshot_wait = wait;
        self
    }

    /// The service's version, written into the sidecar.
    pub fn service_version(mut self, version: impl Into<String>) -> PanicDump {
        self.service_version = Some(version.into());
        self
    }

    /// Installs the panic hook (before the one installed so far, which still runs). Warns
    /// on stderr, and counts it, when the directory is writable by others. Does nothing
    /// without the `record` feature.
    pub fn install(self) {
        #[cfg(feature = "record")]
        imp::install(self);
        #[cfg(not(feature = "record"))]
        let _ = self;
    }
}

/// What the panic hooks installed with [`dump_on_panic`] or [`PanicDump::install`] did in
/// this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PanicDumpStats {
    /// Panic dumps written.
    pub written: u64,
    /// Panics whose dump failed (reported on stderr).
    pub failed: u64,
    /// Panics not dumped: `max_dumps` were written within the window already.
    pub skipped: u64,
    /// Warnings printed: a dump directory writable by others.
    pub warnings: u64,
}

/// What the panic dumps did so far (all zeros without the `record` feature).
pub fn panic_dump_stats() -> PanicDumpStats {
    #[cfg(feature = "record")]
    return imp::stats();
    #[cfg(not(feature = "record"))]
    PanicDumpStats::default()
}

#[cfg(feature = "record")]
mod imp {
    use std::collections::VecDeque;
    use std::fs::{self, File, OpenOptions};
    use std::io::{self, BufWriter, Write};
    use std::panic::PanicHookInfo;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use super::{PanicDump, PanicDumpStats};

    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    static FAILED: AtomicU64 = AtomicU64::new(0);
    static SKIPPED: AtomicU64 = AtomicU64::new(0);
    static WARNINGS: AtomicU64 = AtomicU64::new(0);
    /// Panics seen by the hooks, this one included.
    static PANICS: AtomicU64 = AtomicU64::new(0);
    /// The last id's time: ids stay distinct and increasing.
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    /// The next temporary name's number.
    static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

    /// Temporary names tried for one file (each taken name was skipped).
    const TEMP_NAME_TRIES: u32 = 64;
    /// The longest panic message kept in the sidecar, in bytes.
    const MESSAGE_MAX_BYTES: usize = 4096;

    pub(super) fn stats() -> PanicDumpStats {
        PanicDumpStats {
            written: WRITTEN.load(Ordering::Relaxed),
            failed: FAILED.load(Ordering::Relaxed),
            skipped: SKIPPED.load(Ordering::Relaxed),
            warnings: WARNINGS.load(Ordering::Relaxed),
        }
    }

    pub(super) fn install(config: PanicDump) {
        if let Some(w) = dir_warning(&config.dir) {
            WARNINGS.fetch_add(1, Ordering::Relaxed);
            eprintln!("fdr: warning: {w}");
        }
        let recent: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let number = PANICS.fetch_add(1, Ordering::Relaxed) + 1;
            if admit(&recent, &config) {
                match dump(&config, info, number) {
                    Ok((path, None)) => {
                        WRITTEN.fetch_add(1, Ordering::Relaxed);
                        eprintln!("fdr: flight recorder dumped to {}", path.display());
                    }
                    Ok((path, Some(e))) => {
                        WRITTEN.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "fdr: flight recorder dumped to {}, but its sidecar (the panic's \
                             message) could not be written: {e}",
                            path.display()
                        );
                    }
                    Err(e) => {
                        FAILED.fetch_add(1, Ordering::Relaxed);
                        eprintln!("fdr: could not dump the flight recorder: {e}");
                    }
                }
            } else {
                SKIPPED.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "fdr: flight recorder not dumped for this panic: {} panic dumps within \
                     {:?} already",
                    config.max_dumps, config.window
                );
            }
            previous(info);
        }));
    }

    /// Whether one more dump fits within `max_dumps` per `window`; if so, it is counted.
    fn admit(recent: &Mutex<VecDeque<Instant>>, config: &PanicDump) -> bool {
        let now = Instant::now();
        let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= config.window)
        {
            recent.pop_front();
        }
        if recent.len() >= config.max_dumps as usize {
            return false;
        }
        recent.push_back(now);
        true
    }

    /// Writes the dump, then its sidecar: the dump's path, and why the sidecar is missing
    /// if it is (the dump is kept: the sentinel's store lists it as found without one).
    fn dump(
        config: &PanicDump,
        info: &PanicHookInfo<'_>,
        number: u64,
    ) -> io::Result<(PathBuf, Option<io::Error>)> {
        let dir = &config.dir;
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(
            &mut builder,
            config.file_mode | ((config.file_mode & 0o444) >> 2),
        );
        builder.create(dir)?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = LAST_MS.fetch_max(now_ms, Ordering::Relaxed);
        let ms = if last >= now_ms {
            LAST_MS.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            now_ms
        };
        let pid = std::process::id();
        let id = format!("{}-panic-{pid}", time_id(ms));

        let (file, tmp) = create_temp(dir, "fdr", config.file_mode)?;
        let bytes = place(&tmp, &dir.join(format!("{id}.fdr")), || {
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let bytes = snapshot(&mut out, config.snapshot_wait)?;
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            Ok(bytes)
        })?;

        let location = info
            .location()
            .map_or_else(|| "unknown".to_owned(), |l| l.to_string());
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a non-string payload)");
        let message = truncate(message, MESSAGE_MAX_BYTES);
        let thread = std::thread::current()
            .name()
            .unwrap_or("(unnamed)")
            .to_owned();
        let sidecar = format!(
            "{{\n  \"id\": {id},\n  \"rule\": \"panic\",\n  \"condition\": {condition},\n  \
             \"metric\": \"panics\",\n  \"value\": {number},\n  \"threshold\": 0,\n  \
             \"values\": [],\n  \"time_unix_ms\": {ms},\n  \"host\": {host},\n  \
             \"pid\": {pid},\n  \"service_version\": {version},\n  \"bytes\": {bytes},\n  \
             \"panic\": {{\"message\": {message}, \"location\": {location}, \
             \"thread\": {thread}}}\n}}\n",
            id = json(&id),
            condition = json(&format!(
                "panic at {location} on thread '{thread}': {message}"
            )),
            host = json(&host_name()),
            version = config
                .service_version
                .as_deref()
                .map_or("null".into(), json),
            message = json(message),
            location = json(&location),
            thread = json(&thread),
        );
        let dump_path = dir.join(format!("{id}.fdr"));
        let placed = create_temp(dir, "json", config.file_mode).and_then(|(file, tmp)| {
            place(&tmp, &dir.join(format!("{id}.json")), || {
                let mut file = file;
                file.write_all(sidecar.as_bytes())?;
                file.sync_all()
            })
        });
        let synced = File::open(dir).and_then(|d| d.sync_all());
        Ok((dump_path, placed.and(synced).err()))
    }

    /// Writes the flight recorder into `out` as an incident snapshot, which downloads and
    /// other `write_to` snapshots never crowd out; in the rare case that every incident slot
    /// is taken, asks again after pauses that double from 50 ms to 2 s, for up to `wait`.
    fn snapshot(out: &mut impl Write, wait: Duration) -> io::Result<u64> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(50);
        loop {
            match crate::flight().write_incident_to(out) {
                Ok(bytes) => return Ok(bytes),
                Err(e) if e.is_snapshot_in_progress() && Instant::now() < deadline => {
                    std::thread::sleep(
                        pause.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) if e.is_snapshot_in_progress() => {
                    return Err(io::Error::new(
                        io::ErrorKind::ResourceBusy,
                        format!("the flight recorder was busy with another snapshot for {wait:?}"),
                    ));
                }
                Err(e) => return Err(e.into_io().unwrap_or_else(io::Error::other)),
            }
        }
    }

    /// Runs `write` (which fills the temporary file `tmp`), then renames `tmp` to `dest`;
    /// on failure, removes `tmp`.
    fn place<T>(tmp: &Path, dest: &Path, write: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let result = write().and_then(|v| fs::rename(tmp, dest).map(|()| v));
        if result.is_err() {
            let _ = fs::remove_file(tmp);
        }
        result
    }

    /// Creates `.panic.EXT.tmp-PID-N` in `dir`, exclusively and with exactly `mode`,
    /// trying the next `N` while a name is taken.
    fn create_temp(dir: &Path, ext: &str, mode: u32) -> io::Result<(File, PathBuf)> {
        let pid = std::process::id();
        for _ in 0..TEMP_NAME_TRIES {
            let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".panic.{ext}.tmp-{pid}-{n}"));
            let mut options = OpenOptions::new();
            // O_CREAT|O_EXCL: fails on anything at the name, a symlink included, which it
            // never follows.
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
            match options.open(&path) {
                Ok(file) => {
                    #[cfg(unix)]
                    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
                    return Ok((file, path));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{TEMP_NAME_TRIES} temporary names .panic.{ext}.tmp-{pid}-N in {} were taken",
                dir.display()
            ),
        ))
    }

    /// A warning when others than the owner may write into `dir`.
    fn dir_warning(dir: &Path) -> Option<String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir).ok()?.permissions().mode();
            (mode & 0o002 != 0).then(|| {
                format!(
                    "the panic dump directory {} is writable by others (mode {:#o}): another \
                     user can plant or remove files there; make it 0700",
                    dir.display(),
                    mode & 0o7777
                )
            })
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            None
        }
    }

    /// `20261202T040512.123Z`, UTC (the sentinel's incident ids begin so).
    fn time_id(unix_ms: u64) -> String {
        let secs = unix_ms / 1000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Howard Hinnant's `civil_from_days`.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            unix_ms % 1000
        )
    }

    fn host_name() -> String {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into())
    }

    /// At most `max` bytes of `s`, cut at a character boundary.
    fn truncate(s: &str, max: usize) -> &str {
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        &s[..end]
    }

    /// `s` as a JSON string.
    fn json(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn times_and_strings_are_written_as_the_sentinel_reads_them() {
            // 2026-12-02 04:05:12.123 UTC; a leap day; the epoch.
            assert_eq!(time_id(1_796_184_312_123), "20261202T040512.123Z");
            assert_eq!(time_id(951_782_400_000), "20000229T000000.000Z");
            assert_eq!(time_id(0), "19700101T000000.000Z");
            assert_eq!(
                json("a \"quoted\"\\ line\nand\u{1}é"),
                "\"a \\\"quoted\\\"\\\\ line\\nand\\u0001é\""
            );
            assert_eq!(truncate("aé", 2), "a");
        }
    }
}
