//! Streaming capture end to end, alongside the flight recorder. (Own test binary.)

mod common;

use common::{Ev, decode};
use fdr_recorder::{Config, Error};

#[test]
fn capture_streams_events_of_live_and_exited_threads() {
    fdr_recorder::start(Config::default()).unwrap();
    let guard = fdr_recorder::capture(Vec::new()).unwrap();
    assert!(matches!(
        fdr_recorder::capture(Vec::new()),
        Err(Error::CaptureInProgress)
    ));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("cap-{i}"))
                .spawn(|| {
                    for _ in 0..50_000 {
                        fdr_recorder::with_region("cap-work", || ());
                    }
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    fdr_recorder::with_region("main-live", || fdr_recorder::log!("c", "{}", "live"));
    // The flight recorder runs alongside.
    let mut dump = Vec::new();
    fdr_recorder::flight().write_to(&mut dump).unwrap();
    let trace = guard.stop().unwrap();
    let d = decode(&trace);
    for i in 0..2 {
        let w = d
            .thread_named(&format!("cap-{i}"))
            .expect("exited thread in capture");
        let begins = w
            .iter()
            .filter(|e| e.1 == Ev::Begin("cap-work".into()))
            .count();
        assert_eq!(begins, 50_000);
        assert_eq!(w.last().unwrap().1, Ev::ThreadEnd);
        assert!(w.windows(2).all(|p| p[0].0 <= p[1].0));
    }
    let main = d
        .thread_named("capture_streams_events_of_live_and_exited_threads")
        .expect("live thread's committed events at stop");
    assert!(
        main.iter()
            .any(|e| e.1 == Ev::Log("c".into(), "live".into()))
    );
    assert!(d.losses.is_empty(), "{:?}", d.losses);
    assert!(decode(&dump).thread_named("cap-1").is_some());
    // A new capture may start once the first stopped.
    let g2 = fdr_recorder::capture(Vec::new()).unwrap();
    drop(g2);

    // Repeatedly: threads that start right after `capture()` returns, fill a chunk or more
    // and exit at once (their chunks drained before or as the collector begins the capture)
    // are in the capture whole.
    for round in 0..20 {
        let guard = fdr_recorder::capture(Vec::new()).unwrap();
        let workers: Vec<_> = (0..4)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("burst-{round}-{i}"))
                    .spawn(|| {
                        for _ in 0..20_000 {
                            fdr_recorder::with_region("burst", || ());
                        }
                    })
                    .unwrap()
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let d = decode(&guard.stop().unwrap());
        assert!(d.losses.is_empty(), "round {round}: {:?}", d.losses);
        for i in 0..4 {
            let name = format!("burst-{round}-{i}");
            let begins = d.thread_named(&name).map_or(0, |w| {
                w.iter()
                    .filter(|e| e.1 == Ev::Begin("burst".into()))
                    .count()
            });
            assert_eq!(begins, 20_000, "round {round}, {name}");
        }
    }
}
