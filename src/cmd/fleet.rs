//! The fleet store from the command line: `clients --fleet` (actors the fleet detector
//! flagged), `db check --fleet` (each instance's chain as shipped) and `match --fleet` (images
//! traced to any canary of the fleet and the fetches that took it, on whatever instance).

use anyhow::Context;
use faceprobe::canary::matcher::{load_image, Matcher};
use faceprobe::config::Config;
use faceprobe::fleet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

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

/// A scratch folder removed when dropped, success or failure.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn matching(config: &Config, images: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    // The fleet's fetched canaries go into a scratch store, which the matcher indexes as it
    // does one instance's; the fetches are read from the fleet store.
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "faceprobe-fleet-match-{}-{}",
        std::process::id(),
        faceprobe::store::now_ms()
    )));
    std::fs::create_dir_all(&scratch.0)
        .with_context(|| format!("making the scratch folder {}", scratch.0.display()))?;
    let store = faceprobe::store::Store::open(&scratch.0)?;
    let mut conn = store.into_conn();
    let matching = config.matching.clone();
    let results = with_client(config, async |client, url| {
        let copied = fleet::read::copy_fetched_tokens(client, url, &mut conn).await?;
        tracing::info!(tokens = copied, "fleet canaries indexed");
        let matcher = Matcher::load(&conn, matching.clone())?;
        let mut results = Vec::new();
        for path in images {
            let (bytes, img) = match load_image(path, &matching) {
                Ok(x) => x,
                Err(e) => {
                    results.push((path.clone(), Err(e.to_string())));
                    continue;
                }
            };
            let mut found = Vec::new();
            for m in matcher.match_image(&conn, &bytes, &img)? {
                let fetches = fleet::read::fetches(client, url, m.token.as_bytes()).await?;
                found.push((m, fetches));
            }
            results.push((path.clone(), Ok(found)));
        }
        Ok(results)
    })?;
    let mut failed = false;
    for (path, result) in results {
        let found = match result {
            Ok(f) => f,
            Err(e) => {
                eprintln!("faceprobe: match: {e}");
                failed = true;
                continue;
            }
        };
        if json {
            println!("{}", super::matching::json_line(&path, &found));
            continue;
        }
        if found.is_empty() {
            println!("{}: no match in the fleet", path.display());
            continue;
        }
        println!("{}:", path.display());
        for (m, fetches) in &found {
            println!(
                "  {}  confidence {:.3} ({:?})  fetches {}",
                m.token,
                m.confidence,
                m.how,
                fetches.len()
            );
            for f in fetches {
                let when = UNIX_EPOCH + Duration::from_millis(f.ts_ms.max(0) as u64);
                println!(
                    "    {}  {} on {} (site {}), event {}  {}  {} {} {}  {}",
                    humantime::format_rfc3339_millis(when),
                    f.actor.as_deref().unwrap_or(&f.client_key),
                    f.instance,
                    f.site,
                    f.event_id,
                    f.status,
                    f.method,
                    f.path,
                    f.kind,
                    f.user_agent.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
