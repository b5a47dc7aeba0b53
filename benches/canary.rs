//! Speed of the canary hot spots: render + JPEG encode of one 256 px variant (the issue's
//! ≤ 3 ms target), render alone, hashing, and the fine alignment of one candidate.
//! cargo bench --bench canary

use criterion::{criterion_group, criterion_main, Criterion};
use faceprobe::canary::align::Probe;
use faceprobe::canary::hash::{Frame, Scheme};
use faceprobe::canary::marks::encode_jpeg;
use faceprobe::canary::render::render_seeds;
use faceprobe::canary::Token;
use std::hint::black_box;

fn canary(c: &mut Criterion) {
    let token = Token::random();
    let mut seed = 0u64;
    c.bench_function("render+encode 256px (served canary)", |b| {
        b.iter(|| {
            seed += 1;
            let img = render_seeds(seed, seed ^ 0xabc, 256);
            black_box(encode_jpeg(&img, &token, 90).map(|j| j.len()).unwrap_or(0))
        })
    });
    c.bench_function("render 256px", |b| {
        b.iter(|| {
            seed += 1;
            black_box(render_seeds(seed, seed ^ 0xabc, 256))
        })
    });
    c.bench_function("render 512px", |b| {
        b.iter(|| {
            seed += 1;
            black_box(render_seeds(seed, seed ^ 0xabc, 512))
        })
    });
    let img = render_seeds(1, 2, 256);
    c.bench_function("encode 256px jpeg q90 with XMP", |b| {
        b.iter(|| black_box(encode_jpeg(&img, &token, 90).map(|j| j.len()).unwrap_or(0)))
    });
    let scheme = Scheme::new();
    c.bench_function("hashes of one 256px canary", |b| {
        b.iter(|| black_box(scheme.hashes(&Frame::of_rgb(&img))))
    });
    let probe = Probe::new(&Frame::of_rgb(&img));
    let other = Frame::of_rgb(&render_seeds(1, 3, 256));
    c.bench_function("align one candidate (crop search)", |b| {
        b.iter(|| black_box(probe.align(&other)))
    });
    c.bench_function("compare one candidate (whole frame)", |b| {
        b.iter(|| black_box(probe.whole(&other)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = canary
}
criterion_main!(benches);
