//! Shorthands for the events tests build traces from by hand with [`TraceBuilder`]: a root
//! task's creation, a poll, an OS sample, a captured stack, and the mapping of this test
//! binary a stack address resolves through.

use fdr_format::{EventKind, Module, SampleCause, SiteId, StackFrames, StrId, TaskId, ThreadId};

use crate::scenarios::TraceBuilder;

impl TraceBuilder {
    /// Task `task`, named `name` and created at `site` with no parent, at `ns` on `thread`.
    pub fn task(&mut self, thread: ThreadId, ns: u64, task: TaskId, name: StrId, site: SiteId) {
        self.push(
            thread,
            ns,
            EventKind::TaskCreate {
                task,
                parent: TaskId::NONE,
                name,
                site,
            },
        );
    }

    /// One poll of `task` on `thread`, from `start_ns` to `end_ns`, that returns `Ready`
    /// when `ready`.
    pub fn poll(
        &mut self,
        thread: ThreadId,
        start_ns: u64,
        end_ns: u64,
        task: TaskId,
        ready: bool,
    ) {
        self.push(thread, start_ns, EventKind::PollStart { task });
        self.push(thread, end_ns, EventKind::PollEnd { task, ready });
    }

    /// A stack of `thread` captured for `cause` and recorded at `ns` on `sampler`, `addrs`
    /// innermost first, `age_ns` after it was captured (`None`: when it was recorded).
    pub fn stack(
        &mut self,
        sampler: ThreadId,
        ns: u64,
        thread: ThreadId,
        cause: SampleCause,
        addrs: &[u64],
        age_ns: Option<u64>,
    ) {
        self.push(
            sampler,
            ns,
            EventKind::Stack {
                thread,
                cause,
                truncated: false,
                frames: stack_frames(addrs),
                age_ticks: age_ns,
            },
        );
    }
}

/// An OS sample of `thread`, one timeslice run, with its CPU and run-queue times so far and
/// its scheduler state (`b'R'`, `b'S'`, ...).
pub fn os_sample(
    thread: ThreadId,
    cause: SampleCause,
    cpu_ns: u64,
    runq_ns: u64,
    state: u8,
) -> EventKind<'static> {
    EventKind::OsSample {
        thread,
        cause,
        cpu_ns: Some(cpu_ns),
        runq_ns: Some(runq_ns),
        timeslices: Some(1),
        state: Some(state),
    }
}

/// `addrs` (innermost first, at most `MAX_STACK_FRAMES`) as a trace's stack frames. The
/// encoded bytes are leaked: events pushed to a builder live as long as the test.
pub fn stack_frames(addrs: &[u64]) -> StackFrames<'static> {
    let mut bytes = Vec::new();
    let count = StackFrames::encode(addrs, &mut bytes);
    StackFrames::from_encoded(Box::leak(bytes.into_boxed_slice()), count)
        .expect("StackFrames::encode writes well-formed frames")
}

/// The mapping of this process that holds `addr`, from `/proc/self/maps` (Linux), as a
/// module record: a stack address of a function of the test resolves through it.
///
/// # Panics
/// When `/proc/self/maps` cannot be read or no mapping with a path holds `addr`.
pub fn module_of(addr: u64) -> Module {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("reading /proc/self/maps");
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((s, e)) = f.first().and_then(|range| range.split_once('-')) else {
            continue;
        };
        let start = u64::from_str_radix(s, 16).expect("a mapping's start in hex");
        let end = u64::from_str_radix(e, 16).expect("a mapping's end in hex");
        if (start..end).contains(&addr) && f.len() >= 6 {
            return Module {
                start,
                end,
                file_offset: u64::from_str_radix(f[2], 16).expect("a mapping's offset in hex"),
                path: f[5].to_string(),
                build_id: Vec::new(),
            };
        }
    }
    panic!("no mapping holds {addr:#x}");
}
