//! tokio integration (feature `tokio`): worker threads through the runtime Builder hooks.
//!
//! [`instrument`] installs tokio's stable thread hooks: a worker registers with the
//! recorder when it starts (its thread start event; its thread end is recorded when it
//! exits), and records a park when it goes idle and an unpark when it wakes.
//! tokio's `Builder` keeps one closure per hook, so `instrument` replaces hooks set before it;
//! an application with hooks of its own hands them to [`instrument_with`], which runs them
//! beside fdr's, or calls [`Hooks`]' functions from its own closures.
//!
//! A runtime built by `#[tokio::main]` has no builder to hand over:
//! [`watch`](crate::tokio_watch::watch) samples its workers' busy time and parks from outside
//! instead (see [`crate::tokio_watch`]).
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

use std::fmt;
use std::sync::Arc;

use fdr_format::{EventKind, SampleCause};

use crate::{enabled, record};

#[cfg(all(feature = "tokio-unstable-hooks", not(tokio_unstable)))]
compile_error!(
    "the feature `tokio-unstable-hooks` (of fdr or fdr-recorder) uses tokio's unstable task \
     hooks, which exist only when tokio is built with `--cfg tokio_unstable`: build with \
     RUSTFLAGS=\"--cfg tokio_unstable\" (or set `rustflags` in .cargo/config.toml), or drop \
     the feature and use `fdr::spawn` / `.traced(name)` instead"
);

/// The bit set in the fdr id of a task seen through tokio's unstable task hooks.
pub const TOKIO_TASK_ID_BIT: u64 = 1 << 62;

/// fdr's runtime hooks as plain calls, for an application that sets the builder's hooks
/// itself: call each from the closure of the same name.
///
/// ```
/// use fdr_recorder::tokio_hooks::Hooks;
///
/// let rt = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(2)
///     .on_thread_start(|| {
///         Hooks::thread_start();
///         // ... the application's own start hook
///     })
///     .on_thread_park(|| {
///         // ... the application's own park hook
///         Hooks::thread_park();
///     })
///     .on_thread_unpark(Hooks::thread_unpark)
///     .build()
///     .unwrap();
/// rt.block_on(async {});
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Hooks(());

impl Hooks {
    /// From `on_thread_start`: registers the worker with the recorder (its thread start
    /// event; its end is recorded when the thread exits).
    pub fn thread_start() {
        // Worker timestamps are compared with tasks': the clock is fixed before any event.
        crate::clock::calibrate();
        if enabled() {
            // Registers the thread, which records its start.
            let _ = crate::local::with_local(|_| ());
        }
    }

    /// From `on_thread_stop`: nothing to record yet (the thread's end is recorded when its
    /// storage is torn down, right after); there for symmetry, so hooks stay one call each.
    pub fn thread_stop() {}

    /// From `on_thread_park`: the worker goes idle. With the OS view on, it also records
    /// its scheduler counters (and again at the unpark: the kernel's wait for a CPU after
    /// waking it).
    pub fn thread_park() {
        if enabled() {
            record(&EventKind::Park);
            crate::os::park_sample(SampleCause::Park);
        }
    }

    /// From `on_thread_unpark`: the worker wakes.
    pub fn thread_unpark() {
        if enabled() {
            crate::os::park_sample(SampleCause::Unpark);
            record(&EventKind::Unpark);
        }
    }
}

/// A thread hook of the application's.
type ThreadHook = Arc<dyn Fn() + Send + Sync>;

/// The application's own runtime hooks, which [`instrument_with`] installs together with
/// fdr's (tokio's `Builder` holds one closure per hook, so setting both is not possible).
/// fdr's hook runs first where the thread starts being recorded (start, unpark) and last
/// where it stops (park, stop), so the application's hooks run inside the recorded span.
#[derive(Clone, Default)]
pub struct UserHooks {
    thread_start: Option<ThreadHook>,
    thread_stop: Option<ThreadHook>,
    thread_park: Option<ThreadHook>,
    thread_unpark: Option<ThreadHook>,
    #[cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]
    tasks: unstable::UserTaskHooks,
}

impl UserHooks {
    /// No hooks of the application's.
    pub fn new() -> Self {
        UserHooks::default()
    }

    /// The application's `on_thread_start`.
    pub fn on_thread_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.thread_start = Some(Arc::new(f));
        self
    }

    /// The application's `on_thread_stop`.
    pub fn on_thread_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.thread_stop = Some(Arc::new(f));
        self
    }

    /// The application's `on_thread_park`.
    pub fn on_thread_park(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.thread_park = Some(Arc::new(f));
        self
    }

    /// The application's `on_thread_unpark`.
    pub fn on_thread_unpark(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.thread_unpark = Some(Arc::new(f));
        self
    }
}

impl fmt::Debug for UserHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UserHooks");
        d.field("thread_start", &self.thread_start.is_some())
            .field("thread_stop", &self.thread_stop.is_some())
            .field("thread_park", &self.thread_park.is_some())
            .field("thread_unpark", &self.thread_unpark.is_some());
        #[cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]
        d.field("tasks", &self.tasks);
        d.finish()
    }
}

/// Installs fdr's hooks on a tokio runtime builder: worker start, stop, park and unpark
/// (and with the unstable hooks, the task hooks). It replaces any of those hooks set on the
/// builder before; to keep the application's, use [`instrument_with`].
pub fn instrument(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    instrument_with(builder, UserHooks::new())
}

/// Installs fdr's hooks and the application's `user` hooks together: each of the builder's
/// hooks runs both (see [`UserHooks`] for the order).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use fdr_recorder::tokio_hooks::{UserHooks, instrument_with};
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let counter = started.clone();
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// builder.worker_threads(2);
/// instrument_with(
///     &mut builder,
///     UserHooks::new().on_thread_start(move || {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }),
/// );
/// let rt = builder.build().unwrap();
/// rt.block_on(async {});
/// drop(rt);
/// assert!(started.load(Ordering::Relaxed) >= 2);
/// ```
pub fn instrument_with(
    builder: &mut tokio::runtime::Builder,
    user: UserHooks,
) -> &mut tokio::runtime::Builder {
    // Worker timestamps are compared with tasks': fix the clock before any worker runs.
    crate::clock::calibrate();
    let UserHooks {
        thread_start,
        thread_stop,
        thread_park,
        thread_unpark,
        #[cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]
        tasks,
    } = user;
    builder
        .on_thread_start(move || {
            Hooks::thread_start();
            if let Some(f) = &thread_start {
                f();
            }
        })
        .on_thread_stop(move || {
            if let Some(f) = &thread_stop {
                f();
            }
            Hooks::thread_stop();
        })
        .on_thread_park(move || {
            if let Some(f) = &thread_park {
                f();
            }
            Hooks::thread_park();
        })
        .on_thread_unpark(move || {
            Hooks::thread_unpark();
            if let Some(f) = &thread_unpark {
                f();
            }
        });
    #[cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]
    unstable::install(builder, tasks);
    builder
}

#[cfg(all(feature = "tokio-unstable-hooks", tokio_unstable))]
mod unstable {
    use std::cell::Cell;
    use std::fmt;
    use std::hash::{Hash, Hasher};
    use std::sync::Arc;

    use fdr_format::{EventKind, TaskId};
    use tokio::runtime::TaskMeta;

    use super::{Hooks, TOKIO_TASK_ID_BIT, UserHooks};
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

    impl Hooks {
        /// From `on_task_spawn`: the task's creation, with tokio's spawn site.
        pub fn task_spawn(meta: &TaskMeta<'_>) {
            if enabled() {
                record(&EventKind::TaskCreate {
                    task: task_id(meta),
                    parent: current_task(),
                    name: intern("tokio task"),
                    site: intern_site(meta.spawned_at()),
                });
            }
            with_thread(|m| m.count(Counter::TasksSpawned, 1));
        }

        /// From `on_before_task_poll`: the poll starts; the task is current until
        /// [`Hooks::after_task_poll`].
        pub fn before_task_poll(meta: &TaskMeta<'_>) {
            let task = task_id(meta);
            let previous = set_current_task(task);
            POLL.with(|p| p.set((previous, now_ticks())));
            if enabled() {
                record(&EventKind::PollStart { task });
            }
        }

        /// From `on_after_task_poll`: the poll ends.
        pub fn after_task_poll(meta: &TaskMeta<'_>) {
            let task = task_id(meta);
            if enabled() {
                record(&EventKind::PollEnd { task, ready: false });
            }
            let (previous, start) = POLL.with(Cell::get);
            set_current_task(previous);
            let end = now_ticks();
            with_thread(|m| m.poll(None, end.saturating_sub(start)));
        }

        /// From `on_task_terminate`: the task is done.
        pub fn task_terminate(meta: &TaskMeta<'_>) {
            if enabled() {
                record(&EventKind::TaskDrop {
                    task: task_id(meta),
                });
            }
            with_thread(|m| {
                m.count(Counter::TasksCompleted, 1);
                m.count(Counter::TasksDropped, 1);
            });
        }
    }

    /// A task hook of the application's.
    type TaskHook = Arc<dyn Fn(&TaskMeta<'_>) + Send + Sync>;

    /// The application's task hooks.
    #[derive(Clone, Default)]
    pub(super) struct UserTaskHooks {
        spawn: Option<TaskHook>,
        before_poll: Option<TaskHook>,
        after_poll: Option<TaskHook>,
        terminate: Option<TaskHook>,
    }

    impl fmt::Debug for UserTaskHooks {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("UserTaskHooks")
                .field("spawn", &self.spawn.is_some())
                .field("before_poll", &self.before_poll.is_some())
                .field("after_poll", &self.after_poll.is_some())
                .field("terminate", &self.terminate.is_some())
                .finish()
        }
    }

    impl UserHooks {
        /// The application's `on_task_spawn`.
        pub fn on_task_spawn(mut self, f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static) -> Self {
            self.tasks.spawn = Some(Arc::new(f));
            self
        }

        /// The application's `on_before_task_poll`.
        pub fn on_before_task_poll(
            mut self,
            f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
        ) -> Self {
            self.tasks.before_poll = Some(Arc::new(f));
            self
        }

        /// The application's `on_after_task_poll`.
        pub fn on_after_task_poll(
            mut self,
            f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
        ) -> Self {
            self.tasks.after_poll = Some(Arc::new(f));
            self
        }

        /// The application's `on_task_terminate`.
        pub fn on_task_terminate(
            mut self,
            f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
        ) -> Self {
            self.tasks.terminate = Some(Arc::new(f));
            self
        }
    }

    /// Installs the task hooks: fdr's first at spawn and before a poll (the application's
    /// hook runs inside the recorded poll), last after a poll and at termination.
    pub(super) fn install(builder: &mut tokio::runtime::Builder, user: UserTaskHooks) {
        let UserTaskHooks {
            spawn,
            before_poll,
            after_poll,
            terminate,
        } = user;
        builder
            .on_task_spawn(move |meta| {
                Hooks::task_spawn(meta);
                if let Some(f) = &spawn {
                    f(meta);
                }
            })
            .on_before_task_poll(move |meta| {
                Hooks::before_task_poll(meta);
                if let Some(f) = &before_poll {
                    f(meta);
                }
            })
            .on_after_task_poll(move |meta| {
                if let Some(f) = &after_poll {
                    f(meta);
                }
                Hooks::after_task_poll(meta);
            })
            .on_task_terminate(move |meta| {
                if let Some(f) = &terminate {
                    f(meta);
                }
                Hooks::task_terminate(meta);
            });
    }
}
