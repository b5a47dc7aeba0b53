//! `faceprobe db check`: integrity of the database.

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
    if problems.is_empty() {
        println!("integrity: ok");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("integrity: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
