//! The sentinel: dumps fdr's flight recorder when a metric breaches its SLO (the seed's
//! watcher goroutine, made safe to leave running).
//!
//! A watcher thread samples metrics every `interval` (default 5 s): fdr's runtime metrics
//! (`fdr_sched_latency_ns`, `fdr_poll_duration_ns`, `fdr_tasks_alive`, ...), every metric of
//! the `prometheus` registries handed over, and the process's CPU, memory, threads and file
//! descriptors (`process_*`). [`Rule`]s read a statistic of one metric (a quantile, the max
//! or the mean of a histogram over the last interval, a gauge's level or growth, a counter's
//! rate) and fire when it stays past a threshold for N consecutive samples. A dump thread
//! writes the flight recorder into an [`IncidentStore`] with a metadata sidecar.
//!
//! It never makes things worse: dumps are written off the watcher thread, one at a time; a
//! full disk, a failing store or a missing recorder is logged and counted, and the service
//! carries on; per-rule and global limits (cooldown, at most K dumps per sliding window,
//! lifetime) stop a flapping rule from causing a dump storm, and only a dump actually written
//! spends them; dumps take incident snapshots, which downloads never crowd out, and a
//! trigger that finds every incident slot taken waits for one; a store shows an incident only once it is complete, takes its
//! id from its name, never from its content, and creates its files privately (0600) and
//! never through a symlink.
//!
//! ```no_run
//! use std::time::Duration;
//! use fdr_sentinel::{Retention, Rule, Sentinel, Stat};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! fdr_recorder::start(fdr_recorder::Config {
//!     flight: Some(fdr_recorder::FlightConfig::default()),
//!     ..Default::default()
//! })?;
//! let sentinel = Sentinel::builder()
//!     .rule(
//!         Rule::above("slow_sched", "fdr_sched_latency_ns", Stat::Quantile(0.99), 20e6)
//!             .for_samples(3),
//!     )
//!     .rule(Rule::parse("leak: fdr_tasks_alive growth > 1000 for 6")?)
//!     .dir("/var/lib/my-service/incidents", Retention::default())
//!     .service_version(env!("CARGO_PKG_VERSION"))
//!     .from_env()? // FDR_SENTINEL_* override the code
//!     .start()?;
//! # drop(sentinel);
//! # Ok(()) }
//! ```
//!
//! Incidents are read back with [`IncidentStore::list`] and [`IncidentStore::open`] (the
//! admin endpoint serves them) and analyzed with `fdr diagnose ID.fdr`.
//!
//! # Feature flags
//!
//! - `aws`, `gcp`, `azure`, `local`: [`BucketStore`] (module [`bucket`]), incidents in an
//!   object store through Apache Arrow's `object_store`: Amazon S3 and S3-compatible servers
//!   (`s3://`, HTTPS, the standard AWS credential chain), Google Cloud Storage (`gs://`),
//!   Azure Blob Storage (`az://`) and local files (`file://`), with the directory store's
//!   guarantees (complete or invisible, bounded memory, retention by count and bytes).
//!   `SentinelBuilder::bucket`, `.store(BucketStore::new(..)?)` or `FDR_SENTINEL_URL` select
//!   it. They bring in object_store with reqwest and rustls, and a small tokio runtime the
//!   store owns.
//!
//! Without features, the directory store ([`DirStore`]) is the one built in; any other
//! [`IncidentStore`] can be handed to [`SentinelBuilder::store`].
#![forbid(unsafe_code)]

#[cfg(feature = "object-store")]
pub mod bucket;
mod cost;
pub mod engine;
pub mod env;
mod layout;
pub mod metric;
mod rule;
mod sentinel;
mod store;

#[cfg(feature = "object-store")]
pub use bucket::{BucketConfig, BucketStore, UrlError};
pub use cost::IncidentCost;
pub use engine::{Engine, Step, Suppressed, Trigger};
pub use env::EnvProblem;
pub use layout::{DEFAULT_FILE_MODE, FileModeError, MAX_ID_BYTES};
pub use metric::{Histogram, MetricValue, Metrics};
/// The object_store release of [`BucketStore::object_store`].
#[cfg(feature = "object-store")]
pub use object_store;
pub use rule::{Limits, NameError, Rule, RuleError, RuleProblem, Stat, ValueError};
pub use sentinel::{
    DEFAULT_SNAPSHOT_WAIT, Error, LogFn, Sentinel, SentinelBuilder, SentinelHandle, SentinelStats,
};
pub use store::{
    DirStore, DumpFn, IncidentMeta, IncidentStore, Listing, Retention, SidecarError, StoreError,
};
