//! A tokio runtime's workers, sampled from outside (feature `tokio`): for a runtime built
//! by `#[tokio::main]`, which has no builder to hand to [`instrument`](crate::tokio_hooks::instrument).
//!
//! [`watch`] starts a thread of fdr's own (`fdr-tokio-watch`, never a task on the watched
//! runtime) that reads tokio's stable [`RuntimeMetrics`]
//! every interval and records them as metric samples
//! ([`EventKind::Metric`]) on its own thread:
//!
//! | name | value |
//! |---|---|
//! | `tokio_worker_busy_ns{runtime="R",worker="W"}` | worker W's busy time since the runtime started, ns (cumulative) |
//! | `tokio_worker_parks{runtime="R",worker="W"}` | times worker W parked (went idle) since the runtime started (cumulative) |
//! | `tokio_global_queue_depth{runtime="R"}` | tasks waiting in the runtime's global queue now |
//! | `tokio_alive_tasks{runtime="R"}` | tasks alive in the runtime now |
//!
//! `R` numbers the runtimes watched in this process (1, 2, ...), `W` is tokio's worker index.
//! Two samples of a worker bound an interval: the busy time's growth over the interval's
//! length is the worker's busy share, and the rest is idle (parked, or looking for work),
//! which is what "workers parked" means where park events are recorded. tokio adds a
//! worker's busy time when the worker finishes a batch of work (when it parks, and at its
//! periodic maintenance, every 61 scheduler ticks), so one poll that runs long shows at its
//! end.
//!
//! A sample is recorded only while fdr records; it costs the watcher a few atomic loads and
//! two events per worker, and the runtime nothing.
//!
//! What a watched runtime does not record: its workers' parks and unparks, and so the
//! per-wake evidence (each worker reading its own scheduler counters as it parks and
//! unparks, [`instrument`](crate::tokio_hooks::instrument)'s hooks with the OS view on).
//! tokio takes those hooks only on its `Builder`, before the runtime exists, and a `Handle`
//! cannot add them; the metrics above count parks but cannot time one. Without that
//! evidence `fdr diagnose` cannot take the kernel's wait for a CPU off each await the
//! runtime's driver ended, and its `slow_downstream` finding says so ("no per-wake
//! evidence") instead of assuming a prompt host. To have it, build the runtime with
//! [`instrument`](crate::tokio_hooks::instrument) in place of `#[tokio::main]` (what the
//! macro expands to: `Builder::new_multi_thread().enable_all()`, `build()`, `block_on`).
//!
//! ```
//! # fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
//! # let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
//! # rt.block_on(async {
//! // Inside `#[tokio::main] async fn main()`:
//! let _watch = fdr_recorder::tokio_watch::watch(tokio::runtime::Handle::current())?;
//! # Ok::<(), fdr_recorder::Error>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fdr_format::{EventKind, StrId};
use tokio::runtime::{Handle, RuntimeMetrics};

use crate::error::Error;
use crate::{enabled, intern_dynamic, record};

/// How often [`watch`] samples: often enough that an incident window of a few seconds holds
/// tens of samples per worker, at a cost of a few events per worker per sample.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Shortest interval [`watch_every`] accepts; shorter ones are raised to it.
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(1);

/// Numbers the runtimes watched in this process.
static NEXT_RUNTIME: AtomicU32 = AtomicU32::new(1);

/// Asks the watcher thread to stop, and wakes it.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Waits up to `timeout`; whether a stop was asked.
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: each round waits until the deadline, which does not move.
        while !*stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *stopped
    }

    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }
}

/// A runtime being sampled; sampling stops (after one last sample) when this is dropped,
/// so keep it for as long as the runtime runs (in `main`, a `let _watch = ...;`).
#[must_use = "the runtime is watched until this is dropped"]
pub struct RuntimeWatch {
    runtime: u32,
    workers: usize,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for RuntimeWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeWatch")
            .field("runtime", &self.runtime)
            .field("workers", &self.workers)
            .finish()
    }
}

impl RuntimeWatch {
    /// The `runtime` label of this runtime's samples.
    pub fn runtime_label(&self) -> u32 {
        self.runtime
    }

    /// The runtime's worker count (tokio's `num_workers`).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Stops sampling after one last sample, and waits for the watcher thread to end.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            // The watcher only samples and waits; it ends as soon as it sees the stop.
            let _ = t.join();
        }
    }
}

impl Drop for RuntimeWatch {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Watches `handle`'s runtime every [`DEFAULT_WATCH_INTERVAL`] (see the module docs).
/// Call it once per runtime; inside `#[tokio::main]`,
/// `let _watch = watch(Handle::current())?;`. Fails only if the watcher thread cannot be
/// started.
pub fn watch(handle: Handle) -> Result<RuntimeWatch, Error> {
    watch_every(handle, DEFAULT_WATCH_INTERVAL)
}

/// Watches `handle`'s runtime every `interval` (at least [`MIN_WATCH_INTERVAL`]).
pub fn watch_every(handle: Handle, interval: Duration) -> Result<RuntimeWatch, Error> {
    // Samples are compared with the workers' events: fix the clock first.
    crate::clock::calibrate();
    let interval = interval.max(MIN_WATCH_INTERVAL);
    let metrics = handle.metrics();
    let runtime = NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed);
    let names = Names::new(runtime, metrics.num_workers());
    let workers = names.workers.len();
    let stop = Arc::new(Stop::default());
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("fdr-tokio-watch".into())
            .spawn(move || {
                crate::cost::register_thread(crate::cost::Role::TokioWatch);
                // A sample at the start, one per interval, one at the stop. Bounded by the
                // guard: each round waits one interval, and the guard's drop ends the loop.
                sample(&metrics, &names);
                while !stop.wait(interval) {
                    sample(&metrics, &names);
                }
                sample(&metrics, &names);
            })
            .map_err(Error::Spawn)?
    };
    Ok(RuntimeWatch {
        runtime,
        workers,
        stop,
        thread: Some(thread),
    })
}

/// The interned names of one runtime's samples.
struct Names {
    /// Per worker: busy ns, parks.
    workers: Vec<(StrId, StrId)>,
    global_queue: StrId,
    alive_tasks: StrId,
}

impl Names {
    fn new(runtime: u32, workers: usize) -> Self {
        Names {
            workers: (0..workers)
                .map(|w| {
                    let labels = format!("{{runtime=\"{runtime}\",worker=\"{w}\"}}");
                    (
                        intern_dynamic(&format!("tokio_worker_busy_ns{labels}")),
                        intern_dynamic(&format!("tokio_worker_parks{labels}")),
                    )
                })
                .collect(),
            global_queue: intern_dynamic(&format!(
                "tokio_global_queue_depth{{runtime=\"{runtime}\"}}"
            )),
            alive_tasks: intern_dynamic(&format!("tokio_alive_tasks{{runtime=\"{runtime}\"}}")),
        }
    }
}

/// Records one sample of every worker, if fdr records.
fn sample(metrics: &RuntimeMetrics, names: &Names) {
    if !enabled() {
        return;
    }
    let metric = |name, value| record(&EventKind::Metric { name, value });
    for (w, &(busy, parks)) in names.workers.iter().enumerate() {
        metric(
            busy,
            metrics.worker_total_busy_duration(w).as_nanos() as f64,
        );
        metric(parks, metrics.worker_park_count(w) as f64);
    }
    metric(names.global_queue, metrics.global_queue_depth() as f64);
    metric(names.alive_tasks, metrics.num_alive_tasks() as f64);
}
