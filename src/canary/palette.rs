//! Colour arithmetic and the palettes that identities and variants draw from: a skin-tone scale
//! from very light to very dark, hair, eye, lip, clothing and background colours. It owns no
//! drawing and no randomness; callers pass in the numbers they drew.

use tiny_skia::Color;

/// A colour with channels in 0..=1 (sRGB, not premultiplied).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rgb {
    pub r: f32,
    pub g: f32,
    pub b: f32,
}

impl Rgb {
    pub const fn new(r: f32, g: f32, b: f32) -> Rgb {
        Rgb { r, g, b }
    }

    pub fn hex(v: u32) -> Rgb {
        let c = |s: u32| ((v >> s) & 0xff) as f32 / 255.0;
        Rgb::new(c(16), c(8), c(0))
    }

    /// Hue in turns (0..1), saturation and lightness in 0..=1.
    pub fn hsl(h: f32, s: f32, l: f32) -> Rgb {
        let a = s * l.min(1.0 - l);
        let f = |n: f32| {
            let k = (n + h.rem_euclid(1.0) * 12.0) % 12.0;
            l - a * (k - 3.0).min(9.0 - k).clamp(-1.0, 1.0)
        };
        Rgb::new(f(0.0), f(8.0), f(4.0))
    }

    pub fn mix(self, o: Rgb, t: f32) -> Rgb {
        Rgb::new(
            self.r + (o.r - self.r) * t,
            self.g + (o.g - self.g) * t,
            self.b + (o.b - self.b) * t,
        )
        .clamped()
    }

    pub fn scale(self, k: f32) -> Rgb {
        Rgb::new(self.r * k, self.g * k, self.b * k).clamped()
    }

    pub fn luma(self) -> f32 {
        0.2126 * self.r + 0.7152 * self.g + 0.0722 * self.b
    }

    pub fn saturate(self, k: f32) -> Rgb {
        let y = self.luma();
        Rgb::new(
            y + (self.r - y) * k,
            y + (self.g - y) * k,
            y + (self.b - y) * k,
        )
        .clamped()
    }

    /// Darker and a little richer, as skin and cloth look in shadow.
    pub fn shadow(self, k: f32) -> Rgb {
        self.scale(k).saturate(1.0 + (1.0 - k) * 0.5)
    }

    /// Lighter towards a warm white, as a lit surface looks.
    pub fn light(self, t: f32) -> Rgb {
        self.mix(Rgb::new(1.0, 0.96, 0.9), t)
    }

    pub fn clamped(self) -> Rgb {
        Rgb::new(
            self.r.clamp(0.0, 1.0),
            self.g.clamp(0.0, 1.0),
            self.b.clamp(0.0, 1.0),
        )
    }

    pub fn color(self, alpha: f32) -> Color {
        let c = self.clamped();
        Color::from_rgba(c.r, c.g, c.b, alpha.clamp(0.0, 1.0)).unwrap_or(Color::TRANSPARENT)
    }
}

/// Skin from very light to very dark, as lit skin looks in a photograph.
const SKIN_SCALE: [u32; 10] = [
    0xf2d9c6, 0xeac5a8, 0xe0b18d, 0xd29e78, 0xbf8862, 0xa5704b, 0x8a593a, 0x6e452d, 0x553524,
    0x3e281d,
];

/// `t` runs from 0 (very light) to 1 (very dark).
pub fn skin_tone(t: f32) -> Rgb {
    let x = t.clamp(0.0, 1.0) * (SKIN_SCALE.len() - 1) as f32;
    let i = (x.floor() as usize).min(SKIN_SCALE.len() - 2);
    Rgb::hex(SKIN_SCALE[i]).mix(Rgb::hex(SKIN_SCALE[i + 1]), x - i as f32)
}

pub const HAIR_BLACK: u32 = 0x17120f;
pub const HAIR_DARK_BROWN: u32 = 0x2f2018;
pub const HAIR_BROWN: u32 = 0x4f3524;
pub const HAIR_LIGHT_BROWN: u32 = 0x7a5a3c;
pub const HAIR_BLOND: u32 = 0xb8955e;
pub const HAIR_LIGHT_BLOND: u32 = 0xd6bc87;
pub const HAIR_AUBURN: u32 = 0x70301c;
pub const HAIR_RED: u32 = 0xa44f27;
pub const HAIR_GREY: u32 = 0x9a9794;
pub const HAIR_WHITE: u32 = 0xdedbd6;

pub const EYE_DARK_BROWN: u32 = 0x2e1a0e;
pub const EYE_BROWN: u32 = 0x5a3518;
pub const EYE_HAZEL: u32 = 0x7a6230;
pub const EYE_GREEN: u32 = 0x557a48;
pub const EYE_BLUE: u32 = 0x4a78b0;
pub const EYE_GREY: u32 = 0x7d909e;

pub const LIPSTICKS: [u32; 5] = [0xa3203a, 0x7d2847, 0xb86868, 0xc45a4c, 0x8e3b3b];

pub const CLOTHING: [u32; 16] = [
    0x1f2a44, 0x161616, 0xe8e6e1, 0x6d6f73, 0x9b2335, 0xc99a2e, 0x1f6f6b, 0x5b6236, 0x5e1f2c,
    0x3c5a80, 0xd88c9a, 0xc8b89a, 0x2d6a3e, 0x7a4a8c, 0xd9622b, 0x3a3f4a,
];

/// Frame colours; those from `METAL_GLASSES` on are metal.
pub const GLASSES: [u32; 5] = [0x141414, 0x3b2416, 0x5a3a22, 0xa08048, 0x80858c];
pub const METAL_GLASSES: usize = 3;
