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
    pub canary: CanaryConfig,
    #[serde(rename = "match")]
    pub matching: MatchConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory holding `faceprobe.db` and the deployment secret.
    pub data_dir: PathBuf,
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("./data"),
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
        }
    }
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            confidence_threshold: 0.5,
            max_candidates: 8,
            max_hash_distance: 32,
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
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            return Err(invalid(
                "log.level",
                self.log.level.clone(),
                "use error, warn, info, debug or trace",
            ));
        }
        Ok(())
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
