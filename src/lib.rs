//! faceprobe: catch face-harvesting crawlers with synthetic canary faces and keep evidence
//! a data-protection authority can verify.
//!
//! Data flows one way: edge → record → detect → store → review/evidence. The canary module
//! (faces, variants, markings, hashes, matching) is used by the edge to serve and by `match`
//! to trace a found image back to the token that served it.

pub mod canary;
pub mod config;
pub mod detect;
pub mod edge;
pub mod evidence;
pub mod fleet;
pub mod logging;
pub mod metrics;
pub mod record;
pub mod review;
pub mod store;
