//! Across addresses: one actor behind many clients. Two things join clients into a cluster:
//! a token minted for one client and fetched by another (a hand-off), and many addresses that
//! share one fingerprint (agent and header shape) and each show a signal of their own. A
//! cluster is kept like a client (`Client` with a `k:` key): its counts and reasons are the
//! sums of its members', scored by the same signals, plus a score for its number of addresses.

use super::client::{Client, Reason};
use super::signals::fnv;
use super::Seen;

/// Most member keys and addresses a cluster lists (beyond, it still counts requests).
pub const MAX_MEMBERS: usize = 10_000;

/// The fingerprint clients are grouped by: the agent, whether the browser headers came, and
/// the order of the headers that tell HTTP libraries from browsers. Headers that differ
/// between a page and an image request of one browser are left out.
pub fn fingerprint(s: &Seen) -> u64 {
    const SHAPE: [&str; 6] = [
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "connection",
    ];
    // The shape headers joined by commas, built in one allocation.
    let mut order = String::with_capacity(s.header_order.len());
    for h in s.header_order.split(',').filter(|h| SHAPE.contains(h)) {
        if !order.is_empty() {
            order.push(',');
        }
        order.push_str(h);
    }
    fnv(&[
        s.user_agent.as_deref().unwrap_or("").as_bytes(),
        &[u8::from(s.sec_fetch), u8::from(s.accept_language)],
        order.as_bytes(),
    ])
}

/// Clients seen with one fingerprint that showed a signal, until they form a cluster.
#[derive(Debug, Default, Clone)]
pub struct FpGroup {
    pub members: Vec<(String, Option<String>)>,
    pub cluster: Option<String>,
}

impl FpGroup {
    /// Adds a client; returns whether the group now spans `min_addresses` addresses.
    pub fn add(&mut self, key: &str, address: Option<&str>, min_addresses: usize) -> bool {
        if !self.members.iter().any(|(k, _)| k == key) && self.members.len() < min_addresses * 4 {
            self.members
                .push((key.to_string(), address.map(str::to_string)));
        }
        let mut addresses: Vec<&str> = self
            .members
            .iter()
            .filter_map(|(_, a)| a.as_deref())
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        addresses.len() >= min_addresses
    }
}

/// The key of a cluster founded by client `founder` (`c:…` becomes `k:…`).
pub fn cluster_key(founder: &str) -> String {
    format!("k:{}", founder.strip_prefix("c:").unwrap_or(founder))
}

fn add_reason(into: &mut Client, r: &Reason) {
    let mine = into.reason_mut(r.signal);
    mine.count += r.count;
    for id in &r.events {
        mine.push_event(*id);
    }
    if mine.detail.is_empty() || !r.detail.is_empty() {
        mine.detail = r.detail.clone();
    }
}

/// Adds `item` to a cluster's list unless it is there or the list is full.
pub fn note(list: &mut Vec<String>, item: &str) {
    if list.len() < MAX_MEMBERS && !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

/// Adds the counts, reasons and time span of `from` (a member, or a cluster) to `into`.
fn add_evidence(into: &mut Client, from: &Client) {
    into.counts.add(&from.counts);
    for r in &from.reasons {
        add_reason(into, r);
    }
    widen(into, from.first_ms, from.last_ms);
}

/// Adds a member's evidence so far to its cluster.
pub fn absorb(cluster: &mut Client, member: &Client) {
    note(&mut cluster.members, &member.key);
    if let Some(a) = &member.address {
        note(&mut cluster.addresses, a);
    }
    add_evidence(cluster, member);
    if cluster.agent.is_none() {
        cluster.agent = member.agent.clone();
        cluster.crawler = member.crawler;
        cluster.browser = member.browser;
        cluster.fingerprint = member.fingerprint;
    }
}

/// Moves everything of cluster `from` into `into` (two clusters found to be one actor).
pub fn merge(into: &mut Client, from: &Client) {
    for m in &from.members {
        note(&mut into.members, m);
    }
    for a in &from.addresses {
        note(&mut into.addresses, a);
    }
    add_evidence(into, from);
}

fn widen(c: &mut Client, first: i64, last: i64) {
    if c.first_ms == 0 || (first != 0 && first < c.first_ms) {
        c.first_ms = first;
    }
    c.last_ms = c.last_ms.max(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::signals::SignalId;

    #[test]
    fn groups_need_distinct_addresses() {
        let mut g = FpGroup::default();
        for i in 0..10 {
            // One address, many agents' keys: not a spread of addresses.
            assert!(!g.add(&format!("c:{i}"), Some("192.0.2.1"), 3));
        }
        let mut g = FpGroup::default();
        assert!(!g.add("c:a", Some("192.0.2.1"), 3));
        assert!(!g.add("c:a", Some("192.0.2.1"), 3));
        assert!(!g.add("c:b", Some("198.51.100.7"), 3));
        assert!(g.add("c:c", Some("203.0.113.9"), 3));
    }

    #[test]
    fn fingerprints_ignore_what_differs_between_page_and_image_requests() {
        let mut page = crate::detect::Seen {
            user_agent: Some("Mozilla/5.0 Firefox/133.0".into()),
            header_order: "host,user-agent,accept,accept-language,accept-encoding,connection,upgrade-insecure-requests,sec-fetch-user".into(),
            sec_fetch: true,
            accept_language: true,
            ..Default::default()
        };
        let mut image = page.clone();
        image.header_order =
            "host,user-agent,accept,accept-language,accept-encoding,connection,referer".into();
        assert_eq!(fingerprint(&page), fingerprint(&image));
        page.header_order = "host,user-agent,accept-encoding,accept,connection".into();
        assert_ne!(fingerprint(&page), fingerprint(&image));
    }

    #[test]
    fn absorbing_and_merging_add_counts_and_reasons() {
        let mut member = Client {
            key: "c:a".into(),
            address: Some("192.0.2.1".into()),
            first_ms: 10,
            last_ms: 20,
            ..Client::default()
        };
        member.counts.requests = 3;
        member.counts.canaries = 2;
        let r = member.reason_mut(SignalId::CanaryFetched);
        r.count = 2;
        r.events = vec![5, 7];
        let mut k = Client {
            key: cluster_key("c:a"),
            ..Client::default()
        };
        absorb(&mut k, &member);
        assert_eq!(k.members, vec!["c:a".to_string()]);
        assert_eq!(k.counts.requests, 3);
        let mut other = Client {
            key: "k:b".into(),
            members: vec!["c:b".into()],
            addresses: vec!["198.51.100.2".into()],
            first_ms: 5,
            last_ms: 30,
            ..Client::default()
        };
        other.reason_mut(SignalId::CanaryFetched).count = 1;
        other.reason_mut(SignalId::CanaryFetched).events = vec![9];
        merge(&mut k, &other);
        assert_eq!(k.members.len(), 2);
        assert_eq!(k.addresses.len(), 2);
        assert_eq!(k.reason(SignalId::CanaryFetched).unwrap().count, 3);
        assert_eq!(
            k.reason(SignalId::CanaryFetched).unwrap().events,
            vec![5, 7, 9]
        );
        assert_eq!((k.first_ms, k.last_ms), (5, 30));
    }
}
