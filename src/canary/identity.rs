//! One synthetic person: every trait that stays the same whichever page view shows them (face
//! shape, skin, hair, eyes, brows, nose, mouth, age, glasses, beard, clothing, usual pose and
//! light). Drawn from a 64-bit seed with a portable RNG, so the same seed is the same person on
//! every machine. It decides what a person looks like, never how one image of them is framed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::palette::{self, Rgb};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
}

/// Broad looks that tie skin tone, hair and features together plausibly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ancestry {
    African,
    EastAsian,
    European,
    LatinAmerican,
    MiddleEastern,
    SouthAsian,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaceShape {
    Oval,
    Round,
    Square,
    Long,
    Heart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HairStyle {
    Bald,
    Buzz,
    Short,
    SidePart,
    Fringe,
    Bob,
    Long,
    Curly,
    Bun,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FacialHair {
    None,
    Stubble,
    Moustache,
    Goatee,
    Beard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlassesShape {
    Round,
    Rectangle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Neckline {
    Crew,
    VNeck,
    Collar,
    Scoop,
}

/// Proportions in face units: half the cheekbone width is 1.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceGeometry {
    pub shape: FaceShape,
    /// Frame fraction per face unit at zoom 1.
    pub scale: f32,
    /// Vertical stretch below the eyes.
    pub length: f32,
    pub forehead: f32,
    pub cheek: f32,
    pub jaw: f32,
    pub chin: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Eyes {
    /// Distance of each eye centre from the midline.
    pub spacing: f32,
    pub width: f32,
    pub height: f32,
    /// Outer corner raised by this much.
    pub tilt: f32,
    pub color: Rgb,
    /// 0 = no visible lid crease, 1 = deep crease.
    pub crease: f32,
    pub gaze: (f32, f32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Brows {
    pub thickness: f32,
    pub arch: f32,
    /// Extra distance above the eyes.
    pub lift: f32,
    pub color: Rgb,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Nose {
    /// Half the width across the nostril wings.
    pub width: f32,
    /// Height of the nose base below the eye line.
    pub length: f32,
    pub bridge: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mouth {
    /// Half the width corner to corner.
    pub width: f32,
    pub upper: f32,
    pub lower: f32,
    pub smile: f32,
    pub color: Rgb,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hair {
    pub style: HairStyle,
    pub color: Rgb,
    /// How far the hair stands off the skull, in face units.
    pub volume: f32,
    /// Height of the hairline at the midline (negative is up).
    pub hairline: f32,
    /// -1 parts left, 1 right, 0 centre.
    pub part: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Glasses {
    pub shape: GlassesShape,
    pub color: Rgb,
    pub thickness: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Clothing {
    /// Usual colour; a variant may dress the person differently.
    pub color: Rgb,
    pub neckline: Neckline,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub seed: u64,
    pub sex: Sex,
    pub age: f32,
    pub ancestry: Ancestry,
    /// 0 (very light) to 1 (very dark), drawn uniformly so every tone is as common.
    pub tone: f32,
    pub skin: Rgb,
    pub face: FaceGeometry,
    pub eyes: Eyes,
    pub brows: Brows,
    pub nose: Nose,
    pub mouth: Mouth,
    pub hair: Hair,
    pub facial_hair: FacialHair,
    pub beard_color: Rgb,
    pub glasses: Option<Glasses>,
    pub makeup: f32,
    pub blush: f32,
    pub freckles: f32,
    pub clothing: Clothing,
    /// Usual head turn, nod and roll (face units, face units, radians).
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
    /// Direction towards the key light in the image plane (radians, -pi/2 is straight up).
    pub light_angle: f32,
    pub light_strength: f32,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, weighted: &[(T, f32)]) -> T {
    let total: f32 = weighted.iter().map(|w| w.1).sum();
    let mut x = rng.random::<f32>() * total;
    for &(v, w) in weighted {
        if x < w {
            return v;
        }
        x -= w;
    }
    weighted[weighted.len() - 1].0
}

fn range(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

impl Identity {
    pub fn from_seed(seed: u64) -> Identity {
        use Ancestry::*;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let r = &mut rng;
        let sex = if r.random_bool(0.5) {
            Sex::Female
        } else {
            Sex::Male
        };
        let male = sex == Sex::Male;
        let age = 18.0 + 60.0 * r.random::<f32>().powf(1.25);
        let old = ((age - 30.0) / 45.0).clamp(0.0, 1.0);

        // Tone first and uniform, so that dark skin is as common as light; looks follow it.
        let tone = r.random::<f32>();
        let fits: Vec<(Ancestry, f32)> = [
            (European, 0.0, 0.34),
            (EastAsian, 0.08, 0.4),
            (MiddleEastern, 0.18, 0.55),
            (LatinAmerican, 0.2, 0.66),
            (SouthAsian, 0.36, 0.8),
            (African, 0.52, 1.01),
        ]
        .iter()
        .filter(|a| tone >= a.1 && tone < a.2)
        .map(|a| (a.0, 1.0))
        .collect();
        let ancestry = if fits.is_empty() {
            African
        } else {
            pick(r, &fits)
        };
        let under = range(r, -1.0, 1.0);
        let base = palette::skin_tone(tone);
        let skin = Rgb::new(
            base.r + 0.015 * under,
            base.g + if ancestry == EastAsian { 0.012 } else { 0.0 },
            base.b - 0.02 * under - if ancestry == EastAsian { 0.01 } else { 0.0 },
        )
        .clamped();

        let shape = pick(
            r,
            &[
                (FaceShape::Oval, 1.0),
                (FaceShape::Round, 1.0),
                (FaceShape::Square, 1.0),
                (FaceShape::Long, 1.0),
                (FaceShape::Heart, 1.0),
            ],
        );
        let (length, forehead, jaw, chin) = match shape {
            FaceShape::Oval => (1.0, 0.93, 0.8, 0.34),
            FaceShape::Round => (0.93, 0.95, 0.9, 0.44),
            FaceShape::Square => (0.97, 0.97, 0.97, 0.48),
            FaceShape::Long => (1.1, 0.91, 0.8, 0.36),
            FaceShape::Heart => (1.0, 0.99, 0.72, 0.25),
        };
        let face = FaceGeometry {
            shape,
            scale: range(r, 0.165, 0.182) + if male { 0.004 } else { 0.0 },
            length: length + range(r, -0.03, 0.03) - if male { 0.0 } else { 0.02 },
            forehead: forehead + range(r, -0.03, 0.03),
            cheek: range(r, 0.97, 1.03),
            jaw: (jaw + range(r, -0.04, 0.04) + if male { 0.05 } else { -0.02 }).min(1.0),
            chin: chin + range(r, -0.04, 0.04) + if male { 0.05 } else { 0.0 },
        };

        let eye_color = Rgb::hex(match ancestry {
            European => pick(
                r,
                &[
                    (palette::EYE_BLUE, 3.0),
                    (palette::EYE_GREY, 1.0),
                    (palette::EYE_GREEN, 1.5),
                    (palette::EYE_HAZEL, 1.5),
                    (palette::EYE_BROWN, 3.0),
                ],
            ),
            LatinAmerican | MiddleEastern => pick(
                r,
                &[
                    (palette::EYE_DARK_BROWN, 5.0),
                    (palette::EYE_BROWN, 3.0),
                    (palette::EYE_HAZEL, 1.0),
                    (palette::EYE_GREEN, 0.5),
                ],
            ),
            _ => pick(
                r,
                &[(palette::EYE_DARK_BROWN, 7.0), (palette::EYE_BROWN, 3.0)],
            ),
        });
        let east = ancestry == EastAsian;
        let eyes = Eyes {
            spacing: range(r, 0.4, 0.46),
            width: range(r, 0.18, 0.21),
            height: if east {
                range(r, 0.068, 0.085)
            } else {
                range(r, 0.078, 0.098)
            } * (1.0 - 0.12 * old),
            tilt: range(r, -0.015, 0.035) + if east { 0.02 } else { 0.0 },
            color: eye_color,
            crease: if east {
                range(r, 0.0, 0.5)
            } else {
                range(r, 0.6, 1.0)
            },
            gaze: (range(r, -0.012, 0.012), range(r, -0.006, 0.006)),
        };

        let grey = ((age - 46.0) / 28.0 + range(r, -0.25, 0.25)).clamp(0.0, 1.0);
        let natural = Rgb::hex(match ancestry {
            European => pick(
                r,
                &[
                    (palette::HAIR_BLACK, 1.0),
                    (palette::HAIR_DARK_BROWN, 2.5),
                    (palette::HAIR_BROWN, 2.0),
                    (palette::HAIR_LIGHT_BROWN, 1.5),
                    (palette::HAIR_BLOND, 1.2),
                    (palette::HAIR_LIGHT_BLOND, 0.8),
                    (palette::HAIR_AUBURN, 0.6),
                    (palette::HAIR_RED, 0.5),
                ],
            ),
            LatinAmerican => pick(
                r,
                &[
                    (palette::HAIR_BLACK, 4.0),
                    (palette::HAIR_DARK_BROWN, 4.0),
                    (palette::HAIR_BROWN, 2.0),
                ],
            ),
            MiddleEastern | SouthAsian => pick(
                r,
                &[(palette::HAIR_BLACK, 6.0), (palette::HAIR_DARK_BROWN, 4.0)],
            ),
            _ => pick(
                r,
                &[(palette::HAIR_BLACK, 8.5), (palette::HAIR_DARK_BROWN, 1.5)],
            ),
        });
        let silver = Rgb::hex(if grey > 0.85 {
            palette::HAIR_WHITE
        } else {
            palette::HAIR_GREY
        });
        // Salt and pepper more than white on dark skin: white hair around a dark face swamps
        // the contrast that detectors look for.
        let greying = grey.powf(1.3) * (1.0 - 0.4 * ((tone - 0.5) * 2.0).max(0.0));
        let hair_color = natural.mix(silver, greying);
        let beard_color = natural
            .mix(Rgb::hex(palette::HAIR_GREY), 0.7 * greying)
            .mix(Rgb::new(0.25, 0.15, 0.1), 0.15);
        let afro = ancestry == African;
        let style = if male {
            pick(
                r,
                &[
                    (HairStyle::Bald, 0.3 + 2.5 * old),
                    (HairStyle::Buzz, if afro { 4.0 } else { 1.5 }),
                    (HairStyle::Short, 3.0),
                    (HairStyle::SidePart, if afro { 0.5 } else { 2.0 }),
                    (HairStyle::Curly, if afro { 2.5 } else { 0.6 }),
                    (HairStyle::Fringe, 0.6),
                    (HairStyle::Long, 0.5),
                ],
            )
        } else {
            pick(
                r,
                &[
                    (HairStyle::Long, 3.0),
                    (HairStyle::Bob, 1.5),
                    (HairStyle::Bun, 1.3),
                    (HairStyle::Curly, if afro { 4.0 } else { 1.0 }),
                    (HairStyle::Fringe, 1.2),
                    (HairStyle::SidePart, 0.8),
                    (HairStyle::Short, 0.7),
                    (HairStyle::Buzz, if afro { 0.6 } else { 0.1 }),
                ],
            )
        };
        let receding = if male { range(r, 0.0, 0.3) * old } else { 0.0 };
        let hair = Hair {
            style,
            color: hair_color,
            volume: match style {
                HairStyle::Curly => range(r, 0.25, 0.6),
                HairStyle::Buzz | HairStyle::Bald => 0.02,
                HairStyle::Bun => range(r, 0.05, 0.1),
                _ => range(r, 0.1, 0.22),
            },
            hairline: range(r, -1.06, -0.96) - receding,
            part: pick(r, &[(-1.0, 1.0), (0.0, 0.6), (1.0, 1.0)]),
        };

        // Brows grey later than the hair, and read darker than the skin around them.
        let brow_base = natural
            .mix(silver, 0.6 * grey * grey)
            .mix(Rgb::hex(palette::HAIR_DARK_BROWN), 0.25);
        let brow_base = brow_base.scale((0.5 * skin.luma() / brow_base.luma().max(0.01)).min(1.0));
        let brows = Brows {
            thickness: if male {
                range(r, 0.055, 0.08)
            } else {
                range(r, 0.038, 0.058)
            },
            arch: if male {
                range(r, 0.0, 0.04)
            } else {
                range(r, 0.03, 0.075)
            },
            lift: range(r, -0.02, 0.04),
            color: brow_base,
        };

        let (nw, mw, ul, ll) = match ancestry {
            African => (
                range(r, 0.27, 0.34),
                range(r, 0.34, 0.42),
                range(r, 0.07, 0.095),
                range(r, 0.09, 0.12),
            ),
            EastAsian => (
                range(r, 0.22, 0.27),
                range(r, 0.3, 0.37),
                range(r, 0.05, 0.075),
                range(r, 0.07, 0.095),
            ),
            European => (
                range(r, 0.19, 0.25),
                range(r, 0.3, 0.38),
                range(r, 0.04, 0.065),
                range(r, 0.06, 0.09),
            ),
            _ => (
                range(r, 0.22, 0.29),
                range(r, 0.31, 0.39),
                range(r, 0.05, 0.08),
                range(r, 0.07, 0.1),
            ),
        };
        let nose = Nose {
            width: nw + if male { 0.015 } else { 0.0 },
            length: range(r, 0.58, 0.7),
            bridge: range(r, 0.5, 1.0),
        };
        let makeup = if male || r.random_bool(0.35) {
            0.0
        } else {
            range(r, 0.3, 1.0)
        };
        let natural_lip = skin.mix(Rgb::hex(0xa9505a), 0.32).scale(0.86);
        let lipstick = Rgb::hex(palette::LIPSTICKS[r.random_range(0..palette::LIPSTICKS.len())]);
        let mouth = Mouth {
            width: mw,
            upper: ul * (1.0 - 0.3 * old) * if male { 0.9 } else { 1.0 },
            lower: ll * (1.0 - 0.25 * old),
            smile: range(r, -0.005, 0.03),
            color: natural_lip.mix(lipstick, 0.55 * makeup),
        };

        let facial_hair = if male && age > 19.0 {
            pick(
                r,
                &[
                    (FacialHair::None, 5.0),
                    (FacialHair::Stubble, 2.0),
                    (FacialHair::Moustache, 0.7),
                    (FacialHair::Goatee, 0.8),
                    (FacialHair::Beard, if east { 0.5 } else { 1.8 }),
                ],
            )
        } else {
            FacialHair::None
        };
        let glasses = if r.random_bool((0.1 + 0.3 * old) as f64) {
            let frame = r.random_range(0..palette::GLASSES.len());
            Some(Glasses {
                shape: if r.random_bool(0.5) {
                    GlassesShape::Round
                } else {
                    GlassesShape::Rectangle
                },
                color: Rgb::hex(palette::GLASSES[frame]),
                // Metal frames are thin; plastic ones dark and thicker.
                thickness: if frame >= palette::METAL_GLASSES {
                    range(r, 0.012, 0.018)
                } else {
                    range(r, 0.02, 0.038)
                },
            })
        } else {
            None
        };
        let clothing = Clothing {
            color: Rgb::hex(palette::CLOTHING[r.random_range(0..palette::CLOTHING.len())]),
            neckline: if male {
                pick(
                    r,
                    &[
                        (Neckline::Crew, 2.0),
                        (Neckline::VNeck, 1.0),
                        (Neckline::Collar, 1.5),
                    ],
                )
            } else {
                pick(
                    r,
                    &[
                        (Neckline::Crew, 1.5),
                        (Neckline::VNeck, 1.0),
                        (Neckline::Collar, 0.7),
                        (Neckline::Scoop, 1.5),
                    ],
                )
            },
        };
        let blush = range(r, 0.3, 1.0) * (1.0 - 0.6 * tone);
        let freckles = if tone < 0.3 && r.random_bool(0.18) {
            range(r, 0.4, 1.0)
        } else {
            0.0
        };
        let side = if r.random_bool(0.5) { -1.0 } else { 1.0 };
        Identity {
            seed,
            sex,
            age,
            ancestry,
            tone,
            skin,
            face,
            eyes,
            brows,
            nose,
            mouth,
            hair,
            facial_hair,
            beard_color,
            glasses,
            makeup,
            blush,
            freckles,
            clothing,
            yaw: range(r, -0.1, 0.1),
            pitch: range(r, -0.04, 0.04),
            roll: range(r, -0.05, 0.05),
            light_angle: -std::f32::consts::FRAC_PI_2 + side * range(r, 0.25, 1.0),
            light_strength: range(r, 0.6, 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_person() {
        assert_eq!(Identity::from_seed(5), Identity::from_seed(5));
        assert_ne!(Identity::from_seed(5), Identity::from_seed(6));
    }

    #[test]
    fn skin_tones_and_sexes_spread_evenly() {
        let people: Vec<Identity> = (0..1000).map(Identity::from_seed).collect();
        let mut bins = [0; 5];
        for p in &people {
            bins[((p.tone * 5.0) as usize).min(4)] += 1;
        }
        assert!(bins.iter().all(|&n| n > 150), "tone bins {bins:?}");
        let women = people.iter().filter(|p| p.sex == Sex::Female).count();
        assert!((430..=570).contains(&women), "{women} women of 1000");
        let old = people.iter().filter(|p| p.age >= 60.0).count();
        assert!((150..=400).contains(&old), "{old} over 60 of 1000");
    }
}
