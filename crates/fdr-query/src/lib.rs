//! fdr at fleet scale: SQL over the Parquet tables of many dumps, with Apache DataFusion
//! embedded.
//!
//! A *location* is where `fdr export --format parquet` wrote the tables of any number of
//! dumps, `TABLE/DUMP_ID.parquet`: a directory, or a bucket prefix they were copied to
//! (`s3://…`, `gs://…`, `az://…`, read through the sentinel's object stores with their
//! credential chains; the private `bridge` serves those to DataFusion). [`Fleet::open`] registers each
//! of fdr-fleet's tables (`dumps`, `tasks`, `polls`, `awaits`, `regions`, `blocks`, `logs`,
//! `wakes`, `metric_samples`, `stack_samples`, `findings`) over the files of its directory,
//! with the schema fdr-fleet writes (a table with no file is empty); [`Fleet::sql`] runs a
//! query, reading only the row groups and columns it needs. Queries only read: DDL, DML
//! (`COPY`, `INSERT`) and `SET` statements are refused.
//!
//! [`Canned`] holds the common questions as SQL that DuckDB runs unchanged over the same
//! files (`crates/fdr-cli/tests/query.rs` checks that both engines agree).
#![forbid(unsafe_code)]

mod bridge;
mod canned;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionContext};
use fdr_fleet::schema::TABLES;

pub use canned::Canned;

/// Why a location could not be opened or a query not answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The location is neither a directory nor a bucket URL this build reads.
    #[error("{location}: {why}")]
    Location {
        /// The location given.
        location: String,
        /// What is wrong with it.
        why: String,
    },
    /// The bucket's store could not be set up (its configuration, credentials file, ...).
    #[error(transparent)]
    Store(#[from] fdr_sentinel::StoreError),
    /// The query is not valid SQL, names an unknown table or column, or is not a read.
    #[error("{0}")]
    Sql(DataFusionError),
    /// Running the query failed: a file could not be read (the store's error is in the
    /// chain), or is not Parquet.
    #[error("{0}")]
    Run(#[source] DataFusionError),
    /// The query engine's runtime could not start.
    #[error("starting the query runtime: {0}")]
    Runtime(std::io::Error),
}

/// The tables of every dump at a location, ready for SQL.
pub struct Fleet {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    location: String,
    /// Kept for the bucket's store (it owns the runtime its client was built on).
    _bucket: Option<fdr_sentinel::BucketStore>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// A query's answer: its rows, in Arrow record batches.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

/// Whether `location` is a URL (`scheme://...`) rather than a path.
pub fn is_url(location: &str) -> bool {
    location
        .split_once("://")
        .is_some_and(|(s, _)| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl Fleet {
    /// Opens the tables at `location`: a directory, `file:///dir`, or a bucket URL
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`) read with the sentinel's store and the
    /// provider's standard credentials and variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    /// Nothing is read until a query runs.
    pub fn open(location: &str) -> Result<Fleet, QueryError> {
        let bad = |why: String| QueryError::Location {
            location: location.to_owned(),
            why,
        };
        let runtime = runtime()?;
        let ctx = SessionContext::new();
        let base = match location.strip_prefix("file://") {
            Some(dir) => local_base(Path::new(dir)).map_err(bad)?,
            None if !is_url(location) => local_base(Path::new(location)).map_err(bad)?,
            None => {
                let config = fdr_sentinel::BucketConfig::from_url(location)
                    .map_err(|e| bad(e.to_string()))?;
                return Fleet::open_bucket_on(config, runtime);
            }
        };
        Fleet::with_tables(ctx, runtime, location, &base, None)
    }

    /// Opens the tables in the bucket `config` names, with its options (endpoint,
    /// credentials, ...) over the environment's, and its root certificates.
    pub fn open_bucket(config: fdr_sentinel::BucketConfig) -> Result<Fleet, QueryError> {
        Fleet::open_bucket_on(config, runtime()?)
    }

    fn open_bucket_on(
        config: fdr_sentinel::BucketConfig,
        runtime: tokio::runtime::Runtime,
    ) -> Result<Fleet, QueryError> {
        let location = config.url.clone();
        let bad = |why: String| QueryError::Location {
            location: location.clone(),
            why,
        };
        let ctx = SessionContext::new();
        let store = {
            let _enter = runtime.enter();
            fdr_sentinel::BucketStore::new(config)?
        };
        let (inner, prefix, base_url) = store.object_store();
        let mut base = base_url.to_owned();
        if !prefix.as_ref().is_empty() {
            base.push_str(prefix.as_ref());
            base.push('/');
        }
        let root = ListingTableUrl::parse(base_url).map_err(|e| bad(e.to_string()))?;
        ctx.register_object_store(root.as_ref(), Arc::new(bridge::Bridge::new(inner)));
        Fleet::with_tables(ctx, runtime, &location, &base, Some(store))
    }

    /// Registers every table under `base` (a URL ending in `/`).
    fn with_tables(
        ctx: SessionContext,
        runtime: tokio::runtime::Runtime,
        location: &str,
        base: &str,
        bucket: Option<fdr_sentinel::BucketStore>,
    ) -> Result<Fleet, QueryError> {
        let bad = |why: String| QueryError::Location {
            location: location.to_owned(),
            why,
        };
        for t in TABLES {
            let url = ListingTableUrl::parse(format!("{base}{}/", t.name))
                .map_err(|e| bad(e.to_string()))?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(t.schema());
            let table = ListingTable::try_new(config).map_err(|e| bad(e.to_string()))?;
            ctx.register_table(t.name, Arc::new(table))
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(Fleet {
            ctx,
            runtime,
            location: location.to_owned(),
            _bucket: bucket,
        })
    }

    /// The location, as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs one read-only SQL statement over the tables.
    pub fn sql(&self, sql: &str) -> Result<Answer, QueryError> {
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        self.runtime.block_on(async {
            let frame = self
                .ctx
                .sql_with_options(sql, read_only)
                .await
                .map_err(QueryError::Sql)?;
            let batches = frame.collect().await.map_err(QueryError::Run)?;
            Ok(Answer { batches })
        })
    }

    /// How many dumps the location holds: the rows of `dumps`, one per dump.
    pub fn dumps(&self) -> Result<u64, QueryError> {
        let a = self.sql("SELECT count(*) AS n FROM dumps")?;
        let n = a
            .batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
            })
            .map_or(0, |c| c.value(0));
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// The runtime queries run on (DataFusion's partitions run in parallel on its threads).
fn runtime() -> Result<tokio::runtime::Runtime, QueryError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fdr-query")
        .build()
        .map_err(QueryError::Runtime)
}

/// `file://` URL of a directory, with a trailing `/`, for the tables under it.
fn local_base(dir: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("not a directory ({e})"))?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    let abs: PathBuf = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    let url = ListingTableUrl::parse(abs.to_string_lossy()).map_err(|e| e.to_string())?;
    let mut s = url.as_str().to_owned();
    if !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

impl Answer {
    /// The rows as a text table (header, rule, one line a row).
    pub fn to_text(&self) -> Result<String, QueryError> {
        datafusion::arrow::util::pretty::pretty_format_batches(&self.batches)
            .map(|t| t.to_string())
            .map_err(|e| QueryError::Run(e.into()))
    }

    /// The rows as JSON objects, column name to value (null as `null`).
    pub fn to_json(&self) -> Result<serde_json::Value, QueryError> {
        use datafusion::arrow::json::{WriterBuilder, writer::JsonArray};
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(Vec::new());
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        w.write_batches(&batches)
            .map_err(|e| QueryError::Run(e.into()))?;
        w.finish().map_err(|e| QueryError::Run(e.into()))?;
        let bytes = w.into_inner();
        if bytes.is_empty() {
            return Ok(serde_json::Value::Array(Vec::new()));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| QueryError::Run(DataFusionError::External(e.into())))
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}
