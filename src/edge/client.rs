//! Who a request comes from: the client address (believing `Forwarded` / `X-Forwarded-For`
//! only from trusted proxies), the pseudonymous client key, and the request's headers as an
//! `Event`. No raw address leaves this module except inside the event for the recorder.

use crate::canary::Token;
use crate::record::event::bounded;
use crate::record::Event;
use hmac::{Hmac, Mac};
use http::request::Parts;
use http::HeaderMap;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// Peers whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct Trusted(Vec<IpNet>);

impl Trusted {
    /// Parses CIDRs or single addresses (validated by the config already).
    pub fn parse(list: &[String]) -> Trusted {
        Trusted(
            list.iter()
                .filter_map(|s| {
                    s.parse::<IpNet>()
                        .ok()
                        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
                })
                .collect(),
        )
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
    client: [u8; 32],
}

impl Keys {
    pub fn new(secret: &[u8; 32]) -> Keys {
        Keys {
            client: Sha256::new()
                .chain_update(secret)
                .chain_update(b"faceprobe client key v1")
                .finalize()
                .into(),
        }
    }

    /// The client key: exact address plus user agent, as a keyed pseudonym (`c:` + 24 hex
    /// digits), so that logs and listings can name a client without its address.
    pub fn client_key(&self, ip: IpAddr, user_agent: Option<&str>) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.client).expect("any key length");
        mac.update(ip.to_string().as_bytes());
        mac.update(&[0]);
        mac.update(user_agent.unwrap_or("").as_bytes());
        format!("c:{}", hex::encode(&mac.finalize().into_bytes()[..12]))
    }
}

/// The address prefix a client belongs to (/24 for IPv4, /56 for IPv6), as text.
pub fn prefix(ip: IpAddr) -> String {
    let len = if ip.is_ipv4() { 24 } else { 56 };
    IpNet::new(ip, len)
        .map(|n| n.trunc().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| bounded(&String::from_utf8_lossy(v.as_bytes())))
}

/// The event of a request, before its response is known.
pub fn event_of(parts: &Parts, ip: IpAddr, client_key: String, ts_ms: i64) -> Event {
    let h = &parts.headers;
    let mut order = String::new();
    for name in h.keys() {
        if order.len() + name.as_str().len() + 1 > crate::record::event::MAX_FIELD_BYTES {
            break;
        }
        if !order.is_empty() {
            order.push(',');
        }
        order.push_str(name.as_str());
    }
    let host = header(h, "host").or_else(|| parts.uri.authority().map(|a| bounded(a.as_str())));
    Event {
        ts_ms,
        ip: Some(ip),
        client_key,
        method: bounded(parts.method.as_str()),
        host,
        path: bounded(parts.uri.path()),
        query: parts.uri.query().map(bounded),
        user_agent: header(h, "user-agent"),
        referer: header(h, "referer"),
        accept: header(h, "accept"),
        accept_language: header(h, "accept-language"),
        accept_encoding: header(h, "accept-encoding"),
        sec_fetch_site: header(h, "sec-fetch-site"),
        sec_fetch_mode: header(h, "sec-fetch-mode"),
        sec_fetch_dest: header(h, "sec-fetch-dest"),
        sec_fetch_user: header(h, "sec-fetch-user"),
        cookie_sent: h.contains_key(http::header::COOKIE),
        header_order: order,
        ..Event::default()
    }
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
    fn forwarding_headers_are_ignored_from_untrusted_peers() {
        let t = Trusted::parse(&["127.0.0.1/32".into()]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(t.client_ip(peer, &h), peer);
    }

    #[test]
    fn nearest_untrusted_hop_is_the_client() {
        let t = Trusted::parse(&["127.0.0.1/32".into(), "10.0.0.0/8".into()]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.1.1.1")]);
        let got = t.client_ip("127.0.0.1".parse().unwrap(), &h);
        assert_eq!(got, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_header_wins_and_handles_ipv6_with_port() {
        let t = Trusted::parse(&["::1/128".into()]);
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
    fn prefixes_group_neighbours() {
        assert_eq!(prefix("192.0.2.44".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            prefix("2001:db8:1:2ff::1".parse().unwrap()),
            "2001:db8:1:200::/56"
        );
    }
}
