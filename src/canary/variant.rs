//! What changes from one page view of a person to the next: crop and zoom, background, colour
//! grade, a small change of pose and light. Drawn from its own 64-bit seed, so a token's image
//! is re-rendered from (identity seed, variant seed) alone. Backgrounds and grades are chosen to
//! differ at coarse scale, which keeps the perceptual hashes of two variants far apart; nothing
//! here may change who the person is.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::palette::Rgb;

/// A soft disc of colour laid over the background gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    /// Centre, as fractions of the frame.
    pub x: f32,
    pub y: f32,
    /// Radius, as a fraction of the frame.
    pub radius: f32,
    pub color: Rgb,
    pub alpha: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Background {
    /// Gradient colours, from one edge of the frame to the other.
    pub from: Rgb,
    pub to: Rgb,
    /// Direction of the gradient (radians).
    pub angle: f32,
    /// Two to four soft blobs.
    pub blobs: Vec<Blob>,
}

/// Applied to the finished image through per-channel lookup tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Grade {
    /// -1 cool (blue) to 1 warm (orange).
    pub warmth: f32,
    /// 1 leaves colours alone.
    pub saturation: f32,
    /// Above 1 darkens mid-tones.
    pub gamma: f32,
    /// Around mid-grey; 1 leaves it alone.
    pub contrast: f32,
    /// Uneven light across the whole frame, figure included: exposure changes by up to this
    /// fraction from the frame's centre to its edge...
    pub falloff: f32,
    /// ...in this direction (radians).
    pub falloff_angle: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub seed: u64,
    /// 1.0 to 1.35: how much larger the head is than in the default framing.
    pub zoom: f32,
    /// -1..=1 on each axis: where the head sits within the room the frame leaves it.
    pub pan: (f32, f32),
    /// Added to the identity's roll (radians).
    pub roll: f32,
    /// Added to the identity's yaw (face units).
    pub yaw: f32,
    /// Added to the identity's light direction (radians).
    pub light_turn: f32,
    /// Multiplies the identity's light strength.
    pub light_gain: f32,
    pub background: Background,
    /// What the person wears in this picture: it changes between photos of one person, and
    /// it fills the bottom of the frame, which hashes would otherwise see as constant.
    pub clothing: Rgb,
    pub grade: Grade,
}

fn range(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

fn backdrop_color(rng: &mut ChaCha8Rng, lightness: f32) -> Rgb {
    let hue = rng.random::<f32>();
    let sat = range(rng, 0.1, 0.75);
    Rgb::hsl(hue, sat, lightness)
}

impl Variant {
    pub fn from_seed(seed: u64) -> Variant {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let r = &mut rng;
        let zoom = range(r, 1.0, 1.35);
        let pan = (range(r, -1.0, 1.0), range(r, -1.0, 1.0));
        let roll = range(r, -0.06, 0.06);
        let yaw = range(r, -0.05, 0.05);
        let light_turn = range(r, -0.35, 0.35);
        let light_gain = range(r, 0.85, 1.15);

        // One end light, the other dark: coarse-scale structure that hashes see.
        let l1 = range(r, 0.06, 0.94);
        let l2 = if l1 > 0.5 {
            range(r, 0.04, l1 - 0.45)
        } else {
            range(r, l1 + 0.45, 0.97)
        };
        let from = backdrop_color(r, l1);
        let to = backdrop_color(r, l2);
        let angle = range(r, 0.0, std::f32::consts::TAU);
        let count = r.random_range(2..=4);
        let blobs = (0..count)
            .map(|_| {
                let x = range(r, 0.0, 1.0);
                let y = range(r, 0.0, 1.0);
                let radius = range(r, 0.2, 0.5);
                let l = range(r, 0.05, 0.95);
                Blob {
                    x,
                    y,
                    radius,
                    color: backdrop_color(r, l),
                    alpha: range(r, 0.55, 0.95),
                }
            })
            .collect();
        let cloth_light = range(r, 0.08, 0.85);
        let clothing = backdrop_color(r, cloth_light);
        let grade = Grade {
            warmth: range(r, -1.0, 1.0),
            saturation: range(r, 0.75, 1.3),
            gamma: range(r, 0.8, 1.15),
            contrast: range(r, 0.85, 1.15),
            falloff: range(r, 0.1, 0.25),
            falloff_angle: range(r, 0.0, std::f32::consts::TAU),
        };
        Variant {
            seed,
            zoom,
            pan,
            roll,
            yaw,
            light_turn,
            light_gain,
            background: Background {
                from,
                to,
                angle,
                blobs,
            },
            clothing,
            grade,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_variant() {
        assert_eq!(Variant::from_seed(9), Variant::from_seed(9));
        assert_ne!(Variant::from_seed(9), Variant::from_seed(10));
    }

    #[test]
    fn stays_in_documented_ranges() {
        for seed in 0..500 {
            let v = Variant::from_seed(seed);
            assert!((1.0..=1.35).contains(&v.zoom));
            assert!((2..=4).contains(&v.background.blobs.len()));
            assert!(v.roll.abs() <= 0.06 && v.yaw.abs() <= 0.05);
            let (a, b) = (v.background.from.luma(), v.background.to.luma());
            assert!((a - b).abs() > 0.1, "gradient ends too alike: {a} {b}");
        }
    }
}
