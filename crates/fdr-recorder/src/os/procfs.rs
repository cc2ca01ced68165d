//! The kernel's per-thread counters from `/proc/self/task/TID`: `schedstat` (on-CPU ns,
//! run-queue wait ns, timeslices) and `stat` (scheduler state). Files are kept open and read
//! with `pread` (one system call per read); a read of an exited thread fails (`ESRCH`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A thread's counters, cumulative since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SchedStat {
    /// Time on a CPU, ns.
    pub(crate) cpu_ns: u64,
    /// Time runnable, waiting for a CPU, ns.
    pub(crate) runq_ns: u64,
    /// Timeslices run.
    pub(crate) timeslices: u64,
}

/// A thread's open `/proc` files.
#[derive(Debug)]
pub(crate) struct TaskFiles {
    tid: u64,
    schedstat: Option<File>,
    stat: Option<File>,
}

impl TaskFiles {
    /// Files of thread `tid`, opened now if `keep_open` (else at each read).
    pub(crate) fn new(tid: u64, keep_open: bool) -> TaskFiles {
        let mut t = TaskFiles {
            tid,
            schedstat: None,
            stat: None,
        };
        if keep_open {
            t.schedstat = File::open(t.path("schedstat")).ok();
            t.stat = File::open(t.path("stat")).ok();
        }
        t
    }

    fn path(&self, file: &str) -> String {
        format!("/proc/self/task/{}/{file}", self.tid)
    }

    fn read(
        kept: &Option<File>,
        path: impl FnOnce() -> String,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        match kept {
            Some(f) => f.read_at(buf, 0),
            None => File::open(path())?.read_at(buf, 0),
        }
    }

    /// The thread's `schedstat`.
    pub(crate) fn schedstat(&self) -> io::Result<SchedStat> {
        let mut buf = [0u8; 96];
        let n = Self::read(&self.schedstat, || self.path("schedstat"), &mut buf)?;
        parse_schedstat(&buf[..n]).ok_or_else(|| bad("schedstat"))
    }

    /// The thread's scheduler state (`stat` field 3: `R`, `S`, `D`, ...).
    pub(crate) fn state(&self) -> io::Result<u8> {
        // The name field is at most 16 bytes (in parentheses), the state follows it.
        let mut buf = [0u8; 64];
        let n = Self::read(&self.stat, || self.path("stat"), &mut buf)?;
        parse_state(&buf[..n]).ok_or_else(|| bad("stat"))
    }
}

/// A blocked thread's user registers as the kernel saved them when it entered the kernel
/// (`/proc/self/task/TID/syscall`): the stack pointer and the instruction after the system
/// call (or the faulting one).
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(
        dead_code,
        reason = "stacks of blocked threads are read this way on x86_64 only"
    )
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SavedRegs {
    pub(crate) sp: u64,
    pub(crate) pc: u64,
}

/// A thread's `/proc` files for reading its stack while it is blocked in the kernel: its
/// `schedstat` (whether it ran meanwhile) and its `syscall` (its saved registers). Kept open,
/// read with `pread`.
#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
pub(crate) struct BlockedFiles {
    schedstat: File,
    syscall: File,
    /// The last read of this thread's stack while it was blocked.
    pub(crate) last: Option<LastRead>,
    /// Where the copy of this thread's stack may end: the end of the highest bytes the last
    /// unwind that reached the root read. A thread's outer frames (its start, the runtime's
    /// loop) stay where they are, so the next unwind reads no higher; the bytes above them
    /// (the C library's thread descriptor and thread-local storage, which the stack bounds
    /// include) are not copied. `None`: copy up to the stack's top.
    pub(crate) window_top: Option<u64>,
}

/// A blocked thread's stack as a read found it, and its counters then: while they stay
/// equal, the thread has not been scheduled in, and its stack is the same.
#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
pub(crate) struct LastRead {
    pub(crate) counters: SchedStat,
    pub(crate) frames: Vec<u64>,
    pub(crate) truncated: bool,
}

#[cfg(target_arch = "x86_64")]
impl BlockedFiles {
    /// Opens thread `tid`'s files.
    pub(crate) fn open(tid: u64) -> io::Result<BlockedFiles> {
        Ok(BlockedFiles {
            schedstat: File::open(format!("/proc/self/task/{tid}/schedstat"))?,
            syscall: File::open(format!("/proc/self/task/{tid}/syscall"))?,
            last: None,
            window_top: None,
        })
    }

    /// The thread's `schedstat`.
    pub(crate) fn schedstat(&self) -> io::Result<SchedStat> {
        let mut buf = [0u8; 96];
        let n = self.schedstat.read_at(&mut buf, 0)?;
        parse_schedstat(&buf[..n]).ok_or_else(|| bad("schedstat"))
    }

    /// The thread's saved registers if it is blocked in the kernel (the kernel waits until
    /// it is off its CPU before it reads them); `None` if it is running or runnable.
    pub(crate) fn saved_regs(&self) -> io::Result<Option<SavedRegs>> {
        let mut buf = [0u8; 256];
        let n = self.syscall.read_at(&mut buf, 0)?;
        parse_syscall(&buf[..n]).ok_or_else(|| bad("syscall"))
    }
}

/// `/proc/PID/task/TID/syscall`: `running`, or `NR [ARG x6] SP PC` (the arguments only when
/// `NR` is not -1), numbers after the first in hex with `0x`.
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(
        dead_code,
        reason = "stacks of blocked threads are read this way on x86_64 only"
    )
)]
pub(crate) fn parse_syscall(b: &[u8]) -> Option<Option<SavedRegs>> {
    let s = std::str::from_utf8(b).ok()?.trim_end();
    if s == "running" {
        return Some(None);
    }
    // No allocation: the capture reads this file for every stack of a blocked thread.
    let mut fields = s.split_ascii_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    let expected = if nr < 0 { 3 } else { 9 };
    // The last two fields, and how many there were.
    let (mut n, mut last) = (1, [""; 2]);
    for f in fields {
        n += 1;
        last = [last[1], f];
    }
    if n != expected {
        return None;
    }
    let hex = |f: &str| u64::from_str_radix(f.strip_prefix("0x")?, 16).ok();
    Some(Some(SavedRegs {
        sp: hex(last[0])?,
        pc: hex(last[1])?,
    }))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected /proc {what}"),
    )
}

/// `"cpu_ns runq_ns timeslices\n"`.
pub(crate) fn parse_schedstat(b: &[u8]) -> Option<SchedStat> {
    // By hand: read twice for every stack of a blocked thread.
    let mut fields = b
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .map(parse_decimal);
    Some(SchedStat {
        cpu_ns: fields.next()??,
        runq_ns: fields.next()??,
        timeslices: fields.next()??,
    })
}

/// A decimal `u64` (digits only, no sign); `None` if empty, not digits, or past `u64`.
fn parse_decimal(f: &[u8]) -> Option<u64> {
    if f.is_empty() {
        return None;
    }
    f.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// The state byte after the name's closing parenthesis (the name may hold spaces and
/// parentheses, so the last `)` of the first 64 bytes, which hold the whole name, counts).
pub(crate) fn parse_state(b: &[u8]) -> Option<u8> {
    let close = b.iter().rposition(|&c| c == b')')?;
    let state = *b.get(close + 2)?;
    state.is_ascii_alphabetic().then_some(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schedstat_and_state() {
        assert_eq!(
            parse_schedstat(b"123 45 6\n"),
            Some(SchedStat {
                cpu_ns: 123,
                runq_ns: 45,
                timeslices: 6
            })
        );
        assert_eq!(parse_schedstat(b"123 45\n"), None);
        assert_eq!(parse_schedstat(b"123 -45 6\n"), None);
        assert_eq!(parse_schedstat(b"123 45 99999999999999999999\n"), None);
        assert_eq!(
            parse_schedstat(b"18446744073709551615 0 1"),
            Some(SchedStat {
                cpu_ns: u64::MAX,
                runq_ns: 0,
                timeslices: 1
            })
        );
        assert_eq!(parse_state(b"42 (a b) c) S 1 2 3"), Some(b'S'));
        assert_eq!(parse_state(b"42 (x) R 1"), Some(b'R'));
        assert_eq!(parse_state(b"42 (x"), None);
    }

    #[test]
    fn parses_the_syscall_file() {
        assert_eq!(parse_syscall(b"running\n"), Some(None));
        let blocked = b"230 0x1 0x0 0x7fc5d8710d78 0x7fc5d8710d78 0x0 0x558ec1c9cae0 \
                        0x7fc5d8710d40 0x7fc5d87e4545\n";
        assert_eq!(
            parse_syscall(blocked),
            Some(Some(SavedRegs {
                sp: 0x7fc5_d871_0d40,
                pc: 0x7fc5_d87e_4545
            }))
        );
        assert_eq!(
            parse_syscall(b"-1 0x7ffd10 0x55aa\n"),
            Some(Some(SavedRegs {
                sp: 0x7f_fd10,
                pc: 0x55aa
            }))
        );
        assert_eq!(parse_syscall(b"230 0x1 0x2\n"), None, "arguments missing");
        assert_eq!(parse_syscall(b"-1 0x10\n"), None);
        assert_eq!(parse_syscall(b"x 0x1 0x2\n"), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_sleeping_thread_is_blocked_and_its_counters_stay() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            let _ = stop_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let files = BlockedFiles::open(tid).unwrap();
        // It blocks in `recv` (a futex wait) soon; give it a few chances on a slow host.
        let regs = (0..200)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(5));
                files.saved_regs().unwrap()
            })
            .expect("the waiting thread is seen blocked");
        let local = 0u8;
        let here = &local as *const u8 as u64;
        assert!(regs.sp != 0 && regs.pc != 0, "{regs:?}");
        assert!(
            regs.sp.abs_diff(here) > 4096,
            "its stack is not this thread's"
        );
        let a = files.schedstat().unwrap();
        assert_eq!(
            files.schedstat().unwrap(),
            a,
            "a blocked thread's counters stay"
        );
        drop(stop_tx);
        t.join().unwrap();
    }

    fn gettid() -> u64 {
        std::fs::read_link("/proc/thread-self")
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn reads_this_threads_counters() {
        let tid = gettid();
        for keep in [true, false] {
            let t = TaskFiles::new(tid, keep);
            let a = t.schedstat().unwrap();
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed() < std::time::Duration::from_millis(20) {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            std::hint::black_box(x);
            let b = t.schedstat().unwrap();
            assert!(b.cpu_ns > a.cpu_ns, "{a:?} then {b:?}");
            assert_eq!(
                t.state().unwrap(),
                b'R',
                "a thread reading its own state runs"
            );
        }
    }
}
