//! The format's integration tests, one binary: each module was a test binary of its own,
//! and one binary links once instead of five times.
//!
//! `cargo test -p fdr-format --test format MODULE::` runs one module's tests.

mod golden;
mod identity;
mod inputs;
mod limits;
mod roundtrip;
