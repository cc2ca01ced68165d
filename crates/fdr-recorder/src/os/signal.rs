//! Every `unsafe` line of the OS view: the stack-capture signal, its handler, the per-thread
//! capture areas the handler writes, CPU-time timers, and the few libc calls around them
//! (thread ids, stack bounds). Everything outside this module is safe code over the safe
//! functions below.
//!
//! # The capture protocol
//!
//! A capture area ([`Area`]) belongs to one thread at a time, is allocated by the sampler
//! (never on the hot path) and is never freed: areas live in a fixed table
//! ([`MAX_AREAS`] entries), so a signal that names an area by index can never reach freed
//! memory. Its `state` word is the whole hand-off between the sampler and the handler:
//!
//! - `IDLE -> REQUESTED`: the sampler asks for a stack ([`Area::request`]), then sends the
//!   signal to the thread with `rt_tgsigqueueinfo`, whose payload names the area.
//! - `REQUESTED -> WRITING` (a capture signal or a CPU timer) or `IDLE -> WRITING` (a CPU
//!   timer only): the handler, on the interrupted thread, claims the area with a
//!   compare-exchange, copies the interrupted registers (from the `ucontext`) and the stack
//!   bytes `[sp, min(sp + copy size, stack top))`, then stores `DONE` (`Release`). A handler
//!   that loses the compare-exchange writes nothing (counted).
//! - `DONE -> IDLE`: the sampler reads the copy (`Acquire`) and unwinds it off-signal, then
//!   frees the area ([`Area::take`]).
//! - `REQUESTED -> IDLE`: the sampler gives up waiting ([`Area::cancel`]); a handler that
//!   runs later finds the area no longer requested and writes nothing.
//! - `IDLE -> WRITING -> IDLE`: the sampler (re)assigns the area to a thread
//!   ([`Area::assign`]), holding it as a writer would, so the handler never reads a thread id
//!   or stack bounds while they change.
//!
//! The handler only loads and compare-exchanges atomics, reads the `ucontext` the kernel
//! gave it, makes two system calls (`gettid`, and a `futex` wake of a sampler waiting for
//! the area's state to change) and copies bytes from its own thread's stack: all
//! async-signal-safe. It never allocates, locks, or touches thread-local storage. It
//! copies only when the interrupted stack pointer lies inside the thread's stack bounds
//! (from `pthread_getattr_np` at registration), so it never reads unmapped memory; a thread
//! interrupted on another stack (an alternate signal stack, a coroutine) is counted, not
//! copied. `src/tests/loom_signal.rs` checks the hand-off; `tests/os.rs` checks captures in a
//! syscall, of an exiting thread, and of a thread with no area.
#![allow(
    unsafe_code,
    reason = "signal handling, ucontext registers and the raw stack copy need it; confined here"
)]
#![allow(
    unreachable_pub,
    reason = "the capture-area protocol's items are `pub` inside this private module, which the in-crate loom model (src/tests/loom_signal.rs) shares"
)]

use crate::sync::{AtomicU32, AtomicU64, ByteCell, Ordering};

/// The area is free.
pub const IDLE: u32 = 0;
/// The sampler asked for a stack and sent (or is sending) the signal.
pub const REQUESTED: u32 = 1;
/// A handler (or the sampler assigning the area) holds it.
pub const WRITING: u32 = 2;
/// A copy is ready for the sampler.
pub const DONE: u32 = 3;

/// The copy is whole: the registers and the stack bytes from `sp`.
pub const OUTCOME_COPIED: u32 = 1;
/// The interrupted stack pointer was outside the thread's stack: registers only.
pub const OUTCOME_SP_OUTSIDE: u32 = 2;
/// The handler ran on a thread the area does not belong to: nothing copied.
pub const OUTCOME_WRONG_THREAD: u32 = 3;
/// Set in the outcome when the handler served a request (else a CPU timer fired).
pub const OUTCOME_REQUESTED: u32 = 1 << 8;

/// Registers copied: the program counter, the stack pointer, the frame pointer and (on
/// aarch64) the link register.
pub const REGS: usize = 4;

/// A per-thread capture area (see the module docs).
#[derive(Debug)]
pub struct Area {
    state: AtomicU32,
    outcome: AtomicU32,
    /// The OS thread it serves.
    tid: AtomicU64,
    /// That thread's stack: `[lo, hi)`.
    stack_lo: AtomicU64,
    stack_hi: AtomicU64,
    /// pc, sp, fp, lr.
    regs: [AtomicU64; REGS],
    /// Stack bytes copied.
    len: AtomicU64,
    /// When the handler ran, in event-clock ticks.
    at_ticks: AtomicU64,
    buf: Box<[ByteCell]>,
}

// SAFETY: the buffer's bytes are written only by the holder of the `WRITING` state (one at a
// time, won by a compare-exchange) and read only in the `DONE` state by the one sampler that
// takes it; every other field is atomic.
unsafe impl Sync for Area {}
// SAFETY: as above; an area holds no thread-bound state.
unsafe impl Send for Area {}

/// What a finished capture holds, borrowed from its area while the sampler reads it.
#[derive(Debug, Clone, Copy)]
pub struct Copied<'a> {
    /// pc, sp, fp, lr as the handler found them.
    pub regs: [u64; REGS],
    /// The stack bytes from `regs[1]` (sp) up.
    pub stack: &'a [u8],
    /// One of the `OUTCOME_*` values.
    pub outcome: u32,
    /// The handler served the sampler's request (else a CPU timer fired).
    pub requested: bool,
    /// When the handler ran (the timer fired or the request arrived), in event-clock ticks.
    pub at_ticks: u64,
}

impl Area {
    /// An idle area that copies at most `copy_bytes` of stack, serving no thread yet.
    pub fn new(copy_bytes: usize) -> Self {
        Area {
            state: AtomicU32::new(IDLE),
            outcome: AtomicU32::new(0),
            tid: AtomicU64::new(0),
            stack_lo: AtomicU64::new(0),
            stack_hi: AtomicU64::new(0),
            regs: std::array::from_fn(|_| AtomicU64::new(0)),
            len: AtomicU64::new(0),
            at_ticks: AtomicU64::new(0),
            buf: (0..copy_bytes).map(|_| ByteCell::default()).collect(),
        }
    }

    /// The state word (for tests and the sampler's bookkeeping).
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    /// Sampler: gives the area to thread `tid` whose stack is `[lo, hi)`. Only an idle area
    /// can be assigned; `false` if it is in use.
    pub fn assign(&self, tid: u64, lo: u64, hi: u64) -> bool {
        if self
            .state
            .compare_exchange(IDLE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.tid.store(tid, Ordering::Relaxed);
        self.stack_lo.store(lo, Ordering::Relaxed);
        self.stack_hi.store(hi, Ordering::Relaxed);
        self.state.store(IDLE, Ordering::Release);
        true
    }

    /// Sampler: asks for a stack. `Err(state)` if the area is not idle (a CPU-timer sample
    /// waits in it, or a handler is writing).
    pub fn request(&self) -> Result<(), u32> {
        self.state
            .compare_exchange(IDLE, REQUESTED, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    /// Sampler: withdraws a request nobody served; `false` if a handler claimed it first
    /// (its copy will be `DONE` shortly).
    pub fn cancel(&self) -> bool {
        self.state
            .compare_exchange(REQUESTED, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Handler: claims the area. A capture signal (`timer == false`) claims only a
    /// requested area; a CPU timer also an idle one. `None`: claimed by nobody, write nothing.
    pub fn begin_write(&self, timer: bool) -> Option<bool> {
        let won = |from| {
            self.state
                .compare_exchange(from, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        };
        if won(REQUESTED) {
            Some(true)
        } else if timer && won(IDLE) {
            Some(false)
        } else {
            None
        }
    }

    /// Handler (holding the area): the thread the area serves and its stack bounds.
    pub fn target(&self) -> (u64, u64, u64) {
        (
            self.tid.load(Ordering::Relaxed),
            self.stack_lo.load(Ordering::Relaxed),
            self.stack_hi.load(Ordering::Relaxed),
        )
    }

    /// Bytes of stack the area holds at most.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Handler (holding the area): records the registers, the time it ran (`at_ticks`) and
    /// copies `len` stack bytes from `src`, then publishes the copy.
    ///
    /// # Safety
    /// `src` is valid for reads of `len` bytes for the whole call (the interrupted thread's
    /// own stack, `[sp, sp + len)`, inside its bounds), `len <= self.capacity()`, and the
    /// caller holds the area (its [`Area::begin_write`] returned `Some`).
    pub(crate) unsafe fn finish_write(
        &self,
        regs: [u64; REGS],
        src: *const u8,
        len: usize,
        outcome: u32,
        at_ticks: u64,
    ) {
        debug_assert!(len <= self.buf.len());
        let len = len.min(self.buf.len());
        #[cfg(not(loom))]
        {
            // SAFETY: `src` is readable for `len` bytes (caller); the destination is this
            // area's buffer (`ByteCell` is a transparent `UnsafeCell<u8>`, so its cells are
            // contiguous writable bytes), `len <= capacity`, which nobody else touches while
            // we hold `WRITING`. They never overlap: the buffer is on the heap, `src` on a
            // thread's stack.
            unsafe { std::ptr::copy_nonoverlapping(src, self.buf.as_ptr() as *mut u8, len) };
        }
        #[cfg(loom)]
        for i in 0..len {
            // SAFETY: as above; loom checks that no reader touches the cells meanwhile.
            let b = unsafe { *src.add(i) };
            // SAFETY: as above.
            self.buf[i].0.with_mut(|p| unsafe { *p = b });
        }
        for (cell, v) in self.regs.iter().zip(regs) {
            cell.store(v, Ordering::Relaxed);
        }
        self.len.store(len as u64, Ordering::Relaxed);
        self.at_ticks.store(at_ticks, Ordering::Relaxed);
        self.outcome.store(outcome, Ordering::Relaxed);
        self.state.store(DONE, Ordering::Release);
    }

    /// Handler (holding the area): gives it up without a copy, saying why.
    pub fn finish_empty(&self, outcome: u32) {
        self.len.store(0, Ordering::Relaxed);
        self.outcome.store(outcome, Ordering::Relaxed);
        self.state.store(DONE, Ordering::Release);
    }

    /// Sampler: if a copy is ready, lends it to `f` and frees the area afterwards.
    pub fn take<R>(&self, f: impl FnOnce(Copied<'_>) -> R) -> Option<R> {
        if self.state.load(Ordering::Acquire) != DONE {
            return None;
        }
        let len = (self.len.load(Ordering::Relaxed) as usize).min(self.buf.len());
        let outcome = self.outcome.load(Ordering::Relaxed);
        let at_ticks = self.at_ticks.load(Ordering::Relaxed);
        let regs = std::array::from_fn(|i| self.regs[i].load(Ordering::Relaxed));
        #[cfg(not(loom))]
        let stack = {
            // SAFETY: `DONE`, acquired above, published these `len` bytes, and no handler
            // writes them until we store `IDLE` below (a handler only claims `IDLE` or
            // `REQUESTED`).
            unsafe { std::slice::from_raw_parts(self.buf.as_ptr() as *const u8, len) }
        };
        #[cfg(loom)]
        let owned: Vec<u8> = self.buf[..len]
            .iter()
            // SAFETY: as above; loom checks it.
            .map(|c| c.0.with(|p| unsafe { *p }))
            .collect();
        #[cfg(loom)]
        let stack = owned.as_slice();
        let r = f(Copied {
            regs,
            stack,
            outcome: outcome & 0xff,
            requested: outcome & OUTCOME_REQUESTED != 0,
            at_ticks,
        });
        self.state.store(IDLE, Ordering::Release);
        Some(r)
    }
}

#[cfg(not(loom))]
pub use sys::*;

/// The Linux side: the table of areas, the handler, signals, timers, thread facts.
#[cfg(not(loom))]
mod sys {
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};

    use super::{
        Area, OUTCOME_COPIED, OUTCOME_REQUESTED, OUTCOME_SP_OUTSIDE, OUTCOME_WRONG_THREAD, REGS,
    };

    /// Capture areas that can exist at once (one per captured thread); past it a thread
    /// gets no stacks (counted).
    pub const MAX_AREAS: usize = 256;

    /// The top half of a signal's payload: marks the signals fdr sends.
    const MAGIC: u64 = 0xFD05_7AC4;
    /// Payload bit: a CPU timer, not a capture request.
    const TIMER_BIT: u64 = 1 << 31;

    static AREAS: [AtomicPtr<Area>; MAX_AREAS] =
        [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_AREAS];
    /// The process id the handler expects in a queued signal (set at install).
    static PID: AtomicI32 = AtomicI32::new(0);
    /// Signals that reached the handler but were not fdr's, or named no area.
    pub static STRAY: AtomicU64 = AtomicU64::new(0);
    /// Signals whose area was not waiting for them (a timer fired while a copy waited).
    pub static BUSY: AtomicU64 = AtomicU64::new(0);
    static INSTALLED: AtomicBool = AtomicBool::new(false);

    /// Allocates area `index` (copying up to `copy_bytes`) if it does not exist yet, and
    /// returns it. Areas are never freed.
    pub fn area(index: usize, copy_bytes: usize) -> Option<&'static Area> {
        let slot = AREAS.get(index)?;
        let mut p = slot.load(Ordering::Acquire);
        if p.is_null() {
            let fresh = Box::into_raw(Box::new(Area::new(copy_bytes)));
            match slot.compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => p = fresh,
                Err(existing) => {
                    // SAFETY: `fresh` came from `Box::into_raw` just above and was never
                    // shared: the exchange failed.
                    drop(unsafe { Box::from_raw(fresh) });
                    p = existing;
                }
            }
        }
        // SAFETY: non-null entries come from `Box::into_raw` and are never freed.
        Some(unsafe { &*p })
    }

    /// Area `index` if it was allocated.
    fn existing_area(index: usize) -> Option<&'static Area> {
        let p = AREAS.get(index)?.load(Ordering::Acquire);
        // SAFETY: as in `area`.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    fn payload(index: usize, timer: bool) -> u64 {
        (MAGIC << 32) | (index as u64) | if timer { TIMER_BIT } else { 0 }
    }

    /// Why the handler could not be installed.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum InstallError {
        /// Not a realtime or otherwise usable signal number.
        #[error("signal {0} cannot carry stack captures (use a realtime signal)")]
        BadSignal(i32),
        /// The application handles this signal already; fdr does not take it over.
        #[error(
            "signal {0} already has a handler in this process; fdr does not replace it (choose another signal in OsConfig::signal)"
        )]
        InUse(i32),
        /// `sigaction` failed.
        #[error("sigaction({0}) failed: {1}")]
        Sys(i32, io::Error),
    }

    /// The default capture signal: a realtime signal (`SIGRTMIN + 4`), queued rather than
    /// merged, which no common runtime uses (glibc keeps the first few for itself below
    /// `SIGRTMIN`).
    pub fn default_signal() -> i32 {
        libc::SIGRTMIN() + 4
    }

    fn current_action(signo: i32) -> io::Result<libc::sigaction> {
        // SAFETY: an all-zero `sigaction` is a valid out-parameter; a null new action only
        // reads the current one.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signo, std::ptr::null(), &mut old) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(old)
        }
    }

    fn handler_address() -> usize {
        handler as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize
    }

    /// Installs the capture handler for `signo` (`SA_SIGINFO | SA_RESTART | SA_ONSTACK`):
    /// refuses a signal the application already handles (neither default nor ignored).
    /// Installing it again is a no-op.
    pub fn install(signo: i32) -> Result<(), InstallError> {
        let forbidden = [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS];
        if signo <= 0 || signo > libc::SIGRTMAX() || forbidden.contains(&signo) {
            return Err(InstallError::BadSignal(signo));
        }
        let old = current_action(signo).map_err(|e| InstallError::Sys(signo, e))?;
        if old.sa_sigaction == handler_address() {
            INSTALLED.store(true, Ordering::Release);
            return Ok(());
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
            return Err(InstallError::InUse(signo));
        }
        // SAFETY: `getpid` has no preconditions.
        PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
        // SAFETY: `sa` is fully initialised (zeroed, then the handler, flags and an empty
        // mask); the handler is an `extern "C"` function with the SA_SIGINFO signature that
        // lives for the whole process.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler_address();
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(signo, &sa, std::ptr::null_mut()) != 0 {
                return Err(InstallError::Sys(signo, io::Error::last_os_error()));
            }
        }
        INSTALLED.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether fdr's handler is (still) the one installed for `signo`: an application
    /// that replaced it would otherwise get fdr's signals.
    pub fn is_installed(signo: i32) -> bool {
        INSTALLED.load(Ordering::Acquire)
            && current_action(signo).is_ok_and(|a| a.sa_sigaction == handler_address())
    }

    /// The calling thread's CPU time, ns (`CLOCK_THREAD_CPUTIME_ID`: user and kernel time,
    /// not the time it waited for a CPU); 0 if the clock cannot be read.
    pub fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a plain local the call writes; the clock id is a constant the
        // kernel knows (an error leaves `ts` zero, and is reported as 0).
        let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if r != 0 {
            return 0;
        }
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }

    /// The calling thread's OS id.
    pub fn gettid() -> u64 {
        // SAFETY: `gettid` has no preconditions and cannot fail.
        unsafe { libc::syscall(libc::SYS_gettid) as u64 }
    }

    /// The calling thread's stack, `[lo, hi)`, from `pthread_getattr_np`.
    pub fn current_stack() -> Option<(u64, u64)> {
        // SAFETY: `attr` is initialised by `pthread_getattr_np` before any other use and
        // destroyed once; the out-parameters are plain locals.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return None;
            }
            let mut addr: *mut libc::c_void = std::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            (r == 0 && !addr.is_null() && size > 0)
                .then(|| (addr as u64, addr as u64 + size as u64))
        }
    }

    /// This process's id, cached: asked of the kernel once (a `getpid` system call is a
    /// microsecond on a busy VM, and every capture makes one or two calls that name the
    /// process). A `pthread_atfork` child hook clears the cache, so a forked child asks
    /// again and names itself, never its parent.
    pub fn own_pid() -> libc::pid_t {
        static OWN_PID: AtomicI32 = AtomicI32::new(0);
        static HOOK: std::sync::Once = std::sync::Once::new();
        extern "C" fn forget() {
            OWN_PID.store(0, Ordering::Relaxed);
        }
        HOOK.call_once(|| {
            // SAFETY: registers a child hook that only stores an atomic (async-signal-safe,
            // as a hook run in a forked child of a threaded process must be); the function
            // lives for the whole process.
            unsafe { libc::pthread_atfork(None, None, Some(forget)) };
        });
        match OWN_PID.load(Ordering::Relaxed) {
            0 => {
                // SAFETY: `getpid` has no preconditions.
                let pid = unsafe { libc::getpid() };
                OWN_PID.store(pid, Ordering::Relaxed);
                pid
            }
            pid => pid,
        }
    }

    /// Copies this process's memory from address `src` into `dst` with
    /// `process_vm_readv`: the kernel checks the source range, so an unmapped address is an
    /// error (or a short count), never a fault, and memory another thread may write is
    /// copied by the kernel, not read by Rust code. Returns the bytes copied.
    #[cfg(target_arch = "x86_64")]
    pub fn read_own_memory(src: u64, dst: &mut [u8]) -> io::Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        let local = libc::iovec {
            iov_base: dst.as_mut_ptr().cast(),
            iov_len: dst.len(),
        };
        let remote = libc::iovec {
            iov_base: src as usize as *mut libc::c_void,
            iov_len: dst.len(),
        };
        // SAFETY: `local` describes `dst`, which we borrow mutably for the call, so the
        // kernel writes only memory we own; `remote` is only read, by the kernel, which
        // checks it against this process's mappings (EFAULT, never a fault in us). One
        // iovec each; flags must be 0. `own_pid` is this process's id (a forked child's
        // own, never its parent's).
        let n = unsafe { libc::process_vm_readv(own_pid(), &local, 1, &remote, 1, 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Test helpers that block in the C library (whose code, unlike a debug build's, the
    /// unwinder can leave without the frame pointer).
    #[cfg(all(test, target_arch = "x86_64"))]
    pub mod testing {
        /// Sleeps `secs` seconds in the C library's `sleep`, again after each interruption.
        pub fn sleep_in_libc(secs: u32) {
            let mut left = secs;
            while left > 0 {
                // SAFETY: `sleep` has no preconditions.
                left = unsafe { libc::sleep(left) };
            }
        }

        /// Waits `us` microseconds in the C library's `select` (no descriptors).
        pub fn select_in_libc(us: u32) {
            let mut tv = libc::timeval {
                tv_sec: 0,
                tv_usec: libc::suseconds_t::from(us),
            };
            // SAFETY: no descriptor sets (null pointers are allowed with `nfds` 0); `tv` is a
            // valid timeval the call may update.
            unsafe {
                libc::select(
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut tv,
                )
            };
        }
    }

    /// The kernel's `siginfo` for a queued signal (`rt_tgsigqueueinfo`), 128 bytes.
    #[repr(C)]
    struct QueueInfo {
        signo: i32,
        errno: i32,
        code: i32,
        _align: i32,
        pid: i32,
        uid: u32,
        value: u64,
        _rest: [u8; 96],
    }
    const _: () = assert!(std::mem::size_of::<QueueInfo>() == 128);
    const _: () = assert!(std::mem::size_of::<libc::siginfo_t>() == 128);

    /// The real user id signals are sent with, read once (it is what the kernel checks
    /// against the process's own; a process that changes it keeps its first one here, which
    /// only fills the field the handler ignores).
    static UID: std::sync::OnceLock<libc::uid_t> = std::sync::OnceLock::new();

    /// Sends the capture signal to thread `tid` of this process, naming area `index`.
    pub fn request_signal(signo: i32, tid: u64, index: usize) -> io::Result<()> {
        // In a forked child the signal must name the child, never its parent: `own_pid`.
        let pid = own_pid();
        // SAFETY: `getuid` has no preconditions.
        let uid = *UID.get_or_init(|| unsafe { libc::getuid() });
        let info = QueueInfo {
            signo,
            errno: 0,
            code: libc::SI_QUEUE,
            _align: 0,
            pid,
            uid,
            value: payload(index, false),
            _rest: [0; 96],
        };
        // SAFETY: `info` is a complete, 128-byte siginfo with a negative code (allowed for
        // a signal to our own process); the kernel only reads it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                pid,
                tid as libc::pid_t,
                signo,
                &info as *const QueueInfo,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The signal handler (see the module docs): async-signal-safe.
    extern "C" fn handler(_signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
        let (code, value, pid) = unsafe {
            let i = &*info;
            (i.si_code, i.si_value().sival_ptr as u64, i.si_pid())
        };
        let ours = value >> 32 == MAGIC
            && (code == libc::SI_TIMER
                || (code == libc::SI_QUEUE && pid == PID.load(Ordering::Relaxed)));
        if !ours || ctx.is_null() {
            STRAY.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The time-stamp counter (or, where it is not the clock, `clock_gettime` against an
        // origin the sampler fixed before any timer or request existed): async-signal-safe.
        let at_ticks = crate::clock::now_ticks();
        let timer = value & TIMER_BIT != 0;
        let index = (value & (TIMER_BIT - 1)) as usize;
        let Some(area) = existing_area(index) else {
            STRAY.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(requested) = area.begin_write(timer) else {
            BUSY.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let flag = if requested { OUTCOME_REQUESTED } else { 0 };
        let (tid, lo, hi) = area.target();
        if tid != gettid() {
            area.finish_empty(OUTCOME_WRONG_THREAD | flag);
            wake(area);
            return;
        }
        // SAFETY: for an SA_SIGINFO handler the third argument is the interrupted context.
        let regs = unsafe { registers(&*(ctx as *const libc::ucontext_t)) };
        let sp = regs[1];
        if sp < lo || sp >= hi {
            area.finish_empty(OUTCOME_SP_OUTSIDE | flag);
            wake(area);
            return;
        }
        let len = ((hi - sp) as usize).min(area.capacity());
        // SAFETY: `[sp, sp + len)` lies inside this thread's stack `[lo, hi)`, which is
        // mapped for the thread's whole life (pthread maps a thread's stack whole; the main
        // thread's stack is mapped from its lowest used address, below `sp`, to `hi`), and
        // the frames there stay put while this handler runs on top of them. We hold the
        // area (`begin_write`).
        unsafe { area.finish_write(regs, sp as *const u8, len, OUTCOME_COPIED | flag, at_ticks) };
        wake(area);
    }

    /// Handler: wakes a sampler waiting for `area`'s copy ([`wait_for_change`]). A
    /// `futex` wake with nobody waiting is one cheap system call, async-signal-safe.
    fn wake(area: &Area) {
        // SAFETY: FUTEX_WAKE on the address of a live `AtomicU32` (areas are never freed);
        // the kernel only looks the address up, it writes nothing.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                area.state.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            );
        }
    }

    /// Sampler: sleeps until `area`'s state is no longer `seen` (the handler wakes it when
    /// it finishes a copy) or `timeout` passes; may return early (a signal, a spurious
    /// wake-up): the caller looks again. No sleep if the state already changed.
    pub fn wait_for_change(area: &Area, seen: u32, timeout: std::time::Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: FUTEX_WAIT on the address of a live `AtomicU32` (areas are never freed),
        // compared by the kernel with `seen` atomically before sleeping; `ts` is a valid
        // relative timeout the kernel only reads.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                area.state.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                seen,
                &ts as *const libc::timespec,
            );
        }
    }

    /// pc, sp, fp, lr of an interrupted context.
    #[cfg(target_arch = "x86_64")]
    fn registers(uc: &libc::ucontext_t) -> [u64; REGS] {
        let g = &uc.uc_mcontext.gregs;
        [
            g[libc::REG_RIP as usize] as u64,
            g[libc::REG_RSP as usize] as u64,
            g[libc::REG_RBP as usize] as u64,
            0,
        ]
    }

    /// pc, sp, fp, lr of an interrupted context.
    #[cfg(target_arch = "aarch64")]
    fn registers(uc: &libc::ucontext_t) -> [u64; REGS] {
        let m = &uc.uc_mcontext;
        [m.pc, m.sp, m.regs[29], m.regs[30]]
    }

    /// A CPU-time timer on one thread: every `1/hz` of the thread's CPU time, the kernel
    /// sends the capture signal to that thread, naming its area. Deleted on drop.
    #[derive(Debug)]
    pub struct CpuTimer(libc::timer_t);

    // SAFETY: a timer id is a plain handle the kernel keys; any thread may delete it.
    unsafe impl Send for CpuTimer {}

    impl CpuTimer {
        /// Starts a timer on thread `tid`'s CPU clock at `hz`.
        pub fn start(signo: i32, tid: u64, index: usize, hz: u32) -> io::Result<CpuTimer> {
            if hz == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "0 Hz"));
            }
            // The thread's CPU clock: Linux encodes a per-thread CPU-time clock as
            // `~tid << 3 | CPUCLOCK_PERTHREAD (4) | CPUCLOCK_SCHED (2)`, as glibc's
            // `pthread_getcpuclockid` does. The kernel allows it only for threads of this
            // process.
            let clock = ((!(tid as libc::clockid_t)) << 3) | 6;
            let period_ns = 1_000_000_000 / u64::from(hz);
            let period = libc::timespec {
                tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (period_ns % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: `sev` is zeroed then filled (notify by thread id, our signal and
            // payload); `id` is an out-parameter; on failure nothing is left to delete.
            unsafe {
                let mut sev: libc::sigevent = std::mem::zeroed();
                sev.sigev_notify = libc::SIGEV_THREAD_ID;
                sev.sigev_signo = signo;
                sev.sigev_value.sival_ptr = payload(index, true) as usize as *mut libc::c_void;
                sev.sigev_notify_thread_id = tid as libc::c_int;
                let mut id: libc::timer_t = std::mem::zeroed();
                if libc::timer_create(clock, &mut sev, &mut id) != 0 {
                    return Err(io::Error::last_os_error());
                }
                let timer = CpuTimer(id);
                let spec = libc::itimerspec {
                    it_interval: period,
                    it_value: period,
                };
                if libc::timer_settime(id, 0, &spec, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(timer)
            }
        }
    }

    impl Drop for CpuTimer {
        fn drop(&mut self) {
            // SAFETY: `self.0` is a timer `timer_create` made and nobody deleted.
            unsafe { libc::timer_delete(self.0) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_thread_cpu_clock_counts_this_threads_work_only() {
        let a = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let b = thread_cpu_ns();
        assert!(a > 0 && b > a, "{a} then {b}");
        // A sleep is no CPU time: the clock moves far less than the sleep's 50 ms.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let c = thread_cpu_ns();
        assert!(c - b < 25_000_000, "{b} then {c} across a 50 ms sleep");
    }

    #[test]
    fn an_area_is_written_only_when_claimed_and_read_only_when_done() {
        let a = Area::new(16);
        assert!(a.assign(7, 0, 100));
        // A capture signal with no request writes nothing.
        assert_eq!(a.begin_write(false), None);
        a.request().unwrap();
        assert_eq!(a.request(), Err(REQUESTED));
        assert!(a.take(|_| ()).is_none(), "nothing to take while requested");
        assert_eq!(a.begin_write(false), Some(true));
        let src = [1u8, 2, 3, 4, 5];
        // SAFETY: `src` is readable for its length; we hold the area.
        unsafe {
            a.finish_write(
                [10, 20, 30, 40],
                src.as_ptr(),
                src.len(),
                OUTCOME_COPIED | OUTCOME_REQUESTED,
                77,
            )
        };
        // A timer firing meanwhile finds it busy.
        assert_eq!(a.begin_write(true), None);
        let got = a
            .take(|c| (c.regs, c.stack.to_vec(), c.outcome, c.requested, c.at_ticks))
            .unwrap();
        assert_eq!(
            got,
            ([10, 20, 30, 40], src.to_vec(), OUTCOME_COPIED, true, 77)
        );
        assert_eq!(a.state(), IDLE);
        // A timer claims an idle area.
        assert_eq!(a.begin_write(true), Some(false));
        a.finish_empty(OUTCOME_SP_OUTSIDE);
        assert!(!a.assign(8, 0, 1), "a waiting copy keeps the area");
        assert_eq!(a.take(|c| (c.requested, c.stack.len())), Some((false, 0)));
        // A cancelled request is not written afterwards.
        a.request().unwrap();
        assert!(a.cancel());
        assert_eq!(a.begin_write(false), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn own_memory_is_copied_exactly_and_an_unmapped_address_is_an_error() {
        let src: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        // A destination with guard bytes on both sides: the copy stays inside its slice.
        let mut dst = vec![0xAAu8; 10_000 + 64];
        let n = read_own_memory(src.as_ptr() as u64 + 7, &mut dst[32..32 + 5000]).unwrap();
        assert_eq!(n, 5000);
        assert_eq!(&dst[32..5032], &src[7..5007]);
        assert!(dst[..32].iter().chain(&dst[5032..]).all(|&b| b == 0xAA));
        assert_eq!(read_own_memory(src.as_ptr() as u64, &mut []).unwrap(), 0);
        // Page 0 is never mapped: the kernel refuses, nothing is written.
        let mut small = [0x55u8; 16];
        assert!(read_own_memory(8, &mut small).is_err());
        assert_eq!(small, [0x55; 16]);
    }

    #[test]
    fn a_forked_child_names_itself_not_its_parent() {
        let parent = own_pid();
        // SAFETY: `getpid` has no preconditions.
        assert_eq!(parent, unsafe { libc::getpid() });
        // SAFETY: the child only loads and stores atomics, asks `getpid` and leaves with
        // `_exit`: async-signal-safe, as the child of a threaded process must stay.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
        if child == 0 {
            // SAFETY: as above.
            let ok = own_pid() == unsafe { libc::getpid() };
            // SAFETY: ends the child at once, running nothing of the parent's.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a plain out-parameter.
        let waited = unsafe { libc::waitpid(child, &mut status, 0) };
        assert_eq!(waited, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child's cached id was its parent's ({status:#x})"
        );
        assert_eq!(own_pid(), parent);
    }

    #[test]
    fn the_stack_bounds_of_this_thread_hold_a_local() {
        let local = 0u64;
        let addr = &local as *const u64 as u64;
        let (lo, hi) = current_stack().expect("pthread_getattr_np");
        assert!(lo < addr && addr < hi, "{lo:#x} < {addr:#x} < {hi:#x}");
    }
}
