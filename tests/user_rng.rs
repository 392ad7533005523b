//! A user's crate depends on rand itself (this package's dev-dependency is
//! the current rand, as a user's would be) and passes its own generators to
//! `new`: rand's own `StdRng` and `SmallRng`, and a generator the user wrote
//! against rand's `TryRng` trait.

use nngraph::prelude::*;
use rand::rngs::{SmallRng, StdRng};
use rand::{SeedableRng, TryRng};
use std::convert::Infallible;

graph! {
    pub Tiny(x: [3]) -> (y) {
        y = Linear(3, 4)(x);
    }
}

/// A counter-based generator (splitmix64), written the way a user would
/// implement rand's trait.
struct SplitMix(u64);

impl TryRng for SplitMix {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.try_next_u64().map(|v| (v >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

fn params_from(rng: &mut impl rand::Rng) -> Vec<f64> {
    Tiny::<f64>::new(rng).params().to_vec()
}

#[test]
fn new_takes_the_users_own_generators() {
    // Linear(3, 4) draws from U(-1/sqrt(3), 1/sqrt(3)), as torch.
    let bound = 1.0 / 3f64.sqrt();
    for params in [
        params_from(&mut StdRng::seed_from_u64(1)),
        params_from(&mut SmallRng::seed_from_u64(1)),
        params_from(&mut SplitMix(1)),
    ] {
        assert_eq!(params.len(), 3 * 4 + 4);
        assert!(params.iter().all(|p| p.abs() <= bound), "{params:?}");
        // Not all equal: the generator was really used.
        assert!(params.iter().any(|&p| p != params[0]));
    }
}

#[test]
fn the_same_user_generator_and_seed_give_the_same_parameters() {
    assert_eq!(params_from(&mut SplitMix(7)), params_from(&mut SplitMix(7)));
    assert_ne!(params_from(&mut SplitMix(7)), params_from(&mut SplitMix(8)));
}
