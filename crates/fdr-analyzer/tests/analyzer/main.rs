//! The analyzer's integration tests, one binary: each module was a test binary of its own,
//! and one binary links once instead of eight times.
//!
//! `cargo test -p fdr-analyzer --test analyzer MODULE::` runs one module's tests.

mod chrome_json;
mod hostile;
mod perfetto_export;
mod rank;
mod report_data;
mod scenarios;
mod waits;
mod window;
