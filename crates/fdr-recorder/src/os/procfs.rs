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

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected /proc {what}"),
    )
}

/// `"cpu_ns runq_ns timeslices\n"`.
pub(crate) fn parse_schedstat(b: &[u8]) -> Option<SchedStat> {
    let s = std::str::from_utf8(b).ok()?;
    let mut it = s.split_ascii_whitespace().map(|v| v.parse::<u64>().ok());
    Some(SchedStat {
        cpu_ns: it.next()??,
        runq_ns: it.next()??,
        timeslices: it.next()??,
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
        assert_eq!(parse_state(b"42 (a b) c) S 1 2 3"), Some(b'S'));
        assert_eq!(parse_state(b"42 (x) R 1"), Some(b'R'));
        assert_eq!(parse_state(b"42 (x"), None);
    }

    #[test]
    fn reads_this_threads_counters() {
        let tid = std::fs::read_link("/proc/thread-self")
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
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
