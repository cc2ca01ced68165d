//! A capture whose writer is slow (3 ms per write, and stalled while the recorders fill four
//! windows, so the outcome does not hang on how much CPU the recorders got) falls behind on its own: it drops what
//! it cannot keep up with and counts it, in its trace and in `stats()`, while the flight
//! recorder keeps its window and no writer discards an event. (Own test binary: it
//! installs the global recorder.)

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{decode, record_paced};
use fdr_format::LossReason;
use fdr_recorder::{Config, FlightConfig, stats};

const MAX_BYTES: usize = 2 << 20;
/// The recorders' pace, in bytes a second: the writers' free pool (8 chunks of 64 KiB with
/// this ring) lasts them 250 ms, so a collector kept that long off the CPU by a loaded host
/// does not leave a writer short of a chunk.
const RATE: u64 = 2 << 20;

/// A sink that takes 3 ms per write and at most 8 KiB at a time, as a slow socket does, and
/// that stalls until `open` is set (at most a minute), as a peer that stopped reading does.
struct Slow {
    out: Vec<u8>,
    open: Arc<AtomicBool>,
}

impl Write for Slow {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        for _ in 0..60_000 {
            if self.open.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(3));
        let n = b.len().min(8 << 10);
        self.out.extend_from_slice(&b[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lost(reason: LossReason) -> u64 {
    stats().lost_for(reason).events
}

#[test]
fn a_slow_capture_falls_behind_and_never_starves_the_flight_ring() {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(3600),
            max_bytes: MAX_BYTES,
        }),
        ..Config::default()
    })
    .unwrap();
    let discarded_before = lost(LossReason::PoolExhausted);
    let behind_before = lost(LossReason::CaptureBehind);
    let open = Arc::new(AtomicBool::new(false));
    let guard = fdr_recorder::capture(Slow {
        out: Vec::new(),
        open: open.clone(),
    })
    .unwrap();

    // Two threads record at a steady pace (at most `RATE` together; the stalled sink takes
    // nothing) until four windows' worth went by.
    let stop = Arc::new(AtomicBool::new(false));
    let recorders: Vec<_> = (0..2)
        .map(|i| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("busy-{i}"))
                .spawn(move || record_paced("busy", &stop, RATE))
                .unwrap()
        })
        .collect();
    let bytes_before = stats().bytes;
    while stats().bytes < bytes_before + 4 * MAX_BYTES as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The flight recorder meanwhile: its whole window, and no writer short of a chunk.
    let mut dump = Vec::new();
    fdr_recorder::flight().write_to(&mut dump).unwrap();
    stop.store(true, Ordering::Relaxed);
    open.store(true, Ordering::Relaxed);
    for h in recorders {
        h.join().unwrap();
    }
    let s = stats();
    assert_eq!(
        lost(LossReason::PoolExhausted) - discarded_before,
        0,
        "writers discarded because of a slow capture: {s:?}"
    );
    assert!(
        s.ring_bytes >= (MAX_BYTES / 2) as u64,
        "the window shrank beside a slow capture: {s:?}"
    );
    let d = decode(&dump);
    assert!(
        dump.len() >= MAX_BYTES / 2 && d.thread_named("busy-0").is_some(),
        "a {}-byte snapshot of a {MAX_BYTES}-byte window",
        dump.len()
    );
    assert_eq!(d.lost_for(LossReason::PoolExhausted), 0, "{:?}", d.losses);

    // The capture fell behind, counted; it ends as a whole trace that says so.
    let behind = lost(LossReason::CaptureBehind) - behind_before;
    assert!(behind > 0, "the capture kept up with a 3 ms writer? {s:?}");
    let trace = guard.stop().expect("the capture ends cleanly").out;
    let c = decode(&trace);
    let recorded_behind = c.lost_for(LossReason::CaptureBehind);
    assert!(
        recorded_behind > 0 && recorded_behind <= behind,
        "the trace's capture-behind records: {recorded_behind} of {behind} counted"
    );
    assert_eq!(c.lost_for(LossReason::PoolExhausted), 0, "{:?}", c.losses);
    assert!(c.thread_named("busy-1").is_some());
    // Another capture may start.
    drop(fdr_recorder::capture(Vec::new()).unwrap());
}
