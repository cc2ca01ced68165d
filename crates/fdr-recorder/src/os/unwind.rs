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
    last_scan: Option<Instant>,
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

impl Unwinder {
    pub(crate) fn new() -> Self {
        let mut u = Unwinder {
            inner: UnwinderNative::new(),
            cache: Box::new(CacheNative::new()),
            known: BTreeMap::new(),
            last_scan: None,
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
        modules::publish(records);
    }

    /// Whether `addr` is inside a known executable mapping.
    fn knows(&self, addr: u64) -> bool {
        self.known
            .range(..=addr)
            .next_back()
            .is_some_and(|(_, m)| addr < m.end)
    }

    /// Unwinds a copy: registers `regs` (pc, sp, fp, lr) and the stack bytes from sp.
    /// Addresses go into `out` (cleared first), innermost first: the interrupted
    /// instruction, then return addresses.
    pub(crate) fn unwind(&mut self, regs: [u64; 4], stack: &[u8], out: &mut Vec<u64>) -> Unwound {
        out.clear();
        let [pc, sp, fp, _lr] = regs;
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = addr.checked_sub(sp).ok_or(())? as usize;
            let bytes = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        #[cfg(target_arch = "x86_64")]
        let unwind_regs = UnwindRegsNative::new(pc, sp, fp);
        #[cfg(target_arch = "aarch64")]
        let unwind_regs = UnwindRegsNative::new(_lr, sp, fp);
        let mut frames = self
            .inner
            .iter_frames(pc, unwind_regs, &mut self.cache, &mut read_stack);
        let mut truncated = false;
        let mut unknown = false;
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
        for &a in out.iter() {
            unknown |= !self.knows(a);
        }
        if unknown && self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY) {
            self.rescan();
        }
        Unwound { truncated }
    }
}
