//! Tracing a found image back to the token that served it.
//!
//! Order of evidence: an intact XMP mark naming a known token is an exact match. Otherwise
//! the hash path: the whole-frame pHash+dHash nominate the nearest tokens from the index; if
//! none of them is confirmed, crop hypotheses over the image nominate tokens by the pHash of
//! their central region. Every nominee is re-rendered from its seeds and aligned with the
//! image; only the alignment score decides, and becomes the confidence.

use super::align::{Alignment, Probe};
use super::hash::{Frame, Rect, Scheme, CENTER, FULL};
use super::index::Mih;
use super::render::{render_seeds, RENDERER_VERSION};
use super::{marks, Token};
use crate::config::MatchConfig;
use crate::store::{tokens, StoreError};
use image::RgbImage;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Largest side at which candidates are re-rendered for the fine comparison; a token is
/// re-rendered at its served size up to this (a smaller render differs in fine detail).
const MAX_VERIFY_SIZE: u32 = 512;
/// Alignment scores mapped to confidence 0 and 1. Between two variants of one identity the
/// score stays below `SCORE_AT_ZERO`; a true match after heavy damage stays above
/// `SCORE_AT_ONE` (measured by `benches/attribution`, see README).
const SCORE_AT_ZERO: f32 = 0.75;
const SCORE_AT_ONE: f32 = 0.90;
/// Crop fractions tried per side when the whole-frame hashes find nothing.
const CROP_STEPS: [f32; 4] = [0.0, 0.1 / 3.0, 0.2 / 3.0, 0.1];
/// Nearest centre hashes kept per crop hypothesis.
const PER_HYPOTHESIS: usize = 4;
/// Once a nominee is confirmed, nominees further than this many bits beyond it in hash
/// space are not the same picture and are not rendered.
const SAME_PICTURE_SPREAD: u32 = 12;
/// Nominees are first rendered this small (a quarter of the cost of 256 px) and compared on
/// their grey low band; only those that agree are rendered at size and scored finely.
const PREFILTER_SIDE: u32 = 64;
/// The low-band correlation a nominee's small render must reach. Measured over 40 identities
/// × 21 damages (every one of the attribution benchmark, crops and chains included): the true
/// canary scores ≥ 0.98; other identities ≤ 0.80, other variants of the same identity ≤ 0.92
/// (those go on to the fine comparison, which tells them apart).
const PREFILTER_LOW: f32 = 0.85;
/// The score the search's coarse stage (16×16) must reach before it is refined: the true
/// canary scores ≥ 0.92 there, other identities ≤ 0.82 (same measurement, with the grey
/// preview frame the matcher uses). Most nominees stop here, before the finer stages.
const PREFILTER_COARSE: f32 = 0.80;
/// The same for the centre pHash (of 64 bits) in the crop pass.
const CENTER_SPREAD: u32 = 6;
/// Largest centre-pHash distance (of 64) a crop hypothesis accepts. The index cost steps up
/// at multiples of 4 (its 4 chunks): 11 visits a fifth of the buckets 12 does.
const CENTER_MAX_DISTANCE: u32 = 11;

/// Why an image could not be read; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: file is {size} bytes, over the limit of {limit} (match.max_file_bytes)")]
    TooBig { path: String, size: u64, limit: u64 },
    #[error("{path}: not an image faceprobe can read (JPEG, PNG, WebP, GIF, BMP or TIFF)")]
    NotImage { path: String },
    #[error(
        "{path}: image too large: {detail} (limits: match.max_dimension, match.max_decode_bytes)"
    )]
    Limits { path: String, detail: String },
    #[error("{path}: truncated or corrupt image: {detail}")]
    Corrupt { path: String, detail: String },
}

/// How a match was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    Xmp,
    Hash,
}

/// One token an image was traced to.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    pub token: Token,
    pub confidence: f64,
    pub how: How,
    #[serde(skip)]
    pub id: i64,
    /// Where the image lies in the canary, for the hash path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Rect>,
    pub identity: u64,
    pub variant: u64,
}

/// Token row ids with their hash distances, nearest first.
pub type Nominees = Vec<(i64, u32)>;

/// The index of every stored token's hashes, ready to answer `match`.
pub struct Matcher {
    scheme: Scheme,
    config: MatchConfig,
    ids: Vec<i64>,
    full: Mih,
    center: Mih,
    /// Tokens hashed under another scheme or renderer, which only the XMP path can find.
    pub unhashed: u64,
}

impl Matcher {
    /// Loads every token hashed under the current scheme.
    pub fn load(conn: &Connection, config: MatchConfig) -> Result<Matcher, StoreError> {
        let scheme = Scheme::new();
        let scheme_id = tokens::scheme_id(conn, scheme.name(), scheme.params())?;
        let (hashed, unhashed) = tokens::counts(conn, scheme_id, RENDERER_VERSION)?;
        let n = hashed as usize;
        let mut ids = Vec::with_capacity(n);
        let mut full = Vec::with_capacity(2 * n);
        let mut center = Vec::with_capacity(n);
        tokens::for_each_hash(conn, scheme_id, RENDERER_VERSION, |id, p, d, c| {
            ids.push(id);
            full.extend([p, d]);
            center.push(c);
        })?;
        if unhashed > 0 {
            tracing::warn!(
                unhashed,
                "tokens hashed under another scheme or renderer: only their XMP marks can be matched"
            );
        }
        Ok(Matcher {
            scheme,
            config,
            ids,
            full: Mih::build(2, full),
            center: Mih::build(1, center),
            unhashed,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Approximate bytes held by the index.
    pub fn heap_bytes(&self) -> usize {
        self.ids.len() * 8 + self.full.heap_bytes() + self.center.heap_bytes()
    }

    /// Matches at or above the confidence threshold, best first.
    pub fn match_image(
        &self,
        conn: &Connection,
        file: &[u8],
        img: &RgbImage,
    ) -> Result<Vec<Match>, StoreError> {
        if let Some(token) = marks::token_in_file(file) {
            if let Some(row) = tokens::by_token(conn, &token)? {
                return Ok(vec![Match {
                    token,
                    confidence: 1.0,
                    how: How::Xmp,
                    id: row.id,
                    region: None,
                    identity: row.identity_seed,
                    variant: row.variant_seed,
                }]);
            }
        }
        self.match_pixels(conn, img)
    }

    /// The hash path alone.
    pub fn match_pixels(
        &self,
        conn: &Connection,
        img: &RgbImage,
    ) -> Result<Vec<Match>, StoreError> {
        let frame = Frame::of_rgb(img);
        let probe = Probe::new(&frame);
        let nominees = self.whole_nominees(&frame);
        let (mut seen, mut rejected) = (Vec::new(), Vec::new());
        let matches = self.verify(conn, &probe, &nominees, false, &mut seen, &mut rejected)?;
        if !matches.is_empty() || !self.config.crop_search {
            return Ok(matches);
        }
        // Nothing shows the whole frame: the image may be a crop. The nominees the prefilter
        // kept (its search covers crops) are aligned first: when one of them is confirmed, the
        // crop hypotheses are not needed, as a confirmed whole frame ends the search above.
        let kept: Vec<(usize, u32)> = seen.iter().map(|c| (c.item, 0)).collect();
        let matches = self.verify(conn, &probe, &kept, true, &mut seen, &mut rejected)?;
        if !matches.is_empty() {
            return Ok(matches);
        }
        // Aligned and not confirmed: the crop pass would only score them again.
        rejected.extend(seen.iter().map(|c| c.item));
        let crop_nominees = self.crop_nominees(&frame);
        self.verify(conn, &probe, &crop_nominees, true, &mut seen, &mut rejected)
    }

    /// The nominees of both hash paths, as (token row id, distance): a calibration aid.
    pub fn nominees(&self, img: &RgbImage) -> (Nominees, Nominees) {
        let frame = Frame::of_rgb(img);
        let full = self
            .whole_nominees(&frame)
            .into_iter()
            .map(|(i, d)| (self.ids[i], d))
            .collect();
        let crop = self
            .crop_nominees(&frame)
            .into_iter()
            .map(|(i, d)| (self.ids[i], d))
            .collect();
        (full, crop)
    }

    /// Tokens nearest to the image's whole-frame pHash + dHash, nearest first.
    fn whole_nominees(&self, frame: &Frame) -> Vec<(usize, u32)> {
        let (p, d) = self.scheme.region(frame, FULL);
        self.full
            .nearest(
                &[p, d],
                self.config.max_candidates,
                self.config.max_hash_distance,
            )
            .iter()
            .map(|h| (h.item as usize, h.distance))
            .collect()
    }

    /// Tokens whose central region matches some crop hypothesis of the image, nearest first.
    fn crop_nominees(&self, frame: &Frame) -> Vec<(usize, u32)> {
        let mut best: HashMap<u32, u32> = HashMap::new();
        for &l in &CROP_STEPS {
            for &r in &CROP_STEPS {
                for &t in &CROP_STEPS {
                    for &b in &CROP_STEPS {
                        // Where the canary's central region lies if the image is the canary
                        // cropped by (l, t, r, b).
                        let map = |c: f32, lo: f32, hi: f32| (c - lo) / (1.0 - lo - hi);
                        let rect = Rect {
                            x0: map(CENTER.x0, l, r),
                            y0: map(CENTER.y0, t, b),
                            x1: map(CENTER.x1, l, r),
                            y1: map(CENTER.y1, t, b),
                        };
                        let h = self.scheme.region_phash(frame, rect);
                        for hit in self
                            .center
                            .nearest(&[h], PER_HYPOTHESIS, CENTER_MAX_DISTANCE)
                        {
                            let e = best.entry(hit.item).or_insert(u32::MAX);
                            *e = (*e).min(hit.distance);
                        }
                    }
                }
            }
        }
        let mut ranked: Vec<(usize, u32)> =
            best.into_iter().map(|(i, d)| (i as usize, d)).collect();
        ranked.sort_unstable_by_key(|&(i, d)| (d, i));
        ranked.truncate(self.config.max_candidates);
        ranked
    }

    /// Re-renders nominees (nearest first) and keeps those the image is confirmed to show.
    /// Without `search` only the whole frame is compared, and the walk stops once a match is
    /// confirmed and the remaining nominees are too far in hash space to be the same picture.
    /// Rendered candidates are kept in `seen` for a later pass, and those the prefilter
    /// dropped in `rejected` (its search covers crops: they are not the picture in any pass).
    fn verify(
        &self,
        conn: &Connection,
        probe: &Probe,
        nominees: &[(usize, u32)],
        search: bool,
        seen: &mut Vec<Candidate>,
        rejected: &mut Vec<usize>,
    ) -> Result<Vec<Match>, StoreError> {
        let threshold = self.config.confidence_threshold;
        let mut out = Vec::new();
        let mut confirmed_at: Option<u32> = None;
        for &(item, distance) in nominees {
            let spread = if search {
                CENTER_SPREAD
            } else {
                SAME_PICTURE_SPREAD
            };
            if confirmed_at.is_some_and(|d| distance > d + spread) {
                break;
            }
            if rejected.contains(&item) {
                continue;
            }
            let k = match seen.iter().position(|c| c.item == item) {
                Some(k) => k,
                None => {
                    let Some(row) = tokens::by_id(conn, self.ids[item])? else {
                        continue;
                    };
                    if row.size > PREFILTER_SIDE {
                        let small = Frame::grey_preview(&render_seeds(
                            row.identity_seed,
                            row.variant_seed,
                            PREFILTER_SIDE,
                        ));
                        // Aligned even in the whole-frame pass: a crop rejected here would
                        // not come back to the crop pass, nor is it tried again there.
                        let (coarse, start) = probe.coarse_search(&small);
                        if coarse < PREFILTER_COARSE
                            || probe.low_from(&small, start) < PREFILTER_LOW
                        {
                            rejected.push(item);
                            continue;
                        }
                    }
                    let size = row.size.min(MAX_VERIFY_SIZE);
                    let img = render_seeds(row.identity_seed, row.variant_seed, size);
                    seen.push(Candidate {
                        item,
                        row,
                        frame: Frame::of_rgb(&img),
                    });
                    seen.len() - 1
                }
            };
            let c = &seen[k];
            let a = if search {
                probe.align(&c.frame)
            } else {
                probe.whole(&c.frame)
            };
            let confidence = confidence(a);
            if confidence >= threshold && confidence > 0.0 {
                confirmed_at.get_or_insert(distance);
                out.push(Match {
                    token: c.row.token,
                    confidence,
                    how: How::Hash,
                    id: c.row.id,
                    region: Some(a.rect),
                    identity: c.row.identity_seed,
                    variant: c.row.variant_seed,
                });
            }
        }
        out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        Ok(out)
    }
}

/// A nominee re-rendered for comparison.
struct Candidate {
    item: usize,
    row: tokens::TokenRow,
    frame: Frame,
}

/// Maps an alignment score to a confidence in 0..1, rounded to 3 places.
pub fn confidence(a: Alignment) -> f64 {
    let c = ((a.score - SCORE_AT_ZERO) / (SCORE_AT_ONE - SCORE_AT_ZERO)).clamp(0.0, 1.0);
    (f64::from(c) * 1000.0).round() / 1000.0
}

/// Reads and decodes an image file within the configured limits.
pub fn load_image(path: &Path, config: &MatchConfig) -> Result<(Vec<u8>, RgbImage), ImageError> {
    let name = path.display().to_string();
    let read_err = |source| ImageError::Read {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    if size > config.max_file_bytes {
        return Err(ImageError::TooBig {
            path: name,
            size,
            limit: config.max_file_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(config.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    decode_image(&name, bytes, config)
}

/// Decodes an image received whole (an upload), within the configured limits; `name` is what
/// its errors call it.
pub fn decode_image(
    name: &str,
    bytes: Vec<u8>,
    config: &MatchConfig,
) -> Result<(Vec<u8>, RgbImage), ImageError> {
    let name = name.to_string();
    if bytes.len() as u64 > config.max_file_bytes {
        return Err(ImageError::TooBig {
            path: name,
            size: bytes.len() as u64,
            limit: config.max_file_bytes,
        });
    }
    let img = decode(&bytes, config).map_err(|e| match e {
        DecodeError::NotImage => ImageError::NotImage { path: name.clone() },
        DecodeError::Limits(detail) => ImageError::Limits {
            path: name.clone(),
            detail,
        },
        DecodeError::Corrupt(detail) => ImageError::Corrupt {
            path: name.clone(),
            detail,
        },
    })?;
    Ok((bytes, img))
}

/// Whether an end-of-image marker closes the file (trailing padding allowed).
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let end = bytes.len()
        - bytes
            .iter()
            .rev()
            .take_while(|&&b| b == 0 || b.is_ascii_whitespace())
            .count();
    let tail = &bytes[end.saturating_sub(4096)..end];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

enum DecodeError {
    NotImage,
    Limits(String),
    Corrupt(String),
}

fn decode(bytes: &[u8], config: &MatchConfig) -> Result<RgbImage, DecodeError> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| DecodeError::NotImage)?;
    let format = reader.format().ok_or(DecodeError::NotImage)?;
    // The JPEG decoder fills a cut-off scan with grey rather than failing; the missing
    // end-of-image marker is what tells a truncated file.
    if format == image::ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        return Err(DecodeError::Corrupt(
            "no JPEG end-of-image marker: the file is cut off".into(),
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(config.max_dimension);
    limits.max_image_height = Some(config.max_dimension);
    limits.max_alloc = Some(config.max_decode_bytes);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => DecodeError::Limits(l.to_string()),
        image::ImageError::Unsupported(_) => DecodeError::NotImage,
        other => DecodeError::Corrupt(other.to_string()),
    })?;
    if img.width() == 0 || img.height() == 0 {
        return Err(DecodeError::Corrupt("image has no pixels".into()));
    }
    Ok(img.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::hash::Hashes;
    use crate::store::Store;

    #[test]
    fn tokens_of_another_renderer_stay_out_of_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scheme = Scheme::new();
        let scheme_id = tokens::scheme_id(store.conn(), scheme.name(), scheme.params()).unwrap();
        for renderer in [RENDERER_VERSION, RENDERER_VERSION + 1] {
            tokens::insert(
                store.conn(),
                &tokens::NewToken {
                    token: Token::random(),
                    identity_seed: 1,
                    variant_seed: 2,
                    size: 256,
                    renderer,
                    created_ms: 0,
                    client_key: "t",
                    minted_by: "test",
                    minting_event: None,
                    hashes: Some((
                        scheme_id,
                        Hashes {
                            phash: 1,
                            dhash: 2,
                            center_phash: 3,
                        },
                    )),
                    parent_token: None,
                    depth: 0,
                },
            )
            .unwrap();
        }
        let m = Matcher::load(store.conn(), MatchConfig::default()).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m.unhashed, 1);
    }

    #[test]
    fn confidence_follows_the_weakest_band() {
        let rect = FULL;
        let at = |score| Alignment {
            score,
            low: 1.0,
            detail: score,
            chroma: 1.0,
            rect,
        };
        assert_eq!(confidence(at(SCORE_AT_ONE + 0.05)), 1.0);
        assert_eq!(confidence(at(SCORE_AT_ZERO - 0.05)), 0.0);
        let mid = confidence(at((SCORE_AT_ZERO + SCORE_AT_ONE) / 2.0));
        assert!((mid - 0.5).abs() < 0.01, "{mid}");
    }
}
