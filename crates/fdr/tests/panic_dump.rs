//! A panic dumps the flight recorder as an incident of the sentinel's directory store: each
//! test runs this binary again as a child that panics, then reads what it left with a
//! `DirStore`, as the sentinel and the admin endpoint do. (Without `record` there is no
//! recorder to dump.)
#![cfg(feature = "record")]

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use fdr_sentinel::{DirStore, IncidentMeta, IncidentStore, Retention};

/// Set in a child: the directory to dump into.
const CHILD_DIR: &str = "FDR_PANIC_DUMP_CHILD_DIR";

/// Runs the test `name` of this binary as a child dumping into `dir`.
fn child(name: &str, dir: &Path) -> Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the child must fail: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The child's directory, when this process is a child.
fn child_dir() -> Option<PathBuf> {
    std::env::var_os(CHILD_DIR).map(PathBuf::from)
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fdr-panic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The incidents a directory store opened on `dir` lists, oldest first.
fn incidents(dir: &Path) -> (DirStore, Vec<IncidentMeta>) {
    let store = DirStore::new(dir, Retention::default()).unwrap();
    let listing = store.list().unwrap();
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    let mut incidents = listing.incidents;
    incidents.reverse();
    (store, incidents)
}

/// The region names in an incident's dump.
fn regions(store: &DirStore, id: &str) -> Vec<String> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut store.open(id).unwrap(), &mut bytes).unwrap();
    fdr_test_support::trace::decode(&bytes).region_names()
}

#[test]
fn a_panic_leaves_an_incident_the_directory_store_lists_and_keeps() {
    if let Some(dir) = child_dir() {
        fdr::start(fdr::Config::default()).unwrap();
        fdr::dump_on_panic(&dir);
        let _task = fdr::task("doomed request");
        let _r = fdr::region("last words");
        panic!("injected failure");
    }
    let dir = fresh_dir("incident");
    let out = child(
        "a_panic_leaves_an_incident_the_directory_store_lists_and_keeps",
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("injected failure"),
        "the previous hook still reports: {stderr}"
    );
    assert!(stderr.contains("flight recorder dumped to"), "{stderr}");
    // A store opened on the directory (a restarted service's sentinel) lists it and keeps
    // it: the dump and its sidecar, nothing else.
    let (store, incidents) = incidents(&dir);
    let [m] = &incidents[..] else {
        panic!("{incidents:?} in {:?}", names(&dir))
    };
    assert_eq!(
        names(&dir),
        [format!("{}.fdr", m.id), format!("{}.json", m.id)]
    );
    assert!(
        m.id.ends_with(&format!("Z-panic-{}", out_pid(&stderr))),
        "{}",
        m.id
    );
    assert_eq!(m.rule, "panic");
    assert!(
        m.condition.starts_with("panic at crates/fdr/tests/panic_dump.rs:")
            && m.condition.ends_with("on thread 'a_panic_leaves_an_incident_the_directory_store_lists_and_keeps': injected failure"),
        "{}",
        m.condition
    );
    assert_eq!(regions(&store, &m.id), ["last words"]);
    drop(store);
    // Opened again, it is still there.
    assert_eq!(self::incidents(&dir).1.len(), 1);
    // The sidecar says more than a listing shows.
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{}.json", m.id))).unwrap())
            .unwrap();
    assert_eq!(sidecar["panic"]["message"], "injected failure");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child's pid, from the path the hook printed (`...Z-panic-PID.fdr`).
fn out_pid(stderr: &str) -> u32 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("fdr: flight recorder dumped to"))
        .unwrap();
    let tail = line.rsplit("-panic-").next().unwrap();
    tail.trim_end_matches(".fdr").parse().unwrap()
}

#[test]
fn every_panic_dumps_up_to_the_limit_and_the_rest_are_counted() {
    if let Some(dir) = child_dir() {
        fdr::start(fdr::Config::default()).unwrap();
        fdr::PanicDump::new(&dir)
            .max_dumps(2, Duration::from_secs(3600))
            .install();
        for (i, region) in ["first", "second", "third"].into_iter().enumerate() {
            let worker = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    let _r = fdr::region(region);
                    panic!("worker {i} failed");
                })
                .unwrap();
            assert!(worker.join().is_err());
        }
        eprintln!("stats: {:?}", fdr::panic_dump_stats());
        panic!("the last straw");
    }
    let dir = fresh_dir("every");
    let out = child(
        "every_panic_dumps_up_to_the_limit_and_the_rest_are_counted",
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (_, incidents) = incidents(&dir);
    let conditions: Vec<_> = incidents.iter().map(|m| m.condition.as_str()).collect();
    assert_eq!(conditions.len(), 2, "{conditions:?}\n{stderr}");
    assert!(
        conditions[0].ends_with("on thread 'worker-0': worker 0 failed"),
        "{conditions:?}"
    );
    assert!(
        conditions[1].ends_with("on thread 'worker-1': worker 1 failed"),
        "{conditions:?}"
    );
    assert!(
        stderr.contains("stats: PanicDumpStats { written: 2, failed: 0, skipped: 1, warnings: 0 }"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "fdr: flight recorder not dumped for this panic: 2 panic dumps within 3600s already"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A writer that blocks at its first write until told to go on, as a client that reads
/// slowly holds a download.
struct Gate {
    started: Option<mpsc::Sender<()>>,
    open: Option<mpsc::Receiver<()>>,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(started) = self.started.take() {
            let _ = started.send(());
        }
        if let Some(open) = self.open.take() {
            let _ = open.recv();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_while_another_snapshot_is_written_still_dumps() {
    if let Some(dir) = child_dir() {
        fdr::start(fdr::Config::default()).unwrap();
        fdr::dump_on_panic(&dir);
        fdr::with_region("before the download", || {});
        // Downloads hold every snapshot slot they may have and never let go.
        let mut held = 0;
        loop {
            let (open_tx, open_rx) = mpsc::channel::<()>();
            let (started_tx, started_rx) = mpsc::channel();
            let (done_tx, done_rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut gate = Gate {
                    started: Some(started_tx),
                    open: Some(open_rx),
                };
                let _ = done_tx.send(fdr::flight().write_to(&mut gate).map(|_| ()));
            });
            if started_rx.recv().is_err() {
                // Refused before writing a byte: every slot is held.
                let refused = done_rx.recv().unwrap().unwrap_err();
                assert!(refused.is_snapshot_in_progress(), "{refused}");
                break;
            }
            std::mem::forget(open_tx);
            held += 1;
            assert!(held < 64, "downloads are never refused");
        }
        panic!("failed during a download");
    }
    let dir = fresh_dir("busy");
    let out = child(
        "a_panic_while_another_snapshot_is_written_still_dumps",
        &dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flight recorder dumped to"), "{stderr}");
    let (store, incidents) = incidents(&dir);
    let [m] = &incidents[..] else {
        panic!("{incidents:?}\n{stderr}")
    };
    assert!(
        m.condition.ends_with("failed during a download"),
        "{}",
        m.condition
    );
    assert!(regions(&store, &m.id).contains(&"before the download".to_owned()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn planted_symlinks_are_never_followed_files_are_private_and_an_open_directory_warns() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    const VICTIM: &str = "FDR_PANIC_DUMP_VICTIM";
    if let Some(dir) = child_dir() {
        let victim = std::env::var_os(VICTIM).unwrap();
        // Symlinks at every name the hook could write first: the temporary names of the
        // dump and its sidecar, and the one an earlier version used for the next seconds.
        let pid = std::process::id();
        for n in 0..8 {
            for ext in ["fdr", "json"] {
                symlink(&victim, dir.join(format!(".panic.{ext}.tmp-{pid}-{n}"))).unwrap();
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for secs in now..now + 30 {
            symlink(&victim, dir.join(format!(".panic-{pid}-{secs}.fdr.tmp"))).unwrap();
        }
        fdr::start(fdr::Config::default()).unwrap();
        fdr::dump_on_panic(&dir);
        eprintln!("stats: {:?}", fdr::panic_dump_stats());
        panic!("planted");
    }
    let base = fresh_dir("symlinks");
    let dir = base.join("incidents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let victim = base.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "planted_symlinks_are_never_followed_files_are_private_and_an_open_directory_warns",
            "--nocapture",
        ])
        .env(CHILD_DIR, &dir)
        .env(VICTIM, &victim)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("flight recorder dumped to"), "{stderr}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{stderr}");
    assert!(
        stderr.contains("is writable by others (mode 0o777)") && stderr.contains("warnings: 1 }"),
        "{stderr}"
    );
    let (_, incidents) = incidents(&dir);
    let [m] = &incidents[..] else {
        panic!("{incidents:?}\n{stderr}")
    };
    for ext in ["fdr", "json"] {
        let meta = std::fs::symlink_metadata(dir.join(format!("{}.{ext}", m.id))).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{ext}");
    }
    let _ = std::fs::remove_dir_all(&base);
}
