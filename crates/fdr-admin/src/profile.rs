//! `GET /debug/pprof/profile?seconds=N` (feature `pprof`): a CPU profile of the recorded
//! threads in pprof's format (`profile.proto`, gzipped: `go tool pprof`, speedscope,
//! Pyroscope read it), from fdr's own CPU samples. There is one profiler in the process:
//! the recorder's OS view.
//!
//! A profile is a capture: it takes the endpoint's capture slot (one capture or profile at
//! a time, then the cooldown), turns the OS view's CPU profiling on for `N` seconds
//! (`fdr_recorder::os::cpu_profile`, at [`PROFILE_HZ`]), reads the capture of those
//! seconds as it comes (`fdr_pprof::read_trace`: the tables, and the sampler thread's
//! batches; nothing is kept but the distinct stacks and their counts), then symbolizes the
//! stacks in the process through the trace's module records and answers with the profile.
//! A client that leaves ends the profile at once.

use std::io::{self, Read};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use hyper::StatusCode;
use tokio::sync::mpsc;

use crate::capture::{self, Slot};
use crate::stream::Refusal;

/// A profile's length when the request does not say (Go's default).
pub(crate) const DEFAULT_PROFILE_SECONDS: u32 = 30;
/// The longest profile a request may ask for.
pub(crate) const MAX_PROFILE_SECONDS: u32 = 60;
/// Samples per second of each thread's CPU time: Go's rate, off by one so it does not beat
/// with work that runs every 10 ms.
pub(crate) const PROFILE_HZ: u32 = 99;

/// The capture's units (file header, batches, end marker) as a byte stream, read on a
/// blocking thread.
struct Units {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for Units {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.current.has_remaining() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.remaining());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

/// Takes a CPU profile of `seconds` and encodes it; `slot` is the endpoint's capture slot,
/// already taken. The capture (and the profiling) stop early when this future is dropped
/// (the client left).
pub(crate) async fn profile(seconds: u32, slot: Slot) -> Result<Vec<u8>, Refusal> {
    let length = Duration::from_secs(seconds.into());
    let cpu = match fdr_recorder::os::cpu_profile(PROFILE_HZ) {
        Ok(g) => g,
        Err(e) => {
            slot.give_back();
            return Err(cpu_refusal(e));
        }
    };
    let start_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
    // No byte cap: the capture is read as it comes and only its stacks are kept (bounded
    // by fdr-pprof), so a busy service's other events do not cut the profile short.
    let started = capture::start(slot, length, u64::MAX, |_| {})?;
    // Held here: dropped with this future (the client left), it stops the capture.
    let _on_drop = started.on_drop;
    let status = started.status;
    let rx = started.rx;
    let job = tokio::task::spawn_blocking(move || {
        let mut collector = fdr_pprof::Collector::new(fdr_pprof::Options {
            fallback_cpu_hz: Some(PROFILE_HZ),
            ..fdr_pprof::Options::default()
        });
        let read = fdr_pprof::read_trace(
            Units {
                rx,
                current: Bytes::new(),
            },
            &mut collector,
        );
        drop(cpu);
        let (tables, info) = read
            .map_err(|e| Refusal::internal(format!("reading the profile's capture failed: {e}")))?;
        let duration_ns = length.as_nanos().min(i64::MAX as u128) as i64;
        Ok(collector
            .finish(&tables, &info, Some((start_unix_ns, duration_ns)))
            .gzipped)
    });
    let result = job
        .await
        .unwrap_or_else(|_| Err(Refusal::internal("building the CPU profile panicked")))?;
    if let Some(why) = status.failure() {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the profile's capture failed: {why}"),
        ));
    }
    Ok(result)
}

fn cpu_refusal(e: fdr_recorder::os::OsError) -> Refusal {
    use fdr_recorder::os::OsError;
    match e {
        OsError::NotConfigured => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "CPU profiles come from fdr's OS view, which is off: start the recorder with Config { os: Some(OsConfig::platform_default()), .. }",
        ),
        OsError::Unsupported => Refusal::new(
            StatusCode::NOT_IMPLEMENTED,
            "CPU profiles need fdr's OS view: Linux on x86_64 or aarch64",
        ),
        OsError::Unavailable(why) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("CPU profiles are unavailable: {why}"),
        ),
        OsError::Invalid(why) => Refusal::busy(
            5,
            format!("{why} (started outside this endpoint); retry later"),
        ),
        e => Refusal::internal(format!("could not start CPU profiling: {e}")),
    }
}
