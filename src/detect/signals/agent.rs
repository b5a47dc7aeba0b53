//! What a client says it is: a browser, a declared crawler, a search engine, an AI crawler, a
//! dataset tool, a scraping library or a headless browser (lists in `[detect.agents]`). A known
//! agent is evidence once, scored by category; a claimed search engine is reported, not
//! scored.

use super::{Facts, Signal, SignalId};
use crate::config::detect::{AgentWeights, DetectConfig};
use crate::detect::client::{Client, Crawler};

/// Whether `ua` (already lower case) contains any of `tokens`, compared in lower case.
/// `lower` is a buffer for each token in lower case (this runs for every new client, over
/// ~50 tokens: one allocation, not one per token).
fn contains_any(ua: &str, tokens: &[String], lower: &mut String) -> bool {
    tokens.iter().any(|t| {
        lower.clear();
        lower.push_str(t);
        lower.make_ascii_lowercase();
        !t.is_empty() && ua.contains(lower.as_str())
    })
}

/// Sets `crawler` and `browser` from the client's user agent.
pub fn classify(client: &mut Client, config: &DetectConfig) {
    let Some(ua) = client.agent.as_deref() else {
        client.crawler = Crawler::Scraper;
        client.browser = false;
        return;
    };
    let lower = ua.to_ascii_lowercase();
    let a = &config.agents;
    let mut buf = String::with_capacity(64);
    let mut any = |tokens: &[String]| contains_any(&lower, tokens, &mut buf);
    client.crawler = if any(&a.dataset) {
        Crawler::Dataset
    } else if any(&a.ai) {
        Crawler::Ai
    } else if any(&a.headless) {
        Crawler::Headless
    } else if any(&a.scraper) {
        Crawler::Scraper
    } else if any(&a.search) {
        Crawler::SearchEngine
    } else if any(&a.declared) {
        Crawler::Declared
    } else {
        Crawler::None
    };
    client.browser = client.crawler == Crawler::None
        && lower.starts_with("mozilla/5.0 (")
        && ["chrome/", "firefox/", "safari/", "edg/"]
            .iter()
            .any(|b| lower.contains(b));
}

pub fn score(w: &AgentWeights, crawler: Crawler, count: u32) -> f64 {
    if count == 0 {
        return 0.0;
    }
    match crawler {
        Crawler::Dataset => w.dataset,
        Crawler::Ai => w.ai,
        Crawler::Scraper => w.scraper,
        Crawler::Headless => w.headless,
        Crawler::SearchEngine => w.search,
        Crawler::None | Crawler::Declared => 0.0,
    }
}

pub struct KnownAgent;

impl Signal for KnownAgent {
    fn id(&self) -> SignalId {
        SignalId::KnownAgent
    }

    fn observe(&self, _: &DetectConfig, client: &mut Client, _: &Facts) -> Option<String> {
        if client.reason(SignalId::KnownAgent).is_some() {
            return None;
        }
        let label = client.crawler.label()?;
        if client.crawler == Crawler::Declared {
            return None;
        }
        let what = match client.agent.as_deref() {
            Some(ua) => format!("user agent {ua:?}"),
            None => "no user agent".to_string(),
        };
        Some(format!("{what} is a known {label} agent"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::record::Kind;

    fn classified(ua: Option<&str>) -> Client {
        let mut c = Client {
            agent: ua.map(str::to_string),
            ..Client::default()
        };
        classify(&mut c, &DetectConfig::default());
        c
    }

    #[test]
    fn agents_are_classified_by_the_configured_lists() {
        assert_eq!(
            classified(Some("img2dataset/1.45")).crawler,
            Crawler::Dataset
        );
        assert_eq!(
            classified(Some(
                "Mozilla/5.0 AppleWebKit/537.36 (compatible; GPTBot/1.2)"
            ))
            .crawler,
            Crawler::Ai
        );
        assert_eq!(
            classified(Some("python-requests/2.31.0")).crawler,
            Crawler::Scraper
        );
        assert_eq!(
            classified(Some(
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
            ))
            .crawler,
            Crawler::SearchEngine
        );
        assert_eq!(
            classified(Some("ExampleBot/1.0 (+https://example.org/bot)")).crawler,
            Crawler::Declared
        );
        assert_eq!(classified(None).crawler, Crawler::Scraper);
        let chrome = classified(Some(CHROME));
        assert_eq!(chrome.crawler, Crawler::None);
        assert!(chrome.browser);
        let headless = classified(Some(&CHROME.replace("Chrome/", "HeadlessChrome/")));
        assert_eq!(headless.crawler, Crawler::Headless);
        assert!(!headless.browser);
    }

    #[test]
    fn a_known_agent_is_evidence_once_and_scored_by_category() {
        let config = DetectConfig::default();
        let mut s = seen(1, 0, Kind::Page, "/");
        s.user_agent = Some("img2dataset/1.45".into());
        let mut c = client_for(&s, &config);
        let facts = Facts {
            seen: &s,
            disallowed: false,
        };
        assert!(KnownAgent.observe(&config, &mut c, &facts).is_some());
        c.reason_mut(SignalId::KnownAgent).count = 1;
        assert!(KnownAgent.observe(&config, &mut c, &facts).is_none());
        assert_eq!(
            SignalId::KnownAgent.score(&config.signals, c.crawler, 1),
            config.signals.known_agent.dataset
        );
        let browser = client_for(&seen(1, 0, Kind::Page, "/"), &config);
        assert_eq!(
            SignalId::KnownAgent.score(&config.signals, browser.crawler, 1),
            0.0
        );
    }
}
