//! Forwarding to the upstream site as a reverse proxy should: hop-by-hop headers removed both
//! ways, the client's `Host` kept, `X-Forwarded-*` and `Forwarded` added, bodies streamed both
//! ways (the request body capped at `serve.max_body_bytes`), and upstream failures answered
//! with 502/504 rather than a hang.

use super::Body;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::IpAddr;
use std::time::Duration;

/// Where proxy mode forwards to.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub authority: Authority,
}

impl Upstream {
    /// `http://host[:port]` (a path is not allowed: faceprobe forwards paths as they come).
    pub fn parse(s: &str) -> Result<Upstream, String> {
        let uri: Uri = s.parse().map_err(|e| format!("{e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(
                "only http:// upstreams are supported (faceprobe runs beside the site; \
                        terminate TLS in front of faceprobe)"
                    .into(),
            );
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err("give the upstream without a path".into());
        }
        let authority = uri.authority().cloned().ok_or("no host")?;
        Ok(Upstream { authority })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("request body larger than serve.max_body_bytes")]
    BodyTooLarge,
}

pub struct Proxy {
    upstream: Upstream,
    client: Client<HttpConnector, Body>,
    timeout: Duration,
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(http::header::TRANSFER_ENCODING);
}

/// Keeps only the content codings the edge can rewrite, so a page always gets its canary.
fn filter_accept_encoding(h: &mut HeaderMap) {
    let Some(v) = h.get(http::header::ACCEPT_ENCODING) else {
        return;
    };
    let kept: Vec<&str> = v
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| {
            let name = c
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                name.as_str(),
                "gzip" | "x-gzip" | "deflate" | "br" | "identity" | "*"
            )
        })
        .collect();
    if kept.is_empty() {
        h.remove(http::header::ACCEPT_ENCODING);
    } else if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        h.insert(http::header::ACCEPT_ENCODING, v);
    }
}

impl Proxy {
    pub fn new(upstream: Upstream, timeout: Duration) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Proxy {
            upstream,
            client,
            timeout,
        }
    }

    /// Forwards one request. `peer_trusted`: whether the peer's own forwarding headers are
    /// believed (and extended) or replaced.
    pub async fn forward(
        &self,
        mut req: Request<Body>,
        client_ip: IpAddr,
        peer_trusted: bool,
    ) -> Result<Response<hyper::body::Incoming>, ProxyError> {
        let host = req.headers().get(HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.upstream.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| ProxyError::Unreachable(e.to_string()))?;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        strip_hop_by_hop(h);
        filter_accept_encoding(h);
        if let Some(host) = &host {
            h.insert(HOST, host.clone());
        }
        let ip = client_ip.to_string();
        let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) if peer_trusted => format!("{prev}, {ip}"),
            _ => ip.clone(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            h.insert("x-forwarded-for", v);
        }
        if !peer_trusted || !h.contains_key("x-forwarded-proto") {
            h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        }
        if let Some(host) = &host {
            h.insert("x-forwarded-host", host.clone());
        }
        let node = if client_ip.is_ipv6() {
            format!("\"[{ip}]\"")
        } else {
            ip
        };
        let mut forwarded = format!("for={node};proto=http");
        if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
            forwarded.push_str(&format!(";host=\"{host}\""));
        }
        let forwarded = match h.get(http::header::FORWARDED).and_then(|v| v.to_str().ok()) {
            Some(prev) if peer_trusted => format!("{prev}, {forwarded}"),
            _ => forwarded,
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded) {
            h.insert(http::header::FORWARDED, v);
        }
        let response = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| ProxyError::Timeout(self.timeout))?
            .map_err(|e| {
                if body_too_large(&e) {
                    ProxyError::BodyTooLarge
                } else {
                    ProxyError::Unreachable(error_chain(&e))
                }
            })?;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body))
    }

    /// GETs a path of the upstream for faceprobe itself (robots.txt, tdmrep.json), with a
    /// cap on the body it reads.
    pub async fn fetch(
        &self,
        path: &str,
        host: Option<&HeaderValue>,
        cap: usize,
    ) -> Option<(u16, Vec<u8>)> {
        use http_body_util::BodyExt;
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.upstream.authority.clone())
            .path_and_query(path)
            .build()
            .ok()?;
        let mut req = Request::get(uri).body(super::empty()).ok()?;
        if let Some(host) = host {
            req.headers_mut().insert(HOST, host.clone());
        }
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .ok()?
            .ok()?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), cap);
        let body = tokio::time::timeout(self.timeout, limited.collect())
            .await
            .ok()?
            .ok()?
            .to_bytes();
        Some((status, body.to_vec()))
    }
}

/// Whether a client error came from the request body passing `serve.max_body_bytes`.
fn body_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_must_be_plain_http_without_path() {
        assert!(Upstream::parse("http://127.0.0.1:9000").is_ok());
        assert!(Upstream::parse("http://site.internal").is_ok());
        assert!(Upstream::parse("https://site").is_err());
        assert!(Upstream::parse("http://site/app").is_err());
        assert!(Upstream::parse("not a url").is_err());
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn accept_encoding_keeps_only_codings_the_rewriter_reads() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT_ENCODING,
            "zstd, br;q=1.0, gzip".parse().unwrap(),
        );
        filter_accept_encoding(&mut h);
        assert_eq!(h[http::header::ACCEPT_ENCODING], "br;q=1.0, gzip");
        h.insert(http::header::ACCEPT_ENCODING, "zstd".parse().unwrap());
        filter_accept_encoding(&mut h);
        assert!(!h.contains_key(http::header::ACCEPT_ENCODING));
    }
}
