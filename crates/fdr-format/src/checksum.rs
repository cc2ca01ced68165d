//! The batch checksum: four independent 64-bit lanes over 8-byte little-endian words,
//! folded to 32 bits. Fast enough that verifying costs less than decoding
//! (several GB/s), strong enough to catch flipped bits and torn writes. Not cryptographic.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;

#[inline(always)]
fn round(acc: u64, word: u64) -> u64 {
    acc.wrapping_add(word.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// Checksum of `data`, continuing from `seed`.
pub fn check64(data: &[u8], seed: u64) -> u64 {
    let mut lanes = [
        seed ^ P1,
        seed.wrapping_add(P2),
        seed.rotate_left(17),
        seed ^ 0x5555,
    ];
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        lanes[0] = round(lanes[0], word(&b[0..]));
        lanes[1] = round(lanes[1], word(&b[8..]));
        lanes[2] = round(lanes[2], word(&b[16..]));
        lanes[3] = round(lanes[3], word(&b[24..]));
    }
    let mut h = lanes[0].rotate_left(1)
        ^ lanes[1].rotate_left(7)
        ^ lanes[2].rotate_left(12)
        ^ lanes[3].rotate_left(18);
    let rest = blocks.remainder();
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        h = round(h, word(w));
    }
    let mut tail = [0u8; 8];
    let r = words.remainder();
    tail[..r.len()].copy_from_slice(r);
    h = round(h, u64::from_le_bytes(tail) ^ ((r.len() as u64) << 56));
    h ^= data.len() as u64;
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h
}

/// The 32-bit checksum stored in a batch header: over the first 24 header bytes, then the payload.
pub fn batch_checksum(header_checked: &[u8], payload: &[u8]) -> u32 {
    let h = check64(payload, check64(header_checked, 0));
    (h ^ (h >> 32)) as u32
}

/// The file-header checksum: over `a` then `b`, as if they were one byte string.
pub fn check_parts(a: &[u8], b: &[u8]) -> u32 {
    let mut whole = Vec::with_capacity(a.len() + b.len());
    whole.extend_from_slice(a);
    whole.extend_from_slice(b);
    batch_checksum(&[], &whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_single_bit_flip_changes_the_checksum() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        let base = batch_checksum(&[0; 24], &data);
        for byte in 0..data.len() {
            for bit in 0..8 {
                let mut d = data.clone();
                d[byte] ^= 1 << bit;
                assert_ne!(batch_checksum(&[0; 24], &d), base, "byte {byte} bit {bit}");
            }
        }
        // Length matters even when the extra bytes are zero.
        let mut longer = data.clone();
        longer.push(0);
        assert_ne!(batch_checksum(&[0; 24], &longer), base);
    }
}
