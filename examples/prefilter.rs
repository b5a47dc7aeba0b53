//! Calibration of the matcher's prefilter (matcher.rs PREFILTER_SIDE, PREFILTER_COARSE,
//! PREFILTER_LOW): the grey low-band correlation between a found image (after every damage of
//! the attribution benchmark, and random chains) and a small render of the true canary, of
//! another identity, and of another variant of the same identity. Printed for the matcher's
//! grey preview frame (the coarse stage of the search, then the whole search) and, to compare,
//! for a full frame of the same render.
//! cargo run --release --example prefilter -- [IDENTITIES] [SIDE]

use faceprobe::canary::align::Probe;
use faceprobe::canary::eval::Damage;
use faceprobe::canary::hash::Frame;
use faceprobe::canary::render::render_seeds;
use rand::SeedableRng;

fn pct(v: &mut [f32]) -> String {
    v.sort_by(f32::total_cmp);
    let at = |p: f32| v[((v.len() - 1) as f32 * p) as usize];
    format!(
        "min {:.3} p1 {:.3} p50 {:.3} p99 {:.3} max {:.3}",
        at(0.0),
        at(0.01),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn main() {
    let arg = |i: usize| std::env::args().nth(i).and_then(|a| a.parse().ok());
    let n: u64 = arg(1).unwrap_or(40);
    let side: u32 = arg(2).map(|v: u64| v as u32).unwrap_or(64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let damages = Damage::calibration_set(4, &mut rng);
    // [old low, preview coarse, preview low] for truth, other identity, sibling
    let mut v: Vec<Vec<f32>> = vec![Vec::new(); 9];
    for i in 0..n {
        let img = render_seeds(i, 1000 + i, 256);
        let seeds = [(i, 1000 + i), (i + 7777, 3000 + i), (i, 5000 + i)];
        for d in &damages {
            let p = Probe::new(&Frame::of_rgb(&d.apply(&img, &mut rng)));
            for (k, &(id, var)) in seeds.iter().enumerate() {
                let r = render_seeds(id, var, side);
                let old = Frame::of_rgb(&r);
                let mut ol = p.align(&old).low;
                if k == 0 {
                    ol = ol.max(p.whole(&old).low);
                }
                let pre = Frame::grey_preview(&r);
                v[k].push(ol);
                v[3 + k].push(p.coarse_search(&pre).0);
                v[6 + k].push(p.low(&pre));
            }
        }
    }
    println!(
        "{n} identities x {} damages, candidates rendered at {side} px",
        damages.len()
    );
    let names = [
        "true canary",
        "other identity",
        "same identity, other variant",
    ];
    for (m, what) in ["of_rgb align low", "preview coarse", "preview low"]
        .iter()
        .enumerate()
    {
        for (k, name) in names.iter().enumerate() {
            println!("{what:18} {name:30} {}", pct(&mut v[m * 3 + k]));
        }
    }
}
