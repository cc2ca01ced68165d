//! Interning: names and call sites become small ids that events carry; the tables that
//! resolve them are written into every trace.
//!
//! The global interner takes a lock. A static name it has interned is also published in
//! [`STATIC_NAMES`], a lock-free open-addressed table keyed by the `&'static str`'s address
//! and length that every thread reads with plain loads and only the interner (under its
//! lock) writes, so the hot path finds any of the first few thousand static names without
//! a lock or a write, however many a service uses. A per-thread direct-mapped cache sits in
//! front of it (and keeps the names the table has no room for, which otherwise take the
//! lock); call sites have a per-thread cache keyed by the `Location`'s address.

use std::borrow::Cow;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
        let id = match self.by_text.get(s) {
            Some(&id) => id,
            None if self.texts.len() >= MAX_STRINGS => return OVERFLOW,
            None => self.add(Cow::Borrowed(s)),
        };
        STATIC_NAMES.publish(s, id);
        id
    }
}

/// Slots of [`STATIC_NAMES`] (a power of two): 256 KiB, touched only where names land.
const STATIC_NAMES_LEN: usize = 1 << 14;
/// Slots a lookup or a publication probes from a name's home slot before giving up.
const STATIC_NAMES_PROBES: usize = 8;

/// One slot: the name's address (0: empty), then its length and id. Written once, by the
/// interner under its lock: `len_id` first, then `addr` with `Release`; a reader that sees
/// the address (`Acquire`) sees the length and id written before it. A slot never changes
/// once its address is set.
struct StaticSlot {
    addr: AtomicUsize,
    /// The name's length (high 32 bits) and id (low 32).
    len_id: AtomicU64,
}

/// Static names to ids, lock-free for readers (see the module docs).
pub(crate) struct StaticNames {
    slots: [StaticSlot; STATIC_NAMES_LEN],
}

/// Every thread's static name table.
pub(crate) static STATIC_NAMES: StaticNames = StaticNames {
    slots: [const {
        StaticSlot {
            addr: AtomicUsize::new(0),
            len_id: AtomicU64::new(0),
        }
    }; STATIC_NAMES_LEN],
};

impl StaticNames {
    #[inline(always)]
    fn home(addr: usize) -> usize {
        (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            >> (usize::BITS - STATIC_NAMES_LEN.trailing_zeros()))
            & (STATIC_NAMES_LEN - 1)
    }

    /// Whether every slot `s` could be published in is taken (by any name).
    #[cfg(test)]
    fn window_is_full(&self, s: &'static str) -> bool {
        self.first_slots_taken(s, STATIC_NAMES_PROBES)
    }

    /// Whether the first `probes` slots from `s`'s home are all taken (by any name).
    #[cfg(test)]
    fn first_slots_taken(&self, s: &'static str, probes: usize) -> bool {
        let mut i = Self::home(s.as_ptr() as usize);
        (0..probes).all(|_| {
            let taken = self.slots[i].addr.load(Ordering::Acquire) != 0;
            i = (i + 1) & (STATIC_NAMES_LEN - 1);
            taken
        })
    }

    /// The id of `s` if the interner published it: no lock, no write, no call. Most lookups
    /// read one slot; at most [`STATIC_NAMES_PROBES`].
    #[inline(always)]
    pub(crate) fn lookup(&self, s: &'static str) -> Option<StrId> {
        self.lookup_within(s, STATIC_NAMES_PROBES)
    }

    /// The id of `s` if the interner published it in its home slot (most names: a name
    /// whose home another took is further on): [`StaticNames::lookup`] reading one slot,
    /// small enough to inline into every `region(&str)` call.
    #[inline(always)]
    pub(crate) fn home_id(&self, s: &'static str) -> Option<StrId> {
        self.lookup_within(s, 1)
    }

    /// [`StaticNames::lookup`] reading at most `probes` slots from the name's home: the hot
    /// path's, small enough to inline (`HOT_PROBES`); a name found further is found by the
    /// full lookup on the slow path.
    #[inline(always)]
    fn lookup_within(&self, s: &'static str, probes: usize) -> Option<StrId> {
        let (addr, len) = (s.as_ptr() as usize, s.len() as u64);
        let mut i = Self::home(addr);
        for _ in 0..probes.min(STATIC_NAMES_PROBES) {
            let slot = &self.slots[i];
            match slot.addr.load(Ordering::Acquire) {
                0 => return None,
                a if a == addr => {
                    let v = slot.len_id.load(Ordering::Relaxed);
                    if v >> 32 == len {
                        return Some(StrId(v as u32));
                    }
                }
                _ => {}
            }
            i = (i + 1) & (STATIC_NAMES_LEN - 1);
        }
        None
    }

    /// Publishes `s` as `id`, if it is not there and a slot within its probes is free
    /// (else lookups miss and callers take the locked path). Only under the interner's lock.
    fn publish(&self, s: &'static str, id: StrId) {
        let (addr, len) = (s.as_ptr() as usize, s.len() as u64);
        if addr == 0 || len > u32::MAX as u64 {
            return;
        }
        let mut i = Self::home(addr);
        for _ in 0..STATIC_NAMES_PROBES {
            let slot = &self.slots[i];
            match slot.addr.load(Ordering::Relaxed) {
                0 => {
                    slot.len_id
                        .store(len << 32 | id.0 as u64, Ordering::Relaxed);
                    slot.addr.store(addr, Ordering::Release);
                    return;
                }
                a if a == addr && slot.len_id.load(Ordering::Relaxed) >> 32 == len => return,
                _ => {}
            }
            i = (i + 1) & (STATIC_NAMES_LEN - 1);
        }
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

/// Slots of [`STATIC_NAMES`] the hot path's lookup reads before it gives up (the slow path
/// reads all [`STATIC_NAMES_PROBES`]): with the table at most a few percent full, a name past
/// its second slot is rare.
const HOT_PROBES: usize = 2;

/// Entries in a thread's name cache (a power of two).
pub(crate) const NAME_CACHE_LEN: usize = 64;
/// Entries in a thread's site cache (a power of two).
pub(crate) const SITE_CACHE_LEN: usize = 32;

/// A per-thread direct-mapped cache of `&'static str` -> id, in front of [`STATIC_NAMES`]
/// (the names a thread uses most stay in its own lines) and behind it for the names the
/// table has no room for.
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

    /// The id of `s` if it is published in [`STATIC_NAMES`] within [`HOT_PROBES`] slots of
    /// its home, as nearly every name is, or this cache holds it (no call: for the hot path).
    /// The shared table first: it holds every name a service uses, where this cache's
    /// [`NAME_CACHE_LEN`] lines miss when a thread cycles through more names than that. A name
    /// found by neither is found by [`NameCache::get`].
    #[inline(always)]
    pub(crate) fn lookup(&self, s: &'static str) -> Option<StrId> {
        if let Some(id) = STATIC_NAMES.lookup_within(s, HOT_PROBES) {
            return Some(id);
        }
        let key = (s.as_ptr() as usize, s.len());
        let i = Self::slot(key.0);
        (self.keys[i] == key).then(|| StrId(self.ids[i]))
    }

    /// The id of `s`: from this cache, else [`STATIC_NAMES`], else interned (locked); the
    /// cache keeps it.
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
        let id = STATIC_NAMES.lookup(s).unwrap_or_else(|| intern_global(s));
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
    fn static_names_are_published_and_found_without_the_lock() {
        let text: &'static str = Box::leak(String::from("static-names-test-name").into_boxed_str());
        let (whole, prefix) = (text, &text[..12]);
        assert_eq!(STATIC_NAMES.lookup(whole), None, "not interned yet");
        let (a, b) = (intern_global(whole), intern_global(prefix));
        assert_ne!(a, b, "same address, another length: another name");
        assert_eq!(STATIC_NAMES.lookup(whole), Some(a));
        assert_eq!(STATIC_NAMES.lookup(prefix), Some(b));
        // A service's thousands of names are all found.
        let names: Vec<&'static str> = (0..3000)
            .map(|k| &*Box::leak(format!("static-names-test-{k}").into_boxed_str()))
            .collect();
        let ids: Vec<StrId> = names.iter().map(|n| intern_global(n)).collect();
        let mut cache = NameCache::new();
        // The table is shared with the other tests, one of which fills a probe window on
        // purpose: a name may miss only when its whole window is taken (then the interner's
        // lock finds it), and a miss is rare; the hot path's shorter look misses a name only
        // when the slots it reads are taken by others, and the slow path finds it, which
        // the thread's cache then keeps.
        let mut missed = 0;
        for (n, id) in names.iter().zip(&ids) {
            match STATIC_NAMES.lookup(n) {
                Some(got) => assert_eq!(got, *id, "{n}"),
                None => {
                    assert!(STATIC_NAMES.window_is_full(n), "{n} not published");
                    missed += 1;
                }
            }
            // `region(&str)`'s inlined look: the id, or the home slot is another name's.
            match STATIC_NAMES.home_id(n) {
                Some(got) => assert_eq!(got, *id, "{n}"),
                None => assert!(
                    STATIC_NAMES.first_slots_taken(n, 1),
                    "{n} missed in its home slot with the slot free"
                ),
            }
            match cache.lookup(n) {
                Some(got) => assert_eq!(got, *id, "{n}"),
                None => {
                    assert!(
                        STATIC_NAMES.first_slots_taken(n, HOT_PROBES),
                        "{n} missed by the hot path with a free slot in its reach"
                    );
                    assert_eq!(cache.get(n), *id, "{n}");
                    assert_eq!(
                        cache.lookup(n),
                        Some(*id),
                        "{n}: kept by the thread's cache"
                    );
                }
            }
        }
        assert!(
            missed <= names.len() / 100,
            "{missed} of {} missed",
            names.len()
        );
    }

    #[test]
    fn names_past_a_full_probe_window_still_get_their_ids() {
        // One-byte names at addresses that share a home slot: more than a lookup probes.
        let buf: &'static str = Box::leak("x".repeat(1 << 20).into_boxed_str());
        let home = StaticNames::home(buf.as_ptr() as usize);
        let same_home: Vec<&'static str> = (0..buf.len())
            .map(|k| &buf[k..k + 1])
            .filter(|s| StaticNames::home(s.as_ptr() as usize) == home)
            .take(STATIC_NAMES_PROBES + 2)
            .collect();
        assert_eq!(same_home.len(), STATIC_NAMES_PROBES + 2);
        let mut cache = NameCache::new();
        let ids: Vec<StrId> = same_home.iter().map(|s| cache.get(s)).collect();
        // Equal texts share an id, whatever their address.
        assert!(ids.iter().all(|&id| id == ids[0]));
        let published = same_home
            .iter()
            .filter(|s| STATIC_NAMES.lookup(s) == Some(ids[0]))
            .count();
        assert!(
            published <= STATIC_NAMES_PROBES,
            "{published} in a window of {STATIC_NAMES_PROBES}"
        );
        for s in &same_home {
            assert_eq!(cache.get(s), ids[0]);
            assert!(STATIC_NAMES.lookup(s).is_none_or(|id| id == ids[0]));
        }
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
