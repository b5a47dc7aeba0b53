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
pub mod engine;
pub mod runner;
pub mod seen;
pub mod signals;
pub mod stored;
pub mod verify;

pub use crate::config::detect::{DetectConfig, Level};
pub use client::Client;
pub use engine::Engine;
pub use runner::{start, DetectorHandle};
pub use seen::Seen;
