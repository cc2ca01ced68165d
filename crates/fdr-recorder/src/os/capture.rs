//! Stack captures: a capture area per captured thread, the signal, waiting for the copy,
//! unwinding it; CPU-time timers for profiling. One [`Capturer`] per process, behind a lock
//! the sampler takes for each capture (and [`crate::os::stack_of`] for its own).
//!
//! A thread blocked in the kernel (a system call, a page fault) is captured without a signal
//! on x86_64: the kernel saved its user registers when it entered, and its stack does not
//! change until it returns, so the capturer reads the saved stack pointer and instruction
//! (`/proc/self/task/TID/syscall`), copies its live stack (`[sp, stack top)`, cut at the copy
//! size) with one `process_vm_readv`, unwinds it, and keeps the result only if the thread's
//! scheduler counters (`schedstat`: on-CPU time, run-queue wait, times scheduled in) did not
//! move from before the registers were read to after the copy: a thread that was not
//! scheduled in never returned to user space, so registers and copy are of one moment. No
//! wait for the thread to be scheduled, and the blocked call is not interrupted (no
//! `EINTR`). `syscall` does not show the frame pointer: the first frame whose unwind rule
//! needs it (Rust's standard library is built with frame pointers) has it searched for on
//! the stack, and a stack is kept only if it then unwinds to its root (`unwind.rs`). A
//! thread that is running or runnable, a copy the thread may have changed, or a stack that
//! does not unwind to its root this way goes to the signal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::procfs::SchedStat;
#[cfg(target_arch = "x86_64")]
use super::procfs::{BlockedFiles, LastRead};
use super::signal::{self, Area, CpuTimer, DONE, MAX_AREAS, OUTCOME_COPIED, OUTCOME_SP_OUTSIDE};
#[cfg(target_arch = "x86_64")]
use super::unwind::BlockedUnwind;
use super::unwind::Unwinder;
use super::{OsConfig, OsError, Stack};
use crate::sync::lock;

/// How long a capture waits for the thread's handler before giving up: a thread in a
/// system call is interrupted at once; one that blocks the signal, or is exiting, never
/// answers.
const CAPTURE_TIMEOUT: Duration = Duration::from_millis(5);
/// Reads of blocked threads in a row whose unwinding reached no root (code the unwinder
/// cannot leave without the registers the kernel does not show) after which the capturer
/// stops trying them and signals every thread.
#[cfg(target_arch = "x86_64")]
const BLOCKED_MISSES_MAX: u32 = 16;

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
    /// Blocked threads' files, by OS id.
    #[cfg(target_arch = "x86_64")]
    blocked: HashMap<u64, BlockedFiles>,
    /// The copy of a blocked thread's stack.
    #[cfg(target_arch = "x86_64")]
    copy: Vec<u8>,
    /// Blocked threads are read without a signal (cleared when `process_vm_readv` is
    /// refused, or after [`BLOCKED_MISSES_MAX`] misses in a row).
    #[cfg(target_arch = "x86_64")]
    blocked_ok: bool,
    #[cfg(target_arch = "x86_64")]
    unwind_misses: u32,
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
                #[cfg(target_arch = "x86_64")]
                blocked: HashMap::new(),
                #[cfg(target_arch = "x86_64")]
                copy: Vec::new(),
                #[cfg(target_arch = "x86_64")]
                blocked_ok: true,
                #[cfg(target_arch = "x86_64")]
                unwind_misses: 0,
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
    /// The thread ran the capture signal's handler (else it was read while blocked).
    pub(crate) interrupted: bool,
    /// When the stack was the thread's, in event-clock ticks: when the handler ran, or when
    /// a blocked thread was read.
    pub(crate) at_ticks: u64,
}

/// How a capture reads a thread blocked in the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct How {
    /// The thread's `schedstat`, read just now (the sampler's sample of a long scope reads
    /// it before the capture): the counters the capture starts from, instead of reading
    /// them again. Read before the registers, as the capture's own read would be.
    pub(crate) counters: Option<SchedStat>,
    /// Copy the stack up to its top whatever the last read needed (the copy before
    /// copies were cut at the last unwind's highest read; kept to compare them).
    pub(crate) whole_stack: bool,
}

/// What one read of a blocked thread gave ([`Capturer::read_once`]).
#[cfg(target_arch = "x86_64")]
enum Once {
    /// Frames (truncated or not), if the thread did not run meanwhile, and the end of the
    /// highest bytes the unwind read (the next copy's window).
    Stack(bool, u64),
    /// An unwind that reached no root, if the thread did not run meanwhile.
    NoRoot,
    /// An answer whatever the counters say.
    Done(Blocked),
}

/// What reading a blocked thread gave.
#[cfg(target_arch = "x86_64")]
enum Blocked {
    /// A stack (in the capturer's frames): truncated or not.
    Stack(bool),
    /// No stack this way: signal the thread.
    Signal,
    /// A failure the signal would meet too.
    Failed(Failure),
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
        how: How,
        cpu_sample: &mut dyn FnMut(u64, Captured<'_>),
    ) -> Result<Captured<'_>, Failure> {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = how;
        #[cfg(target_arch = "x86_64")]
        if self.blocked_ok {
            match self.read_blocked(tid, bounds, how) {
                Blocked::Stack(truncated) => {
                    return Ok(Captured {
                        frames: &self.frames,
                        truncated,
                        interrupted: false,
                        at_ticks: crate::clock::now_ticks(),
                    });
                }
                Blocked::Failed(f) => return Err(f),
                Blocked::Signal => {}
            }
        }
        self.capture_signalled(tid, bounds, cpu_sample)
    }

    /// Captures thread `tid`'s stack with the capture signal: its handler copies the
    /// registers and the stack; the copy is unwound here.
    fn capture_signalled(
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
        let (truncated, at_ticks) = area
            .take(|c| match c.outcome {
                OUTCOME_COPIED => Ok((
                    unwinder.unwind(c.regs, c.stack, frames).truncated,
                    c.at_ticks,
                )),
                OUTCOME_SP_OUTSIDE => Err(Failure::OutsideStack),
                _ => Err(Failure::Signal),
            })
            .unwrap_or(Err(Failure::Timeout))?;
        if self.frames.is_empty() {
            return Err(Failure::Unwind);
        }
        Ok(Captured {
            frames: &self.frames,
            truncated,
            interrupted: true,
            at_ticks,
        })
    }

    /// Reads thread `tid`'s stack if it is blocked in the kernel (see the module docs):
    /// saved registers, one copy of the live stack, unwound, kept only if the thread's
    /// scheduler counters did not move from before the registers were read to after the copy.
    ///
    /// A thread whose counters still equal those its last read ended with was not scheduled
    /// in since: it has stayed blocked where that read found it, so its stack is that read's
    /// (kept in [`BlockedFiles`]) and costs one system call (none with `how.counters`).
    /// That is the stacks of one long scope after the first.
    #[cfg(target_arch = "x86_64")]
    fn read_blocked(&mut self, tid: u64, bounds: Option<(u64, u64)>, how: How) -> Blocked {
        let Some((lo, hi)) = bounds else {
            return Blocked::Failed(Failure::NoArea);
        };
        let files = match self.blocked.entry(tid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match BlockedFiles::open(tid) {
                Ok(f) => e.insert(f),
                Err(_) => return Blocked::Signal,
            },
        };
        let before = match how.counters {
            Some(c) => c,
            None => match files.schedstat() {
                Ok(c) => c,
                Err(_) => return Blocked::Signal,
            },
        };
        if before.timeslices == 0 {
            // No scheduler statistics (the kernel keeps them off): nothing would tell
            // whether the thread ran during the copy.
            return Blocked::Signal;
        }
        if let Some(last) = &files.last
            && last.counters == before
        {
            self.frames.clone_from(&last.frames);
            return Blocked::Stack(last.truncated);
        }
        // The kept frames' buffer is reused for this read's: no allocation per capture.
        let mut kept = files.last.take().map(|l| l.frames).unwrap_or_default();
        let r = self.read_once(tid, (lo, hi), how.whole_stack);
        let files = self.blocked.get_mut(&tid).expect("opened above");
        let still = files.schedstat().is_ok_and(|after| after == before);
        match r {
            Once::Stack(truncated, top) if still => {
                self.unwind_misses = 0;
                if self.frames.is_empty() {
                    return Blocked::Failed(Failure::Unwind);
                }
                // Up to the root: the next copy may end where this unwind's reads did.
                files.window_top = (!truncated).then_some(top);
                kept.clone_from(&self.frames);
                files.last = Some(LastRead {
                    counters: before,
                    frames: kept,
                    truncated,
                });
                Blocked::Stack(truncated)
            }
            Once::NoRoot if still => {
                // A miss of one moment: code the unwinder cannot leave this way.
                self.unwind_misses += 1;
                if self.unwind_misses >= BLOCKED_MISSES_MAX {
                    self.blocked_ok = false;
                }
                Blocked::Signal
            }
            Once::Done(b) => b,
            // The thread ran meanwhile.
            Once::Stack(..) | Once::NoRoot => Blocked::Signal,
        }
    }

    /// One read of a blocked thread (its files are open): registers, copy, unwind; whether
    /// it is of one moment is for the caller to tell.
    ///
    /// The copy ends where the last kept unwind's reads did (see
    /// [`BlockedFiles::window_top`]) unless `whole_stack`; an unwind that reads past that
    /// shorter copy is done again over the whole one, so a result never depends on where
    /// the copy was cut (an unwind's result is a function of the bytes it read).
    #[cfg(target_arch = "x86_64")]
    fn read_once(&mut self, tid: u64, (lo, hi): (u64, u64), whole_stack: bool) -> Once {
        let Some(files) = self.blocked.get(&tid) else {
            return Once::Done(Blocked::Signal);
        };
        let Ok(Some(regs)) = files.saved_regs() else {
            // Running or runnable (or gone): the signal's turn.
            return Once::Done(Blocked::Signal);
        };
        if regs.sp < lo || regs.sp >= hi {
            return Once::Done(Blocked::Failed(Failure::OutsideStack));
        }
        // The live stack is `[sp, hi)` (cut at the copy size); an unwind to the root reads
        // all of it up to the thread's outermost frames, which stay where they are.
        let whole = ((hi - regs.sp) as usize).min(self.copy_bytes);
        let window = match files.window_top {
            Some(top) if !whole_stack && top > regs.sp => ((top - regs.sp) as usize).min(whole),
            _ => whole,
        };
        let mut len = window;
        let unwound = loop {
            if self.copy.len() < len {
                self.copy.resize(len, 0);
            }
            let n = match signal::read_own_memory(regs.sp, &mut self.copy[..len]) {
                Ok(n) => n,
                Err(e) => {
                    if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) {
                        // Not allowed here (a sandbox): signal every thread from now on.
                        self.blocked_ok = false;
                    }
                    return Once::Done(Blocked::Signal);
                }
            };
            let u =
                self.unwinder
                    .unwind_blocked(regs.pc, regs.sp, &self.copy[..n], &mut self.frames);
            if len < whole && self.unwinder.blocked_reads().past {
                // It read past the window (a deeper start, a search that went higher):
                // again over the whole stack.
                len = whole;
                continue;
            }
            break u;
        };
        match unwound {
            BlockedUnwind::Stack { truncated } => {
                Once::Stack(truncated, self.unwinder.blocked_reads().top)
            }
            // Deeper than the copy may go: the signal's copy is cut at the same size, and
            // its unwind needs no search.
            BlockedUnwind::WantsMore => Once::Done(Blocked::Signal),
            BlockedUnwind::NoRoot => Once::NoRoot,
        }
    }

    /// Waits until `area` holds a copy or `deadline` passes; whether it holds one. The wait
    /// sleeps on the area's state word, which the handler wakes when it finishes: no
    /// spinning or yielding (a yield on a loaded host hands the CPU to another process for
    /// its whole slice), and the sampler is woken as soon as the copy is there.
    fn wait_done(&self, area: &Area, deadline: Instant) -> bool {
        loop {
            let state = area.state();
            if state == DONE {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            signal::wait_for_change(area, state, deadline - now);
        }
    }

    /// Hands a CPU-timer copy waiting in `area` to `f`, unwound.
    fn take_cpu_sample(&mut self, tid: u64, area: &Area, f: &mut dyn FnMut(u64, Captured<'_>)) {
        let (unwinder, frames) = (&mut self.unwinder, &mut self.frames);
        // A copy that answers a request nobody waits for any more (it timed out) is dropped.
        let taken = area.take(|c| {
            (c.outcome == OUTCOME_COPIED && !c.requested).then(|| {
                (
                    unwinder.unwind(c.regs, c.stack, frames).truncated,
                    c.at_ticks,
                )
            })
        });
        if let Some(Some((truncated, at_ticks))) = taken
            && !self.frames.is_empty()
        {
            f(
                tid,
                Captured {
                    frames: &self.frames,
                    truncated,
                    interrupted: true,
                    at_ticks,
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

    /// Thread `tid`'s counters read now, as the sampler's sample of a long scope reads them
    /// before its first stack (x86_64; elsewhere `None`: the signal needs none).
    fn counters_of(&mut self, tid: u64) -> Option<SchedStat> {
        #[cfg(target_arch = "x86_64")]
        {
            let files = match self.blocked.entry(tid) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(BlockedFiles::open(tid).ok()?)
                }
            };
            files.schedstat().ok()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = tid;
            None
        }
    }

    /// Thread `tid` is gone: its timer is deleted and its area freed for another thread.
    pub(crate) fn release(&mut self, tid: u64) {
        self.timers.remove(&tid);
        #[cfg(target_arch = "x86_64")]
        self.blocked.remove(&tid);
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
    timed_capture(tid, super::CaptureMethod::OnDemand).map(|t| t.stack)
}

/// [`crate::os::timed_capture`]: a capture of `tid` the way `method` says, with the wall
/// and CPU time of the capture itself (not of finding the thread or taking the lock).
pub(crate) fn timed_capture(
    tid: u64,
    method: super::CaptureMethod,
) -> Result<super::CaptureTiming, OsError> {
    use super::CaptureMethod;
    let bounds = super::sampler::bounds_of(tid).ok_or(OsError::UnknownThread(tid))?;
    let mut c = lock(&CAPTURER);
    let cap = match &mut *c {
        Ok(cap) => cap,
        Err(e) if e.is_empty() => return Err(OsError::NotConfigured),
        Err(e) => return Err(OsError::Unavailable(e.clone())),
    };
    let how = match method {
        CaptureMethod::OnDemand => How::default(),
        CaptureMethod::WholeStack => How {
            counters: None,
            whole_stack: true,
        },
        CaptureMethod::LongScope => How {
            counters: cap.counters_of(tid),
            whole_stack: false,
        },
    };
    let mut ignore = |_, _: Captured<'_>| {};
    let (wall, cpu) = (Instant::now(), signal::thread_cpu_ns());
    let r = cap.capture(tid, bounds, how, &mut ignore);
    let cpu_ns = signal::thread_cpu_ns().saturating_sub(cpu);
    let wall_ns = u64::try_from(wall.elapsed().as_nanos()).unwrap_or(u64::MAX);
    match r {
        Ok(s) => Ok(super::CaptureTiming {
            stack: Stack {
                frames: s.frames.to_vec(),
                truncated: s.truncated,
                interrupted: s.interrupted,
            },
            wall_ns,
            cpu_ns,
        }),
        Err(f) => Err(OsError::Capture {
            tid,
            reason: f.reason(),
        }),
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A recorded-like thread running `work`: its OS id and stack bounds.
    fn spawn_thread(
        work: impl FnOnce() + Send + 'static,
    ) -> (u64, Option<(u64, u64)>, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send((signal::gettid(), signal::current_stack()))
                .unwrap();
            work();
        });
        let (tid, bounds) = rx.recv().unwrap();
        (tid, bounds, t)
    }

    fn capturer() -> std::sync::MutexGuard<'static, Result<Capturer, String>> {
        setup(&OsConfig::default()).expect("stacks set up");
        lock(&CAPTURER)
    }

    /// A recorded-like thread blocked in `recv` (a futex wait) until [`Sleeper::wake`], then
    /// in the C library's `sleep` for 2 s. Dropped, it ends the thread (at once if it was
    /// never woken) and joins it.
    struct Sleeper {
        tid: u64,
        bounds: Option<(u64, u64)>,
        wake: Option<std::sync::mpsc::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Sleeper {
        fn wake(&self) {
            self.wake.as_ref().expect("not dropped").send(()).unwrap();
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            self.wake = None;
            if let Some(t) = self.thread.take() {
                let r = t.join();
                if !std::thread::panicking() {
                    r.unwrap();
                }
            }
        }
    }

    /// The fixture of the tests of one blocked thread: the capturer (locked) and a
    /// [`Sleeper`].
    fn blocked_fixture() -> (
        std::sync::MutexGuard<'static, Result<Capturer, String>>,
        Sleeper,
    ) {
        let c = capturer();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (tid, bounds, t) = spawn_thread(move || {
            if rx.recv().is_ok() {
                signal::testing::sleep_in_libc(2);
            }
        });
        let s = Sleeper {
            tid,
            bounds,
            wake: Some(tx),
            thread: Some(t),
        };
        (c, s)
    }

    /// Reads `tid` while blocked, retrying while it is not (yet) blocked.
    fn read_blocked_frames(cap: &mut Capturer, tid: u64, bounds: Option<(u64, u64)>) -> Vec<u64> {
        read_blocked_with(cap, tid, bounds, How::default())
    }

    fn read_blocked_with(
        cap: &mut Capturer,
        tid: u64,
        bounds: Option<(u64, u64)>,
        how: How,
    ) -> Vec<u64> {
        for _ in 0..400 {
            if let Blocked::Stack(_) = cap.read_blocked(tid, bounds, how) {
                return cap.frames.clone();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("thread {tid} was never read while blocked");
    }

    /// A copy cut where the last unwind's reads ended gives the stack the whole copy gives;
    /// one cut too short is read again whole, never unwound short.
    #[test]
    fn a_copy_cut_at_the_last_reads_gives_the_whole_copys_stack() {
        let (mut c, s) = blocked_fixture();
        let cap = c.as_mut().unwrap();
        let (tid, bounds) = (s.tid, s.bounds);
        let whole_stack = How {
            counters: None,
            whole_stack: true,
        };
        let whole = read_blocked_with(cap, tid, bounds, whole_stack);
        assert!(whole.len() >= 4, "{whole:x?}");
        let (_, hi) = bounds.unwrap();
        let files = cap.blocked.get_mut(&tid).unwrap();
        let top = files
            .window_top
            .expect("a stack read to its root sets the window");
        // The C library's thread descriptor and thread-local storage sit above the thread's
        // outermost frame, inside its stack bounds: they are not copied any more.
        assert!(top < hi, "window top {top:#x}, stack top {hi:#x}");
        // Forget the kept stack, so the next read copies again, up to the window's top.
        files.last = None;
        assert_eq!(read_blocked_frames(cap, tid, bounds), whole);
        // A window far too short: the unwind reads past it and is done again over the
        // whole stack.
        let files = cap.blocked.get_mut(&tid).unwrap();
        files.last = None;
        let sp = files.saved_regs().unwrap().expect("blocked").sp;
        files.window_top = Some(sp + 16);
        assert_eq!(read_blocked_frames(cap, tid, bounds), whole);
        assert_eq!(cap.blocked[&tid].window_top, Some(top));
        // The sampler's way: the counters of a sample just read.
        cap.blocked.get_mut(&tid).unwrap().last = None;
        let how = How {
            counters: cap.counters_of(tid),
            whole_stack: false,
        };
        assert_eq!(read_blocked_with(cap, tid, bounds, how), whole);
    }

    /// Counters read before the thread ran again are refused: a capture that starts from
    /// them never keeps a stack the thread may have left.
    #[test]
    fn counters_from_before_the_thread_ran_keep_no_stack() {
        let (mut c, s) = blocked_fixture();
        let cap = c.as_mut().unwrap();
        let (tid, bounds) = (s.tid, s.bounds);
        read_blocked_frames(cap, tid, bounds);
        let old = cap.counters_of(tid).unwrap();
        s.wake();
        // Wait until it has run (its counters moved) and blocked again.
        for _ in 0..400 {
            if cap.counters_of(tid) != Some(old) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_ne!(cap.counters_of(tid), Some(old), "the thread never ran");
        cap.blocked.get_mut(&tid).unwrap().last = None;
        let how = How {
            counters: Some(old),
            whole_stack: false,
        };
        assert!(
            !matches!(cap.read_blocked(tid, bounds, how), Blocked::Stack(_)),
            "a stack kept against counters of before the thread ran"
        );
    }

    #[test]
    fn a_thread_blocked_in_the_c_library_is_read_with_the_stack_the_signal_gives() {
        same_stack_as_the_signal(|| signal::testing::sleep_in_libc(3));
    }

    /// The standard library is built with frame pointers, and so is all of a debug build:
    /// the frame pointer of the first frame that uses one is found on the stack.
    #[test]
    fn a_thread_blocked_in_frame_pointer_code_is_read_with_the_stack_the_signal_gives() {
        same_stack_as_the_signal(|| std::thread::sleep(Duration::from_secs(3)));
    }

    fn same_stack_as_the_signal(sleep: fn()) {
        let mut c = capturer();
        let cap = c.as_mut().unwrap();
        let (tid, bounds, t) = spawn_thread(sleep);
        let read = read_blocked_frames(cap, tid, bounds);
        assert!(read.len() >= 4, "{read:x?}");
        let mut ignore = |_, _: Captured<'_>| {};
        let signalled = cap
            .capture_signalled(tid, bounds, &mut ignore)
            .expect("signalled capture")
            .frames
            .to_vec();
        // Interrupted, the thread sleeps again from the same frames.
        let again = read_blocked_frames(cap, tid, bounds);
        assert_eq!(read, again);
        // The innermost address may differ (the kernel rewinds an interrupted call to
        // restart it); every return address agrees.
        assert_eq!(read[1..], signalled[1..], "{read:x?} vs {signalled:x?}");
        drop(c);
        t.join().unwrap();
    }

    /// A thread read again while still blocked gives the same stack; one that ran and
    /// blocked elsewhere meanwhile gives its new stack, never the one kept from before.
    #[test]
    fn a_thread_read_again_gives_its_stack_of_now() {
        // Blocks in `recv` (a futex wait), then, woken, in the C library's `sleep`.
        let (mut c, s) = blocked_fixture();
        let cap = c.as_mut().unwrap();
        let (tid, bounds) = (s.tid, s.bounds);
        let waiting = read_blocked_frames(cap, tid, bounds);
        assert_eq!(read_blocked_frames(cap, tid, bounds), waiting);
        s.wake();
        std::thread::sleep(Duration::from_millis(100));
        let sleeping = read_blocked_frames(cap, tid, bounds);
        assert_ne!(
            sleeping[0], waiting[0],
            "the stack kept from the wait: {waiting:x?} then {sleeping:x?}"
        );
        assert_eq!(read_blocked_frames(cap, tid, bounds), sleeping);
    }

    #[test]
    fn a_thread_that_wakes_during_a_read_is_never_read_torn() {
        let mut c = capturer();
        let cap = c.as_mut().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        // Blocks for 50 us at a changing depth, running a little between blocks, so reads
        // often overlap a wake-up.
        fn descend(depth: u32, round: u32) {
            if depth == 0 {
                // In the C library and in the standard library's frame-pointer code by turns.
                if round.is_multiple_of(2) {
                    signal::testing::select_in_libc(50);
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            } else {
                descend(std::hint::black_box(depth - 1), round);
                std::hint::black_box(depth);
            }
        }
        let (tid, bounds, t) = spawn_thread(move || {
            let mut i = 0u32;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                descend(i % 24, i / 24);
                i += 1;
            }
        });
        let maps = super::super::modules::exec_mappings().unwrap();
        let known = |a: u64| maps.iter().any(|m| m.start <= a && a < m.end);
        let (mut read, mut other) = (0, 0);
        for _ in 0..2000 {
            match cap.read_blocked(tid, bounds, How::default()) {
                Blocked::Stack(_) => {
                    read += 1;
                    let f = &cap.frames;
                    assert!(
                        f.iter().all(|&a| known(a)),
                        "a frame outside the code: {f:x?}"
                    );
                    // `descend`'s frames, then the thread's start: never fewer than that.
                    assert!(f.len() >= 4, "{f:x?}");
                }
                _ => other += 1,
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(c);
        t.join().unwrap();
        assert!(read > 0, "no read while blocked ({other} others)");
    }
}
