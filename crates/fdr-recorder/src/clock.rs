//! The event clock: the CPU's time-stamp counter, calibrated against the monotonic clock,
//! with the monotonic clock as the fallback where the counter is not invariant.
//!
//! One tick is the counter divided by `2^TSC_SHIFT` (x86_64: 32 counter cycles, about
//! 12 ns at 2.6 GHz), which keeps a 1 µs gap between events in a one-byte delta while
//! resolving a region's duration to about one event's cost. The fallback's tick is 16 ns.
//! Every trace declares the tick in its clock-sync records (`ticks_per_sec`).
#![allow(
    unsafe_code,
    reason = "reading the CPU counter needs an intrinsic or inline asm, the process's CPU clock a libc call"
)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fdr_format::ClockSync;

/// Counter cycles per tick, as a shift (x86_64).
#[cfg(target_arch = "x86_64")]
pub(crate) const TSC_SHIFT: u32 = 5;
/// Counter cycles per tick, as a shift (aarch64's generic timer already runs at tens of MHz).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const TSC_SHIFT: u32 = 0;
/// Nanoseconds per fallback tick, as a shift.
pub(crate) const MONO_SHIFT: u32 = 4;

static USE_TSC: AtomicBool = AtomicBool::new(false);
static CALIBRATION: OnceLock<Calibration> = OnceLock::new();
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// What calibration found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Whether the time-stamp counter is the event clock.
    pub tsc: bool,
    /// Counter cycles per second (0 when the counter is not used).
    pub counter_hz: f64,
    /// Event-clock ticks per second.
    pub ticks_per_sec: f64,
}

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds on the monotonic clock since an arbitrary origin fixed in this process.
pub(crate) fn mono_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn counter() -> u64 {
    // SAFETY: `rdtsc` exists on every x86_64 CPU and has no memory effects.
    #[allow(unused_unsafe, reason = "the intrinsic is safe in newer toolchains")]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter is allowed at EL0 on every aarch64 OS fdr targets
    // and has no memory effects.
    unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
fn counter() -> u64 {
    mono_ns()
}

/// Whether the CPU says its counter runs at a constant rate through power states.
#[cfg(target_arch = "x86_64")]
fn counter_invariant() -> bool {
    use core::arch::x86_64::__cpuid;
    // SAFETY: `cpuid` exists on every x86_64 CPU.
    #[allow(unused_unsafe, reason = "the intrinsic is safe in newer toolchains")]
    let max_ext = unsafe { __cpuid(0x8000_0000) }.eax;
    if max_ext < 0x8000_0007 {
        return false;
    }
    // SAFETY: as above; leaf 0x8000_0007 exists (checked).
    #[allow(unused_unsafe, reason = "the intrinsic is safe in newer toolchains")]
    let edx = unsafe { __cpuid(0x8000_0007) }.edx;
    edx & (1 << 8) != 0
}

#[cfg(target_arch = "aarch64")]
fn counter_invariant() -> bool {
    true
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn counter_invariant() -> bool {
    false
}

/// The current time in event-clock ticks. Never fails; monotonic per thread on an
/// invariant counter (the recorder also saturates any backward step to a zero delta).
#[inline(always)]
pub fn now_ticks() -> u64 {
    if USE_TSC.load(Ordering::Relaxed) {
        counter() >> TSC_SHIFT
    } else {
        now_mono_ticks()
    }
}

/// Whether the counter is the event clock (decided by [`calibrate`], before anything is
/// recorded, and never changed).
pub(crate) fn counter_is_clock() -> bool {
    USE_TSC.load(Ordering::Relaxed)
}

/// The counter in ticks, without checking that it is the event clock: for the recorder's
/// leaf hot path, which runs only when [`counter_is_clock`] said so.
#[inline(always)]
pub(crate) fn counter_ticks() -> u64 {
    counter() >> TSC_SHIFT
}

#[cold]
#[inline(never)]
fn now_mono_ticks() -> u64 {
    mono_ns() >> MONO_SHIFT
}

/// Calibrates once (about 20 ms, the first time) and selects the event clock.
/// `FDR_CLOCK=monotonic` in the environment forces the fallback.
pub fn calibrate() -> Calibration {
    *CALIBRATION.get_or_init(|| {
        epoch();
        let forced_mono = std::env::var("FDR_CLOCK").is_ok_and(|v| v == "monotonic");
        let cal = if !forced_mono && counter_invariant() {
            measure()
        } else {
            None
        };
        match cal {
            Some(hz) => {
                USE_TSC.store(true, Ordering::Relaxed);
                Calibration {
                    tsc: true,
                    counter_hz: hz,
                    ticks_per_sec: hz / (1u64 << TSC_SHIFT) as f64,
                }
            }
            None => Calibration {
                tsc: false,
                counter_hz: 0.0,
                ticks_per_sec: 1e9 / (1u64 << MONO_SHIFT) as f64,
            },
        }
    })
}

/// Counter cycles per second against the monotonic clock; `None` if implausible.
fn measure() -> Option<f64> {
    let mut best: Option<f64> = None;
    // Two short rounds; keep the second (caches and frequency settled), check they agree.
    for _ in 0..2 {
        let (t0, c0) = (Instant::now(), counter());
        let until = t0 + Duration::from_millis(10);
        let mut t1 = Instant::now();
        while t1 < until {
            std::hint::spin_loop();
            t1 = Instant::now();
        }
        let c1 = counter();
        let secs = (t1 - t0).as_secs_f64();
        let hz = c1.wrapping_sub(c0) as f64 / secs;
        if let Some(prev) = best
            && ((hz - prev) / prev).abs() > 0.05
        {
            return None;
        }
        best = Some(hz);
    }
    best.filter(|hz| (1e6..2e10).contains(hz))
}

/// One instant read on every clock, for the trace's clock-sync records.
pub(crate) fn clock_sync() -> ClockSync {
    let cal = calibrate();
    let wall_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mono = mono_ns();
    let ticks = now_ticks();
    ClockSync {
        ticks,
        mono_ns: mono,
        wall_unix_ns,
        ticks_per_sec: cal.ticks_per_sec,
    }
}

/// The process's CPU time, every thread, in ns (0 where it is not available).
#[cfg(target_os = "linux")]
pub(crate) fn process_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable `timespec` that lives across the call, and
    // `CLOCK_PROCESS_CPUTIME_ID` is a clock every Linux has; the call writes only `t`.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    if r != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn process_cpu_ns() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_advance_at_the_declared_rate() {
        let cal = calibrate();
        let (m0, t0) = (mono_ns(), now_ticks());
        std::thread::sleep(Duration::from_millis(30));
        let (m1, t1) = (mono_ns(), now_ticks());
        let secs = (m1 - m0) as f64 / 1e9;
        let rate = (t1 - t0) as f64 / secs;
        let err = (rate - cal.ticks_per_sec).abs() / cal.ticks_per_sec;
        assert!(
            err < 0.05,
            "tick rate {rate} vs declared {}",
            cal.ticks_per_sec
        );
    }
}
