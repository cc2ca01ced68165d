//! Stack captures: a capture area per captured thread, the signal, waiting for the copy,
//! unwinding it; CPU-time timers for profiling. One [`Capturer`] per process, behind a lock
//! the sampler takes for each capture (and [`crate::os::stack_of`] for its own).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::signal::{self, Area, CpuTimer, DONE, MAX_AREAS, OUTCOME_COPIED, OUTCOME_SP_OUTSIDE};
use super::unwind::Unwinder;
use super::{OsConfig, OsError, Stack};
use crate::sync::lock;

/// How long a capture waits for the thread's handler before giving up: a thread in a
/// system call is interrupted at once; one that blocks the signal, or is exiting, never
/// answers.
const CAPTURE_TIMEOUT: Duration = Duration::from_millis(5);
/// Waits by yielding the CPU this many times before sleeping between looks.
const SPINS: u32 = 64;

/// Why a capture produced no stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The signal could not be sent (the thread exited) or reached another thread.
    Signal,
    /// No answer within [`CAPTURE_TIMEOUT`].
    Timeout,
    /// Interrupted outside its stack: registers only.
    OutsideStack,
    /// No free capture area, or unknown stack bounds.
    NoArea,
    /// Unwinding found no frame.
    Unwind,
    /// Stacks are unavailable (the signal's handler is not fdr's).
    Unavailable,
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::Signal => "the thread could not be signalled (it exited)",
            Failure::Timeout => {
                "the thread did not answer in time (exiting, or blocking the signal)"
            }
            Failure::OutsideStack => "the thread was running on another stack",
            Failure::NoArea => "no capture area is free, or the thread's stack is unknown",
            Failure::Unwind => "no frame could be unwound",
            Failure::Unavailable => "the capture signal's handler is not fdr's",
        }
    }
}

/// The process's capture machinery.
#[derive(Debug)]
pub(crate) struct Capturer {
    signo: i32,
    copy_bytes: usize,
    unwinder: Unwinder,
    /// Area index per thread (OS id).
    areas: HashMap<u64, usize>,
    /// Areas of threads that are gone, free to reuse.
    free: Vec<usize>,
    /// Areas allocated so far.
    allocated: usize,
    timers: HashMap<u64, CpuTimer>,
    timer_hz: u32,
    frames: Vec<u64>,
}

/// The capturer, once stacks were set up; the reason they are unavailable otherwise.
pub(crate) static CAPTURER: Mutex<Result<Capturer, String>> = Mutex::new(Err(String::new()));

/// Sets up captures for `cfg` (installs the signal handler once, reads the modules); an
/// error says why stacks are unavailable.
pub(crate) fn setup(cfg: &OsConfig) -> Result<(), String> {
    let mut c = lock(&CAPTURER);
    let signo = cfg.signal.unwrap_or_else(signal::default_signal);
    if let Ok(cap) = &mut *c {
        if cap.signo == signo {
            cap.copy_bytes = cfg.stack_copy_bytes;
            return Ok(());
        }
        // A new signal: timers of the old one go; areas stay (they know no signal).
        cap.timers.clear();
        cap.timer_hz = 0;
    }
    match signal::install(signo) {
        Ok(()) => {
            let (areas, free, allocated) = match std::mem::replace(&mut *c, Err(String::new())) {
                Ok(old) => (old.areas, old.free, old.allocated),
                Err(_) => (HashMap::new(), Vec::new(), 0),
            };
            *c = Ok(Capturer {
                signo,
                copy_bytes: cfg.stack_copy_bytes,
                unwinder: Unwinder::new(),
                areas,
                free,
                allocated,
                timers: HashMap::new(),
                timer_hz: 0,
                frames: Vec::with_capacity(fdr_format::wire::MAX_STACK_FRAMES),
            });
            Ok(())
        }
        Err(e) => {
            let msg = e.to_string();
            *c = Err(msg.clone());
            Err(msg)
        }
    }
}

/// A stack the capturer produced: frames in its buffer.
pub(crate) struct Captured<'a> {
    pub(crate) frames: &'a [u64],
    pub(crate) truncated: bool,
}

impl Capturer {
    /// The area of thread `tid` (stack `bounds`), assigning one if it has none.
    fn area_for(&mut self, tid: u64, bounds: Option<(u64, u64)>) -> Option<(usize, &'static Area)> {
        if let Some(&i) = self.areas.get(&tid) {
            return Some((i, signal::area(i, self.copy_bytes)?));
        }
        let (lo, hi) = bounds?;
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.allocated < MAX_AREAS => {
                self.allocated += 1;
                self.allocated - 1
            }
            None => return None,
        };
        let area = signal::area(index, self.copy_bytes)?;
        // Anything its previous thread left in it is of a thread that is gone.
        area.cancel();
        area.take(|_| ());
        if !area.assign(tid, lo, hi) {
            // Still busy from its previous thread (a copy it never took): try later.
            self.free.push(index);
            return None;
        }
        self.areas.insert(tid, index);
        Some((index, area))
    }

    /// Captures thread `tid`'s stack now. CPU-timer copies found waiting in its area are
    /// handed to `cpu_sample` first.
    pub(crate) fn capture(
        &mut self,
        tid: u64,
        bounds: Option<(u64, u64)>,
        cpu_sample: &mut dyn FnMut(u64, Captured<'_>),
    ) -> Result<Captured<'_>, Failure> {
        if !signal::is_installed(self.signo) {
            return Err(Failure::Unavailable);
        }
        let (index, area) = self.area_for(tid, bounds).ok_or(Failure::NoArea)?;
        if area.request().is_err() {
            // A CPU-timer copy waits (take it), or a handler is writing one (let it finish).
            self.wait_done(area, Instant::now() + CAPTURE_TIMEOUT);
            self.take_cpu_sample(tid, area, cpu_sample);
            area.request().map_err(|_| Failure::Timeout)?;
        }
        if signal::request_signal(self.signo, tid, index).is_err() {
            if !area.cancel() {
                // A CPU timer served the request meanwhile: use its copy.
                self.wait_done(area, Instant::now() + CAPTURE_TIMEOUT);
            } else {
                return Err(Failure::Signal);
            }
        }
        if !self.wait_done(area, Instant::now() + CAPTURE_TIMEOUT) {
            if area.cancel() {
                return Err(Failure::Timeout);
            }
            // A handler claimed it just now: its copy is a copy away.
            if !self.wait_done(area, Instant::now() + CAPTURE_TIMEOUT) {
                return Err(Failure::Timeout);
            }
        }
        let (unwinder, frames) = (&mut self.unwinder, &mut self.frames);
        let r = area
            .take(|c| match c.outcome {
                OUTCOME_COPIED => Ok(unwinder.unwind(c.regs, c.stack, frames).truncated),
                OUTCOME_SP_OUTSIDE => Err(Failure::OutsideStack),
                _ => Err(Failure::Signal),
            })
            .unwrap_or(Err(Failure::Timeout))?;
        if self.frames.is_empty() {
            return Err(Failure::Unwind);
        }
        Ok(Captured {
            frames: &self.frames,
            truncated: r,
        })
    }

    /// Waits (yielding, then sleeping briefly) until `area` holds a copy or `deadline`
    /// passes; whether it holds one.
    fn wait_done(&self, area: &Area, deadline: Instant) -> bool {
        let mut spins = 0;
        loop {
            if area.state() == DONE {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if spins < SPINS {
                spins += 1;
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Hands a CPU-timer copy waiting in `area` to `f`, unwound.
    fn take_cpu_sample(&mut self, tid: u64, area: &Area, f: &mut dyn FnMut(u64, Captured<'_>)) {
        let (unwinder, frames) = (&mut self.unwinder, &mut self.frames);
        // A copy that answers a request nobody waits for any more (it timed out) is dropped.
        let truncated = area.take(|c| {
            (c.outcome == OUTCOME_COPIED && !c.requested)
                .then(|| unwinder.unwind(c.regs, c.stack, frames).truncated)
        });
        if let Some(Some(truncated)) = truncated
            && !self.frames.is_empty()
        {
            f(
                tid,
                Captured {
                    frames: &self.frames,
                    truncated,
                },
            );
        }
    }

    /// Hands every waiting CPU-timer copy to `f`, unwound.
    pub(crate) fn drain_cpu_samples(&mut self, f: &mut dyn FnMut(u64, Captured<'_>)) {
        let areas: Vec<(u64, usize)> = self.areas.iter().map(|(&t, &i)| (t, i)).collect();
        for (tid, i) in areas {
            if let Some(area) = signal::area(i, self.copy_bytes)
                && area.state() == DONE
            {
                self.take_cpu_sample(tid, area, f);
            }
        }
    }

    /// Keeps a CPU-time timer at `hz` on each of `threads` (OS id, stack bounds), none if
    /// `hz` is 0; returns how many threads could not get one.
    pub(crate) fn set_profiling(&mut self, hz: u32, threads: &[(u64, Option<(u64, u64)>)]) -> u64 {
        if hz != self.timer_hz {
            self.timers.clear();
            self.timer_hz = hz;
        }
        if hz == 0 {
            return 0;
        }
        let mut failed = 0;
        for &(tid, bounds) in threads {
            if self.timers.contains_key(&tid) {
                continue;
            }
            let Some((index, _)) = self.area_for(tid, bounds) else {
                failed += 1;
                continue;
            };
            match CpuTimer::start(self.signo, tid, index, hz) {
                Ok(t) => {
                    self.timers.insert(tid, t);
                }
                Err(_) => failed += 1,
            }
        }
        failed
    }

    /// Thread `tid` is gone: its timer is deleted and its area freed for another thread.
    pub(crate) fn release(&mut self, tid: u64) {
        self.timers.remove(&tid);
        if let Some(i) = self.areas.remove(&tid) {
            if let Some(area) = signal::area(i, self.copy_bytes) {
                // Whatever it holds is of a thread that is gone.
                area.cancel();
                area.take(|_| ());
            }
            self.free.push(i);
        }
    }
}

/// [`crate::os::stack_of`].
pub(crate) fn stack_of(tid: u64) -> Result<Stack, OsError> {
    let bounds = super::sampler::bounds_of(tid).ok_or(OsError::UnknownThread(tid))?;
    let mut c = lock(&CAPTURER);
    let cap = match &mut *c {
        Ok(cap) => cap,
        Err(e) if e.is_empty() => return Err(OsError::NotConfigured),
        Err(e) => return Err(OsError::Unavailable(e.clone())),
    };
    let mut ignore = |_, _: Captured<'_>| {};
    match cap.capture(tid, bounds, &mut ignore) {
        Ok(s) => Ok(Stack {
            frames: s.frames.to_vec(),
            truncated: s.truncated,
        }),
        Err(f) => Err(OsError::Capture {
            tid,
            reason: f.reason(),
        }),
    }
}
