//! The fleet: many instances (replicas of one site, many sites) on one PostgreSQL.
//!
//! Each instance keeps its SQLite store as its journal and ships what it committed to the
//! central store (`ship`), in order, at least once and idempotently, keyed by instance and
//! local id; serving never waits for PostgreSQL. Over the central store, the fleet detector
//! (`detect`) joins what no single instance sees; `clients --fleet` and the dashboard read its
//! flags (`read`). PostgreSQL never receives a raw client address: events carry the address's
//! commitment (the chain needs it) and keyed pseudonyms under the fleet's own key (`schema`).

pub mod detect;
pub mod read;
pub mod schema;
pub mod ship;

use crate::config::Config;

/// Environment variable that gives the PostgreSQL URL (it wins over `fleet.postgres`), so a
/// password need not sit in the config file.
pub const URL_ENV: &str = "FACEPROBE_FLEET_POSTGRES";

/// The PostgreSQL URL of the fleet store, if one is configured.
pub fn url(config: &Config) -> Option<String> {
    std::env::var(URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            config
                .fleet
                .enabled()
                .then(|| config.fleet.postgres.clone())
        })
}

/// The site this instance serves: `fleet.site`, else `evidence.site`.
pub fn site_name(config: &Config) -> String {
    match config.fleet.site.is_empty() {
        true => config.evidence.site.clone(),
        false => config.fleet.site.clone(),
    }
}

/// Why the fleet store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("PostgreSQL at {url}: {message}")]
    Postgres { url: String, message: String },
    #[error("the local store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the local store: {0}")]
    Sql(#[from] rusqlite::Error),
}

impl FleetError {
    pub fn pg(url: &str, e: impl std::error::Error) -> FleetError {
        // tokio-postgres says only "db error" itself: what the server said is its source.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let said = s.to_string();
            if !message.contains(&said) {
                message = format!("{message}: {said}");
            }
            source = s.source();
        }
        FleetError::said(url, message)
    }

    /// What went wrong with the fleet store at `url`, in faceprobe's words.
    pub fn said(url: &str, message: impl Into<String>) -> FleetError {
        FleetError::Postgres {
            url: crate::config::fleet::mask_password(url),
            message: message.into(),
        }
    }
}
