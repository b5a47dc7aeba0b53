//! Detection: reads committed events, keeps per-client state in sliding windows, runs the
//! signals, joins addresses into clusters, and raises flags with their reasons and event ids.
//!
//! The detector sits downstream of the recorder: it reads events only after they are
//! committed (so every reason names real event ids), on its own thread and its own SQLite
//! connection, and writes only its own tables (`clients`, `flag_history`, `holds`, its
//! checkpoint). It never calls back into the edge and never holds up a request.

pub mod alert;
pub mod client;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod runner;
pub mod seen;
pub mod signals;
pub mod verify;

pub use client::Client;
pub use config::DetectConfig;
pub use engine::Engine;
pub use runner::{start, DetectorHandle};
pub use seen::Seen;

use serde::{Deserialize, Serialize};

/// How sure the detector is that a client harvests: a person reviews every level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Unusual, worth a look; ordinary visitors can get here.
    Watch,
    /// Behaves like a harvester; raw addresses are kept from here on (by default).
    Suspect,
    /// Harvests: took canaries, walked traps, broke robots.txt, or all of it at scale.
    Harvester,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Watch => "watch",
            Level::Suspect => "suspect",
            Level::Harvester => "harvester",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "watch" => Some(Level::Watch),
            "suspect" => Some(Level::Suspect),
            "harvester" => Some(Level::Harvester),
            _ => None,
        }
    }
}
