//! Hostile traces: valid fdr traces shaped to push each of the analyzer's limits (a
//! million threads, a million live tasks, a million distinct names and sites, spans that
//! never end, strings and batches of the largest sizes the format allows, timestamps and
//! counts at the ends of their ranges).
//!
//! They are written through fdr-format's public encoder, fast enough to make traces of a
//! gigabyte in seconds, and drive the memory tests, the `analyze.max_rss_bytes_adversarial`
//! bench figure and the analyzer fuzz target's seeds.

use std::io::{self, Write};

use fdr_format::encode::encode_event;
use fdr_format::wire::{MAX_BATCH_PAYLOAD, MAX_STRING_LEN};
use fdr_format::{
    BatchEncoder, BlockReason, ClockSync, EventKind, LossReason, Message, ProcessInfo, SiteId,
    StrId, TableEncoder, TaskId, ThreadId, TraceWriter,
};

/// The shapes of hostile trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Every batch from a new thread, each thread named in the tables: the trace holds as
    /// many threads as it has room for (a million in about 60 MB).
    Threads,
    /// Async tasks created, polled, woken and linked, never dropped; user tasks begun,
    /// never ended (a million tasks in about 30 MB).
    Tasks,
    /// Every region, task, blocking site, metric and log category with its own name or
    /// site, each defined in the tables (a million names and sites in about 70 MB).
    Names,
    /// Threads whose regions, polls, user tasks, blocks and parks nest hundreds deep and
    /// never end.
    OpenSpans,
    /// Strings, thread names, inline messages and site file names of the largest length
    /// the format allows, every one distinct.
    LongStrings,
    /// Event batches of the largest payload the format allows, packed with two-byte
    /// events (eight million to a batch), on a few threads.
    BigBatches,
    /// Timestamps that jump by 2^63 ticks (spans of 2^63 ns), loss records of 2^64 - 1
    /// events, sequence numbers that skip billions, and a clock of one tick per century.
    Extremes,
    /// OS samples and stacks of many sampled threads, all written by one thread (as the
    /// sampler writes them): each sampled thread gets CPU-timer stacks, long-scope episodes
    /// that open and end, and long polls on its own lane waiting for an episode to end.
    OsView,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 8] = [
        Shape::Threads,
        Shape::Tasks,
        Shape::Names,
        Shape::OpenSpans,
        Shape::LongStrings,
        Shape::BigBatches,
        Shape::Extremes,
        Shape::OsView,
    ];

    /// A short lower-case name (`threads`, `tasks`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Threads => "threads",
            Shape::Tasks => "tasks",
            Shape::Names => "names",
            Shape::OpenSpans => "open_spans",
            Shape::LongStrings => "long_strings",
            Shape::BigBatches => "big_batches",
            Shape::Extremes => "extremes",
            Shape::OsView => "os_view",
        }
    }
}

fn clock(ticks_per_sec: f64) -> ClockSync {
    ClockSync {
        ticks: 0,
        mono_ns: 0,
        wall_unix_ns: 1_750_000_000_000_000_000,
        ticks_per_sec,
    }
}

/// Writes a trace of `shape` of at least `min_bytes` (a little more: it ends at a batch).
pub fn write<W: Write>(shape: Shape, out: W, min_bytes: u64) -> io::Result<W> {
    let info = ProcessInfo {
        pid: 13,
        start_unix_ns: 1_750_000_000_000_000_000,
        program: format!("adversarial-{}", shape.name()),
        service_version: "1.0.0".into(),
        host: "localhost".into(),
        ..ProcessInfo::default()
    };
    let mut w = TraceWriter::new(out, &info)?;
    match shape {
        Shape::Threads => threads(&mut w, min_bytes)?,
        Shape::Tasks => tasks(&mut w, min_bytes)?,
        Shape::Names => names(&mut w, min_bytes)?,
        Shape::OpenSpans => open_spans(&mut w, min_bytes)?,
        Shape::LongStrings => long_strings(&mut w, min_bytes)?,
        Shape::BigBatches => big_batches(&mut w, min_bytes)?,
        Shape::Extremes => extremes(&mut w, min_bytes)?,
        Shape::OsView => os_view(&mut w, min_bytes)?,
    }
    w.finish()
}

/// The trace as bytes.
pub fn build(shape: Shape, min_bytes: u64) -> Vec<u8> {
    write(shape, Vec::new(), min_bytes).expect("writing to a Vec does not fail")
}

/// A table of a few names every shape uses: 1 `region`, 2 `log`, 3 `task`, 4 `src/a.rs`,
/// site 1 at `src/a.rs:1:1`, and a 1 GHz clock.
fn base_table() -> TableEncoder {
    let mut t = TableEncoder::new();
    for (i, s) in ["region", "log", "task", "src/a.rs"].iter().enumerate() {
        t.string(StrId(i as u32 + 1), s);
    }
    t.site(SiteId(1), StrId(4), 1, 1);
    t.clock(&clock(1e9));
    t
}

fn threads<W: Write>(w: &mut TraceWriter<W>, min_bytes: u64) -> io::Result<()> {
    w.write_table(&base_table(), true)?;
    let mut buf = vec![0u8; 256];
    let mut table = TableEncoder::new();
    let mut thread = 0u32;
    let mut ts = 1_000u64;
    while w.bytes_written() < min_bytes {
        // Name the next 4096 threads, then write one small batch of each.
        table.clear();
        for t in thread + 1..=thread + 4096 {
            table.thread(ThreadId(t), u64::from(t), &format!("t{t}"));
        }
        w.write_table(&table, false)?;
        for _ in 0..4096 {
            thread += 1;
            ts += 7;
            let task = TaskId(u64::from(thread));
            let mut enc = BatchEncoder::new(&mut buf, ts);
            for (dt, k) in [
                (0, EventKind::ThreadStart),
                (
                    1,
                    EventKind::UserTaskBegin {
                        task,
                        parent: TaskId::NONE,
                        name: StrId(3),
                    },
                ),
                (2, EventKind::RegionBegin { name: StrId(1) }),
                (
                    3,
                    EventKind::Log {
                        category: StrId(2),
                        message: Message::Interned(StrId(1)),
                    },
                ),
                (4, EventKind::RegionEnd { name: StrId(1) }),
                (5, EventKind::UserTaskEnd { task }),
            ] {
                enc.push(ts + dt, &k).expect("fits");
            }
            w.write_events(ThreadId(thread), 0, enc.base_ts(), enc.payload())?;
        }
    }
    Ok(())
}

/// Encodes `events` (delta, kind) into 64 KiB batches of `thread`, until `more` says stop.
struct Stream {
    buf: Vec<u8>,
    len: usize,
    thread: ThreadId,
    seq: u32,
    base_ts: u64,
    ts: u64,
}

impl Stream {
    fn new(thread: ThreadId, batch_bytes: usize) -> Self {
        Stream {
            buf: vec![0u8; batch_bytes],
            len: 0,
            thread,
            seq: 0,
            base_ts: 0,
            ts: 0,
        }
    }

    /// Appends an event `delta` ticks after the previous one (wrapping, as the decoder
    /// adds), writing the batch out first when it is full.
    fn push<W: Write>(
        &mut self,
        w: &mut TraceWriter<W>,
        delta: u64,
        kind: &EventKind<'_>,
    ) -> io::Result<()> {
        loop {
            if let Some(n) = encode_event(&mut self.buf[self.len..], delta, kind) {
                self.len += n;
                self.ts = self.ts.wrapping_add(delta);
                return Ok(());
            }
            if self.len == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "event larger than a batch",
                ));
            }
            self.flush(w)?;
        }
    }

    fn flush<W: Write>(&mut self, w: &mut TraceWriter<W>) -> io::Result<()> {
        if self.len > 0 {
            w.write_events(self.thread, self.seq, self.base_ts, &self.buf[..self.len])?;
            self.seq = self.seq.wrapping_add(1);
            self.len = 0;
            self.base_ts = self.ts;
        }
        Ok(())
    }
}

fn tasks<W: Write>(w: &mut TraceWriter<W>, min_bytes: u64) -> io::Result<()> {
    w.write_table(&base_table(), true)?;
    let mut lanes: Vec<Stream> = (1..=4)
        .map(|t| Stream::new(ThreadId(t), 64 << 10))
        .collect();
    let mut next = 1u64;
    while w.bytes_written() < min_bytes {
        for s in &mut lanes {
            for _ in 0..256 {
                let task = TaskId(next);
                next += 1;
                let parent = TaskId(next.saturating_sub(2));
                for (d, k) in [
                    (
                        3,
                        EventKind::TaskCreate {
                            task,
                            parent,
                            name: StrId(3),
                            site: SiteId(1),
                        },
                    ),
                    (
                        1,
                        EventKind::OtelLink {
                            task,
                            trace_id: [7; 16],
                            span_id: [1; 8],
                        },
                    ),
                    (
                        1,
                        EventKind::Wake {
                            task,
                            waker: parent,
                        },
                    ),
                    (2, EventKind::PollStart { task }),
                    (5, EventKind::PollEnd { task, ready: false }),
                    (
                        1,
                        EventKind::UserTaskBegin {
                            task: TaskId(next | 1 << 62),
                            parent: task,
                            name: StrId(3),
                        },
                    ),
                ] {
                    s.push(w, d, &k)?;
                }
            }
            s.flush(w)?;
        }
    }
    Ok(())
}

fn names<W: Write>(w: &mut TraceWriter<W>, min_bytes: u64) -> io::Result<()> {
    w.write_table(&base_table(), true)?;
    let mut s = Stream::new(ThreadId(1), 64 << 10);
    let mut table = TableEncoder::new();
    let mut next = 16u32;
    while w.bytes_written() < min_bytes {
        // Define 4096 names and as many sites (each with its own file), then use each.
        table.clear();
        for i in next..next + 4096 {
            table.string(StrId(i), &format!("n{i}"));
            table.site(SiteId(i), StrId(i), i, 1);
        }
        w.write_table(&table, false)?;
        for i in next..next + 4096 {
            let (name, site) = (StrId(i), SiteId(i));
            let task = TaskId(u64::from(i));
            for (d, k) in [
                (1, EventKind::RegionBegin { name }),
                (2, EventKind::RegionEnd { name }),
                (
                    1,
                    EventKind::TaskCreate {
                        task,
                        parent: TaskId::NONE,
                        name,
                        site,
                    },
                ),
                (1, EventKind::PollStart { task }),
                (
                    1,
                    EventKind::BlockBegin {
                        reason: BlockReason::ALL[i as usize % 7],
                        site,
                    },
                ),
                (3, EventKind::BlockEnd),
                (1, EventKind::PollEnd { task, ready: true }),
                (1, EventKind::TaskDrop { task }),
                (
                    1,
                    EventKind::UserTaskBegin {
                        task: TaskId(u64::from(i) | 1 << 62),
                        parent: TaskId::NONE,
                        name,
                    },
                ),
                (
                    1,
                    EventKind::UserTaskEnd {
                        task: TaskId(u64::from(i) | 1 << 62),
                    },
                ),
                (
                    1,
                    EventKind::Metric {
                        name,
                        value: f64::from(i),
                    },
                ),
                (
                    1,
                    EventKind::Log {
                        category: name,
                        message: Message::Interned(name),
                    },
                ),
            ] {
                s.push(w, d, &k)?;
            }
        }
        s.flush(w)?;
        next += 4096;
    }
    Ok(())
}

fn open_spans<W: Write>(w: &mut TraceWriter<W>, min_bytes: u64) -> io::Result<()> {
    let mut table = base_table();
    for i in 0..300u32 {
        table.string(StrId(16 + i), &format!("r{i}"));
    }
    w.write_table(&table, true)?;
    let mut thread = 0u32;
    while w.bytes_written() < min_bytes {
        thread += 1;
        let mut s = Stream::new(ThreadId(thread), 16 << 10);
        s.base_ts = u64::from(thread);
        s.ts = s.base_ts;
        for i in 0..300u64 {
            let task = TaskId(u64::from(thread) << 20 | i);
            for k in [
                EventKind::RegionBegin {
                    name: StrId(16 + i as u32),
                },
                EventKind::UserTaskBegin {
                    task,
                    parent: TaskId::NONE,
                    name: StrId(3),
                },
                EventKind::PollStart {
                    task: TaskId(task.0 | 1 << 62),
                },
                EventKind::BlockBegin {
                    reason: BlockReason::Mutex,
                    site: SiteId(1),
                },
                EventKind::Park,
            ] {
                s.push(w, 1, &k)?;
            }
        }
        s.flush(w)?;
    }
    Ok(())
}

fn os_view<W: Write>(w: &mut TraceWriter<W>, min_bytes: u64) -> io::Result<()> {
    use fdr_format::{SampleCause, StackFrames};
    w.write_table(&base_table(), true)?;
    // The sampler's thread writes about threads 1..=SAMPLED (more than the analyzer
    // follows); threads 1..=POLLERS also record nested long polls around each of their
    // episodes' starts, and their episodes never end, so the polls wait.
    const SAMPLED: u32 = 70_000;
    const POLLERS: u32 = 4096;
    const STEP: u64 = 10;
    let mut s = Stream::new(ThreadId(SAMPLED + 1), 64 << 10);
    let mut pollers: Vec<Stream> = (1..=POLLERS)
        .map(|t| Stream::new(ThreadId(t), 4 << 10))
        .collect();
    let mut frames = Vec::new();
    let mut round = 0u64;
    let sample = |thread, cause, cpu| EventKind::OsSample {
        thread,
        cause,
        cpu_ns: Some(cpu),
        runq_ns: Some(cpu / 2),
        timeslices: Some(cpu / 1000),
        state: Some(b'S'),
    };
    while w.bytes_written() < min_bytes {
        round += 1;
        for t in 1..=SAMPLED {
            // A round is megabytes: a small trace stops inside its first.
            if w.bytes_written() + s.len as u64 >= min_bytes {
                break;
            }
            let thread = ThreadId(t);
            let cpu = round * 1_000_000;
            // Stacks that differ by thread, within the distinct-stack bound.
            let addrs = [0x1000 + u64::from(t % 1024) * 16, 0x2000 + round % 2];
            let n = StackFrames::encode(&addrs, &mut frames);
            let frames = StackFrames::from_encoded(&frames, n).expect("encoded");
            let stack = |cause| EventKind::Stack {
                thread,
                cause,
                truncated: false,
                frames,
                age_ticks: Some(1),
            };
            s.push(w, STEP, &sample(thread, SampleCause::LongScope, cpu))?;
            let episode = s.ts;
            s.push(w, STEP, &stack(SampleCause::CpuTimer))?;
            s.push(w, STEP, &stack(SampleCause::LongScope))?;
            if t > POLLERS && round.is_multiple_of(2) {
                s.push(w, STEP, &sample(thread, SampleCause::ScopeEnd, cpu + 1))?;
            }
            if t <= POLLERS {
                // Four polls begun just before the episode, ended 1.2 ms after it.
                let p = &mut pollers[t as usize - 1];
                let tasks = (0..4u64).map(|i| TaskId(u64::from(t) << 32 | round << 3 | i));
                for (i, task) in tasks.clone().enumerate() {
                    let at = episode - 4 + i as u64;
                    p.push(w, at.wrapping_sub(p.ts), &EventKind::PollStart { task })?;
                }
                for (i, task) in tasks.rev().enumerate() {
                    let at = episode + 1_200_000 + i as u64;
                    let end = EventKind::PollEnd { task, ready: false };
                    p.push(w, at.wrapping_sub(p.ts), &end)?;
                }
            }
        }
        s.flush(w)?;
        for p in &mut pollers {
            p.flush(w)?;
        }
    }
    Ok(())
}

/// A string of `len` bytes unique to `i`.
fn long(i: u64, len: usize) -> String {
    let mut s = format!("{i}:");
    while s.len() < len {
        s.push(char::from(b'a' + (s.len() % 26) as u8));
    }
    s.truncate(len);
    s
}

fn long_strings<W: Write>(w: &mut TraceWriter<W>, min_bytes: u64) -> io::Result<()> {
    w.write_table(&base_table(), true)?;
    let mut table = TableEncoder::new();
    let mut buf = vec![0u8; MAX_STRING_LEN + 64];
    let message = long(0, MAX_STRING_LEN);
    let mut i = 16u32;
    let mut ts = 0u64;
    let mut seq = 0u32;
    while w.bytes_written() < min_bytes {
        // A 64 KiB string and a thread named with 64 KiB, then 64 sites sharing the string
        // as their file, used by blocks of every reason, and the string as a region,
        // task, metric and log name; an inline message of 64 KiB.
        table.clear();
        let text = long(u64::from(i), MAX_STRING_LEN);
        table.string(StrId(i), &text);
        table.thread(ThreadId(1_000_000 + i), u64::from(i), &text);
        for j in 0..64 {
            table.site(SiteId(i * 64 + j), StrId(i), j, 1);
        }
        w.write_table(&table, false)?;
        let thread = ThreadId(1 + i % 64);
        let mut enc = BatchEncoder::new(&mut buf, ts);
        let name = StrId(i);
        let mut push = |enc: &mut BatchEncoder<'_>, k: EventKind<'_>| {
            ts += 10;
            enc.push(ts, &k).expect("fits");
        };
        push(&mut enc, EventKind::RegionBegin { name });
        for j in 0..64 {
            push(
                &mut enc,
                EventKind::BlockBegin {
                    reason: BlockReason::from_wire((j % 8) as u8),
                    site: SiteId(i * 64 + j),
                },
            );
            push(&mut enc, EventKind::BlockEnd);
        }
        push(
            &mut enc,
            EventKind::TaskCreate {
                task: TaskId(u64::from(i)),
                parent: TaskId::NONE,
                name,
                site: SiteId(i * 64),
            },
        );
        push(&mut enc, EventKind::Metric { name, value: 1.0 });
        push(&mut enc, EventKind::RegionEnd { name });
        w.write_events(thread, seq, enc.base_ts(), enc.payload())?;
        seq += 1;
        let mut enc = BatchEncoder::new(&mut buf, ts);
        ts += 10;
        enc.push(
            ts,
            &EventKind::Log {
                category: name,
                message: Message::Inline(message.as_bytes()),
            },
        )
        .expect("fits");
        w.write_events(ThreadId(1000), i, enc.base_ts(), enc.payload())?;
        i += 1;
    }
    Ok(())
}

fn big_batches<W: Write>(w: &mut TraceWriter<W>, min_bytes: u64) -> io::Result<()> {
    w.write_table(&base_table(), true)?;
    let mut buf = vec![0u8; MAX_BATCH_PAYLOAD as usize];
    // Two-byte events: a region begin or end one tick after the previous event.
    let mut pattern = [0u8; 4];
    let a = encode_event(&mut pattern, 1, &EventKind::RegionBegin { name: StrId(1) });
    let b = encode_event(
        &mut pattern[2..],
        1,
        &EventKind::RegionEnd { name: StrId(1) },
    );
    assert_eq!((a, b), (Some(2), Some(2)));
    for c in buf.chunks_exact_mut(4) {
        c.copy_from_slice(&pattern);
    }
    let events = buf.len() as u64 / 2;
    let mut seq = 0u32;
    while w.bytes_written() < min_bytes {
        for t in 1..=4u32 {
            // Each thread's batches cover the same span of time, so the reader must hold
            // one of each thread's at once to merge them.
            let base = u64::from(seq) * events;
            w.write_events(ThreadId(t), seq, base, &buf)?;
        }
        seq += 1;
    }
    Ok(())
}

fn extremes<W: Write>(w: &mut TraceWriter<W>, min_bytes: u64) -> io::Result<()> {
    let mut table = base_table();
    // A later clock of one tick per century: every tick is a huge number of nanoseconds.
    table.clock(&clock(1.0 / 3.2e9));
    w.write_table(&table, true)?;
    let mut s = Stream::new(ThreadId(1), 64 << 10);
    let half = 1u64 << 63;
    let mut task = 1u64;
    while w.bytes_written() < min_bytes {
        // Spans of 2^63 ticks: every begin at the same instant, every end 2^63 later
        // (the timestamp wraps back at the next begin).
        for k in [
            EventKind::RegionBegin { name: StrId(1) },
            EventKind::Park,
            EventKind::BlockBegin {
                reason: BlockReason::Io,
                site: SiteId(1),
            },
            EventKind::TaskCreate {
                task: TaskId(task),
                parent: TaskId(u64::MAX),
                name: StrId(3),
                site: SiteId(u32::MAX),
            },
            EventKind::PollStart { task: TaskId(task) },
        ] {
            s.push(w, 0, &k)?;
        }
        s.push(
            w,
            half,
            &EventKind::PollEnd {
                task: TaskId(task),
                ready: true,
            },
        )?;
        for k in [
            EventKind::BlockEnd,
            EventKind::Unpark,
            EventKind::RegionEnd { name: StrId(1) },
            EventKind::TaskDrop { task: TaskId(task) },
            EventKind::Loss {
                reason: LossReason::PoolExhausted,
                events: u64::MAX,
                bytes: u64::MAX,
            },
        ] {
            s.push(w, 0, &k)?;
        }
        // Back to the same instant for the next round.
        s.push(
            w,
            half,
            &EventKind::Wake {
                task: TaskId(task),
                waker: TaskId(u64::MAX),
            },
        )?;
        task += 1;
        if s.len > 60 << 10 {
            s.flush(w)?;
            // Skip billions of sequence numbers: "missing" batches by the billion.
            s.seq = s.seq.wrapping_add(u32::MAX / 2);
        }
    }
    s.flush(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_is_a_whole_valid_trace() {
        for shape in Shape::ALL {
            let min = if shape == Shape::BigBatches {
                20 << 20
            } else {
                300 << 10
            };
            let bytes = build(shape, min);
            assert!(bytes.len() as u64 >= min, "{shape:?}");
            let mut d = fdr_format::Decoder::new(&bytes).unwrap();
            let mut events = 0u64;
            while let Some(b) = d.next_batch() {
                match b.unwrap_or_else(|e| panic!("{shape:?}: {e}")) {
                    fdr_format::Batch::Events(b) => {
                        for e in b.events() {
                            e.unwrap_or_else(|e| panic!("{shape:?}: {e}"));
                            events += 1;
                        }
                    }
                    fdr_format::Batch::Table(t) => {
                        for r in t.records() {
                            r.unwrap();
                        }
                    }
                }
            }
            assert!(events > 100, "{shape:?}");
        }
    }
}
