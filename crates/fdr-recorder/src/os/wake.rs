//! Per-wake run-queue evidence: a runtime worker reads its own `schedstat` when it parks and
//! again when it unparks (tokio's `on_thread_park` / `on_thread_unpark`, which
//! [`crate::tokio_hooks`] installs), and records each reading as an
//! [`EventKind::OsSample`] of itself with cause [`SampleCause::Park`] or
//! [`SampleCause::Unpark`].
//!
//! The run-queue counters' difference between a park and the next unpark is how long the
//! kernel kept the worker waiting for a CPU after waking it (the worker sleeps in the
//! kernel in between, off any run queue): the delay the host added to every wake the
//! runtime's driver issued in that park cycle. The periodic samples spread a whole
//! interval's wait over everything in it; these bound it to one wake.
//!
//! Cost: one `pread` of a kept-open file per park and per unpark (not per event), only while
//! the OS view is on; a worker whose file cannot be opened or read records nothing more.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;

use fdr_format::{EventKind, SampleCause, ThreadId};

use super::procfs::parse_schedstat;

thread_local! {
    /// This thread's `schedstat`, opened at its first park (`None` inside: it could not be).
    static SCHEDSTAT: RefCell<Option<Option<File>>> = const { RefCell::new(None) };
}

/// Records this thread's scheduler counters as an OS sample of `cause` (a park or an
/// unpark), when the OS view is running and the thread is recorded.
pub(crate) fn park_sample(cause: SampleCause) {
    if !super::sampler::active() {
        return;
    }
    let Some(id) = crate::hot::peek_local(|l| l.thread_id()) else {
        return;
    };
    let stat = SCHEDSTAT.try_with(|cell| {
        let mut cell = cell.try_borrow_mut().ok()?;
        let file = cell
            .get_or_insert_with(|| File::open("/proc/thread-self/schedstat").ok())
            .as_ref()?;
        let mut buf = [0u8; 96];
        let n = file.read_at(&mut buf, 0).ok()?;
        parse_schedstat(&buf[..n])
    });
    let Ok(Some(stat)) = stat else {
        return;
    };
    crate::record(&EventKind::OsSample {
        thread: ThreadId(id),
        cause,
        cpu_ns: Some(stat.cpu_ns),
        runq_ns: Some(stat.runq_ns),
        timeslices: Some(stat.timeslices),
        state: None,
    });
}
