//! What the detector remembers of one client (an address with one user agent) or one cluster:
//! counts, the small windows the signals need, the reasons found so far with their event ids,
//! and the levels reached. Kept under ~1 KB for an ordinary client; serialised as JSON when
//! it is written to SQLite (evicted, or at each persist) and read back after a restart.

use super::signals::SignalId;
use super::Level;
use serde::{Deserialize, Serialize};

/// Event ids kept per reason: the first few (when it began) and the latest few.
const FIRST_IDS: usize = 5;
const LAST_IDS: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub requests: u64,
    pub pages: u64,
    pub images: u64,
    pub assets: u64,
    pub canaries: u64,
    pub traps: u64,
    pub robots: u64,
    pub robots_violations: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.pages += o.pages;
        self.images += o.images;
        self.assets += o.assets;
        self.canaries += o.canaries;
        self.traps += o.traps;
        self.robots += o.robots;
        self.robots_violations += o.robots_violations;
    }
}

/// One signal's evidence against a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub signal: SignalId,
    pub score: f64,
    pub count: u32,
    /// The first and the latest event ids behind it (the store has the rest by client key).
    pub events: Vec<i64>,
    pub detail: String,
}

impl Reason {
    pub fn push_event(&mut self, id: i64) {
        if self.events.contains(&id) {
            return;
        }
        if self.events.len() < FIRST_IDS + LAST_IDS {
            self.events.push(id);
        } else {
            // Keep the first ones; the tail is a window of the latest.
            self.events.remove(FIRST_IDS);
            self.events.push(id);
        }
    }
}

/// When a key reached a level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reached {
    pub level: Level,
    pub at_ms: i64,
    pub at_event: i64,
    /// The key's request count then (for a cluster, over its members).
    pub requests: u64,
}

/// Gaps between requests (Welford's running mean and variance), for machine-regular timing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub last_ms: i64,
    pub gaps: u32,
    pub mean: f64,
    pub m2: f64,
    pub fired: bool,
}

/// Requests in the current minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub minute: i64,
    pub count: u32,
    pub fired_minute: i64,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            minute: i64::MIN,
            count: 0,
            fired_minute: i64::MIN,
        }
    }
}

/// Distinct images in the current hour, by linear counting over a 1024-bit bitmap
/// (128 bytes whatever the count; accurate to a few percent up to ~2,000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distinct {
    pub hour: i64,
    pub bits: Vec<u64>,
    pub fired_hour: i64,
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct {
            hour: 0,
            bits: vec![0; 16],
            fired_hour: -1,
        }
    }
}

impl Distinct {
    pub const BITS: usize = 1024;

    pub fn insert(&mut self, hash: u64) {
        let i = (hash % Self::BITS as u64) as usize;
        self.bits[i / 64] |= 1 << (i % 64);
    }

    pub fn estimate(&self) -> f64 {
        let set: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        let zeros = (Self::BITS as u32 - set).max(1) as f64;
        let m = Self::BITS as f64;
        -m * (zeros / m).ln()
    }

    pub fn reset(&mut self, hour: i64) {
        self.hour = hour;
        self.bits.iter_mut().for_each(|w| *w = 0);
    }
}

/// The current run of numbered URLs under one template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub template: u64,
    pub last: u64,
    pub length: u32,
}

/// What kind of agent a client names itself as (worked out once, from its user agent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crawler {
    /// Not a crawler by its own account.
    #[default]
    None,
    /// Names itself a bot, crawler or spider.
    Declared,
    SearchEngine,
    Ai,
    Dataset,
    Scraper,
    Headless,
}

impl Crawler {
    pub fn label(self) -> Option<&'static str> {
        match self {
            Crawler::None => None,
            Crawler::Declared => Some("declared"),
            Crawler::SearchEngine => Some("search-engine"),
            Crawler::Ai => Some("ai"),
            Crawler::Dataset => Some("dataset"),
            Crawler::Scraper => Some("scraper"),
            Crawler::Headless => Some("headless"),
        }
    }

    /// A crawler that says what it is (and so can be polite).
    pub fn declared(self) -> bool {
        matches!(
            self,
            Crawler::Declared | Crawler::SearchEngine | Crawler::Ai | Crawler::Dataset
        )
    }
}

/// What the detector knows about one key: a client (`c:…`) or a cluster (`k:…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub key: String,
    /// Raw address while kept, else its pseudonym (`ip:…`); clusters have none.
    pub address: Option<String>,
    pub prefix: Option<String>,
    pub agent: Option<String>,
    pub crawler: Crawler,
    /// Looks like a browser by its user agent.
    pub browser: bool,
    pub fingerprint: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub counts: Counts,
    /// robots.txt read (the version served, for the rules that apply).
    pub robots_read: Option<String>,
    pub max_depth: u32,
    pub timing: Timing,
    pub rate: Rate,
    pub images: Distinct,
    pub run: Run,
    pub reasons: Vec<Reason>,
    pub score: f64,
    pub level: Option<Level>,
    pub levels: Vec<Reached>,
    /// The cluster a client belongs to.
    pub cluster: Option<String>,
    /// A cluster's members (client keys) and distinct addresses.
    pub members: Vec<String>,
    pub addresses: Vec<String>,
    /// A person dismissed this key: it stays reported but is never flagged or held.
    pub dismissed: bool,
    /// A cluster found to be part of another: its evidence went there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
}

impl Client {
    pub fn is_cluster(&self) -> bool {
        self.key.starts_with("k:")
    }

    pub fn reason_mut(&mut self, signal: SignalId) -> &mut Reason {
        let i = match self.reasons.iter().position(|r| r.signal == signal) {
            Some(i) => i,
            None => {
                self.reasons.push(Reason {
                    signal,
                    score: 0.0,
                    count: 0,
                    events: Vec::new(),
                    detail: String::new(),
                });
                self.reasons.len() - 1
            }
        };
        &mut self.reasons[i]
    }

    pub fn reason(&self, signal: SignalId) -> Option<&Reason> {
        self.reasons.iter().find(|r| r.signal == signal)
    }

    /// Whether a signal that marks an actor (not just a busy crawler) has fired: such
    /// clients can be clustered by fingerprint.
    pub fn marked(&self) -> bool {
        self.reasons
            .iter()
            .any(|r| r.score > 0.0 && r.signal.marks_actor())
    }

    /// The JSON object `faceprobe clients --json` prints and alerts carry.
    pub fn summary(&self) -> serde_json::Value {
        let reasons: Vec<_> = self
            .reasons
            .iter()
            .map(|r| {
                serde_json::json!({
                    "signal": r.signal.name(),
                    "score": r.score,
                    "count": r.count,
                    "events": r.events,
                    "detail": r.detail,
                })
            })
            .collect();
        let mut v = serde_json::json!({
            "key": self.key,
            "kind": if self.is_cluster() { "cluster" } else { "client" },
            "level": if self.dismissed { None } else { self.level.map(Level::as_str) },
            "score": (self.score * 10.0).round() / 10.0,
            "dismissed": self.dismissed,
            "crawler": self.crawler.label(),
            "agent": self.agent,
            "address": self.address,
            "prefix": self.prefix,
            "cluster": self.cluster,
            "first_seen_ms": self.first_ms,
            "last_seen_ms": self.last_ms,
            "counts": self.counts,
            "reasons": reasons,
            "levels": self.levels,
        });
        if self.is_cluster() {
            v["members"] = serde_json::json!(self.members);
            v["addresses"] = serde_json::json!(self.addresses.len());
        }
        if let Some(k) = &self.merged_into {
            v["merged_into"] = serde_json::json!(k);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_first_and_latest_event_ids() {
        let mut c = Client::default();
        let r = c.reason_mut(SignalId::CanaryFetched);
        for id in 1..=30 {
            r.push_event(id);
        }
        assert_eq!(r.events, vec![1, 2, 3, 4, 5, 26, 27, 28, 29, 30]);
    }

    #[test]
    fn distinct_counts_within_a_few_percent() {
        let mut d = Distinct::default();
        for i in 0..500u64 {
            d.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7);
        }
        let e = d.estimate();
        assert!((450.0..550.0).contains(&e), "{e}");
    }
}
