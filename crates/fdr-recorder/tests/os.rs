//! The OS view on real threads (Linux): OS samples and stacks of long scopes, symbolized with
//! fdr-symbolize; run-queue wait of a preempted thread; stack captures of threads in a
//! system call, exiting, or never captured before. (Own test binary: one recorder, one
//! configuration, for every test here.)
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

mod common;
#[path = "os/legacy_codec.rs"]
mod legacy_codec;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Once;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use fdr_format::{Batch, Decoder, EventKind, SampleCause, Tables};
use fdr_recorder::os::OsConfig;
use fdr_recorder::task::FdrFutureExt;
use fdr_recorder::{Config, FlightConfig};
use fdr_symbolize::{Options, Symbolizer};

use common::{gettid, wait_until_asleep};

fn start() {
    static START: Once = Once::new();
    START.call_once(|| {
        fdr_recorder::start(Config {
            flight: Some(FlightConfig {
                min_age: Duration::from_secs(600),
                max_bytes: 16 << 20,
            }),
            os: Some(OsConfig {
                scan_interval: Duration::from_millis(2),
                periodic_interval: Duration::from_millis(20),
                stack_every: Duration::from_millis(15),
                ..OsConfig::default()
            }),
            ..Config::default()
        })
        .expect("recorder starts");
        // The sampler reads the modules' unwind tables before its first scan; on a slow
        // host that can take longer than a test's long scope.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !fdr_recorder::os::stats().running && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(fdr_recorder::os::stats().running, "the sampler started");
    });
}

/// Polls `fut` once on the calling thread (the test's futures finish in one poll).
fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = pin!(fut);
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// An OS sample, with its time.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ns: f64,
    cause: SampleCause,
    cpu_ns: u64,
    runq_ns: u64,
    state: Option<u8>,
    /// The thread that recorded it.
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "read by the tokio worker's test only")
    )]
    by: u32,
}

/// What a dump says about threads, by name.
#[derive(Default)]
struct View {
    tables: Tables,
    ids: BTreeMap<String, u32>,
    samples: BTreeMap<u32, Vec<Sample>>,
    stacks: BTreeMap<u32, Vec<(SampleCause, Vec<u64>)>>,
    /// (start ns, end ns) of each poll, per thread.
    polls: BTreeMap<u32, Vec<(f64, f64)>>,
}

fn dump() -> View {
    let mut bytes = Vec::new();
    fdr_recorder::flight()
        .write_to(&mut bytes)
        .expect("snapshot");
    let mut v = View::default();
    let mut d = Decoder::new(&bytes[..]).expect("header");
    let mut open_poll: BTreeMap<u32, f64> = BTreeMap::new();
    while let Some(b) = d.next_batch() {
        match b.expect("batch") {
            Batch::Table(t) => v.tables.apply(&t).expect("table"),
            Batch::Events(b) => {
                let tps = v.tables.clock().expect("a clock sync").ticks_per_sec;
                for e in b.events() {
                    let e = e.expect("event");
                    let ns = e.ts as f64 * 1e9 / tps;
                    match e.kind {
                        EventKind::OsSample {
                            thread,
                            cause,
                            cpu_ns,
                            runq_ns,
                            state,
                            ..
                        } => v.samples.entry(thread.0).or_default().push(Sample {
                            ns,
                            cause,
                            cpu_ns: cpu_ns.expect("on-CPU time"),
                            runq_ns: runq_ns.expect("run-queue wait"),
                            state,
                            by: b.thread.0,
                        }),
                        EventKind::Stack {
                            thread,
                            cause,
                            frames,
                            ..
                        } => v
                            .stacks
                            .entry(thread.0)
                            .or_default()
                            .push((cause, frames.iter().collect())),
                        EventKind::PollStart { .. } => {
                            open_poll.insert(b.thread.0, ns);
                        }
                        EventKind::PollEnd { .. } => {
                            if let Some(s) = open_poll.remove(&b.thread.0) {
                                v.polls.entry(b.thread.0).or_default().push((s, ns));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    for (id, info) in v.tables.threads() {
        v.ids.insert(info.name.clone(), id.0);
    }
    v
}

impl View {
    fn id(&self, name: &str) -> u32 {
        *self
            .ids
            .get(name)
            .unwrap_or_else(|| panic!("no thread {name}"))
    }

    /// The long-scope sample of thread `id` inside its poll and the scope-end sample after
    /// it: (long scope, scope end, the poll).
    fn long_scope(&self, id: u32) -> (Sample, Sample, (f64, f64)) {
        let poll = *self.polls[&id].last().expect("a poll");
        let s = &self.samples[&id];
        let at = s
            .iter()
            .position(|x| x.cause == SampleCause::LongScope && x.ns > poll.0 && x.ns < poll.1)
            .unwrap_or_else(|| panic!("no long-scope sample inside the poll {poll:?}: {s:?}"));
        let end = s[at + 1..]
            .iter()
            .find(|x| x.cause == SampleCause::ScopeEnd)
            .unwrap_or_else(|| panic!("no scope-end sample after {:?}: {s:?}", s[at]));
        assert!(end.ns >= poll.1, "the scope ended with the poll");
        (s[at], *end, poll)
    }
}

/// Runs `work` on a thread named `name` (which stays alive, as a worker would, until the
/// sampler has seen its long scope end), then returns the dump.
fn on_worker(name: &str, work: impl FnOnce() + Send + 'static) -> View {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let t = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            work();
            done.send(()).unwrap();
            let _ = released.recv();
        })
        .unwrap();
    finished.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let v = dump();
        let id = v.id(name);
        let ended = v.samples.get(&id).is_some_and(|s| {
            s.iter()
                .skip_while(|x| x.cause != SampleCause::LongScope)
                .any(|x| x.cause == SampleCause::ScopeEnd)
        });
        if ended || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(release);
    t.join().unwrap();
    v
}

/// The line of `needle` in a source text, 1-based.
fn line_of(text: &str, needle: &str) -> u32 {
    text.lines()
        .position(|l| l.trim() == needle)
        .expect("the line") as u32
        + 1
}

#[test]
fn a_poll_blocked_in_another_module_is_off_cpu_and_its_stack_names_the_line() {
    start();
    let v = on_worker("os-blocking", || {
        let fut = async { legacy_codec::decode_legacy(b"frame", Duration::from_millis(120)) };
        assert!(poll_once(fut.traced("decode request")).is_ready());
    });
    let id = v.id("os-blocking");
    let (long, end, _) = v.long_scope(id);
    assert_eq!(long.state, Some(b'S'), "asleep when seen: {long:?}");
    let wall = end.ns - long.ns;
    let busy = (end.cpu_ns - long.cpu_ns + end.runq_ns - long.runq_ns) as f64;
    assert!(
        busy < wall / 2.0,
        "mostly off-CPU: {busy} ns on or waiting for a CPU of {wall} ns"
    );
    let stacks: Vec<_> = v.stacks[&id]
        .iter()
        .filter(|(c, _)| *c == SampleCause::LongScope)
        .collect();
    assert!(!stacks.is_empty());
    let line = line_of(
        include_str!("os/legacy_codec.rs"),
        legacy_codec::BLOCKING_CALL,
    );
    let mut sym = Symbolizer::new(Options::default());
    for (_, frames) in &stacks {
        let symbolized = sym.symbolize_stack(&v.tables, frames.iter().copied());
        let hit = symbolized.iter().flat_map(|s| &s.frames).any(|f| {
            f.file
                .as_deref()
                .is_some_and(|p| p.ends_with("tests/os/legacy_codec.rs"))
                && f.line == Some(line)
                && f.function
                    .as_deref()
                    .is_some_and(|n| n.contains("decode_legacy"))
        });
        let text: Vec<String> = symbolized.iter().map(|s| s.to_string()).collect();
        if std::env::var_os("FDR_TEST_PRINT").is_some() {
            eprintln!("{}", text.join("\n"));
        }
        assert!(
            hit,
            "no frame at legacy_codec.rs:{line} in\n{}",
            text.join("\n")
        );
    }
}

#[test]
fn a_cpu_bound_poll_is_on_cpu() {
    start();
    let v = on_worker("os-spinning", || {
        let fut = async { legacy_codec::decode_brute_force(b"frame", Duration::from_millis(120)) };
        assert!(poll_once(fut.traced("brute force")).is_ready());
    });
    let id = v.id("os-spinning");
    let (long, end, _) = v.long_scope(id);
    assert_eq!(long.state, Some(b'R'), "running or runnable when seen");
    let wall = end.ns - long.ns;
    let on_cpu = (end.cpu_ns - long.cpu_ns) as f64;
    let runq = (end.runq_ns - long.runq_ns) as f64;
    // A spinning thread is always on a CPU or waiting for one; the sample times and the
    // counters are read a few microseconds apart.
    assert!(
        on_cpu + runq > wall * 0.8,
        "on {on_cpu} ns + waiting {runq} ns of {wall} ns"
    );
    assert!(on_cpu > 0.0);
}

#[test]
fn a_thread_preempted_by_a_busy_sibling_waits_in_the_run_queue() {
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
    start();
    let allowed = sched_getaffinity(None).expect("affinity");
    let cpu = (0..CpuSet::MAX_CPU)
        .find(|&c| allowed.is_set(c))
        .expect("a CPU");
    let mut one = CpuSet::new();
    one.set(cpu);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sibling = {
        let (stop, one) = (stop.clone(), one);
        std::thread::spawn(move || {
            sched_setaffinity(None, &one).expect("pin the sibling");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    let v = on_worker("os-preempted", move || {
        sched_setaffinity(None, &one).expect("pin the worker");
        let fut = async { legacy_codec::decode_brute_force(b"frame", Duration::from_millis(150)) };
        assert!(poll_once(fut.traced("preempted")).is_ready());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    sibling.join().unwrap();
    let id = v.id("os-preempted");
    let (long, end, _) = v.long_scope(id);
    let wall = end.ns - long.ns;
    let runq = (end.runq_ns - long.runq_ns) as f64;
    // Two spinning threads on one CPU share it: each waits for it about half the time.
    assert!(runq > wall * 0.2, "waited {runq} ns of {wall} ns");
}

#[test]
fn every_recorded_thread_gets_periodic_samples() {
    start();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::Builder::new()
        .name("os-idle".into())
        .spawn(move || {
            fdr_recorder::log("os", "registered");
            let _ = rx.recv();
        })
        .unwrap();
    // The sampler takes one every 20 ms: wait (bounded, far beyond any scheduler delay)
    // until the window holds two of the idle thread's.
    let periodic_of = |v: &View| -> Vec<Sample> {
        v.ids
            .get("os-idle")
            .and_then(|id| v.samples.get(id))
            .into_iter()
            .flatten()
            .filter(|s| s.cause == SampleCause::Periodic)
            .copied()
            .collect()
    };
    let t0 = Instant::now();
    let mut v = dump();
    while periodic_of(&v).len() < 2 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
        v = dump();
    }
    drop(tx);
    t.join().unwrap();
    let id = v.id("os-idle");
    let periodic = periodic_of(&v);
    assert!(periodic.len() >= 2, "{periodic:?}");
    assert!(periodic.windows(2).all(|w| w[1].cpu_ns >= w[0].cpu_ns));
    // An idle thread outside any scope is never a long scope.
    assert!(
        v.samples[&id]
            .iter()
            .all(|s| s.cause == SampleCause::Periodic)
    );
    // The modules the stacks need are in the table.
    assert!(v.tables.modules().any(|m| !m.build_id.is_empty()));
}

#[test]
fn a_thread_captured_in_a_system_call_still_sleeps_its_time() {
    start();
    let (tx, rx) = std::sync::mpsc::channel();
    let sleeper = std::thread::spawn(move || {
        fdr_recorder::log("os", "registered");
        tx.send(gettid()).unwrap();
        let t = Instant::now();
        // Long enough that every capture below finds it asleep, however slow the host: 20
        // captures of up to `TRIES` attempts (5 ms each, at most) with 5 ms between them
        // take about 1 s at worst.
        std::thread::sleep(Duration::from_millis(5000));
        t.elapsed()
    });
    let tid = rx.recv().unwrap();
    // Asleep first: until it is, it runs or waits for a CPU, and a capture that needs it to
    // answer the signal can time out on a loaded host.
    assert!(wait_until_asleep(tid), "thread {tid} asleep");
    // A capture that needs the thread to answer the signal gives up after 5 ms; on a
    // loaded host the thread may not get a CPU that soon: such a capture is tried again
    // (at most `TRIES` times), any other error fails the test.
    const TRIES: u32 = 10;
    let (mut captured, mut timed_out) = (0, 0);
    for _ in 0..20 {
        for _ in 0..TRIES {
            match fdr_recorder::os::stack_of(tid) {
                Ok(s) => {
                    // Read from its saved registers (x86_64, code the unwinder can leave
                    // without the frame pointer) or interrupted by the signal: either way
                    // the sleep goes on.
                    assert!(!s.frames.is_empty());
                    captured += 1;
                    break;
                }
                Err(fdr_recorder::os::OsError::Capture { .. }) => timed_out += 1,
                Err(e) => panic!("capture of a sleeping thread failed: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        captured, 20,
        "{timed_out} captures failed and were tried again"
    );
    let slept = sleeper.join().unwrap();
    assert!(
        slept >= Duration::from_millis(5000),
        "the interrupted sleep was resumed to its end, slept {slept:?}"
    );
}

#[test]
fn captures_of_exiting_threads_fail_cleanly_and_are_counted() {
    start();
    let before = fdr_recorder::os::stats();
    let mut outcomes = [0u32; 3];
    for round in 0..200 {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            fdr_recorder::log("os", "short-lived");
            tx.send(gettid()).unwrap();
            // Exit right away, some rounds after a little work.
            if round % 2 == 0 {
                std::hint::black_box(legacy_codec::decode_brute_force(
                    b"x",
                    Duration::from_micros(50),
                ));
            }
        });
        let tid = rx.recv().unwrap();
        match fdr_recorder::os::stack_of(tid) {
            Ok(_) => outcomes[0] += 1,
            Err(fdr_recorder::os::OsError::UnknownThread(_)) => outcomes[1] += 1,
            Err(fdr_recorder::os::OsError::Capture { .. }) => outcomes[2] += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
        t.join().unwrap();
    }
    // Whatever the race's outcome, the process lives on and the handler is still fdr's.
    assert_eq!(outcomes.iter().sum::<u32>(), 200, "{outcomes:?}");
    let after = fdr_recorder::os::stats();
    assert!(after.stacks_unavailable.is_none(), "{after:?}");
    assert_eq!(after.stray_signals, before.stray_signals, "{after:?}");
}

#[test]
fn a_thread_that_never_recorded_is_not_captured() {
    start();
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        tx.send(gettid()).unwrap();
        let _ = done_rx.recv();
    });
    let tid = rx.recv().unwrap();
    assert!(matches!(
        fdr_recorder::os::stack_of(tid),
        Err(fdr_recorder::os::OsError::UnknownThread(t)) if t == tid
    ));
    drop(done_tx);
    t.join().unwrap();
}

/// Captures `tid` (blocked in a call of `function` until the captures are done) `rounds`
/// times; every stack must name `function`, the caller of the blocking call. (A thread
/// blocked in the kernel is read without a signal, from its saved stack pointer: its frame
/// pointer is guessed, and a wrong guess once ended the stack a frame above the blocking
/// call.)
fn every_capture_names(tid: u64, function: &str, rounds: usize) {
    // Once it sleeps (state `S`), it is inside `function`: it blocks nowhere else after it
    // sent its id.
    assert!(wait_until_asleep(tid), "thread {tid} asleep");
    let mut sym = Symbolizer::new(Options::default());
    let tables = dump().tables;
    let (mut stacks, mut attempts) = (0, 0);
    while stacks < rounds {
        attempts += 1;
        assert!(
            attempts <= 50 * rounds,
            "{stacks} stacks in {attempts} captures"
        );
        let s = match fdr_recorder::os::stack_of(tid) {
            Ok(s) => s,
            // The signal's answer can come too late on a loaded host: capture again.
            Err(fdr_recorder::os::OsError::Capture { .. }) => continue,
            Err(e) => panic!("capture of a blocked thread failed: {e}"),
        };
        stacks += 1;
        let symbolized = sym.symbolize_stack(&tables, s.frames.iter().copied());
        let hit = symbolized
            .iter()
            .flat_map(|s| &s.frames)
            .any(|f| f.function.as_deref().is_some_and(|n| n.contains(function)));
        let text: Vec<String> = symbolized.iter().map(|s| s.to_string()).collect();
        assert!(
            hit,
            "stack {stacks} ({}) has no frame of {function}:\n{}",
            if s.interrupted {
                "signalled"
            } else {
                "read while blocked"
            },
            text.join("\n")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_thread_asleep_in_a_known_function_is_captured_with_that_function() {
    start();
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let sleeper = std::thread::spawn(move || {
        fdr_recorder::log("os", "registered");
        tx.send(gettid()).unwrap();
        legacy_codec::poll_device(&stop2)
    });
    every_capture_names(rx.recv().unwrap(), "poll_device", 40);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sleeper.join().unwrap();
}

#[test]
fn a_thread_waiting_on_a_channel_in_a_known_function_is_captured_with_that_function() {
    start();
    let (tx, rx) = std::sync::mpsc::channel();
    let (reply_tx, reply_rx) = std::sync::mpsc::channel::<u32>();
    let waiter = std::thread::spawn(move || {
        fdr_recorder::log("os", "registered");
        tx.send(gettid()).unwrap();
        legacy_codec::await_device_reply(reply_rx)
    });
    every_capture_names(rx.recv().unwrap(), "await_device_reply", 40);
    reply_tx.send(7).unwrap();
    assert_eq!(waiter.join().unwrap(), 7);
}

#[cfg(feature = "tokio")]
#[test]
fn a_tokio_worker_records_its_counters_at_each_park_and_unpark() {
    start();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let t = std::thread::Builder::new()
        .name("os-parking".into())
        .spawn(move || {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_time();
            fdr_recorder::tokio_hooks::instrument(&mut builder);
            let rt = builder.build().expect("runtime");
            rt.block_on(async {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            done.send(()).unwrap();
            let _ = released.recv();
        })
        .unwrap();
    finished.recv().unwrap();
    let v = dump();
    drop(release);
    t.join().unwrap();
    let id = v.id("os-parking");
    let own: Vec<Sample> = v.samples[&id]
        .iter()
        .filter(|s| matches!(s.cause, SampleCause::Park | SampleCause::Unpark))
        .copied()
        .collect();
    // Five sleeps: the worker parked at least five times, and recorded each park and
    // unpark itself, in turn, with counters that only grow.
    let unparks = own
        .iter()
        .filter(|s| s.cause == SampleCause::Unpark)
        .count();
    assert!(unparks >= 5, "{own:?}");
    for s in &own {
        assert_eq!(
            s.by, id,
            "a park sample is recorded by the worker itself: {s:?}"
        );
    }
    for w in own.windows(2) {
        assert_ne!(
            w[0].cause, w[1].cause,
            "parks and unparks alternate: {own:?}"
        );
        assert!(
            w[1].runq_ns >= w[0].runq_ns && w[1].cpu_ns >= w[0].cpu_ns,
            "{own:?}"
        );
    }
}
