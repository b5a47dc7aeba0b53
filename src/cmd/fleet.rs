//! The fleet store from the command line: `clients --fleet` (actors the fleet detector
//! flagged) and `db check --fleet` (each instance's chain as shipped).

use anyhow::Context;
use faceprobe::config::Config;
use faceprobe::fleet;
use std::process::ExitCode;
use std::time::Duration;

/// Runs `f` with a connection to the fleet store named by the configuration.
fn with_client<T>(
    config: &Config,
    f: impl AsyncFnOnce(&tokio_postgres::Client, &str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let url = fleet::url(config).context(
        "no fleet store is configured: set postgres in the [fleet] section of the config file, \
         or FACEPROBE_FLEET_POSTGRES",
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let timeout = Duration::from_secs(config.fleet.timeout_secs);
        let pool = fleet::ship::pool(&url, timeout, 1)?;
        let client = pool
            .get()
            .await
            .map_err(|e| fleet::FleetError::pg(&url, e))?;
        f(&client, &url).await
    })
}

pub fn clients(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let flags = with_client(config, async |client, url| {
        Ok(fleet::read::flags(client, url).await?)
    })?;
    if json {
        for f in &flags {
            println!("{}", serde_json::to_string(f)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if flags.is_empty() {
        println!("no actor flagged by the fleet detector yet");
    }
    for f in &flags {
        println!(
            "{}  {}  score {:.0}  {} requests, {} canaries; instances {}; sites {}",
            f.actor,
            f.level,
            f.score,
            f.requests,
            f.canaries,
            f.instances.join(", "),
            f.sites.join(", ")
        );
        println!("    client keys {}", f.client_keys.join(", "));
        println!("    {}", f.reasons);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let checks = with_client(config, async |client, url| {
        Ok(fleet::read::check_chains(client, url).await?)
    })?;
    let mut broken = false;
    if checks.is_empty() {
        println!("no instance has shipped anything to the fleet store yet");
    }
    for c in &checks {
        let range = match (c.first_id, c.last_id) {
            (Some(a), Some(b)) => format!("events {a}..{b}"),
            _ => "no events".to_string(),
        };
        match &c.broken {
            None => println!(
                "instance {} (site {}): {} shipped events ({range}), hash chain intact; {} of {} signed checkpoints match",
                c.instance, c.site, c.events, c.checkpoints_matching, c.checkpoints
            ),
            Some(why) => {
                broken = true;
                println!(
                    "instance {} (site {}): hash chain BROKEN: {why}",
                    c.instance, c.site
                );
            }
        }
    }
    Ok(if broken {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
