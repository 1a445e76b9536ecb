//! Counter-based random draws: every random number of the event stream is a pure
//! function of (seed, stream, index), so output does not depend on chunking or threads.

/// Weyl increment of SplitMix64.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 finaliser: a fast, well-mixing bijection on `u64`.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One independent stream of draws, keyed by the seed and a stream tag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stream {
    key: u64,
}

impl Stream {
    /// A stream for `seed` and a fixed `tag` naming what it is used for.
    pub(crate) fn new(seed: u64, tag: u64) -> Self {
        Stream {
            key: mix(mix(seed ^ 0x5EED_0F5E_ED00_0000).wrapping_add(mix(tag.wrapping_add(GAMMA)))),
        }
    }

    /// Raw 64 random bits for draw `j` (0..16) of item `index`.
    #[inline]
    pub(crate) fn bits(self, index: u64, j: u64) -> u64 {
        let counter = index.wrapping_mul(16).wrapping_add(j);
        mix(self.key.wrapping_add(counter.wrapping_mul(GAMMA)))
    }

    /// A uniform draw in the open interval (0, 1).
    #[inline]
    pub(crate) fn unit(self, index: u64, j: u64) -> f64 {
        ((self.bits(index, j) >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw (Box-Muller), using draws `j` and `j + 1`.
    #[inline]
    pub(crate) fn normal(self, index: u64, j: u64) -> f64 {
        let u1 = self.unit(index, j);
        let u2 = self.unit(index, j + 1);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A standard logistic draw.
    #[inline]
    pub(crate) fn logistic(self, index: u64, j: u64) -> f64 {
        let u = self.unit(index, j);
        (u / (1.0 - u)).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_deterministic_and_spreads() {
        assert_eq!(mix(0), 0);
        assert_ne!(mix(1), mix(2));
        let s = Stream::new(7, 1);
        assert_eq!(s.bits(10, 3), Stream::new(7, 1).bits(10, 3));
        assert_ne!(s.bits(10, 3), Stream::new(8, 1).bits(10, 3));
        assert_ne!(s.bits(10, 3), Stream::new(7, 2).bits(10, 3));
        assert_ne!(s.bits(10, 3), s.bits(10, 4));
    }

    #[test]
    fn draws_have_the_right_moments() {
        let s = Stream::new(1, 9);
        let n = 200_000u64;
        let (mut su, mut sn, mut sn2, mut sl2) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            let u = s.unit(i, 0);
            assert!(u > 0.0 && u < 1.0);
            su += u;
            let z = s.normal(i, 1);
            sn += z;
            sn2 += z * z;
            let l = s.logistic(i, 3);
            sl2 += l * l;
        }
        let nf = n as f64;
        assert!((su / nf - 0.5).abs() < 0.005);
        assert!((sn / nf).abs() < 0.01);
        assert!((sn2 / nf - 1.0).abs() < 0.02);
        // Var of the standard logistic is pi^2 / 3 = 3.29.
        assert!((sl2 / nf - 3.2899).abs() < 0.08);
    }
}
