//! Fine comparison of a found image with a re-rendered candidate.
//!
//! Hashes only nominate candidates; this decides. The found image is compared, in grey and by
//! normalised cross-correlation (so brightness, contrast and greyscale conversion do not
//! matter), with the region of the re-rendered canary it best lines up with. The search over
//! regions covers crops of up to `MAX_CROP` on each side and any aspect change they cause.

use super::hash::{Frame, Rect, FULL};

/// Largest crop on one side that the alignment search looks for.
pub const MAX_CROP: f32 = 0.14;

/// A query prepared once and compared with many candidates.
pub struct Probe {
    coarse: Vec<f32>,
    mid: Vec<f32>,
    fine: Vec<f32>,
}

/// Where the found image lies in the candidate, and how well it agrees there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// Normalised cross-correlation in grey at 64×64, -1..1.
    pub score: f32,
    pub rect: Rect,
}

const COARSE: u32 = 16;
const MID: u32 = 32;
const FINE: u32 = 64;

impl Probe {
    pub fn new(query: &Frame) -> Probe {
        Probe {
            coarse: normalized(query.sample(FULL, COARSE)),
            mid: normalized(query.sample(FULL, MID)),
            fine: normalized(query.sample(FULL, FINE)),
        }
    }

    /// Aligns the query with `candidate`; with `crop_search` off only the whole frame is tried.
    pub fn align(&self, candidate: &Frame, crop_search: bool) -> Alignment {
        let score_at =
            |rect: Rect, n: u32, q: &[f32]| dot(q, &normalized(candidate.sample(rect, n)));
        let mut best = FULL;
        let mut best_score = score_at(FULL, MID, &self.mid);
        if crop_search {
            let steps = [0.0, MAX_CROP / 3.0, 2.0 * MAX_CROP / 3.0, MAX_CROP];
            let mut coarse_best = (score_at(FULL, COARSE, &self.coarse), FULL);
            for &l in &steps {
                for &t in &steps {
                    for &r in &steps {
                        for &b in &steps {
                            let rect = Rect {
                                x0: l,
                                y0: t,
                                x1: 1.0 - r,
                                y1: 1.0 - b,
                            };
                            let s = score_at(rect, COARSE, &self.coarse);
                            if s > coarse_best.0 {
                                coarse_best = (s, rect);
                            }
                        }
                    }
                }
            }
            let s = score_at(coarse_best.1, MID, &self.mid);
            if s > best_score {
                best_score = s;
                best = coarse_best.1;
            }
            for step in [0.02f32, 0.01, 0.005, 0.0025] {
                let mut improved = true;
                while improved {
                    improved = false;
                    for side in 0..4 {
                        for sign in [-1.0f32, 1.0] {
                            let mut rect = best;
                            let v = match side {
                                0 => &mut rect.x0,
                                1 => &mut rect.y0,
                                2 => &mut rect.x1,
                                _ => &mut rect.y1,
                            };
                            *v += sign * step;
                            if !plausible(rect) {
                                continue;
                            }
                            let s = score_at(rect, MID, &self.mid);
                            if s > best_score + 1e-5 {
                                best_score = s;
                                best = rect;
                                improved = true;
                            }
                        }
                    }
                }
            }
        }
        Alignment {
            score: score_at(best, FINE, &self.fine),
            rect: best,
        }
    }
}

fn plausible(r: Rect) -> bool {
    let lim = MAX_CROP + 0.02;
    (-0.02..=lim).contains(&r.x0)
        && (-0.02..=lim).contains(&r.y0)
        && (1.0 - lim..=1.02).contains(&r.x1)
        && (1.0 - lim..=1.02).contains(&r.y1)
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    let mut norm = 0.0;
    for x in v.iter_mut() {
        *x -= mean;
        norm += *x * *x;
    }
    let scale = if norm > 1e-6 {
        norm.sqrt().recip()
    } else {
        0.0
    };
    v.iter_mut().for_each(|x| *x *= scale);
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::render::render_seeds;
    use image::imageops;

    #[test]
    fn same_image_scores_near_one_and_other_variant_lower() {
        let img = render_seeds(3, 4, 128);
        let probe = Probe::new(&Frame::of_rgb(&img));
        let same = probe.align(&Frame::of_rgb(&img), true);
        assert!(same.score > 0.99, "{same:?}");
        let other = probe.align(&Frame::of_rgb(&render_seeds(3, 5, 128)), true);
        assert!(other.score < 0.9, "{other:?}");
    }

    #[test]
    fn finds_the_crop() {
        let img = render_seeds(3, 4, 256);
        let cropped = imageops::crop_imm(&img, 20, 5, 256 - 20 - 10, 256 - 5 - 25).to_image();
        let probe = Probe::new(&Frame::of_rgb(&cropped));
        let a = probe.align(&Frame::of_rgb(&render_seeds(3, 4, 128)), true);
        assert!(a.score > 0.95, "{a:?}");
        assert!((a.rect.x0 - 20.0 / 256.0).abs() < 0.02, "{a:?}");
        assert!((a.rect.y1 - (1.0 - 25.0 / 256.0)).abs() < 0.02, "{a:?}");
    }
}
