//! Fuzz target: the fdr trace decoder over arbitrary bytes.
//!
//! Every input is decoded three ways (borrowed slice, `Bytes`, and a reader that returns
//! short reads and `Interrupted` errors), through every batch, event and table record; the
//! three must agree exactly, and `batch_spans` + `batch_at` must find the same batches and
//! the same first error. An input that stops at a checksum mismatch is then decoded again
//! with its file-header and batch checksums recomputed, so that mutations reach the event
//! and record parsers instead of stopping at the checksum.
//!
//! Memory: a counting global allocator measures the peak of live heap bytes. Decoding
//! (the `Decoder`, `Events` and `Records` path) may use at most `4 x input + DECODE_SLACK_BYTES`
//! (target S1). `Tables` then runs in a second pass with a looser bound: its hash maps hold
//! one entry per distinct id, and a 3-byte string record (`kind, id, len 0`) becomes a
//! 24-byte map slot, so tables may use `TABLES_BYTES_PER_INPUT_BYTE x input + slack`.
//! Exceeding a bound aborts, which libFuzzer reports as a crash.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use fdr_format::checksum::batch_checksum;
use fdr_format::decode::{batch_at, batch_spans};
use fdr_format::wire::{
    BATCH_HEADER_CHECKED_LEN, BATCH_HEADER_LEN, FILE_HEADER_CHECKSUM_LEN, FILE_HEADER_FIXED_LEN,
    MAGIC,
};
use fdr_format::{
    Batch, DecodeError, Decoder, ErrorKind, EventKind, Input, Message, TableRecord, Tables,
};
use libfuzzer_sys::fuzz_target;

/// Heap bytes the decode pass may use beyond 4x the input (a reader's first buffer step).
const DECODE_SLACK_BYTES: usize = 8 * 1024;
/// Heap bytes per input byte the `Tables` pass may use (see the module docs).
const TABLES_BYTES_PER_INPUT_BYTE: usize = 48;
/// Heap bytes the `Tables` pass may use beyond that (empty maps' first allocations).
const TABLES_SLACK_BYTES: usize = 16 * 1024;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(n: usize) {
    let live = LIVE_BYTES.fetch_add(n, Relaxed) + n;
    PEAK_BYTES.fetch_max(live, Relaxed);
}

fn shrank(n: usize) {
    LIVE_BYTES.fetch_sub(n, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and
// only updates counters; it upholds `GlobalAlloc`'s contract exactly as `System` does.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as if old and new blocks coexist for a moment, as they may.
        grew(new_size);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            shrank(new_size);
        } else {
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Starts measuring: the peak restarts from what is live now.
fn measure_from() -> usize {
    let live = LIVE_BYTES.load(Relaxed);
    PEAK_BYTES.store(live, Relaxed);
    live
}

fn check_peak(what: &str, base: usize, limit: usize, input_len: usize) {
    let used = PEAK_BYTES.load(Relaxed).saturating_sub(base);
    if used > limit {
        eprintln!("{what}: peak heap {used} bytes for a {input_len}-byte input (limit {limit})");
        std::process::abort();
    }
}

/// A reader that hands out the input in short pieces and now and then fails with
/// `Interrupted`, on a schedule drawn from the input itself.
struct ChoppyReader<'a> {
    data: &'a [u8],
    pos: usize,
    rng: u32,
}

impl<'a> ChoppyReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        let seed = data.iter().rev().take(4).fold(0x9e37_79b9u32, |h, &b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
        ChoppyReader {
            data,
            pos: 0,
            rng: seed | 1,
        }
    }

    fn next(&mut self) -> u32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        self.rng
    }
}

impl Read for ChoppyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.next();
        if r % 7 == 0 {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let piece = match r % 4 {
            0 => 1,
            1 => 1 + (r >> 8) as usize % 16,
            _ => usize::MAX,
        };
        let n = piece.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What one decode saw; equal across input kinds for the same bytes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    header: Option<DecodeError>,
    batches: u64,
    events: u64,
    records: u64,
    skipped_events: u64,
    skipped_records: u64,
    event_errors: u64,
    record_errors: u64,
    table_errors: u64,
    /// A fold of every decoded value, so inputs that decode differently disagree here.
    digest: u64,
    end: Option<DecodeError>,
    stats_bytes: u64,
}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29)
}

fn digest_event(h: u64, ts: u64, kind: &EventKind<'_>) -> u64 {
    let h = mix(mix(h, ts), kind.index() as u64);
    match *kind {
        EventKind::RegionBegin { name } | EventKind::RegionEnd { name } => mix(h, name.0 as u64),
        EventKind::Log { category, message } => {
            let h = mix(h, category.0 as u64);
            match message {
                Message::Interned(id) => mix(h, id.0 as u64),
                Message::Inline(text) => {
                    text.iter().fold(mix(h, 1 << 40), |h, &b| mix(h, b as u64))
                }
            }
        }
        EventKind::TaskCreate {
            task,
            parent,
            name,
            site,
        } => mix(
            mix(mix(mix(h, task.0), parent.0), name.0 as u64),
            site.0 as u64,
        ),
        EventKind::PollStart { task }
        | EventKind::TaskDrop { task }
        | EventKind::UserTaskEnd { task } => mix(h, task.0),
        EventKind::PollEnd { task, ready } => mix(mix(h, task.0), ready as u64),
        EventKind::Wake { task, waker } => mix(mix(h, task.0), waker.0),
        EventKind::UserTaskBegin { task, parent, name } => {
            mix(mix(mix(h, task.0), parent.0), name.0 as u64)
        }
        EventKind::BlockBegin { reason, site } => {
            mix(mix(h, reason.to_wire() as u64), site.0 as u64)
        }
        EventKind::Metric { name, value } => mix(mix(h, name.0 as u64), value.to_bits()),
        EventKind::OtelLink {
            task,
            trace_id,
            span_id,
        } => mix(
            mix(mix(h, task.0), u128::from_le_bytes(trace_id) as u64),
            u64::from_le_bytes(span_id),
        ),
        EventKind::Loss {
            reason,
            events,
            bytes,
        } => mix(mix(mix(h, reason.to_wire() as u64), events), bytes),
        EventKind::OsSample {
            thread,
            cause,
            cpu_ns,
            runq_ns,
            timeslices,
            state,
        } => [cpu_ns, runq_ns, timeslices, state.map(u64::from)]
            .into_iter()
            .fold(
                mix(mix(h, thread.0 as u64), cause.to_wire() as u64),
                |h, v| mix(h, v.map_or(u64::MAX, |v| v)),
            ),
        EventKind::Stack {
            thread,
            cause,
            truncated,
            frames,
            age_ticks,
        } => frames.iter().fold(
            mix(
                mix(
                    mix(mix(h, thread.0 as u64), cause.to_wire() as u64),
                    truncated as u64,
                ),
                age_ticks.map_or(u64::MAX, |a| a),
            ),
            mix,
        ),
        EventKind::AsyncRegionBegin { region, task, name } => {
            mix(mix(mix(h, region), task.0), name.0 as u64)
        }
        EventKind::AsyncRegionEnd { region, task } => mix(mix(h, region), task.0),
        EventKind::ThreadStart
        | EventKind::ThreadEnd
        | EventKind::BlockEnd
        | EventKind::Park
        | EventKind::Unpark => h,
    }
}

fn digest_record(h: u64, r: &TableRecord<'_>) -> u64 {
    match *r {
        TableRecord::String { id, text } => text
            .iter()
            .fold(mix(h, id.0 as u64), |h, &b| mix(h, b as u64)),
        TableRecord::Site {
            id,
            file,
            line,
            col,
        } => mix(
            mix(mix(mix(h, id.0 as u64), file.0 as u64), line as u64),
            col as u64,
        ),
        TableRecord::Thread {
            thread,
            os_tid,
            name,
        } => name
            .iter()
            .fold(mix(mix(h, thread.0 as u64), os_tid), |h, &b| {
                mix(h, b as u64)
            }),
        TableRecord::Clock(c) => mix(
            mix(mix(mix(h, c.ticks), c.mono_ns), c.wall_unix_ns),
            c.ticks_per_sec.to_bits(),
        ),
        TableRecord::Module {
            start,
            end,
            file_offset,
            path,
            build_id,
        } => path
            .iter()
            .chain(build_id)
            .fold(mix(mix(mix(h, start), end), file_offset), |h, &b| {
                mix(h, b as u64)
            }),
    }
}

/// Decodes everything; with `tables`, also applies every table batch to it.
fn decode_all<I: Input>(
    decoder: Result<Decoder<I>, DecodeError>,
    mut tables: Option<&mut Tables>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut d = match decoder {
        Ok(d) => d,
        Err(e) => {
            out.header = Some(e);
            return out;
        }
    };
    let info = d.process_info();
    out.digest = mix(
        mix(info.pid as u64, info.start_unix_ns),
        info.program.len() as u64,
    );
    // The decoder stops after its first error or the end marker; the bound is a backstop.
    let max_batches = d.remaining_hint().unwrap_or(u64::MAX) / BATCH_HEADER_LEN as u64 + 2;
    let mut batches = 0u64;
    while let Some(b) = d.next_batch() {
        batches += 1;
        assert!(
            batches <= max_batches,
            "decoder yielded more batches than the input holds"
        );
        match b {
            Err(e) => {
                out.end = Some(e);
                break;
            }
            Ok(Batch::Events(b)) => {
                out.batches += 1;
                out.digest = mix(
                    mix(mix(out.digest, b.thread.0 as u64), b.seq as u64),
                    b.base_ts,
                );
                let mut events = b.events();
                for e in &mut events {
                    match e {
                        Ok(e) => {
                            out.events += 1;
                            out.digest = digest_event(out.digest, e.ts, &e.kind);
                        }
                        Err(e) => {
                            assert!(
                                e.offset >= b.offset
                                    && e.offset
                                        < b.offset
                                            + BATCH_HEADER_LEN as u64
                                            + b.payload.len() as u64
                            );
                            out.event_errors += 1;
                            out.digest = mix(out.digest, e.offset);
                        }
                    }
                }
                assert!(events.next().is_none(), "events after an error or the end");
                out.skipped_events += events.skipped_unknown();
            }
            Ok(Batch::Table(t)) => {
                out.batches += 1;
                let mut records = t.records();
                for r in &mut records {
                    match r {
                        Ok(r) => {
                            out.records += 1;
                            out.digest = digest_record(out.digest, &r);
                        }
                        Err(e) => {
                            out.record_errors += 1;
                            out.digest = mix(out.digest, e.offset);
                        }
                    }
                }
                assert!(
                    records.next().is_none(),
                    "records after an error or the end"
                );
                out.skipped_records += records.skipped_unknown();
                if let Some(tables) = tables.as_deref_mut()
                    && tables.apply(&t).is_err()
                {
                    out.table_errors += 1;
                }
            }
        }
    }
    assert!(
        d.next_batch().is_none(),
        "batches after an error or the end marker"
    );
    out.stats_bytes = d.stats().bytes;
    out
}

/// The input with its file-header and batch checksums recomputed, where the framing allows.
fn repair_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.len() < FILE_HEADER_FIXED_LEN || out[..MAGIC.len()] != MAGIC {
        return out;
    }
    let info_len = u32::from_le_bytes(out[12..16].try_into().unwrap()) as usize;
    let sum_at = FILE_HEADER_FIXED_LEN + info_len;
    let Some(sum_end) = sum_at.checked_add(FILE_HEADER_CHECKSUM_LEN) else {
        return out;
    };
    if sum_end > out.len() {
        return out;
    }
    let sum = batch_checksum(&[], &out[MAGIC.len()..sum_at]);
    out[sum_at..sum_end].copy_from_slice(&sum.to_le_bytes());
    let mut pos = sum_end;
    while pos + BATCH_HEADER_LEN <= out.len() {
        let len = u32::from_le_bytes(out[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let end = pos + BATCH_HEADER_LEN + len;
        if end > out.len() {
            break;
        }
        let sum = batch_checksum(
            &out[pos..pos + BATCH_HEADER_CHECKED_LEN],
            &out[pos + BATCH_HEADER_LEN..end],
        );
        out[pos + BATCH_HEADER_CHECKED_LEN..pos + BATCH_HEADER_LEN]
            .copy_from_slice(&sum.to_le_bytes());
        pos = end;
    }
    out
}

/// Batches before the first error, and that error, through `batch_spans` + `batch_at`:
/// what the sequential decoder yields.
fn via_spans(data: &[u8]) -> (u64, Option<DecodeError>) {
    let spans = match batch_spans(data) {
        Err(e) => return (0, Some(e)),
        Ok(spans) => spans,
    };
    let mut n = 0;
    for s in spans {
        match s.and_then(|s| batch_at(data, s)) {
            Ok(_) => n += 1,
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// Checks one input; returns whether decoding stopped at a checksum mismatch.
fn check_input(data: &[u8]) -> bool {
    // Made before measuring: the input copies are the caller's, not the decoder's.
    let bytes = Bytes::copy_from_slice(data);
    let bytes_clone = bytes.clone();

    let base = measure_from();
    let a = decode_all(Decoder::new(data), None);
    let b = decode_all(Decoder::from_bytes(bytes_clone), None);
    let c = decode_all(Decoder::from_reader(ChoppyReader::new(data)), None);
    let spans = via_spans(data);
    check_peak(
        "decode",
        base,
        4 * data.len() + DECODE_SLACK_BYTES,
        data.len(),
    );
    assert_eq!(a, b, "slice and Bytes inputs disagree");
    assert_eq!(a, c, "slice and reader inputs disagree");
    let first_error = a.header.clone().or_else(|| a.end.clone());
    assert_eq!(
        spans,
        (a.batches, first_error.clone()),
        "batch_spans + batch_at disagree with Decoder"
    );

    let mut tables = Tables::new();
    let base = measure_from();
    let t = decode_all(Decoder::new(data), Some(&mut tables));
    check_peak(
        "tables",
        base,
        TABLES_BYTES_PER_INPUT_BYTE * data.len() + TABLES_SLACK_BYTES,
        data.len(),
    );
    assert_eq!(t.table_errors, t.record_errors);
    drop(tables);
    drop(bytes);
    matches!(first_error, Some(e) if matches!(e.kind, ErrorKind::Checksum { .. }))
}

fuzz_target!(|data: &[u8]| {
    if check_input(data) {
        check_input(&repair_checksums(data));
    }
});
