//! Scale benchmark: index load time, index memory and `match` latency against N stored
//! tokens (default 1,000,000).
//!
//! cargo run --release --example scale -- [TOKENS] [PROBES]
//!
//! The store is built once and kept in bench-data/scale-N/. So that building a million tokens
//! takes minutes rather than an hour, all but the last 10,000 tokens are hashed from a 64 px
//! render of their variant (the same picture, so the same kind of hash, a few bits off the
//! 256 px one); the last 10,000 are hashed exactly as `serve` and `canary render` do, and the
//! probes are drawn from them.

use faceprobe::canary::eval::{insert_bench_tokens, load_photos, Damage, Decoy, Transform};
use faceprobe::canary::hash::{Frame, Scheme};
use faceprobe::canary::matcher::Matcher;
use faceprobe::canary::render::render_seeds;
use faceprobe::config::MatchConfig;
use faceprobe::store::{tokens, Store};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const EXACT: usize = 10_000;
const IDENTITIES: u64 = 10_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn pcts(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| {
        v.get(((v.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    format!(
        "median {:.1} ms, p95 {:.1} ms, max {:.1} ms (n={})",
        at(0.5),
        at(0.95),
        at(1.0),
        v.len()
    )
}

fn build(store: &mut Store, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let scheme = Scheme::new();
    let scheme_id = tokens::scheme_id(store.conn(), scheme.name(), scheme.params())?;
    let have = tokens::counts(
        store.conn(),
        scheme_id,
        faceprobe::canary::render::RENDERER_VERSION,
    )?
    .0 as usize;
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(2);
    let started = Instant::now();
    let mut next = have;
    while next < n {
        let end = (next + 50_000).min(n);
        let part: Vec<usize> = (next..end).collect();
        let per = part.len().div_ceil(threads);
        let rows: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = part
                .chunks(per)
                .map(|c| {
                    s.spawn(move || {
                        let scheme = Scheme::new();
                        c.iter()
                            .map(|&i| {
                                let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
                                let id = rng.random_range(0..IDENTITIES) * 0x9E37_79B9_7F4A_7C15;
                                let var: u64 = rng.random();
                                let side = if i >= n - EXACT { 256 } else { 64 };
                                let h = scheme.hashes(&Frame::of_rgb(&render_seeds(id, var, side)));
                                (id, var, h)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        insert_bench_tokens(store, scheme_id, 256, rows)?;
        next = end;
        eprintln!(
            "built {next}/{n} tokens ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let probes: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = std::path::PathBuf::from(format!("bench-data/scale-{n}"));
    let mut store = Store::open(&dir)?;
    build(&mut store, n.max(EXACT))?;

    let before = rss_kib();
    let t0 = Instant::now();
    let matcher = Matcher::load(store.conn(), MatchConfig::default())?;
    let load = t0.elapsed().as_secs_f64();
    let after = rss_kib();
    println!("tokens in index: {}", matcher.len());
    println!("index load: {load:.3} s");
    println!(
        "index memory: {:.1} MB held (resident set grew by {:.1} MB)",
        matcher.heap_bytes() as f64 / 1e6,
        (after.saturating_sub(before)) as f64 * 1024.0 / 1e6
    );

    let photos = load_photos(std::path::Path::new("bench-data/photos"));
    let total = matcher.len() as i64;
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let (mut whole, mut cropped, mut none) = (Vec::new(), Vec::new(), Vec::new());
    let (mut right, mut right_crop) = (0, 0);
    for p in 0..probes {
        let id = total - rng.random_range(0..EXACT as i64);
        let Some(row) = tokens::by_id(store.conn(), id)? else {
            continue;
        };
        let img = render_seeds(row.identity_seed, row.variant_seed, 256);
        let crop = p % 4 == 3;
        let damage = if crop {
            Damage(vec![Transform::Crop(0.1), Transform::Jpeg(75)])
        } else {
            Damage(vec![Transform::EASY[p % Transform::EASY.len()]])
        };
        let found = damage.apply(&img, &mut rng);
        if std::env::var("EXPLAIN").is_ok() {
            let (full, crop) = matcher.nominees(&found);
            let rank = |v: &[(i64, u32)]| v.iter().position(|x| x.0 == id).map(|r| (r, v[r].1));
            let dr = Decoy::ALL[p % Decoy::ALL.len()]
                .make(p as u64, row.identity_seed, 256, &[])
                .unwrap_or_default();
            let (df, dc) = matcher.nominees(&dr);
            println!(
                "{:50} true full {:?} crop {:?} | nominees full {} (first {:?}) crop {} (first {:?}) | decoy full {:?} crop {:?}",
                damage.name(), rank(&full), rank(&crop), full.len(), full.first().map(|x| x.1), crop.len(), crop.first().map(|x| x.1),
                df.first().map(|x| x.1), dc.first().map(|x| x.1)
            );
        }
        let t = Instant::now();
        let m = matcher.match_pixels(store.conn(), &found)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let ok = m.first().is_some_and(|m| m.token == row.token);
        if crop {
            cropped.push(ms);
            right_crop += usize::from(ok);
        } else {
            whole.push(ms);
            right += usize::from(ok);
        }
        let Some(decoy) =
            Decoy::ALL[p % Decoy::ALL.len()].make(p as u64, row.identity_seed, 256, &photos)
        else {
            continue;
        };
        let t = Instant::now();
        let m = matcher.match_pixels(store.conn(), &decoy)?;
        none.push(t.elapsed().as_secs_f64() * 1e3);
        if !m.is_empty() {
            println!("false match of decoy {p}: {}", m[0].token);
        }
    }
    println!(
        "top-1 right: {right}/{} whole-image damages, {right_crop}/{} crops",
        whole.len(),
        cropped.len()
    );
    println!("match, canary after an easy damage: {}", pcts(whole));
    println!(
        "match, canary cropped ≤10%/side + JPEG 75: {}",
        pcts(cropped)
    );
    println!("match, image that is no canary: {}", pcts(none));
    Ok(())
}
