//! Forwarding to the upstream site as a reverse proxy should: hop-by-hop headers removed both
//! ways, the client's `Host` kept, `X-Forwarded-*` and `Forwarded` added, bodies streamed both
//! ways (the request body capped at `serve.max_body_bytes`), and upstream failures answered
//! with 502/504 rather than a hang.
//!
//! Each worker thread keeps its own keep-alive connections to the upstream (`Proxy`), driven
//! by hyper's HTTP/1 client connection on that thread: a request takes the connection used
//! last, and its connection goes back when the response body has been read to its end (a
//! response cut short closes its connection instead). A request that a pooled connection
//! could not take (the upstream had just closed it) is sent again on a fresh one.

use super::canary::lock;
use super::client::Requester;
use super::Body;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Where proxy mode forwards to: checked when the config was read, never parsed again here.
pub use crate::config::UpstreamUrl as Upstream;

/// `Host` for a request that came without one.
fn host_header(upstream: &Upstream) -> HeaderValue {
    HeaderValue::from_str(upstream.authority().as_str()).expect("an authority is a valid value")
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
    /// Where to connect: the upstream authority with its port (80 when it has none).
    connect_to: (String, u16),
    idle: IdlePool,
    timeout: Duration,
    timer: super::coarse::Coarse,
}

/// One worker's idle connections, the most recently used last.
type IdlePool = Arc<Mutex<Vec<Idle>>>;

/// A connection to the upstream waiting for its next request.
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Connections idle longer than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per worker; more are closed when their response ends.
const MAX_IDLE: usize = 256;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
    http::header::TRANSFER_ENCODING,
];
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Most messages carry none, or only `Connection: keep-alive`: one pass to know which.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == name) {
            present[i] = true;
        }
    }
    if present[0] {
        // `Connection`, the first of them: the headers it names go too (its usual
        // "keep-alive" and "close" name none that is not already listed).
        let listed: Vec<HeaderName> = h
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|n| !n.eq_ignore_ascii_case("keep-alive") && !n.eq_ignore_ascii_case("close"))
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in listed {
            h.remove(n);
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        h.remove(name);
    }
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
    /// A proxy to `upstream` whose requests get their answer's head within `timeout`, timed
    /// by `timer` (the worker's).
    pub fn new(upstream: Upstream, timeout: Duration, timer: super::coarse::Coarse) -> Proxy {
        // An IPv6 literal comes bracketed in the authority, as the resolver does not take it.
        let host = upstream.authority().host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let connect_to = (
            host.to_string(),
            upstream.authority().port_u16().unwrap_or(80),
        );
        Proxy {
            upstream,
            connect_to,
            idle: Arc::new(Mutex::new(Vec::new())),
            timeout,
            timer,
        }
    }

    /// Idle connections to the upstream now.
    #[cfg(test)]
    fn idle_connections(&self) -> usize {
        lock(&self.idle).len()
    }

    /// Sends a request (origin-form URI, `Host` set) to the upstream within the timeout, on
    /// a pooled connection when one is free; the response body hands the connection back.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Pooled>, ProxyError> {
        self.timer
            .timeout(self.timeout, self.send_now(req))
            .await
            .map_err(|_| ProxyError::Timeout(self.timeout))?
    }

    async fn send_now(&self, mut req: Request<Body>) -> Result<Response<Pooled>, ProxyError> {
        loop {
            let (mut sender, pooled) = match self.pooled().await {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let body = Pooled {
                        inner: body,
                        back: Some((sender, self.idle.clone())),
                    };
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the pooled connection closed under it. Once more, afresh
                    // if the pool has nothing else.
                    Some(unsent) if pooled => req = unsent,
                    _ => return Err(client_error(e.into_error())),
                },
            }
        }
    }

    /// The connection used last that is still open, if any.
    async fn pooled(&self) -> Option<SendRequest<Body>> {
        loop {
            let Idle { mut sender, since } = lock(&self.idle).pop()?;
            if since.elapsed() > IDLE_TIMEOUT || sender.is_closed() {
                continue;
            }
            // Ready at once, unless the connection is still winding up its last response.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, ProxyError> {
        let (host, port) = (&self.connect_to.0, self.connect_to.1);
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| ProxyError::Unreachable(format!("connect to {host}:{port}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(client_error)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Forwards one request from `client`; forwarding headers that came from a trusted peer
    /// are extended, others replaced.
    pub async fn forward(
        &self,
        mut req: Request<Body>,
        client: &Requester,
    ) -> Result<Response<Pooled>, ProxyError> {
        let host = req.headers().get(HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        *req.uri_mut() = origin_form(req.uri())?;
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        strip_hop_by_hop(h);
        filter_accept_encoding(h);
        match &host {
            Some(host) => h.insert(HOST, host.clone()),
            None => h.insert(HOST, host_header(&self.upstream)),
        };
        let (ip, peer_trusted) = (&*client.ip_text, client.peer_trusted);
        let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) if peer_trusted => HeaderValue::from_str(&format!("{prev}, {ip}")).ok(),
            _ => HeaderValue::from_str(ip).ok(),
        };
        if let Some(v) = xff {
            h.insert(&X_FORWARDED_FOR, v);
        }
        if !peer_trusted || !h.contains_key(&X_FORWARDED_PROTO) {
            h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if let Some(host) = &host {
            h.insert(&X_FORWARDED_HOST, host.clone());
        }
        let mut forwarded = String::with_capacity(64);
        if let Some(prev) = h.get(http::header::FORWARDED).and_then(|v| v.to_str().ok()) {
            if peer_trusted {
                forwarded.push_str(prev);
                forwarded.push_str(", ");
            }
        }
        match client.ip.is_ipv6() {
            true => forwarded.extend(["for=\"[", ip, "]\""]),
            false => forwarded.extend(["for=", ip]),
        }
        forwarded.push_str(";proto=http");
        if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
            forwarded.extend([";host=\"", host, "\""]);
        }
        if let Ok(v) = HeaderValue::from_str(&forwarded) {
            h.insert(http::header::FORWARDED, v);
        }
        let (mut parts, body) = self.send(req).await?.into_parts();
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
        let mut req = Request::get(path).body(super::empty()).ok()?;
        let host = host.cloned().unwrap_or_else(|| host_header(&self.upstream));
        req.headers_mut().insert(HOST, host);
        let resp = self.send(req).await.ok()?;
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

/// A request's URI as sent to the upstream: path and query only.
fn origin_form(uri: &Uri) -> Result<Uri, ProxyError> {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).map_err(|e| ProxyError::Unreachable(e.to_string()))
}

/// An upstream response body; its connection goes back to the pool once the body has been
/// read to its end, and is closed if the body is dropped before.
pub struct Pooled {
    inner: Incoming,
    back: Option<(SendRequest<Body>, IdlePool)>,
}

impl Pooled {
    fn give_back(&mut self) {
        if let Some((sender, idle)) = self.back.take() {
            let mut idle = lock(&idle);
            if idle.len() < MAX_IDLE {
                idle.push(Idle {
                    sender,
                    since: Instant::now(),
                });
            }
        }
    }
}

impl http_body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.give_back();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // A body with nothing left (no body at all, or read up to its last byte without the
        // final poll) leaves its connection reusable.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

fn client_error(e: hyper::Error) -> ProxyError {
    if body_too_large(&e) {
        ProxyError::BodyTooLarge
    } else {
        ProxyError::Unreachable(error_chain(&e))
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

    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// A site on a free port answering `/N` with N bytes; counts the connections it accepted.
    /// `keep_alive: false` closes each connection after its response.
    async fn site(keep_alive: bool) -> (Upstream, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let n: usize = req.uri().path()[1..].parse().unwrap_or(0);
                        let body = http_body_util::Full::new(Bytes::from(vec![b'x'; n]));
                        Ok::<_, std::convert::Infallible>(Response::new(body))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (
            Upstream::parse(&format!("http://{addr}")).unwrap(),
            accepted,
        )
    }

    fn proxy(upstream: Upstream) -> Proxy {
        let timer = super::super::coarse::Coarse::start("test-timer").unwrap();
        Proxy::new(upstream, Duration::from_secs(5), timer)
    }

    #[tokio::test]
    async fn requests_one_after_another_share_one_upstream_connection() {
        let (upstream, accepted) = site(true).await;
        let p = proxy(upstream);
        for n in [10, 0, 70_000, 3] {
            let (status, body) = p.fetch(&format!("/{n}"), None, 1 << 20).await.unwrap();
            assert_eq!((status, body.len()), (200, n));
        }
        assert_eq!(accepted.load(SeqCst), 1);
        assert_eq!(p.idle_connections(), 1);
    }

    #[tokio::test]
    async fn an_ipv6_upstream_is_reached() {
        let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
            return; // no IPv6 loopback on this machine
        };
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                let body = http_body_util::Full::new(Bytes::from_static(b"six"));
                Ok::<_, std::convert::Infallible>(Response::new(body))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let p = proxy(Upstream::parse(&format!("http://[::1]:{port}")).unwrap());
        assert_eq!(p.fetch("/", None, 16).await, Some((200, b"six".to_vec())));
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_reused() {
        let (upstream, accepted) = site(false).await;
        let p = proxy(upstream);
        for _ in 0..4 {
            let (status, body) = p.fetch("/5", None, 1024).await.unwrap();
            assert_eq!((status, body.len()), (200, 5));
        }
        assert_eq!(accepted.load(SeqCst), 4);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (upstream, accepted) = site(true).await;
        let p = proxy(upstream);
        let req = |path: &str| {
            let mut r = Request::get(path).body(super::super::empty()).unwrap();
            r.headers_mut()
                .insert(HOST, HeaderValue::from_static("site"));
            r
        };
        let mut body = p.send(req("/2000000")).await.unwrap().into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
        drop(body);
        assert_eq!(
            p.idle_connections(),
            0,
            "a half-read connection is not pooled"
        );
        let whole = p.send(req("/7")).await.unwrap().into_body().collect().await;
        assert_eq!(whole.unwrap().to_bytes().len(), 7);
        assert_eq!(accepted.load(SeqCst), 2);
        assert_eq!(p.idle_connections(), 1);
    }

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

        // Every value of `Connection` counts; the other hop-by-hop headers go without it.
        h.append(CONNECTION, " Close ".parse().unwrap());
        h.append(CONNECTION, "x-other".parse().unwrap());
        h.insert("x-other", "1".parse().unwrap());
        h.insert(http::header::UPGRADE, "websocket".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);
        h.insert(http::header::TE, "trailers".parse().unwrap());
        h.insert(http::header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);
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
