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

/// Bounds on what [`Tables`] keeps, for readers of traces they do not trust: a definition
/// of a new id past a bound is not kept (the id then resolves as undefined) and is counted
/// in [`Tables::dropped`]. A later definition of a kept id still replaces it when it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLimits {
    /// Most strings kept.
    pub max_strings: usize,
    /// Most bytes of text kept, strings and thread names together (after invalid UTF-8
    /// is replaced).
    pub max_text_bytes: usize,
    /// Most call sites kept.
    pub max_sites: usize,
    /// Most threads kept.
    pub max_threads: usize,
}

impl TableLimits {
    /// No bounds: every definition is kept (the default).
    pub const NONE: TableLimits = TableLimits {
        max_strings: usize::MAX,
        max_text_bytes: usize::MAX,
        max_sites: usize::MAX,
        max_threads: usize::MAX,
    };
}

impl Default for TableLimits {
    fn default() -> Self {
        TableLimits::NONE
    }
}

/// Definitions [`Tables`] did not keep because of its [`TableLimits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableDrops {
    /// String definitions not kept.
    pub strings: u64,
    /// Site definitions not kept.
    pub sites: u64,
    /// Thread definitions not kept.
    pub threads: u64,
    /// Bytes of text in the string and thread definitions not kept.
    pub text_bytes: u64,
}

impl TableDrops {
    /// Whether anything was dropped.
    pub fn any(&self) -> bool {
        self.strings + self.sites + self.threads > 0
    }
}

/// Everything the table batches read so far define. Memory grows with the number of
/// distinct names, sites and threads, never with the number of events, and stays within
/// its [`TableLimits`].
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
    limits: TableLimits,
    text_bytes: usize,
    dropped: TableDrops,
}

impl Tables {
    /// Empty tables that keep every definition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty tables that keep definitions within `limits`.
    pub fn with_limits(limits: TableLimits) -> Self {
        Tables {
            limits,
            ..Tables::default()
        }
    }

    /// Definitions not kept because of the limits, so far.
    pub fn dropped(&self) -> TableDrops {
        self.dropped
    }

    /// Whether `new_bytes` of text may replace `old_bytes` (0 for a new id).
    fn text_fits(&self, old_bytes: usize, new_bytes: usize) -> bool {
        self.text_bytes - old_bytes <= self.limits.max_text_bytes.saturating_sub(new_bytes)
    }

    /// Adds a table batch's records. On a malformed record, the records before it are kept.
    pub fn apply(&mut self, batch: &TableBatch<'_>) -> Result<(), DecodeError> {
        let mut records = batch.records();
        for r in &mut records {
            match r? {
                TableRecord::String { id, text } => {
                    let text = lossy_exact(text);
                    let old = self.strings.get(&id).map(|s| s.len());
                    let room = old.is_some() || self.strings.len() < self.limits.max_strings;
                    if room && self.text_fits(old.unwrap_or(0), text.len()) {
                        self.text_bytes = self.text_bytes - old.unwrap_or(0) + text.len();
                        self.strings.insert(id, text.into_boxed_str());
                    } else {
                        self.dropped.strings += 1;
                        self.dropped.text_bytes += text.len() as u64;
                    }
                }
                TableRecord::Site {
                    id,
                    file,
                    line,
                    col,
                } => {
                    if self.sites.len() < self.limits.max_sites || self.sites.contains_key(&id) {
                        self.sites.insert(id, SiteRec { file, line, col });
                    } else {
                        self.dropped.sites += 1;
                    }
                }
                TableRecord::Thread {
                    thread,
                    os_tid,
                    name,
                } => {
                    let name = lossy_exact(name);
                    let old = self.threads.get(&thread).map(|t| t.name.len());
                    let room = old.is_some() || self.threads.len() < self.limits.max_threads;
                    if room && self.text_fits(old.unwrap_or(0), name.len()) {
                        self.text_bytes = self.text_bytes - old.unwrap_or(0) + name.len();
                        self.threads.insert(thread, ThreadInfo { os_tid, name });
                    } else {
                        self.dropped.threads += 1;
                        self.dropped.text_bytes += name.len() as u64;
                    }
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

    /// Number of threads defined.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }
}
