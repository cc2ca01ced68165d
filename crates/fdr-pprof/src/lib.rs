//! fdr's pprof writer: the stack samples of an fdr trace as a pprof profile
//! (`profile.proto`, gzipped), symbolized, for `go tool pprof`, speedscope, Pyroscope and
//! every other reader of the format.
//!
//! The recorder's OS view records stacks into the trace (`EventKind::Stack`, raw
//! addresses): a CPU sample per `1 / rate` of a thread's CPU time while CPU profiling is on
//! (cause `CpuTimer`), and the stacks of long scopes (cause `LongScope`). The trace's tables
//! carry the modules' mappings and build ids. A [`Collector`] is fed a trace's events, keeps
//! each distinct stack (with its thread and task) and its counts, and
//! [`Collector::finish`] symbolizes the addresses through the modules (`fdr-symbolize`:
//! functions, files, lines, inlined frames as pprof `Line`s) and encodes the profile.
//!
//! Two readers feed it: [`read_trace`], a plain pass over a trace in file order (what the
//! admin endpoint's `/debug/pprof/profile` uses on the capture it takes), and the
//! analyzer's `pprof` export (`fdr export --format pprof`), which streams the trace in time
//! order so that it can label each sample with the task running on its thread and keep
//! only a time window.
//!
//! # The profile
//!
//! - Sample types `samples/count` and `cpu/nanoseconds` (as Go's CPU profiles have them;
//!   the default type is `cpu`): each CPU sample is `1 / rate` seconds of its thread's CPU
//!   time, the rate being the one the trace records (metric
//!   [`fdr_format::event::METRIC_CPU_PROFILE_HZ`]) or, for samples before any such record,
//!   [`Options::fallback_cpu_hz`]. A trace that never says its rate and no fallback give
//!   `samples/count` only (the profile's comments say why).
//! - With [`Options::long_scopes`], a third type `long_scope_stacks/count`: the stacks of
//!   threads the sampler found inside one poll, region or block past its threshold
//!   (blocked or busy), one per capture; their CPU values are 0 and CPU samples' are 0
//!   here, so `-sample_index=long_scope_stacks` shows where threads were stuck.
//! - Labels `thread` (the recorded thread's name) and, where known, `task` (the fdr task
//!   polled on that thread at the sample).
//! - One mapping per module the samples touch (start, limit, file offset, path, build id),
//!   the program's first; locations carry the raw address and, when symbolized, one
//!   `Line` per inlined frame, innermost first, the containing function last.
//! - A stack the recorder cut short ends in a frame named `[fdr: stack truncated]`;
//!   samples past the collector's bounds are counted under one frame named
//!   `[fdr: more distinct stacks than the profile keeps]`, so the totals stay right.
//! - `time_nanos` and `duration_nanos` give the window; comments say what was left out.
//!
//! Memory is bounded: at most [`MAX_DISTINCT_SAMPLES`] distinct samples holding at most
//! [`MAX_STORED_FRAMES`] addresses, [`MAX_LABELS`] label values, and at most
//! [`MAX_SYMBOLIZED_ADDRESSES`] addresses symbolized.
//!
//! The encoder is written here (`proto.rs`, a few dozen lines: varints, packed varints,
//! length-delimited fields) rather than taken from a protobuf crate: `profile.proto`'s eight
//! small messages need nothing more, and the tests decode the output with protobuf's own
//! Python runtime from the published `profile.proto`. Compression is `flate2`'s gzip.

#![forbid(unsafe_code)]

mod encode;
mod proto;

use std::collections::HashMap;
use std::io::Read;

use fdr_format::event::METRIC_CPU_PROFILE_HZ;
use fdr_format::{Batch, Decoder, EventKind, ProcessInfo, SampleCause, Tables, ThreadId};

pub use encode::Profile;

/// Most distinct samples (stack, thread, task) a collector keeps; later new ones are
/// counted under one frame that says so.
pub const MAX_DISTINCT_SAMPLES: usize = 65_536;
/// Most addresses the kept samples hold together (8 bytes each).
pub const MAX_STORED_FRAMES: usize = 2 << 20;
/// Most distinct label values (thread and task names); later ones are shown as `[other]`.
pub const MAX_LABELS: usize = 4096;
/// Most distinct addresses symbolized; the rest keep their address only.
pub const MAX_SYMBOLIZED_ADDRESSES: usize = 200_000;
/// Highest CPU profiling rate believed from a trace, Hz.
const MAX_RATE_HZ: f64 = 1_000_000.0;
/// Longest label value kept, bytes.
const MAX_LABEL_BYTES: usize = 256;

/// What a profile holds and how it is symbolized.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also keep long-scope stacks, as sample type `long_scope_stacks/count`.
    pub long_scopes: bool,
    /// The CPU profiling rate of samples recorded before the trace says its rate (the
    /// rate the caller knows it asked for); `None`: such samples are counted, with no CPU
    /// time, unless the trace says a rate later (then that one).
    pub fallback_cpu_hz: Option<u32>,
    /// Where the modules' files are (the recorded paths are tried too, by default).
    pub symbolize: fdr_symbolize::Options,
}

/// Why [`read_trace`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The trace is not a trace, or is damaged. The samples before the damage are kept in
    /// the collector.
    #[error("reading the trace: {0}")]
    Trace(#[from] fdr_format::DecodeError),
}

/// One kept sample: a stack with its labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    /// Innermost first.
    frames: Box<[u64]>,
    truncated: bool,
    /// Index into the collector's labels.
    thread: u32,
    /// Index into the collector's labels plus one; 0: no task.
    task: u32,
}

/// A sample's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Values {
    cpu_samples: u64,
    /// CPU time of the samples whose rate is known, ns.
    cpu_ns: u64,
    /// CPU samples recorded before any rate was known.
    cpu_unrated: u64,
    long_scopes: u64,
}

impl Values {
    fn add(&mut self, o: &Values) {
        self.cpu_samples = self.cpu_samples.saturating_add(o.cpu_samples);
        self.cpu_ns = self.cpu_ns.saturating_add(o.cpu_ns);
        self.cpu_unrated = self.cpu_unrated.saturating_add(o.cpu_unrated);
        self.long_scopes = self.long_scopes.saturating_add(o.long_scopes);
    }
}

/// What a collector kept and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectStats {
    /// CPU samples seen.
    pub cpu_samples: u64,
    /// Long-scope stacks seen (kept only with [`Options::long_scopes`]).
    pub long_scope_stacks: u64,
    /// Samples counted under the "more distinct stacks" frame (past the bounds).
    pub folded_samples: u64,
    /// Stacks the recorder cut short.
    pub truncated_stacks: u64,
    /// Label values shown as `[other]` (past [`MAX_LABELS`]).
    pub other_labels: u64,
}

/// Collects a trace's stack samples for a profile (see the crate docs).
#[derive(Debug)]
pub struct Collector {
    opts: Options,
    samples: HashMap<Key, Values>,
    stored_frames: usize,
    folded: Values,
    labels: Vec<String>,
    label_ids: HashMap<String, u32>,
    /// The rate in effect (the last non-zero one the trace gave), Hz.
    rate_hz: Option<f64>,
    /// The first rate the trace gave, for samples before it.
    first_rate_hz: Option<f64>,
    /// CPU samples per rate, to choose the profile's period.
    rates: HashMap<u64, u64>,
    first_ts: Option<u64>,
    last_ts: Option<u64>,
    stats: CollectStats,
}

impl Collector {
    /// An empty collector.
    pub fn new(opts: Options) -> Self {
        Collector {
            opts,
            samples: HashMap::new(),
            stored_frames: 0,
            folded: Values::default(),
            labels: Vec::new(),
            label_ids: HashMap::new(),
            rate_hz: None,
            first_rate_hz: None,
            rates: HashMap::new(),
            first_ts: None,
            last_ts: None,
            stats: CollectStats::default(),
        }
    }

    /// What was kept and left out so far.
    pub fn stats(&self) -> CollectStats {
        self.stats
    }

    /// Whether `kind` is an event the collector uses: a stack (CPU sample, or long scope
    /// when those are kept) or the CPU profiling rate. Callers that filter samples (by time
    /// or task) filter only stacks: rates must always reach [`Collector::event`].
    pub fn wants(&self, kind: &EventKind<'_>, tables: &Tables) -> bool {
        match kind {
            EventKind::Stack { cause, .. } => {
                *cause == SampleCause::CpuTimer
                    || (*cause == SampleCause::LongScope && self.opts.long_scopes)
            }
            EventKind::Metric { name, .. } => is_rate(tables, *name),
            _ => false,
        }
    }

    /// Feeds one event recorded at `ts` (ticks) with the trace's tables so far; `task` is
    /// the name of the task running on the stack's thread when the stack was taken, if
    /// known. A stack counts at the time it was taken: `ts` less its age
    /// (`EventKind::Stack::age_ticks`). Events the collector does not use are ignored.
    pub fn event(&mut self, ts: u64, kind: &EventKind<'_>, tables: &Tables, task: Option<&str>) {
        match *kind {
            // A rate of 0 (profiling stopped) keeps the last one for the samples still
            // drained after it; an absurd one is not believed.
            EventKind::Metric { name, value }
                if is_rate(tables, name) && (1.0..=MAX_RATE_HZ).contains(&value) =>
            {
                self.rate_hz = Some(value);
                self.first_rate_hz.get_or_insert(value);
            }
            EventKind::Stack {
                thread,
                cause,
                truncated,
                frames,
                age_ticks,
                ..
            } => {
                let ts = ts.saturating_sub(age_ticks.unwrap_or(0));
                let mut v = Values::default();
                match cause {
                    SampleCause::CpuTimer => {
                        self.stats.cpu_samples += 1;
                        v.cpu_samples = 1;
                        match self
                            .rate_hz
                            .or_else(|| self.opts.fallback_cpu_hz.map(f64::from))
                        {
                            Some(hz) => {
                                v.cpu_ns = (1e9 / hz) as u64;
                                *self.rates.entry(hz as u64).or_default() += 1;
                            }
                            None => v.cpu_unrated = 1,
                        }
                    }
                    SampleCause::LongScope if self.opts.long_scopes => {
                        self.stats.long_scope_stacks += 1;
                        v.long_scopes = 1;
                    }
                    SampleCause::LongScope => {
                        self.stats.long_scope_stacks += 1;
                        return;
                    }
                    _ => return,
                }
                // Samples come in record order, and a sample is taken before it is recorded
                // (callers pass when it was taken): the earliest need not come first.
                self.first_ts = Some(self.first_ts.map_or(ts, |f| f.min(ts)));
                self.last_ts = Some(self.last_ts.map_or(ts, |l| l.max(ts)));
                if truncated {
                    self.stats.truncated_stacks += 1;
                }
                let thread = self.thread_label(tables, thread);
                let task = task.map_or(0, |t| self.label(t) + 1);
                let n = frames.len();
                let key = Key {
                    frames: frames.iter().collect(),
                    truncated,
                    thread,
                    task,
                };
                if let Some(have) = self.samples.get_mut(&key) {
                    have.add(&v);
                } else if self.samples.len() < MAX_DISTINCT_SAMPLES
                    && self.stored_frames + n <= MAX_STORED_FRAMES
                {
                    self.stored_frames += n;
                    self.samples.insert(key, v);
                } else {
                    self.stats.folded_samples += 1;
                    self.folded.add(&v);
                }
            }
            _ => {}
        }
    }

    fn thread_label(&mut self, tables: &Tables, thread: ThreadId) -> u32 {
        match tables.thread(thread).filter(|t| !t.name.is_empty()) {
            Some(t) => {
                let name = t.name.clone();
                self.label(&name)
            }
            None => self.label(&format!("thread {}", thread.0)),
        }
    }

    /// The index of a label value (cut to [`MAX_LABEL_BYTES`]), `[other]` past the bound.
    fn label(&mut self, s: &str) -> u32 {
        let s = cut(s, MAX_LABEL_BYTES);
        if let Some(&i) = self.label_ids.get(s) {
            return i;
        }
        let s = if self.labels.len() < MAX_LABELS {
            s
        } else {
            self.stats.other_labels += 1;
            if let Some(&i) = self.label_ids.get("[other]") {
                return i;
            }
            "[other]"
        };
        let i = self.labels.len() as u32;
        self.labels.push(s.to_owned());
        self.label_ids.insert(s.to_owned(), i);
        i
    }

    /// The ticks of the first and last kept sample.
    pub fn span_ticks(&self) -> Option<(u64, u64)> {
        Some((self.first_ts?, self.last_ts?))
    }

    /// Symbolizes the kept samples through `tables`' module records and encodes the
    /// profile. `window` is the profile's start (Unix ns) and length (ns); without it, the
    /// span of the kept samples (through the trace's clock).
    pub fn finish(
        self,
        tables: &Tables,
        info: &ProcessInfo,
        window: Option<(i64, i64)>,
    ) -> Profile {
        encode::finish(self, tables, info, window)
    }
}

fn is_rate(tables: &Tables, name: fdr_format::StrId) -> bool {
    tables.string(name) == Some(METRIC_CPU_PROFILE_HZ)
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The name of the recorder's OS sampler thread, the only thread that records stacks and
/// the CPU profiling rate.
pub const SAMPLER_THREAD_NAME: &str = "fdr-sampler";

/// Reads a trace in file order into `collector`, without task labels: table batches are
/// applied, and the events of the batches of threads that may hold stacks are fed to it
/// (a batch of a thread the tables name, other than the sampler's, is skipped undecoded).
/// Returns the final tables and the trace's process information, for
/// [`Collector::finish`]. A damaged trace stops the reading with [`Error::Trace`]; what was
/// read before it stays in the collector.
pub fn read_trace<R: Read>(
    reader: R,
    collector: &mut Collector,
) -> Result<(Tables, ProcessInfo), Error> {
    let mut d = Decoder::from_reader(reader)?;
    let info = d.process_info().clone();
    let mut tables = Tables::new();
    while let Some(batch) = d.next_batch() {
        match batch? {
            Batch::Table(t) => tables.apply(&t)?,
            Batch::Events(b) => {
                let other = tables
                    .thread(b.thread)
                    .is_some_and(|t| !t.name.is_empty() && t.name != SAMPLER_THREAD_NAME);
                if other {
                    continue;
                }
                for e in b.events() {
                    let e = e?;
                    if collector.wants(&e.kind, &tables) {
                        collector.event(e.ts, &e.kind, &tables, None);
                    }
                }
            }
        }
    }
    Ok((tables, info))
}
