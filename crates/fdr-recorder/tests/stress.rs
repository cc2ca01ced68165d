//! S2: threads start and exit while others record and a snapshot runs every 10 ms; at the
//! end, every recorded event is either decoded from the final snapshot or counted lost in
//! it, exactly, and memory stayed within the budget. (Own test binary.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::decode;
use fdr_recorder::{CHUNK_BYTES, Config, FlightConfig};

const MAX_BYTES: usize = 2 << 20;
const CONCURRENT: usize = 3;

fn worker(n: u64, recorded: &AtomicU64) {
    let _t = fdr_recorder::task("stress-task");
    let mut events = 2; // task begin and end
    for i in 0..n {
        let _r = fdr_recorder::region("stress-region");
        events += 2;
        if i % 16 == 0 {
            fdr_recorder::log("stress", "tick");
            events += 1;
        }
        if i % 97 == 0 {
            fdr_recorder::log!("stress", "i={}", i);
            events += 1;
        }
    }
    drop(_t);
    // Thread start and end are recorded by the recorder itself.
    recorded.fetch_add(events + 2, Ordering::Relaxed);
}

fn run(duration: Duration) {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(3600),
            max_bytes: MAX_BYTES,
        }),
        // The count is of the workers' events: no sampler recording beside them.
        os: None,
        metrics_interval: None,
        ..Config::default()
    })
    .unwrap();
    let recorded = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let snapshots = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            let mut buf = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                buf.clear();
                fdr_recorder::flight().write_to(&mut buf).unwrap();
                // Every snapshot decodes on its own, whatever the writers are doing.
                decode(&buf);
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };
    let deadline = Instant::now() + duration;
    let mut spawned = 0u64;
    let mut peak_allocated = 0;
    while Instant::now() < deadline {
        let handles: Vec<_> = (0..CONCURRENT)
            .map(|k| {
                let recorded = recorded.clone();
                let n = 2_000 + (spawned + k as u64) % 7 * 5_000;
                std::thread::spawn(move || worker(n, &recorded))
            })
            .collect();
        spawned += CONCURRENT as u64;
        for h in handles {
            h.join().unwrap();
        }
        peak_allocated = peak_allocated.max(fdr_recorder::stats().chunks_allocated);
    }
    stop.store(true, Ordering::Relaxed);
    let snaps = snapshots.join().unwrap();
    assert!(snaps > 0);

    let mut buf = Vec::new();
    fdr_recorder::flight().write_to(&mut buf).unwrap();
    let d = decode(&buf);
    let total = recorded.load(Ordering::Relaxed);
    let decoded = d.events() as u64;
    let lost = d.lost_events();
    let stats = fdr_recorder::stats();
    assert_eq!(
        decoded + lost,
        total,
        "recorded {total} = decoded {decoded} + lost {lost}? losses {:?}, stats {stats:?}",
        d.losses
    );
    let discarded = stats.lost_for(fdr_format::LossReason::PoolExhausted).events;
    assert_eq!(stats.events + discarded, total, "{stats:?}");
    assert!(
        stats.aged_out_events() > 0,
        "the ring never wrapped: {stats:?}"
    );
    // F2: ring and pool within max_bytes; one chunk per live thread; 5% headroom (>= 2).
    let peak_threads = (CONCURRENT + 2) as u64;
    let max_chunks = (MAX_BYTES / CHUNK_BYTES) as u64;
    let budget = max_chunks + peak_threads + (max_chunks / 20).max(2);
    assert!(
        peak_allocated.max(stats.chunks_allocated) <= budget,
        "allocated {peak_allocated} chunks, budget {budget}"
    );
    assert!(stats.ring_bytes <= MAX_BYTES as u64);
    println!("stress: {spawned} threads, {snaps} snapshots, {total} events, {stats:?}");
}

#[test]
fn stress_short() {
    run(Duration::from_secs(2));
}

#[test]
#[ignore = "S2's 60 s run: cargo test -p fdr-recorder --release --test stress -- --ignored"]
fn stress_60s() {
    run(Duration::from_secs(60));
}
