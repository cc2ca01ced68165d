//! Snapshots side by side: a snapshot whose writer stalls (a download nobody reads) neither
//! blocks the incident snapshots the sentinel and the panic dump take, nor holds the chunks
//! the writers need; the bounds on snapshots at once refuse with a clear error, and an
//! incident snapshot is never refused because of other snapshots. (Own test binary: it
//! installs the global recorder.)

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{decode, record_paced};
use fdr_format::LossReason;
use fdr_recorder::{
    Config, Error, FlightConfig, MAX_INCIDENT_SNAPSHOTS, MAX_SNAPSHOTS, flight, stats,
};

const MAX_BYTES: usize = 2 << 20;
/// The recorders' pace, in bytes a second: the writers' free pool (8 chunks of 64 KiB with
/// this ring) lasts them 250 ms, so a collector kept that long off the CPU by a loaded host
/// does not leave a writer short of a chunk.
const RATE: u64 = 2 << 20;

/// Starts the recorder once and runs the tests one at a time.
fn start() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    static START: std::sync::Once = std::sync::Once::new();
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    START.call_once(|| {
        fdr_recorder::start(Config {
            flight: Some(FlightConfig {
                min_age: Duration::from_secs(3600),
                max_bytes: MAX_BYTES,
            }),
            ..Config::default()
        })
        .map(drop)
        .unwrap()
    });
    g
}

/// A writer that stops at its first write until released, as a client that stopped
/// reading a download does; then it keeps what it is given.
struct Stalled {
    entered: Option<Sender<()>>,
    release: Receiver<()>,
    bytes: Vec<u8>,
}

impl Write for Stalled {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(tx) = self.entered.take() {
            let _ = tx.send(());
            let _ = self.release.recv();
        }
        self.bytes.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type Stall = (Sender<()>, JoinHandle<(Result<u64, Error>, Vec<u8>)>);

/// Starts a snapshot (an incident one if `incident`) into a stalled writer on its own
/// thread and waits until it is stalled in its first write (it has pinned the window
/// then). Send on the returned sender to let it go on.
fn stalled_snapshot(incident: bool) -> Stall {
    let (entered_tx, entered) = channel();
    let (release_tx, release) = channel();
    let handle = std::thread::spawn(move || {
        let mut w = Stalled {
            entered: Some(entered_tx),
            release,
            bytes: Vec::new(),
        };
        let r = if incident {
            flight().write_incident_to(&mut w)
        } else {
            flight().write_to(&mut w)
        };
        (r, w.bytes)
    });
    entered.recv().expect("the snapshot reached its writer");
    (release_tx, handle)
}

/// Threads that record at a steady pace (at most `RATE` together) until told to stop;
/// returns the events they recorded.
fn recorders(n: usize, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<u64>> {
    (0..n)
        .map(|i| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("recorder-{i}"))
                .spawn(move || record_paced("steady", &stop, RATE))
                .unwrap()
        })
        .collect()
}

fn discarded() -> u64 {
    stats().lost_for(LossReason::PoolExhausted).events
}

#[test]
fn a_stalled_snapshot_blocks_no_incident_snapshot_and_holds_no_chunk_writers_need() {
    let _serial = start();
    // Fill the window, so the stalled snapshot pins a full ring.
    let stop = Arc::new(AtomicBool::new(false));
    let warm = recorders(2, &stop);
    while stats().ring_bytes < (MAX_BYTES / 2) as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    warm.into_iter().for_each(|h| drop(h.join()));

    let discarded_before = discarded();
    let released_before = stats().snapshot_chunks_released;
    let (release, download) = stalled_snapshot(false);

    // Writers record two windows' worth while the download is stalled.
    let stop = Arc::new(AtomicBool::new(false));
    let recording = recorders(2, &stop);
    let bytes_before = stats().bytes;
    while stats().bytes < bytes_before + 2 * MAX_BYTES as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The incident snapshot (the sentinel's, the panic dump's) and another user snapshot
    // run beside the stalled one, while the writers go on.
    let mut incident = Vec::new();
    let n = flight()
        .write_incident_to(&mut incident)
        .expect("the incident snapshot beside a stalled download");
    assert_eq!(n, incident.len() as u64);
    let d = decode(&incident);
    assert!(
        d.thread_named("recorder-0").is_some() && d.thread_named("recorder-1").is_some(),
        "{:?}",
        d.names
    );
    let mut other = Vec::new();
    flight()
        .write_to(&mut other)
        .expect("a second write_to beside a stalled one");
    decode(&other);
    stop.store(true, Ordering::Relaxed);
    let recorded: u64 = recording.into_iter().map(|h| h.join().unwrap()).sum();

    let s = stats();
    // The writers never went short of a chunk: the stalled snapshot's chunks went back to
    // them as they left the window.
    assert_eq!(
        discarded() - discarded_before,
        0,
        "writers discarded while a snapshot was stalled ({recorded} events recorded): {s:?}"
    );
    assert!(
        s.snapshot_chunks_released > released_before,
        "the stalled snapshot gave back the chunks that left the window: {s:?}"
    );
    // The window kept its size: the ring's share of max_bytes (at most a quarter of it is
    // the writers' free pool), in whole chunks nearly full.
    assert!(
        s.ring_bytes >= (MAX_BYTES / 2) as u64,
        "the window shrank while a snapshot was stalled: {s:?}"
    );
    assert!(
        incident.len() >= MAX_BYTES / 2,
        "the incident snapshot holds {} bytes of a {MAX_BYTES}-byte window",
        incident.len()
    );

    // Let the download go on: it ends as a whole trace, the chunks it gave back written as
    // aged-out (ring overwrite) records.
    release.send(()).unwrap();
    let (r, bytes) = download.join().unwrap();
    assert_eq!(
        r.expect("the stalled snapshot finishes"),
        bytes.len() as u64
    );
    let d = decode(&bytes);
    let aged = d.lost_for(LossReason::RingOverwrite);
    assert!(aged > 0, "{:?}", d.losses);
    assert_eq!(d.lost_for(LossReason::PoolExhausted), 0, "{:?}", d.losses);
}

#[test]
fn snapshots_past_the_bound_are_refused_but_never_an_incident_one_because_of_them() {
    let _serial = start();
    fdr_recorder::with_region("bound", || ());
    let refused_before = stats().snapshots_refused;
    // As many stalled `write_to` snapshots as are allowed at once.
    let stalled: Vec<Stall> = (0..MAX_SNAPSHOTS)
        .map(|_| stalled_snapshot(false))
        .collect();
    assert_eq!(stats().snapshots_running, MAX_SNAPSHOTS as u64);
    match flight().write_to(&mut Vec::new()) {
        Err(e @ Error::SnapshotInProgress) => {
            assert!(e.to_string().contains("retry"), "{e}");
        }
        other => panic!("one write_to past the bound: {other:?}"),
    }
    assert_eq!(stats().snapshots_refused, refused_before + 1);
    // An incident snapshot still runs beside them.
    let mut incident = Vec::new();
    flight()
        .write_incident_to(&mut incident)
        .expect("an incident snapshot beside the most write_to snapshots at once");
    decode(&incident);
    // Incident snapshots have their own bound.
    let stalled_incidents: Vec<Stall> = (0..MAX_INCIDENT_SNAPSHOTS)
        .map(|_| stalled_snapshot(true))
        .collect();
    assert!(matches!(
        flight().write_incident_to(&mut Vec::new()),
        Err(Error::SnapshotInProgress)
    ));
    assert_eq!(stats().snapshots_refused, refused_before + 2);
    for (release, h) in stalled.into_iter().chain(stalled_incidents) {
        release.send(()).unwrap();
        let (r, bytes) = h.join().unwrap();
        assert_eq!(r.unwrap(), bytes.len() as u64);
        decode(&bytes);
    }
    assert_eq!(stats().snapshots_running, 0);
    // Once they are done, snapshots are taken again.
    flight().write_to(&mut Vec::new()).unwrap();
}
