//! SQL over the Parquet tables of many fdr dumps, with Apache DataFusion embedded.
//!
//! [`Fleet::open`] takes a location holding tables as `fdr export --format parquet` lays
//! them out, `LOCATION/TABLE/DUMP_ID.parquet` (a local directory, or a bucket through
//! `object_store` with [`Fleet::open_store`]), and registers one table per directory under
//! the names of `docs/TABLES.md` (`dumps`, `tasks`, `polls`, `awaits`, `regions`, `blocks`,
//! `logs`, `wakes`, `metric_samples`, `stack_samples`, `findings`). A table no dump has a
//! file for (`stack_samples` when no dump has stacks) is registered empty, with its schema,
//! so a query naming it still runs. [`Fleet::sql`] answers a query with at most
//! [`Limits::max_rows`] rows, the query's memory bounded by [`Limits::memory_bytes`].
//!
//! [`canned`] holds the common questions as SQL (top blocking sites, p99 poll and await
//! time by task per host, incidents per rule per day, two releases compared).
#![forbid(unsafe_code)]

pub mod canned;
mod value;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use fdr_fleet::schema::TABLES;
use futures_util::StreamExt;
use object_store::ObjectStore;

pub use datafusion::error::DataFusionError;
pub use value::Value;

/// What a query may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows of an answer kept; the rest are counted, not kept (default 10,000).
    pub max_rows: usize,
    /// Memory the query's operators (sorts, joins, aggregates) may hold (default 1 GiB):
    /// past it the query fails, saying so.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rows: 10_000,
            memory_bytes: 1 << 30,
        }
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The location holds none of the tables.
    #[error(
        "{location}: no fdr tables there (none of {expected}/*.parquet); `fdr export --format parquet -o DIR DUMP.fdr` writes them"
    )]
    NoTables {
        /// The location.
        location: String,
        /// The table directories looked for.
        expected: String,
    },
    /// The location could not be read.
    #[error("{location}: {why}")]
    Location {
        /// The location.
        location: String,
        /// Why.
        why: String,
    },
    /// DataFusion refused the query (bad SQL, an unknown table or column) or failed running it.
    #[error("query: {0}")]
    Query(#[source] DataFusionError),
    /// Registering a table's files failed (a file that is not Parquet, a schema that differs).
    #[error("table {table} at {location}: {source}")]
    Table {
        /// The table.
        table: &'static str,
        /// Where its files are.
        location: String,
        /// DataFusion's error.
        source: DataFusionError,
    },
    /// The query's runtime could not start.
    #[error("starting the query runtime: {0}")]
    Runtime(std::io::Error),
}

/// An answer: column names, and the rows kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The columns' names, in order.
    pub columns: Vec<String>,
    /// The rows kept (at most [`Limits::max_rows`]), each with one value per column.
    pub rows: Vec<Vec<Value>>,
    /// Rows the query returned beyond those kept.
    pub rows_left_out: u64,
}

/// Tables of many dumps, ready for SQL.
pub struct Fleet {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    location: String,
    tables: Vec<&'static str>,
    limits: Limits,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("location", &self.location)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The tables under a local directory, `DIR/TABLE/*.parquet`.
    pub fn open(dir: &Path, limits: Limits) -> Result<Fleet, QueryError> {
        let location = dir.display().to_string();
        let bad = |why: String| QueryError::Location {
            location: location.clone(),
            why,
        };
        let meta = std::fs::metadata(dir).map_err(|e| bad(e.to_string()))?;
        if !meta.is_dir() {
            return Err(bad("not a directory".into()));
        }
        let dir = std::fs::canonicalize(dir).map_err(|e| bad(e.to_string()))?;
        let mut present = Vec::new();
        for t in TABLES {
            let sub = dir.join(t.name);
            if sub.is_dir()
                && has_parquet(&sub).map_err(|e| bad(format!("{}: {e}", sub.display())))?
            {
                present.push((t.name, format!("{}/", sub.display())));
            }
        }
        Fleet::new(location, None, present, limits)
    }

    /// The tables under `url` (`s3://BUCKET/PREFIX`, `gs://...`, `az://...`, `file:///...`)
    /// in `store`, the object store for the URL's bucket (its keys relative to the bucket:
    /// `PREFIX/TABLE/DUMP_ID.parquet`).
    pub fn open_store(
        url: &str,
        store: Arc<dyn ObjectStore>,
        limits: Limits,
    ) -> Result<Fleet, QueryError> {
        let bad = |why: String| QueryError::Location {
            location: url.to_owned(),
            why,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let base = url::Url::parse(&format!(
            "{}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        ))
        .map_err(|e| bad(e.to_string()))?;
        let prefix = parsed.path().trim_matches('/').to_owned();
        let runtime = runtime()?;
        // Which tables have a file: one listing of the prefix's table directories.
        let mut present = Vec::new();
        for t in TABLES {
            let key = object_store::path::Path::from(if prefix.is_empty() {
                t.name.to_owned()
            } else {
                format!("{prefix}/{}", t.name)
            });
            let first = runtime.block_on(async {
                let mut list = store.list(Some(&key));
                while let Some(meta) = list.next().await {
                    let meta = meta?;
                    if meta.location.as_ref().ends_with(".parquet") {
                        return Ok::<_, object_store::Error>(true);
                    }
                }
                Ok(false)
            });
            if first.map_err(|e| bad(format!("listing {key}: {e}")))? {
                present.push((t.name, format!("{}/{}/", url.trim_end_matches('/'), t.name)));
            }
        }
        Fleet::new(
            url.to_owned(),
            Some((base, store, runtime)),
            present,
            limits,
        )
    }

    fn new(
        location: String,
        store: Option<(url::Url, Arc<dyn ObjectStore>, tokio::runtime::Runtime)>,
        present: Vec<(&'static str, String)>,
        limits: Limits,
    ) -> Result<Fleet, QueryError> {
        if present.is_empty() {
            return Err(QueryError::NoTables {
                location,
                expected: TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
            });
        }
        let env = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .build_arc()
            .map_err(QueryError::Query)?;
        let runtime = match store {
            Some((base, store, runtime)) => {
                env.register_object_store(&base, store);
                runtime
            }
            None => runtime()?,
        };
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), env);
        for t in TABLES {
            let found = present.iter().find(|(n, _)| *n == t.name);
            match found {
                Some((_, path)) => {
                    let schema = t.schema();
                    let opts = ParquetReadOptions::default().schema(&schema);
                    runtime
                        .block_on(ctx.register_parquet(t.name, path, opts))
                        .map_err(|source| QueryError::Table {
                            table: t.name,
                            location: path.clone(),
                            source,
                        })?;
                }
                None => {
                    let empty =
                        MemTable::try_new(t.schema(), vec![vec![]]).map_err(QueryError::Query)?;
                    ctx.register_table(t.name, Arc::new(empty))
                        .map_err(QueryError::Query)?;
                }
            }
        }
        Ok(Fleet {
            ctx,
            runtime,
            location,
            tables: present.iter().map(|(n, _)| *n).collect(),
            limits,
        })
    }

    /// The location given to [`Fleet::open`] or [`Fleet::open_store`].
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The tables that have at least one file there (the others are registered empty).
    pub fn tables(&self) -> &[&'static str] {
        &self.tables
    }

    /// Runs one SQL statement (a query: `SELECT`, `WITH`, `EXPLAIN`, `SHOW`, `DESCRIBE`).
    pub fn sql(&self, sql: &str) -> Result<Answer, QueryError> {
        let max_rows = self.limits.max_rows;
        self.runtime.block_on(async {
            let df = self.ctx.sql(sql).await.map_err(QueryError::Query)?;
            let columns = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>();
            let mut stream = df.execute_stream().await.map_err(QueryError::Query)?;
            let mut rows = Vec::new();
            let mut left_out = 0u64;
            while let Some(batch) = stream.next().await {
                let batch: RecordBatch = batch.map_err(QueryError::Query)?;
                let room = max_rows.saturating_sub(rows.len());
                let keep = batch.num_rows().min(room);
                left_out += (batch.num_rows() - keep) as u64;
                for r in 0..keep {
                    rows.push(
                        batch
                            .columns()
                            .iter()
                            .map(|c| value::at(c, r))
                            .collect::<Vec<_>>(),
                    );
                }
            }
            Ok(Answer {
                columns,
                rows,
                rows_left_out: left_out,
            })
        })
    }
}

/// The query runtime: DataFusion's scans run as tasks on a multi-threaded runtime with a
/// worker per core (the local store's reads are blocking file reads).
fn runtime() -> Result<tokio::runtime::Runtime, QueryError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fdr-query")
        .build()
        .map_err(QueryError::Runtime)
}

/// Whether `dir` holds at least one `.parquet` file (only its first level is read).
fn has_parquet(dir: &Path) -> std::io::Result<bool> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".parquet") && e.file_type()?.is_file() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    /// Errors stay small to return (clippy's `result_large_err` bound is 128 bytes).
    #[test]
    fn errors_are_small() {
        let n = std::mem::size_of::<super::QueryError>();
        assert!(n <= 128, "QueryError is {n} bytes");
    }
}
