//! The live cost meter and the budget: under a synthetic overload (a thread polling a task
//! that wakes itself, flat out) fdr's share of the process's CPU goes over the budget, the
//! meter sheds the task's wakes and short polls, the trace says so and records none of them
//! while shed, and full detail comes back when the load stops. While shed, a long poll and
//! a short poll with a region inside are still recorded whole, as a full trace has them.
//! (Own test binary: it installs the global recorder.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use fdr_format::{Batch, Decoder, EventKind, Tables, TaskId};
use fdr_recorder::cost::{self, Detail, Role};
use fdr_recorder::task::FdrFutureExt;
use fdr_recorder::{Config, FlightConfig};

/// A future that wakes itself and stays pending: each poll is a poll start, a wake and a
/// poll end.
struct Spin;

impl Future for Spin {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// How long the probe's long poll spins.
const LONG_POLL: Duration = Duration::from_millis(5);

/// The probe's tasks.
struct Probed {
    long: TaskId,
    inner: TaskId,
    short: TaskId,
    outer: TaskId,
    nested: TaskId,
}

impl Probed {
    fn has(&self, t: TaskId) -> bool {
        [self.long, self.inner, self.short, self.outer, self.nested].contains(&t)
    }

    fn label(&self, t: TaskId, what: &str) -> String {
        let who = if t == self.long {
            "long"
        } else if t == self.inner {
            "inner"
        } else if t == self.outer {
            "outer"
        } else if t == self.nested {
            "nested"
        } else {
            "short"
        };
        format!("{who} {what}")
    }
}

fn last_is(events: &[(u64, String)], label: &str) -> bool {
    events.last().is_some_and(|e| e.1 == label)
}

/// Polls, once each, a task whose poll spins for [`LONG_POLL`], a short one with a region
/// inside, a short empty one, and one whose poll polls a task that spins.
fn probe_polls(cx: &mut Context<'_>) -> Probed {
    let mut long = Box::pin(
        async {
            let t = Instant::now();
            while t.elapsed() < LONG_POLL {
                std::hint::spin_loop();
            }
        }
        .traced("probe-long"),
    );
    let mut inner = Box::pin(
        async {
            let _r = fdr_recorder::region!("probe-inner");
        }
        .traced("probe-inner"),
    );
    let mut short = Box::pin(async {}.traced("probe-short"));
    // A task whose poll polls a long task inside it: both recorded, nested.
    let nested = async {
        let t = Instant::now();
        while t.elapsed() < LONG_POLL {
            std::hint::spin_loop();
        }
    }
    .traced("probe-nested");
    let nested_id = nested.id();
    let mut outer = Box::pin(nested.traced("probe-outer"));
    let ids = Probed {
        long: long.id(),
        inner: inner.id(),
        short: short.id(),
        outer: outer.id(),
        nested: nested_id,
    };
    assert!(long.as_mut().poll(cx).is_ready());
    assert!(inner.as_mut().poll(cx).is_ready());
    assert!(short.as_mut().poll(cx).is_ready());
    assert!(outer.as_mut().poll(cx).is_ready());
    ids
}

/// Waits (bounded: the test fails after a minute, a limit no working meter comes near)
/// until `f` holds.
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{what}: not after a minute; meter: {:?}",
            cost::cost()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn over_budget_wakes_and_polls_are_shed_and_restored_when_the_load_falls() {
    assert!(cost::set_budget(0.0).is_err(), "a zero budget is refused");
    assert!(cost::set_budget(1.5).is_err(), "over 100% is refused");
    assert!(cost::set_budget(f64::NAN).is_err());
    assert_eq!(cost::cost().budget, cost::DEFAULT_BUDGET, "nothing changed");
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(600),
            max_bytes: 64 << 20,
        }),
        metrics_interval: Some(Duration::from_millis(20)),
        ..Config::default()
    })
    .expect("recorder starts");
    // 5%: the overload's events cost several times that; the meter's own thread, at this
    // short interval, well under it.
    cost::set_budget(0.05).expect("budget");
    assert_eq!(cost::detail(), Detail::Full);

    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let probe = Arc::new(AtomicBool::new(false));
    let probe2 = probe.clone();
    let (probe_tx, probe_rx) = std::sync::mpsc::channel();
    let (tx, rx) = std::sync::mpsc::channel();
    let load = std::thread::Builder::new()
        .name("overload".into())
        .spawn(move || {
            let mut task = Box::pin(Spin.traced("spin"));
            tx.send(task.id()).unwrap();
            let waker = Waker::from(Arc::new(Noop));
            let mut cx = Context::from_waker(&waker);
            let mut polls = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let _ = task.as_mut().poll(&mut cx);
                polls += 1;
                // Once asked, and until one attempt runs wholly while polls are shed: a
                // long (CPU-heavy) poll, a short poll with a region inside, a short one.
                if probe2.load(Ordering::Relaxed) && cost::detail() == Detail::NoPolls {
                    let ids = probe_polls(&mut cx);
                    if cost::detail() == Detail::NoPolls {
                        probe2.store(false, Ordering::Relaxed);
                        probe_tx.send(ids).unwrap();
                    }
                }
            }
            polls
        })
        .unwrap();
    let spin = rx.recv().unwrap();

    wait_for("shed to no polls", || cost::detail() == Detail::NoPolls);
    let shed = cost::cost();
    assert!(shed.sheds >= 1, "{shed:?}");
    // (That it shed over budget is read from the trace below: `shed.share` is the last
    // interval's, which after a further tick is a shed interval's.)
    probe.store(true, Ordering::Relaxed);
    let probed = probe_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("probe polls run while shed");
    // Keep the overload on for a few intervals while shed.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let polls = load.join().unwrap();
    assert!(polls > 0);
    wait_for("restored to full detail", || cost::detail() == Detail::Full);

    let c = cost::cost();
    assert!(c.restores >= 1, "{c:?}");
    assert!(c.per_event_ns > 0.0 && c.per_event_ns.is_finite(), "{c:?}");
    assert!(c.thread_cpu_ns_of(Role::Metrics) > 0, "{c:?}");
    assert!(c.thread_cpu_ns_of(Role::Collector) > 0, "{c:?}");
    assert!(c.process_cpu_ns >= c.threads_cpu_ns(), "{c:?}");
    assert!(c.events > 0 && c.recording_cpu_ns > 0, "{c:?}");

    // The trace: the level samples go up to 2 and back to 0, a log says each change, and
    // between the first level-2 sample and the next lower one the spinning task recorded no
    // event but those of the poll that was deciding when the level changed (its start, its
    // wake).
    let mut bytes = Vec::new();
    fdr_recorder::flight().write_to(&mut bytes).unwrap();
    let mut d = Decoder::new(&bytes[..]).unwrap();
    let mut tables = Tables::new();
    let (mut levels, mut shares) = (Vec::new(), Vec::new());
    let (mut spin_events, mut logs) = (Vec::new(), Vec::new());
    // The probe tasks' polls and the inner region, in the order recorded.
    let mut probe_events = Vec::new();
    while let Some(b) = d.next_batch() {
        match b.expect("batch") {
            Batch::Table(t) => tables.apply(&t).unwrap(),
            Batch::Events(b) => {
                for e in b.events() {
                    let e = e.expect("event");
                    match e.kind {
                        EventKind::PollStart { task } if probed.has(task) => {
                            probe_events.push((e.ts, probed.label(task, "start")))
                        }
                        EventKind::PollEnd { task, .. } if probed.has(task) => {
                            probe_events.push((e.ts, probed.label(task, "end")))
                        }
                        // The probed inner task's region (an attempt that ran with full
                        // detail recorded one too, after its own, unprobed, task's start).
                        EventKind::RegionBegin { name }
                            if tables.name(name) == "probe-inner"
                                && last_is(&probe_events, "inner start") =>
                        {
                            probe_events.push((e.ts, "region begin".into()))
                        }
                        EventKind::RegionEnd { name }
                            if tables.name(name) == "probe-inner"
                                && last_is(&probe_events, "region begin") =>
                        {
                            probe_events.push((e.ts, "region end".into()))
                        }
                        EventKind::Metric { name, value }
                            if tables.name(name) == "fdr_cost_shed_level" =>
                        {
                            levels.push((e.ts, value));
                        }
                        EventKind::Metric { name, value }
                            if tables.name(name) == "fdr_cost_share" =>
                        {
                            shares.push((e.ts, value));
                        }
                        EventKind::PollStart { task } if task == spin => {
                            spin_events.push((e.ts, "start"))
                        }
                        EventKind::PollEnd { task, .. } if task == spin => {
                            spin_events.push((e.ts, "end"))
                        }
                        EventKind::Wake { task, .. } if task == spin => {
                            spin_events.push((e.ts, "wake"))
                        }
                        EventKind::Log { category, .. } if tables.name(category) == "fdr.cost" => {
                            logs.push(e.ts)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    levels.sort_by_key(|l| l.0);
    let up = levels
        .iter()
        .position(|l| l.1 == 2.0)
        .unwrap_or_else(|| panic!("no level-2 sample in {levels:?}"));
    let down = levels[up..]
        .iter()
        .position(|l| l.1 < 2.0)
        .map(|i| up + i)
        .unwrap_or_else(|| panic!("no lower sample after level 2 in {levels:?}"));
    assert!(
        levels[down..].iter().any(|l| l.1 == 0.0),
        "back to full detail: {levels:?}"
    );
    let (from, to) = (levels[up].0, levels[down].0);
    // The tick that shed to level 2 samples the level at the switch, then the share of the
    // interval it judged: over budget.
    shares.sort_by_key(|s| s.0);
    let judged = shares
        .iter()
        .find(|s| s.0 >= from)
        .unwrap_or_else(|| panic!("no share sample after the level-2 one at {from}: {shares:?}"));
    assert!(
        judged.1 > 0.05,
        "shed over budget: share {} at {}; levels {levels:?}",
        judged.1,
        judged.0
    );
    assert!(
        spin_events.iter().any(|e| e.0 < from && e.1 == "wake"),
        "wakes recorded before shedding"
    );
    // While shed the spinning task's wakes are not recorded, nor its polls but those that
    // were long (on a loaded host a thread preempted mid-poll makes one): each poll
    // recorded then lasted at least `KEEP_POLL_NS` (half of it, should its start have
    // opened a chunk). Besides, at most the poll that was deciding when the level changed.
    spin_events.sort_by_key(|e| e.0);
    let keep_ticks =
        fdr_recorder::calibrate().ticks_per_sec * cost::KEEP_POLL_NS as f64 / 1e9 / 2.0;
    let (mut wakes, mut short) = (Vec::new(), Vec::new());
    for (i, e) in spin_events.iter().enumerate() {
        if e.0 <= from || e.0 >= to {
            continue;
        }
        match e.1 {
            "wake" => wakes.push(e.0),
            "start" => {
                let end = spin_events[i + 1..].iter().find(|x| x.1 == "end");
                if !end.is_some_and(|end| (end.0 - e.0) as f64 >= keep_ticks) {
                    short.push((e.0, end.map(|end| end.0 - e.0)));
                }
            }
            _ => {}
        }
    }
    assert!(
        wakes.len() <= 1 && short.len() <= 1,
        "shed between {from} and {to}: wakes of the spinning task {:?}, short polls {:?}",
        &wakes[..wakes.len().min(5)],
        &short[..short.len().min(5)]
    );
    assert!(logs.len() >= 2, "a log at each change: {logs:?}");

    // While shed: the long poll recorded whole, its start at its own time (the poll's
    // length apart from its end); the short poll with a region inside recorded around it;
    // the short empty poll not at all; a long poll inside another poll, both, nested.
    let labels: Vec<&str> = probe_events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        labels,
        [
            "long start",
            "long end",
            "inner start",
            "region begin",
            "region end",
            "inner end",
            "outer start",
            "nested start",
            "nested end",
            "outer end"
        ],
        "{probe_events:?}"
    );
    let long_ticks = probe_events[1].0 - probe_events[0].0;
    let min_ticks = fdr_recorder::calibrate().ticks_per_sec * LONG_POLL.as_secs_f64() / 2.0;
    assert!(
        long_ticks as f64 >= min_ticks,
        "the long poll's recorded length: {long_ticks} ticks, under {min_ticks}"
    );
    assert_ne!(spin, TaskId::NONE);
}
