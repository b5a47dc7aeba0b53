//! `faceprobe canary render`: mint tokens and write their images exactly as served.

use anyhow::{bail, Context};
use faceprobe::canary::marks;
use faceprobe::canary::mint::{MintRequest, Minter};
use faceprobe::config::Config;
use faceprobe::store::{secret, Store};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// How many canaries to mint.
    #[arg(long, value_name = "N")]
    pub count: u32,
    /// Directory to write the JPEG files into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Reproducible run: identities S, S+1, … and variants drawn from S (tokens stay random).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Image side in pixels (default: canary.size from the config).
    #[arg(long, value_name = "PX")]
    pub size: Option<u32>,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let size = args.size.unwrap_or(config.canary.size);
    if !(64..=1024).contains(&size) {
        bail!("--size {size} is out of range: use 64 to 1024");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output directory {}", args.out.display()))?;
    let mut store = Store::open(&config.store.data_dir)?;
    let secret = secret::load_or_create(store.dir(), config.store.secret_file.as_deref())?;
    let minter = Minter::new(store.conn(), secret, config.canary.clone())?;
    let mut variants = args.seed.map(rand_chacha::ChaCha8Rng::seed_from_u64);
    let tx = store.conn_mut().transaction()?;
    for i in 0..u64::from(args.count) {
        let req = MintRequest {
            client_key: "cli",
            minted_by: "cli",
            minting_event: None,
            identity_seed: args.seed.map(|s| s.wrapping_add(i)),
            variant_seed: variants.as_mut().map(|r| r.random()),
            size,
        };
        let minted = minter.mint(&tx, &req)?;
        let jpeg = marks::encode_jpeg(&minted.image, &minted.token, config.canary.jpeg_quality)?;
        let file = args.out.join(format!("{}.jpg", minted.token));
        std::fs::write(&file, &jpeg).with_context(|| format!("cannot write {}", file.display()))?;
        let h = minted.hashes;
        let line = serde_json::json!({
            "token": minted.token,
            "identity": minted.identity_seed,
            "variant": minted.variant_seed,
            "file": file,
            "hashes": {
                "scheme": minter.scheme().name(),
                "phash": format!("{:016x}", h.phash),
                "dhash": format!("{:016x}", h.dhash),
                "center_phash": format!("{:016x}", h.center_phash),
            },
        });
        println!("{line}");
    }
    tx.commit().context("cannot commit the minted tokens")?;
    Ok(ExitCode::SUCCESS)
}
