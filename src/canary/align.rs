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
    /// Grid of the final comparison: no finer than the query's own pixels.
    fine_n: u32,
    fine: Bands,
    /// Chroma at `MID`, when the query has colour.
    chroma: Option<Vec<f32>>,
}

/// Where the found image lies in the candidate, and how well it agrees there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// The lowest of the band correlations: all must agree for a match.
    pub score: f32,
    /// Normalised cross-correlation of the grey images (64×64, less for a small image), -1..1.
    pub low: f32,
    /// Normalised cross-correlation of their detail (image minus its 3×3 mean).
    pub detail: f32,
    /// Normalised cross-correlation of their chroma at 32×32; 1 when the query is grey.
    pub chroma: f32,
    pub rect: Rect,
}

const COARSE: u32 = 16;
const MID: u32 = 32;
const FINE: u32 = 64;

/// A sampled region split into its whole-image and detail bands, each normalised.
struct Bands {
    low: Vec<f32>,
    detail: Vec<f32>,
}

impl Bands {
    fn new(v: Vec<f32>, n: usize) -> Bands {
        let mut detail = vec![0.0; v.len()];
        for y in 0..n {
            for x in 0..n {
                let mut sum = 0.0;
                let mut count = 0.0;
                for yy in y.saturating_sub(1)..(y + 2).min(n) {
                    for xx in x.saturating_sub(1)..(x + 2).min(n) {
                        sum += v[yy * n + xx];
                        count += 1.0;
                    }
                }
                detail[y * n + x] = v[y * n + x] - sum / count;
            }
        }
        Bands {
            low: normalized(v),
            detail: normalized(detail),
        }
    }
}

impl Probe {
    pub fn new(query: &Frame) -> Probe {
        let fine_n = match query.source_side {
            s if s >= 96 => FINE,
            s if s >= 48 => MID,
            _ => COARSE,
        };
        Probe {
            coarse: normalized(query.sample(FULL, COARSE)),
            mid: normalized(query.sample(FULL, MID)),
            fine_n,
            fine: Bands::new(query.sample(FULL, fine_n), fine_n as usize),
            chroma: query
                .colour
                .then(|| normalized(query.sample_chroma(FULL, MID))),
        }
    }

    /// Scores the whole query against `rect` of the candidate, at full detail.
    fn finish(&self, candidate: &Frame, rect: Rect) -> Alignment {
        let c = Bands::new(candidate.sample(rect, self.fine_n), self.fine_n as usize);
        let low = dot(&self.fine.low, &c.low);
        let detail = dot(&self.fine.detail, &c.detail);
        let chroma = match &self.chroma {
            Some(q) => dot(q, &normalized(candidate.sample_chroma(rect, MID))),
            None => 1.0,
        };
        Alignment {
            score: low.min(detail).min(chroma),
            low,
            detail,
            chroma,
            rect,
        }
    }

    /// Compares the whole query with the whole candidate, no search.
    pub fn whole(&self, candidate: &Frame) -> Alignment {
        self.finish(candidate, FULL)
    }

    /// Searches the region of `candidate` that the query shows (a crop of up to `MAX_CROP`
    /// per side), then scores it.
    pub fn align(&self, candidate: &Frame) -> Alignment {
        let (_, start) = self.coarse_search(candidate);
        let found = self.finish(candidate, self.refine(candidate, start));
        let whole = self.whole(candidate);
        if whole.score >= found.score {
            whole
        } else {
            found
        }
    }

    /// The grey low-band correlation of the best region, searched as `align` does, without
    /// the detail and chroma bands: the matcher's prefilter, which also takes grey-only frames
    /// (`Frame::grey_preview`).
    pub fn low(&self, candidate: &Frame) -> f32 {
        self.low_from(candidate, self.coarse_search(candidate).1)
    }

    /// `low`, with the search's coarse stage already done (`coarse_search`).
    pub fn low_from(&self, candidate: &Frame, start: Rect) -> f32 {
        let rect = self.refine(candidate, start);
        let low = |rect| {
            dot(
                &self.fine.low,
                &normalized(candidate.sample(rect, self.fine_n)),
            )
        };
        low(rect).max(low(FULL))
    }

    /// The coarse stage of the search: the best of a grid of crops (0, half and all of
    /// `MAX_CROP` per side) compared at 16×16, with its score.
    pub fn coarse_search(&self, candidate: &Frame) -> (f32, Rect) {
        let steps = [0.0, MAX_CROP / 2.0, MAX_CROP];
        let mut best = (self.score_at(candidate, FULL, COARSE, &self.coarse), FULL);
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
                        let s = self.score_at(candidate, rect, COARSE, &self.coarse);
                        if s > best.0 {
                            best = (s, rect);
                        }
                    }
                }
            }
        }
        best
    }

    /// Hill-climbs each side of `start` in finer and finer steps.
    fn refine(&self, candidate: &Frame, start: Rect) -> Rect {
        let mut best = start;
        for (step, n, q) in [
            (0.03f32, COARSE, &self.coarse),
            (0.015, COARSE, &self.coarse),
            (0.007, MID, &self.mid),
            (0.0035, MID, &self.mid),
        ] {
            let mut best_score = self.score_at(candidate, best, n, q);
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
                        let s = self.score_at(candidate, rect, n, q);
                        if s > best_score + 1e-5 {
                            best_score = s;
                            best = rect;
                            improved = true;
                        }
                    }
                }
            }
        }
        best
    }

    fn score_at(&self, candidate: &Frame, rect: Rect, n: u32, q: &[f32]) -> f32 {
        dot(q, &normalized(candidate.sample(rect, n)))
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
        let same = probe.align(&Frame::of_rgb(&img));
        assert!(same.score > 0.99, "{same:?}");
        let other = probe.align(&Frame::of_rgb(&render_seeds(3, 5, 128)));
        assert!(other.score < 0.9, "{other:?}");
    }

    #[test]
    fn finds_the_crop() {
        let img = render_seeds(3, 4, 256);
        let cropped = imageops::crop_imm(&img, 20, 5, 256 - 20 - 10, 256 - 5 - 25).to_image();
        let probe = Probe::new(&Frame::of_rgb(&cropped));
        let a = probe.align(&Frame::of_rgb(&render_seeds(3, 4, 256)));
        assert!(a.score > 0.95, "{a:?}");
        assert!((a.rect.x0 - 20.0 / 256.0).abs() < 0.02, "{a:?}");
        assert!((a.rect.y1 - (1.0 - 25.0 / 256.0)).abs() < 0.02, "{a:?}");
    }
}
