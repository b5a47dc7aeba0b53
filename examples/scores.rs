//! Calibration aid for the confidence mapping in matcher.rs (SCORE_AT_ZERO / SCORE_AT_ONE):
//! distributions of alignment scores for true matches after each damage,
//! for other variants of the same identity, and for other identities.
//! cargo run --release --example scores -- [N]

use faceprobe::canary::align::Probe;
use faceprobe::canary::eval::Damage;
use faceprobe::canary::hash::Frame;
use faceprobe::canary::render::render_seeds;
use rand::SeedableRng;

fn pct(v: &mut [f32]) -> String {
    v.sort_by(f32::total_cmp);
    let at = |p: f32| v[((v.len() - 1) as f32 * p) as usize];
    format!(
        "min {:.3} p1 {:.3} p5 {:.3} p50 {:.3} max {:.3}",
        at(0.0),
        at(0.01),
        at(0.05),
        at(0.5),
        at(1.0)
    )
}

const VS: u32 = 256;
fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let damages = Damage::calibration_set(3, &mut rng);
    let mut worst_true: Vec<(String, Vec<f32>)> =
        damages.iter().map(|d| (d.name(), Vec::new())).collect();
    let (mut same_id, mut other_id) = (Vec::new(), Vec::new());
    let (mut lows, mut dets, mut sl, mut sd) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let img = render_seeds(i, 1000 + i, 256);
        let cand = Frame::of_rgb(&render_seeds(i, 1000 + i, VS));
        for (k, d) in damages.iter().enumerate() {
            let found = d.apply(&img, &mut rng);
            let p = Probe::new(&Frame::of_rgb(&found));
            let w = p.whole(&cand);
            let a = if w.score > 0.9 { w } else { p.align(&cand) };
            worst_true[k].1.push(a.score);
            if k == 15 {
                lows.push(a.low);
                dets.push(a.chroma);
            }
        }
        let p = Probe::new(&Frame::of_rgb(&img));
        let sa = p.align(&Frame::of_rgb(&render_seeds(i, 5000 + i, VS)));
        same_id.push(sa.score);
        sl.push(sa.low);
        sd.push(sa.chroma);
        other_id.push(
            p.align(&Frame::of_rgb(&render_seeds(i + 7777, 1000 + i, VS)))
                .score,
        );
    }
    for (name, v) in &mut worst_true {
        println!("true  {:40} {}", name, pct(v));
    }
    println!(
        "crop low {}\ncrop detail {}\nsame low {}\nsame detail {}",
        pct(&mut lows),
        pct(&mut dets),
        pct(&mut sl),
        pct(&mut sd)
    );
    println!(
        "same identity, other variant          {}",
        pct(&mut same_id)
    );
    println!(
        "other identity, same variant seed     {}",
        pct(&mut other_id)
    );
}
