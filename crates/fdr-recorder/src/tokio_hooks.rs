//! tokio integration (feature `tokio`): worker threads through the runtime Builder hooks.
//!
//! [`instrument`] installs tokio's stable thread hooks: a worker registers with the
//! recorder when it starts (its thread start event; its thread end is recorded when it
//! exits), and records a park when it goes idle and an unpark when it wakes.
//!
//! With the feature `tokio-unstable-hooks` and `RUSTFLAGS="--cfg tokio_unstable"`, it also
//! installs tokio's task hooks, so every tokio task is seen without wrapping: its creation
//! (spawn site from tokio), each poll (the task is current during it; tokio does not say
//! whether a poll completed the task, so every poll ends "pending" and the task's drop
//! follows its last one), and its termination. Such a task's fdr id is its tokio id with
//! [`TOKIO_TASK_ID_BIT`] set, so it never collides with fdr's own ids.
//!
//! ```
//! let mut builder = tokio::runtime::Builder::new_current_thread();
//! fdr_recorder::tokio_hooks::instrument(&mut builder);
//! let rt = builder.build().unwrap();
//! rt.block_on(async {});
//! ```

use fdr_format::EventKind;

use crate::{enabled, record};

#[cfg(all(feature = "tokio-unstable-hooks", not(tokio_unstable)))]
compile_error!(
    "fdr-recorder's feature `tokio-unstable-hooks` uses tokio's unstable task hooks, which \
     exist only when tokio is built with `--cfg tokio_unstable`: build with \
     RUSTFLAGS=\"--cfg tokio_unstable\" (or set `rustflags` in .cargo/config.toml), or drop \
     the feature and use `fdr_recorder::task::spawn` / `.traced(name)` instead"
);

/// The bit set in the fdr id of a task seen through tokio's unstable task hooks.
pub const TOKIO_TASK_ID_BIT: u64 = 1 << 62;

/// Installs fdr's hooks on a tokio runtime builder (replacing any `on_thread_start`,
/// `on_thread_stop`, `on_thread_park` and `on_thread_unpark` set before; and with the
/// unstable hooks, the task hooks).
pub fn instrument(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    // Worker timestamps are compared with tasks': fix the clock before any worker runs.
    crate::clock::calibrate();
    builder
        .on_thread_start(|| {
            if enabled() {
                // Registers the thread, which records its start.
                let _ = crate::local::with_local(|_| ());
            }
        })
        .on_thread_stop(|| {
            // The thread's end is recorded when its storage is torn down, right after.
        })
        .on_thread_park(|| {
            if enabled() {
                record(&EventKind::Park);
            }
        })
        .on_thread_unpark(|| {
            if enabled() {
                record(&EventKind::Unpark);
            }
        });
    #[cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]
    unstable::install(builder);
    builder
}

#[cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]
mod unstable {
    use std::cell::Cell;
    use std::hash::{Hash, Hasher};

    use fdr_format::{EventKind, TaskId};
    use tokio::runtime::TaskMeta;

    use super::TOKIO_TASK_ID_BIT;
    use crate::clock::now_ticks;
    use crate::metric_cells::Counter;
    use crate::metrics::with_thread;
    use crate::{current_task, enabled, intern, intern_site, record, set_current_task};

    /// Reads the integer inside a tokio task id through its `Hash` (it hashes exactly its
    /// one `u64`), without formatting it.
    #[derive(Default)]
    struct IdCapture(u64);

    impl Hasher for IdCapture {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(*b);
            }
        }
        fn write_u64(&mut self, v: u64) {
            self.0 = v;
        }
    }

    /// The fdr id of a tokio task.
    pub(super) fn task_id(meta: &TaskMeta<'_>) -> TaskId {
        let mut h = IdCapture::default();
        meta.id().hash(&mut h);
        TaskId(h.finish() | TOKIO_TASK_ID_BIT)
    }

    thread_local! {
        /// The task current before the poll in progress, and the poll's start ticks.
        static POLL: Cell<(TaskId, u64)> = const { Cell::new((TaskId::NONE, 0)) };
    }

    pub(super) fn install(builder: &mut tokio::runtime::Builder) {
        builder
            .on_task_spawn(|meta| {
                if enabled() {
                    record(&EventKind::TaskCreate {
                        task: task_id(meta),
                        parent: current_task(),
                        name: intern("tokio task"),
                        site: intern_site(meta.spawned_at()),
                    });
                }
                with_thread(|m| m.count(Counter::TasksSpawned, 1));
            })
            .on_before_task_poll(|meta| {
                let task = task_id(meta);
                let previous = set_current_task(task);
                POLL.with(|p| p.set((previous, now_ticks())));
                if enabled() {
                    record(&EventKind::PollStart { task });
                }
            })
            .on_after_task_poll(|meta| {
                let task = task_id(meta);
                if enabled() {
                    record(&EventKind::PollEnd { task, ready: false });
                }
                let (previous, start) = POLL.with(Cell::get);
                set_current_task(previous);
                let end = now_ticks();
                with_thread(|m| m.poll(None, end.saturating_sub(start)));
            })
            .on_task_terminate(|meta| {
                if enabled() {
                    record(&EventKind::TaskDrop {
                        task: task_id(meta),
                    });
                }
                with_thread(|m| {
                    m.count(Counter::TasksCompleted, 1);
                    m.count(Counter::TasksDropped, 1);
                });
            });
    }
}
