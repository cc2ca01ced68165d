//! Spools: unnamed temporary files that a flight snapshot is copied into at the disk's pace,
//! so that the recorder's snapshot is released before a client, however slow, reads it.
//!
//! A spool is created readable and writable by its owner only (`0600`, less the umask) and
//! never has a name another process could open or replace: on Linux it is an `O_TMPFILE`
//! file of the directory; elsewhere, or on a file system without `O_TMPFILE`, a random name
//! created exclusively (`O_CREAT | O_EXCL`, which never follows a planted symlink) and
//! unlinked at once. It disappears when its handle is dropped, even if the process dies.

use std::fs::File;
use std::io;
use std::path::Path;

/// Tries at creating a random name before giving up.
const NAME_ATTEMPTS: u32 = 16;

/// A new spool in `dir`.
pub(crate) fn create(dir: &Path) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{Mode, OFlags};
        match rustix::fs::open(
            dir,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => return Ok(File::from(fd)),
            // The file system (or an old kernel) has no `O_TMPFILE`.
            Err(e)
                if e == rustix::io::Errno::OPNOTSUPP
                    || e == rustix::io::Errno::ISDIR
                    || e == rustix::io::Errno::INVAL => {}
            Err(e) => return Err(e.into()),
        }
    }
    create_named(dir)
}

/// A spool made with a random name, created exclusively and unlinked at once.
fn create_named(dir: &Path) -> io::Result<File> {
    use std::hash::BuildHasher;
    for attempt in 0..NAME_ATTEMPTS {
        let random = std::collections::hash_map::RandomState::new().hash_one((
            std::process::id(),
            attempt,
            std::time::SystemTime::now(),
        ));
        let path = dir.join(format!(".fdr-admin-spool-{random:016x}"));
        match create_exclusive(&path) {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{NAME_ATTEMPTS} random spool names were all taken"),
    ))
}

/// Creates `path`, which must not exist (not even as a symlink), for the owner only.
fn create_exclusive(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("fdr-admin-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn check(file: File, dir: &Path) {
        let mut file = file;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "a spool others can read: {mode:o}");
        }
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "a spool has a name"
        );
        file.write_all(b"spooled bytes").unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut back = String::new();
        file.read_to_string(&mut back).unwrap();
        assert_eq!(back, "spooled bytes");
    }

    #[test]
    fn a_spool_is_private_and_nameless() {
        let d = dir("tmpfile");
        check(create(&d).unwrap(), &d);
        let d2 = dir("named");
        check(create_named(&d2).unwrap(), &d2);
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&d2);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_never_followed() {
        let d = dir("symlink");
        let victim = d.join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let planted = d.join("planted");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let e = create_exclusive(&planted).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_why() {
        let e = create(Path::new("/nonexistent/fdr-admin-spool")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}
