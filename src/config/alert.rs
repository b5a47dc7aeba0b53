//! The `[alert]` section: where flags are sent and how hard faceprobe tries.

use super::detect::Level;
use super::read::{scalar_setting, section, Bad, Scalar};
use super::{require, Problem};

/// A webhook URL faceprobe can call: `http://` or `https://` with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// The URL, or how to write one faceprobe can call.
    pub fn parse(s: &str) -> Result<WebhookUrl, String> {
        let fix = "use a full http:// or https:// URL with a host, such as \
                   https://hooks.example.org/faceprobe";
        let Ok(uri) = s.parse::<http::Uri>() else {
            return Err(fix.to_string());
        };
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let host_ok = uri.host().is_some_and(|h| !h.is_empty());
        match scheme_ok && host_ok {
            true => Ok(WebhookUrl(s.to_string())),
            false => Err(fix.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with its credentials, query and fragment replaced by `***`: what may be shown
    /// (a webhook's token often sits in its query or its user part).
    pub fn masked(&self) -> WebhookUrl {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let host = match authority.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => authority.to_string(),
        };
        let cut = tail.find(['?', '#']).unwrap_or(tail.len());
        let (path, after) = tail.split_at(cut);
        let mut out = format!("{scheme}://{host}{path}");
        if after.starts_with('?') {
            out.push_str("?***");
        }
        if after.contains('#') {
            out.push_str("#***");
        }
        WebhookUrl(out)
    }
}

impl Scalar for WebhookUrl {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        match value.as_str() {
            Some(s) => {
                WebhookUrl::parse(s).map_err(|fix| Bad::new("not a URL faceprobe can call", fix))
            }
            None => Err(Bad::new("not a string", "write the URL in double quotes")),
        }
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.0.clone()))
    }
}

scalar_setting!(WebhookUrl);

/// The `[alert]` section of the configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// URLs each alert is POSTed to; empty turns alerts off.
    pub webhooks: Vec<WebhookUrl>,
    /// Shared secret the signature header is computed with; required when `webhooks` is set.
    pub secret: String,
    /// Level a client or cluster must reach to be alerted on.
    pub level: Level,
    /// Calls per webhook per minute (also the burst); flags beyond it are gathered and sent
    /// as one digest at the next permit.
    pub per_minute: u32,
    /// Flags listed in one digest at most; the rest are only counted (`more`).
    pub digest_max: usize,
    /// Retries of a failed call (connection error, timeout, 5xx, 429) before it is given up.
    pub retries: u32,
    /// Milliseconds before the first retry; doubled for each further one, with jitter.
    pub backoff_initial_ms: u64,
    /// Longest wait between retries in milliseconds, also the cap on a `Retry-After`.
    pub backoff_max_ms: u64,
    /// Seconds one call may take (connect, send, answer) before it counts as failed.
    pub timeout_secs: u64,
    /// Alerts waiting for each webhook's thread at most; beyond it they are dropped (counted).
    pub queue: usize,
}

section!(AlertConfig {
    webhooks,
    secret,
    level,
    per_minute,
    digest_max,
    retries,
    backoff_initial_ms,
    backoff_max_ms,
    timeout_secs,
    queue,
});

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            webhooks: Vec::new(),
            secret: String::new(),
            level: Level::Harvester,
            per_minute: 6,
            digest_max: 100,
            retries: 5,
            backoff_initial_ms: 1000,
            backoff_max_ms: 60_000,
            timeout_secs: 10,
            queue: 1024,
        }
    }
}

impl AlertConfig {
    /// Every problem of the section's values together, naming each key and its fix.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        self.check(&mut p);
        p
    }

    pub(super) fn check(&self, p: &mut Vec<Problem>) {
        if !self.webhooks.is_empty() && self.secret.is_empty() {
            p.push(Problem::text(
                "alert.secret",
                "\"\"",
                "empty while alert.webhooks is set",
                "set a shared secret (receivers check the signature with it)",
            ));
        }
        for (key, v) in [
            ("alert.per_minute", self.per_minute as u64),
            ("alert.digest_max", self.digest_max as u64),
            ("alert.backoff_initial_ms", self.backoff_initial_ms),
            ("alert.backoff_max_ms", self.backoff_max_ms),
            ("alert.timeout_secs", self.timeout_secs),
            ("alert.queue", self.queue as u64),
        ] {
            require(p, v > 0, key, v, "use 1 or more");
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            p.push(Problem::text(
                "alert.backoff_max_ms",
                self.backoff_max_ms,
                format!(
                    "below alert.backoff_initial_ms = {}",
                    self.backoff_initial_ms
                ),
                "raise backoff_max_ms or lower backoff_initial_ms",
            ));
        }
    }

    /// A copy fit to print: the secret and the webhooks' credentials and queries masked.
    pub fn masked(&self) -> AlertConfig {
        AlertConfig {
            webhooks: self.webhooks.iter().map(WebhookUrl::masked).collect(),
            secret: match self.secret.is_empty() {
                true => String::new(),
                false => "***".to_string(),
            },
            ..self.clone()
        }
    }
}
