//! What fdr's tests, benches and `cargo xtask` share; never published.
//!
//! - [`scenarios`]: deterministic traces of known problems (one per diagnose rule, and a
//!   healthy service) and [`scenarios::TraceBuilder`], which writes a trace from per-thread
//!   event lists.
//! - [`events`]: shorthands for the events tests push to a `TraceBuilder` by hand (a root
//!   task, a poll, an OS sample, a stack) and the mapping a test's stack address resolves in.
//! - [`adversarial`]: hostile traces shaped to push each of the analyzer's limits.
//! - [`trace`]: the one decoder tests read a trace with: every event with its thread, and
//!   the tables, panicking with the byte offset on damage.
//! - [`tools`]: the one installer of what a check needs outside Rust: Debian packages
//!   (`apt-get`) and pinned Python packages (`pip --target` into the target directory).
//! - [`python`]: the pinned Python packages the tests install, in one place.
//! - [`isolated`]: a test of a shared test binary that needs a process of its own (the
//!   recorder, a global provider or panic hook) runs alone in a child of that binary.
#![forbid(unsafe_code)]

pub mod adversarial;
pub mod events;
pub mod isolated;
pub mod python;
pub mod scenarios;
pub mod tools;
pub mod trace;
