//! The engine: one committed event at a time, in id order. It finds (or creates) the client,
//! counts the event, asks every signal, rescores, joins clients into clusters, and notes each
//! level reached. It knows nothing of SQLite: the runner feeds it events and clients read
//! back from the store, and takes what changed to write.
//!
//! Memory is bounded by `max_clients` (LRU; the least recently seen client is handed back to
//! be written when any signal fired for it, else forgotten) and `max_fingerprints`.

use super::client::{Client, Crawler, Reached};
use super::cluster::{self, FpGroup};
use super::signals::{self, handoff, robots::RobotsRules, Facts, SignalId, ALL};
use super::verify::Verdict;
use super::{Level, Seen};
use crate::config::detect::DetectConfig;
use crate::record::Kind;
use crate::store::now_ms;
use lru::LruCache;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;

/// A key reached a level (or, with `note`, something a person should see in its history).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    /// The level before, and the level now.
    pub from: Option<Level>,
    pub level: Option<Level>,
    pub score: f64,
    pub at_ms: i64,
    pub at_event: i64,
    pub requests: u64,
    pub note: String,
    pub dismissed: bool,
}

pub struct Engine {
    config: DetectConfig,
    clients: LruCache<String, Client>,
    clusters: HashMap<String, Client>,
    /// Clusters absorbed into another, by key: where their members went.
    merged: HashMap<String, String>,
    fingerprints: LruCache<u64, FpGroup>,
    /// What each recent user agent was classified as: most new clients bring an agent seen
    /// before, and classifying one (~50 substring searches) is most of a new client's cost.
    agents: LruCache<String, (Crawler, bool)>,
    pub robots: RobotsRules,
    allowed: HashSet<String>,
    /// Hashes of keys written to the store and no longer in memory (reload them on return).
    stored: HashSet<u64>,
    dirty: HashSet<String>,
    evicted: Vec<Client>,
    changes: Vec<Change>,
    /// Clients claiming a search engine, to check by DNS (`verify_search_engines`).
    to_verify: Vec<(String, std::net::IpAddr)>,
    pub last_id: i64,
    pub events: u64,
    pub evictions: u64,
}

/// User agents whose classification is kept (~200 bytes each).
const AGENTS_KEPT: usize = 4096;

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).expect("at least one")
}

fn key_hash(key: &str) -> u64 {
    signals::fnv(&[key.as_bytes()])
}

impl Engine {
    pub fn new(config: DetectConfig) -> Engine {
        Engine {
            clients: LruCache::new(nonzero(config.max_clients)),
            fingerprints: LruCache::new(nonzero(config.max_fingerprints)),
            agents: LruCache::new(nonzero(AGENTS_KEPT)),
            config,
            clusters: HashMap::new(),
            merged: HashMap::new(),
            robots: RobotsRules::default(),
            allowed: HashSet::new(),
            stored: HashSet::new(),
            dirty: HashSet::new(),
            evicted: Vec::new(),
            changes: Vec::new(),
            to_verify: Vec::new(),
            last_id: 0,
            events: 0,
            evictions: 0,
        }
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// Clients in memory.
    pub fn tracked(&self) -> usize {
        self.clients.len()
    }

    /// A client or cluster, by key.
    pub fn get(&self, key: &str) -> Option<&Client> {
        if key.starts_with("k:") {
            self.clusters.get(&self.resolve(key))
        } else {
            self.clients.peek(key)
        }
    }

    /// Whether `key` was written to the store and should be read back before its next event.
    pub fn needs_load(&self, key: &str) -> bool {
        !self.clients.contains(key) && self.stored.contains(&key_hash(key))
    }

    /// Remembers that `key` is in the store (a restart loads only recent clients).
    pub fn mark_stored(&mut self, key: &str) {
        self.stored.insert(key_hash(key));
    }

    /// Takes back a client or cluster read from the store.
    pub fn load(&mut self, mut c: Client) {
        c.dismissed = c.dismissed || self.allowed.contains(&c.key);
        if let Some(into) = &c.merged_into {
            self.merged.insert(c.key.clone(), into.clone());
            return;
        }
        if c.is_cluster() {
            self.clusters.insert(c.key.clone(), c);
            return;
        }
        if let Some(k) = &c.cluster {
            self.fingerprints
                .get_or_insert_mut(c.fingerprint, || FpGroup {
                    members: Vec::new(),
                    cluster: Some(k.clone()),
                });
        }
        let key = c.key.clone();
        self.insert_client(key, c);
    }

    /// The allow-list as it now is: keys a person dismissed are reported, never flagged, held
    /// or alerted on again; a key taken off it (a dismissal undone) is judged again.
    pub fn allow(&mut self, keys: impl IntoIterator<Item = String>) {
        let keys: HashSet<String> = keys.into_iter().collect();
        let undone: Vec<String> = self.allowed.difference(&keys).cloned().collect();
        for (key, dismissed) in keys
            .iter()
            .map(|k| (k, true))
            .chain(undone.iter().map(|k| (k, false)))
        {
            let target = if key.starts_with("k:") {
                self.clusters.get_mut(key)
            } else {
                self.clients.peek_mut(key)
            };
            if let Some(c) = target {
                if c.dismissed != dismissed {
                    c.dismissed = dismissed;
                    self.dirty.insert(key.clone());
                }
            }
        }
        self.allowed = keys;
    }

    fn insert_client(&mut self, key: String, c: Client) {
        if let Some((old_key, old)) = self.clients.push(key, c) {
            if old_key != old.key {
                return;
            }
            self.evictions += 1;
            if old.score > 0.0 || old.cluster.is_some() || old.level.is_some() {
                self.stored.insert(key_hash(&old.key));
                self.dirty.remove(&old.key);
                self.evicted.push(old);
            }
        }
    }

    fn create(&mut self, s: &Seen) {
        let mut c = Client {
            key: s.client_key.clone(),
            address: s.ip.clone(),
            prefix: s
                .ip
                .as_deref()
                .and_then(|ip| ip.parse().ok())
                .map(crate::record::privacy::prefix),
            agent: s.user_agent.clone(),
            fingerprint: cluster::fingerprint(s),
            first_ms: s.ts_ms,
            dismissed: self.allowed.contains(&s.client_key),
            ..Client::default()
        };
        match s.user_agent.as_deref() {
            Some(ua) => {
                let config = &self.config;
                (c.crawler, c.browser) = *self.agents.get_or_insert_ref(ua, || {
                    signals::classify(&mut c, config);
                    (c.crawler, c.browser)
                });
            }
            None => signals::classify(&mut c, &self.config),
        }
        if self.config.verify_search_engines && c.crawler == Crawler::SearchEngine {
            if let Some(ip) = s.ip.as_deref().and_then(|ip| ip.parse().ok()) {
                self.to_verify.push((c.key.clone(), ip));
            }
        }
        self.insert_client(s.client_key.clone(), c);
    }

    /// One committed event.
    pub fn observe(&mut self, s: &Seen) {
        self.last_id = self.last_id.max(s.id);
        self.events += 1;
        if !self.clients.contains(&s.client_key) {
            self.create(s);
        }
        let Some(client) = self.clients.get_mut(&s.client_key) else {
            return;
        };
        let before = client.counts.clone();
        client.last_ms = client.last_ms.max(s.ts_ms);
        if client.address.is_none() {
            client.address = s.ip.clone();
        }
        let kind = s.kind();
        let n = &mut client.counts;
        n.requests += 1;
        match kind {
            Kind::Page | Kind::Trap => n.pages += 1,
            Kind::Image => n.images += 1,
            Kind::Asset => n.assets += 1,
            Kind::Robots => n.robots += 1,
            Kind::Canary => n.images += 1,
            Kind::Other => {}
        }
        if let (Kind::Robots, Some(sha)) = (kind, s.robots_sha256) {
            let sha = hex::encode(sha);
            self.robots.served(&sha);
            client.robots_read = Some(sha);
        }
        let disallowed = kind != Kind::Robots
            && self.robots.disallows(
                client.robots_read.as_deref(),
                client.agent.as_deref(),
                &s.target(),
            );
        let facts = Facts {
            seen: s,
            disallowed,
        };
        let mut fired: Vec<(SignalId, String)> = Vec::new();
        for signal in ALL {
            if let Some(detail) = signal.observe(&self.config, client, &facts) {
                let id = signal.id();
                let r = client.reason_mut(id);
                r.count += 1;
                r.push_event(s.id);
                r.detail = detail.clone();
                fired.push((id, detail));
            }
        }
        let delta = counts_delta(&client.counts, &before);
        // The client's own key is the one it was looked up by: no copy of it per event.
        let key = s.client_key.as_str();
        let cluster_before = client.cluster.clone();
        if !fired.is_empty() {
            rescore(&self.config, client);
            note_level(&self.config, client, (s.ts_ms, s.id), &mut self.changes);
        }
        if (client.score > 0.0 || client.cluster.is_some()) && !self.dirty.contains(key) {
            self.dirty.insert(key.to_string());
        }
        let marked = !fired.is_empty() && client.marked();
        let fingerprint = client.fingerprint;
        let (address, prefix, agent) = if marked {
            (
                client.address.clone(),
                client.prefix.clone(),
                client.agent.clone().unwrap_or_default(),
            )
        } else {
            (None, None, String::new())
        };

        if let Some(k) = cluster_before.map(|k| self.resolve(&k)) {
            if let Some(c) = self.clusters.get_mut(&k) {
                c.counts.add(&delta);
                c.last_ms = c.last_ms.max(s.ts_ms);
                for (id, detail) in &fired {
                    let r = c.reason_mut(*id);
                    r.count += 1;
                    r.push_event(s.id);
                    r.detail = detail.clone();
                }
                rescore(&self.config, c);
                note_level(&self.config, c, (s.ts_ms, s.id), &mut self.changes);
                self.dirty.insert(k);
            }
        }
        if let Some(owner) = handoff::other_owner(&facts) {
            let owner = owner.to_string();
            self.join(&owner, key, s);
        }
        if marked {
            self.fingerprint_join(
                key,
                fingerprint,
                self.config.cluster_min_addresses,
                address.as_deref(),
                s,
            );
            // Neighbours: one agent from several addresses of one /24 or /56.
            if let Some(prefix) = prefix {
                let group = signals::fnv(&[b"prefix", prefix.as_bytes(), agent.as_bytes()]);
                let min = self.config.prefix_min_addresses;
                self.fingerprint_join(key, group, min, address.as_deref(), s);
            }
        }
    }

    fn resolve(&self, key: &str) -> String {
        let mut k = key;
        for _ in 0..64 {
            match self.merged.get(k) {
                Some(next) => k = next,
                None => break,
            }
        }
        k.to_string()
    }

    fn cluster_of(&self, client: &str) -> Option<String> {
        let k = self.clients.peek(client)?.cluster.as_deref()?;
        Some(self.resolve(k))
    }

    /// Clients with one fingerprint that each showed a signal of their own form a cluster
    /// once they span `cluster_min_addresses` addresses; later ones join it.
    fn fingerprint_join(
        &mut self,
        key: &str,
        fingerprint: u64,
        min: usize,
        address: Option<&str>,
        s: &Seen,
    ) {
        let existing = self
            .fingerprints
            .get(&fingerprint)
            .and_then(|g| g.cluster.clone())
            .map(|k| self.resolve(&k))
            .filter(|k| self.clusters.contains_key(k));
        if let Some(k) = existing {
            match self.cluster_of(key) {
                Some(x) if x == k => {}
                Some(x) => self.merge_clusters(&k, &x, s),
                None => self.add_member(&k, key, s),
            }
            return;
        }
        let group = self
            .fingerprints
            .get_or_insert_mut(fingerprint, FpGroup::default);
        group.cluster = None;
        if !group.add(key, address, min) {
            return;
        }
        let members: Vec<String> = group.members.iter().map(|(k, _)| k.clone()).collect();
        for m in &members[1..] {
            self.join(&members[0], m, s);
        }
        let k = self.cluster_of(&members[0]);
        if let Some(g) = self.fingerprints.get_mut(&fingerprint) {
            g.cluster = k;
        }
    }

    /// Joins two clients into one cluster (creating or merging clusters as needed).
    fn join(&mut self, a: &str, b: &str, s: &Seen) {
        match (self.cluster_of(a), self.cluster_of(b)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => self.merge_clusters(&x, &y, s),
            (Some(x), None) => self.add_member(&x, b, s),
            (None, Some(y)) => self.add_member(&y, a, s),
            (None, None) => {
                let k = cluster::cluster_key(a);
                let k = self.resolve(&k);
                self.clusters.entry(k.clone()).or_insert_with(|| Client {
                    key: k.clone(),
                    first_ms: s.ts_ms,
                    dismissed: self.allowed.contains(&k),
                    ..Client::default()
                });
                self.add_member(&k, a, s);
                self.add_member(&k, b, s);
            }
        }
    }

    fn add_member(&mut self, k: &str, member: &str, s: &Seen) {
        let Some(cluster) = self.clusters.get_mut(k) else {
            return;
        };
        match self.clients.peek_mut(member) {
            Some(m) if m.cluster.as_deref() == Some(k) => return,
            Some(m) => {
                m.cluster = Some(k.to_string());
                cluster::absorb(cluster, m);
                self.dirty.insert(member.to_string());
            }
            None => cluster::note(&mut cluster.members, member),
        }
        rescore(&self.config, cluster);
        note_level(&self.config, cluster, (s.ts_ms, s.id), &mut self.changes);
        self.dirty.insert(k.to_string());
    }

    fn merge_clusters(&mut self, x: &str, y: &str, s: &Seen) {
        let (Some(cx), Some(cy)) = (self.clusters.get(x), self.clusters.get(y)) else {
            return;
        };
        let (into, from) = if cx.members.len() >= cy.members.len() {
            (x.to_string(), y.to_string())
        } else {
            (y.to_string(), x.to_string())
        };
        let Some(mut gone) = self.clusters.remove(&from) else {
            return;
        };
        gone.merged_into = Some(into.clone());
        self.dirty.remove(&from);
        for m in &gone.members {
            if let Some(c) = self.clients.peek_mut(m) {
                c.cluster = Some(into.clone());
                self.dirty.insert(m.clone());
            }
        }
        self.changes.push(Change {
            key: from.clone(),
            from: gone.level,
            level: gone.level,
            score: gone.score,
            at_ms: s.ts_ms,
            at_event: s.id,
            requests: gone.counts.requests,
            note: format!("merged into {into}: the two clusters are one actor"),
            dismissed: gone.dismissed,
        });
        self.merged.insert(from, into.clone());
        if let Some(c) = self.clusters.get_mut(&into) {
            cluster::merge(c, &gone);
            rescore(&self.config, c);
            note_level(&self.config, c, (s.ts_ms, s.id), &mut self.changes);
        }
        // Written once more, marked, so `clients` shows the actor once.
        self.evicted.push(gone);
        self.dirty.insert(into);
    }

    /// Claimed search engines seen since the last call, to check by DNS.
    pub fn take_to_verify(&mut self) -> Vec<(String, std::net::IpAddr)> {
        std::mem::take(&mut self.to_verify)
    }

    /// The DNS check of a claimed search engine came back.
    pub fn verdict(&mut self, key: &str, verdict: &Verdict) {
        let Verdict::Unverified(why) = verdict else {
            return;
        };
        let at = (now_ms(), self.last_id);
        let Some(c) = self.clients.peek_mut(key) else {
            return;
        };
        let r = c.reason_mut(SignalId::SearchEngineUnverified);
        r.count = 1;
        r.detail = format!("claims to be a search engine, but {why}");
        rescore(&self.config, c);
        note_level(&self.config, c, at, &mut self.changes);
        self.dirty.insert(key.to_string());
    }

    /// What changed since the last call: clients and clusters to write (including evicted
    /// ones) and the levels reached.
    pub fn take_changes(&mut self) -> (Vec<Client>, Vec<Change>) {
        let mut out = std::mem::take(&mut self.evicted);
        for key in self.dirty.drain() {
            let c = if key.starts_with("k:") {
                self.clusters.get(&key)
            } else {
                self.clients.peek(&key)
            };
            if let Some(c) = c {
                out.push(c.clone());
            }
        }
        (out, std::mem::take(&mut self.changes))
    }
}

fn counts_delta(
    after: &super::client::Counts,
    before: &super::client::Counts,
) -> super::client::Counts {
    super::client::Counts {
        requests: after.requests - before.requests,
        pages: after.pages - before.pages,
        images: after.images - before.images,
        assets: after.assets - before.assets,
        canaries: after.canaries - before.canaries,
        traps: after.traps - before.traps,
        robots: after.robots - before.robots,
        robots_violations: after.robots_violations - before.robots_violations,
    }
}

/// Recomputes a key's score from its reasons (and, for a cluster, its number of addresses).
pub fn rescore(config: &DetectConfig, c: &mut Client) {
    if c.is_cluster() {
        let n = c.addresses.len() as u32;
        if config.signals.cluster_addresses.min_count <= n {
            let r = c.reason_mut(SignalId::ClusterAddresses);
            r.count = n;
            r.detail = format!("{n} addresses acting as one");
        }
    }
    let crawler = c.crawler;
    let mut total = 0.0;
    for r in &mut c.reasons {
        r.score = r.signal.score(&config.signals, crawler, r.count);
        total += r.score;
    }
    c.score = total;
}

/// Records a level newly reached by `c` at event `s`.
fn note_level(config: &DetectConfig, c: &mut Client, at: (i64, i64), changes: &mut Vec<Change>) {
    let (at_ms, at_event) = at;
    let Some(mut level) = config.level_of(c.score) else {
        return;
    };
    let polite =
        c.crawler.declared() && !c.reasons.iter().any(|r| r.count > 0 && r.signal.impolite());
    if polite {
        level = level.min(config.polite_crawler_max);
    }
    if c.level.is_some_and(|l| l >= level) {
        return;
    }
    for l in [Level::Watch, Level::Suspect, Level::Harvester] {
        if l > level || c.level.is_some_and(|had| had >= l) {
            continue;
        }
        c.levels.push(Reached {
            level: l,
            at_ms,
            at_event,
            requests: c.counts.requests,
        });
    }
    let from = c.level;
    c.level = Some(level);
    changes.push(Change {
        key: c.key.clone(),
        from,
        level: Some(level),
        score: c.score,
        at_ms,
        at_event,
        requests: c.counts.requests,
        note: format!("reached {} with score {:.0}", level.as_str(), c.score),
        dismissed: c.dismissed,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::signals::test_support::{seen, CHROME};

    /// Events of one client (address, agent) with ids from `next`.
    struct Actor {
        ip: String,
        key: String,
        ua: Option<String>,
        sec_fetch: bool,
        order: &'static str,
    }

    const LIBRARY_ORDER: &str = "host,user-agent,accept-encoding,accept,connection";

    impl Actor {
        fn browser(ip: &str) -> Actor {
            Actor {
                ip: ip.into(),
                key: format!("c:{ip}"),
                ua: Some(CHROME.into()),
                sec_fetch: true,
                order: crate::detect::signals::test_support::CHROME_ORDER,
            }
        }

        fn event(&self, id: i64, ts: i64, kind: Kind, path: &str) -> Seen {
            let mut s = seen(id, ts, kind, path);
            s.ip = Some(self.ip.clone());
            s.client_key = self.key.clone();
            s.user_agent = self.ua.clone();
            s.sec_fetch = self.sec_fetch;
            s.header_order = self.order.into();
            s
        }
    }

    fn level(e: &Engine, key: &str) -> Option<Level> {
        e.get(key).and_then(|c| c.level)
    }

    #[test]
    fn a_person_browsing_is_never_flagged() {
        let mut e = Engine::new(DetectConfig::default());
        let p = Actor::browser("192.0.2.10");
        let mut id = 0;
        let mut ts = 1_000_000;
        for page in 0..30 {
            for (kind, path) in [
                (Kind::Page, format!("/gallery/{}", page % 3 + 1)),
                (Kind::Asset, "/static/site.css".into()),
                (Kind::Asset, "/static/site.js".into()),
                (Kind::Image, format!("/static/img/{}.jpg", page % 12 + 1)),
                (
                    Kind::Image,
                    format!("/static/img/{}.jpg", (page + 1) % 12 + 1),
                ),
            ] {
                id += 1;
                ts += 20;
                e.observe(&p.event(id, ts, kind, &path));
            }
            ts += 4000 + (page * 3137) % 9000;
        }
        let c = e.get(&p.key).unwrap();
        assert_eq!(c.level, None, "{:?}", c.reasons);
        assert_eq!(c.counts.requests, 150);
        let (written, changes) = e.take_changes();
        assert!(written.is_empty() && changes.is_empty());
    }

    #[test]
    fn a_bulk_harvester_is_a_harvester_within_a_few_requests() {
        let mut e = Engine::new(DetectConfig::default());
        let mut h = Actor::browser("198.51.100.4");
        h.ua = Some("python-requests/2.31.0".into());
        h.sec_fetch = false;
        h.order = LIBRARY_ORDER;
        let mut n = 0;
        for i in 1..=100 {
            let (kind, path) = if i % 3 == 0 {
                (Kind::Canary, format!("/_fp/c/t{i}.jpg"))
            } else {
                (Kind::Image, format!("/static/img/{i}.jpg"))
            };
            e.observe(&h.event(i, 1_000_000 + i * 7, kind, &path));
            n = i;
            if level(&e, &h.key) == Some(Level::Harvester) {
                break;
            }
        }
        assert!(n <= 12, "harvester after {n} requests");
        let c = e.get(&h.key).unwrap();
        let reached: Vec<_> = c.levels.iter().map(|r| r.level).collect();
        assert_eq!(
            reached,
            vec![Level::Watch, Level::Suspect, Level::Harvester]
        );
        assert!(c.reason(SignalId::CanaryFetched).is_some());
        assert!(c.reason(SignalId::RobotsDisallowed).is_some());
        let (_, changes) = e.take_changes();
        assert!(changes
            .iter()
            .any(|ch| ch.level == Some(Level::Harvester) && ch.key == h.key));
    }

    #[test]
    fn a_polite_declared_crawler_stays_at_watch() {
        let mut e = Engine::new(DetectConfig::default());
        let mut bot = Actor::browser("203.0.113.8");
        bot.ua = Some("ExampleBot/1.2 (+https://example.org/bot)".into());
        bot.sec_fetch = false;
        bot.order = "host,user-agent,accept,accept-encoding";
        let mut robots = bot.event(1, 1_000_000, Kind::Robots, "/robots.txt");
        robots.robots_sha256 = Some([7; 32]);
        e.robots.add(
            hex::encode([7u8; 32]),
            "User-agent: *\nDisallow: /private/\nDisallow: /_fp/\n".into(),
        );
        e.observe(&robots);
        // One request a second, exactly: pages and their images, no CSS, nothing disallowed.
        for i in 2..400 {
            let (kind, path) = if i % 4 == 0 {
                (Kind::Page, format!("/gallery/{}", i % 3 + 1))
            } else {
                (Kind::Image, format!("/static/img/{}.jpg", i % 97))
            };
            e.observe(&bot.event(i, 1_000_000 + i * 1000, kind, &path));
        }
        let c = e.get(&bot.key).unwrap();
        assert!(c.reason(SignalId::RegularTiming).is_some());
        assert!(c.score >= 20.0, "{}", c.score);
        assert_eq!(c.level, Some(Level::Watch));
        // The same crawler taking a disallowed path is no longer polite.
        e.observe(&bot.event(400, 1_400_000, Kind::Page, "/private/"));
        e.observe(&bot.event(401, 1_401_000, Kind::Canary, "/_fp/c/x.jpg"));
        assert!(level(&e, &bot.key) >= Some(Level::Suspect));
    }

    #[test]
    fn addresses_that_hand_tokens_to_each_other_form_one_flagged_cluster() {
        let mut e = Engine::new(DetectConfig::default());
        let pool: Vec<Actor> = (0..50)
            .map(|i| {
                let mut a = Actor::browser(&format!("10.{i}.7.9"));
                a.sec_fetch = false;
                a.order = LIBRARY_ORDER;
                a
            })
            .collect();
        let mut id = 0;
        // Round robin: a page from one address, its canary from the next, slowly.
        for round in 0..3 {
            for (i, a) in pool.iter().enumerate() {
                id += 1;
                let ts = 1_000_000 + id * 900;
                if (i + round) % 2 == 0 {
                    e.observe(&a.event(id, ts, Kind::Page, "/gallery/1"));
                } else {
                    let mut s = a.event(id, ts, Kind::Canary, &format!("/_fp/c/t{id}.jpg"));
                    s.token_owner = Some(pool[(i + 49) % 50].key.clone());
                    e.observe(&s);
                }
            }
        }
        let flagged = pool
            .iter()
            .filter(|a| {
                let c = e.get(&a.key).unwrap();
                let via = c
                    .cluster
                    .as_deref()
                    .and_then(|k| e.get(k))
                    .and_then(|k| k.level);
                c.level.max(via) >= Some(Level::Suspect)
            })
            .count();
        assert!(flagged >= 45, "{flagged} of 50 flagged");
        let k = e.get(&pool[0].key).unwrap().cluster.clone().unwrap();
        let cluster = e.get(&k).unwrap();
        assert_eq!(cluster.level, Some(Level::Harvester));
        assert_eq!(cluster.addresses.len(), 50);
        assert!(cluster.reason(SignalId::TokenHandoff).is_some());
        assert_eq!(cluster.counts.requests, 150);
        // Clusters merged on the way are written once more, marked, never listed as actors.
        let (written, _) = e.take_changes();
        let listed: Vec<_> = written
            .iter()
            .filter(|c| c.is_cluster() && c.merged_into.is_none())
            .collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, k);
        assert!(written
            .iter()
            .filter(|c| c.merged_into.is_some())
            .all(|c| c.merged_into.as_deref() == Some(k.as_str())));
    }

    #[test]
    fn a_shared_fingerprint_alone_clusters_marked_clients_not_people() {
        let mut e = Engine::new(DetectConfig::default());
        // Five disguised addresses, one request each, no tokens exchanged.
        for i in 0..5 {
            let mut a = Actor::browser(&format!("10.{i}.0.1"));
            a.sec_fetch = false;
            a.order = LIBRARY_ORDER;
            e.observe(&a.event(i + 1, 1_000_000 + i * 5000, Kind::Page, "/"));
        }
        let c = e.get("c:10.0.0.1").unwrap();
        let k = c.cluster.clone().expect("clustered by fingerprint");
        assert_eq!(e.get(&k).unwrap().addresses.len(), 5);
        // Fifty people with the same browser and headers share a fingerprint but show nothing.
        for i in 0..50 {
            let p = Actor::browser(&format!("172.16.{i}.1"));
            e.observe(&p.event(100 + i, 2_000_000 + i * 5000, Kind::Page, "/"));
        }
        assert!(e.get("c:172.16.0.1").unwrap().cluster.is_none());
    }

    #[test]
    fn one_agent_from_neighbouring_addresses_is_one_cluster() {
        let mut e = Engine::new(DetectConfig::default());
        // Two addresses of one /24, each taking canaries with the same scraper agent.
        for (i, ip) in ["203.0.113.5", "203.0.113.77"].iter().enumerate() {
            let mut a = Actor::browser(ip);
            a.ua = Some("Scrapy/2.11".into());
            let i = i as i64;
            e.observe(&a.event(i + 1, 1_000_000 + i, Kind::Canary, "/_fp/c/x.jpg"));
        }
        let k = e.get("c:203.0.113.5").unwrap().cluster.clone();
        assert!(k.is_some());
        assert_eq!(e.get("c:203.0.113.77").unwrap().cluster, k);
        // The same agent in another /24 stays apart (until five such addresses).
        let mut far = Actor::browser("198.51.100.5");
        far.ua = Some("Scrapy/2.11".into());
        e.observe(&far.event(9, 1_000_100, Kind::Canary, "/_fp/c/y.jpg"));
        assert!(e.get("c:198.51.100.5").unwrap().cluster.is_none());
    }

    #[test]
    fn a_key_taken_off_the_allow_list_is_flagged_again() {
        let mut e = Engine::new(DetectConfig::default());
        let mut h = Actor::browser("198.51.100.9");
        h.ua = Some("img2dataset/1.45".into());
        e.allow(["c:198.51.100.9".to_string()]);
        for i in 1..=5 {
            e.observe(&h.event(i, 1_000_000 + i, Kind::Canary, "/_fp/c/x.jpg"));
        }
        assert!(e.get(&h.key).unwrap().dismissed);
        let _ = e.take_changes();
        e.allow(Vec::<String>::new());
        let c = e.get(&h.key).unwrap();
        assert!(!c.dismissed && c.level.is_some());
        assert!(c.summary()["level"].is_string());
        let (states, _) = e.take_changes();
        assert!(states.iter().any(|s| s.key == h.key && !s.dismissed));
    }

    #[test]
    fn dismissed_keys_are_not_flagged_and_eviction_hands_back_noticed_clients() {
        let mut e = Engine::new(DetectConfig {
            max_clients: 2,
            ..DetectConfig::default()
        });
        let mut h = Actor::browser("198.51.100.4");
        h.ua = Some("img2dataset/1.45".into());
        e.allow(["c:198.51.100.4".to_string()]);
        for i in 1..=5 {
            e.observe(&h.event(i, 1_000_000 + i, Kind::Canary, "/_fp/c/x.jpg"));
        }
        let c = e.get(&h.key).unwrap();
        assert!(c.dismissed && c.score >= 100.0);
        assert_eq!(c.summary()["level"], serde_json::Value::Null);
        let _ = e.take_changes();
        // Two people push the harvester out of a two-client LRU: it comes back to be written.
        e.observe(&Actor::browser("192.0.2.1").event(10, 2_000_000, Kind::Page, "/"));
        e.observe(&Actor::browser("192.0.2.2").event(11, 2_000_000, Kind::Page, "/"));
        assert!(e.get(&h.key).is_none());
        assert!(e.needs_load(&h.key));
        let (written, _) = e.take_changes();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].key, h.key);
        assert_eq!(e.evictions, 1);
    }

    #[test]
    fn a_search_engine_that_dns_does_not_confirm_is_suspect() {
        let mut e = Engine::new(DetectConfig {
            verify_search_engines: true,
            ..DetectConfig::default()
        });
        let mut g = Actor::browser("192.0.2.66");
        g.ua =
            Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)".into());
        e.observe(&g.event(1, 1_000_000, Kind::Page, "/"));
        let c = e.get(&g.key).unwrap();
        assert_eq!(c.crawler, Crawler::SearchEngine);
        assert_eq!(c.level, None, "claiming is reported, not scored");
        let asked = e.take_to_verify();
        assert_eq!(asked, vec![(g.key.clone(), "192.0.2.66".parse().unwrap())]);
        e.verdict(&g.key, &Verdict::Verified("crawl-1.googlebot.com".into()));
        assert_eq!(e.get(&g.key).unwrap().level, None);
        e.verdict(
            &g.key,
            &Verdict::Unverified("192.0.2.66 is named x.example".into()),
        );
        let c = e.get(&g.key).unwrap();
        assert_eq!(c.level, Some(Level::Suspect));
        assert!(c.reason(SignalId::SearchEngineUnverified).is_some());
    }
}
