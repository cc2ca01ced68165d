//! A trigger that finds the flight recorder busy with another snapshot (a slow admin
//! download holds it) is counted, waits for the recorder and dumps once it is free; one that
//! never gets its snapshot is a failed dump that spends none of its rule's limits, nor the
//! sentinel's. (Own test binary: the recorder is process-wide.)

mod common;

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use fdr_sentinel::{Limits, Retention, Rule, Sentinel, Stat};

/// A writer that blocks at its first write until told to go on, as a client that reads
/// slowly holds a download.
struct Gate {
    started: Option<Sender<()>>,
    open: Option<Receiver<()>>,
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

/// Takes the recorder's snapshot on another thread and holds it until the sender is used
/// or dropped.
fn hold_snapshot() -> (Sender<()>, JoinHandle<u64>) {
    let (open_tx, open_rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut gate = Gate {
            started: Some(started_tx),
            open: Some(open_rx),
        };
        fdr_recorder::flight().write_to(&mut gate).unwrap()
    });
    started_rx.recv().unwrap();
    assert!(
        matches!(
            fdr_recorder::flight().write_to(&mut io::sink()),
            Err(fdr_recorder::Error::SnapshotInProgress)
        ),
        "the snapshot is held"
    );
    (open_tx, holder)
}

/// A rule that always breaches (`process_threads` is at least 1) and may dump once an hour.
fn always() -> Rule {
    Rule::above("always", "process_threads", Stat::Value, 0.0)
        .cooldown(Duration::from_secs(3600))
        .max_dumps(1, Duration::from_secs(3600))
}

#[test]
fn a_trigger_waits_for_a_busy_recorder_and_only_a_written_dump_spends_the_limits() {
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    fdr_recorder::with_region("before the breach", || {});

    // 1. The recorder is busy when the rule fires: the trigger waits, then dumps.
    let (release, holder) = hold_snapshot();
    let dir = common::temp_dir("snapshot-busy");
    let (lines, log) = common::log();
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(10))
        .rule(always())
        .limits(Limits {
            cooldown: Duration::ZERO,
            ..Limits::GLOBAL
        })
        .snapshot_wait(Duration::from_secs(600))
        .dir(&dir, Retention::default())
        .log_with(log)
        .start()
        .unwrap();
    assert!(
        common::wait_for(Duration::from_secs(60), || sentinel.stats().snapshot_waits
            == 1),
        "{:?}",
        sentinel.stats()
    );
    // Longer than the sentinel ever gave up after before.
    std::thread::sleep(Duration::from_millis(1500));
    let stats = sentinel.stats();
    assert_eq!(
        (
            stats.dumps_written,
            stats.dump_failures,
            stats.dumps_pending
        ),
        (0, 0, 1),
        "{stats:?}"
    );
    release.send(()).unwrap();
    holder.join().unwrap();
    assert!(
        common::wait_for(Duration::from_secs(60), || sentinel.stats().dumps_written
            == 1),
        "{:?} {:?}",
        sentinel.stats(),
        lines.lock().unwrap()
    );
    let stats = sentinel.stats();
    assert_eq!(stats.dump_failures, 0, "{stats:?}");
    assert_eq!(stats.snapshot_timeouts, 0, "{stats:?}");
    assert!(
        stats.suppressed_busy > 0,
        "the rule kept breaching: {stats:?}"
    );
    let listing = sentinel.store().list().unwrap();
    let [m] = &listing.incidents[..] else {
        panic!("{listing:?}")
    };
    let mut dump = Vec::new();
    io::Read::read_to_end(&mut sentinel.store().open(&m.id).unwrap(), &mut dump).unwrap();
    assert!(common::region_names(&dump).contains(&"before the breach".to_owned()));
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("another flight-recorder snapshot is being written"),
        "{logged}"
    );
    sentinel.stop();

    // 2. The recorder stays busy past the snapshot wait: a counted failure that spends
    //    neither the rule's cooldown and hourly dump nor the sentinel's (default) cooldown,
    //    so once the recorder is free the rule's next breach dumps.
    let (release, holder) = hold_snapshot();
    let dir = common::temp_dir("snapshot-busy-timeout");
    let (lines, log) = common::log();
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(10))
        .rule(always())
        .snapshot_wait(Duration::from_millis(200))
        .dir(&dir, Retention::default())
        .log_with(log)
        .start()
        .unwrap();
    assert!(
        common::wait_for(Duration::from_secs(60), || sentinel.stats().dump_failures
            >= 1),
        "{:?}",
        sentinel.stats()
    );
    let stats = sentinel.stats();
    assert!(stats.snapshot_timeouts >= 1, "{stats:?}");
    assert_eq!(stats.dumps_written, 0, "{stats:?}");
    release.send(()).unwrap();
    holder.join().unwrap();
    assert!(
        common::wait_for(Duration::from_secs(60), || sentinel.stats().dumps_written
            == 1),
        "{:?} {:?}",
        sentinel.stats(),
        lines.lock().unwrap()
    );
    let logged = lines.lock().unwrap().join("\n");
    assert!(
        logged.contains("the flight recorder was busy with another snapshot for 200ms"),
        "{logged}"
    );
    assert!(
        logged.contains("the rule's limits are not spent"),
        "{logged}"
    );
    // Now written, the limits hold.
    let samples = sentinel.stats().samples;
    assert!(common::wait_for(Duration::from_secs(60), || {
        sentinel.stats().samples > samples + 20
    }));
    assert_eq!(sentinel.stats().dumps_written, 1);
    sentinel.stop();
    std::fs::remove_dir_all(common::temp_dir("snapshot-busy")).ok();
}
