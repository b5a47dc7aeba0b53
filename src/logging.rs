//! Operator logs through `tracing`: text or JSON, level from config, `RUST_LOG` overrides.
//!
//! Logs go to standard error so that commands whose output is data (`match --json`,
//! `canary render`) keep standard output clean.

use crate::config::LogConfig;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("faceprobe={}", config.level.as_str())));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
