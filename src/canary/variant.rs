//! PLACEHOLDER until the real renderer lands.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone)]
pub struct Variant {
    pub seed: u64,
    pub zoom: f32,
    pub dx: f32,
    pub dy: f32,
    pub angle: f32,
    pub c0: [f32; 3],
    pub c1: [f32; 3],
    pub blobs: Vec<([f32; 2], f32, [f32; 3])>,
}

impl Variant {
    pub fn from_seed(seed: u64) -> Variant {
        let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let col = |r: &mut ChaCha8Rng| [r.random(), r.random(), r.random()];
        let c0 = col(&mut r);
        let c1 = col(&mut r);
        let n = r.random_range(2..5);
        let blobs = (0..n)
            .map(|_| {
                (
                    [r.random(), r.random()],
                    r.random_range(0.15..0.35),
                    col(&mut r),
                )
            })
            .collect();
        Variant {
            seed,
            zoom: r.random_range(1.0..1.35),
            dx: r.random_range(-0.06..0.06),
            dy: r.random_range(-0.06..0.06),
            angle: r.random_range(0.0..std::f32::consts::TAU),
            c0,
            c1,
            blobs,
        }
    }
}
