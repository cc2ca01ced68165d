//! The sentinel's integration tests, one binary: each module was a test binary of its own,
//! and one binary links the sentinel's dependencies (object stores, TLS) once instead of
//! eleven times. Tests that start the process-wide recorder or a sentinel open with
//! `fdr_test_support::isolated::ran_in_child()` and run alone in a child process of this
//! binary; the S3 store's tests share one moto server in this process.
//!
//! `cargo test -p fdr-sentinel --test sentinel MODULE::` runs one module's tests.

mod common;
#[cfg(feature = "aws")]
#[path = "common/moto.rs"]
mod moto;

mod dir_store;
mod failing_store;
mod flapping;
mod incident;
mod incident_cost;
mod rule_names;
#[cfg(feature = "aws")]
mod s3_failure;
#[cfg(feature = "aws")]
mod s3_incident;
#[cfg(feature = "aws")]
mod s3_store;
mod snapshot_busy;
mod unknown_metric;
