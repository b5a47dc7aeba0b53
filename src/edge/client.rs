//! Who a request comes from: the client address (believing `Forwarded` / `X-Forwarded-For`
//! only from trusted proxies), the pseudonymous client key, and the request's headers as an
//! `Event`. No raw address leaves this module except inside the event for the recorder.

use crate::canary::Token;
use crate::record::event::bounded;
use crate::record::Event;
use hmac::{Hmac, Mac};
use http::header::{HeaderName, HeaderValue, USER_AGENT};
use http::request::Parts;
use http::HeaderMap;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Peers whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct Trusted(Vec<IpNet>);

impl Trusted {
    /// The blocks of `serve.trusted_proxies` (a single address is its own block).
    pub fn new(blocks: Vec<IpNet>) -> Trusted {
        Trusted(blocks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address: the peer, unless the peer is a trusted proxy; then the nearest
    /// untrusted address of the forwarding chain (`Forwarded` first, else `X-Forwarded-For`).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut chain = forwarded_for(headers);
        if chain.is_empty() {
            chain = x_forwarded_for(headers);
        }
        let mut client = peer;
        for ip in chain.into_iter().rev() {
            client = canonical(ip);
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as plain IPv4, so one client has one address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for value in headers.get_all(http::header::FORWARDED) {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            for pair in element.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("for") {
                    if let Some(ip) = parse_node(v.trim().trim_matches('"')) {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| parse_node(s.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80` or `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, _port) = s.rsplit_once(':')?;
    host.parse().ok()
}

/// Keys derived from the deployment secret for the client pseudonyms.
#[derive(Clone)]
pub struct Keys {
    /// HMAC-SHA256 keyed once; each key starts from a copy.
    client: Hmac<Sha256>,
}

impl Keys {
    pub fn new(secret: &[u8; 32]) -> Keys {
        let key: [u8; 32] = Sha256::new()
            .chain_update(secret)
            .chain_update(b"faceprobe client key v1")
            .finalize()
            .into();
        Keys {
            client: Hmac::<Sha256>::new_from_slice(&key).expect("any key length"),
        }
    }

    /// The client key: exact address plus user agent, as a keyed pseudonym (`c:` + 24 hex
    /// digits), so that logs and listings can name a client without its address.
    pub fn client_key(&self, ip: IpAddr, user_agent: Option<&str>) -> String {
        let mut mac = self.client.clone();
        mac.update(ip.to_string().as_bytes());
        mac.update(&[0]);
        mac.update(user_agent.unwrap_or("").as_bytes());
        format!("c:{}", hex::encode(&mac.finalize().into_bytes()[..12]))
    }
}

pub use crate::record::privacy::prefix;

/// Who is on one connection. The client address, its key and its text are worked out for the
/// first request and reused while they stay the same: a keep-alive connection usually sends
/// one user agent throughout, and only behind a trusted proxy can the address change.
pub struct Visitor {
    /// The peer's address (IPv4-mapped IPv6 as IPv4).
    peer: IpAddr,
    /// Whether the peer's forwarding headers are believed.
    peer_trusted: bool,
    last: Mutex<Option<(Requester, Option<HeaderValue>)>>,
}

/// The client of one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Requester {
    pub ip: IpAddr,
    /// `ip` as text, for the forwarding headers.
    pub ip_text: Arc<str>,
    /// The pseudonymous key of address and user agent (`Keys::client_key`).
    pub key: String,
    /// Whether the request came through a trusted proxy (its forwarding headers believed).
    pub peer_trusted: bool,
}

impl Visitor {
    pub fn new(peer: IpAddr, trusted: &Trusted) -> Visitor {
        let peer = canonical(peer);
        Visitor {
            peer,
            peer_trusted: trusted.contains(peer),
            last: Mutex::new(None),
        }
    }

    /// The client of a request on this connection.
    pub fn client(&self, trusted: &Trusted, keys: &Keys, headers: &HeaderMap) -> Requester {
        let ip = match self.peer_trusted {
            true => trusted.client_ip(self.peer, headers),
            false => self.peer,
        };
        let ua = headers.get(USER_AGENT);
        let mut last = super::canary::lock(&self.last);
        if let Some((known, known_ua)) = last.as_ref() {
            if known.ip == ip && known_ua.as_ref() == ua {
                return known.clone();
            }
        }
        let client = Requester {
            ip,
            ip_text: ip.to_string().into(),
            key: keys.client_key(ip, ua.and_then(|v| v.to_str().ok())),
            peer_trusted: self.peer_trusted,
        };
        *last = Some((client.clone(), ua.cloned()));
        client
    }
}

fn text_of(value: &HeaderValue) -> String {
    bounded(&String::from_utf8_lossy(value.as_bytes()))
}

/// The event of a request, before its response is known. The headers are read in one pass
/// (their order, and the first value of each one recorded), not looked up one by one.
pub fn event_of(parts: &Parts, client: &Requester, ts_ms: i64) -> Event {
    use http::header::{ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, COOKIE, HOST, REFERER};
    let mut e = Event {
        ts_ms,
        ip: Some(client.ip),
        client_key: client.key.clone(),
        method: bounded(parts.method.as_str()),
        path: bounded(parts.uri.path()),
        query: parts.uri.query().map(bounded),
        header_order: String::with_capacity(128),
        ..Event::default()
    };
    let mut order_full = false;
    let mut previous: Option<&HeaderName> = None;
    for (name, value) in &parts.headers {
        // A header sent more than once comes once per value, one after the other.
        if previous == Some(name) {
            continue;
        }
        previous = Some(name);
        let order = &mut e.header_order;
        order_full = order_full
            || order.len() + name.as_str().len() + 1 > crate::record::event::MAX_FIELD_BYTES;
        if !order_full {
            if !order.is_empty() {
                order.push(',');
            }
            order.push_str(name.as_str());
        }
        let slot = if name == USER_AGENT {
            &mut e.user_agent
        } else if name == ACCEPT {
            &mut e.accept
        } else if name == ACCEPT_ENCODING {
            &mut e.accept_encoding
        } else if name == ACCEPT_LANGUAGE {
            &mut e.accept_language
        } else if name == HOST {
            &mut e.host
        } else if name == REFERER {
            &mut e.referer
        } else if name == COOKIE {
            e.cookie_sent = true;
            continue;
        } else {
            match name.as_str().strip_prefix("sec-fetch-") {
                Some("site") => &mut e.sec_fetch_site,
                Some("mode") => &mut e.sec_fetch_mode,
                Some("dest") => &mut e.sec_fetch_dest,
                Some("user") => &mut e.sec_fetch_user,
                _ => continue,
            }
        };
        *slot = Some(text_of(value));
    }
    if e.host.is_none() {
        e.host = parts.uri.authority().map(|a| bounded(a.as_str()));
    }
    e
}

/// The token in a faceprobe path (`/_fp/c/{token}.jpg`, `/_fp/g/{token}`), if well-formed.
pub fn token_in(path_tail: &str) -> Option<Token> {
    path_tail
        .strip_suffix(".jpg")
        .unwrap_or(path_tail)
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HOST as HOST_HEADER;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn an_event_records_the_first_value_of_each_header_and_their_order() {
        let mut req = http::Request::builder()
            .uri("http://fallback.example/a/b?q=1")
            .body(())
            .unwrap();
        *req.headers_mut() = headers(&[
            ("user-agent", "Mozilla/5.0"),
            ("accept", "text/html"),
            ("accept", "image/*"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
            ("sec-fetch-other", "x"),
            ("cookie", "a=1"),
            ("accept-language", "fr-FR"),
            ("referer", "https://example.org/"),
        ]);
        let (parts, ()) = req.into_parts();
        let client = Requester {
            ip: "192.0.2.1".parse().unwrap(),
            ip_text: "192.0.2.1".into(),
            key: "c:k".into(),
            peer_trusted: false,
        };
        let e = event_of(&parts, &client, 7);
        assert_eq!(
            e.header_order,
            "user-agent,accept,sec-fetch-mode,sec-fetch-dest,sec-fetch-other,cookie,\
             accept-language,referer"
        );
        assert_eq!(e.user_agent.as_deref(), Some("Mozilla/5.0"));
        assert_eq!(e.accept.as_deref(), Some("text/html"));
        assert_eq!(e.sec_fetch_mode.as_deref(), Some("navigate"));
        assert_eq!(e.sec_fetch_dest.as_deref(), Some("document"));
        assert_eq!((e.sec_fetch_site, e.sec_fetch_user), (None, None));
        assert_eq!(e.accept_language.as_deref(), Some("fr-FR"));
        assert_eq!(e.referer.as_deref(), Some("https://example.org/"));
        assert_eq!(e.accept_encoding, None);
        assert!(e.cookie_sent);
        // No Host header: the request target's authority stands in.
        assert_eq!(e.host.as_deref(), Some("fallback.example"));
        assert_eq!((e.path.as_str(), e.query.as_deref()), ("/a/b", Some("q=1")));
        assert_eq!((e.client_key.as_str(), e.ts_ms), ("c:k", 7));

        let mut long = HeaderMap::new();
        for i in 0..200 {
            long.append(
                HeaderName::from_bytes(format!("x-header-{i:03}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        long.insert(HOST_HEADER, HeaderValue::from_static("site.example"));
        let mut parts = parts;
        parts.headers = long;
        let e = event_of(&parts, &client, 7);
        assert!(e.header_order.len() <= crate::record::event::MAX_FIELD_BYTES);
        // 78 names of 12 bytes and their commas fill 1,013 of the 1,024 bytes.
        assert!(
            e.header_order.ends_with(",x-header-077"),
            "{}",
            e.header_order
        );
        assert_eq!(e.host.as_deref(), Some("site.example"));
    }

    #[test]
    fn forwarding_headers_are_ignored_from_untrusted_peers() {
        let t = Trusted::new(vec!["127.0.0.1/32".parse().unwrap()]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(t.client_ip(peer, &h), peer);
    }

    #[test]
    fn nearest_untrusted_hop_is_the_client() {
        let t = Trusted::new(vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.1.1.1")]);
        let got = t.client_ip("127.0.0.1".parse().unwrap(), &h);
        assert_eq!(got, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_header_wins_and_handles_ipv6_with_port() {
        let t = Trusted::new(vec!["::1/128".parse().unwrap()]);
        let h = headers(&[
            ("forwarded", "for=\"[2001:db8::7]:4711\";proto=http"),
            ("x-forwarded-for", "192.0.2.1"),
        ]);
        let got = t.client_ip("::1".parse().unwrap(), &h);
        assert_eq!(got, "2001:db8::7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn client_key_hides_the_address_and_separates_agents() {
        let k = Keys::new(&[3; 32]);
        let ip: IpAddr = "192.0.2.44".parse().unwrap();
        let a = k.client_key(ip, Some("curl/8"));
        assert_eq!(a, k.client_key(ip, Some("curl/8")));
        assert_ne!(a, k.client_key(ip, Some("Mozilla/5.0")));
        assert!(!a.contains("192"));
    }

    #[test]
    fn a_connection_reuses_its_client_until_agent_or_forwarded_address_changes() {
        let keys = Keys::new(&[5; 32]);
        let trusted = Trusted::new(vec!["127.0.0.1/32".parse().unwrap()]);
        let expect = |ip: &str, ua: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            (ip, ip.to_string(), keys.client_key(ip, Some(ua)))
        };
        let got = |v: &Visitor, h: &HeaderMap| {
            let c = v.client(&trusted, &keys, h);
            (c.ip, c.ip_text.to_string(), c.key)
        };
        // An untrusted peer: its own address, whatever it claims; the key follows the agent.
        let direct = Visitor::new("::ffff:198.51.100.7".parse().unwrap(), &trusted);
        let curl = headers(&[("user-agent", "curl/8"), ("x-forwarded-for", "203.0.113.9")]);
        let other = headers(&[("user-agent", "Mozilla/5.0")]);
        assert_eq!(got(&direct, &curl), expect("198.51.100.7", "curl/8"));
        assert_eq!(got(&direct, &curl), expect("198.51.100.7", "curl/8"));
        assert_eq!(got(&direct, &other), expect("198.51.100.7", "Mozilla/5.0"));
        assert_eq!(got(&direct, &curl), expect("198.51.100.7", "curl/8"));
        // Behind a trusted proxy each request names its client.
        let proxied = Visitor::new("127.0.0.1".parse().unwrap(), &trusted);
        assert!(proxied.peer_trusted && !direct.peer_trusted);
        for ip in ["203.0.113.9", "203.0.113.10", "203.0.113.9"] {
            let h = headers(&[("user-agent", "curl/8"), ("x-forwarded-for", ip)]);
            assert_eq!(got(&proxied, &h), expect(ip, "curl/8"));
        }
    }

    #[test]
    fn prefixes_group_neighbours() {
        assert_eq!(prefix("192.0.2.44".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            prefix("2001:db8:1:2ff::1".parse().unwrap()),
            "2001:db8:1:200::/56"
        );
    }
}
