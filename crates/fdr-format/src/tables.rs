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
