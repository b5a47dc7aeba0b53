//! PLACEHOLDER until the real renderer lands.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone)]
pub struct Identity {
    pub seed: u64,
    pub skin: [f32; 3],
    pub face_w: f32,
}

impl Identity {
    pub fn from_seed(seed: u64) -> Identity {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let t: f32 = r.random();
        Identity {
            seed,
            skin: [0.3 + 0.6 * t, 0.2 + 0.5 * t, 0.15 + 0.45 * t],
            face_w: r.random_range(0.26..0.34),
        }
    }
}
