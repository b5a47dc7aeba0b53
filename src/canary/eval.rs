//! What a found image may have gone through, and images that are not canaries: the shared
//! ground of the attribution test, the attribution benchmark and the scale benchmark.
//!
//! Every transform works on pixels, so the XMP mark is always gone: only the hash path can
//! find these images.

use image::{imageops, DynamicImage, ImageFormat, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Cursor;

/// One damage a harvester's pipeline may do to an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    Jpeg(u8),
    Resize(f32),
    Grayscale,
    Png,
    WebP,
    Brightness(f32),
    Contrast(f32),
    /// Crop of up to this fraction on each side, each side drawn at random.
    Crop(f32),
}

impl Transform {
    /// Transforms after which the issue asks ≥ 99 % top-1.
    pub const EASY: [Transform; 14] = [
        Transform::Jpeg(50),
        Transform::Jpeg(75),
        Transform::Jpeg(95),
        Transform::Resize(0.5),
        Transform::Resize(0.75),
        Transform::Resize(1.5),
        Transform::Resize(2.0),
        Transform::Grayscale,
        Transform::Png,
        Transform::WebP,
        Transform::Brightness(0.15),
        Transform::Brightness(-0.15),
        Transform::Contrast(0.15),
        Transform::Contrast(-0.15),
    ];
    /// Transforms after which the issue asks ≥ 95 % top-1 (chains are built from both lists).
    pub const HARD: [Transform; 3] = [
        Transform::Jpeg(30),
        Transform::Crop(0.10),
        Transform::Resize(0.25),
    ];

    pub fn name(&self) -> String {
        match self {
            Transform::Jpeg(q) => format!("jpeg q{q}"),
            Transform::Resize(f) => format!("resize {:.0}%", f * 100.0),
            Transform::Grayscale => "grayscale".into(),
            Transform::Png => "png".into(),
            Transform::WebP => "webp".into(),
            Transform::Brightness(b) => format!("brightness {:+.0}%", b * 100.0),
            Transform::Contrast(c) => format!("contrast {:+.0}%", c * 100.0),
            Transform::Crop(c) => format!("crop ≤{:.0}%/side", c * 100.0),
        }
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        match *self {
            Transform::Jpeg(q) => {
                let mut buf = Vec::new();
                let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, q);
                DynamicImage::ImageRgb8(img.clone())
                    .write_with_encoder(enc)
                    .map(|()| decode(&buf))
                    .unwrap_or_else(|_| img.clone())
            }
            Transform::Resize(f) => {
                let w = ((img.width() as f32 * f).round() as u32).max(1);
                let h = ((img.height() as f32 * f).round() as u32).max(1);
                imageops::resize(img, w, h, imageops::FilterType::CatmullRom)
            }
            Transform::Grayscale => DynamicImage::ImageLuma8(imageops::grayscale(img)).to_rgb8(),
            Transform::Png => reencode(img, ImageFormat::Png),
            Transform::WebP => reencode(img, ImageFormat::WebP),
            Transform::Brightness(b) => {
                let mut out = img.clone();
                out.pixels_mut().for_each(|p| {
                    p.0 =
                        p.0.map(|v| (v as f32 * (1.0 + b)).round().clamp(0.0, 255.0) as u8)
                });
                out
            }
            Transform::Contrast(c) => {
                let mut out = img.clone();
                out.pixels_mut().for_each(|p| {
                    p.0 = p.0.map(|v| {
                        ((v as f32 - 128.0) * (1.0 + c) + 128.0)
                            .round()
                            .clamp(0.0, 255.0) as u8
                    })
                });
                out
            }
            Transform::Crop(max) => {
                let (w, h) = (img.width() as f32, img.height() as f32);
                let l = (rng.random_range(0.0..=max) * w) as u32;
                let r = (rng.random_range(0.0..=max) * w) as u32;
                let t = (rng.random_range(0.0..=max) * h) as u32;
                let b = (rng.random_range(0.0..=max) * h) as u32;
                let cw = img.width().saturating_sub(l + r).max(1);
                let ch = img.height().saturating_sub(t + b).max(1);
                imageops::crop_imm(img, l, t, cw, ch).to_image()
            }
        }
    }
}

/// A named sequence of transforms.
#[derive(Debug, Clone)]
pub struct Damage(pub Vec<Transform>);

impl Damage {
    pub fn name(&self) -> String {
        self.0
            .iter()
            .map(Transform::name)
            .collect::<Vec<_>>()
            .join(" + ")
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        self.0.iter().fold(img.clone(), |acc, t| t.apply(&acc, rng))
    }

    /// Every single transform of both lists, then `chains` random chains: the damages the
    /// calibration examples score against.
    pub fn calibration_set(chains: usize, rng: &mut impl Rng) -> Vec<Damage> {
        let mut all: Vec<Damage> = Transform::EASY
            .iter()
            .chain(&Transform::HARD)
            .map(|t| Damage(vec![*t]))
            .collect();
        for _ in 0..chains {
            all.push(Damage::random_chain(rng));
        }
        all
    }

    /// Three transforms drawn from both lists, no kind twice.
    pub fn random_chain(rng: &mut impl Rng) -> Damage {
        let all: Vec<Transform> = Transform::EASY
            .iter()
            .chain(&Transform::HARD)
            .copied()
            .collect();
        let mut chain: Vec<Transform> = Vec::new();
        while chain.len() < 3 {
            let t = all[rng.random_range(0..all.len())];
            if !chain
                .iter()
                .any(|c| std::mem::discriminant(c) == std::mem::discriminant(&t))
            {
                chain.push(t);
            }
        }
        Damage(chain)
    }
}

fn reencode(img: &RgbImage, format: ImageFormat) -> RgbImage {
    let mut buf = Cursor::new(Vec::new());
    match img.write_to(&mut buf, format) {
        Ok(()) => decode(buf.get_ref()),
        Err(_) => img.clone(),
    }
}

fn decode(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes)
        .map(|d| d.to_rgb8())
        .unwrap_or_default()
}

/// Kinds of image that are not canaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoy {
    /// A face of an identity never minted.
    UnmintedFace,
    /// A minted identity in a variant never minted.
    UnmintedVariant,
    /// Shapes and strokes, like a drawing.
    Drawing,
    /// Random noise, plain or smoothed.
    Noise,
    /// A random crop of a photograph (needs photos; see `Plan::photos`).
    Photo,
}

impl Decoy {
    pub const ALL: [Decoy; 5] = [
        Decoy::UnmintedFace,
        Decoy::UnmintedVariant,
        Decoy::Drawing,
        Decoy::Noise,
        Decoy::Photo,
    ];

    /// Decoy number `n` of this kind; `minted_identity` is used by `UnmintedVariant`,
    /// `photos` by `Photo` (none without photos).
    pub fn make(
        &self,
        n: u64,
        minted_identity: u64,
        size: u32,
        photos: &[RgbImage],
    ) -> Option<RgbImage> {
        let mut rng = ChaCha8Rng::seed_from_u64(0xdec0_0000 ^ n);
        Some(match self {
            Decoy::UnmintedFace => {
                super::render::render_seeds(0xdec0_0000_0000 ^ n, rng.random(), size)
            }
            Decoy::UnmintedVariant => {
                super::render::render_seeds(minted_identity, 0xdec0_0000_0000 ^ n, size)
            }
            Decoy::Drawing => drawing(&mut rng, size),
            Decoy::Noise => noise(&mut rng, size),
            Decoy::Photo => {
                let photo = photos.get(rng.random_range(0..photos.len().max(1)))?;
                let (w, h) = photo.dimensions();
                let f = rng.random_range(0.4..=1.0);
                let (cw, ch) = (
                    ((w as f32 * f) as u32).max(1),
                    ((h as f32 * f) as u32).max(1),
                );
                let x = rng.random_range(0..=w - cw);
                let y = rng.random_range(0..=h - ch);
                let crop = imageops::crop_imm(photo, x, y, cw, ch).to_image();
                imageops::resize(&crop, size, size, imageops::FilterType::Triangle)
            }
        })
    }
}

/// Loads every image in `dir` (for `Decoy::Photo`); an unreadable file is skipped.
pub fn load_photos(dir: &std::path::Path) -> Vec<RgbImage> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| image::open(p).ok())
        .map(|i| i.to_rgb8())
        .filter(|i| i.width() >= 64 && i.height() >= 64)
        .collect()
}

fn drawing(rng: &mut ChaCha8Rng, size: u32) -> RgbImage {
    let paper: [u8; 3] = [
        rng.random_range(200..=255),
        rng.random_range(200..=255),
        rng.random_range(180..=255),
    ];
    let mut img = RgbImage::from_pixel(size, size, image::Rgb(paper));
    let s = size as f32;
    for _ in 0..rng.random_range(3..12) {
        let ink = image::Rgb([rng.random(), rng.random(), rng.random()]);
        let (cx, cy, r) = (
            rng.random::<f32>() * s,
            rng.random::<f32>() * s,
            rng.random_range(0.05..0.3) * s,
        );
        let filled = rng.random_bool(0.5);
        for (x, y, p) in img.enumerate_pixels_mut() {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            if (filled && d < r) || (d - r).abs() < 2.0 {
                *p = ink;
            }
        }
    }
    img
}

fn noise(rng: &mut ChaCha8Rng, size: u32) -> RgbImage {
    let img = RgbImage::from_fn(size, size, |_, _| {
        image::Rgb([rng.random(), rng.random(), rng.random()])
    });
    if rng.random_bool(0.5) {
        imageops::blur(&img, rng.random_range(1.0..12.0))
    } else {
        img
    }
}

/// Sizes of one attribution run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tokens: usize,
    pub identities: u64,
    pub probes: usize,
    pub decoys_per_kind: u64,
    pub size: u32,
    pub threads: usize,
    pub seed: u64,
    /// Photographs to cut `Decoy::Photo` images from; none skips that kind.
    pub photos: Vec<RgbImage>,
}

/// Top-1 results for one kind of damage.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DamageResult {
    pub damage: String,
    pub hard: bool,
    pub tries: usize,
    pub top1: usize,
    pub median_ms: f64,
}

/// What one attribution run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub tokens: usize,
    pub identities: u64,
    pub mint_seconds: f64,
    pub load_seconds: f64,
    pub results: Vec<DamageResult>,
    pub decoys: usize,
    pub false_matches: usize,
    pub false_examples: Vec<String>,
    /// Damages after which the top-1 was wrong, with what was found instead.
    pub misses: Vec<String>,
}

/// Records tokens made by a benchmark (seeds and hashes computed by the caller), in one
/// transaction.
pub fn insert_bench_tokens(
    store: &mut crate::store::Store,
    scheme_id: i64,
    size: u32,
    rows: Vec<(u64, u64, super::hash::Hashes)>,
) -> Result<(), crate::store::StoreError> {
    let tx = store.conn_mut().transaction()?;
    let now = crate::store::now_ms();
    for (identity_seed, variant_seed, h) in rows {
        crate::store::tokens::insert(
            &tx,
            &crate::store::tokens::NewToken {
                token: super::Token::random(),
                identity_seed,
                variant_seed,
                size,
                renderer: super::render::RENDERER_VERSION,
                created_ms: now,
                client_key: "bench",
                minted_by: "bench",
                minting_event: None,
                hashes: Some((scheme_id, h)),
                parent_token: None,
                depth: 0,
            },
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// One probe's result: damage index, top-1 right, match time in ms, what went wrong.
type Outcome = (usize, bool, f64, Option<String>);

/// Makes sure the store in `dir` holds at least `plan.tokens` tokens over `plan.identities`
/// identities (rendered and hashed on `plan.threads` threads), then measures attribution.
pub fn run_attribution(
    dir: &std::path::Path,
    plan: &Plan,
    config: &crate::config::MatchConfig,
) -> Result<Report, crate::store::StoreError> {
    use super::hash::{Frame, Scheme};
    use super::matcher::Matcher;
    use crate::store::{tokens, Store};
    use std::time::Instant;

    let mut store = Store::open(dir)?;
    let scheme = Scheme::new();
    let scheme_id = tokens::scheme_id(store.conn(), scheme.name(), scheme.params())?;
    let have = tokens::counts(store.conn(), scheme_id, super::render::RENDERER_VERSION)?.0 as usize;
    let identity = |j: u64| {
        plan.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ j.wrapping_mul(0xBF58_476D_1CE4_E5B9)
    };
    let started = Instant::now();
    if have < plan.tokens {
        let todo: Vec<usize> = (have..plan.tokens).collect();
        let chunk = todo.len().div_ceil(plan.threads.max(1));
        let minted: Vec<(u64, u64, super::hash::Hashes)> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .chunks(chunk.max(1))
                .map(|part| {
                    s.spawn(move || {
                        let scheme = Scheme::new();
                        part.iter()
                            .map(|&i| {
                                let mut rng =
                                    ChaCha8Rng::seed_from_u64(plan.seed ^ (i as u64) << 20);
                                let id = identity(i as u64 % plan.identities);
                                let var: u64 = rng.random();
                                let img = super::render::render_seeds(id, var, plan.size);
                                (id, var, scheme.hashes(&Frame::of_rgb(&img)))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        insert_bench_tokens(&mut store, scheme_id, plan.size, minted)?;
    }
    let mint_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let matcher = Matcher::load(store.conn(), config.clone())?;
    let load_seconds = started.elapsed().as_secs_f64();

    let total = tokens::counts(store.conn(), scheme_id, super::render::RENDERER_VERSION)?.0 as i64;
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ 0x9e0b);
    let probe_ids: Vec<i64> = (0..plan.probes)
        .map(|_| rng.random_range(1..=total))
        .collect();
    let mut damages: Vec<(Damage, bool)> = Transform::EASY
        .iter()
        .map(|t| (Damage(vec![*t]), false))
        .collect();
    damages.extend(Transform::HARD.iter().map(|t| (Damage(vec![*t]), true)));
    let chain_slot = damages.len();
    damages.push((Damage(Vec::new()), true));

    let dir_owned = dir.to_path_buf();
    let per_thread = plan.probes.div_ceil(plan.threads.max(1)).max(1);
    let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = probe_ids
            .chunks(per_thread)
            .enumerate()
            .map(|(t, ids)| {
                let (matcher, damages, dir) = (&matcher, &damages, &dir_owned);
                s.spawn(move || -> Result<Vec<Outcome>, crate::store::StoreError> {
                    let store = Store::open(dir)?;
                    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ 0xda3a ^ t as u64);
                    let mut out = Vec::new();
                    for &id in ids {
                        let Some(row) = tokens::by_id(store.conn(), id)? else {
                            continue;
                        };
                        let img = super::render::render_seeds(
                            row.identity_seed,
                            row.variant_seed,
                            row.size,
                        );
                        let served = super::marks::encode_jpeg(&img, &row.token, 90)
                            .map(|j| decode(&j))
                            .unwrap_or(img);
                        for (k, (damage, _)) in damages.iter().enumerate() {
                            let chain;
                            let damage = if k == chain_slot {
                                chain = Damage::random_chain(&mut rng);
                                &chain
                            } else {
                                damage
                            };
                            let found = damage.apply(&served, &mut rng);
                            let t0 = Instant::now();
                            let matches = matcher.match_pixels(store.conn(), &found)?;
                            let ms = t0.elapsed().as_secs_f64() * 1e3;
                            let ok = matches.first().is_some_and(|m| m.token == row.token);
                            let miss = (!ok).then(|| {
                                let got = matches.first().map_or("nothing".to_string(), |m| {
                                    format!("{} ({:.3})", m.token, m.confidence)
                                });
                                format!("{} on token {}: found {got}", damage.name(), row.token)
                            });
                            out.push((k, ok, ms, miss));
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().and_then(Result::ok).unwrap_or_default())
            .collect()
    });
    let mut results: Vec<DamageResult> = damages
        .iter()
        .enumerate()
        .map(|(k, (d, hard))| DamageResult {
            damage: if k == chain_slot {
                "chain of 3 (random)".into()
            } else {
                d.name()
            },
            hard: *hard,
            tries: 0,
            top1: 0,
            median_ms: 0.0,
        })
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); damages.len()];
    let mut misses = Vec::new();
    for (k, ok, ms, miss) in outcomes.into_iter().flatten() {
        misses.extend(miss);
        results[k].tries += 1;
        results[k].top1 += usize::from(ok);
        times[k].push(ms);
    }
    for (r, t) in results.iter_mut().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        r.median_ms = t.get(t.len() / 2).copied().unwrap_or(0.0);
    }

    let minted_identity = identity(0);
    let mut decoys = 0;
    let mut false_examples = Vec::new();
    for kind in Decoy::ALL {
        for n in 0..plan.decoys_per_kind {
            let Some(img) = kind.make(n, minted_identity, plan.size, &plan.photos) else {
                continue;
            };
            decoys += 1;
            if let Some(m) = matcher.match_pixels(store.conn(), &img)?.first() {
                false_examples.push(format!(
                    "{kind:?} #{n} -> {} ({:.3})",
                    m.token, m.confidence
                ));
            }
        }
    }
    Ok(Report {
        tokens: total as usize,
        identities: plan.identities,
        mint_seconds,
        load_seconds,
        results,
        decoys,
        false_matches: false_examples.len(),
        false_examples,
        misses,
    })
}
