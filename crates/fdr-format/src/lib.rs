//! The fdr trace format: the event model, the encoder the recorder drives on its hot path,
//! and a streaming decoder that tools read traces with.
//!
//! This crate is fdr's stable core. Depend on it directly if you write traces from another
//! recorder, or build your own analysis over fdr dumps; use `fdr-analyzer` for ready-made
//! summaries and diagnosis, and the `fdr` facade to record. It depends on nothing but
//! `bytes` and `thiserror`, and knows nothing of threads, clocks, HTTP or files.
//!
//! A trace is a file header, then self-contained batches (one thread's events, or table
//! records naming strings, sites, threads and clocks), then an end marker. `docs/FORMAT.md`
//! specifies every byte.
//!
//! # Reading a trace
//!
//! ```
//! use fdr_format::{Batch, Decoder, EventKind, Tables};
//!
//! # fn main() -> Result<(), fdr_format::DecodeError> {
//! let bytes = fdr_format::testing::sample_trace();
//! let mut decoder = Decoder::new(&bytes)?;
//! let mut tables = Tables::new();
//! let mut regions = 0;
//! while let Some(batch) = decoder.next_batch() {
//!     match batch? {
//!         Batch::Table(t) => tables.apply(&t)?,
//!         Batch::Events(b) => {
//!             for event in b.events() {
//!                 if let EventKind::RegionBegin { name } = event?.kind {
//!                     assert!(tables.string(name).is_some());
//!                     regions += 1;
//!                 }
//!             }
//!         }
//!     }
//! }
//! assert!(regions > 0);
//! # Ok(()) }
//! ```
//!
//! A trace held in memory can also be decoded on several threads:
//! [`decode::batch_spans`] finds the batches from their headers alone, and
//! [`decode::batch_at`] verifies and decodes any one of them.
//!
//! # Writing a trace
//!
//! ```
//! use fdr_format::{BatchEncoder, EventKind, ProcessInfo, StrId, TableEncoder, ThreadId, TraceWriter};
//!
//! let mut out = TraceWriter::new(Vec::new(), &ProcessInfo::default()).unwrap();
//! let mut table = TableEncoder::new();
//! table.string(StrId(1), "db");
//! out.write_table(&table, true).unwrap();
//! let mut buf = [0u8; 256];
//! let mut batch = BatchEncoder::new(&mut buf, 1000);
//! batch.push(1000, &EventKind::RegionBegin { name: StrId(1) }).unwrap();
//! batch.push(1450, &EventKind::RegionEnd { name: StrId(1) }).unwrap();
//! out.write_events(ThreadId(1), 0, batch.base_ts(), batch.payload()).unwrap();
//! let bytes = out.finish().unwrap();
//! assert!(fdr_format::Decoder::new(&bytes).is_ok());
//! ```
#![forbid(unsafe_code)]

pub mod checksum;
pub mod decode;
pub mod encode;
pub mod event;
pub mod framing;
pub mod kind;
pub mod tables;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod varint;
pub mod wire;

pub use decode::{
    Batch, DecodeError, DecodeStats, Decoder, ErrorKind, EventBatch, Events, Input, RawEvent,
    Records, TableBatch,
};
pub use encode::{BatchEncoder, BatchFull, TableEncoder, TraceWriter};
pub use event::{
    BlockReason, ClockSync, EVENT_KIND_COUNT, EVENT_KIND_NAMES, Event, EventKind, LossReason,
    Message, ProcessInfo, SampleCause, SiteId, StackFrames, StrId, TableRecord, TaskId, ThreadId,
};
pub use kind::Kind;
pub use tables::{Module, Site, TableDrops, TableLimits, Tables, ThreadInfo};
