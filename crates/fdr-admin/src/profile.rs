//! `GET /debug/pprof/profile?seconds=N` (feature `pprof`): a CPU profile of the whole
//! process in pprof's protobuf format (`go tool pprof`, `pprof`, speedscope read it), taken
//! by the `pprof` crate: a `SIGPROF` timer samples the running threads' stacks.
//!
//! One profile at a time in the process; a client that leaves ends its profile at once.

use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use pprof::protos::Message;

use crate::stream::Refusal;

/// A profile's length when the request does not say (Go's default).
pub(crate) const DEFAULT_PROFILE_SECONDS: u32 = 30;
/// The longest profile a request may ask for.
pub(crate) const MAX_PROFILE_SECONDS: u32 = 60;
/// Samples per second of CPU time: Go's rate, off by one so it does not beat with work that
/// runs every 10 ms.
const FREQUENCY_HZ: i32 = 99;

/// When the running profile is due to end.
static RUNNING: Mutex<Option<Instant>> = Mutex::new(None);

fn running() -> std::sync::MutexGuard<'static, Option<Instant>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held while a profile runs.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        *running() = None;
    }
}

/// Takes a CPU profile of `seconds` and encodes it. The blocking thread that runs it stops
/// early when this future is dropped (the client left).
pub(crate) async fn profile(seconds: u32) -> Result<Vec<u8>, Refusal> {
    let length = Duration::from_secs(seconds.into());
    let slot = {
        let mut r = running();
        let now = Instant::now();
        if let Some(until) = *r {
            let left = until.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            return Err(Refusal::busy(
                secs,
                format!(
                    "a CPU profile is running (one at a time); retry in {} s",
                    secs.max(1)
                ),
            ));
        }
        *r = Some(now + length);
        Slot
    };
    // Dropped with this future: the blocking thread's wait then ends at once.
    let (cancel, cancelled) = mpsc::channel::<()>();
    let job = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY_HZ)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(|e| match e {
                pprof::Error::Running => {
                    Refusal::busy(5, "a CPU profile started outside this endpoint is running")
                }
                e => Refusal::internal(format!("could not start the CPU profiler: {e}")),
            })?;
        match cancelled.recv_timeout(length) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return Err(Refusal::internal("the client went away")),
        }
        let report = guard
            .report()
            .build()
            .map_err(|e| Refusal::internal(format!("building the CPU profile failed: {e}")))?;
        drop(guard);
        let profile = report
            .pprof()
            .map_err(|e| Refusal::internal(format!("encoding the CPU profile failed: {e}")))?;
        let mut out = Vec::with_capacity(profile.encoded_len());
        profile
            .encode(&mut out)
            .map_err(|e| Refusal::internal(format!("encoding the CPU profile failed: {e}")))?;
        Ok(out)
    });
    let result = job
        .await
        .unwrap_or_else(|_| Err(Refusal::internal("the CPU profiler panicked")));
    drop(cancel);
    result
}
