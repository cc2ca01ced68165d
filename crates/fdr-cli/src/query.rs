//! `fdr query 'SQL' LOCATION`: SQL over the Parquet tables of every dump at a location (a
//! directory or a bucket URL), with DataFusion embedded (fdr-query), feature `query`; and
//! the common questions as subcommands (`blocking`, `latency`, `incidents-per-day`,
//! `releases`), whose SQL `--show-sql` prints for other engines.

use anyhow::Result;
use fdr_query::{Canned, Fleet, QueryError};
use serde_json::json;

use crate::exit::Usage;

/// `fdr query`'s arguments.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct QueryArgs {
    /// One SQL statement (a read) over the tables `dumps`, `tasks`, `polls`, `awaits`,
    /// `regions`, `blocks`, `logs`, `wakes`, `metric_samples`, `stack_samples`, `findings`
    /// (docs/TABLES.md).
    #[arg(required = true)]
    sql: Option<String>,
    #[command(flatten)]
    at: At,
    #[command(subcommand)]
    canned: Option<CannedCmd>,
}

/// Where the tables are, and how to print the answer.
#[derive(clap::Args)]
struct At {
    /// Where `fdr export --format parquet` wrote the tables (`TABLE/DUMP.parquet`): a
    /// directory, or a bucket URL `s3://BUCKET/PREFIX`, `gs://...`, `az://...`, `file:///DIR`.
    #[arg(required = true)]
    location: Option<String>,
    /// Machine-readable JSON output: the rows as objects.
    #[arg(long)]
    json: bool,
    /// For a bucket served over TLS with a private CA (MinIO, a proxy): a PEM file of root
    /// certificates to trust besides the system's.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,
}

/// Options of every canned question.
#[derive(clap::Args)]
struct CannedOpts {
    #[command(flatten)]
    at: At,
    /// Print the question's SQL (which DuckDB, too, runs unchanged) instead of answering it.
    #[arg(long)]
    show_sql: bool,
}

#[derive(clap::Subcommand)]
enum CannedCmd {
    /// The blocking sites that cost most across every dump: waits, dumps, total and
    /// longest wait.
    Blocking {
        #[command(flatten)]
        o: CannedOpts,
        /// How many sites.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// p99 poll time and p99 await time per host and task name.
    Latency {
        #[command(flatten)]
        o: CannedOpts,
        /// How many rows.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Incidents per sentinel rule per day (UTC), and the hosts they came from.
    IncidentsPerDay {
        #[command(flatten)]
        o: CannedOpts,
    },
    /// Two releases (the dumps' service version) compared per task name: polls, p99 and
    /// mean poll time, largest p99 rise first.
    Releases {
        #[command(flatten)]
        o: CannedOpts,
        /// The earlier release.
        before: String,
        /// The later release.
        after: String,
        /// How many task names.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

/// Runs `fdr query`.
pub(crate) fn run(args: QueryArgs) -> Result<()> {
    let (sql, at, show_sql) = match args.canned {
        None => (args.sql.unwrap_or_default(), args.at, false),
        Some(c) => {
            let (q, o) = match c {
                CannedCmd::Blocking { o, limit } => (Canned::Blocking { limit }, o),
                CannedCmd::Latency { o, limit } => (Canned::Latency { limit }, o),
                CannedCmd::IncidentsPerDay { o } => (Canned::IncidentsPerDay, o),
                CannedCmd::Releases {
                    o,
                    before,
                    after,
                    limit,
                } => (
                    Canned::Releases {
                        before,
                        after,
                        limit,
                    },
                    o,
                ),
            };
            (q.sql(), o.at, o.show_sql)
        }
    };
    if show_sql {
        println!("{sql};");
        return Ok(());
    }
    let location = at.location.unwrap_or_default();
    let fleet = match at.ca_file {
        None => Fleet::open(&location),
        Some(ca) if fdr_query::is_url(&location) => {
            let mut config = fdr_sentinel::BucketConfig::from_url(&location)
                .map_err(|why| Usage(format!("{location}: {why}")))?;
            config.root_certificates = Some(ca);
            Fleet::open_bucket(config)
        }
        Some(_) => {
            return Err(Usage(format!(
                "{location}: --ca-file is for a bucket URL (https://), not a directory"
            ))
            .into());
        }
    }
    .map_err(|e| failure(e, &location))?;
    let answer = fleet.sql(&sql).map_err(|e| failure(e, &location))?;
    let rows = answer.to_json().map_err(|e| failure(e, &location))?;
    let text = if answer.rows() == 0 {
        "(no rows)\n".to_owned()
    } else {
        answer.to_text().map_err(|e| failure(e, &location))? + "\n"
    };
    crate::output::print(at.json, json!({ "location": location, "rows": rows }), text)
}

/// A failure with its exit code: a bad URL or query is a usage error (2); a location that
/// is not there, a store's or a file's error, an I/O error (1).
fn failure(e: QueryError, location: &str) -> anyhow::Error {
    match e {
        QueryError::Sql(e) => Usage(format!("the query: {e}")).into(),
        QueryError::Location { why, .. } if fdr_query::is_url(location) => {
            Usage(format!("{location}: {why}")).into()
        }
        e @ QueryError::Run(_) => anyhow::Error::new(e).context(format!("querying {location}")),
        e => anyhow::Error::new(e),
    }
}
