//! Deterministic traces of known problems: one per diagnose rule plus a healthy service,
//! written through fdr-format's public encoder exactly as the recorder frames a dump (file
//! header, a full table batch, per-thread event batches with sequence numbers, end marker).
//!
//! They drive the analyzer's golden tests and double as runnable examples of each failure.

use std::collections::HashMap;
use std::io::{self, Write};

use fdr_format::{
    BatchEncoder, BlockReason, ClockSync, EventKind, LossReason, ProcessInfo, SiteId, StrId,
    TableEncoder, TaskId, ThreadId, TraceWriter,
};

/// Builds a trace from per-thread event lists.
#[derive(Debug, Default)]
pub struct TraceBuilder {
    strings: Vec<String>,
    string_ids: HashMap<String, StrId>,
    sites: Vec<(StrId, u32)>,
    threads: Vec<(String, Vec<(u64, EventKind<'static>)>)>,
    skip_seq: Vec<(ThreadId, u32)>,
    modules: Vec<fdr_format::Module>,
    /// The header's host and service version (`localhost`, `1.0.0` when `None`).
    identity: Option<(String, String)>,
}

impl TraceBuilder {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interns a string.
    pub fn string(&mut self, s: &str) -> StrId {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        self.strings.push(s.to_string());
        let id = StrId(self.strings.len() as u32);
        self.string_ids.insert(s.to_string(), id);
        id
    }

    /// Defines a call site.
    pub fn site(&mut self, file: &str, line: u32) -> SiteId {
        let f = self.string(file);
        self.sites.push((f, line));
        SiteId(self.sites.len() as u32)
    }

    /// Adds a recording thread.
    pub fn thread(&mut self, name: &str) -> ThreadId {
        self.threads.push((name.to_string(), Vec::new()));
        ThreadId(self.threads.len() as u32)
    }

    /// Records an event at `ns` (the clock runs at 1 GHz: ticks are nanoseconds).
    pub fn push(&mut self, thread: ThreadId, ns: u64, kind: EventKind<'static>) {
        self.threads[thread.0 as usize - 1]
            .1
            .push((1_000_000 + ns, kind));
    }

    /// Adds a module record (a mapping that stack addresses resolve through).
    pub fn module(&mut self, module: fdr_format::Module) {
        self.modules.push(module);
    }

    /// Names the recording host and the service's version in the header (`localhost` and
    /// `1.0.0` otherwise), as dumps from several hosts and releases do.
    pub fn identity(&mut self, host: &str, service_version: &str) {
        self.identity = Some((host.to_owned(), service_version.to_owned()));
    }

    /// Drops the `seq`th batch of `thread` from the output, as a lost chunk would be.
    pub fn lose_batch(&mut self, thread: ThreadId, seq: u32) {
        self.skip_seq.push((thread, seq));
    }

    /// Writes the trace.
    pub fn write_to<W: Write>(mut self, out: W) -> io::Result<W> {
        let (host, service_version) = self
            .identity
            .take()
            .unwrap_or_else(|| ("localhost".into(), "1.0.0".into()));
        let info = ProcessInfo {
            pid: 7,
            start_unix_ns: 1_750_000_000_000_000_000,
            program: "scenario".into(),
            service_version,
            host,
            ..ProcessInfo::default()
        };
        let mut w = TraceWriter::new(out, &info)?;
        let mut table = TableEncoder::new();
        for (i, s) in self.strings.iter().enumerate() {
            table.string(StrId(i as u32 + 1), s);
        }
        for (i, (file, line)) in self.sites.iter().enumerate() {
            table.site(SiteId(i as u32 + 1), *file, *line, 5);
        }
        for (i, (name, _)) in self.threads.iter().enumerate() {
            table.thread(ThreadId(i as u32 + 1), 100 + i as u64, name);
        }
        for m in &self.modules {
            table.module(
                m.start,
                m.end,
                m.file_offset,
                m.path.as_bytes(),
                &m.build_id,
            );
        }
        table.clock(&ClockSync {
            ticks: 1_000_000,
            mono_ns: 1_000_000,
            wall_unix_ns: info.start_unix_ns,
            ticks_per_sec: 1e9,
        });
        w.write_table(&table, true)?;
        // Seal batches per thread, then write them in seal order (by last timestamp), as
        // the recorder's collector receives them.
        let mut sealed: Vec<(u64, ThreadId, u32, u64, Vec<u8>)> = Vec::new();
        let mut buf = vec![0u8; 4096];
        for (i, (_, events)) in self.threads.iter_mut().enumerate() {
            let thread = ThreadId(i as u32 + 1);
            events.sort_by_key(|e| e.0);
            let mut seq = 0u32;
            let mut start = 0;
            while start < events.len() {
                let base = events[start].0;
                let mut enc = BatchEncoder::new(&mut buf, base);
                let mut end = start;
                while end < events.len() && enc.push(events[end].0, &events[end].1).is_ok() {
                    end += 1;
                }
                let last = events[end - 1].0;
                sealed.push((last, thread, seq, base, enc.payload().to_vec()));
                seq += 1;
                start = end;
            }
        }
        sealed.sort_by_key(|s| (s.0, s.1));
        for (_, thread, seq, base, payload) in sealed {
            if self.skip_seq.contains(&(thread, seq)) {
                continue;
            }
            w.write_events(thread, seq, base, &payload)?;
        }
        w.finish()
    }

    /// The trace as bytes.
    pub fn build(self) -> Vec<u8> {
        self.write_to(Vec::new())
            .expect("writing to a Vec does not fail")
    }
}

/// A small deterministic random number generator (xorshift).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo + 1)
    }
}

/// The scenarios: name, and the rule `fdr diagnose` must rank first (None: healthy).
pub const SCENARIOS: &[(&str, Option<&str>)] = &[
    ("healthy", None),
    ("sched_delay", Some("sched_delay")),
    ("long_polls", Some("long_polls")),
    ("lock_contention", Some("lock_contention")),
    ("task_leak", Some("task_leak")),
    ("serial_bottleneck", Some("serial_bottleneck")),
    ("slow_downstream", Some("slow_downstream")),
    ("async_downstream", Some("slow_downstream")),
    ("async_lock_contention", Some("async_lock_contention")),
    ("recorder_loss", Some("recorder_loss")),
];

/// Builds the named scenario's trace.
pub fn scenario(name: &str) -> Option<Vec<u8>> {
    scenario_on(name, "localhost", "1.0.0")
}

/// Builds the named scenario's trace as recorded on `host` by release `service_version`.
pub fn scenario_on(name: &str, host: &str, service_version: &str) -> Option<Vec<u8>> {
    let mut b = TraceBuilder::new();
    b.identity(host, service_version);
    match name {
        "healthy" => healthy(&mut b, 4, Extra::None),
        "sched_delay" => sched_delay(&mut b),
        "long_polls" => healthy(&mut b, 4, Extra::LongPolls),
        "lock_contention" => lock_contention(&mut b),
        "task_leak" => healthy(&mut b, 4, Extra::Leak),
        "serial_bottleneck" => serial_bottleneck(&mut b),
        "slow_downstream" => slow_downstream(&mut b),
        "async_downstream" => async_downstream(&mut b),
        "async_lock_contention" => async_lock_contention(&mut b),
        "recorder_loss" => {
            healthy(&mut b, 4, Extra::Loss);
            b.lose_batch(ThreadId(2), 3);
        }
        _ => return None,
    }
    Some(b.build())
}

#[derive(PartialEq, Clone, Copy)]
enum Extra {
    None,
    LongPolls,
    Leak,
    Loss,
}

const WINDOW_NS: u64 = 200_000_000;

/// Workers serving requests: spawn, poll (parse), park while the I/O is in flight, wake,
/// poll (render), drop, park until the next request.
fn healthy(b: &mut TraceBuilder, workers: u32, extra: Extra) {
    let name = b.string("handle_request");
    let site = b.site("src/server.rs", 57);
    let parse = b.string("parse");
    let render = b.string("render");
    let lock_site = b.site("src/metrics.rs", 12);
    let report = b.string("generate_report");
    let report_site = b.site("src/report.rs", 88);
    let sleep_site = b.site("src/report.rs", 91);
    let watcher = b.string("subscription_watcher");
    let watcher_site = b.site("src/subscribe.rs", 17);
    let mut rng = Rng::new(42);
    let mut next_task = 1u64;
    for w in 1..=workers {
        let th = b.thread(&format!("tokio-worker-{w}"));
        let mut t = rng.range(0, 50_000);
        let mut req = 0u64;
        b.push(th, t, EventKind::Unpark);
        while t < WINDOW_NS {
            let task = TaskId(next_task);
            next_task += 1;
            req += 1;
            b.push(
                th,
                t,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name,
                    site,
                },
            );
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&task.0.to_be_bytes());
            trace_id[15] = 1;
            b.push(
                th,
                t + 1,
                EventKind::OtelLink {
                    task,
                    trace_id,
                    span_id: [1; 8],
                },
            );
            if extra == Extra::LongPolls && w == 2 && req % 40 == 20 {
                // A report task hogs the worker: a long poll that sleeps the thread.
                let r = TaskId(next_task);
                next_task += 1;
                let d = rng.range(20_000_000, 45_000_000);
                b.push(
                    th,
                    t + 2,
                    EventKind::TaskCreate {
                        task: r,
                        parent: TaskId::NONE,
                        name: report,
                        site: report_site,
                    },
                );
                b.push(th, t + 3, EventKind::PollStart { task: r });
                b.push(
                    th,
                    t + 1_000,
                    EventKind::BlockBegin {
                        reason: BlockReason::Sleep,
                        site: sleep_site,
                    },
                );
                b.push(th, t + d - 1_000, EventKind::BlockEnd);
                b.push(
                    th,
                    t + d,
                    EventKind::PollEnd {
                        task: r,
                        ready: true,
                    },
                );
                b.push(th, t + d + 1, EventKind::TaskDrop { task: r });
                t += d;
            }
            t += rng.range(15_000, 50_000);
            b.push(th, t, EventKind::PollStart { task });
            b.push(th, t + 2_000, EventKind::RegionBegin { name: parse });
            if req.is_multiple_of(8) {
                b.push(
                    th,
                    t + 4_000,
                    EventKind::BlockBegin {
                        reason: BlockReason::Mutex,
                        site: lock_site,
                    },
                );
                b.push(th, t + 4_000 + rng.range(500, 3_000), EventKind::BlockEnd);
            }
            t += rng.range(30_000, 110_000);
            b.push(th, t, EventKind::RegionEnd { name: parse });
            if extra == Extra::Leak && req.is_multiple_of(3) {
                let leak = TaskId(next_task);
                next_task += 1;
                b.push(
                    th,
                    t + 1,
                    EventKind::TaskCreate {
                        task: leak,
                        parent: task,
                        name: watcher,
                        site: watcher_site,
                    },
                );
                b.push(th, t + 2, EventKind::PollStart { task: leak });
                b.push(
                    th,
                    t + 3_000,
                    EventKind::PollEnd {
                        task: leak,
                        ready: false,
                    },
                );
                t += 3_000;
            }
            b.push(th, t + 1, EventKind::PollEnd { task, ready: false });
            if extra == Extra::Loss && req.is_multiple_of(30) {
                b.push(
                    th,
                    t + 2,
                    EventKind::Loss {
                        reason: LossReason::PoolExhausted,
                        events: 4_000,
                        bytes: 12_000,
                    },
                );
            }
            b.push(th, t + 3, EventKind::Park);
            t += rng.range(200_000, 600_000);
            b.push(th, t, EventKind::Unpark);
            b.push(
                th,
                t + 1,
                EventKind::Wake {
                    task,
                    waker: TaskId::NONE,
                },
            );
            t += rng.range(15_000, 50_000);
            b.push(th, t, EventKind::PollStart { task });
            b.push(th, t + 1_000, EventKind::RegionBegin { name: render });
            t += rng.range(30_000, 90_000);
            b.push(th, t, EventKind::RegionEnd { name: render });
            b.push(th, t + 1, EventKind::PollEnd { task, ready: true });
            b.push(th, t + 2, EventKind::TaskDrop { task });
            b.push(th, t + 3, EventKind::Park);
            t += rng.range(50_000, 300_000);
            b.push(th, t, EventKind::Unpark);
        }
    }
}

/// A loop spawns 600 CPU-bound tasks at once onto two workers: each waits for all those
/// queued before it.
fn sched_delay(b: &mut TraceBuilder) {
    let name = b.string("resize_image");
    let site = b.site("src/batch.rs", 31);
    let work = b.string("resize");
    let w1 = b.thread("tokio-worker-1");
    let w2 = b.thread("tokio-worker-2");
    let mut rng = Rng::new(7);
    let n = 600u64;
    for i in 0..n {
        b.push(
            w1,
            i * 500,
            EventKind::TaskCreate {
                task: TaskId(i + 1),
                parent: TaskId::NONE,
                name,
                site,
            },
        );
    }
    let mut clock = [n * 500, n * 500 + 10_000];
    for i in 0..n {
        let w = (i % 2) as usize;
        let th = if w == 0 { w1 } else { w2 };
        let task = TaskId(i + 1);
        let t = clock[w];
        let d = rng.range(200_000, 400_000);
        b.push(th, t, EventKind::PollStart { task });
        b.push(th, t + 100, EventKind::RegionBegin { name: work });
        b.push(th, t + d - 100, EventKind::RegionEnd { name: work });
        b.push(th, t + d, EventKind::PollEnd { task, ready: true });
        b.push(th, t + d + 1, EventKind::TaskDrop { task });
        clock[w] = t + d + rng.range(2_000, 5_000);
    }
}

/// Four threads serve requests that all update one cache behind a mutex.
fn lock_contention(b: &mut TraceBuilder) {
    let name = b.string("handle_request");
    let update = b.string("update_cache");
    let site = b.site("src/cache.rs", 42);
    let mut rng = Rng::new(3);
    let mut id = 1u64;
    for w in 1..=4 {
        let th = b.thread(&format!("http-{w}"));
        let mut t = rng.range(0, 20_000);
        while t < WINDOW_NS {
            let task = TaskId(id);
            id += 1;
            b.push(
                th,
                t,
                EventKind::UserTaskBegin {
                    task,
                    parent: TaskId::NONE,
                    name,
                },
            );
            b.push(th, t + 1_000, EventKind::RegionBegin { name: update });
            b.push(
                th,
                t + 2_000,
                EventKind::BlockBegin {
                    reason: BlockReason::Mutex,
                    site,
                },
            );
            t += 2_000 + rng.range(300_000, 900_000);
            b.push(th, t, EventKind::BlockEnd);
            t += rng.range(80_000, 150_000);
            b.push(th, t, EventKind::RegionEnd { name: update });
            b.push(th, t + 1, EventKind::UserTaskEnd { task });
            t += rng.range(10_000, 40_000);
        }
    }
}

/// One worker imports a batch in a long series of polls; the other three sit idle.
fn serial_bottleneck(b: &mut TraceBuilder) {
    let name = b.string("batch_import");
    let site = b.site("src/import.rs", 203);
    let small = b.string("healthcheck");
    let small_site = b.site("src/health.rs", 9);
    let rows = b.string("import_rows");
    let mut rng = Rng::new(11);
    let w1 = b.thread("tokio-worker-1");
    let task = TaskId(1);
    b.push(
        w1,
        0,
        EventKind::TaskCreate {
            task,
            parent: TaskId::NONE,
            name,
            site,
        },
    );
    let mut t = 10_000;
    while t < WINDOW_NS {
        b.push(w1, t, EventKind::PollStart { task });
        b.push(w1, t + 100, EventKind::RegionBegin { name: rows });
        let d = rng.range(600_000, 900_000);
        b.push(w1, t + d - 100, EventKind::RegionEnd { name: rows });
        b.push(w1, t + d, EventKind::PollEnd { task, ready: false });
        b.push(w1, t + d + 1, EventKind::Wake { task, waker: task });
        t += d + rng.range(5_000, 20_000);
    }
    b.push(w1, t, EventKind::PollStart { task });
    b.push(w1, t + 10, EventKind::PollEnd { task, ready: true });
    b.push(w1, t + 20, EventKind::TaskDrop { task });
    let mut id = 2;
    for w in 2..=4 {
        let th = b.thread(&format!("tokio-worker-{w}"));
        let mut t = rng.range(0, 1_000_000);
        b.push(th, t, EventKind::Park);
        while t < WINDOW_NS {
            t += rng.range(5_000_000, 15_000_000);
            let task = TaskId(id);
            id += 1;
            b.push(th, t, EventKind::Unpark);
            b.push(
                th,
                t + 10,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name: small,
                    site: small_site,
                },
            );
            b.push(th, t + 5_000, EventKind::PollStart { task });
            b.push(th, t + 25_000, EventKind::PollEnd { task, ready: true });
            b.push(th, t + 25_001, EventKind::TaskDrop { task });
            b.push(th, t + 26_000, EventKind::Park);
        }
        b.push(th, WINDOW_NS + 20_000_000, EventKind::Unpark);
    }
}

/// Request threads wait 20-90 ms on a backend call.
fn slow_downstream(b: &mut TraceBuilder) {
    let name = b.string("get_profile");
    let call = b.string("call_user_service");
    let site = b.site("src/client.rs", 120);
    let mut rng = Rng::new(5);
    let mut id = 1u64;
    for w in 1..=4 {
        let th = b.thread(&format!("http-{w}"));
        let mut t = rng.range(0, 50_000);
        while t < WINDOW_NS {
            let task = TaskId(id);
            id += 1;
            b.push(
                th,
                t,
                EventKind::UserTaskBegin {
                    task,
                    parent: TaskId::NONE,
                    name,
                },
            );
            b.push(th, t + 5_000, EventKind::RegionBegin { name: call });
            b.push(
                th,
                t + 6_000,
                EventKind::BlockBegin {
                    reason: BlockReason::Io,
                    site,
                },
            );
            t += 6_000 + rng.range(20_000_000, 90_000_000);
            b.push(th, t, EventKind::BlockEnd);
            b.push(th, t + 1_000, EventKind::RegionEnd { name: call });
            t += rng.range(50_000, 200_000);
            b.push(th, t, EventKind::UserTaskEnd { task });
            t += rng.range(100_000, 500_000);
        }
    }
}

/// Async requests awaiting a backend over async I/O that answers in 30–50 ms: each is
/// polled (pending), its worker parks, the driver wakes it from the parked worker, and a
/// last poll renders the answer. Nothing is annotated for fdr.
fn async_downstream(b: &mut TraceBuilder) {
    let name = b.string("http GET /product");
    let site = b.site("src/routes.rs", 31);
    let mut rng = Rng::new(11);
    let mut id = 1u64;
    for w in 1..=2 {
        let th = b.thread(&format!("tokio-worker-{w}"));
        b.push(th, 0, EventKind::ThreadStart);
        let mut t = rng.range(1_000, 50_000);
        while t < WINDOW_NS {
            let task = TaskId(id);
            id += 1;
            b.push(
                th,
                t,
                EventKind::TaskCreate {
                    task,
                    parent: TaskId::NONE,
                    name,
                    site,
                },
            );
            b.push(th, t + 1_000, EventKind::PollStart { task });
            b.push(th, t + 40_000, EventKind::PollEnd { task, ready: false });
            b.push(th, t + 41_000, EventKind::Park);
            t += 41_000 + rng.range(30_000_000, 50_000_000);
            b.push(
                th,
                t,
                EventKind::Wake {
                    task,
                    waker: TaskId::NONE,
                },
            );
            b.push(th, t + 1_000, EventKind::Unpark);
            b.push(th, t + 2_000, EventKind::PollStart { task });
            b.push(th, t + 30_000, EventKind::PollEnd { task, ready: true });
            b.push(th, t + 31_000, EventKind::TaskDrop { task });
            t += rng.range(100_000, 300_000);
        }
    }
}

/// Requests queue on an async lock held across a 5 ms store call: each request's first poll
/// finds the lock taken (pending); the holder, in its last poll, releases it and wakes the
/// next; the next takes it and awaits the store (the driver wakes it 5 ms later). About
/// eight requests are always queued.
fn async_lock_contention(b: &mut TraceBuilder) {
    let name = b.string("http POST /cart");
    let site = b.site("src/routes.rs", 77);
    let workers = [b.thread("tokio-worker-1"), b.thread("tokio-worker-2")];
    for w in workers {
        b.push(w, 0, EventKind::ThreadStart);
    }
    const HOLD: u64 = 5_000_000;
    let n = WINDOW_NS / HOLD;
    let task = |k: u64| TaskId(k + 1);
    // Request k takes the lock at `held(k)` and holds it for HOLD.
    let held = |k: u64| 100_000 + k * HOLD;
    for k in 0..n {
        let w = workers[(k % 2) as usize];
        let other = workers[((k + 1) % 2) as usize];
        // Arrives about eight holds before it gets the lock (the first ones at the start).
        let arrive = held(k)
            .saturating_sub(8 * HOLD + HOLD / 2)
            .max(1_000 + k * 10_000);
        b.push(
            w,
            arrive,
            EventKind::TaskCreate {
                task: task(k),
                parent: TaskId::NONE,
                name,
                site,
            },
        );
        b.push(w, arrive + 1_000, EventKind::PollStart { task: task(k) });
        b.push(
            w,
            arrive + 3_000,
            EventKind::PollEnd {
                task: task(k),
                ready: false,
            },
        );
        // Takes the lock and starts the store call.
        let h = held(k);
        b.push(w, h + 20_000, EventKind::PollStart { task: task(k) });
        b.push(
            w,
            h + 50_000,
            EventKind::PollEnd {
                task: task(k),
                ready: false,
            },
        );
        // The store answers: the driver wakes it on the other worker, between polls.
        b.push(
            other,
            h + HOLD - 200_000,
            EventKind::Wake {
                task: task(k),
                waker: TaskId::NONE,
            },
        );
        // Its last poll releases the lock and wakes the next request.
        b.push(w, h + HOLD - 10_000, EventKind::PollStart { task: task(k) });
        if k + 1 < n {
            b.push(
                w,
                h + HOLD - 5_000,
                EventKind::Wake {
                    task: task(k + 1),
                    waker: task(k),
                },
            );
        }
        b.push(
            w,
            h + HOLD - 2_000,
            EventKind::PollEnd {
                task: task(k),
                ready: true,
            },
        );
        b.push(w, h + HOLD - 1_000, EventKind::TaskDrop { task: task(k) });
    }
}

/// Writes a large trace of the healthy request mix (4 threads, 64 KiB batches) until at
/// least `min_bytes` are written: the input of the analyzer's memory bench.
pub fn write_large<W: Write>(out: W, min_bytes: u64) -> io::Result<W> {
    let info = ProcessInfo {
        pid: 9,
        program: "large".into(),
        ..ProcessInfo::default()
    };
    let mut w = TraceWriter::new(out, &info)?;
    let mut table = TableEncoder::new();
    let names = ["handle_request", "parse", "render", "src/server.rs"];
    for (i, n) in names.iter().enumerate() {
        table.string(StrId(i as u32 + 1), n);
    }
    table.site(SiteId(1), StrId(4), 57, 5);
    for t in 1..=4u32 {
        table.thread(ThreadId(t), t as u64, &format!("worker-{t}"));
    }
    table.clock(&ClockSync {
        ticks: 0,
        mono_ns: 0,
        wall_unix_ns: 0,
        ticks_per_sec: 1e9,
    });
    w.write_table(&table, true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut rng = Rng::new(99);
    let mut ts = [0u64; 4];
    let mut seq = [0u32; 4];
    let mut next_task = [0u64; 4];
    let mut pending: [std::collections::VecDeque<EventKind<'static>>; 4] = Default::default();
    while w.bytes_written() < min_bytes {
        for th in 0..4usize {
            let mut enc = BatchEncoder::new(&mut buf, ts[th]);
            loop {
                if pending[th].is_empty() {
                    next_task[th] += 1;
                    let task = TaskId(next_task[th] * 4 + th as u64);
                    pending[th].extend([
                        EventKind::TaskCreate {
                            task,
                            parent: TaskId::NONE,
                            name: StrId(1),
                            site: SiteId(1),
                        },
                        EventKind::PollStart { task },
                        EventKind::RegionBegin { name: StrId(2) },
                        EventKind::RegionEnd { name: StrId(2) },
                        EventKind::PollEnd { task, ready: false },
                        EventKind::Wake {
                            task,
                            waker: TaskId::NONE,
                        },
                        EventKind::PollStart { task },
                        EventKind::RegionBegin { name: StrId(3) },
                        EventKind::RegionEnd { name: StrId(3) },
                        EventKind::PollEnd { task, ready: true },
                        EventKind::TaskDrop { task },
                    ]);
                }
                let t = ts[th] + rng.range(50, 3_000);
                let k = pending[th][0];
                if enc.push(t, &k).is_err() {
                    break;
                }
                pending[th].pop_front();
                ts[th] = t;
            }
            w.write_events(
                ThreadId(th as u32 + 1),
                seq[th],
                enc.base_ts(),
                enc.payload(),
            )?;
            seq[th] += 1;
        }
    }
    w.finish()
}
