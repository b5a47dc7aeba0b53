//! PLACEHOLDER until the real renderer lands.
use super::{Identity, Variant};
use image::RgbImage;

pub fn render(identity: &Identity, variant: &Variant, size: u32) -> RgbImage {
    let s = size as f32;
    let (ca, sa) = (variant.angle.cos(), variant.angle.sin());
    RgbImage::from_fn(size, size, |x, y| {
        let u = x as f32 / s;
        let v = y as f32 / s;
        let t = ((u - 0.5) * ca + (v - 0.5) * sa + 0.7) / 1.4;
        let mut c = [0f32; 3];
        for (k, ck) in c.iter_mut().enumerate() {
            *ck = variant.c0[k] * (1.0 - t) + variant.c1[k] * t;
        }
        for (p, r, col) in &variant.blobs {
            let d2 = (u - p[0]).powi(2) + (v - p[1]).powi(2);
            let w = (-d2 / (r * r)).exp() * 0.7;
            for k in 0..3 {
                c[k] = c[k] * (1.0 - w) + col[k] * w;
            }
        }
        let fu = (u - 0.5 - variant.dx) * variant.zoom.recip();
        let fv = (v - 0.5 - variant.dy) * variant.zoom.recip();
        let e = (fu / identity.face_w).powi(2) + (fv / 0.4).powi(2);
        if e < 1.0 {
            let shade = 1.0 - 0.3 * e;
            for k in 0..3 {
                c[k] = identity.skin[k] * shade;
            }
            let eye = |ex: f32| (fu - ex).powi(2) + (fv + 0.08).powi(2) < 0.0015;
            if eye(-0.1) || eye(0.1) || (fv > 0.17 && fv < 0.2 && fu.abs() < 0.1) {
                c = [0.1, 0.05, 0.05];
            }
        }
        image::Rgb(c.map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8))
    })
}

pub fn render_seeds(identity_seed: u64, variant_seed: u64, size: u32) -> RgbImage {
    render(
        &Identity::from_seed(identity_seed),
        &Variant::from_seed(variant_seed),
        size,
    )
}
