//! The sampler thread (`fdr-sampler`): the registry of recorded threads it watches, its
//! configuration, its scans (long scopes, periodic samples, CPU-timer copies) and its
//! counters. See the `os` module docs for what it records and how it detects long scopes.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use fdr_format::{EventKind, SampleCause, StackFrames, ThreadId};

use super::procfs::{SchedStat, TaskFiles};
use super::{OsConfig, OsStats, StackFailures};
use crate::chunk::committed_depth;
use crate::state::ThreadShared;
use crate::sync::lock;

/// Threads whose `/proc` files stay open (two each); past it, files are opened per read.
const MAX_OPEN_THREADS: usize = 128;
/// The sampler's sleep while it has nothing to do (no configuration, recording off).
const IDLE_SLEEP: Duration = Duration::from_millis(50);
/// While a long scope lasts, the sampler looks for its end at least this long apart...
const FOLLOW_MIN: Duration = Duration::from_millis(1);
/// ...and at most this share of the scope's age apart (and never less often than a scan),
/// so its scope-end sample comes within about an eighth of its length after its end while a
/// scope that stays open for minutes costs no more than a scan.
const FOLLOW_AGE_SHARE: u64 = 8;
/// For this long after it saw a long scope, the sampler scans [`HOT_SCAN_DIVISOR`] times as
/// often: long scopes of a fault recur, and the next ones are caught more often, while a
/// healthy service pays for the slower scan only.
const HOT_FOR: Duration = Duration::from_secs(10);
/// How many times as often the sampler scans after a long scope ([`HOT_FOR`]).
const HOT_SCAN_DIVISOR: u64 = 4;

/// A recorded thread, as registration saw it.
#[derive(Debug, Clone)]
struct Registered {
    shared: Arc<ThreadShared>,
    tid: u64,
    /// Its stack, `[lo, hi)`, if known.
    bounds: Option<(u64, u64)>,
}

/// Counters the sampler writes (relaxed; read by [`stats`]).
#[derive(Debug, Default)]
struct Cells {
    scans: AtomicU64,
    os_samples: AtomicU64,
    long_scopes: AtomicU64,
    stacks: AtomicU64,
    stacks_read_blocked: AtomicU64,
    cpu_samples: AtomicU64,
    fail_signal: AtomicU64,
    fail_timeout: AtomicU64,
    fail_outside: AtomicU64,
    fail_no_area: AtomicU64,
    fail_unwind: AtomicU64,
    stacks_limited: AtomicU64,
    proc_failures: AtomicU64,
}

/// The OS view's process-wide state.
#[derive(Debug, Default)]
struct OsState {
    config: Mutex<Option<OsConfig>>,
    config_gen: AtomicU64,
    /// A [`super::cpu_profile`] rate overriding the configuration's; 0: none.
    profile_hz: AtomicU32,
    sampler: OnceLock<Thread>,
    registry: Mutex<Vec<Registered>>,
    registry_gen: AtomicU64,
    running: AtomicBool,
    cells: Cells,
    /// Why stacks are unavailable, if they are.
    unavailable: Mutex<Option<String>>,
}

static STATE: OnceLock<OsState> = OnceLock::new();

fn state() -> &'static OsState {
    STATE.get_or_init(OsState::default)
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Whether the sampler is running (configured and recording): threads record their own
/// samples at parks only then.
#[cfg(feature = "tokio")]
pub(crate) fn active() -> bool {
    STATE
        .get()
        .is_some_and(|s| s.running.load(Ordering::Relaxed))
}

/// A thread registered (its registration's cold path): remember it, with its stack bounds.
pub(crate) fn on_thread_start(shared: &Arc<ThreadShared>, tid: u64) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let bounds = super::signal::current_stack();
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let bounds = None;
    let s = state();
    lock(&s.registry).push(Registered {
        shared: shared.clone(),
        tid,
        bounds,
    });
    s.registry_gen.fetch_add(1, Ordering::Release);
}

/// A registered thread exits.
pub(crate) fn on_thread_exit(id: u32) {
    let s = state();
    lock(&s.registry).retain(|r| r.shared.id != id);
    s.registry_gen.fetch_add(1, Ordering::Release);
}

/// The stack bounds of recorded thread `tid`: `None` if it is not registered, `Some(None)`
/// if they are unknown.
pub(crate) fn bounds_of(tid: u64) -> Option<Option<(u64, u64)>> {
    lock(&state().registry)
        .iter()
        .find(|r| r.tid == tid)
        .map(|r| r.bounds)
}

/// Applies the OS view's configuration, starting the sampler the first time one is given.
pub(crate) fn configure(cfg: Option<OsConfig>) -> Result<(), crate::Error> {
    if let Some(c) = &cfg {
        c.validate()
            .map_err(|why| crate::Error::Config(crate::ConfigError::Os(why)))?;
    }
    let s = state();
    *lock(&s.config) = cfg;
    s.config_gen.fetch_add(1, Ordering::Release);
    if cfg.is_some() && s.sampler.get().is_none() {
        let handle = std::thread::Builder::new()
            .name("fdr-sampler".into())
            .spawn(|| {
                crate::cost::register_thread(crate::cost::Role::Sampler);
                run()
            })
            .map_err(crate::Error::Spawn)?;
        let _ = s.sampler.set(handle.thread().clone());
    }
    if let Some(t) = s.sampler.get() {
        t.unpark();
    }
    Ok(())
}

/// [`super::cpu_profile`]: sets the override rate, one at a time.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn profile_override(hz: u32) -> Result<(), super::OsError> {
    let s = state();
    match *lock(&s.config) {
        Some(c) if c.stacks => {}
        _ => return Err(super::OsError::NotConfigured),
    }
    if let Some(why) = lock(&s.unavailable).clone() {
        return Err(super::OsError::Unavailable(why));
    }
    s.profile_hz
        .compare_exchange(0, hz, Ordering::AcqRel, Ordering::Acquire)
        .map_err(|_| super::OsError::Invalid("CPU profiling is already running".into()))?;
    if let Some(t) = s.sampler.get() {
        t.unpark();
    }
    Ok(())
}

/// The [`super::CpuProfile`] guard dropped.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn profile_clear() {
    let s = state();
    s.profile_hz.store(0, Ordering::Release);
    if let Some(t) = s.sampler.get() {
        t.unpark();
    }
}

/// [`super::stats`].
pub(crate) fn stats() -> OsStats {
    let s = state();
    let c = &s.cells;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let (stray, dropped) = (l(&super::signal::STRAY), l(&super::signal::BUSY));
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let (stray, dropped) = (0, 0);
    OsStats {
        running: s.running.load(Ordering::Relaxed),
        scans: l(&c.scans),
        os_samples: l(&c.os_samples),
        long_scopes: l(&c.long_scopes),
        stacks: l(&c.stacks),
        stacks_read_blocked: l(&c.stacks_read_blocked),
        cpu_samples: l(&c.cpu_samples),
        stack_failures: StackFailures {
            signal: l(&c.fail_signal),
            timeout: l(&c.fail_timeout),
            outside_stack: l(&c.fail_outside),
            no_area: l(&c.fail_no_area),
            unwind: l(&c.fail_unwind),
        },
        stacks_limited: l(&c.stacks_limited),
        cpu_samples_dropped: dropped,
        stray_signals: stray,
        proc_failures: l(&c.proc_failures),
        stacks_unavailable: lock(&s.unavailable).clone(),
    }
}

/// What the sampler last saw of a thread: its current chunk and that chunk's committed
/// word (length, events, scope depth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Obs {
    chunk: usize,
    word: u64,
}

/// Reads a thread's published state: its current chunk, then the chunk's committed word,
/// then the chunk again (a chunk that moved on meanwhile gives no reading). Chunks are
/// never freed, so a stale chunk is still readable memory; only its word's meaning is stale.
fn observe(t: &ThreadShared) -> Option<Obs> {
    let slot = t.handoff.slot();
    let c = slot.peek()?;
    let word = c.get().committed_word();
    (slot.peek() == Some(c)).then_some(Obs {
        chunk: c.addr(),
        word,
    })
}

/// A long scope the sampler is watching.
#[derive(Debug, Clone, Copy)]
struct Long {
    obs: Obs,
    /// Ticks of the first look that saw the scope silent.
    since: u64,
    /// Ticks at which the sampler looks for its end next.
    next_look: u64,
    stacks: u32,
    /// Ticks at which the next stack is due.
    next_stack: u64,
}

/// A watched thread.
#[derive(Debug)]
struct Watched {
    reg: Registered,
    files: TaskFiles,
    obs: Option<Obs>,
    /// Ticks of the first scan that saw `obs`.
    seen: u64,
    long: Option<Long>,
}

/// Stacks allowed per second, process-wide: a token bucket in ticks.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: u64,
}

impl Bucket {
    fn take(&mut self, now: u64, per_sec: u32, ticks_per_sec: f64) -> bool {
        let cap = f64::from(per_sec.max(1));
        let elapsed = now.saturating_sub(self.last) as f64 / ticks_per_sec;
        self.tokens = (self.tokens + elapsed * f64::from(per_sec)).min(cap);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The sampler's own state, on its thread.
struct Sampler {
    cfg: Option<OsConfig>,
    cfg_gen: u64,
    self_tid: u64,
    threads: Vec<Watched>,
    registry_gen: u64,
    /// Ticks of the next scan.
    next_scan: u64,
    /// Ticks of the look that confirms a silence a scan saw begin, if one is due.
    confirm_at: Option<u64>,
    /// Ticks until which scans come [`HOT_SCAN_DIVISOR`] times as often.
    hot_until: u64,
    next_periodic: u64,
    /// The CPU profiling rate the timers run at.
    timer_hz: u32,
    bucket: Bucket,
    ticks_per_sec: f64,
    stacks_ok: bool,
    enc: Vec<u8>,
    /// The CPU profiling rate last recorded into the trace (0: off).
    recorded_hz: u32,
}

fn ticks(d: Duration, ticks_per_sec: f64) -> u64 {
    (d.as_secs_f64() * ticks_per_sec) as u64
}

fn current_tid() -> u64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// The sampler thread's body.
fn run() {
    let s = state();
    let mut sm = Sampler {
        cfg: None,
        cfg_gen: u64::MAX,
        self_tid: current_tid(),
        threads: Vec::new(),
        registry_gen: u64::MAX,
        next_scan: 0,
        confirm_at: None,
        hot_until: 0,
        next_periodic: 0,
        timer_hz: 0,
        bucket: Bucket {
            tokens: 0.0,
            last: 0,
        },
        ticks_per_sec: crate::clock::calibrate().ticks_per_sec,
        stacks_ok: false,
        enc: Vec::new(),
        recorded_hz: 0,
    };
    loop {
        let sleep = sm.sleep();
        std::thread::park_timeout(sleep);
        sm.reload();
        let active = sm.cfg.is_some() && crate::enabled();
        s.running.store(active, Ordering::Relaxed);
        if active {
            sm.look();
        } else {
            sm.pause();
        }
    }
}

impl Sampler {
    /// How long to sleep before the next look: until the earliest of the next scan, a due
    /// confirmation, a long scope's next look or stack, and (while profiling) the next take of
    /// the CPU-timer copies.
    fn sleep(&self) -> Duration {
        let Some(c) = &self.cfg else {
            return IDLE_SLEEP;
        };
        if !crate::enabled() {
            return IDLE_SLEEP;
        }
        let mut due = self.next_scan;
        if let Some(t) = self.confirm_at {
            due = due.min(t);
        }
        for w in &self.threads {
            if let Some(l) = &w.long {
                due = due.min(l.next_look);
                if c.stacks && self.stacks_ok && l.stacks < c.stacks_per_scope {
                    due = due.min(l.next_stack);
                }
            }
        }
        let now = crate::clock::now_ticks();
        let mut sleep =
            Duration::from_secs_f64(due.saturating_sub(now) as f64 / self.ticks_per_sec)
                .min(c.scan_interval);
        let hz = self.profile_hz();
        if hz > 0 {
            // Take each thread's CPU-timer copy before its next one is due.
            sleep = sleep.min(Duration::from_secs_f64(0.5 / f64::from(hz)));
        }
        sleep
    }

    fn profile_hz(&self) -> u32 {
        match state().profile_hz.load(Ordering::Acquire) {
            0 => self.cfg.map_or(0, |c| c.cpu_profile_hz),
            hz => hz,
        }
    }

    /// Picks up a new configuration.
    fn reload(&mut self) {
        let s = state();
        let generation = s.config_gen.load(Ordering::Acquire);
        if generation == self.cfg_gen {
            return;
        }
        self.cfg_gen = generation;
        self.cfg = *lock(&s.config);
        self.stacks_ok = false;
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(c) = &self.cfg
            && c.stacks
        {
            match super::capture::setup(c) {
                Ok(()) => {
                    self.stacks_ok = true;
                    *lock(&s.unavailable) = None;
                }
                Err(why) => *lock(&s.unavailable) = Some(why),
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        if self.cfg.is_some_and(|c| c.stacks) {
            *lock(&s.unavailable) = Some("no stack capture on this CPU architecture".into());
        }
    }

    /// Recording is off or the view unconfigured: stop timers, forget long scopes.
    fn pause(&mut self) {
        self.set_profiling(0);
        self.confirm_at = None;
        self.next_scan = 0;
        self.recorded_hz = 0;
        for w in &mut self.threads {
            w.long = None;
            w.obs = None;
        }
    }

    /// Rebuilds the watched list if threads came or went.
    fn refresh(&mut self) {
        let s = state();
        let generation = s.registry_gen.load(Ordering::Acquire);
        if generation == self.registry_gen {
            return;
        }
        self.registry_gen = generation;
        let regs: Vec<Registered> = lock(&s.registry)
            .iter()
            .filter(|r| r.tid != self.self_tid)
            .cloned()
            .collect();
        let mut old = std::mem::take(&mut self.threads);
        for r in regs {
            match old.iter().position(|w| w.reg.shared.id == r.shared.id) {
                Some(i) => self.threads.push(old.swap_remove(i)),
                None => {
                    let keep_open = self.threads.len() < MAX_OPEN_THREADS;
                    self.threads.push(Watched {
                        files: TaskFiles::new(r.tid, keep_open),
                        reg: r,
                        obs: None,
                        seen: 0,
                        long: None,
                    });
                }
            }
        }
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if !old.is_empty()
            && let Ok(cap) = &mut *lock(&super::capture::CAPTURER)
        {
            for w in &old {
                cap.release(w.reg.tid);
            }
        }
    }

    /// One look at every watched thread. Every look reads each thread's published word; a
    /// scan (every `scan_interval`) also records the periodic samples when due, and asks
    /// for a confirming look `long_scope_threshold` after it for every thread it saw inside
    /// a scope whose silence is not that old yet. A thread inside a scope whose word has not
    /// changed for the threshold is in a long scope; the sampler then looks for its end
    /// often (see [`FOLLOW_AGE_SHARE`]), and captures its stacks when due.
    fn look(&mut self) {
        let Some(cfg) = self.cfg else { return };
        bump(&state().cells.scans);
        self.refresh();
        let now = crate::clock::now_ticks();
        let tps = self.ticks_per_sec;
        let threshold = ticks(cfg.long_scope_threshold, tps);
        let every = ticks(cfg.stack_every, tps).max(1);
        let interval = ticks(cfg.scan_interval, tps).max(1);
        let follow_min = ticks(FOLLOW_MIN, tps).max(1);
        let scan = now >= self.next_scan;
        if self.confirm_at.is_some_and(|t| now >= t) {
            self.confirm_at = None;
        }
        let mut confirm: Option<u64> = None;
        for i in 0..self.threads.len() {
            let w = &mut self.threads[i];
            // The thread's counters if this look read them for a long scope's first sample:
            // its first stack, taken right after, starts from them instead of reading them
            // again.
            let mut counters: Option<SchedStat> = None;
            let obs = observe(&w.reg.shared);
            if obs != w.obs {
                w.obs = obs;
                w.seen = now;
            }
            if let Some(l) = w.long
                && Some(l.obs) != obs
            {
                w.long = None;
                sample(w, SampleCause::ScopeEnd, true);
            }
            let in_scope = obs.is_some_and(|o| committed_depth(o.word) > 0);
            if threshold > 0
                && w.long.is_none()
                && in_scope
                && let Some(o) = obs
            {
                let silent = now.saturating_sub(w.seen);
                if silent >= threshold {
                    self.hot_until = now + ticks(HOT_FOR, tps);
                    bump(&state().cells.long_scopes);
                    counters = sample(w, SampleCause::LongScope, true);
                    w.long = Some(Long {
                        obs: o,
                        since: w.seen,
                        next_look: now,
                        stacks: 0,
                        next_stack: now,
                    });
                } else if scan {
                    let at = w.seen + threshold;
                    confirm = Some(confirm.map_or(at, |c| c.min(at)));
                }
            }
            if let Some(l) = &mut w.long {
                let age = now.saturating_sub(l.since);
                l.next_look = now + (age / FOLLOW_AGE_SHARE).clamp(follow_min, interval);
            }
            let due = match &w.long {
                Some(l) => cfg.stacks && l.stacks < cfg.stacks_per_scope && now >= l.next_stack,
                None => false,
            };
            if due && self.stacks_ok {
                let granted = self.bucket.take(now, cfg.stacks_per_sec, tps);
                if let Some(l) = &mut self.threads[i].long {
                    l.stacks += 1;
                    l.next_stack = now + every;
                }
                if granted {
                    self.capture_long(i, counters);
                } else {
                    bump(&state().cells.stacks_limited);
                }
            }
        }
        if let Some(at) = confirm {
            self.confirm_at = Some(self.confirm_at.map_or(at, |c| c.min(at)));
        }
        if scan {
            let hot = now < self.hot_until;
            self.next_scan = now
                + if hot {
                    (interval / HOT_SCAN_DIVISOR).max(1)
                } else {
                    interval
                };
        }
        let hz = self.profile_hz();
        if hz > 0 || self.timer_hz > 0 {
            self.drain_cpu_samples();
        }
        let periodic = scan && !cfg.periodic_interval.is_zero() && now >= self.next_periodic;
        if periodic {
            self.next_periodic = now + ticks(cfg.periodic_interval, tps);
            for w in &self.threads {
                sample(w, SampleCause::Periodic, false);
            }
        }
        if hz > 0 || self.timer_hz > 0 {
            self.set_profiling(hz);
        }
        self.record_rate(if self.stacks_ok { hz } else { 0 }, periodic);
    }

    /// Records the CPU profiling rate in effect (metric `os_cpu_profile_hz`) when it
    /// changes, and again with every periodic sample while profiling, so that any window of
    /// the trace that holds CPU samples says their rate (a reader weighs each sample as
    /// `1 / rate` seconds of CPU time).
    fn record_rate(&mut self, hz: u32, periodic: bool) {
        if hz == self.recorded_hz && !(periodic && hz > 0) {
            return;
        }
        self.recorded_hz = hz;
        crate::record(&EventKind::Metric {
            name: crate::intern(fdr_format::event::METRIC_CPU_PROFILE_HZ),
            value: f64::from(hz),
        });
    }

    /// Captures watched thread `i`'s stack for its long scope and records it; `counters`:
    /// its `schedstat`, if this look just read it.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn capture_long(&mut self, i: usize, counters: Option<SchedStat>) {
        use super::capture::{CAPTURER, Captured, Failure, How};
        let (id, tid, bounds) = {
            let r = &self.threads[i].reg;
            (r.shared.id, r.tid, r.bounds)
        };
        let mut c = lock(&CAPTURER);
        let Ok(cap) = &mut *c else { return };
        let enc = &mut self.enc;
        let mut on_cpu = |t: u64, s: Captured<'_>| cpu_sample(t, s, enc);
        let how = How {
            counters,
            whole_stack: false,
        };
        let r = cap.capture(tid, bounds, how, &mut on_cpu);
        let cells = &state().cells;
        match r {
            Ok(s) => {
                bump(&cells.stacks);
                if !s.interrupted {
                    bump(&cells.stacks_read_blocked);
                }
                record_stack(
                    id,
                    SampleCause::LongScope,
                    (s.frames, s.truncated, s.at_ticks),
                    &mut self.enc,
                );
            }
            Err(Failure::Signal) => bump(&cells.fail_signal),
            Err(Failure::Timeout) => bump(&cells.fail_timeout),
            Err(Failure::OutsideStack) => bump(&cells.fail_outside),
            Err(Failure::NoArea) => bump(&cells.fail_no_area),
            Err(Failure::Unwind) => bump(&cells.fail_unwind),
            Err(Failure::Unavailable) => {
                let why = "the capture signal's handler was replaced by another; stacks stopped";
                *lock(&state().unavailable) = Some(why.into());
                self.stacks_ok = false;
            }
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn capture_long(&mut self, _i: usize, _counters: Option<SchedStat>) {}

    /// Records the CPU-timer copies waiting in the threads' areas.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn drain_cpu_samples(&mut self) {
        if !self.stacks_ok {
            return;
        }
        let mut c = lock(&super::capture::CAPTURER);
        let Ok(cap) = &mut *c else { return };
        let enc = &mut self.enc;
        cap.drain_cpu_samples(&mut |t, s| cpu_sample(t, s, enc));
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn drain_cpu_samples(&mut self) {}

    /// Keeps CPU-time timers at `hz` on every watched thread (none at 0).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn set_profiling(&mut self, hz: u32) {
        let hz = if self.stacks_ok { hz } else { 0 };
        self.timer_hz = hz;
        let mut c = lock(&super::capture::CAPTURER);
        let Ok(cap) = &mut *c else { return };
        let threads: Vec<(u64, Option<(u64, u64)>)> = if hz == 0 {
            Vec::new()
        } else {
            self.threads
                .iter()
                .map(|w| (w.reg.tid, w.reg.bounds))
                .collect()
        };
        let failed = cap.set_profiling(hz, &threads);
        state()
            .cells
            .fail_no_area
            .fetch_add(failed, Ordering::Relaxed);
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn set_profiling(&mut self, _hz: u32) {
        self.timer_hz = 0;
    }
}

/// Records a CPU-timer copy of thread `tid` as a stack.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn cpu_sample(tid: u64, s: super::capture::Captured<'_>, enc: &mut Vec<u8>) {
    let id = lock(&state().registry)
        .iter()
        .find(|r| r.tid == tid)
        .map(|r| r.shared.id);
    if let Some(id) = id {
        bump(&state().cells.cpu_samples);
        record_stack(
            id,
            SampleCause::CpuTimer,
            (s.frames, s.truncated, s.at_ticks),
            enc,
        );
    }
}

/// Records an OS sample of `w` (its scheduler state too if `with_state`); the counters it
/// read, if it could.
fn sample(w: &Watched, cause: SampleCause, with_state: bool) -> Option<SchedStat> {
    let cells = &state().cells;
    let stat = match w.files.schedstat() {
        Ok(s) => s,
        Err(_) => {
            bump(&cells.proc_failures);
            return None;
        }
    };
    let st = if with_state {
        w.files.state().ok()
    } else {
        None
    };
    crate::record(&EventKind::OsSample {
        thread: ThreadId(w.reg.shared.id),
        cause,
        cpu_ns: Some(stat.cpu_ns),
        runq_ns: Some(stat.runq_ns),
        timeslices: Some(stat.timeslices),
        state: st,
    });
    bump(&cells.os_samples);
    Some(stat)
}

/// Records a stack of thread `id` (frames, truncated, captured at `at_ticks`), with the
/// capture's age: a CPU-timer copy waits in its area up to half a profiling period before
/// the sampler records it, and a reader places the sample at the event's time minus that.
fn record_stack(
    id: u32,
    cause: SampleCause,
    (frames, truncated, at_ticks): (&[u64], bool, u64),
    enc: &mut Vec<u8>,
) {
    let n = StackFrames::encode(frames, enc);
    let Some(frames_enc) = StackFrames::from_encoded(enc, n) else {
        return;
    };
    let kind = EventKind::Stack {
        thread: ThreadId(id),
        cause,
        truncated: truncated || n < frames.len(),
        frames: frames_enc,
        // Read before the event takes its own time, so the age is at most a little short.
        age_ticks: Some(crate::clock::now_ticks().saturating_sub(at_ticks)),
    };
    if crate::enabled() {
        crate::local::with_local(|l| l.large(&kind, fdr_format::wire::MAX_STACK_EVENT_LEN));
    }
}
