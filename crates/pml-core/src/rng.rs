//! A small seeded random number generator for the samplers inside losses and miners.
//!
//! SplitMix64: fast, statistically sound for sampling indices, and stable across versions, so
//! a seed gives the same draws on every platform and every release of pml-rs.

use std::sync::Mutex;

/// A seeded generator that can be shared by `&self` methods (a loss's `forward`).
///
/// Cloning copies the current state, so a clone continues the same sequence independently.
#[derive(Debug)]
pub struct SeededRng {
    state: Mutex<u64>,
}

impl SeededRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n`.
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&self, n: usize) -> usize {
        assert!(n > 0, "SeededRng::below: n must be positive, got 0");
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A uniform float in `[0, 1)`.
    pub fn uniform(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Clone for SeededRng {
    fn clone(&self) -> Self {
        let s = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self {
            state: Mutex::new(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws_and_uniform_spread() {
        let (a, b) = (SeededRng::new(7), SeededRng::new(7));
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            let x = a.below(4);
            assert_eq!(x, b.below(4));
            counts[x] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }
}
