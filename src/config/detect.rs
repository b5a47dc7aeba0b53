//! The `[detect]` and `[detect.signals.*]` sections: the detector's numbers (level
//! thresholds, the LRU cap, windows, one table per signal) and its levels. The detector holds
//! the mechanism; an operator tunes these without recompiling, as with a CrowdSec scenario.

use super::read::{keyword, section};
use super::{require, Problem};
use serde::{Deserialize, Serialize};

/// How sure the detector is that a client harvests: a person reviews every level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Unusual, worth a look; ordinary visitors can get here.
    Watch,
    /// Behaves like a harvester; raw addresses are kept from here on (by default).
    Suspect,
    /// Harvests: took canaries, walked traps, broke robots.txt, or all of it at scale.
    Harvester,
}

keyword!(Level { Watch => "watch", Suspect => "suspect", Harvester => "harvester" });

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "watch" => Some(Level::Watch),
            "suspect" => Some(Level::Suspect),
            "harvester" => Some(Level::Harvester),
            _ => None,
        }
    }
}

/// How a signal's evidence turns into score: nothing below `min_count` pieces of evidence,
/// `weight` at `min_count`, `per_extra` for each further piece, never more than `max`.
pub trait Scoring {
    fn weight(&self) -> f64;
    fn per_extra(&self) -> f64;
    fn max(&self) -> f64;
    fn min_count(&self) -> u32;

    fn score(&self, count: u32) -> f64 {
        if count == 0 || count < self.min_count() {
            return 0.0;
        }
        let extra = f64::from(count - self.min_count().max(1));
        (self.weight() + self.per_extra() * extra).min(self.max())
    }
}

/// Defines a signal's config table: the four scoring keys with their defaults, then the
/// signal's own thresholds.
macro_rules! signal_config {
    ($(#[$doc:meta])* $name:ident {
        weight: $w:expr, per_extra: $p:expr, max: $m:expr, min_count: $c:expr
    } { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            pub weight: f64,
            pub per_extra: f64,
            pub max: f64,
            pub min_count: u32,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { weight: $w, per_extra: $p, max: $m, min_count: $c, $($field: $default,)* }
            }
        }

        section!($name { weight, per_extra, max, min_count, $($field),* });

        impl Scoring for $name {
            fn weight(&self) -> f64 { self.weight }
            fn per_extra(&self) -> f64 { self.per_extra }
            fn max(&self) -> f64 { self.max }
            fn min_count(&self) -> u32 { self.min_count }
        }
    };
}

signal_config! {
    /// A path robots.txt disallows, fetched by a client that never read robots.txt.
    RobotsDisallowed { weight: 25.0, per_extra: 5.0, max: 60.0, min_count: 1 } {}
}
signal_config! {
    /// A path robots.txt disallows, fetched after reading robots.txt: the rules were known.
    RobotsReadThenDisallowed { weight: 50.0, per_extra: 5.0, max: 90.0, min_count: 1 } {}
}
signal_config! {
    /// A hidden canary image fetched (no browser loads it: it sits in a `display:none` block).
    CanaryFetched { weight: 40.0, per_extra: 10.0, max: 80.0, min_count: 1 } {}
}
signal_config! {
    /// A trap gallery fetched (the link is hidden and `rel="nofollow"`).
    TrapFetched { weight: 40.0, per_extra: 5.0, max: 60.0, min_count: 1 } {}
}
signal_config! {
    /// A trap gallery reached at `depth` or deeper: a crawler walking the trap, not a stray click.
    GalleryDepth { weight: 30.0, per_extra: 0.0, max: 30.0, min_count: 1 } {
        /// Gallery depth that counts (1 = linked from a site page).
        depth: u32 = 2,
    }
}
signal_config! {
    /// Canaries fetched again after earlier ones came with `X-Robots-Tag: noai, noimageai`
    /// and `tdm-reservation: 1`: the opt-out was seen and ignored.
    OptOutIgnored { weight: 30.0, per_extra: 0.0, max: 30.0, min_count: 1 } {
        /// Canary fetches before the next one counts as ignoring the opt-out.
        after: u32 = 2,
    }
}
signal_config! {
    /// A canary minted for one client fetched by another: the two are one actor.
    TokenHandoff { weight: 40.0, per_extra: 5.0, max: 60.0, min_count: 1 } {}
}
signal_config! {
    /// Many images and no CSS or JS: a client that does not render pages.
    NoRender { weight: 20.0, per_extra: 0.0, max: 20.0, min_count: 1 } {
        /// Images fetched before the ratio is judged.
        min_images: u32 = 8,
        /// Images per page (pages counted as at least one) above which it counts.
        images_per_page: f64 = 3.0,
    }
}
signal_config! {
    /// Distinct images fetched in the current hour above `per_hour`.
    ImageRate { weight: 20.0, per_extra: 0.0, max: 20.0, min_count: 1 } {
        per_hour: u32 = 300,
    }
}
signal_config! {
    /// Requests in one minute above `per_minute`.
    RequestRate { weight: 15.0, per_extra: 0.0, max: 15.0, min_count: 1 } {
        per_minute: u32 = 120,
    }
}
signal_config! {
    /// Machine-regular timing: the coefficient of variation of the gaps between requests below
    /// `max_cv` over at least `min_gaps` gaps (people and browsers are bursty).
    RegularTiming { weight: 15.0, per_extra: 0.0, max: 15.0, min_count: 1 } {
        min_gaps: u32 = 20,
        max_cv: f64 = 0.25,
        /// A gap longer than this starts a new series (a new visit).
        max_gap_secs: u64 = 600,
    }
}
signal_config! {
    /// A browser user agent on requests without the headers every current browser sends
    /// (`Sec-Fetch-*`, `Accept-Language`).
    BrowserHeadersMissing { weight: 20.0, per_extra: 0.0, max: 20.0, min_count: 2 } {}
}
signal_config! {
    /// A browser user agent with a header order no browser uses (an HTTP library's order).
    HeaderOrder { weight: 20.0, per_extra: 0.0, max: 20.0, min_count: 1 } {}
}
signal_config! {
    /// Requests that step through numbered image URLs (`/img/41.jpg`, `/img/42.jpg`, …) in a
    /// run of at least `run`.
    Enumeration { weight: 20.0, per_extra: 0.0, max: 20.0, min_count: 1 } {
        run: u32 = 5,
    }
}
signal_config! {
    /// A cluster of addresses sharing one fingerprint: score per address beyond the first.
    ClusterAddresses { weight: 5.0, per_extra: 3.0, max: 40.0, min_count: 2 } {}
}

/// Score of a known agent, by category (the lists are in `[detect.agents]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentWeights {
    pub dataset: f64,
    pub ai: f64,
    pub scraper: f64,
    pub headless: f64,
    /// A claimed search engine is reported, not scored, unless verification fails.
    pub search: f64,
    /// A claimed search engine whose address does not resolve back to it
    /// (`detect.verify_search_engines`).
    pub search_unverified: f64,
}

section!(AgentWeights {
    dataset,
    ai,
    scraper,
    headless,
    search,
    search_unverified,
});

impl Default for AgentWeights {
    fn default() -> Self {
        AgentWeights {
            dataset: 60.0,
            ai: 40.0,
            scraper: 30.0,
            headless: 40.0,
            search: 0.0,
            search_unverified: 50.0,
        }
    }
}

/// User-agent tokens by category, matched case-insensitively as substrings.
#[derive(Debug, Clone, PartialEq)]
pub struct Agents {
    pub dataset: Vec<String>,
    pub ai: Vec<String>,
    pub scraper: Vec<String>,
    pub headless: Vec<String>,
    pub search: Vec<String>,
    /// Words that mark a declared crawler (one that names itself).
    pub declared: Vec<String>,
    /// DNS domains of the search engines, for `verify_search_engines`.
    pub search_domains: Vec<String>,
}

section!(Agents {
    dataset,
    ai,
    scraper,
    headless,
    search,
    declared,
    search_domains,
});

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Default for Agents {
    fn default() -> Self {
        Agents {
            dataset: strings(&["img2dataset", "LAION", "DataForSeoBot", "webz.io"]),
            ai: strings(&[
                "GPTBot",
                "ChatGPT-User",
                "OAI-SearchBot",
                "CCBot",
                "ClaudeBot",
                "Claude-Web",
                "anthropic-ai",
                "Google-Extended",
                "Bytespider",
                "PerplexityBot",
                "Amazonbot",
                "Applebot-Extended",
                "meta-externalagent",
                "FacebookBot",
                "cohere-ai",
                "Diffbot",
                "omgili",
                "ImagesiftBot",
                "Timpibot",
            ]),
            scraper: strings(&[
                "python-requests",
                "python-urllib",
                "aiohttp",
                "httpx",
                "Scrapy",
                "Go-http-client",
                "curl/",
                "Wget",
                "libwww-perl",
                "okhttp",
                "Java/",
                "Apache-HttpClient",
                "node-fetch",
                "axios",
                "undici",
                "HTTrack",
                "colly",
            ]),
            headless: strings(&["HeadlessChrome", "PhantomJS", "Puppeteer", "Playwright"]),
            search: strings(&[
                "Googlebot",
                "bingbot",
                "DuckDuckBot",
                "YandexBot",
                "Baiduspider",
                "Applebot",
                "Qwantify",
                "Slurp",
            ]),
            declared: strings(&["bot", "crawler", "spider", "+http"]),
            search_domains: strings(&[
                "googlebot.com",
                "google.com",
                "googleusercontent.com",
                "search.msn.com",
                "duckduckgo.com",
                "yandex.ru",
                "yandex.net",
                "yandex.com",
                "baidu.com",
                "baidu.jp",
                "applebot.apple.com",
                "qwant.com",
                "crawl.yahoo.net",
            ]),
        }
    }
}

/// Every signal's table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub robots_disallowed: RobotsDisallowed,
    pub robots_read_then_disallowed: RobotsReadThenDisallowed,
    pub canary_fetched: CanaryFetched,
    pub trap_fetched: TrapFetched,
    pub gallery_depth: GalleryDepth,
    pub opt_out_ignored: OptOutIgnored,
    pub token_handoff: TokenHandoff,
    pub no_render: NoRender,
    pub image_rate: ImageRate,
    pub request_rate: RequestRate,
    pub regular_timing: RegularTiming,
    pub browser_headers_missing: BrowserHeadersMissing,
    pub header_order: HeaderOrder,
    pub enumeration: Enumeration,
    pub cluster_addresses: ClusterAddresses,
    pub known_agent: AgentWeights,
}

section!(Signals {} tables {
    robots_disallowed => "robots_disallowed",
    robots_read_then_disallowed => "robots_read_then_disallowed",
    canary_fetched => "canary_fetched",
    trap_fetched => "trap_fetched",
    gallery_depth => "gallery_depth",
    opt_out_ignored => "opt_out_ignored",
    token_handoff => "token_handoff",
    no_render => "no_render",
    image_rate => "image_rate",
    request_rate => "request_rate",
    regular_timing => "regular_timing",
    browser_headers_missing => "browser_headers_missing",
    header_order => "header_order",
    enumeration => "enumeration",
    cluster_addresses => "cluster_addresses",
    known_agent => "known_agent",
});

#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// Run the detector inside `serve`.
    pub enabled: bool,
    /// Scores at which a client or cluster reaches each level.
    pub watch: f64,
    pub suspect: f64,
    pub harvester: f64,
    /// From this level on a client's raw addresses are kept past `record.raw_ip_hours`.
    pub hold_level: Level,
    /// Highest level a declared crawler that read and obeyed robots.txt (and took no canary)
    /// can reach: it is reported as a crawler, not flagged as a harvester.
    pub polite_crawler_max: Level,
    /// Clients tracked in memory; the least recently seen beyond it are summarised to SQLite
    /// (when any signal fired) and dropped.
    pub max_clients: usize,
    /// Fingerprints tracked for clustering (LRU, like clients).
    pub max_fingerprints: usize,
    /// Addresses sharing one fingerprint, each with a signal of its own, that form a cluster.
    pub cluster_min_addresses: usize,
    /// Addresses of one prefix (/24, /56) with one user agent, each with a signal of its own,
    /// that form a cluster.
    pub prefix_min_addresses: usize,
    /// How often (milliseconds) the detector reads newly committed events.
    pub poll_ms: u64,
    /// How often (seconds) changed clients and flags are written to SQLite.
    pub persist_secs: u64,
    /// On a first start, events of this many seconds back are read to rebuild state.
    pub replay_secs: u64,
    /// Check a claimed search-engine agent by reverse then forward DNS of its address.
    pub verify_search_engines: bool,
    /// Browsers send `Sec-Fetch-*` only to https (and localhost) origins: false for a site
    /// that visitors reach over plain http.
    pub expect_sec_fetch: bool,
    pub signals: Signals,
    pub agents: Agents,
}

section!(DetectConfig {
    enabled,
    watch,
    suspect,
    harvester,
    hold_level,
    polite_crawler_max,
    max_clients,
    max_fingerprints,
    cluster_min_addresses,
    prefix_min_addresses,
    poll_ms,
    persist_secs,
    replay_secs,
    verify_search_engines,
    expect_sec_fetch,
} tables {
    signals => "signals",
    agents => "agents",
});

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            watch: 20.0,
            suspect: 50.0,
            harvester: 100.0,
            hold_level: Level::Suspect,
            polite_crawler_max: Level::Watch,
            max_clients: 100_000,
            max_fingerprints: 20_000,
            cluster_min_addresses: 5,
            prefix_min_addresses: 2,
            poll_ms: 200,
            persist_secs: 2,
            replay_secs: 3600,
            verify_search_engines: false,
            expect_sec_fetch: true,
            signals: Signals::default(),
            agents: Agents::default(),
        }
    }
}

impl DetectConfig {
    /// The level a score reaches.
    pub fn level_of(&self, score: f64) -> Option<Level> {
        if score >= self.harvester {
            Some(Level::Harvester)
        } else if score >= self.suspect {
            Some(Level::Suspect)
        } else if score >= self.watch {
            Some(Level::Watch)
        } else {
            None
        }
    }

    /// What is wrong with the numbers, naming each key and the fix.
    pub(super) fn check(&self, p: &mut Vec<Problem>) {
        if !(self.watch > 0.0 && self.watch < self.suspect && self.suspect < self.harvester) {
            p.push(Problem::text(
                "detect.watch / suspect / harvester",
                format!("{} / {} / {}", self.watch, self.suspect, self.harvester),
                "thresholds out of order",
                "use 0 < watch < suspect < harvester",
            ));
        }
        for (key, v) in [
            ("detect.max_clients", self.max_clients),
            ("detect.max_fingerprints", self.max_fingerprints),
        ] {
            require(p, v > 0, key, v, "use 1 or more");
        }
        for (key, v) in [
            ("detect.cluster_min_addresses", self.cluster_min_addresses),
            ("detect.prefix_min_addresses", self.prefix_min_addresses),
        ] {
            require(p, v >= 2, key, v, "use 2 or more");
        }
        for (key, v) in [
            ("detect.poll_ms", self.poll_ms),
            ("detect.persist_secs", self.persist_secs),
        ] {
            require(p, v > 0, key, v, "use 1 or more");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_starts_at_min_count_and_stops_at_max() {
        let c = CanaryFetched::default();
        assert_eq!(c.score(0), 0.0);
        assert_eq!(c.score(1), 40.0);
        assert_eq!(c.score(3), 60.0);
        assert_eq!(c.score(100), 80.0);
        let b = BrowserHeadersMissing::default();
        assert_eq!(b.score(1), 0.0);
        assert_eq!(b.score(2), 20.0);
        assert_eq!(b.score(50), 20.0);
    }

    #[test]
    fn levels_follow_thresholds() {
        let c = DetectConfig::default();
        assert_eq!(c.level_of(19.9), None);
        assert_eq!(c.level_of(20.0), Some(Level::Watch));
        assert_eq!(c.level_of(99.0), Some(Level::Suspect));
        assert_eq!(c.level_of(100.0), Some(Level::Harvester));
    }
}
