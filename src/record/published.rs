//! What faceprobe publishes on the site and what its records are judged by later: the rule it
//! adds to robots.txt, the robots.txt it serves when the site has none, and where the signing
//! key is published. The edge serves them, the detector judges robots.txt breaches by them
//! and evidence reports quote them; they live here, below all three.

/// The rule added to every robots.txt group.
pub const DISALLOW_FP: &str = "Disallow: /_fp/";

/// robots.txt when the site has none (embed mode, or the upstream answered 404).
pub const DEFAULT_ROBOTS: &str = "User-agent: *\nDisallow: /_fp/\n";

/// Where the signing key's public line is published on the site.
pub const KEY_PATH: &str = "/.well-known/faceprobe-key.pub";
