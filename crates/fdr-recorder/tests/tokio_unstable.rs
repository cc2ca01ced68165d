//! tokio's unstable task hooks (feature `tokio-unstable-hooks`, `--cfg tokio_unstable`):
//! plain `tokio::spawn` tasks are seen without wrapping. `cargo xtask ci` runs this with
//! the cfg set. (Own test binary: it installs the global recorder.)
#![cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]

mod common;
mod events;

use events::{Ev, dump, start_recorder};
use fdr_recorder::tokio_hooks::TOKIO_TASK_ID_BIT;

#[test]
fn plain_tokio_tasks_are_created_polled_and_dropped() {
    start_recorder();
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2);
    fdr_recorder::tokio_hooks::instrument(&mut b);
    let rt = b.build().unwrap();
    let site = format!("{}:{}", file!(), line!() + 1);
    let h = rt.spawn(async {
        fdr_recorder::log("inside", "plain-task");
        tokio::task::yield_now().await;
    });
    rt.block_on(h).unwrap();
    drop(rt);

    let d = dump();
    let task = d
        .all()
        .find_map(|(_, e)| match e {
            Ev::Create { task, site: s, .. } if *s == site => Some(*task),
            _ => None,
        })
        .expect("the spawn, with its site");
    assert_ne!(task & TOKIO_TASK_ID_BIT, 0);
    // The log sits inside a poll of the task, on the polling thread.
    let (_, evs) = d
        .thread_with(|e| *e == Ev::Log("inside".into(), "plain-task".into()))
        .expect("the log");
    let r = evs
        .iter()
        .position(|e| *e == Ev::Log("inside".into(), "plain-task".into()))
        .unwrap();
    let poll = evs[..r]
        .iter()
        .rposition(|e| matches!(e, Ev::PollStart(_)))
        .unwrap();
    assert_eq!(evs[poll], Ev::PollStart(task));
    let polls = d.all().filter(|(_, e)| **e == Ev::PollStart(task)).count();
    assert!(polls >= 2, "yield_now means a second poll: {polls}");
    assert!(d.all().any(|(_, e)| *e == Ev::Drop(task)));
}
