//! The facade's `tokio-unstable-hooks` feature (with `--cfg tokio_unstable`, as
//! `cargo xtask ci` builds it): `fdr::tokio::instrument_with` sees plain `tokio::spawn` tasks
//! without wrapping and still runs the application's own task hooks. (Own test binary: it
//! starts the global recorder.)
#![cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fdr_format::{Batch, Decoder, EventKind, Tables};

#[test]
fn plain_tokio_tasks_are_seen_and_the_applications_task_hooks_still_run() {
    fdr::start(fdr::Config {
        flight: Some(fdr::FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 8 << 20,
        }),
        ..fdr::Config::default()
    })
    .unwrap();
    let spawned = Arc::new(AtomicUsize::new(0));
    let s = spawned.clone();
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2);
    fdr::tokio::instrument_with(
        &mut b,
        fdr::tokio::UserHooks::new().on_task_spawn(move |_| {
            s.fetch_add(1, Ordering::Relaxed);
        }),
    );
    let rt = b.build().unwrap();
    let site = format!("{}:{}", file!(), line!() + 1);
    let h = rt.spawn(async { tokio::task::yield_now().await });
    rt.block_on(h).unwrap();
    drop(rt);
    assert!(spawned.load(Ordering::Relaxed) >= 1);

    let mut bytes = Vec::new();
    fdr::flight().write_to(&mut bytes).unwrap();
    let mut d = Decoder::new(&bytes[..]).unwrap();
    let mut tables = Tables::new();
    let mut created = None;
    let mut polls = Vec::new();
    let mut drops = Vec::new();
    while let Some(b) = d.next_batch() {
        match b.unwrap() {
            Batch::Table(t) => tables.apply(&t).unwrap(),
            Batch::Events(b) => {
                for e in b.events() {
                    match e.unwrap().kind {
                        EventKind::TaskCreate { task, site: s, .. } => {
                            let at = tables
                                .site(s)
                                .map(|s| format!("{}:{}", s.file, s.line))
                                .unwrap_or_default();
                            if at == site {
                                created = Some(task);
                            }
                        }
                        EventKind::PollStart { task } => polls.push(task),
                        EventKind::TaskDrop { task } => drops.push(task),
                        _ => {}
                    }
                }
            }
        }
    }
    let task = created.expect("the plain tokio task's creation, with its spawn site");
    assert_ne!(task.0 & fdr::tokio::TOKIO_TASK_ID_BIT, 0);
    let polled = polls.iter().filter(|t| **t == task).count();
    assert!(polled >= 2, "yield_now means a second poll: {polled}");
    assert!(drops.contains(&task));
}
