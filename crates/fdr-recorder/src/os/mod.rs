//! The OS view (Linux): where a recorded thread's time went, and its stack when a scope runs
//! long.
//!
//! A sampler thread (`fdr-sampler`, started by [`crate::start`] when [`crate::Config::os`] is
//! set; never on the hot path) watches the recorded threads and records, on its own
//! thread, events that name the thread they describe:
//!
//! - [`EventKind::OsSample`](fdr_format::EventKind::OsSample): the thread's cumulative on-CPU
//!   time, run-queue wait and timeslices (`/proc/self/task/TID/schedstat`, kept open and read
//!   with `pread`) and, for long scopes, its scheduler state (`/proc/self/task/TID/stat`).
//!   Every thread gets one every [`OsConfig::periodic_interval`] (cause `Periodic`); a
//!   thread that stays inside a poll, user task, region or block past
//!   [`OsConfig::long_scope_threshold`] gets one when the sampler sees it (`LongScope`) and
//!   one when that scope has ended (`ScopeEnd`). A tokio worker records its own each time
//!   it parks and unparks (`Park`, `Unpark`; see `wake`): the kernel's wait for a CPU after
//!   each wake.
//! - [`EventKind::Stack`](fdr_format::EventKind::Stack): the thread's user stack, raw
//!   addresses, captured without stopping other threads: once when a long scope is seen,
//!   then every [`OsConfig::stack_every`] while it stays long, within
//!   [`OsConfig::stacks_per_scope`] and [`OsConfig::stacks_per_sec`] (cause `LongScope`);
//!   with CPU profiling on ([`OsConfig::cpu_profile_hz`], [`cpu_profile`]), at that rate of
//!   each thread's CPU time (cause `CpuTimer`). The trace's tables carry the modules'
//!   mappings and build ids, so a dump symbolizes elsewhere with the same binaries
//!   (`fdr-symbolize`).
//!
//! # What the hot path publishes
//!
//! Nothing new per event. Each thread already publishes its chunk's committed word with one
//! `Release` store per event; its top 15 bits carry the thread's scope depth after that
//! event (`chunk::COMMITTED_DEPTH`): a scope's begin and end change the constant the store's
//! add uses, no instruction more. At each look the sampler reads each thread's current
//! chunk and that word (chunks are never freed, so a stale one is still memory): a word that
//! has not changed since an earlier look, at a depth above zero, is a thread that has been
//! inside one scope, recording nothing, at least since that look. That is what a scope
//! blocked in the kernel or spinning on the CPU looks like; a long scope that keeps recording
//! events inside it is not seen as long (its own events tell its story, and CPU profiling
//! samples it).
//!
//! Detection is sampled, and its cost is the sampler's wake-ups (a look at a thread reads two
//! words; waking a thread to look costs tens of microseconds of CPU on a busy VM). Every
//! [`OsConfig::scan_interval`] a scan looks at every thread; for each thread it finds inside a
//! scope whose word is not yet [`OsConfig::long_scope_threshold`] old, it looks again once that
//! threshold has passed, and a word unchanged by then is a long scope. So a scope silent for `d`
//! is caught with probability `min(1, (d - threshold) / scan_interval)`: with the defaults
//! (1 ms, 20 ms) a fifth of 5 ms scopes, half of 11 ms ones, all from 21 ms. For ten seconds
//! after a long scope, scans come four times as often (every 5 ms by default: all from 6 ms),
//! since long scopes of a fault recur; a healthy service pays only for the slower scan. While
//! a long scope lasts, the sampler looks for its end every eighth of its age (at least 1 ms
//! apart, at most a scan interval), so its scope-end sample comes soon after it.
//!
//! # Stacks
//!
//! A thread blocked in the kernel (the usual long scope: a sleep, a lock, synchronous I/O)
//! is read without a signal on x86_64: its saved stack pointer and instruction from
//! `/proc/self/task/TID/syscall`, its stack with `process_vm_readv`, kept only if its
//! scheduler counters show it did not run meanwhile (see `capture.rs`); it is not woken, and
//! its system call is not interrupted. Other threads (running, or not readable that way)
//! get the capture signal (`rt_tgsigqueueinfo`, a realtime signal, [`OsConfig::signal`])
//! whose handler copies the interrupted registers and the raw stack bytes into the thread's
//! capture area; the sampler then unwinds the copy off-signal with the modules' DWARF CFI
//! (`.eh_frame`, through `.eh_frame_hdr`), using `framehop`. Rust release builds omit frame
//! pointers, so a frame-pointer walk would stop after a frame or two; DWARF CFI is what every
//! Rust binary and system library carries for unwinding panics. `framehop` is the unwinder
//! samply (the Firefox profiler's) uses: it recovers only what return addresses need, caches
//! rules per address, handles prologues and epilogues, and never stops another thread. All
//! `unsafe` code of the OS view is in `signal.rs`.

use std::time::Duration;

use crate::error::OsConfigError;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod capture;
#[cfg(target_os = "linux")]
mod modules;
#[cfg(target_os = "linux")]
mod procfs;
#[cfg(target_os = "linux")]
mod sampler;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub(crate) mod signal;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod unwind;
#[cfg(all(target_os = "linux", feature = "tokio"))]
mod wake;

#[cfg(target_os = "linux")]
pub(crate) use modules::encode_modules;
#[cfg(target_os = "linux")]
pub(crate) use sampler::{configure, on_thread_exit, on_thread_start};
#[cfg(all(target_os = "linux", feature = "tokio"))]
pub(crate) use wake::park_sample;

/// Off Linux there are no scheduler counters to read at a park.
#[cfg(all(not(target_os = "linux"), feature = "tokio"))]
pub(crate) fn park_sample(_cause: fdr_format::SampleCause) {}

/// No module records off Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn encode_modules(_t: &mut fdr_format::TableEncoder, since: Option<u64>) -> u64 {
    since.unwrap_or(0)
}

/// Off Linux the OS view records nothing: the configuration is checked and kept aside.
#[cfg(not(target_os = "linux"))]
pub(crate) fn configure(cfg: Option<OsConfig>) -> Result<(), crate::Error> {
    match cfg {
        Some(c) => c
            .validate()
            .map_err(|why| crate::Error::Config(crate::ConfigError::Os(why))),
        None => Ok(()),
    }
}

/// Off Linux there is no sampler to tell.
#[cfg(not(target_os = "linux"))]
pub(crate) fn on_thread_start(_shared: &std::sync::Arc<crate::state::ThreadShared>, _tid: u64) {}

/// Off Linux there is no sampler to tell.
#[cfg(not(target_os = "linux"))]
pub(crate) fn on_thread_exit(_id: u32) {}

/// The OS view's configuration ([`crate::Config::os`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsConfig {
    /// A thread inside one poll, user task, region or block (recording nothing) for this
    /// long gets OS samples and stacks; zero turns long-scope detection off. Default 1 ms.
    pub long_scope_threshold: Duration,
    /// How often the sampler scans every recorded thread (each look reads two words per
    /// thread; most of a scan's cost is the sampler's wake-up). A scope silent for `d` is
    /// caught with probability `min(1, (d - threshold) / scan_interval)`; for ten seconds
    /// after a long scope, scans come four times as often. Shorter catches more and costs
    /// more. Default 20 ms.
    pub scan_interval: Duration,
    /// How often every recorded thread gets a periodic CPU sample; zero turns them off.
    /// Default 100 ms.
    pub periodic_interval: Duration,
    /// Capture stacks of long scopes. Default on.
    pub stacks: bool,
    /// Most stacks of one long scope. Default 4.
    pub stacks_per_scope: u32,
    /// While a scope stays long, capture its stack again this often. Default 10 ms.
    pub stack_every: Duration,
    /// Most stacks per second, process-wide (long scopes and CPU samples together).
    /// Default 200.
    pub stacks_per_sec: u32,
    /// Bytes of a thread's stack copied per capture (from the stack pointer up); a deeper
    /// stack is cut there and marked truncated. Default 32 KiB.
    pub stack_copy_bytes: usize,
    /// CPU profiling: a stack per `1 / hz` of each recorded thread's CPU time; 0 (the
    /// default) is off. See also [`cpu_profile`].
    pub cpu_profile_hz: u32,
    /// The signal stacks are captured with; `None` (the default) is `SIGRTMIN + 4`. fdr
    /// refuses a signal the application already handles (no stacks then; see
    /// [`OsStats::stacks_unavailable`]).
    pub signal: Option<i32>,
}

impl Default for OsConfig {
    fn default() -> Self {
        OsConfig {
            long_scope_threshold: Duration::from_millis(1),
            scan_interval: Duration::from_millis(20),
            periodic_interval: Duration::from_millis(100),
            stacks: true,
            stacks_per_scope: 4,
            stack_every: Duration::from_millis(10),
            stacks_per_sec: 200,
            stack_copy_bytes: 32 << 10,
            cpu_profile_hz: 0,
            signal: None,
        }
    }
}

impl OsConfig {
    /// The OS view this platform supports by default: on on Linux, off elsewhere.
    pub fn platform_default() -> Option<OsConfig> {
        cfg!(target_os = "linux").then(OsConfig::default)
    }

    pub(crate) fn validate(&self) -> Result<(), OsConfigError> {
        let min = Duration::from_micros(100);
        if self.scan_interval < min {
            return Err(OsConfigError::ScanInterval {
                scan_interval: self.scan_interval,
                min,
            });
        }
        let (min, max) = (if self.stacks { 1 << 10 } else { 0 }, 1 << 20);
        if !(min..=max).contains(&self.stack_copy_bytes) {
            return Err(OsConfigError::StackCopyBytes {
                stack_copy_bytes: self.stack_copy_bytes,
                min,
                max,
            });
        }
        if self.cpu_profile_hz > MAX_CPU_PROFILE_HZ {
            return Err(OsConfigError::CpuProfileHz {
                cpu_profile_hz: self.cpu_profile_hz,
                max: MAX_CPU_PROFILE_HZ,
            });
        }
        Ok(())
    }
}

/// Highest CPU profiling rate accepted.
pub const MAX_CPU_PROFILE_HZ: u32 = 1000;

/// The OS view's counters ([`stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsStats {
    /// The sampler is running (Linux, configured, recording on).
    pub running: bool,
    /// Scans of the recorded threads.
    pub scans: u64,
    /// OS samples recorded.
    pub os_samples: u64,
    /// Long scopes seen.
    pub long_scopes: u64,
    /// Stacks recorded for long scopes.
    pub stacks: u64,
    /// Of those, stacks read while the thread was blocked in the kernel, with no signal
    /// (x86_64; see [`Stack::interrupted`]).
    pub stacks_read_blocked: u64,
    /// Stacks recorded from CPU timers.
    pub cpu_samples: u64,
    /// Captures that produced no stack, by reason: the thread could not be signalled
    /// (it had exited), did not answer in time (it exited, or blocks the signal), was on
    /// another stack, or had no capture area (too many threads captured).
    pub stack_failures: StackFailures,
    /// Stacks skipped by the per-scope or per-second limit.
    pub stacks_limited: u64,
    /// CPU-timer signals that found the thread's area still holding an earlier sample.
    pub cpu_samples_dropped: u64,
    /// Signals with fdr's number that were not fdr's (ignored).
    pub stray_signals: u64,
    /// Reads of `/proc` that failed (the thread had exited, or `/proc` is not mounted).
    pub proc_failures: u64,
    /// Why stacks are not captured, if they are configured but cannot be (the signal is
    /// the application's, or was taken over after fdr installed it).
    pub stacks_unavailable: Option<String>,
}

/// Captures that produced no stack, by reason ([`OsStats::stack_failures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackFailures {
    /// The signal could not be sent (the thread had exited).
    pub signal: u64,
    /// The thread did not answer in time (exiting, or blocking the signal).
    pub timeout: u64,
    /// The thread was interrupted on another stack (an alternate signal stack): registers
    /// only, not unwound.
    pub outside_stack: u64,
    /// No capture area was free, or the thread's stack bounds are unknown.
    pub no_area: u64,
    /// Unwinding found no frame.
    pub unwind: u64,
}

impl StackFailures {
    /// All failures.
    pub fn total(&self) -> u64 {
        self.signal + self.timeout + self.outside_stack + self.no_area + self.unwind
    }
}

/// The OS view's counters.
pub fn stats() -> OsStats {
    #[cfg(target_os = "linux")]
    {
        sampler::stats()
    }
    #[cfg(not(target_os = "linux"))]
    {
        OsStats::default()
    }
}

/// Why a stack could not be captured or CPU profiling started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OsError {
    /// This platform has no OS view (Linux on x86_64 or aarch64 only).
    #[error("the OS view is not available on this platform")]
    Unsupported,
    /// The OS view is not configured (`Config::os` is `None`) or stacks are off.
    #[error("the OS view's stacks are not configured (Config::os, OsConfig::stacks)")]
    NotConfigured,
    /// Stacks cannot be captured (the signal is the application's, for one).
    #[error("stacks are unavailable: {0}")]
    Unavailable(String),
    /// The thread is not a recorded thread of this process.
    #[error("thread {0} is not a recorded thread")]
    UnknownThread(u64),
    /// The capture failed.
    #[error("the capture of thread {tid} failed: {reason}")]
    Capture {
        /// The thread.
        tid: u64,
        /// What happened.
        reason: &'static str,
    },
    /// An argument is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// A stack captured on demand ([`stack_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// Addresses, innermost first: the interrupted instruction, then return addresses.
    pub frames: Vec<u64>,
    /// Unwinding stopped before the stack's root (the copy ended, or a frame had no
    /// unwind information).
    pub truncated: bool,
    /// The thread was interrupted by the capture signal (it was running, or could not be
    /// read while blocked); `false`: it was blocked in the kernel and read without being
    /// disturbed (x86_64).
    pub interrupted: bool,
}

/// Captures the current stack of recorded thread `os_tid` now (what the sampler does for a
/// long scope), without stopping other threads. Records nothing. Linux (x86_64, aarch64),
/// with the OS view and its stacks configured.
pub fn stack_of(os_tid: u64) -> Result<Stack, OsError> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        capture::stack_of(os_tid)
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = os_tid;
        Err(OsError::Unsupported)
    }
}

/// How [`timed_capture`] reads a thread blocked in the kernel (x86_64; a running thread is
/// signalled whatever the method). For benches that compare them in one run.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureMethod {
    /// As [`stack_of`]: the thread's counters read before its registers, the stack copied
    /// up to where the last unwind of this thread read.
    OnDemand,
    /// As [`CaptureMethod::OnDemand`], the stack copied up to its top whatever the last
    /// unwind read (captures before copies were cut).
    WholeStack,
    /// As the sampler's first stack of a long scope: the counters come from the sample it
    /// recorded just before (read before the timed part, as the sample's cost).
    LongScope,
}

/// One capture and what it cost ([`timed_capture`]).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureTiming {
    /// The stack.
    pub stack: Stack,
    /// Wall time of the capture, ns.
    pub wall_ns: u64,
    /// CPU time of the capturing thread during it (`CLOCK_THREAD_CPUTIME_ID`: user and
    /// kernel time, not time spent waiting for a CPU), ns.
    pub cpu_ns: u64,
}

/// [`stack_of`] the way `method` says, timed: wall and CPU time of the capture alone.
#[doc(hidden)]
pub fn timed_capture(os_tid: u64, method: CaptureMethod) -> Result<CaptureTiming, OsError> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        capture::timed_capture(os_tid, method)
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = (os_tid, method);
        Err(OsError::Unsupported)
    }
}

/// CPU profiling for as long as the guard lives: every recorded thread gets a stack event
/// (cause `CpuTimer`) per `1 / hz` of its CPU time, into the flight recorder and any
/// capture. Dropping the guard goes back to [`OsConfig::cpu_profile_hz`]. One at a time.
pub fn cpu_profile(hz: u32) -> Result<CpuProfile, OsError> {
    if hz == 0 || hz > MAX_CPU_PROFILE_HZ {
        return Err(OsError::Invalid(format!(
            "CPU profiling rate {hz} Hz is outside 1..={MAX_CPU_PROFILE_HZ}"
        )));
    }
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        sampler::profile_override(hz)?;
        Ok(CpuProfile { _private: () })
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        Err(OsError::Unsupported)
    }
}

/// CPU profiling in progress ([`cpu_profile`]); stops when dropped.
#[derive(Debug)]
#[must_use = "CPU profiling stops when the guard drops"]
pub struct CpuProfile {
    _private: (),
}

impl Drop for CpuProfile {
    fn drop(&mut self) {
        #[cfg(all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64")
        ))]
        sampler::profile_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_outside_its_bounds_is_named_with_its_value_and_bound() {
        let ok = OsConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            (
                OsConfig {
                    scan_interval: Duration::from_micros(99),
                    ..ok
                },
                OsConfigError::ScanInterval {
                    scan_interval: Duration::from_micros(99),
                    min: Duration::from_micros(100),
                },
            ),
            (
                OsConfig {
                    stack_copy_bytes: 1023,
                    ..ok
                },
                OsConfigError::StackCopyBytes {
                    stack_copy_bytes: 1023,
                    min: 1024,
                    max: 1 << 20,
                },
            ),
            (
                OsConfig {
                    stacks: false,
                    stack_copy_bytes: (1 << 20) + 1,
                    ..ok
                },
                OsConfigError::StackCopyBytes {
                    stack_copy_bytes: (1 << 20) + 1,
                    min: 0,
                    max: 1 << 20,
                },
            ),
            (
                OsConfig {
                    cpu_profile_hz: MAX_CPU_PROFILE_HZ + 1,
                    ..ok
                },
                OsConfigError::CpuProfileHz {
                    cpu_profile_hz: MAX_CPU_PROFILE_HZ + 1,
                    max: MAX_CPU_PROFILE_HZ,
                },
            ),
        ];
        for (config, want) in cases {
            assert_eq!(config.validate(), Err(want));
        }
        // Stacks off, a small copy size is not used, so not refused.
        let small = OsConfig {
            stacks: false,
            stack_copy_bytes: 0,
            ..ok
        };
        assert_eq!(small.validate(), Ok(()));
        let refused = OsConfig {
            stack_copy_bytes: 1023,
            ..ok
        };
        assert_eq!(
            refused.validate().unwrap_err().to_string(),
            "os stack_copy_bytes 1023 is outside 1024..=1048576"
        );
    }
}
