//! `faceprobe db check`: integrity of the database and of the events' hash chain;
//! `faceprobe db backup`: a copy of the database taken while faceprobe serves.

use anyhow::Context;
use faceprobe::config::Config;
use faceprobe::store::signing::SigningKey;
use faceprobe::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// A copy of the database to check (a backup) instead of the data directory's.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Check the hash chain of every instance as shipped to the fleet store ([fleet] postgres)
    /// instead of the local database.
    #[arg(long, conflicts_with = "file")]
    pub fleet: bool,
}

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy (a new file).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn backup(config: &Config, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let dir = &config.store.data_dir;
    let store =
        Store::open(dir).with_context(|| format!("opening the store in {}", dir.display()))?;
    let started = std::time::Instant::now();
    let pages = store.backup(&args.file)?;
    let copy = Store::open_copy(&args.file)?;
    let bytes = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}: copy of {} as of one moment, {} events, {:.1} MB ({pages} pages) in {:.1} s",
        args.file.display(),
        dir.join("faceprobe.db").display(),
        count(&copy, "events")?,
        bytes as f64 / 1_048_576.0,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  keep {} and the signing key ({}) with it: they are not in the database. \
         Check the copy with `faceprobe db check --file {}`.",
        config
            .store
            .secret_file
            .clone()
            .unwrap_or_else(|| dir.join("secret.key"))
            .display(),
        config
            .evidence
            .signing_key
            .clone()
            .unwrap_or_else(|| dir.join("signing_key"))
            .display(),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn check(config: &Config, args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.fleet {
        return super::fleet::check(config);
    }
    let store = match &args.file {
        Some(file) => Store::open_copy(file)
            .with_context(|| format!("opening the copy {}", file.display()))?,
        None => Store::open(&config.store.data_dir)
            .with_context(|| format!("opening the store in {}", config.store.data_dir.display()))?,
    };
    let db_file = args
        .file
        .clone()
        .unwrap_or_else(|| store.dir().join("faceprobe.db"));
    let problems = store.integrity_problems()?;
    println!(
        "database {}: {} tokens, {} events",
        db_file.display(),
        count(&store, "tokens")?,
        count(&store, "events")?
    );
    let mut ok = true;
    if problems.is_empty() {
        println!("integrity: ok");
    } else {
        ok = false;
        for p in &problems {
            println!("integrity: {p}");
        }
    }
    match faceprobe::record::chain::verify(store.conn())? {
        Ok(v) => println!(
            "hash chain: ok ({} events verified{}{}{}{})",
            v.events,
            if v.anchors_used > 0 {
                format!(
                    ", resumed after {} retention gap(s) from their anchors",
                    v.anchors_used
                )
            } else {
                String::new()
            },
            if v.rule1_events > 0 {
                format!(
                    ", {} of them written before digest links (rule 1)",
                    v.rule1_events
                )
            } else {
                String::new()
            },
            if v.before_chain > 0 {
                format!(
                    "; {} earlier events were recorded before the chain began (schema 1) and are not covered",
                    v.before_chain
                )
            } else {
                String::new()
            },
            v.head
                .map(|h| format!("; head {}", hex::encode(h)))
                .unwrap_or_default()
        ),
        Err(b) => {
            ok = false;
            println!("hash chain: BROKEN at {b}");
        }
    }
    ok &= check_checkpoints(config, &store)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Rows in `table`.
fn count(store: &Store, table: &str) -> anyhow::Result<i64> {
    Ok(store
        .conn()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
}

/// The signed checkpoints against the key and the chain; `false` when one fails.
fn check_checkpoints(config: &Config, store: &Store) -> anyhow::Result<bool> {
    let stored = count(store, "checkpoints")?;
    // The key `serve` signs with (that of the data directory for a copy too); `db check`
    // never creates one.
    let data_dir = &config.store.data_dir;
    let key_file = config
        .evidence
        .signing_key
        .clone()
        .unwrap_or_else(|| data_dir.join("signing_key"));
    if stored == 0 {
        println!(
            "checkpoints: none signed yet (`serve` signs one every evidence.checkpoint_minutes)"
        );
        return Ok(true);
    }
    if !key_file.exists() {
        println!(
            "checkpoints: {stored} stored, not checked: no signing key at {}",
            key_file.display()
        );
        return Ok(true);
    }
    let key = SigningKey::load_or_create(data_dir, config.evidence.signing_key.as_deref())?;
    match faceprobe::record::checkpoint::audit(store.conn(), &key)? {
        Ok(a) => {
            let mut notes = Vec::new();
            if a.other_key > 0 {
                notes.push(format!(
                    "{} signed by an earlier key (signature not checked)",
                    a.other_key
                ));
            }
            if a.event_gone > 0 {
                notes.push(format!(
                    "{} naming events retention deleted (chain value not compared)",
                    a.event_gone
                ));
            }
            println!(
                "checkpoints: ok ({stored} signed, {} verified against key {} and the chain{})",
                a.verified,
                key.fingerprint(),
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("; {}", notes.join(", "))
                }
            );
            Ok(true)
        }
        Err(why) => {
            println!("checkpoints: BROKEN: {why}");
            Ok(false)
        }
    }
}
