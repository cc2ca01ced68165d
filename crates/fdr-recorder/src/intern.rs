//! Interning: names and call sites become small ids that events carry; the tables that
//! resolve them are written into every trace.
//!
//! The global interner takes a lock; the hot path reaches it only on a miss of the
//! per-thread direct-mapped cache (keyed by a `&'static str`'s address and length, or a
//! `Location`'s address), so a name costs a lock once per thread.

use std::borrow::Cow;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::{LazyLock, Mutex};

use fdr_format::{SiteId, StrId, TableEncoder};

use crate::sync::lock;

/// Most distinct strings [`intern_dynamic`] adds; later new ones map to [`OVERFLOW`].
pub const MAX_DYNAMIC_STRINGS: usize = 4096;
/// Most distinct strings in all (static names included); later new ones map to [`OVERFLOW`].
pub const MAX_STRINGS: usize = 1 << 20;
/// Most distinct call sites; later new ones map to site 0 ("no site").
pub const MAX_SITES: usize = 1 << 20;
/// The id of `"<overflow>"`, which names that could not be added to a full table map to.
pub const OVERFLOW: StrId = StrId(0);

#[derive(Debug)]
struct SiteRec {
    file: StrId,
    line: u32,
    col: u32,
}

#[derive(Debug)]
pub(crate) struct Interner {
    texts: Vec<Cow<'static, str>>,
    by_text: HashMap<Cow<'static, str>, StrId>,
    dynamic: usize,
    sites: Vec<SiteRec>,
    by_site: HashMap<(usize, u32, u32), SiteId>,
}

static INTERNER: LazyLock<Mutex<Interner>> = LazyLock::new(|| {
    let mut i = Interner {
        texts: Vec::new(),
        by_text: HashMap::new(),
        dynamic: 0,
        // Site 0 is "no site".
        sites: vec![SiteRec {
            file: OVERFLOW,
            line: 0,
            col: 0,
        }],
        by_site: HashMap::new(),
    };
    i.add(Cow::Borrowed("<overflow>"));
    Mutex::new(i)
});

impl Interner {
    fn add(&mut self, text: Cow<'static, str>) -> StrId {
        let id = StrId(self.texts.len() as u32);
        self.texts.push(text.clone());
        self.by_text.insert(text, id);
        id
    }

    fn intern_static(&mut self, s: &'static str) -> StrId {
        if let Some(&id) = self.by_text.get(s) {
            return id;
        }
        if self.texts.len() >= MAX_STRINGS {
            return OVERFLOW;
        }
        self.add(Cow::Borrowed(s))
    }
}

/// Interns a static string (the global table; takes its lock).
pub(crate) fn intern_global(s: &'static str) -> StrId {
    lock(&INTERNER).intern_static(s)
}

/// Interns a run-time string. The table of such strings is bounded
/// ([`MAX_DYNAMIC_STRINGS`]); past it, new strings map to [`OVERFLOW`] (`"<overflow>"`).
pub fn intern_dynamic(s: &str) -> StrId {
    let mut i = lock(&INTERNER);
    if let Some(&id) = i.by_text.get(s) {
        return id;
    }
    if i.dynamic >= MAX_DYNAMIC_STRINGS || i.texts.len() >= MAX_STRINGS {
        return OVERFLOW;
    }
    i.dynamic += 1;
    i.add(Cow::Owned(s.to_owned()))
}

/// Interns a call site (the global table; takes its lock).
pub(crate) fn intern_site_global(loc: &'static Location<'static>) -> SiteId {
    let key = (loc.file().as_ptr() as usize, loc.line(), loc.column());
    let mut i = lock(&INTERNER);
    if let Some(&id) = i.by_site.get(&key) {
        return id;
    }
    if i.sites.len() >= MAX_SITES {
        return SiteId(0);
    }
    let file = i.intern_static(loc.file());
    let id = SiteId(i.sites.len() as u32);
    i.sites.push(SiteRec {
        file,
        line: loc.line(),
        col: loc.column(),
    });
    i.by_site.insert(key, id);
    id
}

/// How much of the tables a trace has been given so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TableMark {
    pub(crate) strings: usize,
    pub(crate) sites: usize,
    /// The generation of the module records written (see `os::encode_modules`).
    pub(crate) modules: u64,
}

/// Adds the strings and sites defined since `from` to `enc`; returns the new mark.
pub(crate) fn encode_since(from: TableMark, enc: &mut TableEncoder) -> TableMark {
    let i = lock(&INTERNER);
    for (n, t) in i.texts.iter().enumerate().skip(from.strings) {
        enc.string(StrId(n as u32), t);
    }
    for (n, s) in i.sites.iter().enumerate().skip(from.sites.max(1)) {
        enc.site(SiteId(n as u32), s.file, s.line, s.col);
    }
    TableMark {
        strings: i.texts.len(),
        sites: i.sites.len(),
        ..from
    }
}

/// Entries in a thread's name cache (a power of two).
pub(crate) const NAME_CACHE_LEN: usize = 64;
/// Entries in a thread's site cache (a power of two).
pub(crate) const SITE_CACHE_LEN: usize = 32;

/// A per-thread direct-mapped cache of `&'static str` -> id.
#[derive(Debug)]
pub(crate) struct NameCache {
    keys: [(usize, usize); NAME_CACHE_LEN],
    ids: [u32; NAME_CACHE_LEN],
}

impl NameCache {
    pub(crate) fn new() -> Self {
        NameCache {
            keys: [(0, 0); NAME_CACHE_LEN],
            ids: [0; NAME_CACHE_LEN],
        }
    }

    #[inline(always)]
    fn slot(ptr: usize) -> usize {
        (ptr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - 6)) & (NAME_CACHE_LEN - 1)
    }

    /// The id of `s` if it is cached (no call: for the hot path).
    #[inline(always)]
    pub(crate) fn lookup(&self, s: &'static str) -> Option<StrId> {
        let key = (s.as_ptr() as usize, s.len());
        let i = Self::slot(key.0);
        (self.keys[i] == key).then(|| StrId(self.ids[i]))
    }

    /// The id of `s`, interning it on a miss.
    #[inline(always)]
    pub(crate) fn get(&mut self, s: &'static str) -> StrId {
        let key = (s.as_ptr() as usize, s.len());
        let i = Self::slot(key.0);
        if self.keys[i] == key {
            StrId(self.ids[i])
        } else {
            self.miss(s, i)
        }
    }

    #[cold]
    #[inline(never)]
    fn miss(&mut self, s: &'static str, i: usize) -> StrId {
        let id = intern_global(s);
        self.keys[i] = (s.as_ptr() as usize, s.len());
        self.ids[i] = id.0;
        id
    }
}

/// A per-thread direct-mapped cache of `&'static Location` -> site id.
#[derive(Debug)]
pub(crate) struct SiteCache {
    keys: [usize; SITE_CACHE_LEN],
    ids: [u32; SITE_CACHE_LEN],
}

impl SiteCache {
    pub(crate) fn new() -> Self {
        SiteCache {
            keys: [0; SITE_CACHE_LEN],
            ids: [0; SITE_CACHE_LEN],
        }
    }

    /// The id of `loc`, interning it on a miss.
    #[inline]
    pub(crate) fn get(&mut self, loc: &'static Location<'static>) -> SiteId {
        let key = loc as *const Location<'static> as usize;
        let i =
            (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - 5)) & (SITE_CACHE_LEN - 1);
        if self.keys[i] == key {
            return SiteId(self.ids[i]);
        }
        let id = intern_site_global(loc);
        self.keys[i] = key;
        self.ids[i] = id.0;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_an_id_and_the_cache_agrees() {
        let a: &'static str = "intern-test-name";
        let b: &'static str = Box::leak(String::from("intern-test-name").into_boxed_str());
        let mut cache = NameCache::new();
        let ia = cache.get(a);
        assert_eq!(cache.get(b), ia);
        assert_eq!(cache.get(a), ia);
        assert_eq!(intern_dynamic("intern-test-name"), ia);
        assert_ne!(ia, OVERFLOW);
        let mut enc = TableEncoder::new();
        let mark = encode_since(TableMark::default(), &mut enc);
        assert!(mark.strings > ia.0 as usize);
    }

    #[test]
    fn sites_resolve_to_file_line_col() {
        let loc = Location::caller();
        let mut cache = SiteCache::new();
        let id = cache.get(loc);
        assert_ne!(id, SiteId(0));
        assert_eq!(cache.get(loc), id);
        assert_eq!(intern_site_global(loc), id);
    }
}
