//! The fdr analyzer: reads fdr traces as a stream and says what is wrong.
//!
//! - [`stream`]: the streaming event API. Implement [`Visitor`] and call
//!   [`read_file`] / [`read_slice`]: every event arrives in time order with its thread,
//!   the task current on that thread, the tables resolving its ids, and a tick-to-ns clock.
//! - [`summary`]: duration, threads, tasks, events by kind, loss and clock, decoded in
//!   parallel across batches.
//! - [`profile`]: one pass collecting per-task, per-region, per-blocking-site and
//!   scheduling statistics in log-bucketed [`hist::Histogram`]s; [`views`] prints them.
//! - [`osview`]: the OS view (traces recorded with `Config::os`): long polls, regions and
//!   blocks split into on-CPU, waiting for a CPU and off-CPU, and their stacks, symbolized
//!   with `fdr-symbolize`; [`osrules`] holds the rules that read it.
//! - [`diagnose`](mod@diagnose): the on-call runbook as ranked rules; [`diff`](mod@diff): two traces compared;
//!   [`chrome`]: Chrome Trace Event JSON export; [`perfetto`]: native Perfetto protobuf
//!   export; [`pprof`](mod@pprof): CPU samples as a pprof profile; [`report`]: a
//!   self-contained HTML page;
//!   [`cat`]: events as text; [`request`]: one request (task) as it happened.
//!
//! The deterministic traces of known problems its tests and examples read are in the
//! workspace's unpublished `fdr-test-support` crate.
//!
//! Memory follows live entities (threads, tasks, open regions and blocks, distinct names
//! and sites) and a bounded reorder window, never the trace length.
//!
//! # Example: cumulative blocked time per site
//!
//! ```
//! use std::collections::HashMap;
//! use fdr_analyzer::{read_slice, EventCx, ReadOptions, Visitor};
//! use fdr_format::{EventKind, SiteId, ThreadId};
//!
//! #[derive(Default)]
//! struct Blocked { open: HashMap<ThreadId, (SiteId, u64)>, total_ns: HashMap<SiteId, u64> }
//! impl Visitor for Blocked {
//!     fn event(&mut self, cx: &EventCx<'_>) {
//!         match cx.kind {
//!             EventKind::BlockBegin { site, .. } => { self.open.insert(cx.thread, (site, cx.ns)); }
//!             EventKind::BlockEnd => if let Some((site, t0)) = self.open.remove(&cx.thread) {
//!                 *self.total_ns.entry(site).or_default() += cx.ns - t0;
//!             },
//!             _ => {}
//!         }
//!     }
//! }
//! let trace = fdr_test_support::scenarios::scenario("lock_contention").unwrap();
//! let mut b = Blocked::default();
//! read_slice(&trace, &mut b, ReadOptions::default()).unwrap();
//! assert_eq!(b.total_ns.len(), 1);
//! ```
//!
//! # Feature flags
//!
//! None: everything is always built.
#![forbid(unsafe_code)]

mod async_rules;
pub mod cat;
pub mod chrome;
pub mod diagnose;
pub mod diff;
pub mod error;
mod fasthash;
pub mod hist;
pub mod limits;
pub mod osrules;
pub mod osview;
pub mod perfetto;
mod pipeline;
pub mod pprof;
mod preempt;
pub mod profile;
pub mod rank;
pub mod report;
pub mod request;
pub mod sampled;
pub mod stream;
pub mod summary;
pub mod text;
pub mod threads;
pub mod views;
pub mod waits;
pub mod wake_delay;
pub mod window;

use std::path::Path;

pub use diagnose::{Diagnosis, Finding, RuleOutcome, Severity, diagnose};
pub use error::{AnalyzeError, TraceError};
pub use hist::Histogram;
pub use profile::{Profile, ProfileOptions};
pub use stream::{
    Clock, EndCx, EventCx, Progress, ReadOptions, ReadOutcome, ReadStats, Visitor, read_file,
    read_reader, read_slice,
};
pub use summary::{Summary, SummaryOptions, summarize_file, summarize_reader, summarize_slice};

/// Profiles the trace at `path` in one streaming pass.
pub fn profile_file(
    path: &Path,
    opts: ProfileOptions,
    read: ReadOptions<'_>,
) -> Result<(Profile, ReadOutcome), AnalyzeError> {
    let mut p = Profile::new(opts);
    let out = read_file(path, &mut p, read)?;
    Ok((p, out))
}

/// Profiles a trace from any byte stream, in one pass (`total_bytes`, when known, is for
/// progress only).
pub fn profile_reader<R: std::io::Read>(
    reader: R,
    total_bytes: Option<u64>,
    opts: ProfileOptions,
    read: ReadOptions<'_>,
) -> Result<(Profile, ReadOutcome), AnalyzeError> {
    let mut p = Profile::new(opts);
    let out = read_reader(reader, total_bytes, &mut p, read)?;
    Ok((p, out))
}

/// Profiles a trace held in memory.
pub fn profile_slice(
    bytes: &[u8],
    opts: ProfileOptions,
) -> Result<(Profile, ReadOutcome), AnalyzeError> {
    let mut p = Profile::new(opts);
    let out = read_slice(bytes, &mut p, ReadOptions::default())?;
    Ok((p, out))
}
