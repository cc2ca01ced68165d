//! A full disk or a failing store is logged and counted, never a crash, never a half-written
//! incident visible; the sentinel keeps sampling. (Each test in its own process: the recorder is
//! process-wide.)
//!
//! The full disk is a real one: a 256 KiB tmpfs mounted for the test. It needs root (CI runs
//! as root); without it the test fails, saying why.

use crate::common;

use std::io::{self, Read};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fdr_sentinel::{
    DirStore, DumpFn, IncidentMeta, IncidentStore, Limits, Listing, Retention, Rule, Sentinel,
    Stat, StoreError,
};

/// A store that fails every other put, and panics on the others.
struct Broken(Arc<AtomicU32>);

impl IncidentStore for Broken {
    fn put(&self, _: &IncidentMeta, dump: &mut DumpFn<'_>) -> Result<IncidentMeta, StoreError> {
        if self.0.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            dump(&mut io::sink()).map_err(|e| StoreError::Other(e.to_string()))?;
            Err(StoreError::Other("the bucket said 503".into()))
        } else {
            panic!("a store bug");
        }
    }
    fn list(&self) -> Result<Listing, StoreError> {
        Ok(Listing::default())
    }
    fn open(&self, id: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        Err(StoreError::NotFound(id.into()))
    }
}

fn always() -> Rule {
    // `process_threads` is at least 1: a rule that always breaches.
    Rule::above("always", "process_threads", Stat::Value, 0.0)
        .cooldown(Duration::ZERO)
        .max_dumps(1000, Duration::from_secs(3600))
}

fn no_global_limit() -> Limits {
    Limits {
        cooldown: Duration::ZERO,
        max_dumps: 1000,
        ..Limits::GLOBAL
    }
}

#[test]
fn failures_are_counted_and_logged_and_the_sentinel_carries_on() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    let puts = Arc::new(AtomicU32::new(0));
    let (lines, log) = common::log();
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(10))
        .rule(always())
        .limits(no_global_limit())
        .store(Broken(puts.clone()))
        .log_with(log)
        .start()
        .unwrap();
    assert!(common::wait_for(Duration::from_secs(20), || {
        sentinel.stats().dump_failures >= 4
    }));
    let stats = sentinel.stats();
    assert_eq!(stats.dumps_written, 0);
    let samples = stats.samples;
    assert!(common::wait_for(Duration::from_secs(10), || {
        sentinel.stats().samples > samples + 5
    }));
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("the dump failed: incident store: the bucket said 503"),
        "{logged}"
    );
    assert!(
        logged.contains("the dump failed: incident store: the store panicked"),
        "{logged}"
    );
    sentinel.stop();

    full_disk();
}

/// Mounts a 256 KiB tmpfs at `dir`, or fails the test saying why it could not.
fn mount_small_tmpfs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir)
        .output();
    let why = match out {
        Ok(o) if o.status.success() => return,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        Err(e) => e.to_string(),
    };
    panic!(
        "the full-disk case needs a real full disk: a 256 KiB tmpfs, which this process could \
         not mount at {} (run the tests as root, as CI does): mount: {why}",
        dir.display()
    );
}

fn full_disk() {
    let dir = common::temp_dir("full-disk");
    mount_small_tmpfs(&dir);
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _unmount = Unmount(&dir);

    // A ring well over the disk's 256 KiB.
    for i in 0..400_000u32 {
        fdr_recorder::with_region(if i % 2 == 0 { "fill" } else { "more" }, || {});
    }
    let (lines, log) = common::log();
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(10))
        .rule(always())
        .limits(no_global_limit())
        .dir(&dir, Retention::default())
        .log_with(log)
        .start()
        .unwrap();
    assert!(common::wait_for(Duration::from_secs(20), || {
        sentinel.stats().dump_failures >= 2
    }));
    let stats = sentinel.stats();
    assert_eq!(stats.dumps_written, 0, "{stats:?}");
    assert!(stats.dump_failures_no_space >= 2, "{stats:?}");
    // Nothing visible, nothing left behind to fill the disk further.
    let listing = sentinel.store().list().unwrap();
    assert!(listing.incidents.is_empty() && listing.unreadable.is_empty());
    sentinel.stop();
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let logged = lines.lock().unwrap().join("\n");
    assert!(logged.contains("No space left on device"), "{logged}");

    // With room again (a small ring: a fresh store on the same disk), dumps are written.
    let store = DirStore::new(&dir, Retention::default()).unwrap();
    let meta = common::meta("after", 1, None);
    store
        .put(&meta, &mut |out| out.write_all(&[1; 1000]).map(|()| 1000))
        .unwrap();
    assert_eq!(store.list().unwrap().incidents.len(), 1);
    drop(store);
    std::fs::remove_file(dir.join("after.fdr")).unwrap();
    std::fs::remove_file(dir.join("after.json")).unwrap();

    room_is_made_before_each_dump(&dir, meta);
}

/// Incidents that fill the disk within their `max_bytes`: before each dump the oldest make
/// room for it, so dumps go on being written. (Writing first and pruning after, the fourth
/// dump found the disk full, and so did every later one: nothing was ever pruned.)
fn room_is_made_before_each_dump(dir: &Path, meta: IncidentMeta) {
    // 70 KiB dumps are 18 pages of the disk's 64, their sidecars one each: three incidents
    // fit, and a fourth dump does not fit beside them.
    const DUMP_BYTES: usize = 70 << 10;
    let store = DirStore::new(
        dir,
        Retention {
            max_count: 20,
            max_bytes: 3 * DUMP_BYTES as u64,
        },
    )
    .unwrap();
    for i in 0..8u64 {
        let meta = IncidentMeta {
            id: format!("incident-{i}"),
            time_unix_ms: 10 + i,
            ..meta.clone()
        };
        let put = store.put(&meta, &mut |out| {
            out.write_all(&[7; DUMP_BYTES]).map(|()| DUMP_BYTES as u64)
        });
        if let Err(e) = put {
            panic!("dump {i}: {e}");
        }
    }
    let ids: Vec<_> = store
        .list()
        .unwrap()
        .incidents
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["incident-7", "incident-6", "incident-5"]);
}
