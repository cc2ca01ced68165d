//! The OS view in the export: thread states from the OS samples and callstack samples
//! from the stacks (Linux recorders with the OS view on).
//!
//! - **Thread states.** Two OS samples of one thread bound an interval in which the
//!   deltas of its counters are its time on a CPU and its wait for one; the rest of the
//!   interval it was off-CPU. Each interval becomes a slice on the thread's `OS state`
//!   child track, named by where most of its time went: `running`, `runnable` (waiting for
//!   a CPU), `sleeping`, or `blocked` (off-CPU with the closing sample in `D`, an
//!   uninterruptible wait), with the three parts in ns and the closing sample's scheduler
//!   state as arguments. The order of the parts inside an interval is not known, so an
//!   interval is one slice, not three. A slice is written when its closing sample arrives,
//!   so its begin is up to one sampling interval (100 ms by default, less around long
//!   scopes) behind the packets before it; Perfetto sorts a trace file by time.
//! - **Callstack samples.** Every stack (long scopes, CPU timers) is a `PerfSample` of its
//!   thread with an interned callstack: frames (one per source frame, inlined ones too)
//!   with their function, file and line when the module's binary is found (see
//!   [`PerfettoExport::with_binaries`]), and the module's mapping (path, build id, start,
//!   end, file offset) either way, so the UI shows the stack of a long poll next to it and
//!   a flame graph of any selection.

use std::collections::HashMap;
use std::io::Write;

use fdr_format::{SampleCause, StackFrames, Tables, ThreadId};
use fdr_symbolize::AddressKind;

use super::field::{event as fe, interned as fi, packet as fp, perf_sample as fs, profile as fpr};
use super::packets::{Arg, Cat, Ev, Val, entry};
use super::{MAX_INTERNED, OS_STATE_TRACK_UUID_BASE, PerfettoExport, SEQUENCE_ID};

/// Most source frames kept for one address (inlined functions and the one holding it).
const MAX_FRAMES_PER_ADDRESS: usize = 16;

/// A thread's last OS sample.
#[derive(Debug, Clone, Copy)]
pub(super) struct LastSample {
    ns: u64,
    cpu_ns: u64,
    runq_ns: u64,
}

/// What the export keeps of the OS view: each thread's last sample and state track, and
/// the callstack tables interned so far.
#[derive(Debug, Default)]
pub(super) struct OsState {
    /// Per sampled thread: its last sample, and whether its state track was described.
    threads: HashMap<ThreadId, (Option<LastSample>, bool)>,
    /// Frame iids of each (address, first frame) symbolized, innermost first.
    frames: HashMap<(u64, bool), Vec<u64>>,
    next_frame: u64,
    /// Callstack iids by their frame iids.
    callstacks: HashMap<Box<[u64]>, u64>,
    /// Mapping iids by module start address.
    mappings: HashMap<u64, u64>,
    /// Strings of the profile tables (function names, paths, build ids), each key prefixed
    /// by its table.
    strings: HashMap<String, u64>,
    string_bytes: usize,
    /// Stack samples left out: past the interning bounds.
    pub(super) dropped_samples: u64,
}

impl<W: Write> PerfettoExport<W> {
    /// An OS sample of `thread` at `ns`: closes the thread's interval since its last
    /// sample as a state slice.
    pub(super) fn os_sample(
        &mut self,
        thread: ThreadId,
        ns: u64,
        counters: (Option<u64>, Option<u64>, Option<u8>),
        tables: &Tables,
    ) {
        let (Some(cpu_ns), Some(runq_ns), state) = counters else {
            return;
        };
        if self.os.threads.len() >= crate::limits::MAX_THREADS
            && !self.os.threads.contains_key(&thread)
        {
            return;
        }
        let now = LastSample {
            ns,
            cpu_ns,
            runq_ns,
        };
        let (last, described) = self.os.threads.entry(thread).or_insert((None, false));
        let prev = last.replace(now);
        let Some(prev) = prev else {
            return;
        };
        if ns <= prev.ns || cpu_ns < prev.cpu_ns || runq_ns < prev.runq_ns {
            return;
        }
        let wall = ns - prev.ns;
        let on = (cpu_ns - prev.cpu_ns).min(wall);
        let runq = (runq_ns - prev.runq_ns).min(wall - on);
        let off = wall - on - runq;
        let name = if on >= runq && on >= off {
            "running"
        } else if runq >= off {
            "runnable"
        } else if state == Some(b'D') {
            "blocked"
        } else {
            "sleeping"
        };
        let uuid = OS_STATE_TRACK_UUID_BASE + u64::from(thread.0);
        if !*described {
            *described = true;
            // The state track sits under the thread's own track.
            let parent = self.thread(thread, ns, tables);
            self.descriptor(ns, |d| {
                d.uint(super::field::track::UUID, uuid)
                    .uint(super::field::track::PARENT_UUID, parent)
                    .string(super::field::track::NAME, "OS state");
            });
        }
        let letter = state.map(|b| [b]);
        let letter = letter
            .as_ref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("?");
        let args = [
            (Arg::OnCpuNs, Val::Uint(on)),
            (Arg::RunqNs, Val::Uint(runq)),
            (Arg::OffCpuNs, Val::Uint(off)),
            (Arg::State, Val::Interned(letter)),
        ];
        let mut ev = Ev::new(prev.ns, uuid, fe::TYPE_SLICE_BEGIN);
        ev.cat = Some(Cat::Os);
        ev.name = Some(name);
        ev.args = &args;
        self.write_event(&ev);
        self.write_event(&Ev::new(ns, uuid, fe::TYPE_SLICE_END));
        self.thread_states += 1;
    }

    /// A stack of `thread` recorded at `ns` and taken at `taken_ns` ([`crate::sampled`]): a
    /// callstack sample on the thread, at the moment it was taken.
    pub(super) fn os_stack(
        &mut self,
        thread: ThreadId,
        (ns, taken_ns): (u64, u64),
        cause: SampleCause,
        frames: StackFrames<'_>,
        tables: &Tables,
    ) {
        // The thread's track exists first, so the sample lands on it.
        self.thread(thread, ns, tables);
        self.interned.clear();
        let mut ids: Vec<u64> = Vec::new();
        for (i, addr) in frames.iter().enumerate() {
            match self.frame_iids(addr, i == 0, tables) {
                Some(f) => ids.extend(f.iter().rev()),
                None => {
                    self.drop_stack(ns);
                    return;
                }
            }
        }
        if ids.is_empty() {
            return;
        }
        // Perfetto lists a callstack's frames outermost first.
        ids.reverse();
        let callstack = match self.os.callstacks.get(ids.as_slice()) {
            Some(&c) => c,
            None if self.os.callstacks.len() >= MAX_INTERNED => {
                self.drop_stack(ns);
                return;
            }
            None => {
                let c = self.os.callstacks.len() as u64 + 1;
                self.interned.message(fi::CALLSTACKS, |m| {
                    m.uint(fpr::CALLSTACK_IID, c);
                    for f in &ids {
                        m.uint(fpr::CALLSTACK_FRAME_IDS, *f);
                    }
                });
                self.os.callstacks.insert(ids.into_boxed_slice(), c);
                c
            }
        };
        let pid = self.pid;
        let interned = std::mem::take(&mut self.interned);
        let p = &mut self.packet;
        p.uint(fp::TIMESTAMP, taken_ns)
            .uint(fp::TRUSTED_PACKET_SEQUENCE_ID, u64::from(SEQUENCE_ID))
            .uint(fp::SEQUENCE_FLAGS, fp::SEQ_NEEDS_INCREMENTAL_STATE);
        if !interned.is_empty() {
            p.message(fp::INTERNED_DATA, |m| {
                m.raw(interned.bytes());
            });
        }
        p.message(fp::PERF_SAMPLE, |s| {
            s.uint(fs::PID, u64::from(pid))
                .uint(fs::TID, u64::from(thread.0))
                .uint(fs::CALLSTACK_IID, callstack);
        });
        self.interned = interned;
        self.flush_packet();
        self.stack_samples += 1;
        if cause == SampleCause::CpuTimer {
            self.cpu_samples += 1;
        }
    }

    /// A stack left out past the bounds: counted, and what it interned so far is still
    /// written (later samples may use it).
    fn drop_stack(&mut self, ns: u64) {
        self.os.dropped_samples += 1;
        if self.interned.is_empty() {
            return;
        }
        let interned = std::mem::take(&mut self.interned);
        self.packet
            .uint(fp::TIMESTAMP, ns)
            .uint(fp::TRUSTED_PACKET_SEQUENCE_ID, u64::from(SEQUENCE_ID))
            .uint(fp::SEQUENCE_FLAGS, fp::SEQ_NEEDS_INCREMENTAL_STATE)
            .message(fp::INTERNED_DATA, |m| {
                m.raw(interned.bytes());
            });
        self.interned = interned;
        self.flush_packet();
    }

    /// The frame iids of `addr` (innermost first: inlined functions, then the one holding
    /// it), interning the frames, their mapping and strings into this packet's interned
    /// data when new; `None` past the bounds.
    fn frame_iids(&mut self, addr: u64, first: bool, tables: &Tables) -> Option<Vec<u64>> {
        if let Some(f) = self.os.frames.get(&(addr, first)) {
            return Some(f.clone());
        }
        if self.os.frames.len() >= MAX_INTERNED {
            return None;
        }
        let module = tables.module_of(addr);
        // (function, file, line) of each source frame.
        let mut source: Vec<(String, Option<String>, Option<u32>)> = Vec::new();
        let mut mapping = None;
        let mut rel_pc = 0;
        if let Some(m) = module {
            let kind = if first {
                AddressKind::InstructionPointer
            } else {
                AddressKind::ReturnAddress
            };
            let s = self.symbolizer.symbolize(m, addr, kind);
            for f in s.frames.iter().take(MAX_FRAMES_PER_ADDRESS) {
                source.push((
                    f.function.clone().unwrap_or_else(|| "??".into()),
                    f.file.clone(),
                    f.line,
                ));
            }
            if source.is_empty() {
                let file = m.path.rsplit('/').next().unwrap_or(&m.path);
                source.push((format!("{file}+{:#x}", m.file_offset_of(addr)), None, None));
            }
            mapping = Some(self.mapping_iid(m)?);
            rel_pc = m.file_offset_of(addr);
        } else {
            source.push((format!("{addr:#x}"), None, None));
        }
        let mut iids = Vec::with_capacity(source.len());
        for (function, file, line) in source {
            let name = self.profile_string('f', &function)?;
            let path = match &file {
                Some(f) => Some(self.profile_string('s', f)?),
                None => None,
            };
            self.os.next_frame += 1;
            let iid = self.os.next_frame;
            self.interned.message(fi::FRAMES, |m| {
                m.uint(fpr::FRAME_IID, iid)
                    .uint(fpr::FRAME_FUNCTION_NAME_ID, name);
                if let Some(map) = mapping {
                    m.uint(fpr::FRAME_MAPPING_ID, map)
                        .uint(fpr::FRAME_REL_PC, rel_pc);
                }
                if let Some(p) = path {
                    m.uint(fpr::FRAME_SOURCE_PATH_IID, p);
                }
                if let Some(l) = line {
                    m.uint(fpr::FRAME_LINE_NUMBER, u64::from(l));
                }
            });
            iids.push(iid);
        }
        self.os.frames.insert((addr, first), iids.clone());
        Some(iids)
    }

    /// The mapping iid of module `m`, interned into this packet when new.
    fn mapping_iid(&mut self, m: &fdr_format::Module) -> Option<u64> {
        if let Some(&id) = self.os.mappings.get(&m.start) {
            return Some(id);
        }
        if self.os.mappings.len() >= MAX_INTERNED {
            return None;
        }
        let build_id = if m.build_id.is_empty() {
            None
        } else {
            Some(self.profile_bytes('b', &m.build_id_hex(), &m.build_id)?)
        };
        let mut parts = Vec::new();
        for part in m.path.split('/').filter(|p| !p.is_empty()) {
            parts.push(self.profile_string('p', part)?);
        }
        let id = self.os.mappings.len() as u64 + 1;
        self.interned.message(fi::MAPPINGS, |w| {
            w.uint(fpr::MAPPING_IID, id);
            if let Some(b) = build_id {
                w.uint(fpr::MAPPING_BUILD_ID, b);
            }
            w.uint(fpr::MAPPING_EXACT_OFFSET, m.file_offset)
                .uint(fpr::MAPPING_START_OFFSET, m.file_offset)
                .uint(fpr::MAPPING_START, m.start)
                .uint(fpr::MAPPING_END, m.end);
            for p in &parts {
                w.uint(fpr::MAPPING_PATH_STRING_IDS, *p);
            }
        });
        self.os.mappings.insert(m.start, id);
        Some(id)
    }

    /// The iid of `s` in the profile string table `table` (`f` function names, `s` source
    /// paths, `p` mapping path parts), interned into this packet when new.
    fn profile_string(&mut self, table: char, s: &str) -> Option<u64> {
        self.profile_bytes(table, s, s.as_bytes())
    }

    fn profile_bytes(&mut self, table: char, key: &str, bytes: &[u8]) -> Option<u64> {
        let mut k = String::with_capacity(key.len() + 1);
        k.push(table);
        k.push_str(key);
        if let Some(&id) = self.os.strings.get(&k) {
            return Some(id);
        }
        if self.os.strings.len() >= MAX_INTERNED
            || self.os.string_bytes + k.len() > crate::limits::MAX_INTERNED_BYTES
        {
            return None;
        }
        let id = self.os.strings.len() as u64 + 1;
        let field = match table {
            'f' => fi::FUNCTION_NAMES,
            's' => fi::SOURCE_PATHS,
            'b' => fi::BUILD_IDS,
            _ => fi::MAPPING_PATHS,
        };
        entry(&mut self.interned, field, id, bytes);
        self.os.string_bytes += k.len();
        self.os.strings.insert(k, id);
        Some(id)
    }
}
