//! `faceprobe evidence build` and `faceprobe evidence verify`.

use faceprobe::config::Config;
use faceprobe::evidence::bundle::{self, Request};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The client (`c:…`) or cluster (`k:…`) key, as `faceprobe clients` lists it.
    #[arg(long = "client", value_name = "KEY", required_unless_present = "fleet")]
    pub client: Option<String>,
    /// Or an actor of the fleet (`a:…`, as `faceprobe clients --fleet` lists it): the bundle
    /// is built from the fleet store, one folder per instance that recorded it.
    #[arg(long, value_name = "ACTOR", conflicts_with_all = ["client", "found"])]
    pub fleet: Option<String>,
    /// The archive to write (a .zip; it must not exist yet).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Images found elsewhere (a face search engine's result, a reply to an access request)
    /// to match and attach.
    #[arg(long, value_name = "IMAGE", num_args = 1..)]
    pub found: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The bundle: the .zip, or the folder it unpacks to.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The key to trust: an OpenSSH public key line or a file holding one (e.g. fetched from
    /// the site's /.well-known/faceprobe-key.pub). Without it, the bundle's own key is used and
    /// its fingerprint printed for comparison.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
}

pub fn build(config: &Config, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let client = match (&args.client, &args.fleet) {
        (Some(c), _) => c.clone(),
        (None, Some(actor)) => return super::fleet::evidence(config, actor, &args.out, command),
        (None, None) => anyhow::bail!("give --client KEY (or --fleet ACTOR)"),
    };
    let built = bundle::build(
        config,
        &Request {
            key: &client,
            out: &args.out,
            found: &args.found,
            command,
            built_by: None,
        },
    )?;
    println!(
        "{}: bundle {} ({} bytes, SHA-256 {})\n  {} events of {} in the chain segment {}..{} ({} other visitors' events as digests only), {} canaries\n  case opened: its records are kept past retention. Check it with `faceprobe evidence verify {}`.",
        built.file.display(),
        built.bundle,
        built.bytes,
        built.sha256,
        built.events,
        client,
        built.chain_start_after + 1,
        built.chain_end,
        built.other_events_as_digests,
        built.canaries,
        built.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = match &args.key {
        Some(k) if std::path::Path::new(k).is_file() => Some(std::fs::read_to_string(k)?),
        Some(k) => Some(k.clone()),
        None => None,
    };
    let report = faceprobe::evidence::verify::verify(&args.file, key.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("bundle {}", report.bundle);
    for c in &report.checks {
        println!("{} {}", if c.ok { "ok  " } else { "FAIL" }, c.what);
    }
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    if failed == 0 && report.ok() {
        println!("all {} checks hold", report.checks.len());
        if args.key.is_none() {
            if let Some(f) = &report.fingerprint {
                println!(
                    "signed by {f}: compare it with the key the site publishes at /.well-known/faceprobe-key.pub (or pass it with --key)"
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} of {} checks FAILED", report.checks.len());
        Ok(ExitCode::FAILURE)
    }
}
