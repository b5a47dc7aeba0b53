//! The configuration file: every option, its default, and a clear error for a bad value.
//!
//! With no file every default applies, so a first run needs no configuration. Unknown keys
//! are errors: a misspelt option silently ignored is a setting the operator thinks is on.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a configuration could not be used; each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (check the path given to --config)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Section { path: PathBuf, message: String },
    #[error("config file {path}: {key} = {value} is out of range: {fix}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        value: String,
        fix: &'static str,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub store: StoreConfig,
    pub serve: ServeConfig,
    pub record: RecordConfig,
    pub canary: CanaryConfig,
    #[serde(rename = "match")]
    pub matching: MatchConfig,
    pub log: LogConfig,
    pub detect: crate::detect::DetectConfig,
    pub alert: crate::detect::alert::AlertConfig,
    pub evidence: EvidenceConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory holding `faceprobe.db` and the deployment secret.
    pub data_dir: PathBuf,
}

/// The Linux scheduling policy of `faceprobe serve`'s threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduling {
    /// `SCHED_BATCH`: a thread that wakes does not preempt the one running; it waits for
    /// that one's time slice to end. Fewer context switches per request on a busy machine.
    Batch,
    /// The kernel's default policy (`SCHED_OTHER`).
    Normal,
}

/// How `faceprobe serve` runs beside the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Proxy when an upstream is set, demo otherwise.
    Auto,
    /// In front of the site: forwards everything, injects canaries into HTML.
    Proxy,
    /// Beside the site: serves only faceprobe's own paths, which the site's proxy routes to it.
    Embed,
    /// No upstream: a built-in gallery site stands in for one.
    Demo,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    pub mode: Mode,
    /// Public listener.
    pub listen: String,
    /// Admin listener (`/healthz`, `/metrics`); keep it private.
    pub admin_listen: String,
    /// The site to forward to in proxy mode, `http://host:port`; empty for none.
    pub upstream: String,
    /// Peers (CIDR) whose `Forwarded` / `X-Forwarded-For` headers are believed.
    pub trusted_proxies: Vec<String>,
    /// Threads that serve connections, each with its own event loop and upstream connection
    /// pool; 0 = one per core.
    pub workers: usize,
    /// Open client connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Largest request body forwarded upstream, in bytes.
    pub max_body_bytes: u64,
    /// Seconds a client has to send a complete request head (slowloris); also how long an
    /// idle keep-alive connection is kept.
    pub header_timeout_secs: u64,
    /// Seconds the upstream has to answer a request.
    pub upstream_timeout_secs: u64,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Scheduling policy of every thread of `faceprobe serve` (Linux; ignored elsewhere).
    pub scheduling: Scheduling,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    /// Events waiting for the writer at most; beyond it page and asset events are dropped
    /// (counted), canary and robots.txt events wait for room.
    pub queue_capacity: usize,
    /// Events committed in one transaction at most.
    pub batch_max: usize,
    /// Microseconds a batch stays open for more events before it is committed (group
    /// commit: one fsync for many events); a canary waits at most this long plus the commit.
    pub commit_linger_us: u64,
    /// Microseconds a batch holding only page, asset and other events (which no one waits
    /// for) stays open; evidence or a waiting canary shortens it to `commit_linger_us`.
    pub background_linger_us: u64,
    /// `full` (every commit holding evidence, an awaited record or a flush reaches the disk:
    /// survives power loss; commits of only page and asset events are made durable by the
    /// next such commit or checkpoint) or `normal` (survives a crash of faceprobe, not of the
    /// machine).
    pub synchronous: String,
    /// Hours a raw client address is kept before it is replaced by a keyed pseudonym
    /// (addresses of flagged clients and clients in a case are kept).
    pub raw_ip_hours: u64,
    /// Days events are kept (events in a case are kept).
    pub retention_days: u64,
    /// Seconds between runs of the privacy and retention job.
    pub purge_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryConfig {
    /// Width and height of a served canary, in pixels.
    pub size: u32,
    /// JPEG quality of a served canary (1-100).
    pub jpeg_quality: u8,
    /// Identities in the rotating pool before the oldest is handed out again.
    pub identity_pool_size: u64,
    /// Identities given to a client seen for the first time.
    pub identities_per_client: u32,
    /// Canaries rendered ahead of their first fetch per second at most (the rest render on
    /// first fetch).
    pub render_ahead_per_second: u32,
    /// Rendered canaries kept in memory.
    pub cache_entries: usize,
    /// Canaries on one trap gallery page.
    pub gallery_canaries: u32,
    /// Deeper gallery links on one trap gallery page.
    pub gallery_links: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    /// Matches below this confidence are not reported.
    pub confidence_threshold: f64,
    /// Candidates from the hash index that are re-rendered and compared finely.
    pub max_candidates: usize,
    /// Largest summed Hamming distance (pHash + dHash, of 128 bits) a candidate may have.
    pub max_hash_distance: u32,
    /// Try crop hypotheses when the whole-frame hashes find nothing.
    pub crop_search: bool,
    /// Largest image file `match` reads, in bytes.
    pub max_file_bytes: u64,
    /// Largest width or height `match` decodes, in pixels.
    pub max_dimension: u32,
    /// Largest memory the image decoder may allocate, in bytes.
    pub max_decode_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Default log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    pub level: String,
    /// One JSON object per log line instead of text.
    pub json: bool,
    /// Request log lines per client (address prefix) per minute; the rest are counted.
    pub per_client_per_minute: u32,
    /// Request log lines per second over all clients; the rest are counted.
    pub total_per_second: u32,
}

/// Evidence bundles and the signed checkpoints of the chain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// The site faceprobe protects, as the report names it (its URL, e.g.
    /// `https://photos.example.org`); the signing key is published under it.
    pub site: String,
    /// Who runs the site: the organisation or person filing a complaint.
    pub operator: String,
    /// How an authority reaches the operator (an e-mail address, a postal address).
    pub contact: String,
    /// Minutes between signed checkpoints of the chain head while serving (and one at
    /// shutdown).
    pub checkpoint_minutes: u64,
    /// An existing OpenSSH Ed25519 private key (unencrypted) to sign with, instead of the key
    /// faceprobe creates in the data directory at first run.
    pub signing_key: Option<PathBuf>,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            site: "http://127.0.0.1:8080".to_string(),
            operator: String::new(),
            contact: String::new(),
            checkpoint_minutes: 10,
            signing_key: None,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("./data"),
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            mode: Mode::Auto,
            listen: "127.0.0.1:8080".to_string(),
            admin_listen: "127.0.0.1:8089".to_string(),
            upstream: String::new(),
            trusted_proxies: vec!["127.0.0.1/32".to_string(), "::1/128".to_string()],
            workers: 0,
            max_connections: 4096,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            header_timeout_secs: 10,
            upstream_timeout_secs: 30,
            shutdown_grace_secs: 10,
            scheduling: Scheduling::Batch,
        }
    }
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            queue_capacity: 16_384,
            batch_max: 4096,
            commit_linger_us: 2000,
            background_linger_us: 2_000,
            synchronous: "full".to_string(),
            raw_ip_hours: 72,
            retention_days: 180,
            purge_interval_secs: 60,
        }
    }
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            size: 256,
            jpeg_quality: 90,
            identity_pool_size: 100_000,
            identities_per_client: 2,
            render_ahead_per_second: 5,
            cache_entries: 1024,
            gallery_canaries: 4,
            gallery_links: 3,
        }
    }
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            confidence_threshold: 0.5,
            max_candidates: 8,
            max_hash_distance: 31,
            crop_search: true,
            max_file_bytes: 64 * 1024 * 1024,
            max_dimension: 16_384,
            max_decode_bytes: 512 * 1024 * 1024,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            json: false,
            per_client_per_minute: 20,
            total_per_second: 50,
        }
    }
}

impl Config {
    /// Reads `path`, or returns the defaults when there is no path.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses the text of a config file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, value: String, fix| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            value,
            fix,
        };
        if let Some((key, value, fix)) = self.detect.problem() {
            return Err(invalid(key, value, fix));
        }
        self.alert
            .validate()
            .map_err(|message| ConfigError::Section {
                path: path.to_path_buf(),
                message,
            })?;
        let c = &self.canary;
        if !(64..=1024).contains(&c.size) {
            return Err(invalid("canary.size", c.size.to_string(), "use 64 to 1024"));
        }
        if !(1..=100).contains(&c.jpeg_quality) {
            return Err(invalid(
                "canary.jpeg_quality",
                c.jpeg_quality.to_string(),
                "use 1 to 100",
            ));
        }
        if c.identity_pool_size < u64::from(c.identities_per_client) || c.identity_pool_size == 0 {
            return Err(invalid(
                "canary.identity_pool_size",
                c.identity_pool_size.to_string(),
                "use at least canary.identities_per_client",
            ));
        }
        if c.identities_per_client == 0 {
            return Err(invalid(
                "canary.identities_per_client",
                "0".into(),
                "use 1 or more",
            ));
        }
        if c.cache_entries == 0 || c.gallery_canaries == 0 {
            return Err(invalid(
                "canary.cache_entries / gallery_canaries",
                "0".into(),
                "use 1 or more",
            ));
        }
        self.validate_serve(path)?;
        let m = &self.matching;
        if !(0.0..=1.0).contains(&m.confidence_threshold) {
            return Err(invalid(
                "match.confidence_threshold",
                m.confidence_threshold.to_string(),
                "use a number from 0 to 1",
            ));
        }
        if m.max_candidates == 0 {
            return Err(invalid("match.max_candidates", "0".into(), "use 1 or more"));
        }
        if m.max_hash_distance > 128 {
            return Err(invalid(
                "match.max_hash_distance",
                m.max_hash_distance.to_string(),
                "use 0 to 128",
            ));
        }
        if m.max_dimension == 0 || m.max_file_bytes == 0 || m.max_decode_bytes == 0 {
            return Err(invalid(
                "match.max_dimension / max_file_bytes / max_decode_bytes",
                "0".into(),
                "use a positive limit",
            ));
        }
        if !(1..=1440).contains(&self.evidence.checkpoint_minutes) {
            return Err(invalid(
                "evidence.checkpoint_minutes",
                self.evidence.checkpoint_minutes.to_string(),
                "use 1 to 1440 minutes",
            ));
        }
        if self.evidence.site.trim().is_empty() || self.evidence.site.contains(['\n', '\r']) {
            return Err(invalid(
                "evidence.site",
                format!("{:?}", self.evidence.site),
                "name the site as its URL on one line, e.g. \"https://photos.example.org\"",
            ));
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            return Err(invalid(
                "log.level",
                self.log.level.clone(),
                "use error, warn, info, debug or trace",
            ));
        }
        if self.log.per_client_per_minute == 0 || self.log.total_per_second == 0 {
            return Err(invalid(
                "log.per_client_per_minute / total_per_second",
                "0".into(),
                "use 1 or more",
            ));
        }
        Ok(())
    }

    fn validate_serve(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, value: String, fix| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            value,
            fix,
        };
        let s = &self.serve;
        for (key, value) in [
            ("serve.listen", &s.listen),
            ("serve.admin_listen", &s.admin_listen),
        ] {
            if value.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    key,
                    value.clone(),
                    "use an address and port such as 127.0.0.1:8080 or [::]:8080",
                ));
            }
        }
        if !s.upstream.is_empty() && crate::edge::proxy::Upstream::parse(&s.upstream).is_err() {
            return Err(invalid(
                "serve.upstream",
                s.upstream.clone(),
                "use http://host:port (the site faceprobe forwards to)",
            ));
        }
        if s.mode == Mode::Proxy && s.upstream.is_empty() {
            return Err(invalid(
                "serve.mode",
                "\"proxy\"".into(),
                "set serve.upstream (or --upstream URL), or use mode = \"demo\"",
            ));
        }
        for cidr in &s.trusted_proxies {
            if cidr.parse::<ipnet::IpNet>().is_err() && cidr.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(
                    "serve.trusted_proxies",
                    cidr.clone(),
                    "use addresses or CIDR blocks such as 10.0.0.0/8 or ::1/128",
                ));
            }
        }
        if s.max_connections == 0 || s.max_header_bytes < 1024 || s.header_timeout_secs == 0 {
            return Err(invalid(
                "serve.max_connections / max_header_bytes / header_timeout_secs",
                format!(
                    "{} / {} / {}",
                    s.max_connections, s.max_header_bytes, s.header_timeout_secs
                ),
                "use at least 1 connection, 1024 header bytes and 1 second",
            ));
        }
        let r = &self.record;
        if r.queue_capacity < 16 || r.batch_max == 0 {
            return Err(invalid(
                "record.queue_capacity / batch_max",
                format!("{} / {}", r.queue_capacity, r.batch_max),
                "use a queue of at least 16 and a batch of at least 1",
            ));
        }
        for (key, v) in [
            ("record.commit_linger_us", r.commit_linger_us),
            ("record.background_linger_us", r.background_linger_us),
        ] {
            if v > 1_000_000 {
                return Err(invalid(key, v.to_string(), "use 0 to 1000000 (a second)"));
            }
        }
        if !["full", "normal"].contains(&r.synchronous.as_str()) {
            return Err(invalid(
                "record.synchronous",
                r.synchronous.clone(),
                "use \"full\" or \"normal\"",
            ));
        }
        if r.raw_ip_hours == 0 || r.retention_days == 0 || r.purge_interval_secs == 0 {
            return Err(invalid(
                "record.raw_ip_hours / retention_days / purge_interval_secs",
                "0".into(),
                "use 1 or more",
            ));
        }
        Ok(())
    }

    /// The mode `serve` runs in once `auto` is resolved.
    pub fn effective_mode(&self) -> Mode {
        match self.serve.mode {
            Mode::Auto if self.serve.upstream.is_empty() => Mode::Demo,
            Mode::Auto => Mode::Proxy,
            m => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_file_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/faceprobe.toml");
        let config = Config::load(Some(&path)).expect("config/faceprobe.toml parses");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[canary]\nsise = 3\n", Path::new("x.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("x.toml") && text.contains("sise"), "{text}");
    }

    #[test]
    fn out_of_range_value_says_the_fix() {
        let err = Config::parse("[canary]\nsize = 5000\n", Path::new("x.toml")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("canary.size") && text.contains("64 to 1024"),
            "{text}"
        );
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let config = Config::parse("[canary]\nsize = 512\n", Path::new("x.toml")).unwrap();
        assert_eq!(config.canary.size, 512);
        assert_eq!(config.canary.jpeg_quality, 90);
        assert_eq!(config.store, StoreConfig::default());
    }
}
