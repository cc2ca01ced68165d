//! Decoding helpers shared by the recorder's integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a test helper module")]

use std::collections::BTreeMap;

use fdr_format::{BlockReason, EventKind, LossReason, Message, Tables};

/// Starts the global recorder with the flight recorder the decoding tests read: 8 MiB,
/// nothing aged out for a minute.
pub fn start_flight() {
    fdr_recorder::start(fdr_recorder::Config {
        flight: Some(fdr_recorder::FlightConfig {
            min_age: std::time::Duration::from_secs(60),
            max_bytes: 8 << 20,
        }),
        ..fdr_recorder::Config::default()
    })
    .map(drop)
    .unwrap()
}

/// One decoded event, owned, with ids resolved to names and `file:line` sites.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Begin(String),
    End(String),
    Log(String, String),
    TaskBegin(u64, u64, String),
    TaskEnd(u64),
    Create {
        task: u64,
        parent: u64,
        name: String,
        site: String,
    },
    PollStart(u64),
    PollEnd(u64, bool),
    Wake {
        task: u64,
        waker: u64,
    },
    Drop(u64),
    BlockBegin(BlockReason, String),
    BlockEnd,
    Park,
    Unpark,
    ThreadStart,
    ThreadEnd,
    Other(&'static str),
}

/// `kind` as an owned [`Ev`]; `None` for loss records, which the decoders keep apart.
pub fn owned(kind: EventKind<'_>, tables: &Tables) -> Option<Ev> {
    let name = |id| tables.name(id).into_owned();
    let site = |id| {
        tables
            .site(id)
            .map(|s| format!("{}:{}", s.file, s.line))
            .unwrap_or_default()
    };
    Some(match kind {
        EventKind::RegionBegin { name: n } => Ev::Begin(name(n)),
        EventKind::RegionEnd { name: n } => Ev::End(name(n)),
        EventKind::Log { category, message } => {
            let m = match message {
                Message::Interned(id) => name(id),
                Message::Inline(t) => String::from_utf8_lossy(t).into_owned(),
            };
            Ev::Log(name(category), m)
        }
        EventKind::UserTaskBegin {
            task,
            parent,
            name: n,
        } => Ev::TaskBegin(task.0, parent.0, name(n)),
        EventKind::UserTaskEnd { task } => Ev::TaskEnd(task.0),
        EventKind::TaskCreate {
            task,
            parent,
            name: n,
            site: s,
        } => Ev::Create {
            task: task.0,
            parent: parent.0,
            name: name(n),
            site: site(s),
        },
        EventKind::PollStart { task } => Ev::PollStart(task.0),
        EventKind::PollEnd { task, ready } => Ev::PollEnd(task.0, ready),
        EventKind::Wake { task, waker } => Ev::Wake {
            task: task.0,
            waker: waker.0,
        },
        EventKind::TaskDrop { task } => Ev::Drop(task.0),
        EventKind::BlockBegin { reason, site: s } => Ev::BlockBegin(reason, site(s)),
        EventKind::BlockEnd => Ev::BlockEnd,
        EventKind::Park => Ev::Park,
        EventKind::Unpark => Ev::Unpark,
        EventKind::ThreadStart => Ev::ThreadStart,
        EventKind::ThreadEnd => Ev::ThreadEnd,
        EventKind::Loss { .. } => return None,
        k => Ev::Other(k.name()),
    })
}

/// A decoded trace: events per thread in order, losses, thread names.
#[derive(Debug, Default)]
pub struct Decoded {
    pub threads: BTreeMap<u32, Vec<(u64, Ev)>>,
    pub names: BTreeMap<u32, String>,
    pub losses: Vec<(u32, LossReason, u64)>,
    pub batches: usize,
}

impl Decoded {
    pub fn lost_events(&self) -> u64 {
        self.losses.iter().map(|l| l.2).sum()
    }

    /// Events the trace's loss records give `reason`.
    pub fn lost_for(&self, reason: LossReason) -> u64 {
        self.losses
            .iter()
            .filter(|l| l.1 == reason)
            .map(|l| l.2)
            .sum()
    }

    pub fn events(&self) -> usize {
        self.threads.values().map(Vec::len).sum()
    }

    pub fn thread_named(&self, name: &str) -> Option<&Vec<(u64, Ev)>> {
        let id = self.names.iter().find(|(_, n)| *n == name)?.0;
        self.threads.get(id)
    }
}

/// Decodes a whole trace, panicking with the decoder's message on any damage.
pub fn decode(bytes: &[u8]) -> Decoded {
    let trace = fdr_test_support::trace::decode(bytes);
    let mut out = Decoded {
        batches: trace.batches,
        ..Decoded::default()
    };
    let mut last = None;
    for r in &trace.events {
        let (thread, e) = (r.thread.0, r.event);
        if let Some((batch, ts)) = last {
            assert!(
                batch != (thread, r.seq) || e.ts >= ts,
                "timestamps decrease within a batch"
            );
        }
        last = Some(((thread, r.seq), e.ts));
        if let EventKind::Loss { reason, events, .. } = e.kind {
            out.losses.push((thread, reason, events));
        }
        let Some(ev) = owned(e.kind, &trace.tables) else {
            continue;
        };
        out.threads.entry(thread).or_default().push((e.ts, ev));
    }
    for (id, info) in trace.tables.threads() {
        out.names.insert(id.0, info.name.clone());
    }
    out
}

/// The OS thread id of the calling thread.
#[cfg(target_os = "linux")]
pub fn gettid() -> u64 {
    rustix::thread::gettid().as_raw_nonzero().get() as u64
}

/// Waits (bounded: 20 s, far more than any scheduler delay) until thread `tid` of this
/// process sleeps (state `S` in `/proc/self/task/TID/stat`); the caller then asserts on what
/// the sleep implies. Returns whether it was seen asleep.
#[cfg(target_os = "linux")]
pub fn wait_until_asleep(tid: u64) -> bool {
    use std::time::{Duration, Instant};
    let asleep = || {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
            .ok()
            .and_then(|s| Some(s[s.rfind(')')? + 2..].starts_with('S')))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !asleep() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Records empty regions named `name` until `stop` is set, paced so that the process's
/// recorded bytes (`stats().bytes`, every thread's) grow by at most `bytes_per_sec` from
/// when it began; returns the events it recorded. A steady, known rate: a collector kept
/// off the CPU for a while finds at most that rate's worth of chunks drawn from the pool,
/// however fast the host records.
pub fn record_paced(
    name: &'static str,
    stop: &std::sync::atomic::AtomicBool,
    bytes_per_sec: u64,
) -> u64 {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let (start, start_bytes) = (Instant::now(), fdr_recorder::stats().bytes);
    let mut events = 0;
    while !stop.load(Ordering::Relaxed) {
        let allowed = start_bytes as f64 + start.elapsed().as_secs_f64() * bytes_per_sec as f64;
        if fdr_recorder::stats().bytes as f64 >= allowed {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for _ in 0..100 {
            fdr_recorder::with_region(name, || ());
        }
        events += 200;
    }
    events
}
