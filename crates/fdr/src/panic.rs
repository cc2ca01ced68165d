//! The emergency dump: write the flight recorder when the process panics.

use std::path::PathBuf;

/// Installs a panic hook that writes the flight recorder to
/// `dir/panic-<pid>-<unix seconds>.fdr` (through a temporary file and a rename, so no
/// half-written dump is ever visible), prints where, then runs the hook that was installed
/// before. Only the first panic dumps; a failing dump is reported on stderr and never
/// hides the panic. Does nothing without the `record` feature.
pub fn dump_on_panic(dir: impl Into<PathBuf>) {
    #[cfg(feature = "record")]
    imp::install(dir.into());
    #[cfg(not(feature = "record"))]
    let _ = dir.into();
}

#[cfg(feature = "record")]
mod imp {
    use std::fs;
    use std::io::{BufWriter, Write};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    static DUMPED: AtomicBool = AtomicBool::new(false);

    pub(super) fn install(dir: PathBuf) {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DUMPED.swap(true, Ordering::SeqCst) {
                match dump(&dir) {
                    Ok(path) => eprintln!("fdr: flight recorder dumped to {}", path.display()),
                    Err(e) => eprintln!("fdr: could not dump the flight recorder: {e}"),
                }
            }
            previous(info);
        }));
    }

    fn dump(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
        fs::create_dir_all(dir)?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!("panic-{}-{secs}.fdr", std::process::id());
        let tmp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(name);
        let mut out = BufWriter::new(fs::File::create(&tmp)?);
        let written = crate::flight().write_to(&mut out);
        let synced = out.flush().map_err(Into::into).and_then(|()| {
            out.get_ref()
                .sync_all()
                .map_err(Box::<dyn std::error::Error>::from)
        });
        if let Err(e) = written
            .map_err(Box::<dyn std::error::Error>::from)
            .and(synced)
        {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path)?;
        Ok(path)
    }
}
