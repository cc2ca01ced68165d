//! LEB128 varints: seven bits a byte, least significant first, high bit set on all but the last.

use crate::wire::MAX_VARINT_LEN;

/// Writes `v` at the start of `out` and returns how many bytes it took.
///
/// The length is chosen by predictable branches, not computed from the value: the
/// recorder's cursor advance must not wait on the timestamp (see HOTPATH notes in FORMAT.md).
#[inline(always)]
pub fn put_fast<const N: usize>(out: &mut [u8; N], at: usize, v: u64) -> usize {
    debug_assert!(at + MAX_VARINT_LEN <= N);
    if v < 1 << 7 {
        out[at] = v as u8;
        1
    } else if v < 1 << 14 {
        out[at] = v as u8 | 0x80;
        out[at + 1] = (v >> 7) as u8;
        2
    } else if v < 1 << 28 {
        // Three or four bytes (task ids past 16,383): the four 7-bit groups as one 4-byte
        // store, continuation bits on all but the last. A 3-byte varint's fourth byte (0)
        // lies past its end, inside `out` (`at + MAX_VARINT_LEN <= N`), where the next
        // field or event overwrites it or no reader looks.
        let groups = (v & 0x7f) | (v << 1) & 0x7f00 | (v << 2) & 0x7f_0000 | (v << 3) & 0x7f00_0000;
        let (word, n) = if v < 1 << 21 {
            (groups | 0x8080, 3)
        } else {
            (groups | 0x80_8080, 4)
        };
        out[at..at + 4].copy_from_slice(&(word as u32).to_le_bytes());
        n
    } else {
        put_loop(out, at, v)
    }
}

/// The long case of [`put_fast`], inline: a loop rather than a call, so a hot caller that
/// makes no other calls stays a leaf (no registers saved on entry).
#[inline(always)]
fn put_loop<const N: usize>(out: &mut [u8; N], at: usize, mut v: u64) -> usize {
    let mut i = at;
    while v >= 0x80 && i < N - 1 {
        out[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i.min(N - 1)] = v as u8;
    i + 1 - at
}

/// Writes `v` (any size) into `out`, which must have room for [`MAX_VARINT_LEN`] bytes
/// or for the varint's exact length.
#[cold]
#[inline(never)]
pub fn put_slow(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Number of bytes `v` takes as a varint.
#[inline]
pub const fn len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `v` to `out`.
pub fn push(out: &mut Vec<u8>, v: u64) {
    let mut tmp = [0u8; MAX_VARINT_LEN];
    let n = put_slow(&mut tmp, v);
    out.extend_from_slice(&tmp[..n]);
}

/// Reads a varint from `buf` at `*pos`, advancing `*pos`.
/// `None` if the input ends inside it or it does not fit a u64.
#[inline(always)]
pub fn get(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let p = *pos;
    let b0 = *buf.get(p)?;
    if b0 < 0x80 {
        *pos = p + 1;
        return Some(b0 as u64);
    }
    // Two-byte varints (deltas of 128..16383 ticks, ids of 32..4095) are the other
    // common case, and three-byte ones (task ids past 16,383, up to 2,097,151) the next:
    // decoded inline too.
    if let Some(&b1) = buf.get(p + 1) {
        if b1 < 0x80 {
            *pos = p + 2;
            return Some((b0 & 0x7f) as u64 | (b1 as u64) << 7);
        }
        if let Some(&b2) = buf.get(p + 2)
            && b2 < 0x80
        {
            *pos = p + 3;
            return Some((b0 & 0x7f) as u64 | ((b1 & 0x7f) as u64) << 7 | (b2 as u64) << 14);
        }
    }
    get_multi(buf, pos)
}

/// A varint of three or more bytes, byte by byte. (Decoding up to eight bytes from one
/// word without branches runs slower here: it puts the varint's length on the data
/// dependency chain into the next read, where predicted branches do not.)
#[inline]
fn get_multi(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    let mut i = *pos;
    // Bounded: at most MAX_VARINT_LEN turns (shift grows by 7 up to 63).
    loop {
        let b = *buf.get(i)?;
        i += 1;
        if shift == 63 && b > 1 {
            return None;
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            *pos = i;
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_boundaries() {
        for v in [
            0,
            1,
            127,
            128,
            16383,
            16384,
            2_097_151,
            2_097_152,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut a = [0u8; 16];
            let n = put_fast(&mut a, 0, v);
            assert_eq!(n, len(v), "{v}");
            let mut pos = 0;
            assert_eq!(get(&a, &mut pos), Some(v));
            assert_eq!(pos, n);
        }
    }

    #[test]
    fn put_fast_writes_the_bytes_put_slow_writes_at_every_length() {
        let mut values = vec![0u64, u64::MAX];
        for bits in 1..64 {
            values.extend([(1u64 << bits) - 1, 1 << bits, (1 << bits) + 0x55]);
        }
        for v in values {
            let (mut fast, mut slow) = ([0xeeu8; 16], [0xeeu8; 16]);
            let n = put_fast(&mut fast, 3, v);
            assert_eq!(n, put_slow(&mut slow[3..], v), "{v}");
            assert_eq!(fast[..3 + n], slow[..3 + n], "{v}");
        }
    }

    #[test]
    fn every_length_decodes_at_the_end_of_the_buffer_and_before_more_bytes() {
        let mut values = vec![0u64, 1, 127, 128, u64::MAX];
        for bits in 1..64 {
            values.extend([(1u64 << bits) - 1, 1 << bits, (1 << bits) + 0x55]);
        }
        for v in values {
            let mut a = [0u8; 16];
            let n = put_slow(&mut a, v);
            for pad in [0usize, 1, 8] {
                let mut buf = vec![0xAAu8; 3];
                buf.extend_from_slice(&a[..n]);
                buf.extend(std::iter::repeat_n(0xFFu8, pad));
                let mut pos = 3;
                assert_eq!(get(&buf, &mut pos), Some(v), "{v} pad {pad}");
                assert_eq!(pos, 3 + n);
            }
            // Cut one byte short: nothing is read.
            let mut pos = 0;
            assert_eq!(get(&a[..n - 1], &mut pos), None);
            assert_eq!(pos, 0);
        }
    }

    #[test]
    fn fast_and_slow_writers_agree_at_any_offset() {
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, u64::MAX >> shift] {
                for at in [0, 3, 14] {
                    let mut a = [0u8; 24];
                    let mut b = [0u8; 24];
                    let n = put_fast(&mut a, at, v);
                    let m = put_slow(&mut b[at..], v);
                    assert_eq!((n, &a[..]), (m, &b[..]), "{v} at {at}");
                }
            }
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut pos = 0;
        assert_eq!(get(&[0x80, 0x80], &mut pos), None);
        let eleven = [0xffu8; 11];
        assert_eq!(get(&eleven, &mut pos), None);
        // 10th byte may only carry one bit.
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert_eq!(get(&ten, &mut pos), None);
        assert_eq!(pos, 0);
    }
}
