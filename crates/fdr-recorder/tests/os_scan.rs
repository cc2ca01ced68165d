//! The sampler's scans with a scan interval much longer than the long-scope threshold: a
//! scan that finds a thread inside a scope looks again a threshold later, so scopes far
//! shorter than the scan interval are caught, and their stacks taken. (Own test binary:
//! one recorder, one configuration.)
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use fdr_format::{Batch, Decoder, EventKind, SampleCause, Tables};
use fdr_recorder::os::OsConfig;
use fdr_recorder::task::FdrFutureExt;
use fdr_recorder::{Config, FlightConfig};

fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = pin!(fut);
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// The long-scope samples and stacks of the thread named `name` in a dump.
fn long_scopes_of(name: &str) -> (usize, usize) {
    let mut bytes = Vec::new();
    fdr_recorder::flight()
        .write_to(&mut bytes)
        .expect("snapshot");
    let mut tables = Tables::default();
    let mut samples = Vec::new();
    let mut stacks = Vec::new();
    let mut d = Decoder::new(&bytes[..]).expect("header");
    while let Some(b) = d.next_batch() {
        match b.expect("batch") {
            Batch::Table(t) => tables.apply(&t).expect("table"),
            Batch::Events(b) => {
                for e in b.events() {
                    match e.expect("event").kind {
                        EventKind::OsSample { thread, cause, .. } => samples.push((thread, cause)),
                        EventKind::Stack { thread, cause, .. } => stacks.push((thread, cause)),
                        _ => {}
                    }
                }
            }
        }
    }
    let id = tables
        .threads()
        .find(|(_, t)| t.name == name)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no thread {name}"));
    let count = |v: &[(fdr_format::ThreadId, SampleCause)]| {
        v.iter()
            .filter(|(t, c)| *t == id && *c == SampleCause::LongScope)
            .count()
    };
    (count(&samples), count(&stacks))
}

#[test]
fn scopes_shorter_than_the_scan_interval_are_caught_by_the_confirming_look() {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(600),
            max_bytes: 16 << 20,
        }),
        os: Some(OsConfig {
            // Twelve times a poll's length: a scheme that needs two scans inside one silent
            // stretch would never see these polls.
            scan_interval: Duration::from_millis(600),
            ..OsConfig::default()
        }),
        ..Config::default()
    })
    .expect("recorder starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fdr_recorder::os::stats().running && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let worker = std::thread::Builder::new()
        .name("os-scan-worker".into())
        .spawn(|| {
            // Polls of 50 ms back to back for about 4 s: every scan lands inside one, and
            // its confirming look 1 ms later finds it still silent (unless it just ended).
            for _ in 0..80 {
                let fut = async { std::thread::sleep(Duration::from_millis(50)) };
                assert!(poll_once(fut.traced("blocking poll")).is_ready());
            }
        })
        .unwrap();
    worker.join().unwrap();
    let (samples, stacks) = long_scopes_of("os-scan-worker");
    assert!(
        samples >= 2,
        "{samples} long scopes caught in about six scans: {:?}",
        fdr_recorder::os::stats()
    );
    assert!(
        stacks >= 1,
        "{stacks} stacks: {:?}",
        fdr_recorder::os::stats()
    );
}
