//! Small deterministic tiles that give surfaces grain: sensor grain over the frame, beard
//! texture, stubble. They are computed once from fixed seeds, so every render sees the same
//! tiles; nothing here may depend on the identity or the variant.

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tiny_skia::{Pixmap, PremultipliedColorU8};

pub const NOISE_SIZE: u32 = 64;
const STUBBLE_SIZE: u32 = 32;

/// Grey noise centred on mid-grey, opaque: neutral under an overlay blend.
pub fn noise() -> Option<&'static Pixmap> {
    static TILE: OnceLock<Option<Pixmap>> = OnceLock::new();
    TILE.get_or_init(make_noise).as_ref()
}

/// Sparse dark dots on transparent: beard stubble and shaved scalps.
pub fn stubble() -> Option<&'static Pixmap> {
    static TILE: OnceLock<Option<Pixmap>> = OnceLock::new();
    TILE.get_or_init(make_stubble).as_ref()
}

fn make_noise() -> Option<Pixmap> {
    let n = NOISE_SIZE as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0f5c_1a7e);
    let raw: Vec<f32> = (0..n * n).map(|_| rng.random::<f32>()).collect();
    // A light blur makes pores rather than pixel static; wrapping keeps the tile seamless.
    let mut soft = vec![0.0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let mut s = 0.0;
            for (dy, dx, w) in [
                (0, 0, 4.0),
                (1, 0, 1.0),
                (n - 1, 0, 1.0),
                (0, 1, 1.0),
                (0, n - 1, 1.0),
            ] {
                s += w * raw[((y + dy) % n) * n + (x + dx) % n];
            }
            soft[y * n + x] = s / 8.0;
        }
    }
    let mut pm = Pixmap::new(NOISE_SIZE, NOISE_SIZE)?;
    for (px, v) in pm.pixels_mut().iter_mut().zip(soft) {
        let g = (128.0 + (v - 0.5) * 300.0).clamp(0.0, 255.0) as u8;
        *px = PremultipliedColorU8::from_rgba(g, g, g, 255)?;
    }
    Some(pm)
}

fn make_stubble() -> Option<Pixmap> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x05ee_d57a_bb1e);
    let mut pm = Pixmap::new(STUBBLE_SIZE, STUBBLE_SIZE)?;
    for px in pm.pixels_mut() {
        let a = if rng.random::<f32>() < 0.4 {
            rng.random_range(120..=255u8)
        } else {
            0
        };
        *px = PremultipliedColorU8::from_rgba(0, 0, 0, a)?;
    }
    Some(pm)
}
