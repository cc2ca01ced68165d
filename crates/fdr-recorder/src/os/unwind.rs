//! Off-signal unwinding of a captured stack copy with `framehop` and the modules' DWARF CFI
//! (see the `os` module docs for why), and the module list it keeps: every executable file
//! mapping, added to the unwinder with its `.eh_frame`/`.eh_frame_hdr` and published as the
//! trace's module records. The list is read once at start and again when a frame lands
//! outside every known module (a `dlopen`), at most once a second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use framehop::{
    CacheNative, ExplicitModuleSectionInfo, MayAllocateDuringUnwind, Module, UnwindRegsNative,
    Unwinder as _, UnwinderNative,
};

use super::modules::{self, ElfInfo, Mapping, ModuleRecord};
use fdr_format::wire::MAX_STACK_FRAMES;

/// Rereads the mappings at most this often when an address is outside every module.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// The unwinder, its rule cache and the modules it knows.
pub(crate) struct Unwinder {
    inner: UnwinderNative<Vec<u8>, MayAllocateDuringUnwind>,
    cache: Box<CacheNative<MayAllocateDuringUnwind>>,
    /// Executable mappings added, by start address.
    known: BTreeMap<u64, Mapping>,
    /// `known`'s ranges (start, end) in start order, for [`Unwinder::knows`]: a binary
    /// search of a slice, asked for every frame of every stack.
    ranges: Vec<(u64, u64)>,
    last_scan: Option<Instant>,
    /// Where the frame-pointer search last found the frame pointer of a frame at a given
    /// address: its slot above that frame's stack pointer ([`Unwinder::unwind_blocked`]).
    #[cfg(target_arch = "x86_64")]
    fp_slots: std::collections::HashMap<u64, u64>,
    /// What the last [`Unwinder::unwind_blocked`] read of its copy: the end of the highest
    /// 8 bytes read, and whether any read fell past the copy's end.
    #[cfg(target_arch = "x86_64")]
    reads: CopyReads,
}

/// The reads an unwind of a blocked thread's copy made ([`Unwinder::blocked_reads`]).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CopyReads {
    /// The end (exclusive) of the highest 8 bytes read, as a stack address; 0 if none.
    pub(crate) top: u64,
    /// A read fell past the copy's end (whatever the unwind then did).
    pub(crate) past: bool,
}

impl std::fmt::Debug for Unwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unwinder")
            .field("modules", &self.known.len())
            .finish_non_exhaustive()
    }
}

/// What an unwind found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Unwound {
    /// It stopped before the stack's root (copy ended, no unwind info, too many frames).
    pub(crate) truncated: bool,
}

/// What an unwind of a blocked thread's copy found ([`Unwinder::unwind_blocked`]).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockedUnwind {
    /// A whole stack, up to its root (or up to the most frames a stack event holds, with
    /// the frame pointer never guessed).
    Stack {
        /// Cut at the most frames a stack event holds.
        truncated: bool,
    },
    /// It wanted stack bytes past the end of the copy: a longer copy may go further.
    WantsMore,
    /// No stack that reaches its root: leave it to the signal.
    NoRoot,
}

/// Stack slots above a frame's stack pointer searched for the frame pointer of a frame
/// that needs it ([`Unwinder::unwind_blocked`]): 4 KiB of locals and saved registers.
#[cfg(target_arch = "x86_64")]
const FP_SEARCH_SLOTS: u64 = 512;
/// Frame addresses whose frame-pointer slot is remembered; past it the memory starts over.
#[cfg(target_arch = "x86_64")]
const MAX_FP_SLOTS: usize = 4096;

/// How a walk over a copy ended.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalkEnd {
    /// The root: the unwind information says there is no caller.
    Root,
    /// The most frames a stack event holds.
    Full,
    /// An error at the last frame pushed, with the registers it was unwound from.
    Failed(UnwindRegsNative),
    /// An end that is no root: the unwinder stops at a zero frame pointer or a zero return
    /// address as well, which a guessed frame pointer can lead to from any slot holding 0
    /// (see [`Unwinder::is_root`]), or a frame outside every known module.
    FalseRoot,
}

impl Unwinder {
    pub(crate) fn new() -> Self {
        let mut u = Unwinder {
            inner: UnwinderNative::new(),
            cache: Box::new(CacheNative::new()),
            known: BTreeMap::new(),
            ranges: Vec::new(),
            last_scan: None,
            #[cfg(target_arch = "x86_64")]
            fp_slots: std::collections::HashMap::new(),
            #[cfg(target_arch = "x86_64")]
            reads: CopyReads::default(),
        };
        u.rescan();
        u
    }

    /// Reads the mappings, adds the new ones, publishes the module records.
    pub(crate) fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        let Ok(maps) = modules::exec_mappings() else {
            return;
        };
        let mut records = Vec::new();
        let mut infos: BTreeMap<String, Option<ElfInfo>> = BTreeMap::new();
        for m in maps {
            if self.known.get(&m.start) == Some(&m) {
                continue;
            }
            if self.known.contains_key(&m.start) {
                self.inner.remove_module(m.start);
            }
            let info = infos
                .entry(m.path.clone())
                .or_insert_with(|| ElfInfo::read(&m.path, true).ok());
            records.push(ModuleRecord {
                mapping: m.clone(),
                build_id: info
                    .as_ref()
                    .map(|i| i.build_id.clone())
                    .unwrap_or_default(),
            });
            if let Some(info) = info.as_mut()
                && let Some(svma) = info.svma_of_exec_mapping(m.offset)
            {
                let base_avma = m.start.wrapping_sub(svma);
                let section_info = ExplicitModuleSectionInfo {
                    base_svma: 0,
                    text_svma: info.text_svma.clone(),
                    got_svma: info.got_svma.clone(),
                    eh_frame_svma: info.eh_frame.as_ref().map(|e| e.0.clone()),
                    eh_frame: info.eh_frame.as_ref().map(|e| e.1.clone()),
                    eh_frame_hdr_svma: info.eh_frame_hdr.as_ref().map(|e| e.0.clone()),
                    eh_frame_hdr: info.eh_frame_hdr.as_ref().map(|e| e.1.clone()),
                    ..Default::default()
                };
                self.inner.add_module(Module::new(
                    m.path.clone(),
                    m.start..m.end,
                    base_avma,
                    section_info,
                ));
            }
            self.known.insert(m.start, m);
        }
        self.ranges.clear();
        self.ranges
            .extend(self.known.values().map(|m| (m.start, m.end)));
        modules::publish(records);
    }

    /// Whether `addr` is inside a known executable mapping.
    fn knows(&self, addr: u64) -> bool {
        // The range with the greatest start at or below `addr`.
        let i = self.ranges.partition_point(|&(start, _)| start <= addr);
        i.checked_sub(1).is_some_and(|i| addr < self.ranges[i].1)
    }

    /// Unwinds a copy: registers `regs` (pc, sp, fp, lr) and the stack bytes from sp.
    /// Addresses go into `out` (cleared first), innermost first: the interrupted
    /// instruction, then return addresses.
    pub(crate) fn unwind(&mut self, regs: [u64; 4], stack: &[u8], out: &mut Vec<u64>) -> Unwound {
        out.clear();
        let [pc, sp, fp, _lr] = regs;
        let mut read_stack = |addr: u64| read_copy(sp, stack, addr, &mut false);
        #[cfg(target_arch = "x86_64")]
        let unwind_regs = UnwindRegsNative::new(pc, sp, fp);
        #[cfg(target_arch = "aarch64")]
        let unwind_regs = UnwindRegsNative::new(_lr, sp, fp);
        let mut frames = self
            .inner
            .iter_frames(pc, unwind_regs, &mut self.cache, &mut read_stack);
        let mut truncated = false;
        loop {
            match frames.next() {
                Ok(Some(f)) => {
                    if out.len() == MAX_STACK_FRAMES {
                        truncated = true;
                        break;
                    }
                    out.push(f.address());
                }
                Ok(None) => break,
                Err(_) => {
                    truncated = true;
                    break;
                }
            }
        }
        self.rescan_if_unknown(out);
        Unwound { truncated }
    }

    /// Rereads the mappings (at most every [`RESCAN_EVERY`]) if a frame is outside them.
    fn rescan_if_unknown(&mut self, frames: &[u64]) {
        let unknown = frames.iter().any(|&a| !self.knows(a));
        if unknown && self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY) {
            self.rescan();
        }
    }

    /// Unwinds the copy of a thread blocked in the kernel, from the stack pointer and the
    /// instruction its `/proc/self/task/TID/syscall` shows: the frame pointer is unknown.
    ///
    /// Frames whose unwind rules do not use the frame pointer unwind as usual. The first
    /// frame whose rule needs it (Rust's standard library and some C libraries are built
    /// with frame pointers: `push rbp; mov rbp, rsp`) fails; its frame pointer is then
    /// searched among the stack slots just above its stack pointer, where its prologue
    /// saved the caller's frame pointer with the return address above it: each slot whose
    /// next one holds an address in a known module is tried, and a candidate is kept only
    /// if the whole stack then unwinds to its root (the thread's start, whose unwind
    /// information says it has no caller: [`Unwinder::is_root`]) with no error and every
    /// frame in a known module (a frame that saves the frame pointer gives every frame
    /// above it its value, so the search happens at most once per stack). Anything else is
    /// left to the signal.
    ///
    /// [`Unwinder::blocked_reads`] then says how much of the copy it read: every result is
    /// a function of the bytes read, so a copy cut anywhere above the highest read (and
    /// none past its end) gives the same result.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn unwind_blocked(
        &mut self,
        pc: u64,
        sp: u64,
        stack: &[u8],
        out: &mut Vec<u64>,
    ) -> BlockedUnwind {
        out.clear();
        self.reads = CopyReads::default();
        let mut past = false;
        // Never 0 (which the unwinder takes for the end of the stack) and below the stack
        // pointer, so a rule that uses it fails at once instead of reading the copy.
        let unknown_fp = sp.wrapping_sub(1 << 20);
        let mut regs = UnwindRegsNative::new(pc, sp, unknown_fp);
        let start = framehop::FrameAddress::from_instruction_pointer(pc);
        let end = self.walk(start, &mut regs, sp, stack, &mut past, out);
        let result = match end {
            WalkEnd::Root => BlockedUnwind::Stack { truncated: false },
            WalkEnd::Full => BlockedUnwind::Stack { truncated: true },
            WalkEnd::FalseRoot => BlockedUnwind::NoRoot,
            WalkEnd::Failed(_) if past => BlockedUnwind::WantsMore,
            WalkEnd::Failed(at) => self.search_fp(at, sp, stack, out),
        };
        // A stack that reached its root has every frame in a known module (`walk` checked):
        // no second look.
        if result != (BlockedUnwind::Stack { truncated: false }) {
            self.rescan_if_unknown(out);
        }
        result
    }

    /// What the last [`Unwinder::unwind_blocked`] read of its copy.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn blocked_reads(&self) -> CopyReads {
        self.reads
    }

    /// [`Unwinder::unwind_blocked`]'s search: the frame at `out`'s last entry failed when
    /// unwound from `at`; tries each candidate frame pointer above `at`'s stack pointer.
    #[cfg(target_arch = "x86_64")]
    fn search_fp(
        &mut self,
        at: UnwindRegsNative,
        sp: u64,
        stack: &[u8],
        out: &mut Vec<u64>,
    ) -> BlockedUnwind {
        let Some(&failing) = out.last() else {
            return BlockedUnwind::NoRoot;
        };
        let failing = if out.len() == 1 {
            framehop::FrameAddress::from_instruction_pointer(failing)
        } else {
            match framehop::FrameAddress::from_return_address(failing) {
                Some(a) => a,
                None => return BlockedUnwind::NoRoot,
            }
        };
        let kept = out.len() - 1;
        let mut wants_more = false;
        // A thread blocks again and again in the same functions: the slot that held the frame
        // pointer last time at this address is tried first (kept only if it reaches the root,
        // as every candidate is), then every slot in order.
        let hint = self.fp_slots.get(&failing.address()).copied();
        for slot in hint.into_iter().chain(0..FP_SEARCH_SLOTS) {
            let fp = at.sp() + slot * 8;
            let mut past = false;
            // The return address above the saved frame pointer must be code.
            match read_copy_noted(sp, stack, fp + 8, &mut past, &mut self.reads) {
                Ok(ra) if self.knows(ra) => {}
                _ if past => {
                    wants_more = true;
                    break;
                }
                _ => continue,
            }
            let mut regs = at;
            regs.set_bp(fp);
            out.truncate(kept);
            match self.walk(failing, &mut regs, sp, stack, &mut past, out) {
                WalkEnd::Root => {
                    if hint != Some(slot) {
                        if self.fp_slots.len() >= MAX_FP_SLOTS {
                            self.fp_slots.clear();
                        }
                        self.fp_slots.insert(failing.address(), slot);
                    }
                    return BlockedUnwind::Stack { truncated: false };
                }
                WalkEnd::Failed(_) if past => wants_more = true,
                WalkEnd::Full | WalkEnd::Failed(_) | WalkEnd::FalseRoot => {}
            }
        }
        out.truncate(kept + 1);
        if wants_more {
            BlockedUnwind::WantsMore
        } else {
            BlockedUnwind::NoRoot
        }
    }

    /// Unwinds from frame `address` with `regs`, pushing every frame's address onto `out`
    /// (at most [`MAX_STACK_FRAMES`] in all).
    #[cfg(target_arch = "x86_64")]
    fn walk(
        &mut self,
        mut address: framehop::FrameAddress,
        regs: &mut UnwindRegsNative,
        sp: u64,
        stack: &[u8],
        past: &mut bool,
        out: &mut Vec<u64>,
    ) -> WalkEnd {
        let reads = &mut self.reads;
        let mut read_stack = |addr: u64| read_copy_noted(sp, stack, addr, past, reads);
        loop {
            if out.len() == MAX_STACK_FRAMES {
                return WalkEnd::Full;
            }
            out.push(address.address());
            let before = *regs;
            match self
                .inner
                .unwind_frame(address, regs, &mut self.cache, &mut read_stack)
            {
                Ok(Some(ra)) => match framehop::FrameAddress::from_return_address(ra) {
                    Some(next) => address = next,
                    None => return WalkEnd::Failed(before),
                },
                Ok(None) => {
                    let known = out.iter().all(|&a| self.knows(a));
                    return if known && self.is_root(address, before) {
                        WalkEnd::Root
                    } else {
                        WalkEnd::FalseRoot
                    };
                }
                Err(_) => return WalkEnd::Failed(before),
            }
        }
    }

    /// Whether the frame at `address` (registers `regs`) is a stack's root: its unwind
    /// information says it has no caller (a thread's start: `cfi_undefined rip`), which the
    /// unwinder answers without reading anything, whatever the frame pointer.
    ///
    /// The unwinder also ends a stack at a frame-pointer frame whose frame pointer is 0, and
    /// at a return address of 0. With the real frame pointer neither happens before the
    /// root; with a guessed one (a blocked thread's, [`Unwinder::unwind_blocked`]) a slot
    /// that holds 0 under one that holds a code address ends the stack a frame or two
    /// above the guess, short of its callers. So the frame is unwound again with a frame
    /// pointer that is not 0 and a stack that cannot be read: only a root still ends.
    #[cfg(target_arch = "x86_64")]
    fn is_root(&mut self, address: framehop::FrameAddress, regs: UnwindRegsNative) -> bool {
        let mut probe = regs;
        probe.set_bp(regs.sp().wrapping_sub(1 << 20) | 1);
        let mut unreadable = |_: u64| Err(());
        matches!(
            self.inner
                .unwind_frame(address, &mut probe, &mut self.cache, &mut unreadable),
            Ok(None)
        )
    }
}

/// [`read_copy`], noting the read in `reads`.
#[cfg(target_arch = "x86_64")]
fn read_copy_noted(
    sp: u64,
    stack: &[u8],
    addr: u64,
    past: &mut bool,
    reads: &mut CopyReads,
) -> Result<u64, ()> {
    let mut beyond = false;
    let r = read_copy(sp, stack, addr, &mut beyond);
    if beyond {
        *past = true;
        reads.past = true;
    } else if r.is_ok() {
        reads.top = reads.top.max(addr.saturating_add(8));
    }
    r
}

/// Reads the 8 bytes at `addr` from a copy of the stack from `sp`; an address past the
/// copy's end sets `past`.
fn read_copy(sp: u64, stack: &[u8], addr: u64, past: &mut bool) -> Result<u64, ()> {
    let off = addr.checked_sub(sp).ok_or(())?;
    let bytes = usize::try_from(off)
        .ok()
        .and_then(|off| stack.get(off..off.checked_add(8)?));
    match bytes {
        Some(b) => Ok(u64::from_le_bytes(b.try_into().map_err(|_| ())?)),
        None => {
            *past = true;
            Err(())
        }
    }
}
