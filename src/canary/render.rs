//! Draws one canary image from an identity and a variant: frames the head, paints background,
//! body, head and (through `features` and `hair`) the face, then applies the colour grade in one
//! final pass. Deterministic: the same inputs give the same bytes, with no global state beyond
//! constant texture tiles. It never stores, encodes or hashes images; callers do that.

use image::RgbImage;
use tiny_skia::{
    BlendMode, FillRule, FilterQuality, GradientStop, LinearGradient, Mask, Paint, Path,
    PathBuilder, Pattern, Pixmap, Point, RadialGradient, Rect, Shader, SpreadMode, Stroke,
    Transform,
};

use super::identity::{Identity, Neckline, Sex};
use super::palette::Rgb;
use super::variant::{Background, Grade, Variant};
use super::{features, hair, texture};

/// Version of the drawing, stored with every token: a token re-renders to its exact image
/// only under the version that minted it, so any change to what this module draws for given
/// seeds must bump it (and keep the old drawing reachable, or re-hash old tokens).
pub const RENDERER_VERSION: u32 = 1;

/// Larger requests are clamped: a canary never needs more, and memory stays bounded.
pub const MAX_SIZE: u32 = 4096;
/// Output pixels per backdrop pixel on each axis: the backdrop is smooth, and grain hides
/// the steps.
const BACKDROP_STEP: u32 = 4;
/// Where the eye line sits in the default framing, as a fraction of the frame height.
const EYE_LINE: f32 = 0.43;

/// Renders the image for a token's seeds; see [`render`].
pub fn render_seeds(identity_seed: u64, variant_seed: u64, size: u32) -> RgbImage {
    render(
        &Identity::from_seed(identity_seed),
        &Variant::from_seed(variant_seed),
        size,
    )
}

/// Renders a square portrait `size` pixels wide (clamped to 1..=`MAX_SIZE`).
pub fn render(identity: &Identity, variant: &Variant, size: u32) -> RgbImage {
    let size = size.clamp(1, MAX_SIZE);
    let backdrop = size.div_ceil(BACKDROP_STEP).max(1);
    let (Some(pm), Some(mut bg)) = (Pixmap::new(size, size), Pixmap::new(backdrop, backdrop))
    else {
        return RgbImage::new(size, size);
    };
    // The backdrop is all soft gradients: drawn small, it is enlarged for free in the last pass.
    background(
        &mut bg,
        &variant.background,
        variant.grade.saturation,
        backdrop as f32,
    );
    // Saturation is graded on the identity's colours rather than per pixel: it is cheaper, and
    // every shade derived from them follows.
    let mut graded = identity.clone();
    graded.clothing.color = variant.clothing;
    let graded = saturated(&graded, variant.grade.saturation);
    let scene = Scene::new(&graded, variant);
    let mut p = Painter {
        pm,
        ts: framing(identity, variant, size as f32),
        yaw: identity.yaw + variant.yaw,
        pitch: identity.pitch,
    };
    hair::behind(&mut p, &scene);
    neck(&mut p, &scene);
    body(&mut p, &scene);
    ears(&mut p, &scene);
    head(&mut p, &scene);
    features::face(&mut p, &scene);
    features::glasses(&mut p, &scene);
    hair::front(&mut p, &scene);
    // Cameras expose for the face: a dark face lifts the mid-tones of the whole frame.
    let exposure = 1.0 - 0.55 * (identity.tone - 0.45).max(0.0);
    finish(&p.pm, &bg, &variant.grade, exposure)
}

/// What every part of the drawing needs to know, derived once per image.
pub(super) struct Scene<'a> {
    pub id: &'a Identity,
    /// Unit vector towards the key light, in face space.
    pub light: (f32, f32),
    pub strength: f32,
    pub skin: Rgb,
    pub skin_dark: Rgb,
    pub skin_lit: Rgb,
    /// Vertical stretch below the eyes.
    pub len: f32,
    pub nose_y: f32,
    pub mouth_y: f32,
    pub chin_y: f32,
    /// 0 until about 30, 1 from about 75.
    pub old: f32,
}

impl<'a> Scene<'a> {
    fn new(id: &'a Identity, v: &Variant) -> Scene<'a> {
        let angle = id.light_angle + v.light_turn - id.roll - v.roll;
        let len = id.face.length;
        let nose_y = id.nose.length * len;
        let chin_y = 1.58 * len;
        Scene {
            id,
            light: (angle.cos(), angle.sin()),
            strength: (id.light_strength * v.light_gain).clamp(0.3, 1.2),
            skin: id.skin,
            skin_dark: id.skin.shadow(0.52),
            skin_lit: id.skin.light(0.35),
            len,
            nose_y,
            mouth_y: nose_y + (chin_y - nose_y) * 0.34,
            chin_y,
            old: ((id.age - 30.0) / 45.0).clamp(0.0, 1.0),
        }
    }
}

/// Draws in face space: x to the right, y down, origin between the eyes, and half the
/// cheekbone width as the unit. `ts` maps face space to pixels.
pub(super) struct Painter {
    pub pm: Pixmap,
    pub ts: Transform,
    yaw: f32,
    pitch: f32,
}

pub(super) type Pt = (f32, f32);

impl Painter {
    /// Turns the head a little by moving points by how far they stand forward.
    pub fn at(&self, x: f32, y: f32) -> Pt {
        let sphere = (1.0 - (x / 1.15) * (x / 1.15)).max(0.0).sqrt();
        let nose = 0.45 * (-(x * x / 0.06) - (y - 0.35) * (y - 0.35) / 0.25).exp();
        let z = 0.55 * sphere + nose;
        (x + self.yaw * z, y + self.pitch * z)
    }

    /// A smooth closed shape through the points.
    pub fn blob(&self, pts: &[Pt]) -> Option<Path> {
        let w: Vec<Pt> = pts.iter().map(|&(x, y)| self.at(x, y)).collect();
        smooth(&w, true)
    }

    /// A smooth open curve through the points.
    pub fn curve(&self, pts: &[Pt]) -> Option<Path> {
        let w: Vec<Pt> = pts.iter().map(|&(x, y)| self.at(x, y)).collect();
        smooth(&w, false)
    }

    /// Many open curves as one path, so that they cost one draw call.
    pub fn curves(&self, lines: &[Vec<Pt>]) -> Option<Path> {
        let mut pb = PathBuilder::new();
        for line in lines {
            let w: Vec<Pt> = line.iter().map(|&(x, y)| self.at(x, y)).collect();
            push_smooth(&mut pb, &w, false);
        }
        pb.finish()
    }

    /// Many small ellipses (centre, x radius, y radius) as one path.
    pub fn dots_at(&self, dots: &[(f32, f32, f32, f32)]) -> Option<Path> {
        let mut pb = PathBuilder::new();
        for &(x, y, rx, ry) in dots {
            let (x, y) = self.at(x, y);
            if let Some(r) = Rect::from_xywh(x - rx, y - ry, 2.0 * rx, 2.0 * ry) {
                pb.push_oval(r);
            }
        }
        pb.finish()
    }

    pub fn ellipse(&self, cx: f32, cy: f32, rx: f32, ry: f32) -> Option<Path> {
        let (x, y) = self.at(cx, cy);
        PathBuilder::from_oval(Rect::from_xywh(x - rx, y - ry, 2.0 * rx, 2.0 * ry)?)
    }

    pub fn mask(&self, path: &Option<Path>) -> Option<Mask> {
        let path = path.as_ref()?;
        let mut m = Mask::new(self.pm.width(), self.pm.height())?;
        m.fill_path(path, FillRule::Winding, true, self.ts);
        Some(m)
    }

    pub fn paint(
        &mut self,
        path: &Option<Path>,
        shader: Option<Shader>,
        blend: BlendMode,
        mask: Option<&Mask>,
    ) {
        if let (Some(path), Some(shader)) = (path, shader) {
            let paint = Paint {
                shader,
                blend_mode: blend,
                anti_alias: true,
                force_hq_pipeline: false,
            };
            self.pm
                .fill_path(path, &paint, FillRule::Winding, self.ts, mask);
        }
    }

    pub fn fill(&mut self, path: &Option<Path>, c: Rgb, alpha: f32) {
        self.paint(
            path,
            Some(Shader::SolidColor(c.color(alpha))),
            BlendMode::SourceOver,
            None,
        );
    }

    pub fn stroke(&mut self, path: &Option<Path>, c: Rgb, alpha: f32, width: f32) {
        if let Some(path) = path {
            let paint = Paint {
                shader: Shader::SolidColor(c.color(alpha)),
                anti_alias: true,
                ..Paint::default()
            };
            let stroke = Stroke {
                width,
                line_cap: tiny_skia::LineCap::Round,
                line_join: tiny_skia::LineJoin::Round,
                ..Stroke::default()
            };
            self.pm.stroke_path(path, &paint, &stroke, self.ts, None);
        }
    }

    /// A soft elliptical spot of colour fading out to its rim.
    pub fn glow(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, c: Rgb, alpha: f32) {
        self.glow_in(None, cx, cy, rx, ry, c, alpha);
    }

    /// A soft spot, drawn only inside `clip` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn glow_in(
        &mut self,
        clip: Option<&Option<Path>>,
        cx: f32,
        cy: f32,
        rx: f32,
        ry: f32,
        c: Rgb,
        alpha: f32,
    ) {
        if alpha <= 0.004 || rx <= 0.0 || ry <= 0.0 {
            return;
        }
        let (x, y) = self.at(cx, cy);
        // A linear fall-off carries less than a soft one would: make up for it at the centre.
        let alpha = (alpha * 1.35).min(1.0);
        let shader = radial(
            x,
            y,
            rx,
            ry,
            vec![
                GradientStop::new(0.0, c.color(alpha)),
                GradientStop::new(1.0, c.color(0.0)),
            ],
        );
        let own;
        let path = match clip {
            Some(p) => p,
            None => {
                own = self.ellipse(cx, cy, rx, ry);
                &own
            }
        };
        if let (Some(path), Some(shader)) = (path, shader) {
            // The rim is transparent, so anti-aliasing would buy nothing but time.
            let paint = Paint {
                shader,
                anti_alias: clip.is_some(),
                ..Paint::default()
            };
            self.pm
                .fill_path(path, &paint, FillRule::Winding, self.ts, None);
        }
    }

    /// Fills `path` with a linear gradient from `a` to `b` (face space, not warped).
    pub fn linear(&mut self, path: &Option<Path>, a: Pt, b: Pt, stops: &[(f32, Rgb, f32)]) {
        let stops = stops
            .iter()
            .map(|&(t, c, alpha)| GradientStop::new(t, c.color(alpha)))
            .collect();
        let shader = LinearGradient::new(
            Point::from_xy(a.0, a.1),
            Point::from_xy(b.0, b.1),
            stops,
            SpreadMode::Pad,
            Transform::identity(),
        );
        self.paint(path, shader, BlendMode::SourceOver, None);
    }

    /// Fills `path` with `base`, lit on the side towards the key light and shaded on the
    /// other: one gradient gives both the colour and the form.
    #[allow(clippy::too_many_arguments)]
    pub fn lit(
        &mut self,
        s: &Scene,
        path: &Option<Path>,
        base: Rgb,
        alpha: f32,
        centre: Pt,
        reach: f32,
        lift: f32,
        depth: f32,
    ) {
        let (lx, ly) = s.light;
        let k = s.strength;
        let (a, b) = (
            self.at(centre.0 + lx * reach, centre.1 + ly * reach),
            self.at(centre.0 - lx * reach, centre.1 - ly * reach),
        );
        let shader = LinearGradient::new(
            Point::from_xy(a.0, a.1),
            Point::from_xy(b.0, b.1),
            vec![
                GradientStop::new(0.0, base.light(lift * k).color(alpha)),
                GradientStop::new(1.0, base.shadow(1.0 - depth * k).color(alpha)),
            ],
            SpreadMode::Pad,
            Transform::identity(),
        );
        self.paint(path, shader, BlendMode::SourceOver, None);
    }

    /// Grain from a noise tile, overlaid; `scale` is face units per tile pixel on each axis.
    pub fn grain(&mut self, path: &Option<Path>, opacity: f32, scale: Pt) {
        if let Some(tile) = texture::noise() {
            let shader = Pattern::new(
                tile.as_ref(),
                SpreadMode::Repeat,
                FilterQuality::Nearest,
                opacity,
                Transform::from_scale(scale.0, scale.1),
            );
            self.paint(path, Some(shader), BlendMode::Overlay, None);
        }
    }

    /// Sparse dark dots, as stubble.
    pub fn dots(&mut self, path: &Option<Path>, opacity: f32, scale: f32) {
        if let Some(tile) = texture::stubble() {
            let shader = Pattern::new(
                tile.as_ref(),
                SpreadMode::Repeat,
                FilterQuality::Nearest,
                opacity,
                Transform::from_scale(scale, scale),
            );
            self.paint(path, Some(shader), BlendMode::SourceOver, None);
        }
    }
}

fn radial(x: f32, y: f32, rx: f32, ry: f32, stops: Vec<GradientStop>) -> Option<Shader<'static>> {
    RadialGradient::new(
        Point::zero(),
        Point::zero(),
        1.0,
        stops,
        SpreadMode::Pad,
        Transform::from_row(rx, 0.0, 0.0, ry, x, y),
    )
}

/// Catmull-Rom through the points, as cubic Béziers.
fn smooth(pts: &[Pt], closed: bool) -> Option<Path> {
    if pts.len() < 2 {
        return None;
    }
    let mut pb = PathBuilder::new();
    push_smooth(&mut pb, pts, closed);
    pb.finish()
}

fn push_smooth(pb: &mut PathBuilder, pts: &[Pt], closed: bool) {
    let n = pts.len();
    if n < 2 {
        return;
    }
    let get = |i: isize| -> Pt {
        if closed {
            pts[i.rem_euclid(n as isize) as usize]
        } else {
            pts[i.clamp(0, n as isize - 1) as usize]
        }
    };
    pb.move_to(pts[0].0, pts[0].1);
    let segments = if closed { n } else { n - 1 };
    for i in 0..segments as isize {
        let (p0, p1, p2, p3) = (get(i - 1), get(i), get(i + 1), get(i + 2));
        pb.cubic_to(
            p1.0 + (p2.0 - p0.0) / 6.0,
            p1.1 + (p2.1 - p0.1) / 6.0,
            p2.0 - (p3.0 - p1.0) / 6.0,
            p2.1 - (p3.1 - p1.1) / 6.0,
            p2.0,
            p2.1,
        );
    }
    if closed {
        pb.close();
    }
}

/// A closed outline from its right half, listed top to bottom; points on the midline are shared.
pub(super) fn mirrored(right: &[Pt]) -> Vec<Pt> {
    let mut all = right.to_vec();
    for &(x, y) in right.iter().rev() {
        if x.abs() > 1e-4 {
            all.push((-x, y));
        }
    }
    all
}

/// Scales and places the head: zoom, pan within what keeps the face in frame, and roll.
fn framing(id: &Identity, v: &Variant, size: f32) -> Transform {
    let k = id.face.scale * v.zoom.clamp(0.8, 1.5);
    let (sin, cos) = (id.roll + v.roll).sin_cos();
    let bottom = 1.7 * id.face.length;
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for (x, y) in [(-1.3, -1.65), (1.3, -1.65), (-1.3, bottom), (1.3, bottom)] {
        let (rx, ry) = ((x * cos - y * sin) * k, (x * sin + y * cos) * k);
        x0 = x0.min(rx);
        x1 = x1.max(rx);
        y0 = y0.min(ry);
        y1 = y1.max(ry);
    }
    let m = 0.02;
    let place = |centre: f32, lo: f32, hi: f32| {
        if lo > hi {
            (lo + hi) / 2.0
        } else {
            centre.clamp(lo, hi)
        }
    };
    let ax = place(0.5 + v.pan.0.clamp(-1.0, 1.0) * 0.12, m - x0, 1.0 - m - x1);
    let ay = place(
        EYE_LINE + v.pan.1.clamp(-1.0, 1.0) * 0.06,
        m - y0,
        1.0 - m - y1,
    );
    let k = k * size;
    Transform::from_row(k * cos, k * sin, -k * sin, k * cos, ax * size, ay * size)
}

fn saturated(id: &Identity, k: f32) -> Identity {
    let k = k.clamp(0.0, 2.0);
    let mut g = id.clone();
    for c in [
        &mut g.skin,
        &mut g.eyes.color,
        &mut g.brows.color,
        &mut g.mouth.color,
        &mut g.hair.color,
        &mut g.beard_color,
        &mut g.clothing.color,
    ] {
        *c = c.saturate(k);
    }
    if let Some(glasses) = &mut g.glasses {
        glasses.color = glasses.color.saturate(k);
    }
    g
}

fn background(pm: &mut Pixmap, bg: &Background, sat: f32, size: f32) {
    let (from, to) = (bg.from.saturate(sat), bg.to.saturate(sat));
    pm.fill(from.color(1.0));
    let (sin, cos) = bg.angle.sin_cos();
    let (c, h) = (size / 2.0, size * 0.6);
    let full = Rect::from_xywh(0.0, 0.0, size, size);
    let shader = LinearGradient::new(
        Point::from_xy(c - cos * h, c - sin * h),
        Point::from_xy(c + cos * h, c + sin * h),
        vec![
            GradientStop::new(0.0, from.color(1.0)),
            GradientStop::new(1.0, to.color(1.0)),
        ],
        SpreadMode::Pad,
        Transform::identity(),
    );
    if let (Some(shader), Some(full)) = (shader, full) {
        let paint = Paint {
            shader,
            ..Paint::default()
        };
        pm.fill_rect(full, &paint, Transform::identity(), None);
    }
    for b in &bg.blobs {
        let (x, y, r) = (b.x * size, b.y * size, b.radius * size);
        let shader = radial(
            x,
            y,
            r,
            r,
            vec![
                GradientStop::new(0.0, b.color.saturate(sat).color(b.alpha)),
                GradientStop::new(0.5, b.color.saturate(sat).color(b.alpha * 0.55)),
                GradientStop::new(1.0, b.color.saturate(sat).color(0.0)),
            ],
        );
        if let (Some(shader), Some(path)) = (shader, PathBuilder::from_circle(x, y, r)) {
            let paint = Paint {
                shader,
                ..Paint::default()
            };
            pm.fill_path(
                &path,
                &paint,
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
}

/// Right half of the face outline, top of the skull to the chin.
pub(super) fn outline(s: &Scene) -> Vec<Pt> {
    let f = &s.id.face;
    let l = s.len;
    vec![
        (0.0, -1.52),
        (0.6, -1.42),
        (0.9 * f.forehead, -1.06),
        (0.98 * f.forehead, -0.5),
        (f.cheek, 0.1),
        (0.97 * f.cheek - 0.08 * (1.0 - f.jaw), 0.55 * l),
        (0.93 * f.jaw, 0.98 * l),
        (f.chin + 0.15, 1.4 * l),
        (f.chin, 1.53 * l),
        (0.0, s.chin_y),
    ]
}

/// Where the neck meets the shoulders.
pub(super) fn neck_base(s: &Scene) -> f32 {
    s.chin_y + 0.55
}

fn neck(p: &mut Painter, s: &Scene) {
    let w = if s.id.sex == Sex::Male { 0.6 } else { 0.5 };
    let nb = neck_base(s);
    let path = p.blob(&mirrored(&[
        (0.0, 0.6),
        (w, 0.7),
        (w, s.chin_y),
        (w + 0.05, nb - 0.1),
        (0.9, nb + 0.25),
        (0.6, nb + 1.0),
        (0.0, nb + 1.05),
    ]));
    // The head shades the neck below the jaw.
    p.linear(
        &path,
        (0.0, s.chin_y - 0.1),
        (0.0, nb + 0.2),
        &[
            (0.0, s.skin.shadow(0.45), 1.0),
            (1.0, s.skin.shadow(0.9), 1.0),
        ],
    );
}

fn body(p: &mut Painter, s: &Scene) {
    let id = s.id;
    let nb = neck_base(s);
    let wide = if id.sex == Sex::Male { 1.0 } else { 0.88 };
    let neck_pts: &[Pt] = match id.clothing.neckline {
        Neckline::Crew => &[(0.55, nb + 0.22), (0.0, nb + 0.32)],
        Neckline::Scoop => &[(0.62, nb + 0.5), (0.0, nb + 0.7)],
        Neckline::VNeck | Neckline::Collar => &[(0.4, nb + 0.55), (0.0, nb + 0.95)],
    };
    let mut right: Vec<Pt> = neck_pts.iter().rev().copied().collect();
    right.extend_from_slice(&[
        (0.85, nb - 0.02),
        (1.6, nb + 0.1),
        (2.6 * wide, nb + 0.38),
        (3.2 * wide, nb + 1.0),
        (3.4 * wide, nb + 3.0),
        (0.0, nb + 3.2),
    ]);
    // Listed from the neckline's bottom, so mirror gives a closed outline around the torso.
    let mut pts = right.clone();
    for &(x, y) in right.iter().rev() {
        if x.abs() > 1e-4 {
            pts.push((-x, y));
        }
    }
    let path = p.blob(&pts);
    let cloth = id.clothing.color;
    // The head and neck shade the top of the chest; one gradient replaces a flat fill.
    p.linear(
        &path,
        (0.0, nb),
        (0.0, nb + 1.1),
        &[(0.0, cloth.shadow(0.55), 1.0), (1.0, cloth, 1.0)],
    );
    if id.clothing.neckline == Neckline::Collar {
        let collar = if cloth.luma() > 0.6 {
            cloth.scale(0.9)
        } else {
            Rgb::hex(0xf2f0ea)
        };
        for side in [-1.0f32, 1.0] {
            let flap = p.blob(&[
                (side * 0.95, nb - 0.12),
                (side * 0.1, nb + 0.9),
                (side * 0.75, nb + 0.55),
                (side * 1.25, nb + 0.18),
            ]);
            p.lit(s, &flap, collar, 1.0, (0.0, nb + 0.4), 1.4, 0.15, 0.4);
        }
    }
}

fn ears(p: &mut Painter, s: &Scene) {
    let l = s.len;
    for side in [-1.0f32, 1.0] {
        let pts: Vec<Pt> = [
            (0.94, -0.12),
            (1.1, -0.17),
            (1.2, -0.02),
            (1.19, 0.2),
            (1.13, 0.42),
            (1.04, 0.56),
            (0.95, 0.5),
        ]
        .iter()
        .map(|&(x, y)| (side * x * s.id.face.cheek, y * l))
        .collect();
        let path = p.blob(&pts);
        let lit = side * s.light.0 > 0.0;
        let shade = if lit { 0.92 } else { 0.92 - 0.35 * s.strength };
        p.fill(&path, s.skin.shadow(shade), 1.0);
        p.glow(side * 1.1, 0.16 * l, 0.06, 0.17, s.skin_dark, 0.55);
        let helix = p.curve(&[
            (side * 1.0, -0.09 * l),
            (side * 1.13, -0.08 * l),
            (side * 1.16, 0.15 * l),
            (side * 1.09, 0.38 * l),
        ]);
        p.stroke(&helix, s.skin_dark, 0.45, 0.022);
    }
}

fn head(p: &mut Painter, s: &Scene) {
    let path = p.blob(&mirrored(&outline(s)));
    let (lx, ly) = s.light;
    // One gradient gives light and form: brightest off-centre towards the light, falling
    // into shadow towards the rim and the far side.
    let k = s.strength;
    let (cx, cy) = p.at(lx * 0.3, 0.05 + ly * 0.25);
    let form = radial(
        cx,
        cy,
        1.45,
        2.0 * s.len,
        vec![
            GradientStop::new(0.0, s.skin.light((0.12 + 0.12 * s.id.tone) * k).color(1.0)),
            GradientStop::new(0.55, s.skin.color(1.0)),
            GradientStop::new(1.0, s.skin.shadow(1.0 - 0.6 * k).color(1.0)),
        ],
    );
    p.paint(&path, form, BlendMode::SourceOver, None);
    // Dark skin shows its form mostly through highlights, as in a photograph.
    let sheen = 0.15 + 0.5 * s.id.tone;
    // Forehead, cheekbones and chin catch the light; temples and under cheekbones fall away.
    p.glow(lx * 0.25, -0.72, 0.55, 0.28, s.skin_lit, (0.1 + sheen) * k);
    p.glow(0.0, 1.38 * s.len, 0.3, 0.14, s.skin_lit, 0.14 * k);
    for side in [-1.0f32, 1.0] {
        let lit = if side * lx > 0.0 { 1.0 } else { 0.4 };
        p.glow(side * 0.58, 0.32, 0.3, 0.16, s.skin_lit, 0.2 * k * lit);
        p.glow(side * 0.82, 0.62 * s.len, 0.2, 0.32, s.skin_dark, 0.16);
        p.glow(side * 0.9, -0.5, 0.18, 0.35, s.skin_dark, 0.14);
        p.glow(side * 0.42, 0.3, 0.3, 0.14, s.skin_lit, sheen * k * lit);
    }
    p.glow(0.0, -0.02, 0.1, 0.22, s.skin_lit, sheen * k);
}

/// Puts the figure over the enlarged backdrop, grades the colour, adds grain and converts to
/// RGB, in one pass over the pixels; lookup tables keep it cheap.
fn finish(fg: &Pixmap, bg: &Pixmap, g: &Grade, exposure: f32) -> RgbImage {
    let w = g.warmth.clamp(-1.0, 1.0);
    let gains = [1.0 + 0.08 * w, 1.0 + 0.01 * w, 1.0 - 0.09 * w];
    let gamma = g.gamma.clamp(0.5, 2.0) * exposure.clamp(0.5, 1.0);
    let contrast = g.contrast.clamp(0.5, 1.5);
    let mut luts = [[0u8; 512]; 3];
    for (lut, gain) in luts.iter_mut().zip(gains) {
        for (i, v) in lut.iter_mut().enumerate() {
            // Indices are offset by 128 so that grain can push a value past either end.
            let x = ((i as f32 - 128.0) / 255.0 * gain)
                .clamp(0.0, 1.0)
                .powf(gamma);
            let y = (x - 0.5) * contrast + 0.5;
            *v = (y * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
    let (size, b) = (fg.width() as usize, bg.width() as usize);
    let step = BACKDROP_STEP as usize;
    let bgd = bg.data();
    let mut out = vec![0u8; size * size * 3];
    // Sensor grain, the same on every surface, as a camera gives it.
    let n = texture::NOISE_SIZE as usize;
    let flat = [128u8; 4 * texture::NOISE_SIZE as usize];
    let grain = texture::noise().map_or(&flat[..0], |t| t.data());
    let amp = 7;
    // Exposure across the frame, in 1/256 steps: a gain at the row start and a step per pixel.
    let (sin, cos) = g.falloff_angle.sin_cos();
    let k = g.falloff.clamp(0.0, 0.5) * 2.0 * 256.0 / size as f32;
    let (dx, dy) = (cos * k, sin * k);
    for (y, (line, dst)) in fg
        .data()
        .chunks_exact(size * 4)
        .zip(out.chunks_exact_mut(size * 3))
        .enumerate()
    {
        let under_row = &bgd[((y / step).min(b - 1) * b) * 4..][..b * 4];
        let noise_row = grain
            .get((y % n) * n * 4..(y % n + 1) * n * 4)
            .unwrap_or(&flat);
        let half = size as f32 / 2.0;
        let mut gain = 256.0 + dy * (y as f32 - half) - dx * half;
        for (x, (px, o)) in line
            .chunks_exact(4)
            .zip(dst.chunks_exact_mut(3))
            .enumerate()
        {
            let gi = gain as u32;
            gain += dx;
            let a = px[3] as u32;
            let mut rgb = [px[0] as u32, px[1] as u32, px[2] as u32];
            if a < 255 {
                let u = &under_row[(x / step).min(b - 1) * 4..][..3];
                for (v, &c) in rgb.iter_mut().zip(u) {
                    *v += (c as u32 * (255 - a) + 127) / 255;
                }
            }
            let grain = ((noise_row[(x % n) * 4] as i32 - 128) * amp) >> 7;
            for ((v, o), lut) in rgb.iter().zip(o.iter_mut()).zip(&luts) {
                *o = lut[(((*v * gi) >> 8) as i32 + grain + 128).clamp(0, 511) as usize];
            }
        }
    }
    let n = size as u32;
    RgbImage::from_raw(n, n, out).unwrap_or_else(|| RgbImage::new(n, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64-bit average hash: 8x8 block means of the grey image, each bit set above the mean.
    fn average_hash(img: &RgbImage) -> u64 {
        let (w, h) = img.dimensions();
        let mut cells = [0f64; 64];
        for (x, y, p) in img.enumerate_pixels() {
            let grey = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
            cells[(y * 8 / h * 8 + x * 8 / w) as usize] += grey;
        }
        let mean = cells.iter().sum::<f64>() / 64.0;
        cells
            .iter()
            .enumerate()
            .fold(0, |acc, (i, &c)| acc | (u64::from(c > mean) << i))
    }

    #[test]
    fn same_seeds_give_the_same_bytes() {
        let a = render_seeds(42, 7, 128);
        let b = render_seeds(42, 7, 128);
        assert_eq!(a.as_raw(), b.as_raw());
    }

    #[test]
    fn different_seeds_give_different_images() {
        let base = render_seeds(1, 1, 64);
        assert_ne!(base.as_raw(), render_seeds(2, 1, 64).as_raw());
        assert_ne!(base.as_raw(), render_seeds(1, 2, 64).as_raw());
    }

    #[test]
    fn renders_requested_sizes() {
        for size in [64, 256, 512] {
            let img = render_seeds(3, 9, size);
            assert_eq!(img.dimensions(), (size, size));
        }
        assert_eq!(render_seeds(3, 9, 0).dimensions(), (1, 1));
    }

    #[test]
    fn variants_of_one_identity_hash_far_apart() {
        let id = Identity::from_seed(11);
        let hashes: Vec<u64> = (0..50)
            .map(|v| average_hash(&render(&id, &Variant::from_seed(v * 7919 + 13), 64)))
            .collect();
        let (mut total, mut pairs) = (0u32, 0u32);
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                total += (a ^ b).count_ones();
                pairs += 1;
            }
        }
        let mean = total as f64 / pairs as f64;
        // 32 is what unrelated images give.
        assert!(mean > 24.0, "mean Hamming distance {mean}");
    }
}
