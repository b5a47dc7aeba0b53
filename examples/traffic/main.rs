//! The detection harness of issue 4 from the command line: starts `faceprobe serve` (demo
//! mode) on free ports, drives it with people, a polite crawler and harvesters over loopback,
//! and prints precision, recall and how soon each harvester was flagged. Exits 0 when every
//! target is met, 1 when one is not, 2 when the run could not be scored (no detector yet, the
//! server did not start).
//!
//! cargo build --release --bin faceprobe --example traffic
//! cargo run --release --example traffic -- [--sessions N] [--think-ms MIN..MAX] [--bulk N]
//!     [--disguised N] [--rendering N] [--polite-secs S] [--binary PATH] [--keep DIR] [--json]

mod gen;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    about = "Drive a faceprobe serve (demo) with people, crawlers and harvesters; score its detector"
)]
struct Args {
    /// Person sessions (full run: 1000).
    #[arg(long)]
    sessions: Option<usize>,
    /// Person sessions browsing at once.
    #[arg(long)]
    people_at_once: Option<usize>,
    /// A person's think time between pages, in ms: MIN..MAX.
    #[arg(long, value_parser = think_range)]
    think_ms: Option<(u64, u64)>,
    /// Bulk harvesters (python-requests, Scrapy, img2dataset in turn).
    #[arg(long)]
    bulk: Option<usize>,
    /// Disguised harvesters, 50 addresses each.
    #[arg(long)]
    disguised: Option<usize>,
    /// Rendering harvesters, two addresses each.
    #[arg(long)]
    rendering: Option<usize>,
    /// Seconds the polite crawler crawls (0: none).
    #[arg(long)]
    polite_secs: Option<u64>,
    /// Requests of each harvester, whole actor.
    #[arg(long)]
    budget: Option<usize>,
    /// Requests per second of a whole disguised harvester.
    #[arg(long)]
    disguised_rate: Option<f64>,
    /// Pause of a rendering harvester between pages, in ms.
    #[arg(long)]
    render_pause_ms: Option<u64>,
    /// Use the CI sizes (40 sessions, think 300..1500 ms, polite 15 s, one of each harvester)
    /// as the starting point instead of the full run's.
    #[arg(long)]
    small: bool,
    /// Seed of the generator's random choices.
    #[arg(long)]
    seed: Option<u64>,
    /// The faceprobe binary (default: target/release/faceprobe beside this example).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Keep the server's config, data and log in DIR.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn think_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{s:?}: expected MIN..MAX in ms, e.g. 2000..8000"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|e| format!("{s:?}: {v:?}: {e}"))
    };
    Ok((parse(a)?, parse(b)?))
}

/// target/<profile>/faceprobe, next to target/<profile>/examples/traffic.
fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("faceprobe")))
        .unwrap_or_else(|| PathBuf::from("target/release/faceprobe"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let binary = args.binary.unwrap_or_else(default_binary);
    let mut cfg = if args.small {
        gen::Config::small(binary)
    } else {
        gen::Config::full(binary)
    };
    cfg.sessions = args.sessions.unwrap_or(cfg.sessions);
    cfg.people_at_once = args.people_at_once.unwrap_or(cfg.people_at_once);
    cfg.think_ms = args.think_ms.unwrap_or(cfg.think_ms);
    cfg.bulk = args.bulk.unwrap_or(cfg.bulk);
    cfg.disguised = args.disguised.unwrap_or(cfg.disguised);
    cfg.rendering = args.rendering.unwrap_or(cfg.rendering);
    cfg.polite_secs = args.polite_secs.unwrap_or(cfg.polite_secs);
    cfg.budget = args.budget.unwrap_or(cfg.budget);
    cfg.disguised_rate = args.disguised_rate.unwrap_or(cfg.disguised_rate);
    cfg.render_pause_ms = args.render_pause_ms.unwrap_or(cfg.render_pause_ms);
    cfg.seed = args.seed.unwrap_or(cfg.seed);
    cfg.keep = args.keep;
    let report = match gen::run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("traffic: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    for f in report.failures() {
        eprintln!("traffic: {f}");
    }
    if report.detection.is_err() {
        ExitCode::from(2)
    } else if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
