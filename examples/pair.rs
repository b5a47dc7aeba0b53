//! Debug aid: writes the decoy and a token's image side by side.
use faceprobe::canary::render::render_seeds;
fn main() {
    let a: Vec<u64> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (id, v1, v2) = (a[0], a[1], a[2]);
    let x = render_seeds(id, v1, 256);
    let y = render_seeds(id, v2, 256);
    let mut out = image::RgbImage::new(512, 256);
    image::imageops::replace(&mut out, &x, 0, 0);
    image::imageops::replace(&mut out, &y, 256, 0);
    out.save("/tmp/pair.png").unwrap();
}
