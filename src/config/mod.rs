//! The configuration file: every option, its type, its default, and every mistake in a file
//! reported at once.
//!
//! With no file every default applies, so a first run needs no configuration. Each value is
//! parsed into its type when the file is read (addresses, the upstream URL, proxy blocks,
//! levels, webhooks, paths), so the rest of faceprobe never parses configuration text. Unknown
//! keys are errors: a misspelt option silently ignored is a setting the operator thinks is on.
//! This module imports nothing else of the crate.

pub mod alert;
pub mod detect;
pub mod fleet;
mod read;
pub mod serve;

pub use alert::{AlertConfig, WebhookUrl};
pub use detect::{DetectConfig, Level};
pub use fleet::FleetConfig;
pub use serve::{Mode, Scheduling, ServeConfig, UpstreamUrl};

use read::{keyword, section, Reader, Section, Writer};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration could not be used; each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (check the path given to --config)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path} has {}:{}", count(.problems.len()), Lines(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn count(n: usize) -> String {
    match n {
        1 => "1 problem".to_string(),
        n => format!("{n} problems"),
    }
}

/// Each problem on its own line.
struct Lines<'a>(&'a [Problem]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// One bad value: its key, the value as written, what is wrong with it and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: String,
    pub value: String,
    pub what: String,
    pub fix: String,
}

impl Problem {
    fn new(
        key: &str,
        value: &toml::Value,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Problem::text(key, value, what, fix)
    }

    fn text(
        key: &str,
        value: impl fmt::Display,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Problem {
            key: key.to_string(),
            value: value.to_string(),
            what: what.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}: {}; {}",
            self.key, self.value, self.what, self.fix
        )
    }
}

/// Records a problem with `key` unless `ok`.
fn require(p: &mut Vec<Problem>, ok: bool, key: &str, value: impl fmt::Display, fix: &str) {
    if !ok {
        p.push(Problem::text(key, value, "out of range", fix));
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub store: StoreConfig,
    pub serve: ServeConfig,
    pub record: RecordConfig,
    pub canary: CanaryConfig,
    /// The `[match]` section.
    pub matching: MatchConfig,
    pub log: LogConfig,
    pub detect: DetectConfig,
    pub alert: AlertConfig,
    pub evidence: EvidenceConfig,
    pub review: ReviewConfig,
    pub fleet: FleetConfig,
}

section!(Config {} tables {
    store => "store",
    serve => "serve",
    record => "record",
    canary => "canary",
    matching => "match",
    log => "log",
    detect => "detect",
    alert => "alert",
    evidence => "evidence",
    review => "review",
    fleet => "fleet",
});

#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Directory holding `faceprobe.db` and the deployment secret.
    pub data_dir: PathBuf,
    /// The deployment secret from a file (32 bytes, or 64 hex digits) instead of
    /// `data_dir/secret.key`: replicas of one site share it (a Kubernetes Secret, say).
    pub secret_file: Option<PathBuf>,
}

section!(StoreConfig {
    data_dir,
    secret_file,
});

/// How commits reach the disk (SQLite's `synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit holding evidence, an awaited record or a flush reaches the disk.
    Full,
    /// No commit waits for the disk: survives a crash of faceprobe, not of the machine.
    Normal,
}

keyword!(Synchronous { Full => "full", Normal => "normal" });

impl Synchronous {
    /// The value of SQLite's `PRAGMA synchronous`.
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}
#[derive(Debug, Clone, PartialEq)]
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
    pub synchronous: Synchronous,
    /// Hours a raw client address is kept before it is replaced by a keyed pseudonym
    /// (addresses of flagged clients and clients in a case are kept).
    pub raw_ip_hours: u64,
    /// Days events are kept (events in a case are kept).
    pub retention_days: u64,
    /// Seconds between runs of the privacy and retention job.
    pub purge_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Default log level; RUST_LOG overrides it.
    pub level: LogLevel,
    /// One JSON object per log line instead of text.
    pub json: bool,
    /// Request log lines per client (address prefix) per minute; the rest are counted.
    pub per_client_per_minute: u32,
    /// Request log lines per second over all clients; the rest are counted.
    pub total_per_second: u32,
}

/// Evidence bundles and the signed checkpoints of the chain.
#[derive(Debug, Clone, PartialEq)]
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

/// The review dashboard on the admin listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewConfig {
    /// The admin token, written here (prefer `token_file` or FACEPROBE_ADMIN_TOKEN); empty:
    /// none given.
    pub token: String,
    /// A file holding the admin token (its first line).
    pub token_file: Option<PathBuf>,
    /// Hours a login lasts.
    pub session_hours: u64,
    /// `/healthz` and `/metrics` answer without a login.
    pub open_metrics: bool,
    /// Login attempts per minute from one address (also the burst).
    pub login_per_minute: u32,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            token: String::new(),
            token_file: None,
            session_hours: 12,
            open_metrics: true,
            login_per_minute: 10,
        }
    }
}

section!(ReviewConfig {
    token,
    token_file,
    session_hours,
    open_metrics,
    login_per_minute,
});

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("./data"),
            secret_file: None,
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
            synchronous: Synchronous::Full,
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
            max_dimension: 8_192,
            max_decode_bytes: 100 * 1024 * 1024,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            json: false,
            per_client_per_minute: 20,
            total_per_second: 50,
        }
    }
}

section!(RecordConfig {
    queue_capacity,
    batch_max,
    commit_linger_us,
    background_linger_us,
    synchronous,
    raw_ip_hours,
    retention_days,
    purge_interval_secs,
});

section!(CanaryConfig {
    size,
    jpeg_quality,
    identity_pool_size,
    identities_per_client,
    render_ahead_per_second,
    cache_entries,
    gallery_canaries,
    gallery_links,
});

section!(MatchConfig {
    confidence_threshold,
    max_candidates,
    max_hash_distance,
    crop_search,
    max_file_bytes,
    max_dimension,
    max_decode_bytes,
});

/// The level of operator logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

keyword!(LogLevel { Error => "error", Warn => "warn", Info => "info", Debug => "debug", Trace => "trace" });

section!(LogConfig {
    level,
    json,
    per_client_per_minute,
    total_per_second,
});

section!(EvidenceConfig {
    site,
    operator,
    contact,
    checkpoint_minutes,
    signing_key,
});

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

    /// Parses the text of a config file; `path` only names it in errors. Every bad value and
    /// unknown key of the file is in the error, not only the first.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string().trim_end().replace('\n', " "),
            })?;
        let mut problems = Vec::new();
        let mut config = Config::default();
        let mut reader = Reader::new(table, &mut problems);
        config.read(&mut reader);
        reader.finish();
        config.check(&mut problems);
        match problems.is_empty() {
            true => Ok(config),
            false => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            }),
        }
    }

    /// The checks that need more than one value's type: ranges and keys that go together.
    fn check(&self, p: &mut Vec<Problem>) {
        self.detect.check(p);
        self.alert.check(p);
        self.fleet.check(p);
        let c = &self.canary;
        require(
            p,
            (64..=1024).contains(&c.size),
            "canary.size",
            c.size,
            "use 64 to 1024",
        );
        require(
            p,
            (1..=100).contains(&c.jpeg_quality),
            "canary.jpeg_quality",
            c.jpeg_quality,
            "use 1 to 100",
        );
        require(
            p,
            c.identity_pool_size >= u64::from(c.identities_per_client) && c.identity_pool_size > 0,
            "canary.identity_pool_size",
            c.identity_pool_size,
            "use at least canary.identities_per_client",
        );
        for (key, v) in [
            (
                "canary.identities_per_client",
                c.identities_per_client as usize,
            ),
            ("canary.cache_entries", c.cache_entries),
            ("canary.gallery_canaries", c.gallery_canaries as usize),
        ] {
            require(p, v > 0, key, v, "use 1 or more");
        }
        self.serve.check(p);
        let r = &self.record;
        require(
            p,
            r.queue_capacity >= 16,
            "record.queue_capacity",
            r.queue_capacity,
            "use 16 or more",
        );
        require(
            p,
            r.batch_max > 0,
            "record.batch_max",
            r.batch_max,
            "use 1 or more",
        );
        for (key, v) in [
            ("record.commit_linger_us", r.commit_linger_us),
            ("record.background_linger_us", r.background_linger_us),
        ] {
            require(p, v <= 1_000_000, key, v, "use 0 to 1000000 (a second)");
        }
        for (key, v) in [
            ("record.raw_ip_hours", r.raw_ip_hours),
            ("record.retention_days", r.retention_days),
            ("record.purge_interval_secs", r.purge_interval_secs),
        ] {
            require(p, v > 0, key, v, "use 1 or more");
        }
        let m = &self.matching;
        require(
            p,
            (0.0..=1.0).contains(&m.confidence_threshold),
            "match.confidence_threshold",
            m.confidence_threshold,
            "use a number from 0 to 1",
        );
        require(
            p,
            m.max_candidates > 0,
            "match.max_candidates",
            m.max_candidates,
            "use 1 or more",
        );
        require(
            p,
            m.max_hash_distance <= 128,
            "match.max_hash_distance",
            m.max_hash_distance,
            "use 0 to 128",
        );
        for (key, v) in [
            ("match.max_dimension", u64::from(m.max_dimension)),
            ("match.max_file_bytes", m.max_file_bytes),
            ("match.max_decode_bytes", m.max_decode_bytes),
        ] {
            require(p, v > 0, key, v, "use a positive limit");
        }
        let e = &self.evidence;
        require(
            p,
            (1..=1440).contains(&e.checkpoint_minutes),
            "evidence.checkpoint_minutes",
            e.checkpoint_minutes,
            "use 1 to 1440 minutes",
        );
        if e.site.trim().is_empty() || e.site.contains(['\n', '\r']) {
            p.push(Problem::text(
                "evidence.site",
                format!("{:?}", e.site),
                "not a site's name",
                "name the site as its URL on one line, e.g. \"https://photos.example.org\"",
            ));
        }
        let r = &self.review;
        require(
            p,
            (1..=24 * 30).contains(&r.session_hours),
            "review.session_hours",
            r.session_hours,
            "use 1 to 720 hours",
        );
        require(
            p,
            r.login_per_minute > 0,
            "review.login_per_minute",
            r.login_per_minute,
            "use 1 or more",
        );
        if !r.token.is_empty() && r.token.trim().len() < 16 {
            p.push(Problem::text(
                "review.token",
                "***",
                "too short to keep anyone out",
                "use 16 characters or more, or leave it out and faceprobe makes one",
            ));
        }
        for (key, v) in [
            ("log.per_client_per_minute", self.log.per_client_per_minute),
            ("log.total_per_second", self.log.total_per_second),
        ] {
            require(p, v > 0, key, v, "use 1 or more");
        }
    }

    /// The mode `serve` runs in once `auto` is resolved.
    pub fn effective_mode(&self) -> Mode {
        match self.serve.mode {
            Mode::Auto if self.serve.upstream.is_none() => Mode::Demo,
            Mode::Auto => Mode::Proxy,
            m => m,
        }
    }

    /// The configuration as a config file that gives it, with secrets masked: the alert
    /// secret, and the credentials, query and fragment of webhook URLs.
    pub fn to_toml_masked(&self) -> String {
        let mut masked = self.clone();
        masked.alert = self.alert.masked();
        if !masked.review.token.is_empty() {
            masked.review.token = "***".to_string();
        }
        masked.fleet.postgres = self.fleet.masked_url();
        let mut w = Writer::default();
        masked.write(&mut w);
        w.finish()
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

    fn problems(text: &str) -> Vec<Problem> {
        match Config::parse(text, Path::new("x.toml")) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn keys(text: &str) -> Vec<String> {
        problems(text).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn every_bad_value_of_a_file_is_reported_with_its_key() {
        let text = "[serve]\nupstream = \"ftp://site\"\nlisten = \"nowhere\"\n\
                    [canary]\nsize = 5000\n[log]\nlevel = \"loud\"\n";
        let err = Config::parse(text, Path::new("x.toml")).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with("config file x.toml has 4 problems:"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 5, "one line per problem: {shown}");
        let found = keys(text);
        for key in ["serve.upstream", "serve.listen", "canary.size", "log.level"] {
            assert!(
                found.iter().any(|k| k == key),
                "{key} missing from {found:?}"
            );
        }
        let level = problems(text)
            .into_iter()
            .find(|p| p.key == "log.level")
            .unwrap();
        assert_eq!(level.value, "\"loud\"");
        assert!(level
            .fix
            .contains("\"error\", \"warn\", \"info\", \"debug\" or \"trace\""));
    }

    #[test]
    fn unknown_keys_are_all_named() {
        let found = keys("[canary]\nsise = 3\n[detect.signals.trap_fetchd]\nweight = 1\n[extra]\n");
        assert_eq!(found.len(), 3, "{found:?}");
        for key in ["canary.sise", "detect.signals.trap_fetchd", "extra"] {
            assert!(
                found.iter().any(|k| k == key),
                "{key} missing from {found:?}"
            );
        }
    }

    #[test]
    fn a_wrong_type_is_reported_beside_other_problems() {
        let found = keys("[canary]\nsize = \"big\"\njpeg_quality = 0\n[detect]\nenabled = 1\n");
        assert_eq!(
            found,
            ["canary.size", "detect.enabled", "canary.jpeg_quality"]
        );
    }

    #[test]
    fn each_typed_value_rejects_a_bad_input() {
        let cases = [
            ("[serve]\nlisten = \"127.0.0.1\"\n", "serve.listen"),
            ("[serve]\nadmin_listen = 8089\n", "serve.admin_listen"),
            ("[serve]\nupstream = \"https://site\"\n", "serve.upstream"),
            (
                "[serve]\nupstream = \"http://site/app\"\n",
                "serve.upstream",
            ),
            (
                "[serve]\ntrusted_proxies = [\"::1/128\", \"10.0.0.0/33\"]\n",
                "serve.trusted_proxies[1]",
            ),
            (
                "[serve]\ntrusted_proxies = \"10.0.0.0/8\"\n",
                "serve.trusted_proxies",
            ),
            ("[serve]\nmode = \"mirror\"\n", "serve.mode"),
            ("[serve]\nmode = \"proxy\"\n", "serve.mode"),
            ("[serve]\nscheduling = \"fifo\"\n", "serve.scheduling"),
            ("[serve]\nworkers = -1\n", "serve.workers"),
            ("[record]\nsynchronous = \"FULL\"\n", "record.synchronous"),
            ("[canary]\njpeg_quality = 300\n", "canary.jpeg_quality"),
            ("[log]\nlevel = \"verbose\"\n", "log.level"),
            ("[log]\njson = \"yes\"\n", "log.json"),
            ("[detect]\nhold_level = \"high\"\n", "detect.hold_level"),
            ("[detect]\nwatch = \"20\"\n", "detect.watch"),
            (
                "[detect.agents]\nai = [\"GPTBot\", 3]\n",
                "detect.agents.ai[1]",
            ),
            ("[alert]\nlevel = \"high\"\n", "alert.level"),
            (
                "[alert]\nwebhooks = [\"ftp://user:pw@files.example.org/drop\"]\nsecret = \"s\"\n",
                "alert.webhooks[0]",
            ),
            (
                "[alert]\nwebhooks = [\"hooks.example.org\"]\nsecret = \"s\"\n",
                "alert.webhooks[0]",
            ),
            (
                "[alert]\nwebhooks = [\"https://hooks.example.org/x\"]\n",
                "alert.secret",
            ),
            ("[alert]\nbackoff_max_ms = 10\n", "alert.backoff_max_ms"),
            ("[store]\ndata_dir = \"\"\n", "store.data_dir"),
            ("[evidence]\nsigning_key = 7\n", "evidence.signing_key"),
            ("[evidence]\nsite = \" \"\n", "evidence.site"),
        ];
        for (text, key) in cases {
            assert_eq!(keys(text), [key], "{text}");
        }
    }

    #[test]
    fn typed_values_are_parsed_once_at_load() {
        let config = Config::parse(
            "[serve]\nupstream = \"http://127.0.0.1:9000\"\ntrusted_proxies = [\"10.1.2.3\"]\n\
             [record]\nsynchronous = \"normal\"\n[log]\nlevel = \"debug\"\n\
             [alert]\nlevel = \"suspect\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let upstream = config.serve.upstream.as_ref().unwrap();
        assert_eq!(upstream.authority().as_str(), "127.0.0.1:9000");
        assert_eq!(config.effective_mode(), Mode::Proxy);
        assert_eq!(
            config.serve.trusted_proxies,
            ["10.1.2.3/32".parse::<ipnet::IpNet>().unwrap()]
        );
        assert_eq!(config.record.synchronous, Synchronous::Normal);
        assert_eq!(config.log.level, LogLevel::Debug);
        assert_eq!(config.alert.level, Level::Suspect);
    }

    #[test]
    fn the_effective_configuration_reads_back_as_itself() {
        let config = Config::parse(
            "[serve]\nupstream = \"http://127.0.0.1:9000\"\n[canary]\nsize = 512\n\
             [detect.signals.trap_fetched]\nweight = 41\n[evidence]\nsigning_key = \"/k\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let text = config.to_toml_masked();
        assert_eq!(Config::parse(&text, Path::new("y.toml")).unwrap(), config);
        assert_eq!(
            Config::parse(&Config::default().to_toml_masked(), Path::new("y.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn secrets_are_masked_in_the_effective_configuration() {
        let config = Config::parse(
            "[alert]\nsecret = \"s3cret-value\"\nwebhooks = [\n\
             \"https://bot:tok3n@hooks.example.org:8443/a/b?token=abc123#frag\",\n\
             \"http://[::1]:9/hook\"]\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let text = config.to_toml_masked();
        for secret in ["s3cret-value", "tok3n", "abc123", "frag", "bot:"] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
        assert!(
            text.contains("\"https://***@hooks.example.org:8443/a/b?***#***\""),
            "{text}"
        );
        assert!(text.contains("\"http://[::1]:9/hook\""), "{text}");
        assert!(text.contains("secret = \"***\""), "{text}");
    }
}
