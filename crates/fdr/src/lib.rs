//! fdr: a flight data recorder for Rust services.
//!
//! fdr keeps an always-on, in-memory record of what your threads and async tasks did: user
//! tasks (one per request), regions (phases of work), logs, and more, at a cost per event
//! close to the floor of a timestamped thread-local store. When something goes wrong you dump
//! the last seconds with [`flight()`]`.write_to(..)` and read the dump with the `fdr` command
//! (`fdr diagnose dump.fdr`).
//!
//! ```
//! # fn main() -> Result<(), fdr::Error> {
//! # #[cfg(feature = "record")]
//! fdr::start(fdr::Config::default())?;
//!
//! fn handle(user: u32) {
//!     let _task = fdr::task("http GET /user");
//!     fdr::with_region("auth", || { /* check the token */ });
//!     let _db = fdr::region("db");
//!     fdr::log!("db", "user {user}: cache miss");
//! }
//! handle(17);
//!
//! let mut dump: Vec<u8> = Vec::new();
//! # #[cfg(feature = "record")]
//! fdr::flight().write_to(&mut dump)?;
//! # #[cfg(feature = "record")]
//! assert!(!dump.is_empty());
//! # Ok(()) }
//! ```
//!
//! Async tasks are traced with `.traced(name)` (any executor) or [`spawn`] (tokio): fdr
//! records their creation, every poll, who woke them and when they were dropped, so
//! `fdr sched` and `fdr diagnose` see scheduling delay and long polls. Locks from [`sync`]
//! record where they were contended.
//!
//! A phase of async code that awaits is an async region: `.in_region(name)` on a future, or
//! [`async_region`]'s guard, which is `Send` and may be held across `.await` (a [`region()`]'s
//! guard is not `Send`: a handler holding one across an `.await` is not `Send`, and axum
//! rejects it with an error about its `Handler` trait).
//!
//! ```
//! use fdr::FdrFutureExt;
//!
//! # fn main() {
//! let shared = fdr::sync::Mutex::new(0u64);
//! async fn fetch() -> u64 { 7 }
//! let request = async {
//!     let rows = fetch().in_region("db").await; // a phase across awaits
//!     let _render = fdr::async_region("render"); // Send: may be held across awaits
//!     *shared.lock().unwrap() += rows;
//! }
//! .traced("request");
//! # let _ = request;
//! # }
//! ```
//!
//! `FdrFutureExt` was called `FutureExt`, a name the `futures` crate and OpenTelemetry use
//! too; `fdr::FutureExt` remains, deprecated, for one release.
//!
//! # Feature flags
//!
//! Default features are minimal; pick what a deployment needs.
//!
//! - `record` (default): record events. Without it every recording call (`task`, `region`,
//!   `with_region`, `log!`, ...) compiles to nothing, the control calls (`start`, `flight`,
//!   `capture`) return [`Error`] or do nothing, and `fdr-recorder` is not linked: libraries can
//!   instrument freely and a binary decides.
//! - `sentinel`: [`sentinel`], rules over fdr's runtime metrics, Prometheus registries and
//!   process metrics that dump the flight recorder into an incident store (a directory, or S3) when
//!   an SLO is breached, with limits that stop a flapping rule from causing a dump storm.
//!   (Implies `record`.)
//! - `s3`: the sentinel's S3-compatible incident store (`sentinel::S3Store`, or
//!   `FDR_SENTINEL_S3_URL`). (Implies `sentinel`.)
//! - `admin`: [`admin`], the admin HTTP endpoint on its own listener and thread: the flight
//!   recorder, throttled on-demand captures, the sentinel's incidents and Prometheus
//!   `/metrics`; loopback by default, authentication required anywhere else. (Implies
//!   `record`.)
//! - `pprof`: the admin endpoint's `GET /debug/pprof/profile?seconds=N`, a CPU profile of
//!   the next N seconds as gzipped pprof protobuf (`go tool pprof`, speedscope, Pyroscope),
//!   from the recorder's own CPU samples, symbolized in the process. It needs the OS view:
//!   `Config { os: OsConfig::platform_default(), .. }` (Linux; 503 otherwise). A profile is
//!   a capture: one at a time with `/debug/fdr/trace`, the same cooldown. For a dump,
//!   `fdr export --format pprof` writes the same profile of its CPU samples. (Implies
//!   `admin`.)
//! - `tokio`: [`tokio::instrument`] records tokio workers' start, stop, park and unpark on a
//!   runtime you build (`tokio::instrument_with` keeps your own hooks), `tokio::watch`
//!   samples the workers of a runtime built by `#[tokio::main]`, and [`spawn`] spawns a
//!   traced task. (Implies `record`.)
//! - `tokio-unstable-hooks`: [`tokio::instrument`] also installs tokio's task hooks, so every
//!   tokio task is seen (created, polled, terminated) without `.traced(..)`. Needs
//!   `RUSTFLAGS="--cfg tokio_unstable"` too (tokio's own requirement); without it the build
//!   fails with a message saying so. Not part of `full`. (Implies `tokio`.)
//! - `tracing`: [`tracing::FdrLayer`], a `tracing-subscriber` layer: a span's first entry
//!   becomes a region and its life (first enter to close) an async region, so an async
//!   `#[instrument]` span is one phase across its awaits, not a region per poll; span fields
//!   and events become logs, so code already instrumented with `tracing` shows up in fdr's
//!   traces. (Implies `record`.)
//! - `otel`: [`otel`], the OpenTelemetry bridge: a tower/hyper layer makes each request a
//!   task named `http METHOD ROUTE` linked to its trace and span ids (so
//!   `fdr tasks dump.fdr --otel-trace-id ID` finds it) and puts `fdr.task_id` on its span; a
//!   client layer makes each outbound request a child task and propagates `traceparent`.
//!   Without a router, tasks are named by the method alone (`http GET`), unless given a
//!   route function. (Implies `record`.)
//! - `otel-axum`: inside an axum 0.8 `Router` (`Router::layer`), `otel::ServerLayer` names
//!   tasks by the route axum matched: `http GET /user/{id}`. (Implies `otel`.)
//! - `full`: every feature.
//!
//! Without `record`, the recording calls and [`sync`]'s locks (std's) remain, so
//! instrumented code compiles unchanged; the read side (`metrics()`, [`stats`] beyond zeros)
//! exists only with `record`.
//!
//! # Panics
//!
//! [`dump_on_panic`] writes the flight recorder to a directory when the process panics,
//! before the previous panic hook runs (the JFR emergency dump): each panic, up to a limit
//! per window, becomes an incident the sentinel's directory store lists, with the panic's
//! message and location ([`PanicDump`] sets the limit, the mode and how long to wait for the
//! recorder while another snapshot is being written).
//!
// Links to items that exist only with their feature point at "Feature flags" otherwise, so
// the docs build with any set of features.
#![cfg_attr(
    feature = "tokio",
    doc = "[`spawn`]: crate::spawn\n[`tokio::instrument`]: crate::tokio::instrument"
)]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`spawn`]: #feature-flags\n[`tokio::instrument`]: #feature-flags"
)]
#![cfg_attr(
    feature = "tracing",
    doc = "[`tracing::FdrLayer`]: crate::tracing::FdrLayer"
)]
#![cfg_attr(
    not(feature = "tracing"),
    doc = "[`tracing::FdrLayer`]: #feature-flags"
)]
#![cfg_attr(feature = "otel", doc = "[`otel`]: crate::otel")]
#![cfg_attr(not(feature = "otel"), doc = "[`otel`]: #feature-flags")]
#![forbid(unsafe_code)]

#[cfg(feature = "record")]
mod control;
mod error;
pub use error::Error;

#[cfg(feature = "record")]
mod on;
#[cfg(feature = "record")]
pub use on::*;

#[cfg(not(feature = "record"))]
mod off;
#[cfg(not(feature = "record"))]
pub use off::*;

mod panic;
pub use panic::{PanicDump, PanicDumpStats, dump_on_panic, panic_dump_stats};

/// The trace format's types that the recording API mentions.
pub use fdr_format::{BlockReason, LossReason, TaskId};
