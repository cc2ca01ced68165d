//! Deterministic sample traces, for tests, benches and examples of tools built on fdr-format
//! (feature `testing`: not part of a service's build).
//!
//! The generator writes through the same public encoder the recorder uses, so a sample is
//! a valid trace of the same shape a real process produces.

use crate::encode::{BatchEncoder, TableEncoder, TraceWriter, batch_header, file_header};
use crate::event::{
    BlockReason, ClockSync, EventKind, LossReason, Message, ProcessInfo, SampleCause, SiteId,
    StackFrames, StrId, TaskId, ThreadId,
};
use crate::varint;

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
        ..ProcessInfo::default()
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
            // Even ids for requests, the next odd one for the task a request spawns.
            let task = TaskId(2 * (request * spec.threads as u64 + t as u64));
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
        let child = TaskId(task.0 + 1);
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

/// [`every_kind_trace`] with the file header a minor-1 writer made: its process info ends
/// after the host (no service, process start, fdr version or build id).
pub fn every_kind_trace_minor_1() -> Vec<u8> {
    use crate::checksum::batch_checksum;
    use crate::wire::{FILE_HEADER_CHECKSUM_LEN, FILE_HEADER_FIXED_LEN, MAGIC, VERSION_MAJOR};
    let trace = every_kind_trace();
    let info_len = u32::from_le_bytes([trace[12], trace[13], trace[14], trace[15]]) as usize;
    let rest = &trace[FILE_HEADER_FIXED_LEN + info_len + FILE_HEADER_CHECKSUM_LEN..];
    let mut body = Vec::new();
    body.extend_from_slice(&7u32.to_le_bytes());
    body.extend_from_slice(&1u64.to_le_bytes());
    for s in ["seed", "0", "h"] {
        body.extend_from_slice(&(s.len() as u16).to_le_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    let mut out = Vec::with_capacity(trace.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let sum = batch_checksum(&[], &out[MAGIC.len()..]);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(rest);
    out
}

/// A small trace holding every event kind and table record, an inline log, and a sized
/// event kind and table record from a newer minor version (which readers skip and count):
/// one full table batch, one event batch of thread 1, the end marker.
pub fn every_kind_trace() -> Vec<u8> {
    let info = ProcessInfo {
        pid: 7,
        start_unix_ns: 1,
        program: "seed".into(),
        service_version: "0".into(),
        host: "h".into(),
        service: "svc".into(),
        process_start_unix_ns: 2,
        fdr_version: "0.1.0".into(),
        build_id: "0a1b".into(),
    };
    // Framed by hand: the table carries a record no encoder method writes.
    let mut out = file_header(&info);
    let mut t = TableEncoder::new();
    t.string(StrId(1), "a")
        .site(SiteId(1), StrId(1), 3, 4)
        .thread(ThreadId(1), 99, "t")
        .module(0x5000, 0x9000, 0x1000, b"/bin/seed", &[0xab, 0xcd]);
    let mut table = t.payload().to_vec();
    // An unknown sized record from a newer minor version.
    table.push(crate::wire::REC_FIRST_SIZED + 100);
    varint::push(&mut table, 2);
    table.extend_from_slice(&[1, 2]);
    let mut t2 = TableEncoder::new();
    t2.clock(&ClockSync {
        ticks: 5,
        mono_ns: 6,
        wall_unix_ns: 7,
        ticks_per_sec: 1e9,
    });
    table.extend_from_slice(t2.payload());
    out.extend_from_slice(&batch_header(
        crate::wire::TAG_TABLE,
        crate::wire::TABLE_FLAG_FULL,
        ThreadId(0),
        0,
        0,
        &table,
    ));
    out.extend_from_slice(&table);

    let task = TaskId(3);
    let mut frames = Vec::new();
    StackFrames::encode(&[0x5123, 0x5456, 0x8000], &mut frames);
    let stack_frames = StackFrames::from_encoded(&frames, 3).expect("three frames");
    let kinds = [
        EventKind::ThreadStart,
        EventKind::TaskCreate {
            task,
            parent: TaskId(1),
            name: StrId(1),
            site: SiteId(1),
        },
        EventKind::Wake {
            task,
            waker: TaskId::NONE,
        },
        EventKind::PollStart { task },
        EventKind::UserTaskBegin {
            task: TaskId(4),
            parent: task,
            name: StrId(1),
        },
        EventKind::RegionBegin { name: StrId(1) },
        EventKind::Log {
            category: StrId(1),
            message: Message::Inline(b"x=1"),
        },
        EventKind::Log {
            category: StrId(1),
            message: Message::Interned(StrId(1)),
        },
        EventKind::BlockBegin {
            reason: BlockReason::Channel,
            site: SiteId(1),
        },
        EventKind::BlockEnd,
        EventKind::Metric {
            name: StrId(1),
            value: 2.5,
        },
        EventKind::OtelLink {
            task,
            trace_id: [1; 16],
            span_id: [2; 8],
        },
        EventKind::Loss {
            reason: LossReason::PoolExhausted,
            events: 3,
            bytes: 40,
        },
        EventKind::RegionEnd { name: StrId(1) },
        EventKind::UserTaskEnd { task: TaskId(4) },
        EventKind::PollEnd { task, ready: true },
        EventKind::TaskDrop { task },
        EventKind::Park,
        EventKind::Unpark,
        EventKind::AsyncRegionBegin {
            region: 9,
            task,
            name: StrId(1),
        },
        EventKind::AsyncRegionEnd { region: 9, task },
        EventKind::OsSample {
            thread: ThreadId(1),
            cause: SampleCause::LongScope,
            cpu_ns: Some(1_500_000),
            runq_ns: Some(20_000),
            timeslices: Some(12),
            state: Some(b'S'),
        },
        EventKind::OsSample {
            thread: ThreadId(1),
            cause: SampleCause::Periodic,
            cpu_ns: Some(1_600_000),
            runq_ns: None,
            timeslices: None,
            state: None,
        },
        EventKind::Stack {
            thread: ThreadId(1),
            cause: SampleCause::LongScope,
            truncated: false,
            frames: stack_frames,
            age_ticks: None,
        },
        EventKind::Stack {
            thread: ThreadId(1),
            cause: SampleCause::CpuTimer,
            truncated: true,
            frames: stack_frames,
            age_ticks: Some(300),
        },
        EventKind::ThreadEnd,
    ];
    let mut buf = [0u8; 1024];
    let mut enc = BatchEncoder::new(&mut buf, 100);
    let mut ts = 100;
    for k in &kinds {
        ts += 90;
        enc.push(ts, k).expect("every kind fits 1 KiB");
    }
    let mut payload = enc.payload().to_vec();
    // An unknown sized extended kind, then one more region.
    varint::push(&mut payload, 1);
    varint::push(&mut payload, (crate::wire::EXT_FIRST_SIZED + 60) << 2 | 3);
    varint::push(&mut payload, 3);
    payload.extend_from_slice(&[7, 7, 7]);
    varint::push(&mut payload, 200);
    varint::push(&mut payload, 1 << 2);
    out.extend_from_slice(&batch_header(
        crate::wire::TAG_EVENTS,
        0,
        ThreadId(1),
        0,
        100,
        &payload,
    ));
    out.extend_from_slice(&payload);
    let mut end = Vec::new();
    varint::push(&mut end, 2);
    out.extend_from_slice(&batch_header(
        crate::wire::TAG_END,
        0,
        ThreadId(0),
        0,
        0,
        &end,
    ));
    out.extend_from_slice(&end);
    out
}
