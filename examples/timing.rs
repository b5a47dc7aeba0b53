//! Median time to render and encode one served canary, on one core.
//! cargo run --release --example timing -- [SIZE] [N]

use faceprobe::canary::marks::encode_jpeg;
use faceprobe::canary::render::render_seeds;
use faceprobe::canary::Token;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let size: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let n: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let token = Token::random();
    let (mut render, mut encode, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let t0 = Instant::now();
        let img = render_seeds(i, i.wrapping_mul(7919) + 13, size);
        let t1 = Instant::now();
        let q: u8 = std::env::var("Q")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(90);
        let jpeg = encode_jpeg(&img, &token, q).map(|j| j.len()).unwrap_or(0);
        let t2 = Instant::now();
        std::hint::black_box(jpeg);
        render.push((t1 - t0).as_secs_f64() * 1e3);
        encode.push((t2 - t1).as_secs_f64() * 1e3);
        both.push((t2 - t0).as_secs_f64() * 1e3);
    }
    println!(
        "{size} px over {n} canaries: render {:.2} ms, encode {:.2} ms, render+encode {:.2} ms (medians)",
        median(render),
        median(encode),
        median(both)
    );
}
