//! How incidents are named and how their files are made: the contract between the stores,
//! the sentinel and `fdr::dump_on_panic` (which writes the same names without depending on
//! this crate; `crates/fdr/tests/panic_dump.rs` checks that a [`crate::DirStore`] lists
//! what it writes).
//!
//! - An incident id is `[A-Za-z0-9._-]{1,200}`, not starting with `.`: the sentinel's are
//!   `20261202T040512.123Z-RULE`, a panic's `20261202T040512.123Z-panic-PID`.
//! - Its files are `ID.fdr` (the dump) and `ID.json` (the sidecar); a store lists an incident
//!   only when both are there, and takes its id from those names, never from the sidecar.
//! - A file is written under a temporary name `.STEM.EXT.tmp-PID-N` (`STEM` an id, `EXT`
//!   `fdr`, `json` or `spool`, `PID` the writer's process, `N` a counter), created
//!   exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`: whatever is at the name, a planted symlink
//!   included, makes the creation fail and the next `N` is tried) with exactly the
//!   configured mode (0600 by default), synced, then renamed to its final name.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest incident id, in bytes (an id with its temporary name's decorations,
/// `.ID.json.tmp-PID-N`, stays within a file name's 255 bytes).
pub const MAX_ID_BYTES: usize = 200;

/// `20261202T040512.123Z-`: what an incident id adds before a rule's name.
pub(crate) const ID_TIME_BYTES: usize = 21;

/// The mode of the files a store creates (dumps, sidecars, spool files) unless configured:
/// read and write for the owner only.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// Names tried for one temporary file before giving up (each taken name was skipped).
pub(crate) const TEMP_NAME_TRIES: u32 = 64;

/// Whether `id` is an incident id (see the module docs).
pub(crate) fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// `.STEM.EXT.tmp-PID-N`.
pub(crate) fn temp_name(stem: &str, ext: &str, pid: u32, n: u64) -> String {
    format!(".{stem}.{ext}.tmp-{pid}-{n}")
}

/// The writer's pid, if `name` is a temporary name (and nothing else).
pub(crate) fn temp_name_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (file, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    if !matches!(ext, "fdr" | "json" | "spool") || !is_id(stem) {
        return None;
    }
    pid.parse().ok()
}

/// `20261202T040512.123Z-rule`: sorts by time, safe as a file name (bytes of `rule` other
/// than letters, digits, `_` and `-` become `_`).
pub(crate) fn incident_id(unix_ms: u64, rule: &str) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let rule: String = rule
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z-{rule}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// The time (ms since the Unix epoch) and the rest of an id made by [`incident_id`].
pub(crate) fn parse_incident_id(id: &str) -> Option<(u64, &str)> {
    let b = id.as_bytes();
    if b.len() < ID_TIME_BYTES || b[8] != b'T' || b[15] != b'.' || &b[19..21] != b"Z-" {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = id.get(r)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, s, ms) = (n(9..11)?, n(11..13)?, n(13..15)?, n(16..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    let ms = u64::try_from(secs).ok()? * 1000 + ms as u64;
    Some((ms, &id[ID_TIME_BYTES..]))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Why `mode` cannot be the mode of a store's files: the owner must read and write them,
/// and no one else may write them.
pub(crate) fn check_file_mode(mode: u32) -> Result<(), FileModeError> {
    if mode & !0o777 != 0 {
        return Err(FileModeError::NotPermissionBits { mode });
    }
    if mode & 0o600 != 0o600 {
        return Err(FileModeError::OwnerCannotReadWrite { mode });
    }
    if mode & 0o022 != 0 {
        return Err(FileModeError::OthersMayWrite { mode });
    }
    Ok(())
}

/// Why a mode for incident files was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileModeError {
    /// Bits other than the permission bits.
    #[error("file mode {mode:#o}: only permission bits (0o777) are allowed")]
    NotPermissionBits {
        /// The mode given.
        mode: u32,
    },
    /// The owner could not read and write its incidents.
    #[error("file mode {mode:#o}: the owner must be able to read and write (0o600)")]
    OwnerCannotReadWrite {
        /// The mode given.
        mode: u32,
    },
    /// The group or others could write incidents.
    #[error("file mode {mode:#o}: no one but the owner may write incidents (no 0o020, 0o002)")]
    OthersMayWrite {
        /// The mode given.
        mode: u32,
    },
}

/// The mode of a directory a store creates for files of `file_mode`: what may read them
/// may list it.
pub(crate) fn dir_mode(file_mode: u32) -> u32 {
    file_mode | ((file_mode & 0o444) >> 2)
}

#[cfg(unix)]
fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Creates `path`, failing if anything is there, a symlink included (which is never
/// followed), with exactly `mode` whatever the umask.
pub(crate) fn create_exclusive(path: &Path, mode: u32, read: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    // create_new is O_CREAT|O_EXCL: it fails on a symlink without following it.
    options.read(read).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode).custom_flags(no_follow());
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        options.open(path)
    }
}

/// Creates a temporary file for `STEM.EXT` in `dir` (see the module docs), trying the next
/// names while one is taken; `next` counts the names tried.
pub(crate) fn create_temp(
    dir: &Path,
    stem: &str,
    ext: &str,
    mode: u32,
    read: bool,
    next: &std::sync::atomic::AtomicU64,
) -> io::Result<(File, std::path::PathBuf)> {
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..TEMP_NAME_TRIES {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(temp_name(stem, ext, pid, n));
        match create_exclusive(&path, mode, read) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(path),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{TEMP_NAME_TRIES} temporary names up to {} were taken (is someone else writing \
             into this directory?)",
            last.map_or_else(String::new, |p| p.display().to_string())
        ),
    ))
}

/// Opens a regular file for reading, never through a symlink and never blocking on a FIFO
/// planted at `path`.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(no_follow() | rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The length of the regular file at `path` (not through a symlink), if there is one.
pub(crate) fn regular_len(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// A warning when others than the owner may write into `dir` (and so plant names in it or
/// remove incidents): `what` names the directory's role.
pub(crate) fn dir_warning(dir: &Path, what: &str, sticky_is_enough: bool) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        if mode & 0o002 != 0 && !(sticky && sticky_is_enough) {
            return Some(format!(
                "{what} {} is writable by others (mode {:#o}): another user can plant or \
                 remove files there; make it 0700 (files are created exclusively and never \
                 through a symlink, so nothing outside it is written)",
                dir.display(),
                mode & 0o7777
            ));
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, what, sticky_is_enough);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_are_utc_times_and_safe_names() {
        // 2026-12-02 04:05:12.123 UTC.
        let id = incident_id(1_796_184_312_123, "slow sched/1");
        assert_eq!(id, "20261202T040512.123Z-slow_sched_1");
        assert_eq!(
            parse_incident_id(&id),
            Some((1_796_184_312_123, "slow_sched_1"))
        );
        assert_eq!(incident_id(0, "r"), "19700101T000000.000Z-r");
        // A leap day.
        assert_eq!(incident_id(951_782_400_000, "r"), "20000229T000000.000Z-r");
        assert_eq!(
            parse_incident_id("20000229T000000.000Z-panic-7"),
            Some((951_782_400_000, "panic-7"))
        );
        for bad in [
            "panic-1-2",
            "2000022XT000000.000Z-r",
            "20001329T000000.000Z-r",
        ] {
            assert_eq!(parse_incident_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn temporary_names_are_recognised_and_nothing_else() {
        let name = temp_name("20261202T040512.123Z-slow", "fdr", 42, 7);
        assert_eq!(name, ".20261202T040512.123Z-slow.fdr.tmp-42-7");
        assert_eq!(temp_name_pid(&name), Some(42));
        assert_eq!(temp_name_pid(".panic.json.tmp-9-0"), Some(9));
        assert_eq!(temp_name_pid(".fdr-s3.spool.tmp-9-0"), Some(9));
        for other in [
            "x.fdr",
            "panic-1-2.fdr",
            ".x.fdr.tmp",
            ".x.fdr.tmp-1",
            ".x.fdr.tmp-a-1",
            ".x.txt.tmp-1-1",
            "..x.fdr.tmp-1-1",
            ".x/y.fdr.tmp-1-1",
            ".tmp-x.fdr",
            ".x.fdr.tmp-1-1.keep",
        ] {
            assert_eq!(temp_name_pid(other), None, "{other}");
        }
    }

    #[test]
    fn ids_are_strict() {
        assert!(is_id("20261202T040512.123Z-slow_sched"));
        assert!(is_id(&"a".repeat(MAX_ID_BYTES)));
        for bad in [
            "",
            ".hidden",
            "../victim",
            "a/b",
            "a b",
            "é",
            &"a".repeat(201),
        ] {
            assert!(!is_id(bad), "{bad}");
        }
    }

    #[test]
    fn file_modes_keep_others_out() {
        assert!(check_file_mode(0o600).is_ok());
        assert!(check_file_mode(0o640).is_ok());
        for bad in [0o400, 0o660, 0o606, 0o4600, 0o200] {
            assert!(check_file_mode(bad).is_err(), "{bad:o}");
        }
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o640), 0o750);
        assert_eq!(dir_mode(0o644), 0o755);
    }
}
