//! The signals: one small unit each, beside its tests. A signal looks at one event of one
//! client (with the facts the engine worked out for it), updates the windows it needs in the
//! client's state, and says whether the event is evidence. How evidence turns into score is
//! config (`[detect.signals.NAME]`): code holds the mechanism, config holds the numbers.
//!
//! Adding a signal: a file here, a `SignalId` variant, a line in `ALL`, a config table.

mod agent;
mod canary;
mod enumeration;
pub mod handoff;
mod headers;
mod rate;
pub mod robots;
mod timing;
mod trap;

pub use agent::classify;

use super::client::{Client, Crawler};
use super::seen::Seen;
use crate::config::detect::{DetectConfig, Scoring, Signals};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalId {
    RobotsDisallowed,
    RobotsReadThenDisallowed,
    CanaryFetched,
    TrapFetched,
    GalleryDepth,
    OptOutIgnored,
    TokenHandoff,
    NoRender,
    ImageRate,
    RequestRate,
    RegularTiming,
    BrowserHeadersMissing,
    HeaderOrder,
    KnownAgent,
    SearchEngineUnverified,
    Enumeration,
    ClusterAddresses,
}

impl SignalId {
    pub fn name(self) -> &'static str {
        match self {
            SignalId::RobotsDisallowed => "robots_disallowed",
            SignalId::RobotsReadThenDisallowed => "robots_read_then_disallowed",
            SignalId::CanaryFetched => "canary_fetched",
            SignalId::TrapFetched => "trap_fetched",
            SignalId::GalleryDepth => "gallery_depth",
            SignalId::OptOutIgnored => "opt_out_ignored",
            SignalId::TokenHandoff => "token_handoff",
            SignalId::NoRender => "no_render",
            SignalId::ImageRate => "image_rate",
            SignalId::RequestRate => "request_rate",
            SignalId::RegularTiming => "regular_timing",
            SignalId::BrowserHeadersMissing => "browser_headers_missing",
            SignalId::HeaderOrder => "header_order",
            SignalId::KnownAgent => "known_agent",
            SignalId::SearchEngineUnverified => "search_engine_unverified",
            SignalId::Enumeration => "enumeration",
            SignalId::ClusterAddresses => "cluster_addresses",
        }
    }

    /// Signals that mark an actor rather than a busy but honest crawler: a client with one of
    /// these can be clustered with others sharing its fingerprint.
    pub fn marks_actor(self) -> bool {
        !matches!(
            self,
            SignalId::RequestRate | SignalId::RegularTiming | SignalId::ClusterAddresses
        )
    }

    /// Evidence that the client went where robots.txt, the markup or the opt-out told it not
    /// to: a declared crawler with any of these is not polite.
    pub fn impolite(self) -> bool {
        matches!(
            self,
            SignalId::RobotsDisallowed
                | SignalId::RobotsReadThenDisallowed
                | SignalId::CanaryFetched
                | SignalId::TrapFetched
                | SignalId::GalleryDepth
                | SignalId::OptOutIgnored
                | SignalId::TokenHandoff
                | SignalId::SearchEngineUnverified
        )
    }

    /// The score of `count` pieces of evidence, for a key whose agent is a `crawler`.
    pub fn score(self, s: &Signals, crawler: Crawler, count: u32) -> f64 {
        let scoring: &dyn Scoring = match self {
            SignalId::RobotsDisallowed => &s.robots_disallowed,
            SignalId::RobotsReadThenDisallowed => &s.robots_read_then_disallowed,
            SignalId::CanaryFetched => &s.canary_fetched,
            SignalId::TrapFetched => &s.trap_fetched,
            SignalId::GalleryDepth => &s.gallery_depth,
            SignalId::OptOutIgnored => &s.opt_out_ignored,
            SignalId::TokenHandoff => &s.token_handoff,
            SignalId::NoRender => &s.no_render,
            SignalId::ImageRate => &s.image_rate,
            SignalId::RequestRate => &s.request_rate,
            SignalId::RegularTiming => &s.regular_timing,
            SignalId::BrowserHeadersMissing => &s.browser_headers_missing,
            SignalId::HeaderOrder => &s.header_order,
            SignalId::Enumeration => &s.enumeration,
            SignalId::ClusterAddresses => &s.cluster_addresses,
            SignalId::KnownAgent => return agent::score(&s.known_agent, crawler, count),
            SignalId::SearchEngineUnverified => {
                return if count > 0 {
                    s.known_agent.search_unverified
                } else {
                    0.0
                }
            }
        };
        scoring.score(count)
    }
}

/// One event with what the engine worked out about it.
pub struct Facts<'a> {
    pub seen: &'a Seen,
    /// robots.txt (the version that applies to this client) disallows the path.
    pub disallowed: bool,
}

pub trait Signal: Sync {
    fn id(&self) -> SignalId;
    /// Updates the client's windows with this event; `Some(detail)` when it is evidence.
    fn observe(&self, config: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String>;
}

/// Every signal, in the order they run.
pub static ALL: &[&dyn Signal] = &[
    &agent::KnownAgent,
    &robots::Disallowed,
    &robots::ReadThenDisallowed,
    &canary::Fetched,
    &canary::OptOutIgnored,
    &trap::Fetched,
    &trap::Depth,
    &handoff::TokenHandoff,
    &rate::NoRender,
    &rate::ImageRate,
    &rate::RequestRate,
    &timing::RegularTiming,
    &headers::BrowserHeadersMissing,
    &headers::HeaderOrder,
    &enumeration::Enumeration,
];

/// A stable 64-bit hash (FNV-1a) for bitmaps and fingerprints: the same on every run, so
/// state written before a restart still means the same after it.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::record::Kind;

    pub const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    pub const CHROME_ORDER: &str = "host,connection,sec-ch-ua,user-agent,accept,sec-fetch-site,sec-fetch-mode,sec-fetch-dest,accept-encoding,accept-language";

    /// An event of `kind` at `path`, `ts_ms`, from a browser with every header.
    pub fn seen(id: i64, ts_ms: i64, kind: Kind, path: &str) -> Seen {
        Seen {
            id,
            ts_ms,
            ip: Some("192.0.2.1".into()),
            client_key: "c:test".into(),
            kind: Some(kind),
            path: path.into(),
            status: 200,
            user_agent: Some(CHROME.into()),
            accept: Some("text/html,*/*;q=0.8".into()),
            accept_language: true,
            sec_fetch: true,
            header_order: CHROME_ORDER.into(),
            referer: kind != Kind::Page,
            ..Seen::default()
        }
    }

    pub fn client_for(seen: &Seen, config: &DetectConfig) -> Client {
        let mut c = Client {
            key: seen.client_key.clone(),
            agent: seen.user_agent.clone(),
            ..Client::default()
        };
        classify(&mut c, config);
        c
    }

    /// Runs `signal` over events, returning how many were evidence.
    pub fn run(signal: &dyn Signal, client: &mut Client, events: &[Seen], disallowed: bool) -> u32 {
        let config = DetectConfig::default();
        let mut n = 0;
        for s in events {
            let facts = Facts {
                seen: s,
                disallowed,
            };
            if signal.observe(&config, client, &facts).is_some() {
                n += 1;
            }
        }
        n
    }
}
