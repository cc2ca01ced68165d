//! The streaming reader on two threads, for traces large enough to pay for the second: a
//! scoped reader thread decodes and merges the batches exactly as [`crate::stream`] does on
//! one, and hands the events, in delivery order, to the caller's thread in chunks, with the
//! table batches, gaps and progress in between; the caller's thread keeps the tables and
//! runs the visitor. The visitor sees the same calls, in the same order, with the same
//! tables and clock as on one thread.
//!
//! Memory stays bounded: at most [`QUEUED_CHUNKS`] chunks wait between the threads, one is
//! filled and one delivered, and [`SPARE_CHUNKS`] emptied ones are kept for reuse, each at
//! most [`CHUNK_EVENTS`] events (64 KiB) and [`CHUNK_BYTES`] of the bytes they borrow (inline
//! messages; the known fields of a stack, OS sample, link or async region, never what a
//! newer minor appended) plus one event's (at most 64 KiB): under 10 MiB. The reader thread keeps no tables (it checks each table
//! batch and follows its clock records); the caller's thread keeps them, as on one thread.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use fdr_format::decode::Input;
use fdr_format::{Decoder, ProcessInfo, TableBatch, Tables, TaskId, ThreadId};

use crate::limits::TABLE_LIMITS;
use crate::stream::{
    self, Clock, Delivery, EndCx, EventCx, Feed, Pending, Progress, ReadOptions, ReadOutcome,
    ReadStats, Visitor,
};

/// Traces at least this large (when their size is known) are read on two threads.
pub(crate) const MIN_BYTES: u64 = 4 << 20;
/// Events in a chunk.
const CHUNK_EVENTS: usize = 1024;
/// A chunk is handed over once the bytes its events borrow (log messages, rarer kinds'
/// fields) reach this.
const CHUNK_BYTES: usize = 64 << 10;
/// Chunks (and other messages) waiting between the threads: about 3 ms of the profile's
/// work, so that neither thread waits for the other at every turn of a busy machine's
/// scheduler.
const QUEUED_CHUNKS: usize = 32;
/// Emptied chunks kept for reuse.
const SPARE_CHUNKS: usize = 8;

/// Whether a trace of `total_bytes` is read on two threads: when it is large enough and
/// this process may run two at once.
pub(crate) fn worth_it(total_bytes: Option<u64>) -> bool {
    total_bytes.is_some_and(|t| t >= MIN_BYTES)
        && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

/// One event as the reader thread delivered it, its time in nanoseconds worked out there
/// (the caller's thread, which runs the visitor, is the busier one).
struct Delivered {
    pending: Pending,
    ns: u64,
    thread: ThreadId,
    task: TaskId,
    late: bool,
}

/// Events in delivery order, their inline bytes, and the clock they were delivered with.
struct Chunk {
    events: Vec<Delivered>,
    bytes: Vec<u8>,
    clock: Clock,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            events: Vec::with_capacity(CHUNK_EVENTS),
            bytes: Vec::new(),
            clock: Clock {
                origin_ticks: 0,
                ns_per_tick: 1.0,
                origin_wall_unix_ns: None,
            },
        }
    }
}

/// What the reader thread hands over, in the order the visitor is to see it.
enum Msg {
    Events(Chunk),
    Table {
        offset: u64,
        full: bool,
        payload: Vec<u8>,
    },
    Gap(ThreadId, u64),
    Progress(Progress),
    End {
        last_ts: u64,
        last_ns: u64,
        clock: Clock,
        stats: ReadStats,
    },
}

/// The reader thread's visitor: gathers events into chunks and sends them on.
struct Sink {
    tx: SyncSender<Msg>,
    spare: Receiver<Chunk>,
    chunk: Chunk,
    /// The caller's thread is gone (it panicked): read no further.
    closed: bool,
}

impl Sink {
    fn send(&mut self, m: Msg) {
        if !self.closed && self.tx.send(m).is_err() {
            self.closed = true;
        }
    }

    fn flush(&mut self) {
        if self.chunk.events.is_empty() {
            return;
        }
        let next = self.spare.try_recv().unwrap_or_else(|_| Chunk::new());
        let full = std::mem::replace(&mut self.chunk, next);
        self.send(Msg::Events(full));
    }
}

impl Feed for Sink {
    const KEEP_TABLES: bool = false;

    /// The caller's thread has the header already.
    fn start(&mut self, _info: &ProcessInfo) {}

    fn table(&mut self, batch: &TableBatch<'_>) {
        self.flush();
        self.send(Msg::Table {
            offset: batch.offset,
            full: batch.full,
            payload: batch.payload.to_vec(),
        });
    }

    fn cancelled(&self) -> bool {
        self.closed
    }

    #[inline(always)]
    fn deliver(&mut self, pending: &Pending, bytes: &[u8], d: &Delivery<'_>) {
        if self.closed {
            return;
        }
        let c = &mut self.chunk;
        if c.events.is_empty() {
            c.clock = *d.clock;
        }
        // Copied once, into the chunk; its borrowed bytes (if any) follow it there.
        c.events.push(Delivered {
            pending: *pending,
            ns: d.ns,
            thread: d.thread,
            task: d.task,
            late: d.late,
        });
        if let Some(last) = c.events.last_mut() {
            last.pending.move_bytes(bytes, &mut c.bytes);
        }
        if c.events.len() >= CHUNK_EVENTS || c.bytes.len() >= CHUNK_BYTES {
            self.flush();
        }
    }

    fn gap(&mut self, thread: ThreadId, missing: u64) {
        self.flush();
        self.send(Msg::Gap(thread, missing));
    }

    fn end(&mut self, cx: &EndCx<'_>) {
        self.flush();
        self.send(Msg::End {
            last_ts: cx.last_ts,
            last_ns: cx.last_ns,
            clock: *cx.clock,
            stats: *cx.stats,
        });
    }

    /// The caller's thread keeps tables of its own.
    fn take_tables(&mut self, _tables: Tables) {}
}

/// Reads `decoder` into `visitor` as [`stream`]'s reader does, decoding and merging on a
/// second thread; on one thread when that thread cannot be started.
pub(crate) fn drive<I: Input + Send>(
    decoder: Decoder<I>,
    total_bytes: Option<u64>,
    visitor: &mut dyn Visitor,
    opts: ReadOptions<'_>,
) -> ReadOutcome {
    let ReadOptions {
        window_bytes,
        mut progress,
    } = opts;
    let wants_progress = progress.is_some();
    let info = decoder.process_info().clone();
    // Taken by the reader thread; still here if it could not be started.
    let slot = Mutex::new(Some(decoder));
    let (tx, rx) = sync_channel::<Msg>(QUEUED_CHUNKS);
    let (spare_tx, spare_rx) = sync_channel::<Chunk>(SPARE_CHUNKS);
    let started = std::thread::scope(|s| {
        let slot = &slot;
        let reader = std::thread::Builder::new()
            .name("fdr-read".into())
            .spawn_scoped(s, move || {
                let decoder = slot
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .expect("the decoder is taken once");
                let progress_tx = tx.clone();
                let mut report = move |p: Progress| {
                    let _ = progress_tx.send(Msg::Progress(p));
                };
                let opts = ReadOptions {
                    window_bytes,
                    progress: if wants_progress {
                        Some(&mut report)
                    } else {
                        None
                    },
                };
                let sink = Sink {
                    tx,
                    spare: spare_rx,
                    chunk: Chunk::new(),
                    closed: false,
                };
                stream::drive(decoder, total_bytes, sink, opts)
            });
        let Ok(reader) = reader else {
            return None;
        };
        visitor.start(&info);
        let mut tables = Tables::with_limits(TABLE_LIMITS);
        // Ends when the reader thread is done (its senders dropped). The receiver is moved
        // in here, so a panic of the visitor drops it as it unwinds, before the scope waits
        // for the reader thread: that thread's next send fails and it stops.
        for msg in rx {
            match msg {
                Msg::Events(mut chunk) => {
                    for d in &chunk.events {
                        let ts = d.pending.ts();
                        visitor.event(&EventCx {
                            thread: d.thread,
                            ts,
                            ns: d.ns,
                            kind: d.pending.kind(&chunk.bytes),
                            task: d.task,
                            late: d.late,
                            tables: &tables,
                            clock: &chunk.clock,
                        });
                    }
                    chunk.events.clear();
                    chunk.bytes.clear();
                    let _ = spare_tx.try_send(chunk);
                }
                Msg::Table {
                    offset,
                    full,
                    payload,
                } => {
                    // An error here is the reader thread's too: it stops there and says so.
                    let _ = tables.apply(&TableBatch {
                        offset,
                        full,
                        payload: &payload,
                    });
                }
                Msg::Gap(thread, missing) => visitor.gap(thread, missing),
                Msg::Progress(p) => {
                    if let Some(f) = progress.as_mut() {
                        f(p);
                    }
                }
                Msg::End {
                    last_ts,
                    last_ns,
                    clock,
                    stats,
                } => {
                    visitor.end(&EndCx {
                        last_ts,
                        last_ns,
                        tables: &tables,
                        clock: &clock,
                        stats: &stats,
                    });
                    visitor.take_tables(std::mem::take(&mut tables));
                }
            }
        }
        Some(match reader.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    });
    match started {
        Some(out) => out,
        None => {
            let decoder = slot
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("the reader thread never started");
            stream::drive(
                decoder,
                total_bytes,
                visitor,
                ReadOptions {
                    window_bytes,
                    progress,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdr_format::EventKind;
    use fdr_format::testing::{every_kind_trace, sample_trace};

    /// Every call a visitor gets, as text: events with what the tables say of their names.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Visitor for Log {
        fn start(&mut self, info: &fdr_format::ProcessInfo) {
            self.0.push(format!("start {}", info.program));
        }
        fn event(&mut self, cx: &EventCx<'_>) {
            let name = match cx.kind {
                EventKind::RegionBegin { name }
                | EventKind::TaskCreate { name, .. }
                | EventKind::UserTaskBegin { name, .. } => cx.tables.name(name).into_owned(),
                _ => String::new(),
            };
            self.0.push(format!(
                "{:?} {} {} {} {} {:?} {name} {:?}",
                cx.thread, cx.ts, cx.ns, cx.task.0, cx.late, cx.kind, cx.clock
            ));
        }
        fn gap(&mut self, thread: ThreadId, missing: u64) {
            self.0.push(format!("gap {thread:?} {missing}"));
        }
        fn end(&mut self, cx: &EndCx<'_>) {
            self.0.push(format!(
                "end {} {} {:?} {:?} {:?}",
                cx.last_ts,
                cx.last_ns,
                cx.clock,
                cx.stats,
                cx.tables.clock()
            ));
        }
        fn take_tables(&mut self, tables: Tables) {
            self.0.push(format!(
                "tables {:?} {:?}",
                tables.thread(ThreadId(1)),
                tables.dropped()
            ));
        }
    }

    /// A trace just past [`MIN_BYTES`], written once for the tests that need one.
    fn large() -> &'static [u8] {
        static TRACE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        TRACE.get_or_init(|| {
            fdr_test_support::scenarios::write_large(Vec::new(), MIN_BYTES + (1 << 20)).unwrap()
        })
    }

    /// The calls and outcome of reading `bytes` on one thread, then on two.
    fn both(bytes: &[u8], window_bytes: usize) -> [(Vec<String>, String); 2] {
        let read = |two: bool| {
            let mut log = Log::default();
            let decoder = Decoder::new(bytes).unwrap();
            let total = Some(bytes.len() as u64);
            let opts = ReadOptions {
                window_bytes,
                progress: None,
            };
            let v: &mut dyn Visitor = &mut log;
            let out = if two {
                drive(decoder, total, v, opts)
            } else {
                stream::drive(decoder, total, v, opts)
            };
            (log.0, format!("{:?} {:?}", out.stats, out.error))
        };
        [read(false), read(true)]
    }

    #[test]
    fn a_chunk_of_events_takes_what_the_memory_bound_counts() {
        assert!(size_of::<Delivered>() * CHUNK_EVENTS <= 64 << 10);
    }

    #[test]
    fn two_threads_deliver_what_one_does() {
        for trace in [sample_trace(), every_kind_trace()] {
            for window_bytes in [32 << 20, 1] {
                let [one, two] = both(&trace, window_bytes);
                assert!(one.0.len() > 10, "{:?}", one.0);
                assert_eq!(one, two);
            }
        }
    }

    #[test]
    fn two_threads_stop_where_one_does_on_a_cut_or_damaged_trace() {
        let trace = every_kind_trace();
        for cut in (0..trace.len()).step_by(7) {
            let mut t = trace.clone();
            t.truncate(cut);
            if Decoder::new(&t[..]).is_err() {
                continue;
            }
            let [one, two] = both(&t, 32 << 20);
            assert_eq!(one, two, "cut at {cut}");
        }
        for at in (64..trace.len()).step_by(11) {
            let mut t = trace.clone();
            t[at] ^= 0x5a;
            if Decoder::new(&t[..]).is_err() {
                continue;
            }
            let [one, two] = both(&t, 32 << 20);
            assert_eq!(one, two, "byte {at} flipped");
        }
    }

    /// A digest of every event (its thread, time, task, lateness and kind) and the outcome.
    #[derive(Default, PartialEq, Debug)]
    struct Digest(u64, u64);

    impl Visitor for Digest {
        fn event(&mut self, cx: &EventCx<'_>) {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (self.0, cx.thread, cx.ts, cx.ns, cx.task, cx.late).hash(&mut h);
            cx.kind.index().hash(&mut h);
            self.0 = h.finish();
            self.1 += 1;
        }
    }

    #[test]
    fn a_trace_this_large_is_read_on_two_threads_and_reads_the_same() {
        let trace = large();
        assert!(worth_it(Some(trace.len() as u64)) || !worth_it(Some(u64::MAX)));
        assert!(!worth_it(Some(MIN_BYTES - 1)) && !worth_it(None));
        let mut one = Digest::default();
        let decoder = Decoder::new(trace).unwrap();
        let total = Some(trace.len() as u64);
        let v: &mut dyn Visitor = &mut one;
        let out_one = stream::drive(decoder, total, v, ReadOptions::default());
        // Through the public entry point, which picks two threads for it.
        let mut two = Digest::default();
        let out_two = stream::read_slice(trace, &mut two, ReadOptions::default()).unwrap();
        assert!(one.1 > 500_000 && out_one.error.is_none());
        assert_eq!(one, two);
        assert_eq!(out_one.stats, out_two.stats);
    }

    #[test]
    fn a_panicking_visitor_ends_the_reader_thread_and_the_panic_reaches_the_caller() {
        struct Fails(u64);
        impl Visitor for Fails {
            fn event(&mut self, _cx: &EventCx<'_>) {
                self.0 += 1;
                assert!(self.0 < 100, "visitor gives up");
            }
        }
        // Large enough that the reader thread fills the queue and waits on it.
        let trace = large();
        let r = std::panic::catch_unwind(|| {
            let mut v = Fails(0);
            let decoder = Decoder::new(trace).unwrap();
            drive(decoder, None, &mut v, ReadOptions::default())
        });
        let msg = r.expect_err("the panic comes through");
        let text = msg
            .downcast_ref::<&str>()
            .map(|m| m.to_string())
            .or_else(|| msg.downcast_ref::<String>().cloned());
        assert!(text.is_some_and(|m| m.contains("gives up")));
    }

    #[test]
    fn progress_reaches_the_callers_callback() {
        let trace = large();
        let mut seen = Vec::new();
        let mut f = |p: Progress| seen.push(p.bytes);
        let decoder = Decoder::new(trace).unwrap();
        let opts = ReadOptions {
            window_bytes: 32 << 20,
            progress: Some(&mut f),
        };
        let out = drive(
            decoder,
            Some(trace.len() as u64),
            &mut Digest::default(),
            opts,
        );
        assert!(out.error.is_none());
        assert!(seen.len() >= 2, "{seen:?}");
        assert_eq!(seen.last(), Some(&out.stats.bytes));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }
}
