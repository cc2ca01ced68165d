//! `fdr summary`: duration, threads, tasks, events by kind, loss and clock, in one
//! parallel pass.
//!
//! Batches are self-contained, so the summary needs no merge: the reading thread checks
//! and copies batches into a block of a few megabytes while worker threads decode the
//! previous block, split into ranges of batches. Memory is two blocks plus one counter
//! set per thread of the trace, for the first [`MAX_THREADS`] threads: events of later
//! threads count in the totals but get no row of their own, and the summary says so.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use fdr_format::decode::Input;
use fdr_format::{
    Batch, DecodeError, Decoder, EVENT_KIND_COUNT, EVENT_KIND_NAMES, EventBatch, EventKind, Kind,
    ProcessInfo, Tables, ThreadId,
};

use crate::error::{AnalyzeError, TraceError};
use crate::limits::{DistinctCount, MAX_THREADS, TABLE_LIMITS, Truncated, notes_text};
use crate::stream::{Progress, ReadStats};
use crate::text::{self, esc};

/// Bytes per block handed to the workers: event payloads, and [`BATCH_COST_BYTES`] per
/// batch for its entry.
const BLOCK_BYTES: usize = 8 << 20;
/// A block costing less than this is decoded on the reading thread: starting and joining
/// the workers takes longer than decoding it (a trace this small is one block).
const INLINE_BLOCK_BYTES: usize = 64 << 10;
/// What a batch's entry in a block counts for, beyond its payload.
const BATCH_COST_BYTES: usize = 64;

/// Per-thread counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThreadSummary {
    /// The thread's name from the tables (may be empty).
    pub name: String,
    /// Events recorded.
    pub events: u64,
    /// Event batches.
    pub batches: u64,
    /// Batches missing from its sequence.
    pub missing_batches: u64,
}

/// Events lost for one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LossSummary {
    /// Loss records.
    pub records: u64,
    /// Events lost.
    pub events: u64,
    /// Bytes lost.
    pub bytes: u64,
}

/// What `fdr summary` reports.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The file header.
    pub info: ProcessInfo,
    /// Size of the input.
    pub file_bytes: Option<u64>,
    /// What was read.
    pub stats: ReadStats,
    /// First and last event timestamps in ticks.
    pub first_ts: Option<u64>,
    /// Last event timestamp in ticks.
    pub last_ts: u64,
    /// Duration from the first to the last event.
    pub duration_ns: u64,
    /// Ticks per second from the clock sync, if any.
    pub ticks_per_sec: Option<f64>,
    /// Wall-clock Unix ns of the first event, if the trace has a clock sync.
    pub start_wall_unix_ns: Option<i128>,
    /// Events by kind ([`EventKind::index`] order).
    pub events_by_kind: [u64; EVENT_KIND_COUNT],
    /// Per recording thread.
    pub threads: BTreeMap<u32, ThreadSummary>,
    /// Loss by reason name.
    pub loss: BTreeMap<&'static str, LossSummary>,
    /// Strings, sites in the tables.
    pub strings: usize,
    /// Sites in the tables.
    pub sites: usize,
    /// Why reading stopped early, if it did.
    pub error: Option<TraceError>,
    /// Events of threads without a row (past the first [`MAX_THREADS`]).
    pub untracked_thread_events: u64,
    /// What the summary left out (rows of threads past its limit, table definitions).
    pub truncated: Vec<Truncated>,
}

#[derive(Default)]
struct Partial {
    kinds: [u64; EVENT_KIND_COUNT],
    threads: HashMap<ThreadId, u64>,
    untracked_events: u64,
    first_ts: Option<u64>,
    last_ts: u64,
    loss: HashMap<&'static str, LossSummary>,
    skipped_unknown: u64,
    error: Option<DecodeError>,
}

impl Partial {
    /// Counts a batch's events: under its thread when `tracked`, else as untracked.
    fn batch(&mut self, b: &EventBatch<'_>, tracked: bool) {
        let mut events = b.events();
        let mut n = 0u64;
        let mut first = None;
        // Raw: a count needs each event's time and kind only, so no `EventKind` is made
        // but a loss record's.
        let loss = &mut self.loss;
        let kinds = &mut self.kinds;
        let decoded = events.decode_raw_up_to(usize::MAX, |r| {
            first.get_or_insert(r.ts());
            n += 1;
            let k = r.which();
            kinds[k.index()] += 1;
            if k == Kind::Loss
                && let EventKind::Loss {
                    reason,
                    events,
                    bytes,
                } = r.kind(b.payload)
            {
                let l = loss.entry(reason.as_str()).or_default();
                l.records += 1;
                l.events = l.events.saturating_add(events);
                l.bytes = l.bytes.saturating_add(bytes);
            }
        });
        if let Err(e) = decoded
            && self.error.as_ref().is_none_or(|x| e.offset < x.offset)
        {
            self.error = Some(e);
        }
        self.skipped_unknown += events.skipped_unknown();
        if let Some(f) = first {
            self.first_ts = Some(self.first_ts.map_or(f, |x| x.min(f)));
            self.last_ts = self.last_ts.max(events.last_ts());
        }
        if tracked {
            *self.threads.entry(b.thread).or_default() += n;
        } else {
            self.untracked_events += n;
        }
    }

    fn merge(&mut self, o: Partial) {
        for (a, b) in self.kinds.iter_mut().zip(o.kinds) {
            *a += b;
        }
        for (t, n) in o.threads {
            *self.threads.entry(t).or_default() += n;
        }
        self.untracked_events += o.untracked_events;
        if let Some(f) = o.first_ts {
            self.first_ts = Some(self.first_ts.map_or(f, |x| x.min(f)));
        }
        self.last_ts = self.last_ts.max(o.last_ts);
        for (r, l) in o.loss {
            let x = self.loss.entry(r).or_default();
            x.records += l.records;
            x.events = x.events.saturating_add(l.events);
            x.bytes = x.bytes.saturating_add(l.bytes);
        }
        self.skipped_unknown += o.skipped_unknown;
        if let Some(e) = o.error
            && self.error.as_ref().is_none_or(|x| e.offset < x.offset)
        {
            self.error = Some(e);
        }
    }
}

/// Copied batches awaiting decode.
#[derive(Default)]
struct Block {
    data: Vec<u8>,
    /// Thread (`None`: untracked), base timestamp, offset, payload start and length.
    batches: Vec<(Option<ThreadId>, u64, u64, usize, usize)>,
}

impl Block {
    fn clear(&mut self) {
        self.data.clear();
        self.batches.clear();
    }

    fn decode_range(&self, range: std::ops::Range<usize>) -> Partial {
        let mut p = Partial::default();
        for &(thread, base_ts, offset, start, len) in &self.batches[range] {
            let b = EventBatch {
                offset,
                thread: thread.unwrap_or_default(),
                seq: 0,
                base_ts,
                payload: &self.data[start..start + len],
            };
            p.batch(&b, thread.is_some());
        }
        p
    }

    fn cost(&self) -> usize {
        self.data.len() + self.batches.len() * BATCH_COST_BYTES
    }
}

struct Reading<'p, I> {
    decoder: Decoder<I>,
    tables: Tables,
    stats: ReadStats,
    next_seq: HashMap<ThreadId, u32>,
    threads: BTreeMap<u32, ThreadSummary>,
    untracked: DistinctCount,
    error: Option<DecodeError>,
    done: bool,
    total: Option<u64>,
    last_progress: u64,
    progress: Option<&'p mut dyn FnMut(Progress)>,
}

impl<I: Input> Reading<'_, I> {
    /// Reads batches into `block` until it holds `BLOCK_BYTES` or the trace ends.
    fn fill(&mut self, block: &mut Block) {
        block.clear();
        while !self.done && block.cost() < BLOCK_BYTES {
            let Some(batch) = self.decoder.next_batch() else {
                self.done = true;
                break;
            };
            match batch {
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                }
                Ok(Batch::Table(t)) => {
                    if let Err(e) = self.tables.apply(&t) {
                        self.error = Some(e);
                        self.done = true;
                    }
                }
                Ok(Batch::Events(b)) => {
                    self.stats.event_batches += 1;
                    let tracked =
                        self.threads.len() < MAX_THREADS || self.threads.contains_key(&b.thread.0);
                    let thread = if tracked {
                        let t = self.threads.entry(b.thread.0).or_default();
                        t.batches += 1;
                        let next = self.next_seq.entry(b.thread).or_insert(b.seq);
                        if b.seq > *next {
                            let missing = (b.seq - *next) as u64;
                            t.missing_batches += missing;
                            self.stats.missing_batches += missing;
                        }
                        *next = b.seq.wrapping_add(1);
                        Some(b.thread)
                    } else {
                        self.stats.untracked_threads +=
                            u64::from(self.untracked.insert(b.thread.0));
                        self.stats.untracked_batches += 1;
                        self.stats.untracked_bytes +=
                            (fdr_format::wire::BATCH_HEADER_LEN + b.payload.len()) as u64;
                        None
                    };
                    let start = block.data.len();
                    block.data.extend_from_slice(b.payload);
                    block
                        .batches
                        .push((thread, b.base_ts, b.offset, start, b.payload.len()));
                }
            }
            if !self.done {
                self.stats.batches += 1;
                self.stats.bytes = self.decoder.stats().bytes;
            }
        }
        if let Some(p) = self.progress.as_mut()
            && (self.stats.bytes - self.last_progress >= 4 << 20 || self.done)
        {
            self.last_progress = self.stats.bytes;
            p(Progress {
                bytes: self.stats.bytes,
                total_bytes: self.total,
            });
        }
    }
}

/// Options of the summary pass.
#[derive(Default)]
pub struct SummaryOptions<'p> {
    /// Decoding threads (0: one per available core).
    pub threads: usize,
    /// Progress callback.
    pub progress: Option<&'p mut dyn FnMut(Progress)>,
}

impl std::fmt::Debug for SummaryOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryOptions")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Summarizes the trace at `path`.
pub fn summarize_file(path: &Path, opts: SummaryOptions<'_>) -> Result<Summary, AnalyzeError> {
    let (decoder, total) = crate::stream::open_trace(path)?;
    Ok(run(decoder, total, opts))
}

/// Summarizes a trace from any byte stream, in one pass (`total_bytes`, when known, is
/// for progress only).
pub fn summarize_reader<R: std::io::Read>(
    reader: R,
    total_bytes: Option<u64>,
    opts: SummaryOptions<'_>,
) -> Result<Summary, AnalyzeError> {
    Ok(run(
        crate::stream::decode_reader(reader)?,
        total_bytes,
        opts,
    ))
}

/// Summarizes a trace held in memory.
pub fn summarize_slice(bytes: &[u8], opts: SummaryOptions<'_>) -> Result<Summary, AnalyzeError> {
    let decoder = Decoder::new(bytes)
        .map_err(|e| AnalyzeError::Header(TraceError::new(e, ReadStats::default())))?;
    Ok(run(decoder, Some(bytes.len() as u64), opts))
}

fn run<I: Input>(decoder: Decoder<I>, total: Option<u64>, opts: SummaryOptions<'_>) -> Summary {
    let workers = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    }
    .clamp(1, 64);
    let info = decoder.process_info().clone();
    let mut r = Reading {
        decoder,
        tables: Tables::with_limits(TABLE_LIMITS),
        stats: ReadStats::default(),
        next_seq: HashMap::new(),
        threads: BTreeMap::new(),
        untracked: DistinctCount::default(),
        error: None,
        done: false,
        total,
        last_progress: 0,
        progress: opts.progress,
    };
    let mut total_p = Partial::default();
    let (mut cur, mut next) = (Block::default(), Block::default());
    r.fill(&mut cur);
    while !cur.batches.is_empty() {
        if cur.cost() < INLINE_BLOCK_BYTES {
            // Starting threads would cost more than decoding the block here.
            total_p.merge(cur.decode_range(0..cur.batches.len()));
            r.fill(&mut cur);
            continue;
        }
        let parts: Vec<Partial> = std::thread::scope(|s| {
            let n = cur.batches.len();
            let per = n.div_ceil(workers);
            let cur = &cur;
            let handles: Vec<_> = (0..n)
                .step_by(per.max(1))
                .map(|lo| s.spawn(move || cur.decode_range(lo..(lo + per).min(n))))
                .collect();
            // Read the next block while the workers decode this one.
            r.fill(&mut next);
            handles
                .into_iter()
                .map(|h| h.join().expect("a summary worker never panics"))
                .collect()
        });
        for p in parts {
            total_p.merge(p);
        }
        std::mem::swap(&mut cur, &mut next);
    }
    finish(info, total, r, total_p)
}

fn finish<I: Input>(
    info: ProcessInfo,
    total: Option<u64>,
    r: Reading<'_, I>,
    p: Partial,
) -> Summary {
    let mut stats = r.stats;
    stats.events = p.kinds.iter().sum();
    stats.skipped_unknown = p.skipped_unknown;
    let mut threads = r.threads;
    let untracked_thread_events = p.untracked_events;
    for (t, n) in p.threads {
        threads.entry(t.0).or_default().events = n;
    }
    let mut truncated = Vec::new();
    if stats.untracked_threads > 0 {
        let at_least =
            stats.untracked_threads >= crate::limits::MAX_UNTRACKED_THREADS_COUNTED as u64;
        let mut t = Truncated::new(
            "threads",
            stats.untracked_threads,
            MAX_THREADS,
            format!(
                "{}{} more threads not listed (past the first {MAX_THREADS}): their {} events in {} batches count in the totals above",
                if at_least { "at least " } else { "" },
                stats.untracked_threads,
                untracked_thread_events,
                stats.untracked_batches,
            ),
        );
        t.at_least = at_least;
        truncated.push(t);
    }
    crate::limits::table_notes(&r.tables, &mut truncated);
    for (id, t) in threads.iter_mut() {
        if let Some(info) = r.tables.thread(ThreadId(*id)) {
            t.name = info.name.clone();
        }
    }
    let clock = r.tables.clock();
    let first = p.first_ts;
    let duration_ticks = first.map_or(0, |f| p.last_ts.saturating_sub(f));
    let error = match (r.error, p.error) {
        (Some(a), Some(b)) => Some(if b.offset < a.offset { b } else { a }),
        (a, b) => a.or(b),
    };
    Summary {
        info,
        file_bytes: total,
        stats,
        first_ts: first,
        last_ts: p.last_ts,
        duration_ns: clock.map_or(duration_ticks, |c| c.duration_ns(duration_ticks)),
        ticks_per_sec: clock.map(|c| c.ticks_per_sec),
        start_wall_unix_ns: clock.zip(first).map(|(c, f)| c.wall_ns(f)),
        events_by_kind: p.kinds,
        threads,
        loss: p.loss.into_iter().collect(),
        strings: r.tables.string_count(),
        sites: r.tables.site_count(),
        error: error.map(|e| TraceError::new(e, stats)),
        untracked_thread_events,
        truncated,
    }
}

impl Summary {
    /// Total events lost according to loss records (saturating).
    pub fn lost_events(&self) -> u64 {
        self.loss
            .values()
            .fold(0u64, |a, l| a.saturating_add(l.events))
    }

    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        /// `fdr summary --json`.
        #[derive(serde::Serialize)]
        struct SummaryJson<'a> {
            program: &'a str,
            pid: u32,
            service_version: &'a str,
            host: &'a str,
            file_bytes: Option<u64>,
            batches: u64,
            events: u64,
            duration_ns: u64,
            ticks_per_sec: Option<f64>,
            start_wall_unix_ns: Option<i64>,
            events_by_kind: BTreeMap<&'static str, u64>,
            async_tasks_created: u64,
            user_tasks_begun: u64,
            threads: Vec<ThreadRow<'a>>,
            loss: Vec<LossRow<'a>>,
            missing_batches: u64,
            skipped_unknown: u64,
            strings: usize,
            sites: usize,
            error: Option<String>,
            truncated: &'a [Truncated],
        }
        /// A thread of the summary, with its id.
        #[derive(serde::Serialize)]
        struct ThreadRow<'a> {
            thread: u32,
            #[serde(flatten)]
            counts: &'a ThreadSummary,
        }
        /// A loss reason of the summary, with its name.
        #[derive(serde::Serialize)]
        struct LossRow<'a> {
            reason: &'static str,
            #[serde(flatten)]
            counts: &'a LossSummary,
        }
        serde_json::to_value(SummaryJson {
            program: &self.info.program,
            pid: self.info.pid,
            service_version: &self.info.service_version,
            host: &self.info.host,
            file_bytes: self.file_bytes,
            batches: self.stats.batches,
            events: self.stats.events,
            duration_ns: self.duration_ns,
            ticks_per_sec: self.ticks_per_sec,
            start_wall_unix_ns: self
                .start_wall_unix_ns
                .map(|x| x.clamp(i64::MIN as i128, i64::MAX as i128) as i64),
            events_by_kind: Kind::ALL
                .iter()
                .map(|k| (k.name(), self.events_by_kind[k.index()]))
                .filter(|(_, n)| *n > 0)
                .collect(),
            async_tasks_created: self.events_by_kind[Kind::TaskCreate.index()],
            user_tasks_begun: self.events_by_kind[Kind::UserTaskBegin.index()],
            threads: self
                .threads
                .iter()
                .map(|(id, t)| ThreadRow {
                    thread: *id,
                    counts: t,
                })
                .collect(),
            loss: self
                .loss
                .iter()
                .map(|(r, l)| LossRow {
                    reason: r,
                    counts: l,
                })
                .collect(),
            missing_batches: self.stats.missing_batches,
            skipped_unknown: self.stats.skipped_unknown,
            strings: self.strings,
            sites: self.sites,
            error: self.error.as_ref().map(|e| e.to_string()),
            truncated: &self.truncated,
        })
        .expect("a summary serializes")
    }

    /// As text.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let i = &self.info;
        let _ = writeln!(
            s,
            "trace of {} (pid {}{}{})",
            if i.program.is_empty() {
                "?".into()
            } else {
                esc(&i.program)
            },
            i.pid,
            if i.service_version.is_empty() {
                String::new()
            } else {
                format!(", version {}", esc(&i.service_version))
            },
            if i.host.is_empty() {
                String::new()
            } else {
                format!(", host {}", esc(&i.host))
            },
        );
        let _ = writeln!(
            s,
            "duration   {}   events {}   batches {}   bytes {}",
            text::dur(self.duration_ns),
            self.stats.events,
            self.stats.batches,
            self.stats.bytes
        );
        if let Some(w) = self.start_wall_unix_ns {
            let _ = writeln!(
                s,
                "wall clock {} to {}",
                text::wall(w),
                text::wall(w.saturating_add(i128::from(self.duration_ns)))
            );
        }
        match self.ticks_per_sec {
            Some(t) => {
                let _ = writeln!(s, "clock      {:.0} ticks/s", t);
            }
            None => {
                let _ = writeln!(s, "clock      no clock sync: times are raw ticks");
            }
        }
        let _ = writeln!(
            s,
            "tasks      {} async created, {} user tasks begun",
            self.events_by_kind[Kind::TaskCreate.index()],
            self.events_by_kind[Kind::UserTaskBegin.index()]
        );
        let lost = self.lost_events();
        let _ = writeln!(
            s,
            "loss       {} events lost in {} records, {} batches missing",
            lost,
            self.loss.values().map(|l| l.records).sum::<u64>(),
            self.stats.missing_batches
        );
        let _ = writeln!(s, "\nthreads ({})", self.threads.len());
        let rows: Vec<Vec<String>> = self
            .threads
            .iter()
            .map(|(id, t)| {
                vec![
                    id.to_string(),
                    if t.name.is_empty() {
                        "-".into()
                    } else {
                        text::clip(t.name.as_str().into()).into_owned()
                    },
                    t.events.to_string(),
                    t.batches.to_string(),
                    t.missing_batches.to_string(),
                ]
            })
            .collect();
        text::table(
            &mut s,
            &["thread", "name", "events", "batches", "missing"],
            &rows,
        );
        let _ = writeln!(s, "\nevents by kind");
        let rows: Vec<Vec<String>> = EVENT_KIND_NAMES
            .iter()
            .zip(self.events_by_kind)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| vec![k.to_string(), n.to_string()])
            .collect();
        text::table(&mut s, &["kind", "count"], &rows);
        if !self.loss.is_empty() {
            let _ = writeln!(s, "\nloss by reason");
            let rows: Vec<Vec<String>> = self
                .loss
                .iter()
                .map(|(r, l)| {
                    vec![
                        r.to_string(),
                        l.records.to_string(),
                        l.events.to_string(),
                        l.bytes.to_string(),
                    ]
                })
                .collect();
            text::table(&mut s, &["reason", "records", "events", "bytes"], &rows);
        }
        if !self.truncated.is_empty() {
            s.push('\n');
            notes_text(&mut s, &self.truncated);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdr_format::testing::sample_trace;

    #[test]
    fn parallel_and_single_thread_summaries_agree_with_the_stream() {
        let bytes = sample_trace();
        let one = summarize_slice(
            &bytes,
            SummaryOptions {
                threads: 1,
                progress: None,
            },
        )
        .unwrap();
        let four = summarize_slice(
            &bytes,
            SummaryOptions {
                threads: 4,
                progress: None,
            },
        )
        .unwrap();
        assert_eq!(one.events_by_kind, four.events_by_kind);
        assert_eq!(one.stats.events, 6000);
        assert_eq!(one.threads.len(), 3);
        assert_eq!(one.threads[&1].events, 2000);
        assert_eq!(one.threads[&2].name, "worker-2");
        assert!(one.duration_ns > 0);
        assert!(one.error.is_none());
    }

    /// Events by kind and per thread, as the streaming reader delivers them.
    #[derive(Default)]
    struct Counts {
        kinds: [u64; EVENT_KIND_COUNT],
        threads: BTreeMap<u32, u64>,
    }

    impl crate::stream::Visitor for Counts {
        fn event(&mut self, cx: &crate::stream::EventCx<'_>) {
            self.kinds[cx.kind.index()] += 1;
            *self.threads.entry(cx.thread.0).or_default() += 1;
        }
    }

    #[test]
    fn small_traces_decoded_inline_and_large_ones_by_workers_agree_with_the_stream() {
        use fdr_format::testing::{SampleSpec, sample_trace_with};
        for events_per_thread in [40, 20_000] {
            let bytes = sample_trace_with(SampleSpec {
                threads: 3,
                events_per_thread,
                ..SampleSpec::default()
            });
            // One trace on each side of the bound below which no worker starts.
            assert_eq!(
                bytes.len() < INLINE_BLOCK_BYTES,
                events_per_thread == 40,
                "{} bytes",
                bytes.len()
            );
            let mut stream = Counts::default();
            let out = crate::stream::read_slice(
                &bytes,
                &mut stream,
                crate::stream::ReadOptions::default(),
            )
            .unwrap();
            assert!(out.error.is_none());
            for threads in [1, 2, 4] {
                let s = summarize_slice(
                    &bytes,
                    SummaryOptions {
                        threads,
                        progress: None,
                    },
                )
                .unwrap();
                assert_eq!(s.events_by_kind, stream.kinds, "{threads} threads");
                let per_thread: BTreeMap<u32, u64> =
                    s.threads.iter().map(|(&t, r)| (t, r.events)).collect();
                assert_eq!(per_thread, stream.threads, "{threads} threads");
                assert_eq!(s.stats.events, 3 * events_per_thread);
                assert_eq!(s.stats.event_batches, out.stats.event_batches);
                assert!(s.error.is_none());
            }
        }
    }

    /// Loss records, by reason, as the streaming reader delivers them.
    #[derive(Default)]
    struct Losses(Counts, BTreeMap<&'static str, (u64, u64, u64)>);

    impl crate::stream::Visitor for Losses {
        fn event(&mut self, cx: &crate::stream::EventCx<'_>) {
            crate::stream::Visitor::event(&mut self.0, cx);
            if let EventKind::Loss {
                reason,
                events,
                bytes,
            } = cx.kind
            {
                let l = self.1.entry(reason.as_str()).or_default();
                *l = (l.0 + 1, l.1 + events, l.2 + bytes);
            }
        }
    }

    #[test]
    fn every_kind_and_loss_record_is_counted_as_the_stream_delivers_it() {
        let bytes = fdr_format::testing::every_kind_trace();
        let mut stream = Losses::default();
        let out =
            crate::stream::read_slice(&bytes, &mut stream, crate::stream::ReadOptions::default())
                .unwrap();
        assert!(out.error.is_none());
        assert!(!stream.1.is_empty(), "the trace holds loss records");
        let s = summarize_slice(&bytes, SummaryOptions::default()).unwrap();
        assert!(s.error.is_none());
        assert_eq!(s.events_by_kind, stream.0.kinds);
        assert!(
            s.events_by_kind.iter().all(|&n| n > 0),
            "{:?}",
            s.events_by_kind
        );
        let loss: BTreeMap<&str, (u64, u64, u64)> = s
            .loss
            .iter()
            .map(|(&r, l)| (r, (l.records, l.events, l.bytes)))
            .collect();
        assert_eq!(loss, stream.1);
    }

    #[test]
    fn cut_trace_names_offset_and_keeps_prefix() {
        let mut bytes = sample_trace();
        bytes.truncate(bytes.len() - 100);
        let s = summarize_slice(&bytes, SummaryOptions::default()).unwrap();
        let e = s.error.expect("cut short");
        assert!(e.offset > 0);
        assert!(s.stats.events > 0 && s.stats.events < 6000);
    }
}
