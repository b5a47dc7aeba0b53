//! HTTP from one source address of 127.0.0.0/8, and what a client reads in a page. Every
//! request goes to the harness's own server on loopback, carries exactly the headers its caller
//! lists (in that order, after `Host`), and is logged for the report. No X-Forwarded-For, ever:
//! the server believes it from loopback peers, and the peer address must be the client.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest one request (head and body) may take, whatever the server does.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest body read; the demo site's largest answer is a few tens of KB.
const MAX_BODY: usize = 8 << 20;

/// One request as the generator sent it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Wall-clock time (ms since the Unix epoch) just before the request was sent: the server
    /// stamps its events with the same clock.
    pub at_ms: i64,
    pub addr: Ipv4Addr,
    pub path: String,
    /// The response status; `None` when no response came (connection error, timeout).
    pub status: Option<u16>,
}

/// The requests of one actor (a person's session, a crawler, a harvester), in order sent.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Sent>>>);

impl Log {
    fn push(&self, s: Sent) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    pub fn take(&self) -> Vec<Sent> {
        let mut v = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        v.sort_by_key(|s| s.at_ms);
        v
    }
}

/// A response, its body decoded from any Content-Encoding.
pub struct Got {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl Got {
    pub fn is_html(&self) -> bool {
        self.status == 200 && self.content_type.starts_with("text/html")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An HTTP/1.1 client whose connections all leave from `addr`, with keep-alive like a browser's
/// (idle connections are dropped before the server's own idle timeout of 10 s closes them).
#[derive(Clone)]
pub struct Net {
    /// `127.0.0.1:PORT` of the server, also the `Host` header.
    origin: Arc<str>,
    pub addr: Ipv4Addr,
    client: Client<HttpConnector, Empty<Bytes>>,
    log: Log,
}

impl Net {
    pub fn new(origin: &Arc<str>, addr: Ipv4Addr, log: &Log) -> Net {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(IpAddr::V4(addr)));
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(6)
            .http1_title_case_headers(true)
            .build(connector);
        Net {
            origin: origin.clone(),
            addr,
            client,
            log: log.clone(),
        }
    }

    /// `http://127.0.0.1:PORT{path}`, as a Referer names a page.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.origin, path)
    }

    /// GET `path` with `Host` and then `headers`, in that order. Logged whatever happens.
    pub async fn get(&self, path: &str, headers: &[(&'static str, String)]) -> Result<Got, String> {
        let at_ms = now_ms();
        let result = self.fetch(path, headers).await;
        self.log.push(Sent {
            at_ms,
            addr: self.addr,
            path: path.to_string(),
            status: result.as_ref().ok().map(|g| g.status),
        });
        result
    }

    async fn fetch(&self, path: &str, headers: &[(&'static str, String)]) -> Result<Got, String> {
        let mut req = http::Request::get(format!("http://{}{}", self.origin, path))
            .header("host", &*self.origin);
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        let req = req.body(Empty::new()).map_err(|e| format!("{path}: {e}"))?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{path}: {e}"))?;
            let header = |name| {
                resp.headers()
                    .get(name)
                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
                    .unwrap_or("")
                    .to_ascii_lowercase()
            };
            let status = resp.status().as_u16();
            let content_type = header(http::header::CONTENT_TYPE);
            let coding = header(http::header::CONTENT_ENCODING);
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{path}: body: {e}"))?
                .to_bytes();
            let body = decode(&coding, body).map_err(|e| format!("{path}: {coding}: {e}"))?;
            Ok(Got {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| format!("{path}: no answer within {REQUEST_TIMEOUT:?}"))?
    }
}

fn decode(coding: &str, body: Bytes) -> std::io::Result<Bytes> {
    let mut out = Vec::new();
    match coding.trim() {
        "" | "identity" => return Ok(body),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out)?,
        "deflate" => flate2::read::ZlibDecoder::new(&body[..]).read_to_end(&mut out)?,
        "br" => brotli::Decompressor::new(&body[..], 4096).read_to_end(&mut out)?,
        other => {
            return Err(std::io::Error::other(format!(
                "content coding {other:?} not understood"
            )))
        }
    };
    Ok(Bytes::from(out))
}

/// What a client can take from a page: same-origin paths only, each marked with whether a
/// person can see it (inside an element with `hidden` or `display:none`: no).
#[derive(Debug, Default)]
pub struct Page {
    pub styles: Vec<String>,
    pub scripts: Vec<String>,
    pub images: Vec<Found>,
    pub links: Vec<Found>,
}

#[derive(Debug, Clone)]
pub struct Found {
    pub path: String,
    pub hidden: bool,
    /// `rel="nofollow"` on a link.
    pub nofollow: bool,
}

impl Page {
    /// Parses `html` served at `page_path` with an HTML5 parser (scraper/html5ever).
    pub fn parse(html: &str, page_path: &str) -> Page {
        let doc = scraper::Html::parse_document(html);
        let select = |css: &str| {
            scraper::Selector::parse(css).unwrap_or_else(|e| panic!("selector {css}: {e}"))
        };
        let resolve = |v: Option<&str>| v.and_then(|v| same_origin_path(page_path, v));
        let mut page = Page::default();
        for e in doc.select(&select("link[href]")) {
            let stylesheet = e.value().attr("rel").is_some_and(|r| {
                r.split_ascii_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("stylesheet"))
            });
            if let Some(p) = resolve(e.value().attr("href")).filter(|_| stylesheet) {
                page.styles.push(p);
            }
        }
        for e in doc.select(&select("script[src]")) {
            if let Some(p) = resolve(e.value().attr("src")) {
                page.scripts.push(p);
            }
        }
        for (css, attr, out) in [
            ("img[src]", "src", &mut page.images),
            ("a[href]", "href", &mut page.links),
        ] {
            for e in doc.select(&select(css)) {
                let Some(path) = resolve(e.value().attr(attr)) else {
                    continue;
                };
                let nofollow = e.value().attr("rel").is_some_and(|r| {
                    r.split_ascii_whitespace()
                        .any(|t| t.eq_ignore_ascii_case("nofollow"))
                });
                out.push(Found {
                    path,
                    hidden: hidden(&e),
                    nofollow,
                });
            }
        }
        page
    }
}

/// Whether the element or one of its ancestors is never rendered.
fn hidden(e: &scraper::ElementRef) -> bool {
    std::iter::once(**e)
        .chain(e.ancestors())
        .filter_map(|n| n.value().as_element())
        .any(|el| {
            el.attr("hidden").is_some()
                || el.attr("style").is_some_and(|s| {
                    let s: String = s
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .collect::<String>()
                        .to_ascii_lowercase();
                    s.contains("display:none") || s.contains("visibility:hidden")
                })
        })
}

/// The path (with query) a link on `page_path` leads to, when it stays on the harness's own
/// origin (any `http://127.0.0.1:…` is taken as it); `None` for other origins and schemes.
pub fn same_origin_path(page_path: &str, link: &str) -> Option<String> {
    let link = link.trim().split('#').next().unwrap_or("");
    if link.is_empty() {
        return None;
    }
    if let Some(rest) = link.strip_prefix("http://127.0.0.1:") {
        let slash = rest.find('/').unwrap_or(rest.len());
        let path = &rest[slash..];
        return Some(if path.is_empty() {
            "/".into()
        } else {
            path.into()
        });
    }
    if link.starts_with("//") || link.contains(':') && !link.starts_with('/') {
        return None;
    }
    if link.starts_with('/') {
        return Some(link.to_string());
    }
    let path = page_path.split('?').next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{dir}{link}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_block_is_hidden_and_the_page_is_not() {
        let html = "<html><head><link rel=\"stylesheet\" href=\"/s.css\"><script src=\"/s.js\"></script></head>\
            <body><a href=\"/gallery/1\">G</a><img src=\"/static/img/1.jpg\">\
            <div hidden style=\"display:none\"><img loading=\"lazy\" src=\"/_fp/c/T.jpg\">\
            <a href=\"/_fp/g/T\" rel=\"nofollow\">x</a></div></body></html>";
        let p = Page::parse(html, "/");
        assert_eq!(p.styles, ["/s.css"]);
        assert_eq!(p.scripts, ["/s.js"]);
        let imgs: Vec<_> = p
            .images
            .iter()
            .map(|f| (f.path.as_str(), f.hidden))
            .collect();
        assert_eq!(imgs, [("/static/img/1.jpg", false), ("/_fp/c/T.jpg", true)]);
        let links: Vec<_> = p
            .links
            .iter()
            .map(|f| (f.path.as_str(), f.hidden, f.nofollow))
            .collect();
        assert_eq!(
            links,
            [("/gallery/1", false, false), ("/_fp/g/T", true, true)]
        );
    }

    #[test]
    fn links_resolve_on_the_same_origin_only() {
        assert_eq!(same_origin_path("/a/b", "c").as_deref(), Some("/a/c"));
        assert_eq!(same_origin_path("/a/b", "/x#f").as_deref(), Some("/x"));
        assert_eq!(
            same_origin_path("/", "http://127.0.0.1:8080").as_deref(),
            Some("/")
        );
        assert_eq!(same_origin_path("/", "https://example.org/"), None);
        assert_eq!(same_origin_path("/", "mailto:a@b"), None);
    }
}
