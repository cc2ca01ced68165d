//! The flight recorder end to end: events recorded on live and exited threads appear in a
//! snapshot, decoded, in per-thread order. (Own test binary: it installs the global recorder.)

mod common;

use std::time::Duration;

use common::{Ev, decode};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
static START: std::sync::Once = std::sync::Once::new();

/// Starts the recorder once for this binary and runs tests one at a time.
fn start() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    START.call_once(common::start_flight);
    g
}

#[test]
fn snapshot_holds_live_and_exited_threads_in_order() {
    let _serial = start();
    assert!(fdr_recorder::enabled());
    let _t = fdr_recorder::task("main-task");
    {
        let _r = fdr_recorder::region("main-region");
        fdr_recorder::log("cat", "static message");
        fdr_recorder::log!("cat", "formatted {}", 42);
    }
    let workers: Vec<_> = (0..3)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    for n in 0..20_000u32 {
                        fdr_recorder::with_region("work", || {
                            if n % 1000 == 0 {
                                fdr_recorder::log!("w", "n={}", n);
                            }
                        });
                    }
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut dump = Vec::new();
    let n = fdr_recorder::flight().write_to(&mut dump).unwrap();
    assert_eq!(n, dump.len() as u64);
    let d = decode(&dump);

    let main = d
        .thread_named("snapshot_holds_live_and_exited_threads_in_order")
        .expect("main thread");
    let evs: Vec<_> = main.iter().map(|e| e.1.clone()).collect();
    assert_eq!(evs[0], Ev::ThreadStart);
    assert!(matches!(&evs[1], Ev::TaskBegin(t, 0, n) if *t != 0 && n == "main-task"));
    assert_eq!(evs[2], Ev::Begin("main-region".into()));
    assert_eq!(evs[3], Ev::Log("cat".into(), "static message".into()));
    assert_eq!(evs[4], Ev::Log("cat".into(), "formatted 42".into()));
    assert_eq!(evs[5], Ev::End("main-region".into()));

    for i in 0..3 {
        let w = d
            .thread_named(&format!("worker-{i}"))
            .unwrap_or_else(|| panic!("exited worker kept: {:?} {:?}", d.names, d.threads.keys()));
        assert_eq!(w.first().unwrap().1, Ev::ThreadStart);
        assert_eq!(
            w.last().unwrap().1,
            Ev::ThreadEnd,
            "worker {i}: {} events, losses {:?}, batches {}",
            w.len(),
            d.losses,
            d.batches
        );
        let begins = w.iter().filter(|e| e.1 == Ev::Begin("work".into())).count();
        let ends = w.iter().filter(|e| e.1 == Ev::End("work".into())).count();
        assert_eq!((begins, ends), (20_000, 20_000));
        let logs = w
            .iter()
            .filter(|e| matches!(&e.1, Ev::Log(c, _) if c == "w"))
            .count();
        assert_eq!(logs, 20);
        assert!(w.windows(2).all(|p| p[0].0 <= p[1].0), "per-thread order");
    }
    assert!(d.losses.is_empty(), "nothing lost: {:?}", d.losses);

    // The ring is not cleared: a second snapshot holds the same workers.
    let mut again = Vec::new();
    fdr_recorder::flight().write_to(&mut again).unwrap();
    let d2 = decode(&again);
    assert!(d2.thread_named("worker-2").is_some());
    let s = fdr_recorder::stats();
    assert!(s.events >= 3 * 40_000, "{s:?}");
}

/// Every length the hot path chooses (one- and two-byte deltas and names, and the longer
/// ones its slow path takes), through `region!` and `region(&str)`, decodes to the names
/// recorded, in order, with timestamps that follow the gaps.
#[test]
fn region_encodings_of_every_length_decode() {
    let _serial = start();
    // Names with ids past 32 and past 4,096 (two- and three-byte operands).
    let names: Vec<&'static str> = (0..4200)
        .map(|i| &*Box::leak(format!("enc-{i}").into_boxed_str()))
        .collect();
    for n in &names {
        fdr_recorder::intern(n);
    }
    let picks = [0usize, 31, 40, 1000, 4150];
    let gaps_us = [0u64, 1, 5, 400, 3000];
    let spin = |us: u64| {
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_micros(us) {
            std::hint::spin_loop();
        }
    };
    let worker = std::thread::Builder::new()
        .name("encodings".into())
        .spawn(move || {
            for &gap in &gaps_us {
                for &p in &picks {
                    let _r = fdr_recorder::region(names[p]);
                    spin(gap);
                }
                let _s = fdr_recorder::region!("enc-static");
                spin(gap);
            }
        })
        .unwrap();
    worker.join().unwrap();
    let mut dump = Vec::new();
    fdr_recorder::flight().write_to(&mut dump).unwrap();
    let d = decode(&dump);
    let evs: Vec<_> = d
        .thread_named("encodings")
        .expect("the thread's events")
        .iter()
        .filter(|(_, e)| matches!(e, Ev::Begin(_) | Ev::End(_)))
        .cloned()
        .collect();
    let mut want = Vec::new();
    for _ in gaps_us {
        for p in picks {
            want.push(Ev::Begin(format!("enc-{p}")));
            want.push(Ev::End(format!("enc-{p}")));
        }
        want.push(Ev::Begin("enc-static".into()));
        want.push(Ev::End("enc-static".into()));
    }
    assert_eq!(evs.iter().map(|e| e.1.clone()).collect::<Vec<_>>(), want);
    // The longest gap (3 ms) shows in the decoded timestamps of the last regions.
    let cal = fdr_recorder::calibrate();
    let last = &evs[evs.len() - 2..];
    let ns = (last[1].0 - last[0].0) as f64 / cal.ticks_per_sec * 1e9;
    assert!(ns >= 2_900_000.0, "a 3 ms region decoded as {ns} ns");
}

#[test]
fn static_logs_of_every_operand_length_decode_in_order() {
    let _serial = start();
    // Interned in order, so the picks' ids reach past 32 (two-byte category operands), 64
    // (two-byte message operands) and 4,096 (past two bytes: the long path).
    let names: Vec<&'static str> = (0..5000)
        .map(|k| &*Box::leak(format!("static-log-name-{k}").into_boxed_str()))
        .collect();
    for n in &names {
        fdr_recorder::intern(n);
    }
    let picks = [0usize, 31, 40, 70, 200, 4500, 4999];
    let mut want = Vec::new();
    for &c in &picks {
        for &m in &picks {
            want.push(Ev::Log(names[c].into(), names[m].into()));
        }
    }
    let logged = names.clone();
    std::thread::Builder::new()
        .name("static-logs".into())
        .spawn(move || {
            for (k, (&c, &m)) in picks
                .iter()
                .flat_map(|c| picks.iter().map(move |m| (c, m)))
                .enumerate()
            {
                fdr_recorder::log(logged[c], logged[m]);
                // Deltas past one byte too.
                if k % 3 == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
    let mut dump = Vec::new();
    fdr_recorder::flight().write_to(&mut dump).unwrap();
    let d = decode(&dump);
    let got: Vec<Ev> = d
        .thread_named("static-logs")
        .expect("the logging thread")
        .iter()
        .map(|e| e.1.clone())
        .filter(|e| matches!(e, Ev::Log(..)))
        .collect();
    assert_eq!(got, want);
}
