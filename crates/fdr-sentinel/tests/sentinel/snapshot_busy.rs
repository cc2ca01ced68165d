//! Downloads that hold every snapshot slot they may have never cost an incident: the
//! sentinel's dump takes an incident snapshot at once. A trigger that finds every incident
//! slot taken is counted, waits for one and dumps once it is free; one that never gets its
//! snapshot is a failed dump that spends none of its rule's limits, nor the sentinel's.
//! (Each test in its own process: the recorder is process-wide.)

use crate::common;

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

/// Held snapshots: dropping it (or using a sender) lets them go on.
struct Held {
    release: Vec<Sender<()>>,
    holders: Vec<JoinHandle<()>>,
}

impl Held {
    fn release(self) {
        drop(self.release);
        for h in self.holders {
            h.join().unwrap();
        }
    }
}

/// Takes snapshots on other threads (incident snapshots or plain `write_to` ones, as a
/// download takes) until the recorder refuses one, and holds them all.
fn hold_every_slot(incident: bool) -> Held {
    let mut held = Held {
        release: Vec::new(),
        holders: Vec::new(),
    };
    loop {
        let (open_tx, open_rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut gate = Gate {
                started: Some(started_tx),
                open: Some(open_rx),
            };
            let flight = fdr_recorder::flight();
            let r = if incident {
                flight.write_incident_to(&mut gate)
            } else {
                flight.write_to(&mut gate)
            };
            let _ = done_tx.send(r.map(|_| ()));
        });
        if started_rx.recv().is_err() {
            // Refused before writing a byte: every slot is held.
            assert!(matches!(
                done_rx.recv().unwrap(),
                Err(fdr_recorder::Error::SnapshotInProgress)
            ));
            holder.join().unwrap();
            return held;
        }
        held.release.push(open_tx);
        held.holders.push(holder);
        assert!(held.holders.len() < 64, "snapshots are never refused");
    }
}

/// A rule that always breaches (`process_threads` is at least 1) and may dump once an hour.
fn always() -> Rule {
    Rule::above("always", "process_threads", Stat::Value, 0.0)
        .cooldown(Duration::from_secs(3600))
        .max_dumps(1, Duration::from_secs(3600))
}

#[test]
fn a_trigger_waits_for_a_busy_recorder_and_only_a_written_dump_spends_the_limits() {
    if fdr_test_support::isolated::ran_in_child() {
        return;
    }
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    fdr_recorder::with_region("before the breach", || {});

    // 0. Downloads hold every slot they may have: the dump does not even wait.
    let downloads = hold_every_slot(false);
    let dir = common::temp_dir("snapshot-downloads");
    let sentinel = Sentinel::builder()
        .interval(Duration::from_millis(10))
        .rule(always())
        .dir(&dir, Retention::default())
        .start()
        .unwrap();
    common::wait_for_stats(&sentinel, Duration::from_secs(60), None, |s| {
        s.dumps_written == 1
    });
    assert_eq!(sentinel.stats().snapshot_waits, 0, "{:?}", sentinel.stats());
    sentinel.stop();
    downloads.release();
    std::fs::remove_dir_all(&dir).ok();

    // 1. Every incident slot is taken when the rule fires: the trigger waits, then dumps.
    let held = hold_every_slot(true);
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
    common::wait_for_stats(&sentinel, Duration::from_secs(60), None, |s| {
        s.snapshot_waits == 1
    });
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
    held.release();
    common::wait_for_stats(&sentinel, Duration::from_secs(60), Some(&lines), |s| {
        s.dumps_written == 1
    });
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
        logged.contains("every incident snapshot slot of the flight recorder is taken"),
        "{logged}"
    );
    sentinel.stop();

    // 2. The recorder stays busy past the snapshot wait: a counted failure that spends
    //    neither the rule's cooldown and hourly dump nor the sentinel's (default) cooldown,
    //    so once the recorder is free the rule's next breach dumps.
    let held = hold_every_slot(true);
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
    common::wait_for_stats(&sentinel, Duration::from_secs(60), None, |s| {
        s.dump_failures >= 1
    });
    let stats = sentinel.stats();
    assert!(stats.snapshot_timeouts >= 1, "{stats:?}");
    assert_eq!(stats.dumps_written, 0, "{stats:?}");
    held.release();
    common::wait_for_stats(&sentinel, Duration::from_secs(60), Some(&lines), |s| {
        s.dumps_written == 1
    });
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
