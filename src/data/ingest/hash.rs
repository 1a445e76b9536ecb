//! Fast non-cryptographic hashing of keys (the keys come from the operator's own files).

use super::*;

#[inline]
pub(super) fn mix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z ^ (z >> 32)
}

#[inline]
pub(super) fn hash_bytes(seed: u64, b: &[u8]) -> u64 {
    const K: u64 = 0x517C_C1B7_2722_0A95;
    let mut h = seed ^ (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(chunks.remainder()) {
        *d = *s;
    }
    h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    mix64(h)
}

/// Hasher for integer keys and short strings (fast, not DoS-resistant: keys come from the
/// operator's own files).
#[derive(Default, Clone, Copy)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(self.0, bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = mix64(self.0.rotate_left(23) ^ i ^ 0x9E37_79B9_7F4A_7C15);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
}

/// Builds [`MixHasher`]s (for `HashMap<K, V, MixState>`).
#[derive(Default, Clone, Copy)]
pub struct MixState;

impl BuildHasher for MixState {
    type Hasher = MixHasher;
    fn build_hasher(&self) -> MixHasher {
        MixHasher(0)
    }
}

pub(super) type FastMap<K, V> = HashMap<K, V, MixState>;

/// Text of a float id or size: integral values without a fraction (`8.0` -> `8`), others
/// in the shortest round-trip form (`8.5`).
pub(super) fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_text_drops_integral_fraction() {
        assert_eq!(float_text(8.0), "8");
        assert_eq!(float_text(8.5), "8.5");
        assert_eq!(float_text(-2.0), "-2");
    }
}
