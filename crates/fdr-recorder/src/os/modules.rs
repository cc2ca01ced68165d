//! The process's modules: executable file mappings (`/proc/self/maps`), each file's ELF
//! build id, program headers and unwind sections (read with `object` from the file, section
//! by section, never mapped whole), and the module records every full table batch carries.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::sync::Mutex;

use fdr_format::TableEncoder;
use object::{Object, ObjectSection, ObjectSegment};

use crate::sync::lock;

/// Most module records kept for the trace (mappings of distinct files and addresses).
pub(crate) const MAX_MODULES: usize = 1024;

/// One executable mapping of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) offset: u64,
    pub(crate) path: String,
}

/// The executable file mappings of this process, from `/proc/self/maps`.
pub(crate) fn exec_mappings() -> std::io::Result<Vec<Mapping>> {
    let text = std::fs::read_to_string("/proc/self/maps")?;
    Ok(parse_maps(&text))
}

/// Lines `start-end perms offset dev inode path` whose permissions include `x` and whose
/// path is a file (absolute; a deleted file keeps its ` (deleted)` suffix, so it is
/// recorded as the process saw it).
pub(crate) fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.splitn(6, ' ');
            let range = f.next()?;
            let perms = f.next()?;
            let offset = f.next()?;
            let _dev = f.next()?;
            let _inode = f.next()?;
            let path = f.next()?.trim_start();
            if !perms.contains('x') || !path.starts_with('/') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path: path.to_owned(),
            })
        })
        .collect()
}

/// What the sampler needs of one ELF file.
#[derive(Debug)]
pub(crate) struct ElfInfo {
    pub(crate) build_id: Vec<u8>,
    /// Loadable segments: file offset range, the address (SVMA) of its first byte, and
    /// whether it is executable.
    pub(crate) segments: Vec<(Range<u64>, u64, bool)>,
    pub(crate) text_svma: Option<Range<u64>>,
    pub(crate) got_svma: Option<Range<u64>>,
    pub(crate) eh_frame: Option<(Range<u64>, Vec<u8>)>,
    pub(crate) eh_frame_hdr: Option<(Range<u64>, Vec<u8>)>,
}

impl ElfInfo {
    /// Reads `path` (the build id always; the unwind sections if `unwind`).
    pub(crate) fn read(path: &str, unwind: bool) -> Result<ElfInfo, String> {
        let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let cache = object::ReadCache::new(file);
        let obj = object::File::parse(&cache).map_err(|e| format!("{path}: {e}"))?;
        let build_id = obj.build_id().ok().flatten().unwrap_or_default().to_vec();
        let segments = obj
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                let exec = match s.flags() {
                    object::SegmentFlags::Elf { p_flags } => p_flags & object::elf::PF_X != 0,
                    _ => false,
                };
                (off..off + size, s.address(), exec)
            })
            .collect();
        let range = |name: &str| {
            obj.section_by_name(name)
                .map(|s| s.address()..s.address() + s.size())
        };
        let data = |name: &str| {
            let s = obj.section_by_name(name)?;
            let bytes = s.data().ok()?.to_vec();
            Some((s.address()..s.address() + s.size(), bytes))
        };
        Ok(ElfInfo {
            build_id,
            segments,
            text_svma: range(".text"),
            got_svma: range(".got"),
            eh_frame: if unwind { data(".eh_frame") } else { None },
            eh_frame_hdr: if unwind { data(".eh_frame_hdr") } else { None },
        })
    }

    /// The address (SVMA) of the first byte of an executable mapping at file offset
    /// `offset`. A mapping starts at a page boundary, so its offset may fall inside the page
    /// that ends the segment before the executable one: the executable segment whose first
    /// page holds the offset decides.
    pub(crate) fn svma_of_exec_mapping(&self, offset: u64) -> Option<u64> {
        const PAGE: u64 = 4096;
        let holds = |r: &Range<u64>| (r.start & !(PAGE - 1)) <= offset && offset < r.end;
        self.segments
            .iter()
            .find(|(r, _, exec)| *exec && holds(r))
            .or_else(|| self.segments.iter().find(|(r, _, _)| holds(r)))
            .map(|(r, vaddr, _)| vaddr.wrapping_add(offset).wrapping_sub(r.start))
    }
}

/// A module record as the trace carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModuleRecord {
    pub(crate) mapping: Mapping,
    pub(crate) build_id: Vec<u8>,
}

/// The records every full table batch writes, and their generation (bumped on change).
#[derive(Debug, Default)]
struct Table {
    generation: u64,
    records: BTreeMap<u64, ModuleRecord>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    generation: 0,
    records: BTreeMap::new(),
});

/// Adds (or replaces, by start address) module records; keeps at most [`MAX_MODULES`].
pub(crate) fn publish(records: impl IntoIterator<Item = ModuleRecord>) {
    let mut t = lock(&TABLE);
    let mut changed = false;
    for r in records {
        if t.records.len() >= MAX_MODULES && !t.records.contains_key(&r.mapping.start) {
            continue;
        }
        if t.records.get(&r.mapping.start) != Some(&r) {
            t.records.insert(r.mapping.start, r);
            changed = true;
        }
    }
    if changed {
        t.generation += 1;
    }
}

/// Writes the module records into `t` if their generation is past `since` (`None`: always,
/// for a full table); returns the generation written. A later record with the same start
/// address replaces an earlier one, so writing them all again is how a capture learns of
/// new ones.
pub(crate) fn encode_modules(t: &mut TableEncoder, since: Option<u64>) -> u64 {
    let table = lock(&TABLE);
    if since.is_none_or(|g| table.generation > g) {
        for r in table.records.values() {
            let m = &r.mapping;
            t.module(m.start, m.end, m.offset, m.path.as_bytes(), &r.build_id);
        }
    }
    table.generation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_executable_file_mappings_only() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fd:01 123 /usr/bin/prog
55d0c0001000-55d0c0005000 r-xp 00001000 fd:01 123 /usr/bin/prog
7f0000000000-7f0000001000 r-xp 00000000 00:00 0 [vdso]
7f0000002000-7f0000003000 rw-p 00000000 00:00 0
7f0000004000-7f0000008000 r-xp 00028000 fd:01 456                        /lib/x86_64-linux-gnu/libc.so.6
7f0000009000-7f000000a000 r-xp 00000000 fd:01 789 /tmp/old prog (deleted)
";
        let m = parse_maps(maps);
        assert_eq!(
            m,
            vec![
                Mapping {
                    start: 0x55d0c0001000,
                    end: 0x55d0c0005000,
                    offset: 0x1000,
                    path: "/usr/bin/prog".into()
                },
                Mapping {
                    start: 0x7f0000004000,
                    end: 0x7f0000008000,
                    offset: 0x28000,
                    path: "/lib/x86_64-linux-gnu/libc.so.6".into()
                },
                Mapping {
                    start: 0x7f0000009000,
                    end: 0x7f000000a000,
                    offset: 0,
                    path: "/tmp/old prog (deleted)".into()
                },
            ]
        );
    }

    #[test]
    fn reads_this_programs_build_id_and_unwind_sections() {
        let exe = std::env::current_exe().unwrap();
        let mine = exec_mappings()
            .unwrap()
            .into_iter()
            .find(|m| std::path::Path::new(&m.path) == exe)
            .expect("the test binary is mapped executable");
        let info = ElfInfo::read(&mine.path, true).unwrap();
        assert!(!info.build_id.is_empty(), "rustc links with a GNU build id");
        assert!(info.eh_frame.is_some() && info.eh_frame_hdr.is_some());
        // This function's address is inside the mapping, and its SVMA inside .text.
        let f = reads_this_programs_build_id_and_unwind_sections as fn() as usize as u64;
        assert!(mine.start <= f && f < mine.end);
        let svma = info.svma_of_exec_mapping(mine.offset).unwrap() + (f - mine.start);
        assert!(info.text_svma.clone().unwrap().contains(&svma));
        // The mapping's offset is page-aligned: the executable segment decides, not the
        // segment before it whose last page holds the same offset.
        let (r, vaddr, _) = info.segments.iter().find(|s| s.2).unwrap();
        assert_eq!(
            info.svma_of_exec_mapping(r.start & !4095),
            Some(vaddr - (r.start - (r.start & !4095)))
        );
    }
}
