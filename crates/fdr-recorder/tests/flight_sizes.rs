//! Every flight-recorder size the configuration check accepts works, from one chunk to the
//! largest: threads record while snapshots are taken, every snapshot decodes, and the last
//! one accounts for every event the threads recorded (decoded, or counted lost or aged out
//! in a loss record). Sizes outside the bounds are refused with an error naming them, and
//! the running configuration stays. (Own test binary: it reconfigures the global recorder.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Decoded, decode};
use fdr_recorder::{
    CHUNK_BYTES, Config, ConfigError, Error, FlightConfig, MAX_FLIGHT_BYTES, MIN_FLIGHT_BYTES,
};

const WORKERS: usize = 3;
/// Regions per worker: about two chunks each, so the small rings wrap many times.
const REGIONS: u64 = 30_000;

/// Both tests reconfigure the process's recorder: they take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn config(max_bytes: usize) -> Config {
    Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(3600),
            max_bytes,
        }),
        ..Config::default()
    }
}

fn snapshot() -> Decoded {
    let mut buf = Vec::new();
    let n = fdr_recorder::flight().write_to(&mut buf).unwrap();
    assert_eq!(n, buf.len() as u64);
    decode(&buf)
}

/// Events lost or aged out that the trace puts on thread 0 (threads wholly gone).
fn gone(d: &Decoded) -> u64 {
    d.losses.iter().filter(|l| l.0 == 0).map(|l| l.2).sum()
}

fn worker(recorded: &AtomicU64) {
    let mut events = 2; // thread start and end, recorded by the recorder itself
    for i in 0..REGIONS {
        let _r = fdr_recorder::region("size-region");
        events += 2;
        if i % 64 == 0 {
            fdr_recorder::log!("size", "i={}", i);
            events += 1;
        }
    }
    recorded.fetch_add(events, Ordering::Relaxed);
}

/// Starts a flight recorder of `max_bytes`, records on several threads while snapshots
/// run, and checks the last snapshot's accounting.
fn run(max_bytes: usize) {
    fdr_recorder::start(config(max_bytes)).unwrap_or_else(|e| panic!("max_bytes {max_bytes}: {e}"));
    assert_eq!(
        fdr_recorder::flight().config().map(|c| c.max_bytes),
        Some(max_bytes)
    );
    let gone_before = gone(&snapshot());
    let recorded = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let snapshots = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            // At least one snapshot while the workers record, then until they are done.
            while n == 0 || !done.load(Ordering::Relaxed) {
                snapshot();
                n += 1;
            }
            n
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let recorded = recorded.clone();
            std::thread::Builder::new()
                .name(format!("size-{max_bytes}-{i}"))
                .spawn(move || worker(&recorded))
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(snapshots.join().unwrap() > 0);

    let d = snapshot();
    let prefix = format!("size-{max_bytes}-");
    let ids: Vec<u32> = d
        .names
        .iter()
        .filter(|(_, n)| n.starts_with(&prefix))
        .map(|(id, _)| *id)
        .collect();
    let decoded: u64 = ids
        .iter()
        .map(|id| d.threads.get(id).map_or(0, |t| t.len() as u64))
        .sum();
    let lost_on_threads: u64 = d
        .losses
        .iter()
        .filter(|l| ids.contains(&l.0))
        .map(|l| l.2)
        .sum();
    let gone_now = gone(&d) - gone_before;
    let total = recorded.load(Ordering::Relaxed);
    let stats = fdr_recorder::stats();
    assert_eq!(
        decoded + lost_on_threads + gone_now,
        total,
        "max_bytes {max_bytes}: decoded {decoded} + lost on the threads {lost_on_threads} \
         + threads gone {gone_now} != recorded {total}; losses {:?}, stats {stats:?}",
        d.losses
    );
    assert!(
        stats.ring_bytes <= (max_bytes / CHUNK_BYTES * CHUNK_BYTES) as u64,
        "max_bytes {max_bytes}: {stats:?}"
    );
}

#[test]
fn every_accepted_flight_size_records_snapshots_and_accounts() {
    let _serial = serial();
    let sizes = [
        MIN_FLIGHT_BYTES,
        MIN_FLIGHT_BYTES + 1,
        100 << 10,
        2 * CHUNK_BYTES,
        3 * CHUNK_BYTES,
        4 * CHUNK_BYTES,
        7 * CHUNK_BYTES,
        512 << 10,
        960 << 10,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + CHUNK_BYTES,
        4 << 20,
        MAX_FLIGHT_BYTES,
    ];
    // Rising sizes: chunks are never freed, so each size starts with no more than its
    // budget allocated.
    for max_bytes in sizes {
        run(max_bytes);
    }
}

#[test]
fn a_flight_size_outside_the_bounds_is_refused_by_name_and_changes_nothing() {
    let _serial = serial();
    // A setting of its own, which the refused ones must leave alone.
    fdr_recorder::start(config(2 << 20)).unwrap();
    for max_bytes in [0, 1, MIN_FLIGHT_BYTES - 1, MAX_FLIGHT_BYTES + 1, usize::MAX] {
        match fdr_recorder::start(config(max_bytes)) {
            Err(Error::Config(why)) => {
                assert_eq!(
                    why,
                    ConfigError::FlightMaxBytes {
                        max_bytes,
                        min: MIN_FLIGHT_BYTES,
                        max: MAX_FLIGHT_BYTES,
                        chunk_bytes: CHUNK_BYTES,
                    }
                );
                let msg = why.to_string();
                assert!(
                    msg.contains(&max_bytes.to_string())
                        && msg.contains(&MIN_FLIGHT_BYTES.to_string())
                        && msg.contains(&MAX_FLIGHT_BYTES.to_string()),
                    "{msg}"
                );
            }
            other => panic!("max_bytes {max_bytes} accepted: {other:?}"),
        }
        assert_eq!(
            fdr_recorder::flight().config().map(|c| c.max_bytes),
            Some(2 << 20),
            "a refused configuration changed the running one"
        );
    }
}
