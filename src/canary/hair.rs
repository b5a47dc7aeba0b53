//! Hair as masses with shading and strands: what falls behind the head and shoulders (long
//! hair, curls, a bun) and what lies in front (the cap over the skull, fringes, side locks).
//! Strand placement comes from the identity seed, so it is the same in every variant.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::identity::{HairStyle, Sex};
use super::render::{mirrored, neck_base, Painter, Pt, Scene};

fn strand_rng(s: &Scene) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(s.id.seed ^ 0x4841_4952)
}

/// A hair mass, lit on one side and shaded on the other; light hair takes less highlight.
fn shade(p: &mut Painter, s: &Scene, path: &Option<tiny_skia::Path>, centre: Pt, reach: f32) {
    let c = s.id.hair.color;
    p.lit(s, path, c, 1.0, centre, reach, 0.45 * (1.0 - c.luma()), 0.6);
}

fn sheen(p: &mut Painter, s: &Scene, y: f32, rx: f32) {
    let c = s.id.hair.color;
    p.glow(
        s.light.0 * 0.4,
        y,
        rx,
        0.16,
        c.light(0.45),
        0.28 * s.strength * (1.0 - c.luma()),
    );
}

fn long_end(s: &Scene) -> f32 {
    neck_base(s) + 0.5 + 0.8 * ((s.id.seed >> 8) % 5) as f32 / 4.0
}

/// The hair that falls behind head and shoulders, shaded darker than the hair in front.
fn back_mass(p: &mut Painter, s: &Scene, path: &Option<tiny_skia::Path>) {
    p.lit(
        s,
        path,
        s.id.hair.color.shadow(0.75),
        1.0,
        (0.0, 0.0),
        1.6,
        0.2,
        0.6,
    );
}

pub(super) fn behind(p: &mut Painter, s: &Scene) {
    let h = &s.id.hair;
    let t = h.volume;
    let mut rng = strand_rng(s);
    match h.style {
        HairStyle::Long => {
            let end = long_end(s);
            let path = p.blob(&mirrored(&[
                (0.0, -1.55 - t),
                (0.78 + 0.3 * t, -1.45 - 0.6 * t),
                (1.15 + t, -0.9),
                (1.3 + t, 0.0),
                (1.4 + t, 1.2),
                (1.5 + t, end - 0.3),
                (1.2, end),
                (0.6, end - 0.25),
                (0.0, end - 0.3),
            ]));
            back_mass(p, s, &path);
        }
        HairStyle::Bob => {
            let path = p.blob(&mirrored(&[
                (0.0, -1.55 - t),
                (0.8 + 0.3 * t, -1.45 - 0.6 * t),
                (1.15 + t, -0.9),
                (1.27 + t, 0.2),
                (1.22 + t, 1.05),
                (0.95, 1.32),
                (0.0, 1.2),
            ]));
            back_mass(p, s, &path);
        }
        HairStyle::Curly => {
            let (rx, top) = (1.3 + t, 1.1 + 0.8 * t);
            let bottom = if s.id.sex == Sex::Female {
                1.55 + t
            } else {
                1.0
            };
            let cy = -0.4;
            let n = 30;
            let pts: Vec<Pt> = (0..n)
                .map(|i| {
                    let a = i as f32 / n as f32 * std::f32::consts::TAU;
                    let bump = 1.0 + rng.random_range(-0.04f32..0.06);
                    let ry = if a.sin() < 0.0 { top } else { bottom };
                    (a.cos() * rx * bump, cy + a.sin() * ry * bump)
                })
                .collect();
            let path = p.blob(&pts);
            shade(p, s, &path, (0.0, cy), rx);
            curls(p, s, &mut rng, 70, |r| {
                let a = r.random_range(0.0..std::f32::consts::TAU);
                let d = r.random_range(0.3f32..0.97).sqrt();
                let ry = if a.sin() < 0.0 { top } else { bottom };
                (a.cos() * rx * d, cy + a.sin() * ry * d)
            });
        }
        HairStyle::Bun => {
            let path = p.ellipse(0.0, -1.74, 0.38, 0.34);
            shade(p, s, &path, (0.0, -1.74), 0.5);
            let swirls: Vec<Vec<Pt>> = (0..5)
                .map(|i| {
                    let r = 0.1 + i as f32 * 0.05;
                    vec![(-r, -1.74), (0.0, -1.74 - r * 0.8), (r, -1.72)]
                })
                .collect();
            let swirls = p.curves(&swirls);
            p.stroke(&swirls, s.id.hair.color.light(0.3), 0.3, 0.02);
        }
        _ => {}
    }
}

/// Small rings of lighter and darker hair, as curls.
fn curls(
    p: &mut Painter,
    s: &Scene,
    rng: &mut ChaCha8Rng,
    count: usize,
    mut place: impl FnMut(&mut ChaCha8Rng) -> Pt,
) {
    let c = s.id.hair.color;
    let rings: Vec<(f32, f32, f32, f32)> = (0..count)
        .map(|_| {
            let (x, y) = place(rng);
            let r = rng.random_range(0.05f32..0.09);
            (x, y, r, r * 0.85)
        })
        .collect();
    let (light, dark) = rings.split_at(count / 2);
    let light = p.dots_at(light);
    p.stroke(&light, c.light(0.4), 0.25, 0.022);
    let dark = p.dots_at(dark);
    p.stroke(&dark, c.shadow(0.3), 0.4, 0.026);
}

pub(super) fn front(p: &mut Painter, s: &Scene) {
    let h = &s.id.hair;
    let t = h.volume;
    let mut rng = strand_rng(s);
    if h.style == HairStyle::Bald {
        p.glow(
            s.light.0 * 0.3,
            -1.22,
            0.45,
            0.2,
            s.skin_lit,
            0.3 * s.strength,
        );
        if s.id.sex == Sex::Male && s.old > 0.2 {
            for side in [-1.0f32, 1.0] {
                let patch = p.blob(&[
                    (side * 0.96, -0.85),
                    (side * 1.05, -0.55),
                    (side * 1.04, -0.1),
                    (side * 0.96, -0.1),
                    (side * 0.95, -0.55),
                ]);
                p.fill(&patch, h.color, 0.55);
                p.dots(&patch, 0.3, 0.02);
            }
        }
        return;
    }
    let fringe = h.style == HairStyle::Fringe;
    let hl = if fringe {
        -0.3 - s.id.brows.lift - s.id.eyes.height * 0.5 - 0.22
    } else {
        h.hairline
    };
    // A soft shadow where the hair meets the forehead.
    p.glow(0.0, hl + 0.1, 0.85, 0.16, s.skin_dark, 0.3);
    let lift = |x: f32| {
        if h.style == HairStyle::SidePart && x * h.part > 0.0 {
            -0.07
        } else {
            0.0
        }
    };
    let side_burn = match (s.id.sex, h.style) {
        (_, HairStyle::Long | HairStyle::Bob | HairStyle::Curly) => 0.1,
        (Sex::Male, _) => 0.05,
        (Sex::Female, _) => -0.2,
    };
    let mut pts: Vec<Pt> = vec![
        (0.0, -1.53 - t),
        (0.64 + 0.3 * t, -1.44 - 0.8 * t),
        (0.96 + 0.6 * t, -1.08 - 0.3 * t),
        (1.04 + 0.5 * t, -0.55),
        (1.04 + 0.2 * t, side_burn),
        (0.95, side_burn),
        (0.92, -0.5),
    ];
    if fringe {
        pts.extend_from_slice(&[
            (0.86, hl + 0.12),
            (0.66, hl + 0.03),
            (0.45, hl - 0.02),
            (0.24, hl + 0.02),
            (0.0, hl - 0.01),
        ]);
    } else {
        pts.extend_from_slice(&[(0.76, hl + 0.17), (0.4, hl + 0.03), (0.0, hl)]);
    }
    let mut full = mirrored(&pts);
    for q in full.iter_mut() {
        if q.1 > -1.3 && q.1 < -0.3 && q.0.abs() < 0.93 {
            q.1 += lift(q.0);
        }
    }
    let cap = p.blob(&full);
    if h.style == HairStyle::Buzz {
        p.fill(&cap, h.color, 0.55);
        p.dots(&cap, 0.35, 0.02);
        return;
    }
    shade(p, s, &cap, (0.0, -0.9), 1.5);
    sheen(p, s, -1.3 - 0.5 * t, 0.55);
    let c = h.color;
    if h.style == HairStyle::Curly {
        curls(p, s, &mut rng, 40, |r| {
            let x = r.random_range(-0.95f32..0.95);
            let top = -1.5 - t * 0.8 * (1.0 - x * x).max(0.0);
            (x, r.random_range(top..(hl - 0.05).max(top + 0.01)))
        });
    } else {
        let mut strands = (Vec::with_capacity(7), Vec::with_capacity(7));
        for i in 0..14 {
            let u = i as f32 / 13.0;
            let x = -0.95 + 1.9 * u + rng.random_range(-0.04f32..0.04);
            let y = if fringe { hl + 0.02 } else { hl + 0.2 * x * x } + lift(x);
            let start = (x * 0.55 + h.part * 0.2, -1.42 - t * 0.5 + 0.1 * x * x);
            let bend = rng.random_range(-0.06f32..0.06);
            let strand = vec![
                start,
                ((start.0 + x) / 2.0 + bend, (start.1 + y) / 2.0 - 0.05),
                (x, y - 0.02),
            ];
            if i % 2 == 0 {
                strands.0.push(strand);
            } else {
                strands.1.push(strand);
            }
        }
        let light = p.curves(&strands.0);
        p.stroke(&light, c.light(0.35), 0.22, 0.018);
        let dark = p.curves(&strands.1);
        p.stroke(&dark, c.shadow(0.4), 0.3, 0.02);
    }
    if matches!(h.style, HairStyle::Long | HairStyle::Bob) {
        let end = if h.style == HairStyle::Long {
            long_end(s)
        } else {
            1.28
        };
        for side in [-1.0f32, 1.0] {
            let lock: Vec<Pt> = [
                (0.3, -1.3 - t * 0.5),
                (0.95, -1.15 - t * 0.3),
                (1.18 + t, -0.55),
                (1.27 + t, 0.3),
                (1.32 + t, end * 0.5 + 0.3),
                (1.3 + t * 0.5, end - 0.15),
                (1.12, end),
                (0.98, end - 0.35),
                (0.99, (end * 0.6).min(1.0)),
                (1.0, 0.35),
                (0.93, -0.3),
                (0.72, -0.85),
            ]
            .iter()
            .map(|&(x, y)| (side * x, y))
            .collect();
            let path = p.blob(&lock);
            shade(p, s, &path, (side * 1.1, 0.4), 1.2);
            let strands: Vec<Vec<Pt>> = (0..3)
                .map(|j| {
                    let x = 1.04 + j as f32 * 0.09 + rng.random_range(-0.02f32..0.02);
                    vec![
                        (side * (x - 0.15), -0.8),
                        (side * (x + 0.05), 0.2),
                        (side * x, end * 0.8),
                    ]
                })
                .collect();
            let strands = p.curves(&strands);
            p.stroke(&strands, c.shadow(0.4), 0.3, 0.018);
        }
    }
}
