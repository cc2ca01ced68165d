//! fdr at fleet scale: a dump as Parquet tables that any query engine reads (DuckDB,
//! DataFusion, Spark, Trino, pandas), so questions across many incidents and hosts are
//! asked in SQL instead of one dump at a time.
//!
//! [`export_file`] reads a dump once, in time order, and writes one Parquet file per table
//! under `DIR/TABLE/DUMP_ID.parquet`: `dumps`, `tasks`, `polls`, `awaits`, `regions`,
//! `blocks` (lock waits among them), `logs`, `wakes`, `metric_samples`, `stack_samples`
//! (when the dump has stacks) and `findings` (the diagnosis). Every row starts with the
//! dump's identity: `host`, `service`, `dump_id`, `incident_id`. Exporting many dumps
//! into one directory makes each table a directory of files, one per dump, which engines
//! read as one table (`read_parquet('DIR/polls/*.parquet')`).
//!
//! Memory is bounded whatever the dump's size: rows are handed to the Parquet writer in
//! batches of [`table::BATCH_ROWS`], row groups are written out at
//! [`table::ROW_GROUP_ROWS`] rows or [`table::ROW_GROUP_MAX_BYTES`] bytes, and the state
//! kept across events (live tasks, open regions and blocks) has the analyzer's limits.
//!
//! [`schema`] defines every column (name, type, nullability, meaning); `docs/TABLES.md` is
//! rendered from it. Times are `_ns`, nanoseconds since the dump's first event; the
//! `dumps` table gives each dump's wall-clock origin.
#![forbid(unsafe_code)]

mod error;
mod export;
pub mod schema;
pub mod table;

pub use error::ExportError;
pub use export::{ExportOptions, ExportSummary, export_file, table_def, valid_dump_id};
pub use table::Identity;
