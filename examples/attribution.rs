//! Attribution benchmark: mints tokens (cached in bench-data/), then measures top-1
//! attribution after each damage of the list and false matches on decoys.
//!
//! cargo run --release --example attribution -- [TOKENS] [IDENTITIES] [PROBES] [DECOYS_PER_KIND]
//! Defaults: 100000 tokens, 1000 identities, 1000 probes, 200 decoys of each of 5 kinds
//! (photo decoys are cut from the images in bench-data/photos, which scripts/bench fills).

use faceprobe::canary::eval::{load_photos, run_attribution, Plan};
use faceprobe::config::MatchConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: u64| -> u64 {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let plan = Plan {
        tokens: arg(1, 100_000) as usize,
        identities: arg(2, 1000),
        probes: arg(3, 1000) as usize,
        decoys_per_kind: arg(4, 200),
        size: 256,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        seed: 2026,
        photos: load_photos(std::path::Path::new("bench-data/photos")),
    };
    println!("photos for decoys: {}", plan.photos.len());
    let dir = std::path::PathBuf::from(format!(
        "bench-data/attribution-{}-{}",
        plan.tokens, plan.identities
    ));
    let report = run_attribution(&dir, &plan, &MatchConfig::default())?;
    println!(
        "tokens {} over {} identities; minting took {:.1} s, index load {:.3} s",
        report.tokens, report.identities, report.mint_seconds, report.load_seconds
    );
    println!("| damage | target | top-1 | median match ms |");
    println!("|---|---|---|---|");
    for r in &report.results {
        println!(
            "| {} | {} | {}/{} = {:.1} % | {:.1} |",
            r.damage,
            if r.hard { "≥ 95 %" } else { "≥ 99 %" },
            r.top1,
            r.tries,
            100.0 * r.top1 as f64 / r.tries.max(1) as f64,
            r.median_ms
        );
    }
    println!(
        "false matches: {} of {} decoys",
        report.false_matches, report.decoys
    );
    println!("misses: {}", report.misses.len());
    for m in &report.misses {
        println!("  {m}");
    }
    for e in &report.false_examples {
        println!("  {e}");
    }
    Ok(())
}
