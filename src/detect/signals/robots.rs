//! robots.txt broken: a fetch of a path the site's robots.txt disallows for the client's agent.
//! Worse after reading robots.txt (the rules were known): that is a separate signal with its
//! own weight. The rules are those of the version the client was served, or the latest one
//! served when it never asked; parsing is by `texting_robots`.

use super::{Facts, Signal, SignalId};
use crate::config::detect::DetectConfig;
use crate::detect::client::Client;
use crate::record::Kind;
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;

/// robots.txt versions by SHA-256 (hex) and their parsed rules per agent.
pub struct RobotsRules {
    bodies: HashMap<String, String>,
    latest: Option<String>,
    /// Parsed rules by `"{sha}\n{product token}"` (a hex SHA-256 has no newline).
    parsed: LruCache<String, Option<texting_robots::Robot>>,
    /// Product tokens by user agent: working one out costs more than the rest of an event.
    tokens: LruCache<String, String>,
    /// The key being looked up, kept to spare an allocation per event.
    key: String,
}

impl Default for RobotsRules {
    fn default() -> Self {
        RobotsRules {
            bodies: HashMap::new(),
            latest: None,
            parsed: LruCache::new(NonZeroUsize::new(1024).expect("non-zero")),
            tokens: LruCache::new(NonZeroUsize::new(4096).expect("non-zero")),
            key: String::new(),
        }
    }
}

/// Whether `word` contains `needle` (lower case ASCII), ignoring ASCII case.
fn contains_lower(word: &str, needle: &str) -> bool {
    word.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The product token robots.txt groups name: `Googlebot` in
/// `Mozilla/5.0 (compatible; Googlebot/2.1; …)`, `ExampleBot` in `ExampleBot/1.0`.
pub fn product_token(ua: &str) -> &str {
    let words = ua.split([' ', ';', '(', ')']);
    let mut first = None;
    // Compares without lower-casing each word into a new string.
    for w in words.filter(|w| !w.is_empty()) {
        let name = w.split('/').next().unwrap_or(w);
        if ["bot", "crawl", "spider"]
            .iter()
            .any(|n| contains_lower(name, n))
        {
            return name;
        }
        let mozilla = name
            .as_bytes()
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"mozilla"));
        if first.is_none() && !mozilla && w.contains('/') {
            first = Some(name);
        }
    }
    first.unwrap_or("*")
}

impl RobotsRules {
    pub fn knows(&self, sha: &str) -> bool {
        self.bodies.contains_key(sha)
    }

    /// Adds a version; the last one added is the latest served.
    pub fn add(&mut self, sha: String, body: String) {
        self.bodies.insert(sha.clone(), body);
        self.latest = Some(sha);
    }

    /// Marks an already known version as the latest served.
    pub fn served(&mut self, sha: &str) {
        if self.bodies.contains_key(sha) {
            self.latest = Some(sha.to_string());
        }
    }

    /// Whether robots.txt `version` (or the latest, or faceprobe's default when none was
    /// ever served) disallows `target` for `agent`.
    pub fn disallows(&mut self, version: Option<&str>, agent: Option<&str>, target: &str) -> bool {
        let sha = version
            .filter(|v| self.bodies.contains_key(*v))
            .or(self.latest.as_deref())
            .unwrap_or("");
        let agent = agent.unwrap_or("*");
        let token = self
            .tokens
            .get_or_insert_ref(agent, || product_token(agent).to_string());
        let key = &mut self.key;
        key.clear();
        key.push_str(sha);
        key.push('\n');
        key.push_str(token);
        let bodies = &self.bodies;
        let robot = self.parsed.get_or_insert_ref(key.as_str(), || {
            let body = bodies
                .get(sha)
                .map(String::as_str)
                .unwrap_or(crate::record::published::DEFAULT_ROBOTS);
            texting_robots::Robot::new(token, body.as_bytes()).ok()
        });
        robot.as_ref().is_some_and(|r| !r.allowed(target))
    }
}

fn violation(client: &mut Client, facts: &Facts) -> bool {
    let s = facts.seen;
    if !facts.disallowed || s.kind() == Kind::Robots {
        return false;
    }
    client.counts.robots_violations += 1;
    true
}

pub struct Disallowed;

impl Signal for Disallowed {
    fn id(&self) -> SignalId {
        SignalId::RobotsDisallowed
    }

    fn observe(&self, _: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        if client.robots_read.is_some() || !violation(client, facts) {
            return None;
        }
        Some(format!(
            "fetched {} which robots.txt disallows",
            facts.seen.path
        ))
    }
}

pub struct ReadThenDisallowed;

impl Signal for ReadThenDisallowed {
    fn id(&self) -> SignalId {
        SignalId::RobotsReadThenDisallowed
    }

    fn observe(&self, _: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        if client.robots_read.is_none() || !violation(client, facts) {
            return None;
        }
        Some(format!(
            "read robots.txt, then fetched {} which it disallows",
            facts.seen.path
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn rules_apply_per_agent_group_with_faceprobe_default() {
        let mut r = RobotsRules::default();
        // Nothing served yet: faceprobe's own rule still applies.
        assert!(r.disallows(None, Some(CHROME), "/_fp/c/x.jpg"));
        assert!(!r.disallows(None, Some(CHROME), "/gallery/1"));
        r.add(
            "v1".into(),
            "User-agent: ExampleBot\nDisallow: /photos/\nDisallow: /_fp/\n\n\
             User-agent: *\nDisallow: /private/\nDisallow: /_fp/\n"
                .into(),
        );
        let bot = "ExampleBot/1.0 (+https://example.org/bot)";
        assert!(r.disallows(None, Some(bot), "/photos/1.jpg"));
        assert!(!r.disallows(None, Some(bot), "/private/"));
        assert!(r.disallows(None, Some(CHROME), "/private/"));
        assert!(!r.disallows(None, Some(CHROME), "/photos/1.jpg"));
        assert_eq!(
            product_token(
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
            ),
            "Googlebot"
        );
        assert_eq!(product_token("python-requests/2.31"), "python-requests");
        // Names are matched ignoring case, and kept as sent.
        assert_eq!(
            product_token("MOZILLA/5.0 (compatible; SuperCRAWLer/1.0)"),
            "SuperCRAWLer"
        );
        assert_eq!(product_token("MOZILLA/5.0 Foo/1.0"), "Foo");
        // The same agent again is answered from the cache, the same way.
        assert!(r.disallows(None, Some(bot), "/photos/2.jpg"));
        assert!(!r.disallows(None, Some(CHROME), "/photos/2.jpg"));
    }

    #[test]
    fn reading_robots_first_moves_evidence_to_the_heavier_signal() {
        let events = vec![seen(1, 0, Kind::Page, "/private/")];
        let config = crate::config::detect::DetectConfig::default();
        let mut c = client_for(&events[0], &config);
        assert_eq!(run(&Disallowed, &mut c, &events, true), 1);
        assert_eq!(run(&ReadThenDisallowed, &mut c, &events, true), 0);
        assert_eq!(run(&Disallowed, &mut c, &events, false), 0);
        c.robots_read = Some("v1".into());
        assert_eq!(run(&Disallowed, &mut c, &events, true), 0);
        assert_eq!(run(&ReadThenDisallowed, &mut c, &events, true), 1);
        assert_eq!(c.counts.robots_violations, 2);
    }
}
