//! Resolving ids: the strings, sites, threads and clock a trace's table batches define.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use crate::decode::{DecodeError, TableBatch, lossy_exact};
use crate::event::{ClockSync, SiteId, StrId, TableRecord, ThreadId};

/// A resolved call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site<'t> {
    /// Source file.
    pub file: &'t str,
    /// Line (1-based).
    pub line: u32,
    /// Column (1-based).
    pub col: u32,
}

impl fmt::Display for Site<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A recording thread, as the table describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The OS thread id.
    pub os_tid: u64,
    /// The thread's name (may be empty).
    pub name: String,
}

/// An executable mapping of a module, as the table describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// First address of the mapping.
    pub start: u64,
    /// One past its last address.
    pub end: u64,
    /// Offset in the file of the mapping's first byte.
    pub file_offset: u64,
    /// The file's path as the recorded process saw it.
    pub path: String,
    /// The ELF build id, empty if none.
    pub build_id: Vec<u8>,
}

impl Module {
    /// Whether `addr` falls inside the mapping.
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// The file offset `addr` corresponds to (for symbolizing against the file).
    pub fn file_offset_of(&self, addr: u64) -> u64 {
        addr.wrapping_sub(self.start).wrapping_add(self.file_offset)
    }

    /// The build id in lower-case hex.
    pub fn build_id_hex(&self) -> String {
        self.build_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct SiteRec {
    file: StrId,
    line: u32,
    col: u32,
}

/// Everything the table batches read so far define. Memory grows with the number of
/// distinct names, sites and threads, never with the number of events.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    strings: HashMap<StrId, Box<str>>,
    sites: HashMap<SiteId, SiteRec>,
    threads: HashMap<ThreadId, ThreadInfo>,
    /// By start address; a later record of the same start replaces the earlier one.
    modules: std::collections::BTreeMap<u64, Module>,
    first_clock: Option<ClockSync>,
    last_clock: Option<ClockSync>,
    skipped_unknown: u64,
}

impl Tables {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a table batch's records. On a malformed record, the records before it are kept.
    pub fn apply(&mut self, batch: &TableBatch<'_>) -> Result<(), DecodeError> {
        let mut records = batch.records();
        for r in &mut records {
            match r? {
                TableRecord::String { id, text } => {
                    self.strings.insert(id, lossy_exact(text).into_boxed_str());
                }
                TableRecord::Site {
                    id,
                    file,
                    line,
                    col,
                } => {
                    self.sites.insert(id, SiteRec { file, line, col });
                }
                TableRecord::Thread {
                    thread,
                    os_tid,
                    name,
                } => {
                    let name = lossy_exact(name);
                    self.threads.insert(thread, ThreadInfo { os_tid, name });
                }
                TableRecord::Clock(c) => {
                    self.first_clock.get_or_insert(c);
                    self.last_clock = Some(c);
                }
                TableRecord::Module {
                    start,
                    end,
                    file_offset,
                    path,
                    build_id,
                } => {
                    self.modules.insert(
                        start,
                        Module {
                            start,
                            end,
                            file_offset,
                            path: lossy_exact(path),
                            build_id: build_id.to_vec(),
                        },
                    );
                }
            }
        }
        self.skipped_unknown += records.skipped_unknown();
        Ok(())
    }

    /// The string with this id, if defined.
    pub fn string(&self, id: StrId) -> Option<&str> {
        self.strings.get(&id).map(|s| &**s)
    }

    /// The string with this id, or `#id` if the trace does not define it.
    pub fn name(&self, id: StrId) -> Cow<'_, str> {
        match self.string(id) {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(format!("#{}", id.0)),
        }
    }

    /// The call site with this id, if defined.
    pub fn site(&self, id: SiteId) -> Option<Site<'_>> {
        let r = self.sites.get(&id)?;
        Some(Site {
            file: self.string(r.file).unwrap_or("?"),
            line: r.line,
            col: r.col,
        })
    }

    /// The site as `file:line:col`, or `site #id` / `-` when unknown or absent.
    pub fn site_name(&self, id: SiteId) -> Cow<'_, str> {
        match self.site(id) {
            Some(s) => Cow::Owned(s.to_string()),
            None if id.0 == 0 => Cow::Borrowed("-"),
            None => Cow::Owned(format!("site #{}", id.0)),
        }
    }

    /// The thread with this id, if defined.
    pub fn thread(&self, id: ThreadId) -> Option<&ThreadInfo> {
        self.threads.get(&id)
    }

    /// All threads defined.
    pub fn threads(&self) -> impl Iterator<Item = (ThreadId, &ThreadInfo)> {
        self.threads.iter().map(|(k, v)| (*k, v))
    }

    /// Every module mapping defined, by start address.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.values()
    }

    /// The module mapping holding `addr`, if the trace defines one.
    pub fn module_of(&self, addr: u64) -> Option<&Module> {
        self.modules
            .range(..=addr)
            .next_back()
            .map(|(_, m)| m)
            .filter(|m| m.contains(addr))
    }

    /// Number of strings defined.
    pub fn string_count(&self) -> usize {
        self.strings.len()
    }

    /// Number of sites defined.
    pub fn site_count(&self) -> usize {
        self.sites.len()
    }

    /// The first clock sync read.
    pub fn first_clock(&self) -> Option<&ClockSync> {
        self.first_clock.as_ref()
    }

    /// The latest clock sync read.
    pub fn clock(&self) -> Option<&ClockSync> {
        self.last_clock.as_ref()
    }

    /// Table records of kinds this version does not know, skipped so far.
    pub fn skipped_unknown(&self) -> u64 {
        self.skipped_unknown
    }
}
