//! `faceprobe db check`: integrity of the database and of the events' hash chain.

use anyhow::Context;
use faceprobe::config::Config;
use faceprobe::store::Store;
use std::process::ExitCode;

pub fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open(&config.store.data_dir)
        .with_context(|| format!("opening the store in {}", config.store.data_dir.display()))?;
    let problems = store.integrity_problems()?;
    let count = |table: &str| -> anyhow::Result<i64> {
        Ok(store
            .conn()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    println!(
        "database {}: {} tokens, {} events",
        store.dir().join("faceprobe.db").display(),
        count("tokens")?,
        count("events")?
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
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
