//! Deterministic sample traces, for tests, benches and examples of tools built on fdr-format.
//!
//! The generator writes through the same public encoder the recorder uses, so a sample is
//! a valid trace of the same shape a real process produces.

use crate::encode::{BatchEncoder, TableEncoder, TraceWriter};
use crate::event::{
    BlockReason, ClockSync, EventKind, Message, ProcessInfo, SiteId, StrId, TaskId, ThreadId,
};

/// Shape of a generated trace.
#[derive(Debug, Clone, Copy)]
pub struct SampleSpec {
    /// Recording threads.
    pub threads: u32,
    /// Events per thread.
    pub events_per_thread: u64,
    /// Payload bytes per event batch (the recorder's chunk size).
    pub batch_bytes: usize,
    /// Ticks between events (before jitter).
    pub spacing_ticks: u64,
    /// Seed of the jitter.
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            threads: 3,
            events_per_thread: 2_000,
            batch_bytes: 4096,
            spacing_ticks: 300,
            seed: 1,
        }
    }
}

/// Names the sample's string table defines, by id.
pub const SAMPLE_STRINGS: &[&str] = &[
    "",
    "request",
    "auth",
    "db",
    "render",
    "cache",
    "miss",
    "src/handler.rs",
    "queue_depth",
    "worker",
];

/// A small trace with every event kind: three threads, a few thousand events.
pub fn sample_trace() -> Vec<u8> {
    sample_trace_with(SampleSpec::default())
}

/// A trace of the given shape: per-thread request loops of a user task, three regions,
/// a log, a contended lock now and then, async polls and wakes.
pub fn sample_trace_with(spec: SampleSpec) -> Vec<u8> {
    let info = ProcessInfo {
        pid: 4242,
        start_unix_ns: 1_700_000_000_000_000_000,
        program: "sample".into(),
        service_version: "1.0.0".into(),
        host: "localhost".into(),
    };
    let mut w = TraceWriter::new(Vec::new(), &info).expect("Vec write");
    let mut table = TableEncoder::new();
    for (i, s) in SAMPLE_STRINGS.iter().enumerate().skip(1) {
        table.string(StrId(i as u32), s);
    }
    table.site(SiteId(1), StrId(7), 42, 9);
    for t in 1..=spec.threads {
        table.thread(ThreadId(t), 1000 + t as u64, &format!("worker-{t}"));
    }
    table.clock(&ClockSync {
        ticks: 1_000_000,
        mono_ns: 5_000_000,
        wall_unix_ns: info.start_unix_ns,
        ticks_per_sec: 1e9,
    });
    w.write_table(&table, true).expect("Vec write");

    let mut rng = spec.seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut buf = vec![0u8; spec.batch_bytes];
    for t in 1..=spec.threads {
        let mut ts = 1_000_000u64;
        let mut seq = 0u32;
        let mut enc = BatchEncoder::new(&mut buf, ts);
        let mut n = 0u64;
        let mut request = 0u64;
        let mut script = Vec::with_capacity(32);
        while n < spec.events_per_thread {
            script.clear();
            // Task ids are dense across threads, as the recorder hands them out.
            let task = TaskId(request * spec.threads as u64 + t as u64);
            request_events(request, task, t, &mut script);
            request += 1;
            for kind in &script {
                if n == spec.events_per_thread {
                    break;
                }
                ts += spec.spacing_ticks / 2 + next() % spec.spacing_ticks.max(1);
                if enc.push(ts, kind).is_err() {
                    w.write_events(ThreadId(t), seq, enc.base_ts(), enc.payload())
                        .expect("Vec write");
                    seq += 1;
                    enc = BatchEncoder::new(&mut buf, ts);
                    enc.push(ts, kind).expect("an event fits an empty batch");
                }
                n += 1;
            }
        }
        if !enc.is_empty() {
            w.write_events(ThreadId(t), seq, enc.base_ts(), enc.payload())
                .expect("Vec write");
        }
    }
    w.finish().expect("Vec write")
}

/// One request: a user task with three regions and a static log; every fourth request
/// also waits for a contended lock, spawns and polls an async task, and logs a formatted
/// line; every sixteenth samples a metric.
fn request_events(request: u64, task: TaskId, thread: u32, out: &mut Vec<EventKind<'static>>) {
    use EventKind::*;
    out.push(UserTaskBegin {
        task,
        parent: TaskId::NONE,
        name: StrId(1),
    });
    out.extend([RegionBegin { name: StrId(2) }, RegionEnd { name: StrId(2) }]);
    out.push(RegionBegin { name: StrId(3) });
    if request % 4 == 1 {
        out.extend([
            BlockBegin {
                reason: BlockReason::Mutex,
                site: SiteId(1),
            },
            BlockEnd,
        ]);
        let child = TaskId(task.0 | 1 << 40);
        out.extend([
            TaskCreate {
                task: child,
                parent: task,
                name: StrId(9),
                site: SiteId(1),
            },
            Wake {
                task: child,
                waker: task,
            },
            PollStart { task: child },
            Log {
                category: StrId(5),
                message: Message::Inline(b"key=user:17"),
            },
            PollEnd {
                task: child,
                ready: true,
            },
            TaskDrop { task: child },
        ]);
    }
    out.push(Log {
        category: StrId(5),
        message: Message::Interned(StrId(6)),
    });
    out.push(RegionEnd { name: StrId(3) });
    out.extend([RegionBegin { name: StrId(4) }, RegionEnd { name: StrId(4) }]);
    if request % 16 == 3 && thread == 1 {
        out.push(Metric {
            name: StrId(8),
            value: request as f64,
        });
    }
    out.push(UserTaskEnd { task });
}
