//! `fdr query 'SQL' LOCATION` and its canned questions: SQL over the Parquet tables of many
//! dumps (fdr-query, DataFusion), feature `query`.
//!
//! LOCATION holds tables as `fdr export --format parquet -o DIR` writes them,
//! `LOCATION/TABLE/DUMP_ID.parquet`: a directory (or `file:///DIR`), or with the `buckets`
//! feature a bucket URL (`s3://BUCKET/PREFIX`, `gs://...`, `az://...`) read through the
//! sentinel's object store, with the same credentials and variables as `fdr incidents`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use fdr_query::{Answer, DataFusionError, Fleet, Limits, QueryError, Value, canned};
use serde_json::{Map, json};

use crate::exit::Usage;
use crate::output::{note, print};

/// `fdr query`'s arguments: SQL and a location, or a canned question.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct QueryArgs {
    #[command(subcommand)]
    question: Option<Question>,
    /// The SQL query over the tables of docs/TABLES.md (`dumps`, `tasks`, `polls`,
    /// `awaits`, `regions`, `blocks`, `logs`, `wakes`, `metric_samples`,
    /// `stack_samples`, `findings`).
    #[arg(required = true)]
    sql: Option<String>,
    /// A directory of tables (`DIR/TABLE/*.parquet`, as `fdr export --format parquet -o
    /// DIR` writes them), or a bucket URL holding the same: `s3://BUCKET/PREFIX`, `gs://...`,
    /// `az://...`, `file:///DIR`.
    #[arg(required = true)]
    location: Option<String>,
    #[command(flatten)]
    opts: Opts,
}

/// Output and bounds, for SQL and every canned question.
#[derive(clap::Args, Clone, Copy)]
struct Opts {
    /// Machine-readable JSON output.
    #[arg(long)]
    json: bool,
    /// Rows printed at most; the rest are counted.
    #[arg(long, default_value_t = Limits::default().max_rows)]
    max_rows: usize,
    /// Memory the query's sorts, joins and aggregates may hold, MiB; past it the query
    /// fails, saying so.
    #[arg(long, default_value_t = Limits::default().memory_bytes >> 20)]
    memory_mib: usize,
    /// Print the SQL instead of running it (to ask the same in DuckDB, Trino or Spark).
    #[arg(long)]
    print_sql: bool,
}

/// The common questions.
#[derive(clap::Subcommand)]
enum Question {
    /// The blocking sites that cost most across every dump: blocks, dumps, hosts, total
    /// and longest time per site and reason.
    TopBlocking {
        /// The tables' location, as for SQL.
        location: String,
        /// The costliest sites shown.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[command(flatten)]
        opts: Opts,
    },
    /// p99 poll time and p99 await time by task name, per host.
    P99ByTask {
        /// The tables' location, as for SQL.
        location: String,
        #[command(flatten)]
        opts: Opts,
    },
    /// Incidents per diagnosis rule per day (UTC): dumps with a finding of the rule, and
    /// those where it is the top finding.
    IncidentsPerRule {
        /// The tables' location, as for SQL.
        location: String,
        #[command(flatten)]
        opts: Opts,
    },
    /// Two releases (the dumps' service version) compared: polls and p99 poll time per
    /// task name in each, and the change.
    ReleaseDiff {
        /// The release before (a `service_version` of the `dumps` table).
        before: String,
        /// The release after.
        after: String,
        /// The tables' location, as for SQL.
        location: String,
        #[command(flatten)]
        opts: Opts,
    },
}

/// Runs `fdr query`.
pub(crate) fn run(args: QueryArgs) -> Result<()> {
    let (sql, location, opts) = match args.question {
        Some(Question::TopBlocking {
            location,
            limit,
            opts,
        }) => (canned::top_blocking(limit), location, opts),
        Some(Question::P99ByTask { location, opts }) => (canned::p99_by_task(), location, opts),
        Some(Question::IncidentsPerRule { location, opts }) => {
            (canned::incidents_per_rule(), location, opts)
        }
        Some(Question::ReleaseDiff {
            before,
            after,
            location,
            opts,
        }) => (canned::release_diff(&before, &after), location, opts),
        None => {
            let (Some(sql), Some(location)) = (args.sql, args.location) else {
                return Err(Usage("give SQL and a location, or a question".into()).into());
            };
            // An option before a question's name makes clap read the name as SQL.
            if let Some(q) = question_named(&sql) {
                return Err(Usage(format!(
                    "`{q}` is a question: its options follow its name (fdr query {q} --json LOCATION)"
                ))
                .into());
            }
            (sql, location, args.opts)
        }
    };
    if opts.print_sql {
        println!("{sql}");
        return Ok(());
    }
    if opts.max_rows == 0 || opts.memory_mib == 0 {
        return Err(Usage("--max-rows and --memory-mib must be above 0".into()).into());
    }
    let limits = Limits {
        max_rows: opts.max_rows,
        memory_bytes: opts.memory_mib.saturating_mul(1 << 20),
    };
    let fleet = open(&location, limits)?;
    let answer = fleet.sql(&sql).map_err(|e| match e {
        // The query itself is wrong (its SQL, a table or column it names): a usage error,
        // with what it was run on.
        QueryError::Query(e) if refused(&e) => anyhow::Error::new(Usage(format!(
            "{e}\n  the query: {sql}\n  the tables at {}: {}",
            fleet.location(),
            fleet.tables().join(", ")
        ))),
        e => anyhow::Error::new(e).context(format!("running the query over {}", fleet.location())),
    })?;
    if answer.rows_left_out > 0 {
        note(&format!(
            "{} more rows not shown (--max-rows {})",
            answer.rows_left_out, opts.max_rows
        ));
    }
    print(opts.json, to_json(&answer, &fleet), text(&answer))
}

/// The canned question named `sql`, if it is one's name.
fn question_named(sql: &str) -> Option<String> {
    use clap::Subcommand as _;
    Question::augment_subcommands(clap::Command::new("query"))
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .find(|name| name == sql.trim())
}

/// Whether DataFusion refused the query as written (parsing, planning, a name it does
/// not know, a feature it lacks), rather than failing to run it.
fn refused(e: &DataFusionError) -> bool {
    matches!(
        e.find_root(),
        DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
    )
}

/// The tables at `location`.
fn open(location: &str, limits: Limits) -> Result<Fleet> {
    if let Some(dir) = location.strip_prefix("file://") {
        return Ok(Fleet::open(Path::new(dir), limits)?);
    }
    if crate::incidents::is_url(location) {
        return bucket(location, limits);
    }
    Ok(Fleet::open(Path::new(location), limits)?)
}

#[cfg(feature = "buckets")]
fn bucket(url: &str, limits: Limits) -> Result<Fleet> {
    let config =
        fdr_sentinel::BucketConfig::from_url(url).map_err(|why| Usage(format!("{url}: {why}")))?;
    let store = fdr_sentinel::BucketStore::new(config)
        .with_context(|| format!("opening the object store {url}"))?;
    Ok(Fleet::open_store(url, store.object_store(), limits)?)
}

#[cfg(not(feature = "buckets"))]
fn bucket(url: &str, _: Limits) -> Result<Fleet> {
    Err(Usage(format!(
        "{url}: this fdr was built without object stores (fdr-cli's `buckets` feature)"
    ))
    .into())
}

fn to_json(a: &Answer, fleet: &Fleet) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = a
        .rows
        .iter()
        .map(|r| {
            let mut o = Map::new();
            for (c, v) in a.columns.iter().zip(r) {
                o.insert(c.clone(), cell(v));
            }
            serde_json::Value::Object(o)
        })
        .collect();
    json!({
        "location": fleet.location(),
        "tables": fleet.tables(),
        "columns": a.columns,
        "rows": rows,
        "rows_left_out": a.rows_left_out,
    })
}

fn cell(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        // NaN and infinities have no JSON number: null.
        Value::Float(x) => json!(x),
        Value::Str(s) => json!(s),
    }
}

/// The answer as aligned columns: numbers to the right, text to the left, then the count.
fn text(a: &Answer) -> String {
    let cells: Vec<Vec<String>> = a
        .rows
        .iter()
        .map(|r| r.iter().map(|v| v.to_string().replace('\n', " ")).collect())
        .collect();
    let widths: Vec<usize> = a
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..a.columns.len())
        .map(|i| {
            a.rows.iter().all(|r| {
                matches!(
                    r[i],
                    Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Null
                )
            })
        })
        .collect();
    let mut s = String::new();
    let line = |s: &mut String, row: &[String]| {
        let mut l = String::new();
        for (i, c) in row.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = widths[i].saturating_sub(c.chars().count());
            if numeric[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(&mut s, &a.columns);
    for r in &cells {
        line(&mut s, r);
    }
    let _ = writeln!(
        s,
        "({} row{})",
        a.rows.len(),
        if a.rows.len() == 1 { "" } else { "s" }
    );
    s
}
