//! `faceprobe clients`: the clients and clusters the detector noticed, with level, score,
//! reasons and first/last seen; `clients dismiss KEY` puts a key on the allow-list.

use anyhow::Context;
use faceprobe::config::Config;
use faceprobe::detect::{stored, Client};
use faceprobe::store::{clients, now_ms, Store};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Only clients and clusters at watch, suspect or harvester (dismissed ones are left out).
    #[arg(long)]
    pub flagged: bool,
    /// One JSON object per line (each with the `key` other commands take).
    #[arg(long)]
    pub json: bool,
    /// The actors the fleet detector flagged across every instance and site shipping to the
    /// fleet store ([fleet] postgres), instead of this instance's clients.
    #[arg(long)]
    pub fleet: bool,
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// A person reviewed a flag and found it harmless: the key goes on the allow-list, its
    /// raw addresses are no longer held, and it is never flagged again.
    Dismiss {
        /// The key (`c:…` for a client, `k:…` for a cluster) as `faceprobe clients` shows it.
        key: String,
        /// Why (kept in the key's history).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// The history of one key: every level reached, merge and dismissal.
    History { key: String },
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    if args.fleet && args.action.is_none() {
        return super::fleet::clients(config, args.json);
    }
    let dir = &config.store.data_dir;
    let store =
        Store::open(dir).with_context(|| format!("opening the store in {}", dir.display()))?;
    let mut conn = store.into_conn();
    match args.action {
        Some(Action::Dismiss { key, note }) => {
            if !stored::dismiss(&mut conn, &key, &note, now_ms())? {
                anyhow::bail!(
                    "no client or cluster {key} in {}; `faceprobe clients` lists the keys",
                    dir.display()
                );
            }
            println!("{key} dismissed: on the allow-list, raw addresses no longer held");
            return Ok(ExitCode::SUCCESS);
        }
        Some(Action::History { key }) => {
            let rows = clients::history(&conn, &key)?;
            if rows.is_empty() {
                anyhow::bail!("no history for {key}; `faceprobe clients` lists the keys");
            }
            for (ts, level, score, note) in rows {
                println!(
                    "{}  {:<9}  {:>6.1}  {note}",
                    humantime::format_rfc3339_millis(ms_time(ts)),
                    level.unwrap_or_else(|| "-".into()),
                    score
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let list = stored::list(&conn, args.flagged)?;
    let list: Vec<Client> = list
        .into_iter()
        .filter(|c| !(args.flagged && c.dismissed))
        .collect();
    if args.json {
        for c in &list {
            println!("{}", c.summary());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!(
            "no {}clients noticed yet (data in {})",
            if args.flagged { "flagged " } else { "" },
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for c in &list {
        print_one(c);
    }
    Ok(ExitCode::SUCCESS)
}

fn ms_time(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

fn print_one(c: &Client) {
    let level = if c.dismissed {
        "dismissed".to_string()
    } else {
        c.level.map_or("-".to_string(), |l| l.as_str().to_string())
    };
    let who = if c.is_cluster() {
        format!("cluster of {} addresses", c.addresses.len())
    } else {
        format!(
            "{} {}",
            c.address.as_deref().unwrap_or("?"),
            c.agent.as_deref().unwrap_or("(no user agent)")
        )
    };
    println!("{}  {level}  score {:.0}  {who}", c.key, c.score);
    println!(
        "    seen {} .. {}; {} requests: {} pages, {} images, {} canaries, {} traps, {} robots.txt, {} robots violations{}",
        humantime::format_rfc3339_seconds(ms_time(c.first_ms)),
        humantime::format_rfc3339_seconds(ms_time(c.last_ms)),
        c.counts.requests,
        c.counts.pages,
        c.counts.images,
        c.counts.canaries,
        c.counts.traps,
        c.counts.robots,
        c.counts.robots_violations,
        c.crawler
            .label()
            .map_or(String::new(), |l| format!("; crawler: {l}")),
    );
    if let Some(k) = &c.cluster {
        println!("    in cluster {k}");
    }
    for r in &c.reasons {
        println!(
            "    {:>5.1}  {} x{}: {} (events {})",
            r.score,
            r.signal.name(),
            r.count,
            r.detail,
            r.events
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
