//! The inner face: eye sockets, eyes, brows, nose, cheeks, mouth, age lines, facial hair and
//! glasses, drawn in face space over the shaded head. Shapes come from the identity; only light
//! and pose come from the variant, so every variant shows the same person.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tiny_skia::{
    BlendMode, GradientStop, LinearGradient, Path, PathBuilder, Point, Shader, SpreadMode,
    Transform,
};

use super::identity::{FacialHair, GlassesShape};
use super::palette::Rgb;
use super::render::{mirrored, Painter, Pt, Scene};

pub(super) fn face(p: &mut Painter, s: &Scene) {
    cheeks(p, s);
    eyes(p, s);
    brows(p, s);
    nose(p, s);
    age_lines(p, s);
    beard(p, s);
    mouth(p, s);
    moustache(p, s);
}

fn cheeks(p: &mut Painter, s: &Scene) {
    let id = s.id;
    let blush = Rgb::new(0.86, 0.36, 0.36);
    for side in [-1.0f32, 1.0] {
        p.glow(
            side * 0.56,
            0.42,
            0.3,
            0.2,
            blush,
            0.1 * id.blush + 0.12 * id.makeup,
        );
    }
    if id.freckles > 0.0 {
        let mut rng = ChaCha8Rng::seed_from_u64(id.seed ^ 0x0f7e_c41e);
        let spot = s.skin.shadow(0.72);
        let mut dots = Vec::with_capacity(36);
        for _ in 0..36 {
            let x = rng.random_range(-0.75f32..0.75);
            let y = rng.random_range(0.15f32..0.6) + 0.25 * (x * x);
            let r = rng.random_range(0.01f32..0.02);
            if x.abs() > 0.12 || y < 0.45 {
                dots.push((x, y, r, r));
            }
        }
        let path = p.dots_at(&dots);
        p.fill(&path, spot, 0.3 * id.freckles);
    }
}

struct Eye {
    cx: f32,
    inner: Pt,
    outer: Pt,
    up: [Pt; 2],
    low: [Pt; 2],
}

impl Eye {
    fn new(s: &Scene, side: f32) -> Eye {
        let e = &s.id.eyes;
        let (cx, w, h, t) = (side * e.spacing, e.width, e.height, e.tilt);
        Eye {
            cx,
            inner: (cx - side * w, 0.012),
            outer: (cx + side * w, -t),
            up: [
                (cx - side * w * 0.45, -h * 1.55),
                (cx + side * w * 0.5, -h * 1.45 - t * 0.5),
            ],
            low: [
                (cx + side * w * 0.45, h * 1.15 - t * 0.4),
                (cx - side * w * 0.45, h * 1.2),
            ],
        }
    }

    fn almond(&self, p: &Painter) -> Option<Path> {
        let a = |q: Pt| p.at(q.0, q.1);
        let (i, o) = (a(self.inner), a(self.outer));
        let (u0, u1, l0, l1) = (a(self.up[0]), a(self.up[1]), a(self.low[0]), a(self.low[1]));
        let mut pb = PathBuilder::new();
        pb.move_to(i.0, i.1);
        pb.cubic_to(u0.0, u0.1, u1.0, u1.1, o.0, o.1);
        pb.cubic_to(l0.0, l0.1, l1.0, l1.1, i.0, i.1);
        pb.close();
        pb.finish()
    }

    fn lid(&self, p: &Painter, upper: bool) -> Option<Path> {
        let a = |q: Pt| p.at(q.0, q.1);
        let (i, o) = (a(self.inner), a(self.outer));
        let (c0, c1) = if upper {
            (a(self.up[0]), a(self.up[1]))
        } else {
            (a(self.low[1]), a(self.low[0]))
        };
        let mut pb = PathBuilder::new();
        pb.move_to(i.0, i.1);
        pb.cubic_to(c0.0, c0.1, c1.0, c1.1, o.0, o.1);
        pb.finish()
    }

    /// A point on the upper lid, `t` from inner (0) to outer (1) corner.
    fn upper_at(&self, t: f32) -> Pt {
        let u = 1.0 - t;
        let (a, b, c, d) = (self.inner, self.up[0], self.up[1], self.outer);
        let f = |a: f32, b: f32, c: f32, d: f32| {
            u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
        };
        (f(a.0, b.0, c.0, d.0), f(a.1, b.1, c.1, d.1))
    }
}

fn eyes(p: &mut Painter, s: &Scene) {
    let e = &s.id.eyes;
    let (w, h) = (e.width, e.height);
    let (lx, ly) = s.light;
    let pair = [Eye::new(s, -1.0), Eye::new(s, 1.0)];
    let shadow_lid = s
        .skin_dark
        .mix(Rgb::new(0.35, 0.22, 0.3), 0.3 * s.id.makeup);
    for (eye, side) in pair.iter().zip([-1.0f32, 1.0]) {
        let cx = eye.cx;
        // Sockets: the brow ridge and the nose bridge shade the eyes.
        p.glow(cx + side * 0.03, -0.06, w * 1.75, 0.24, s.skin_dark, 0.65);
        p.glow(
            side * (e.spacing - w - 0.04),
            0.0,
            0.09,
            0.13,
            s.skin_dark,
            0.3,
        );
        p.glow(
            cx,
            -h * 1.4,
            w * 0.95,
            h * 1.0,
            shadow_lid,
            0.22 + 0.25 * s.id.makeup,
        );
    }
    let almonds = [pair[0].almond(p), pair[1].almond(p)];
    // Eye whites are shaded by lids and lashes; on dark skin a pure white would outshine the
    // socket shadow that makes an eye read as an eye.
    let sclera = Rgb::new(0.92, 0.9, 0.87)
        .mix(s.skin, 0.1)
        .scale(1.0 - 0.5 * s.id.tone);
    for (eye, almond) in pair.iter().zip(&almonds) {
        let (x, y) = p.at(eye.cx, 0.0);
        let shader = radial(
            x,
            y,
            w * 1.05,
            h * 1.5,
            &[
                (0.0, sclera, 1.0),
                (0.65, sclera.scale(0.93), 1.0),
                (1.0, sclera.shadow(0.68), 1.0),
            ],
        );
        p.paint(almond, shader, BlendMode::SourceOver, None);
    }
    let mask = p.mask(&almonds[0]).map(|mut m| {
        if let Some(path) = &almonds[1] {
            m.fill_path(path, tiny_skia::FillRule::Winding, true, p.ts);
        }
        m
    });
    let r = w * 0.46;
    let iris = e.color;
    for eye in &pair {
        let (ix, iy) = p.at(eye.cx + e.gaze.0, -h * 0.1 + e.gaze.1);
        let circle = PathBuilder::from_circle(ix, iy, r);
        let shader = radial(
            ix,
            iy,
            r,
            r,
            &[
                (0.0, iris.light(0.15), 1.0),
                (0.42, iris.scale(1.1), 1.0),
                (0.78, iris.scale(0.85), 1.0),
                (0.9, iris.scale(0.35), 1.0),
                (1.0, iris.scale(0.3), 1.0),
            ],
        );
        p.paint(&circle, shader, BlendMode::SourceOver, mask.as_ref());
        let pupil = PathBuilder::from_circle(ix, iy, r * 0.42);
        p.paint(
            &pupil,
            Some(Shader::SolidColor(Rgb::new(0.03, 0.02, 0.02).color(1.0))),
            BlendMode::SourceOver,
            mask.as_ref(),
        );
        // The upper lid shades the top of the eyeball.
        let (_, top) = p.at(eye.cx, -h * 1.2);
        let (_, mid) = p.at(eye.cx, h * 0.25);
        let lid_shade = LinearGradient::new(
            Point::from_xy(ix, top),
            Point::from_xy(ix, mid),
            vec![
                GradientStop::new(0.0, Rgb::new(0.1, 0.05, 0.04).color(0.7)),
                GradientStop::new(1.0, Rgb::new(0.1, 0.05, 0.04).color(0.0)),
            ],
            SpreadMode::Pad,
            Transform::identity(),
        );
        let box_ = eye.almond(p);
        p.paint(&box_, lid_shade, BlendMode::SourceOver, None);
        let glint = PathBuilder::from_circle(
            ix + lx * r * 0.42 - 0.2 * r,
            iy + ly.min(-0.3) * r * 0.42,
            r * 0.22,
        );
        p.paint(
            &glint,
            Some(Shader::SolidColor(Rgb::new(1.0, 1.0, 1.0).color(0.9))),
            BlendMode::SourceOver,
            mask.as_ref(),
        );
    }
    let lash =
        s.id.hair
            .color
            .scale(0.35)
            .mix(Rgb::new(0.05, 0.04, 0.04), 0.7);
    let lash_w = 0.026 + 0.014 * s.id.makeup;
    let mut lashes = Vec::with_capacity(12);
    for (eye, side) in pair.iter().zip([-1.0f32, 1.0]) {
        let upper = eye.lid(p, true);
        p.stroke(&upper, lash, 0.92, lash_w);
        let lower = eye.lid(p, false);
        p.stroke(&lower, s.skin_dark, 0.35, 0.012);
        for i in 0..4 {
            let t = 0.55 + i as f32 * 0.13;
            let (x, y) = eye.upper_at(t);
            lashes.push(vec![
                (x, y),
                (x + side * 0.018, y - 0.03),
                (x + side * 0.04, y - 0.045),
            ]);
        }
        let crease = p.curve(&[
            (eye.cx - side * w * 0.75, -h * 0.9),
            (eye.cx, -h * 2.0 - 0.025),
            (eye.cx + side * w * 0.95, -h * 1.1 - e.tilt),
        ]);
        p.stroke(&crease, s.skin_dark, 0.12 + 0.3 * e.crease, 0.016);
    }
    let lashes = p.curves(&lashes);
    p.stroke(&lashes, lash, 0.8, 0.009);
}

fn brows(p: &mut Painter, s: &Scene) {
    let b = &s.id.brows;
    let e = &s.id.eyes;
    let (w, th) = (e.width, b.thickness);
    let by = -0.27 - b.lift - e.height * 0.5;
    let mut rng = ChaCha8Rng::seed_from_u64(s.id.seed ^ 0xb0_0b5);
    let mut hairs = Vec::with_capacity(16);
    for side in [-1.0f32, 1.0] {
        let c = [
            (side * (e.spacing - w * 0.95), by + 0.015),
            (side * (e.spacing - w * 0.2), by - b.arch * 0.7),
            (side * (e.spacing + w * 0.45), by - b.arch),
            (side * (e.spacing + w * 1.22), by + 0.06 - b.arch * 0.2),
        ];
        let t = [th, th * 0.95, th * 0.72, th * 0.12];
        let mut pts: Vec<Pt> = c
            .iter()
            .zip(t)
            .map(|(&(x, y), t)| (x, y - t / 2.0))
            .collect();
        pts.extend(c.iter().zip(t).rev().map(|(&(x, y), t)| (x, y + t / 2.0)));
        let path = p.blob(&pts);
        p.fill(&path, b.color, 0.88);
        for _ in 0..5 {
            let u: f32 = rng.random_range(0.0..0.9);
            let i = ((u * 3.0) as usize).min(2);
            let f = u * 3.0 - i as f32;
            let (x, y) = (
                c[i].0 + (c[i + 1].0 - c[i].0) * f,
                c[i].1 + (c[i + 1].1 - c[i].1) * f + rng.random_range(-0.3f32..0.3) * th,
            );
            hairs.push(vec![(x, y + th * 0.3), (x + side * 0.05, y - th * 0.2)]);
        }
    }
    let hairs = p.curves(&hairs);
    p.stroke(&hairs, b.color.scale(0.7), 0.5, 0.01);
}

fn nose(p: &mut Painter, s: &Scene) {
    let n = &s.id.nose;
    let (nw, nl) = (n.width, s.nose_y);
    let (lx, _) = s.light;
    let k = s.strength;
    let dark_side = if lx > 0.0 { -1.0 } else { 1.0 };
    p.glow(
        dark_side * 0.16,
        nl * 0.52,
        0.1,
        nl * 0.45,
        s.skin_dark,
        0.45 * n.bridge * k,
    );
    p.glow(
        dark_side * nw * 0.45,
        nl - 0.07,
        0.09,
        0.08,
        s.skin_dark,
        0.3 * k,
    );
    p.glow(
        -dark_side * 0.15,
        nl * 0.55,
        0.07,
        nl * 0.4,
        s.skin_dark,
        0.1,
    );
    p.glow(
        -dark_side * 0.03,
        nl * 0.45,
        0.045,
        nl * 0.36,
        s.skin_lit,
        0.28 * k,
    );
    p.glow(0.0, nl + 0.035, nw * 0.95, 0.075, s.skin_dark, 0.5);
    p.glow(
        -dark_side * 0.025,
        nl - 0.1,
        nw * 0.38,
        0.075,
        s.skin_lit,
        0.38 * k,
    );
    let nostril = s.skin.shadow(0.22);
    for side in [-1.0f32, 1.0] {
        let shade = if side == dark_side { 0.38 } else { 0.14 };
        p.glow(side * nw * 0.82, nl - 0.08, 0.1, 0.09, s.skin_dark, shade);
        let ala = p.curve(&[
            (side * nw * 0.7, nl - 0.19),
            (side * nw * 1.0, nl - 0.08),
            (side * nw * 0.92, nl + 0.0),
            (side * nw * 0.62, nl + 0.025),
        ]);
        p.stroke(&ala, s.skin_dark, 0.42, 0.026);
        let hole = p.ellipse(side * nw * 0.42, nl - 0.002, nw * 0.25, 0.032);
        p.fill(&hole, nostril, 0.85);
    }
}

fn mouth(p: &mut Painter, s: &Scene) {
    let m = &s.id.mouth;
    let (mw, my, ul, ll) = (m.width, s.mouth_y, m.upper, m.lower);
    let c = my - m.smile;
    let k = s.strength;
    let lip = m.color;
    p.glow(0.0, my - ul - 0.07, 0.06, 0.07, s.skin_dark, 0.14);
    p.glow(0.0, my + ll + 0.07, mw * 0.55, 0.06, s.skin_dark, 0.36);
    let line: [Pt; 5] = [
        (-mw, c),
        (-mw * 0.5, my + 0.006),
        (0.0, my + 0.01),
        (mw * 0.5, my + 0.006),
        (mw, c),
    ];
    let upper = p.blob(&[
        line[4],
        (mw * 0.6, my - ul * 0.72),
        (mw * 0.2, my - ul),
        (0.0, my - ul * 0.8),
        (-mw * 0.2, my - ul),
        (-mw * 0.6, my - ul * 0.72),
        line[0],
        line[1],
        line[2],
        line[3],
    ]);
    let lower = p.blob(&[
        line[0],
        line[1],
        line[2],
        line[3],
        line[4],
        (mw * 0.55, my + ll * 0.85),
        (0.0, my + ll),
        (-mw * 0.55, my + ll * 0.85),
    ]);
    p.fill(&upper, lip.shadow(0.78), 1.0);
    p.fill(&lower, lip, 1.0);
    p.glow(
        -s.light.0 * 0.1,
        my + ll * 0.45,
        mw * 0.42,
        ll * 0.35,
        lip.light(0.45),
        0.4 * k,
    );
    p.glow(
        0.0,
        my + ll * 0.9,
        mw * 0.6,
        ll * 0.25,
        lip.shadow(0.6),
        0.3,
    );
    let seam = p.curve(&[(-mw * 1.03, c), line[1], line[2], line[3], (mw * 1.03, c)]);
    p.stroke(&seam, lip.shadow(0.3), 0.85, 0.022);
    for side in [-1.0f32, 1.0] {
        p.glow(side * mw, c, 0.04, 0.03, s.skin_dark, 0.45);
    }
}

fn age_lines(p: &mut Painter, s: &Scene) {
    let a = s.old;
    let e = &s.id.eyes;
    let (nw, nl, mw, my) = (s.id.nose.width, s.nose_y, s.id.mouth.width, s.mouth_y);
    let mut fine = Vec::new();
    for side in [-1.0f32, 1.0] {
        let fold = p.curve(&[
            (side * (nw + 0.06), nl - 0.1),
            (side * (nw + 0.13), nl + 0.12),
            (side * (mw + 0.08), my + 0.1),
        ]);
        p.stroke(&fold, s.skin_dark, 0.1 + 0.28 * a, 0.03);
        let cx = side * e.spacing;
        let bag = p.curve(&[
            (cx - side * e.width * 0.8, e.height * 1.5),
            (cx, e.height * 1.5 + 0.06),
            (cx + side * e.width, e.height * 1.2),
        ]);
        p.stroke(&bag, s.skin_dark, 0.1 + 0.25 * a, 0.018);
        if a > 0.3 {
            for i in 0..3 {
                let dy = (i as f32 - 1.0) * 0.05;
                let x0 = cx + side * (e.width + 0.04);
                fine.push(vec![
                    (x0, -0.02 + dy * 0.5),
                    (x0 + side * 0.1, -0.02 + dy * 1.6),
                ]);
            }
        }
        if a > 0.5 {
            let m = p.curve(&[(side * mw, my + 0.03), (side * (mw + 0.05), my + 0.28)]);
            p.stroke(&m, s.skin_dark, 0.3 * (a - 0.4), 0.02);
        }
    }
    if a > 0.25 {
        for i in 0..3 {
            let y = -0.62 - i as f32 * 0.11;
            fine.push(vec![(-0.45, y + 0.025), (0.0, y), (0.45, y + 0.025)]);
        }
        let lines = p.curves(&fine);
        p.stroke(&lines, s.skin_dark, 0.3 * (a - 0.2), 0.012);
    }
}

fn beard(p: &mut Painter, s: &Scene) {
    let id = s.id;
    let f = &id.face;
    let (nl, mw, my, l) = (s.nose_y, id.mouth.width, s.mouth_y, s.len);
    let color = id.beard_color;
    match id.facial_hair {
        FacialHair::Stubble | FacialHair::Beard => {
            let b = if id.facial_hair == FacialHair::Beard {
                0.12 + 0.2 * (id.seed % 7) as f32 / 6.0
            } else {
                0.0
            };
            let region = p.blob(&mirrored(&[
                (0.0, nl + 0.06),
                (mw * 0.6, nl + 0.07),
                (mw + 0.12, nl + 0.1),
                (0.78, 0.38),
                (0.88, -0.05),
                (f.cheek * 0.99, -0.05),
                (f.cheek * 0.98 + b * 0.1, 0.5 * l),
                (0.93 * f.jaw + b * 0.3, 0.98 * l + b * 0.3),
                (f.chin + 0.15 + b * 0.2, 1.42 * l + b),
                (0.0, s.chin_y + b),
            ]));
            if b > 0.0 {
                p.lit(s, &region, color, 0.96, (0.0, 1.0), 1.3, 0.3, 0.5);
                p.grain(&region, 0.35, (0.012, 0.05));
            } else {
                p.fill(&region, color.mix(s.skin_dark, 0.5), 0.22);
                p.dots(&region, 0.4, 0.02);
            }
        }
        FacialHair::Goatee => {
            let region = p.blob(&mirrored(&[
                (0.0, nl + 0.05),
                (mw * 0.7, nl + 0.07),
                (mw + 0.08, my),
                (mw * 0.75, my + 0.3),
                (0.32, 1.46 * l + 0.08),
                (0.0, s.chin_y + 0.1),
            ]));
            p.fill(&region, color, 0.92);
            p.grain(&region, 0.35, (0.012, 0.05));
        }
        _ => {}
    }
}

fn moustache(p: &mut Painter, s: &Scene) {
    let id = s.id;
    if !matches!(id.facial_hair, FacialHair::Moustache) {
        return;
    }
    let (nl, mw, my, ul) = (s.nose_y, id.mouth.width, s.mouth_y, id.mouth.upper);
    let color = id.beard_color;
    let path = p.blob(&mirrored(&[
        (0.0, nl + 0.045),
        (mw * 0.6, nl + 0.06),
        (mw + 0.06, my + 0.03),
        (mw * 0.85, my - 0.01),
        (mw * 0.4, my - ul * 0.55),
        (0.0, my - ul * 0.5),
    ]));
    p.fill(&path, color, 0.95);
    p.grain(&path, 0.35, (0.012, 0.05));
}

pub(super) fn glasses(p: &mut Painter, s: &Scene) {
    let Some(g) = &s.id.glasses else {
        return;
    };
    let e = &s.id.eyes;
    let hw = e.width * 1.55 + 0.02;
    let hh = match g.shape {
        GlassesShape::Round => 0.22,
        GlassesShape::Rectangle => 0.17,
    };
    let corner = match g.shape {
        GlassesShape::Round => 0.72,
        GlassesShape::Rectangle => 0.9,
    };
    for side in [-1.0f32, 1.0] {
        let (cx, cy) = (side * e.spacing, 0.02);
        let ring: Vec<Pt> = [
            (1.0, 0.0),
            (corner, corner),
            (0.0, 1.0),
            (-corner, corner),
            (-1.0, 0.0),
            (-corner, -corner),
            (0.0, -1.0),
            (corner, -corner),
        ]
        .iter()
        .map(|&(x, y)| (cx + x * hw, cy + y * hh))
        .collect();
        let lens = p.blob(&ring);
        let (x0, y0) = p.at(cx - hw, cy - hh);
        let (x1, y1) = p.at(cx + hw, cy + hh);
        let white = Rgb::new(1.0, 1.0, 1.0);
        let shine = LinearGradient::new(
            Point::from_xy(x0, y0),
            Point::from_xy(x1, y1),
            vec![
                GradientStop::new(0.2, white.color(0.0)),
                GradientStop::new(0.3, white.color(0.12 * (1.0 - s.id.tone))),
                GradientStop::new(0.4, white.color(0.0)),
            ],
            SpreadMode::Pad,
            Transform::identity(),
        );
        p.paint(&lens, shine, BlendMode::SourceOver, None);
        p.stroke(&lens, g.color, 0.95, g.thickness);
        let arm = p.curve(&[(cx + side * hw * 0.95, cy - hh * 0.5), (side * 1.03, -0.06)]);
        p.stroke(&arm, g.color, 0.95, g.thickness * 0.8);
    }
    let bridge = p.curve(&[
        (-(e.spacing - hw * 0.98), -0.02),
        (0.0, -0.07),
        (e.spacing - hw * 0.98, -0.02),
    ]);
    p.stroke(&bridge, g.color, 0.95, g.thickness * 0.8);
}

fn radial(x: f32, y: f32, rx: f32, ry: f32, stops: &[(f32, Rgb, f32)]) -> Option<Shader<'static>> {
    tiny_skia::RadialGradient::new(
        Point::zero(),
        Point::zero(),
        1.0,
        stops
            .iter()
            .map(|&(t, c, a)| GradientStop::new(t, c.color(a)))
            .collect(),
        SpreadMode::Pad,
        Transform::from_row(rx, 0.0, 0.0, ry, x, y),
    )
}
