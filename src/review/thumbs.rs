//! Small pictures for the pages: a canary re-drawn from its seeds (images are never stored),
//! and an uploaded image re-encoded. Neither sends back bytes a client or an upload chose:
//! both are drawn or decoded here, then encoded as a fresh JPEG.

use super::web::{self, blocking, Fail, Signed};
use super::Dashboard;
use crate::canary::{render, Token};
use crate::store::tokens;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use image::RgbImage;
use std::str::FromStr;
use std::sync::Arc;

/// Width and height of a canary thumbnail.
const CANARY_PX: u32 = 128;

/// `img` scaled down to fit `max` pixels, as a JPEG.
pub fn jpeg(img: &RgbImage, max: u32) -> Result<Vec<u8>, Fail> {
    let (w, h) = img.dimensions();
    let scale = (max as f64 / w.max(h).max(1) as f64).min(1.0);
    let small;
    let img = if scale < 1.0 {
        let (nw, nh) = (
            ((w as f64 * scale).round() as u32).max(1),
            ((h as f64 * scale).round() as u32).max(1),
        );
        small = image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle);
        &small
    } else {
        img
    };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(
            img.as_raw(),
            img.width() as u16,
            img.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| Fail::Internal(format!("cannot encode a thumbnail: {e}")))?;
    Ok(out)
}

/// `/canaries/{token}.jpg`: the canary a token served, re-drawn and made small.
pub async fn canary(
    State(d): State<Arc<Dashboard>>,
    Extension(_me): Extension<Signed>,
    Path(file): Path<String>,
) -> Result<Response, Fail> {
    let token = file
        .strip_suffix(".jpg")
        .and_then(|t| Token::from_str(t).ok())
        .ok_or_else(|| Fail::NotFound("Not a canary's name.".into()))?;
    let cached = d
        .thumbs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(token.as_bytes())
        .cloned();
    if let Some(bytes) = cached {
        return Ok(web::asset("image/jpeg", bytes));
    }
    let t = token;
    let bytes = blocking(&d, move |_, conn| {
        let row = tokens::by_token(conn, &t)?
            .ok_or_else(|| Fail::NotFound(format!("No canary {t} was ever served.")))?;
        let img = render::render_seeds(row.identity_seed, row.variant_seed, row.size);
        jpeg(&img, CANARY_PX)
    })
    .await?;
    let bytes = Bytes::from(bytes);
    d.thumbs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .put(token.as_bytes().to_vec(), bytes.clone());
    Ok(web::asset("image/jpeg", bytes))
}
