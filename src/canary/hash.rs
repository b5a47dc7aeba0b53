//! Perceptual hashes of canaries and of found images, and the scheme that names how they
//! were made.
//!
//! Every image is first reduced to a `Frame`: a 128×128 grey view of the whole picture
//! (aspect squashed), so that hashes of regions can be taken at sub-pixel positions. Hashes
//! come from the pinned `image_hasher` crate; the scheme string stored beside each hash names
//! the crate version, the algorithms and every parameter, so a hash made today stays
//! comparable (or is known not to be) after the crate changes.

use image::{imageops, GrayImage, RgbImage};
use image_hasher::{HashAlg, Hasher, HasherConfig, ImageHash};
use serde::Serialize;

/// Side of the grey frame every hash and comparison starts from.
pub const FRAME: u32 = 128;
/// Side of the grey region handed to `image_hasher`.
const REGION: u32 = 32;
/// The region whose pHash the index keeps for crop search: the central 80 %.
pub const CENTER: Rect = Rect {
    x0: 0.1,
    y0: 0.1,
    x1: 0.9,
    y1: 0.9,
};
/// The whole frame.
pub const FULL: Rect = Rect {
    x0: 0.0,
    y0: 0.0,
    x1: 1.0,
    y1: 1.0,
};

/// A rectangle in frame coordinates (0..1 on both axes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// A square, fixed-size view of a whole image: grey (BT.709 luma) and two chroma planes,
/// each with its box-filtered reductions (128, 64, 32, 16 px) so that a region can be
/// sampled at any grid without aliasing.
#[derive(Clone)]
pub struct Frame {
    luma: Pyramid,
    /// None for a grey preview (`grey_preview`).
    chroma: Option<[Pyramid; 2]>,
    /// Whether the image has colour at all (a greyscale copy has none to compare).
    pub colour: bool,
    /// The smaller side of the source image, in pixels: how much detail it can hold.
    pub source_side: u32,
}

#[derive(Clone)]
struct Pyramid {
    levels: Vec<Vec<f32>>,
}

/// Below this standard deviation of chroma (0..255 scale) an image counts as greyscale.
const GREY_CHROMA_STD: f32 = 1.5;

impl Frame {
    /// Reduces an image of any size to the frame (area-averaged, so large images don't alias).
    pub fn of_rgb(img: &RgbImage) -> Frame {
        // Area-average down; interpolate up (a small image must not turn blocky).
        let small = if img.width() >= FRAME && img.height() >= FRAME {
            imageops::thumbnail(img, FRAME, FRAME)
        } else {
            imageops::resize(img, FRAME, FRAME, imageops::FilterType::Triangle)
        };
        let n = (FRAME * FRAME) as usize;
        let (mut y, mut cb, mut cr) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for p in small.pixels() {
            let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
            let l = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            y.push(l);
            cb.push((b - l) / 1.8556);
            cr.push((r - l) / 1.5748);
        }
        let std = |v: &[f32]| {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt()
        };
        let colour = std(&cb).max(std(&cr)) > GREY_CHROMA_STD;
        Frame {
            luma: Pyramid::new(y),
            chroma: Some([Pyramid::new(cb), Pyramid::new(cr)]),
            colour,
            source_side: img.width().min(img.height()),
        }
    }

    /// A grey-only frame of a render no larger than the frame, upsampled bilinearly: the
    /// matcher's prefilter, which renders many nominees small and must not spend more on
    /// each frame than on its render (`of_rgb`'s resampling costs more than a 64 px render).
    /// Only its grey can be compared (`Probe::low`): it has no chroma.
    pub fn grey_preview(img: &RgbImage) -> Frame {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let luma: Vec<f32> = img
            .pixels()
            .map(|p| 0.2126 * p[0] as f32 + 0.7152 * p[1] as f32 + 0.0722 * p[2] as f32)
            .collect();
        let side = FRAME as usize;
        // Source coordinate and weight of each frame column (or row), centres aligned.
        let taps = |src: usize| -> Vec<(usize, usize, f32)> {
            let scale = src as f32 / side as f32;
            (0..side)
                .map(|i| {
                    let x = ((i as f32 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f32);
                    let x0 = x as usize;
                    (x0, (x0 + 1).min(src - 1), x - x0 as f32)
                })
                .collect()
        };
        let (xs, ys) = (taps(w.max(1)), taps(h.max(1)));
        let mut level = Vec::with_capacity(side * side);
        if luma.is_empty() {
            level.resize(side * side, 0.0);
        } else {
            for &(y0, y1, fy) in &ys {
                let (top, bottom) = (&luma[y0 * w..][..w], &luma[y1 * w..][..w]);
                for &(x0, x1, fx) in &xs {
                    let t = top[x0] + (top[x1] - top[x0]) * fx;
                    let b = bottom[x0] + (bottom[x1] - bottom[x0]) * fx;
                    level.push(t + (b - t) * fy);
                }
            }
        }
        Frame {
            luma: Pyramid::new(level),
            chroma: None,
            colour: false,
            source_side: img.width().min(img.height()),
        }
    }

    /// Grey samples of `rect` on an n×n grid.
    pub fn sample(&self, rect: Rect, n: u32) -> Vec<f32> {
        self.luma.sample(rect, n)
    }

    /// Both chroma planes of `rect` on an n×n grid, one after the other (zeros, which
    /// correlate with nothing, for a grey preview).
    pub fn sample_chroma(&self, rect: Rect, n: u32) -> Vec<f32> {
        let Some([cb, cr]) = &self.chroma else {
            return vec![0.0; 2 * (n * n) as usize];
        };
        let mut v = cb.sample(rect, n);
        v.extend(cr.sample(rect, n));
        v
    }
}

impl Pyramid {
    fn new(mut level: Vec<f32>) -> Pyramid {
        let mut levels = Vec::with_capacity(4);
        let mut side = FRAME as usize;
        for _ in 0..3 {
            let half = side / 2;
            let next = (0..half * half)
                .map(|i| {
                    let (x, y) = (2 * (i % half), 2 * (i / half));
                    0.25 * (level[y * side + x]
                        + level[y * side + x + 1]
                        + level[(y + 1) * side + x]
                        + level[(y + 1) * side + x + 1])
                })
                .collect();
            levels.push(std::mem::replace(&mut level, next));
            side = half;
        }
        levels.push(level);
        Pyramid { levels }
    }

    /// Where one grid line falls on a level of `side` pixels: the two pixels to blend and the
    /// weight of the second, clamped at the border.
    fn tap(v: f32, side: usize) -> (usize, usize, f32) {
        let v = v.clamp(0.0, (side - 1) as f32);
        let v0 = v as usize;
        (v0, (v0 + 1).min(side - 1), v - v0 as f32)
    }

    /// Samples `rect` onto an n×n grid: one bilinear tap per cell, from the coarsest level
    /// whose pixels are no larger than a cell.
    pub fn sample(&self, rect: Rect, n: u32) -> Vec<f32> {
        let span = (rect.x1 - rect.x0).max(rect.y1 - rect.y0).max(1e-3);
        let mut k = 0;
        while k + 1 < self.levels.len() && (FRAME >> (k + 1)) as f32 * span >= n as f32 {
            k += 1;
        }
        let side = (FRAME >> k) as usize;
        let level = &self.levels[k];
        let s = side as f32;
        let cw = (rect.x1 - rect.x0) * s / n as f32;
        let ch = (rect.y1 - rect.y0) * s / n as f32;
        // Columns are the same on every row: their taps are worked out once.
        let columns: Vec<_> = (0..n)
            .map(|i| Pyramid::tap(rect.x0 * s + cw * (i as f32 + 0.5) - 0.5, side))
            .collect();
        let mut out = Vec::with_capacity((n * n) as usize);
        for j in 0..n {
            let (y0, y1, fy) = Pyramid::tap(rect.y0 * s + ch * (j as f32 + 0.5) - 0.5, side);
            let (upper, lower) = (&level[y0 * side..][..side], &level[y1 * side..][..side]);
            out.extend(columns.iter().map(|&(x0, x1, fx)| {
                let top = upper[x0] * (1.0 - fx) + upper[x1] * fx;
                let bottom = lower[x0] * (1.0 - fx) + lower[x1] * fx;
                top * (1.0 - fy) + bottom * fy
            }));
        }
        out
    }
}

pub use crate::store::tokens::Hashes;

/// The hashers and the name under which their output is stored.
pub struct Scheme {
    phash: Hasher<[u8; 8]>,
    /// The pHash's DCT, for `region_phash` (see `phash_of_region`).
    dct: std::sync::Arc<dyn rustdct::TransformType2And3<f32>>,
    phash_taps: Taps,
    dhash: Hasher<[u8; 8]>,
    name: String,
    params: String,
}

#[derive(Serialize)]
struct SchemeParams<'a> {
    crate_name: &'static str,
    crate_version: &'static str,
    frame: String,
    region: String,
    center: Rect,
    phash: &'a HasherConfig<[u8; 8]>,
    dhash: &'a HasherConfig<[u8; 8]>,
    bit_order: &'static str,
}

impl Scheme {
    pub fn new() -> Scheme {
        let phash = HasherConfig::with_bytes_type::<[u8; 8]>()
            .hash_alg(HashAlg::Median)
            .preproc_dct()
            .hash_size(8, 8)
            .resize_filter(imageops::FilterType::Triangle);
        let dhash = HasherConfig::with_bytes_type::<[u8; 8]>()
            .hash_alg(HashAlg::Gradient)
            .hash_size(8, 8)
            .resize_filter(imageops::FilterType::Triangle);
        let params = serde_json::to_string(&SchemeParams {
            crate_name: "image_hasher",
            crate_version: "3.1.1",
            frame: format!("luma709 area-thumbnail {FRAME}x{FRAME}, aspect squashed"),
            region: format!("bilinear {REGION}x{REGION} from a 2x box pyramid"),
            center: CENTER,
            phash: &phash,
            dhash: &dhash,
            bit_order: "u64 little-endian of hash bytes",
        })
        .unwrap_or_default();
        Scheme {
            dct: rustdct::DctPlanner::new().plan_dct2(PHASH_DCT as usize),
            phash_taps: triangle_taps(),
            phash: phash.to_hasher(),
            dhash: dhash.to_hasher(),
            name: "fp1-phash8-dhash8-center80".to_string(),
            params,
        }
    }

    /// Short stable name of this scheme, stored with every hash.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Full parameters (JSON), stored once per scheme.
    pub fn params(&self) -> &str {
        &self.params
    }

    /// pHash and dHash of one region of a frame.
    pub fn region(&self, frame: &Frame, rect: Rect) -> (u64, u64) {
        let grey = grey_region(frame, rect);
        (
            bits(&self.phash.hash_image(&grey)),
            bits(&self.dhash.hash_image(&grey)),
        )
    }

    /// pHash alone of one region, for crop hypotheses: the same bits as the stored pHash
    /// of that region (`hashes`), computed without `image_hasher`'s generic resampling, which
    /// costs ten times the rest; the crop pass takes 256 of them per image.
    pub fn region_phash(&self, frame: &Frame, rect: Rect) -> u64 {
        let grey = grey_region(frame, rect);
        let mut vals = halve_triangle(grey.as_raw(), &self.phash_taps);
        let mut scratch = vec![0.0; self.dct.get_scratch_len().max(PHASH_DCT as usize)];
        let n = PHASH_DCT as usize;
        // Rows, transpose, rows (the columns), transpose back: as image_hasher does.
        for _ in 0..2 {
            for row in vals.chunks_mut(n) {
                self.dct.process_dct2_with_scratch(row, &mut scratch);
            }
            for y in 0..n {
                for x in y + 1..n {
                    vals.swap(y * n + x, x * n + y);
                }
            }
        }
        // The lowest 8×8 frequencies, bit i set when value i is at or above their median.
        let low: Vec<f32> = (0..64).map(|i| vals[(i / 8) * n + i % 8]).collect();
        let mut sorted = low.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        let median = f32::midpoint(sorted[31], sorted[32]);
        low.iter()
            .enumerate()
            .fold(0u64, |h, (i, &v)| h | (u64::from(v >= median) << i))
    }

    /// The hashes stored for a token, from its rendered image.
    pub fn hashes(&self, frame: &Frame) -> Hashes {
        let (phash, dhash) = self.region(frame, FULL);
        Hashes {
            phash,
            dhash,
            center_phash: self.region_phash(frame, CENTER),
        }
    }
}

impl Default for Scheme {
    fn default() -> Self {
        Scheme::new()
    }
}

fn grey_region(frame: &Frame, rect: Rect) -> GrayImage {
    let vals = frame.sample(rect, REGION);
    let bytes = vals
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    GrayImage::from_raw(REGION, REGION, bytes).unwrap_or_else(|| GrayImage::new(REGION, REGION))
}

/// Side of the image the pHash transforms: twice its 8×8 bits (image_hasher's rule).
const PHASH_DCT: u32 = 16;

/// First source pixel and weights of each output pixel of `imageops::resize(REGION² →
/// PHASH_DCT², Triangle)`, worked out as it does.
type Taps = Vec<(usize, Vec<f32>)>;

fn triangle_taps() -> Taps {
    let (src, dst) = (REGION as usize, PHASH_DCT as usize);
    let ratio = src as f32 / dst as f32;
    let support = ratio; // the triangle's support (1) times the ratio, which is above 1
    (0..dst)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, src as i64 - 1) as usize;
            let right =
                ((centre + support).ceil() as i64).clamp(left as i64 + 1, src as i64) as usize;
            let centre = centre - 0.5;
            let mut ws: Vec<f32> = (left..right)
                .map(|i| {
                    let x = ((i as f32 - centre) / ratio).abs();
                    if x < 1.0 {
                        1.0 - x
                    } else {
                        0.0
                    }
                })
                .collect();
            let sum = ws.iter().fold(0.0, |a, w| a + w);
            ws.iter_mut().for_each(|w| *w /= sum);
            (left, ws)
        })
        .collect()
}

/// `imageops::resize(REGION² grey → PHASH_DCT², Triangle)` to the bit: the same weights, summed
/// in the same order (columns, then rows) and rounded the same way, as f32.
fn halve_triangle(grey: &[u8], taps: &Taps) -> Vec<f32> {
    let (src, dst) = (REGION as usize, PHASH_DCT as usize);
    let mut columns = vec![0.0f32; src * dst];
    for (oy, (top, ws)) in taps.iter().enumerate() {
        for x in 0..src {
            let mut t = 0.0f32;
            for (i, w) in ws.iter().enumerate() {
                t += grey[(top + i) * src + x] as f32 * w;
            }
            columns[oy * src + x] = t;
        }
    }
    let mut out = vec![0.0f32; dst * dst];
    for (ox, (left, ws)) in taps.iter().enumerate() {
        for oy in 0..dst {
            let mut t = 0.0f32;
            for (i, w) in ws.iter().enumerate() {
                t += columns[oy * src + left + i] * w;
            }
            out[oy * dst + ox] = t.clamp(0.0, 255.0).round();
        }
    }
    out
}

fn bits(hash: &ImageHash<[u8; 8]>) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(hash.as_bytes());
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::render::render_seeds;

    #[test]
    fn same_image_same_hashes_and_resize_stays_close() {
        let scheme = Scheme::new();
        let img = render_seeds(7, 11, 256);
        let a = scheme.hashes(&Frame::of_rgb(&img));
        assert_eq!(a, scheme.hashes(&Frame::of_rgb(&img)));
        let half = imageops::resize(&img, 128, 128, imageops::FilterType::Triangle);
        let b = scheme.hashes(&Frame::of_rgb(&half));
        assert!(a.full_distance(b.phash, b.dhash) <= 12, "{a:?} {b:?}");
    }

    #[test]
    fn different_variants_lie_far_apart() {
        let scheme = Scheme::new();
        let base = scheme.hashes(&Frame::of_rgb(&render_seeds(7, 1, 256)));
        let mut total = 0;
        for v in 2..22 {
            let h = scheme.hashes(&Frame::of_rgb(&render_seeds(7, v, 256)));
            total += base.full_distance(h.phash, h.dhash);
        }
        let mean = total as f32 / 20.0;
        assert!(mean > 40.0, "mean distance between variants {mean}");
    }

    #[test]
    fn sampling_is_plain_bilinear_interpolation() {
        // The per-tap formula the sampler computes row by row; hashes depend on every bit.
        fn at(level: &[f32], side: usize, x: f32, y: f32) -> f32 {
            let max = (side - 1) as f32;
            let (x, y) = (x.clamp(0.0, max), y.clamp(0.0, max));
            let (x0, y0) = (x as usize, y as usize);
            let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
            let (fx, fy) = (x - x0 as f32, y - y0 as f32);
            let top = level[y0 * side + x0] * (1.0 - fx) + level[y0 * side + x1] * fx;
            let bottom = level[y1 * side + x0] * (1.0 - fx) + level[y1 * side + x1] * fx;
            top * (1.0 - fy) + bottom * fy
        }
        let frame = Frame::of_rgb(&render_seeds(5, 6, 256));
        for (rect, n) in [(FULL, 64), (CENTER, 32), (FULL, 16)] {
            let rect = Rect {
                x0: rect.x0 - 0.013,
                y0: rect.y0 + 0.021,
                ..rect
            };
            let span = (rect.x1 - rect.x0).max(rect.y1 - rect.y0);
            let k = (0..4)
                .take_while(|&k| k == 0 || (FRAME >> k) as f32 * span >= n as f32)
                .last()
                .unwrap_or(0);
            let side = (FRAME >> k) as usize;
            let s = side as f32;
            let (cw, ch) = (
                (rect.x1 - rect.x0) * s / n as f32,
                (rect.y1 - rect.y0) * s / n as f32,
            );
            let want: Vec<f32> = (0..n * n)
                .map(|c| {
                    let (i, j) = ((c % n) as f32, (c / n) as f32);
                    let x = rect.x0 * s + cw * (i + 0.5) - 0.5;
                    let y = rect.y0 * s + ch * (j + 0.5) - 0.5;
                    at(&frame.luma.levels[k], side, x, y)
                })
                .collect();
            assert_eq!(frame.sample(rect, n), want, "{rect:?} {n}");
        }
    }

    #[test]
    fn region_phash_agrees_with_image_hasher_to_the_bit() {
        use rand::{Rng, SeedableRng};
        let scheme = Scheme::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut noise = RgbImage::new(97, 131);
        noise.pixels_mut().for_each(|p| p.0 = rng.random());
        for img in [render_seeds(7, 11, 256), render_seeds(8, 3, 64), noise] {
            let frame = Frame::of_rgb(&img);
            for _ in 0..200 {
                let (x0, y0) = (rng.random_range(-0.1..0.4), rng.random_range(-0.1..0.4));
                let rect = Rect {
                    x0,
                    y0,
                    x1: x0 + rng.random_range(0.2..0.8),
                    y1: y0 + rng.random_range(0.2..0.8),
                };
                let want = bits(&scheme.phash.hash_image(&grey_region(&frame, rect)));
                assert_eq!(scheme.region_phash(&frame, rect), want, "{rect:?}");
            }
        }
    }

    #[test]
    fn scheme_params_name_the_crate_version() {
        let s = Scheme::new();
        assert!(
            s.params().contains("\"crate_version\":\"3.1.1\""),
            "{}",
            s.params()
        );
        assert!(s.params().contains("Median"), "{}", s.params());
    }
}
