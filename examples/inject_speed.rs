//! Cost of planting the canary in one HTML page through the streaming rewriter.
//! cargo run --release --example inject_speed -- PAGE.html [N]

use bytes::Bytes;
use faceprobe::edge::inject::{encoding_of, Coding, Injected};
use http_body_util::BodyExt;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("PAGE.html");
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let page = Bytes::from(std::fs::read(&path).expect("readable page"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let mut out = 0;
    for _ in 0..n {
        let body = faceprobe::edge::full(page.clone());
        let inj = Injected::new(
            body,
            Coding::Identity,
            encoding_of("text/html").unwrap(),
            "<div hidden></div>".into(),
        );
        out += rt.block_on(inj.collect()).unwrap().to_bytes().len();
    }
    let per = t0.elapsed().as_secs_f64() / n as f64;
    println!(
        "{} bytes/page: {:.1} us per page ({:.0} MB/s), {out}",
        page.len(),
        per * 1e6,
        page.len() as f64 / per / 1e6
    );
}
