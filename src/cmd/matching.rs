//! `faceprobe match`: trace images to tokens and the fetches that took them.

use faceprobe::canary::matcher::{load_image, Matcher};
use faceprobe::config::Config;
use faceprobe::store::{tokens, Store};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

#[derive(clap::Args)]
pub struct Args {
    /// Image files to trace.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// One JSON object per image on standard output.
    #[arg(long)]
    pub json: bool,
    /// Match against every canary of the fleet store ([fleet] postgres), each fetch named with
    /// the instance and site that recorded it, instead of this instance's store.
    #[arg(long)]
    pub fleet: bool,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    if args.fleet {
        return super::fleet::matching(config, &args.images, args.json);
    }
    let store = Store::open(&config.store.data_dir)?;
    let started = std::time::Instant::now();
    let matcher = Matcher::load(store.conn(), config.matching.clone())?;
    tracing::info!(
        tokens = matcher.len(),
        ms = started.elapsed().as_millis() as u64,
        "index loaded"
    );
    let mut failed = false;
    for path in &args.images {
        let (bytes, img) = match load_image(path, &config.matching) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("faceprobe: match: {e}");
                failed = true;
                continue;
            }
        };
        let matches = matcher.match_image(store.conn(), &bytes, &img)?;
        let mut out = Vec::new();
        for m in &matches {
            out.push((m, tokens::fetches(store.conn(), &m.token)?));
        }
        if args.json {
            println!("{}", json_line(path, &out));
        } else if out.is_empty() {
            println!("{}: no match", path.display());
        } else {
            println!("{}:", path.display());
            for (m, fetches) in &out {
                println!(
                    "  {}  confidence {:.3} ({:?})  identity {}  variant {}  fetches {}",
                    m.token,
                    m.confidence,
                    m.how,
                    m.identity,
                    m.variant,
                    fetches.len()
                );
                for f in fetches {
                    let when = UNIX_EPOCH + Duration::from_millis(f.ts_ms.max(0) as u64);
                    println!(
                        "    {}  {}  {} {}  {}",
                        humantime::format_rfc3339_millis(when),
                        f.client_ip
                            .as_deref()
                            .or(f.ip_pseudonym.as_deref())
                            .unwrap_or(&f.client_key),
                        f.method,
                        f.path,
                        f.user_agent.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The JSON line of one image: its matches, each with the fetches that took its canary.
pub fn json_line<F: serde::Serialize>(
    path: &std::path::Path,
    found: &[(impl serde::Serialize, Vec<F>)],
) -> serde_json::Value {
    let list: Vec<_> = found
        .iter()
        .map(|(m, fetches)| {
            let mut v = serde_json::to_value(m).unwrap_or_default();
            v["fetches"] = serde_json::to_value(fetches).unwrap_or_default();
            v
        })
        .collect();
    serde_json::json!({ "image": path, "matches": list })
}
