//! The recording hot path, `region!` to the bytes in the chunk, in one file.
//!
//! `region!("db")` keeps a [`StaticName`] in a `static` at its call site and calls
//! [`region_static`], inlined there. With recording off that is one relaxed load and a
//! branch ([`enabled`]). With it on, and nothing unusual, the begin is:
//!
//! 1. the name's id: one relaxed load of the call site's `StaticName`;
//! 2. the thread's [`Local`]: one load of a const thread-local pointer ([`peek_local`],
//!    through `tls::ThreadBox`, which marks it lent out while the closure runs);
//! 3. [`Local::try_pair`]: room for the event ([`ChunkWriter::fast_room`], one compare),
//!    the counter ([`crate::clock::counter_ticks`], `rdtsc`), and, when both the delta and
//!    the name's operand fit a byte, one 2-byte store and the `Release` store of the
//!    chunk's committed word ([`Room::write_pair`]), a plain `mov` on x86; a name past the
//!    first 32 (its operand two bytes) is one 4-byte store of a 3-byte event instead
//!    ([`Room::write_triple`]).
//!
//! The guard's drop does the same for the end ([`Local::try_pair_end`]), with only the
//! one-byte case inline, so that the drop stays small enough to be inlined too. Nothing
//! here locks, allocates, makes a system call or writes memory another thread writes, and
//! nothing makes a call: the length of the event is chosen by predictable branches, never
//! computed from the delta, so the stores do not wait on the counter (HOTPATH.md).
//! Anything unusual (first use of a name or of the thread, a full chunk, a delta past one
//! byte, a name id past 4,095, the end of a region named past the first 32, the fallback
//! clock) goes to a cold function that does it all with calls (`local.rs`).
//!
//! `cargo bench -p fdr-benches --bench record -- record` measures it against the floor of
//! two timestamped thread-local stores (`record.region_ratio_to_floor`). Inlining the
//! begin matters: six interleaved runs of each build gave 1.008-1.066 inlined, 1.04-1.12
//! with the begin out of line (as at commit 0b565d8). `region(&str)` is inlined the same
//! way, its name's id read from the name's home slot in the interned names' table (one
//! multiply and two loads); a name elsewhere in the table goes out of line.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

use fdr_format::StrId;
use fdr_format::encode;
use fdr_format::wire::{CODE_BITS, CODE_REGION_BEGIN, CODE_REGION_END, MAX_SMALL_EVENT_LEN};

use crate::chunk::word_step;
#[cfg(doc)]
use crate::chunk::{ChunkWriter, Room};
use crate::local::{Local, register};
use crate::tls::{ThreadBox, with_tls};

thread_local! {
    /// This thread's recorder: set by `register` on its first event, taken back at exit.
    pub(crate) static LOCAL: ThreadBox<Local> = const { ThreadBox::new() };
}

/// Whether recording is on: one relaxed load. Instrumentation may skip work when it is off.
#[inline(always)]
pub fn enabled() -> bool {
    crate::SWITCHES.enabled.load(Ordering::Relaxed)
}

/// Runs `f` with this thread's recorder, registering the thread on its first event.
/// `None` (the event is counted and dropped) once the thread's storage is being torn down,
/// or when called from inside the recorder on this thread.
#[inline(always)]
pub(crate) fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    with_tls(&LOCAL, |cell| {
        if cell.state().is_err() {
            register(cell)?;
        }
        cell.with(f).ok()
    })
}

/// This thread's recorder if it is registered (never registers).
#[inline(always)]
pub(crate) fn peek_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    with_tls(&LOCAL, |cell| cell.with(f).ok())
}

impl Local {
    /// Records a small event (a static log, a task event) if the buffer has room and the
    /// counter is the clock (one check: `fast_room` gives none otherwise). Makes no call, so
    /// an out-of-line entry point built on it is a leaf that saves no registers; `false`
    /// (nothing recorded) sends the caller to its slow path, which does the rest with calls.
    ///
    /// `N` is the room the event's writer needs (up to `WRITE_RESERVE`). `depth` is the
    /// event's change of the thread's scope depth (+1 a begin, -1 an end, 0 otherwise),
    /// published in the committed word (`chunk::COMMITTED_DEPTH`).
    #[inline(always)]
    pub(crate) fn try_small<const N: usize>(
        &mut self,
        f: impl FnOnce(&mut [u8; N], u64) -> usize,
        depth: i64,
    ) -> bool {
        let Some(room) = self.w.fast_room() else {
            return false;
        };
        let now = crate::clock::counter_ticks();
        let delta = now.saturating_sub(self.last_ts);
        self.last_ts += delta;
        room.write(|out| f(out, delta), word_step(1, depth));
        true
    }

    /// [`Local::try_small`] for an event of two varints, the delta and `operand` (a region
    /// begin or end): when both fit a byte, as they do for back-to-back regions with one of
    /// the first 32 names, the event is one 2-byte store; when the delta fits a byte and the
    /// operand two (names 32 to 4095), one 4-byte store of which 3 bytes are the event (the
    /// fourth lies in the writer's reserve and the next event overwrites it). Each length is
    /// chosen by a branch, never computed from the delta, so the store does not wait on the
    /// counter. `depth`: +1 a begin, -1 an end.
    #[inline(always)]
    pub(crate) fn try_pair(&mut self, operand: u64, depth: i64) -> bool {
        let Some(room) = self.w.fast_room() else {
            return false;
        };
        let now = crate::clock::counter_ticks();
        let delta = now.wrapping_sub(self.last_ts);
        if delta < 0x80 && operand < 0x80 {
            self.last_ts = now;
            // The delta's byte first, then the operand's.
            room.write_pair([delta as u8, operand as u8], word_step(1, depth));
        } else if delta < 0x80 && operand < 0x4000 {
            self.last_ts = now;
            room.write_triple(triple_word(delta, operand), word_step(1, depth));
        } else {
            pair_long(room, &mut self.last_ts, now, operand, depth);
        }
        true
    }
}

impl Local {
    /// [`Local::try_pair`] for a region's end, in its guard's drop: only the common case
    /// (the delta and the name's operand each fit a byte: one 2-byte store) is inline; any
    /// other (a name past the first 32 among them) goes to [`pair_end_wide`], out of line.
    /// The guard's drop glue, which no attribute reaches, is then small enough for LLVM to
    /// inline at the call site. With `try_pair`'s two-byte-name case in it, it was not:
    /// every region's end, and every disabled site's, was a call to
    /// `drop_in_place<RegionGuard>` (objdump of a `region!` loop in a crate depending on
    /// this one). `cargo bench -p fdr-benches --bench record -- record`, medians of five
    /// runs, AMD EPYC: `record.disabled_ns` 3.3 ns with the call, 0.02 without;
    /// `record.region_ratio_to_floor` 1.12 with it, 1.08 without.
    #[inline(always)]
    pub(crate) fn try_pair_end(&mut self, operand: u64) -> bool {
        let Some(room) = self.w.fast_room() else {
            return false;
        };
        let now = crate::clock::counter_ticks();
        let delta = now.wrapping_sub(self.last_ts);
        if delta < 0x80 && operand < 0x80 {
            self.last_ts = now;
            room.write_pair([delta as u8, operand as u8], word_step(1, -1));
        } else {
            pair_end_wide(room, &mut self.last_ts, now, operand);
        }
        true
    }
}

/// A 3-byte pair event in the low bytes of a word: the delta's byte (under 2^7), then the
/// operand (under 2^14) as a two-byte LEB128 varint.
#[inline(always)]
fn triple_word(delta: u64, operand: u64) -> u32 {
    delta as u32 | ((operand as u32 & 0x7f) | 0x80) << 8 | (operand as u32 >> 7) << 16
}

/// [`Local::try_pair_end`]'s other case: a name past the first 32 (its operand two bytes:
/// one 4-byte store of a 3-byte event, as [`Local::try_pair`] writes it inline), or a longer
/// delta or operand. Out of line but not cold: a service with many region names ends most
/// of its regions here.
#[inline(never)]
fn pair_end_wide(room: crate::chunk::Room<'_>, last_ts: &mut u64, now: u64, operand: u64) {
    let delta = now.wrapping_sub(*last_ts);
    if delta < 0x80 && operand < 0x4000 {
        *last_ts = now;
        room.write_triple(triple_word(delta, operand), word_step(1, -1));
    } else {
        pair_long(room, last_ts, now, operand, -1);
    }
}

impl Local {
    /// [`Local::try_small`] for a static log, `head` (the category's operand) and `message`
    /// (the message's id, shifted): [`Local::try_log_operands`] once they are encoded. When
    /// either takes more than two varint bytes nothing is recorded (`false`): the caller's
    /// slow path writes the event. Each operand's length is chosen by a branch on the name
    /// (the same at every call of a site), never on the delta, so the store does not wait
    /// on the counter.
    #[inline(always)]
    pub(crate) fn try_log(&mut self, head: u64, message: u64) -> bool {
        log_operands(head, message)
            .is_some_and(|(operands, len)| self.try_log_operands(operands, len))
    }
}

impl Local {
    /// [`Local::try_log`] with the operands encoded once, at the call site
    /// ([`crate::api::StaticLog`]): `operands` holds the category's head and the message's
    /// operand as LEB128 varints, back to back, in its low `len` bytes (2 to 4; see
    /// [`log_operands`]). When the delta fits a byte the event is one 8-byte store of the
    /// delta and that word, the bytes past it in the writer's reserve.
    #[inline(always)]
    pub(crate) fn try_log_operands(&mut self, operands: u64, len: usize) -> bool {
        let Some(room) = self.w.fast_room() else {
            return false;
        };
        let now = crate::clock::counter_ticks();
        let delta = now.wrapping_sub(self.last_ts);
        if delta < 0x80 {
            self.last_ts = now;
            let word = delta | operands << 8;
            room.write(
                |out: &mut [u8; 8]| {
                    *out = word.to_le_bytes();
                    1 + len
                },
                word_step(1, 0),
            );
        } else {
            log_long_operands(room, &mut self.last_ts, now, operands, len);
        }
        true
    }
}

/// A static log's operands, the category's `head` and the `message`'s id shifted past its
/// inline flag, encoded as [`Local::try_log_operands`] takes them: their varints back to back
/// in the low bytes of the word, and the total length. `None` when either is 2^14 or more
/// (more than two varint bytes).
#[inline(always)]
pub(crate) fn log_operands(head: u64, message: u64) -> Option<(u64, usize)> {
    if head >= 0x4000 || message >= 0x4000 {
        return None;
    }
    let (h, h_len) = short_varint(head);
    let (m, m_len) = short_varint(message);
    Some((h | m << (8 * h_len), h_len + m_len))
}

/// [`Local::try_log_operands`]'s other case: a longer delta, or the clock stepped back.
#[cold]
#[inline(never)]
fn log_long_operands(
    room: crate::chunk::Room<'_>,
    last_ts: &mut u64,
    now: u64,
    operands: u64,
    len: usize,
) {
    let delta = now.saturating_sub(*last_ts);
    *last_ts += delta;
    room.write(
        |out: &mut [u8; MAX_SMALL_EVENT_LEN]| {
            let n = fdr_format::varint::put_fast(out, 0, delta);
            out[n..n + 8].copy_from_slice(&operands.to_le_bytes());
            n + len
        },
        word_step(1, 0),
    );
}

/// A value under 2^14 as a LEB128 varint in the low bytes of the result, and its length.
#[inline(always)]
fn short_varint(v: u64) -> (u64, usize) {
    if v < 0x80 {
        (v, 1)
    } else {
        ((v & 0x7f) | 0x80 | (v >> 7) << 8, 2)
    }
}

/// [`Local::try_pair`]'s other case: a longer delta or operand, or the clock stepped back
/// (the wrapped delta is huge: saturate). Out of line, so the common case keeps few
/// registers; a call in tail position costs the common case nothing.
#[cold]
#[inline(never)]
fn pair_long(room: crate::chunk::Room<'_>, last_ts: &mut u64, now: u64, operand: u64, depth: i64) {
    let delta = now.saturating_sub(*last_ts);
    *last_ts += delta;
    room.write(
        |out: &mut [u8; MAX_SMALL_EVENT_LEN]| {
            let n = fdr_format::varint::put_fast(out, 0, delta);
            n + fdr_format::varint::put_fast(out, n, operand)
        },
        word_step(1, depth),
    );
}

/// A static name interned once per call site: [`region!`](crate::region!) keeps one in a
/// `static`, so a region's name costs one relaxed load instead of a cache lookup.
#[derive(Debug)]
pub struct StaticName {
    name: &'static str,
    /// The name's id plus one; 0 until the first use interns it.
    id: AtomicU32,
}

impl StaticName {
    /// A name, not interned yet.
    pub const fn new(name: &'static str) -> Self {
        StaticName {
            name,
            id: AtomicU32::new(0),
        }
    }

    /// The text.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The name's id, interning it on first use. Every thread gets the same id (the global
    /// interner decides it), so a race between first uses stores the same value twice.
    #[inline(always)]
    pub fn id(&self) -> StrId {
        self.cached().unwrap_or_else(|| self.intern())
    }

    /// The id if it was interned already.
    #[inline(always)]
    fn cached(&self) -> Option<StrId> {
        match self.id.load(Ordering::Relaxed) {
            0 => None,
            v => Some(StrId(v - 1)),
        }
    }

    #[cold]
    #[inline(never)]
    fn intern(&self) -> StrId {
        let id = crate::intern::intern_global(self.name);
        self.id.store(id.0 + 1, Ordering::Relaxed);
        id
    }
}

/// Begins a region whose name (a `&'static str` constant) is interned once per call site;
/// it ends when the returned guard drops. The fastest way to record a region.
///
/// ```
/// fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
/// let _r = fdr_recorder::region!("db");
/// ```
#[macro_export]
macro_rules! region {
    ($name:expr) => {{
        static __FDR_REGION_NAME: $crate::__macro_support::StaticName =
            $crate::__macro_support::StaticName::new($name);
        $crate::__macro_support::region_static(&__FDR_REGION_NAME)
    }};
}

/// Begins a region whose name is interned once per call site (what [`region!`](crate::region!)
/// expands to). Always inlined: the begin and end then cost no call, whatever the
/// compiler's size estimate of the call site says.
#[inline(always)]
pub fn region_static(name: &'static StaticName) -> RegionGuard {
    if enabled() {
        match region_begin_static(name) {
            Some(g) => g,
            None => region_begin_static_slow(name),
        }
    } else {
        RegionGuard::OFF
    }
}

/// `None`: nothing recorded; the caller takes the slow path. Inlined into each `region!`
/// site.
#[inline(always)]
fn region_begin_static(name: &'static StaticName) -> Option<RegionGuard> {
    let id = name.cached()?;
    (peek_local(|l| l.try_pair(region_head(id, CODE_REGION_BEGIN), 1)) == Some(true))
        .then(|| active_region(id))
}

#[cold]
#[inline(never)]
fn region_begin_static_slow(name: &'static StaticName) -> RegionGuard {
    region_begin_slow(|_| name.id())
}

/// Begins a region named `name` on this thread; it ends when the guard drops.
/// [`region!`](crate::region!) does the same with the name's id kept per call site.
///
/// Disabled, this is one relaxed load and a branch. Enabled, the common case is inlined:
/// the name's id read from its home slot in the table of interned static names (one
/// multiply and two loads; `intern::StaticNames::home_id`), then `region!`'s begin; any
/// other name (one that shares its home slot, or was never published there) takes an
/// out-of-line path that looks further.
#[inline(always)]
pub fn region(name: &'static str) -> RegionGuard {
    if enabled() {
        match region_begin_str(name) {
            Some(g) => g,
            None => region_begin_str_slow(name),
        }
    } else {
        RegionGuard::OFF
    }
}

/// `None`: nothing recorded; the caller takes the slow path. Inlined into each call.
#[inline(always)]
fn region_begin_str(name: &'static str) -> Option<RegionGuard> {
    let id = crate::intern::STATIC_NAMES.home_id(name)?;
    (peek_local(|l| l.try_pair(region_head(id, CODE_REGION_BEGIN), 1)) == Some(true))
        .then(|| active_region(id))
}

#[cold]
#[inline(never)]
fn region_begin_str_slow(name: &'static str) -> RegionGuard {
    region_begin_slow(|l| l.names.get(name))
}

#[inline(always)]
fn region_begin_slow(id: impl FnOnce(&mut Local) -> StrId) -> RegionGuard {
    with_local(|l| {
        let id = id(l);
        l.small(|out, delta| encode::region_begin(out, delta, id), 1);
        id
    })
    .map_or(RegionGuard::OFF, active_region)
}

/// A region or log event's operand (as `encode::region_begin`, `region_end` and
/// `log_static` write it: the name's id, then the code).
#[inline(always)]
pub(crate) fn region_head(name: StrId, code: u8) -> u64 {
    ((name.0 as u64) << CODE_BITS) | code as u64
}

/// A region in progress; ends (records its end) when dropped, on the same thread.
#[must_use = "a region ends when its guard is dropped"]
#[derive(Debug)]
pub struct RegionGuard {
    name: StrId,
    active: bool,
    _not_send: PhantomData<*const ()>,
}

impl RegionGuard {
    const OFF: RegionGuard = RegionGuard {
        name: StrId(0),
        active: false,
        _not_send: PhantomData,
    };
}

#[inline(always)]
fn active_region(name: StrId) -> RegionGuard {
    RegionGuard {
        name,
        active: true,
        _not_send: PhantomData,
    }
}

impl Drop for RegionGuard {
    #[inline(always)]
    fn drop(&mut self) {
        if self.active
            && let Err(name) = region_end(self.name)
        {
            region_end_slow(name);
        }
    }
}

/// `Err(name)`: nothing recorded; the caller takes the slow path. Inlined.
#[inline(always)]
fn region_end(name: StrId) -> Result<(), StrId> {
    match peek_local(|l| l.try_pair_end(region_head(name, CODE_REGION_END))) {
        Some(true) => Ok(()),
        _ => Err(name),
    }
}

#[cold]
#[inline(never)]
fn region_end_slow(name: StrId) {
    with_local(|l| l.small(|out, delta| encode::region_end(out, delta, name), -1));
}

/// Runs `f` inside a region named `name`.
#[inline]
pub fn with_region<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let _g = region(name);
    f()
}

#[cfg(test)]
mod tests {
    use super::{log_operands, short_varint};
    use fdr_format::StrId;
    use fdr_format::wire::{CODE_LOG, MAX_SMALL_EVENT_LEN};

    /// A call site's encoded operands, after a one-byte delta, are the bytes the format's
    /// encoder writes for the same static log, for ids on each side of every length's edge;
    /// past two bytes the site keeps none.
    #[test]
    fn log_operands_are_the_encoders_bytes() {
        let ids = [
            0u32,
            1,
            31,
            32,
            63,
            64,
            2047,
            4095,
            4096,
            8191,
            8192,
            1 << 20,
        ];
        for &c in &ids {
            for &m in &ids {
                let (c, m) = (StrId(c), StrId(m));
                let mut want = [0u8; MAX_SMALL_EVENT_LEN];
                let want_len = fdr_format::encode::log_static(&mut want, 5, c, m);
                let got = log_operands(super::region_head(c, CODE_LOG), u64::from(m.0) << 1);
                let fits = c.0 < 4096 && m.0 < 8192;
                assert_eq!(got.is_some(), fits, "ids {c:?} {m:?}");
                if let Some((word, len)) = got {
                    let mut bytes = vec![5u8];
                    bytes.extend_from_slice(&word.to_le_bytes()[..len]);
                    assert_eq!(bytes, want[..want_len], "ids {c:?} {m:?}");
                    assert_eq!(word >> (8 * len), 0, "bytes past the operands");
                }
            }
        }
    }

    /// `short_varint` is the log fast path's encoder of its operands: its low bytes must be
    /// the format's LEB128 varint, byte for byte, for every value the fast path gives it
    /// (under 2^14), and the bytes past its length must be zero (they land in the event's
    /// next operand).
    #[test]
    fn short_varint_writes_the_formats_varint_for_every_value_under_2_14() {
        for v in 0..0x4000u64 {
            let (word, len) = short_varint(v);
            let mut want = [0u8; fdr_format::wire::MAX_VARINT_LEN];
            let want_len = fdr_format::varint::put_slow(&mut want, v);
            assert_eq!(len, want_len, "length of {v:#x}");
            assert_eq!(
                &word.to_le_bytes()[..len],
                &want[..want_len],
                "bytes of {v:#x}"
            );
            assert_eq!(word >> (8 * len), 0, "bytes past the varint of {v:#x}");
        }
        // The boundaries, spelt out: one byte up to 0x7f, two from 0x80 to 0x3fff.
        assert_eq!(short_varint(0), (0x00, 1));
        assert_eq!(short_varint(0x7f), (0x7f, 1));
        assert_eq!(short_varint(0x80), (0x01_80, 2));
        assert_eq!(short_varint(0x3fff), (0x7f_ff, 2));
    }
}
