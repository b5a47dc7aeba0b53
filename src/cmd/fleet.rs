//! The fleet store from the command line: `clients --fleet` (actors the fleet detector
//! flagged), `db check --fleet` (each instance's chain as shipped) and `match --fleet` (images
//! traced to any canary of the fleet and the fetches that took it, on whatever instance) and
//! `evidence build --fleet` (one actor's records from every instance, as one bundle).

use anyhow::Context;
use faceprobe::canary::matcher::{load_image, Matcher};
use faceprobe::config::Config;
use faceprobe::evidence::bundle;
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

/// A scratch folder under the temporary directory, removed when dropped, success or failure.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "faceprobe-fleet-{what}-{}-{}",
            std::process::id(),
            faceprobe::store::now_ms()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("making the scratch folder {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `evidence build --fleet ACTOR`: each instance's records of the actor are copied from the
/// fleet store into a scratch store of its own, and the bundle is built from those.
pub fn evidence(
    config: &Config,
    actor: &str,
    out: &std::path::Path,
    command: String,
) -> anyhow::Result<ExitCode> {
    if out.exists() {
        anyhow::bail!("{} exists; remove it or give another --out", out.display());
    }
    let scratch = Scratch::new("evidence")?;
    let (flag, parts) = with_client(config, async |client, url| {
        let flag = fleet::read::flags(client, url)
            .await?
            .into_iter()
            .find(|f| f.actor == actor);
        let history = fleet::read::flag_history(client, url, actor).await?;
        let mut parts = Vec::new();
        for inst in fleet::read::actor_instances(client, url, actor).await? {
            let Some(public) = inst.public_key.as_deref() else {
                anyhow::bail!(
                    "instance {} has not shipped its public key yet (it ships it with its \
                     first events): its checkpoints cannot be checked",
                    inst.instance
                );
            };
            let key = faceprobe::store::signing::Public::parse(public)
                .map_err(|e| anyhow::anyhow!("instance {}: {e}", inst.instance))?;
            let dir = scratch.0.join(parts.len().to_string());
            std::fs::create_dir_all(&dir)?;
            let mut conn = faceprobe::store::Store::open(&dir)?.into_conn();
            let history = fleet::read::copy_instance(client, url, actor, &inst, &mut conn).await?;
            parts.push(bundle::FleetPart {
                instance: inst.instance.clone(),
                site: inst.site.clone(),
                key,
                conn,
                actor_keys: inst.client_keys.iter().cloned().collect(),
                history,
            });
        }
        let mut flag_json = match &flag {
            Some(f) => serde_json::to_value(f)?,
            None => serde_json::json!({"actor": actor, "level": null}),
        };
        flag_json["history"] = serde_json::to_value(&history)?;
        Ok(((flag, flag_json), parts))
    })?;
    let (flag, flag_json) = flag;
    if parts.is_empty() {
        anyhow::bail!(
            "the fleet store holds no event of {actor}; `faceprobe clients --fleet` lists the \
             actors it flagged"
        );
    }
    let built = bundle::build_fleet(
        config,
        bundle::FleetRequest {
            actor,
            level: flag.as_ref().map(|f| f.level.clone()),
            score: flag.as_ref().map(|f| f.score).unwrap_or_default(),
            flag: flag_json,
            parts,
            out,
            command,
            built_by: None,
        },
    )?;
    println!(
        "{}: fleet bundle {} ({} bytes, SHA-256 {})\n  {} events of {actor} on {} instances ({} other visitors' events as digests only), {} canaries",
        built.file.display(),
        built.bundle,
        built.bytes,
        built.sha256,
        built.events,
        built.instances.len(),
        built.other_events_as_digests,
        built.canaries,
    );
    for i in &built.instances {
        println!(
            "  {}: {} events, chain segment {}..{} ({})",
            i.instance,
            i.events,
            i.chain_start_after + 1,
            i.chain_end,
            i.folder
        );
    }
    println!(
        "  Check it with `faceprobe evidence verify {}`.",
        built.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn matching(config: &Config, images: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    // The fleet's fetched canaries go into a scratch store, which the matcher indexes as it
    // does one instance's; the fetches are read from the fleet store.
    let scratch = Scratch::new("match")?;
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
