//! `faceprobe db check`: integrity of the database and of the events' hash chain.

use anyhow::Context;
use faceprobe::config::Config;
use faceprobe::store::signing::SigningKey;
use faceprobe::store::Store;
use std::process::ExitCode;

pub fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open(&config.store.data_dir)
        .with_context(|| format!("opening the store in {}", config.store.data_dir.display()))?;
    let problems = store.integrity_problems()?;
    println!(
        "database {}: {} tokens, {} events",
        store.dir().join("faceprobe.db").display(),
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
            "hash chain: ok ({} events verified{}{}{})",
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
    // The key `serve` signs with; `db check` never creates one.
    let key_file = config
        .evidence
        .signing_key
        .clone()
        .unwrap_or_else(|| store.dir().join("signing_key"));
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
    let key = SigningKey::load_or_create(store.dir(), config.evidence.signing_key.as_deref())?;
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
