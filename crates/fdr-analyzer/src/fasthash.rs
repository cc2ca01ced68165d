//! A keyed hash for the maps the profile looks up on every event (live tasks by id, awaits
//! by key, threads by id), in place of SipHash, which cost a tenth of the profile's time.
//!
//! Each value written is mixed by a folded 64×64→128-bit multiply with a key drawn once per
//! process from the standard library's random hasher keys, so a trace cannot choose ids
//! that collide (the maps stay as fast on crafted ids as on the recorder's dense ones).

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// The per-process key of [`KeyedState`].
fn process_key() -> u64 {
    static KEY: OnceLock<u64> = OnceLock::new();
    *KEY.get_or_init(|| {
        // RandomState draws its keys from the OS once per thread, then steps them.
        let k = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        k | 1
    })
}

/// Builds [`KeyedHasher`]s that share the process's key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedState {
    key: u64,
}

impl Default for KeyedState {
    fn default() -> Self {
        KeyedState { key: process_key() }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    #[inline]
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            key: self.key,
            h: self.key,
        }
    }
}

/// Hashes fixed-size values (ids, small structs of ids) by folded multiplies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedHasher {
    key: u64,
    h: u64,
}

/// The high and low halves of the 128-bit product, xored: every input bit reaches every
/// output bit.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// An odd constant (the 64-bit golden ratio) for the second multiply.
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(b));
        }
        self.write_u64(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.h = fold_mul(self.h ^ v, MIX ^ self.key);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.h, self.key)
    }
}

/// A `HashMap` hashed by [`KeyedState`].
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, KeyedState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ids_spread_over_the_buckets() {
        // Dense ids and ids that differ only in their high bits both land in most of 1024
        // buckets: no input pattern collapses them.
        let s = KeyedState::default();
        for shift in [0u32, 16, 32, 48] {
            let mut used = vec![false; 1024];
            for i in 0..1024u64 {
                used[(s.hash_one(i << shift) % 1024) as usize] = true;
            }
            let n = used.iter().filter(|&&u| u).count();
            assert!(n > 550, "ids << {shift} used {n} of 1024 buckets");
        }
    }

    #[test]
    fn equal_keys_hash_equal_and_a_map_finds_them() {
        let mut m: FastMap<(u32, u64), usize> = FastMap::default();
        for i in 0..10_000u64 {
            m.insert((i as u32, i * 7), i as usize);
        }
        assert!((0..10_000u64).all(|i| m.get(&(i as u32, i * 7)) == Some(&(i as usize))));
        assert_eq!(m.get(&(1, 8)), None);
    }
}
