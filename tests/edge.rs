//! End-to-end tests of `faceprobe serve`: the real binary on free ports of 127.0.0.1, a site
//! of the test's own behind it (proxy mode) or none (embed mode), HTTP/1.1 and HTTP/2 clients,
//! and the event store read back with SQLite.
//!
//! Every wait is bounded (client requests 20 s, polling `common::SERVE_TIMEOUT`); no test
//! asserts a duration.

mod common;

use bytes::Bytes;
use common::{http_agent, is_whole_jpeg, Env, Server};
use http::header::{HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest any one client request of these tests may take, whatever the server does.
const REQUEST_BOUND: Duration = Duration::from_secs(20);
/// Longest a raw socket waits for the server to close it (a bound, not a speed target).
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// The start of the block planted before `</body>`, up to the token.
const CANARY_START: &str =
    "<div hidden style=\"display:none\" aria-hidden=\"true\"><img loading=\"lazy\" src=\"/_fp/c/";

// ---- The upstream site: a hyper server in the test process that keeps what it was sent.

const PAGE: &str = "<!doctype html>\n<html><head><title>Upstream</title></head>\n<body>\n\
<h1>Upstream page</h1>\n<p>Some text.</p>\n</body>\n</html>\n";

const CSS: &[u8] = b"body { color: #123456; }\n/* a </body> in CSS is not HTML */\n";

/// The site's robots.txt: two groups.
const ROBOTS: &str =
    "# upstream rules\nUser-agent: GPTBot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n";

/// What a slow page answers, after `SLOW`.
const SLOW_BODY: &str = "slow answer, complete\n";
const SLOW: Duration = Duration::from_millis(1500);

/// Bytes that look like an image: every byte value, and an HTML end tag that must stay as it is.
fn photo() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..4096u32).map(|i| (i * 7 % 256) as u8));
    b.extend_from_slice(b"</body></html>");
    b.extend((0..=255u8).rev());
    b
}

/// The pieces `/streamed` sends, apart in time; `</body>` is split between two of them.
const STREAMED: [&str; 4] = [
    "<!doctype html>\n<html><head><title>Upstream</title></head>\n",
    "<body>\n<h1>Upstream page</h1>\n",
    "<p>Some text.</p>\n</bo",
    "dy>\n</html>\n",
];

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    /// The body, or why it could not be read in full.
    body: Result<Vec<u8>, String>,
}

type UpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    /// Starts the site on a free port, on a thread of its own; `robots`: whether it has a
    /// robots.txt (404 otherwise).
    fn start(robots: bool) -> Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let site_seen = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let seen = site_seen.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let seen = seen.clone();
                            async move { Ok::<_, Infallible>(answer(req, robots, &seen).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Upstream { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received for `path` so far.
    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

fn boxed(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).boxed_unsync()
}

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<UpBody> {
    let body: Bytes = body.into();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(boxed(body))
        .unwrap()
}

async fn answer(req: Request<Incoming>, robots: bool, seen: &Mutex<Vec<Seen>>) -> Response<UpBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .map_err(|e| e.to_string());
    let path = parts.uri.path().to_string();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let html = "text/html; charset=utf-8";
    match path.as_str() {
        "/page" => reply(200, html, PAGE),
        "/style.css" => reply(200, "text/css", CSS),
        "/photo.png" => reply(200, "image/png", photo()),
        "/gzip" => {
            let accepts_gzip = parts
                .headers
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("gzip"));
            if !accepts_gzip {
                return reply(200, html, PAGE);
            }
            let mut r = reply(200, html, gzip(PAGE.as_bytes()));
            r.headers_mut()
                .insert("content-encoding", HeaderValue::from_static("gzip"));
            r
        }
        "/streamed" => {
            let pieces = futures_util::stream::unfold(0usize, |i| async move {
                if i == STREAMED.len() {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                let frame = Frame::data(Bytes::from_static(STREAMED[i].as_bytes()));
                Some((Ok::<_, Infallible>(frame), i + 1))
            });
            // No Content-Length: hyper sends it chunked, piece by piece.
            Response::builder()
                .status(200)
                .header("content-type", html)
                .body(StreamBody::new(pieces).boxed_unsync())
                .unwrap()
        }
        // A page that declares more than it sends: half of it, then the connection closes
        // (the pause lets the head and that half go out first).
        "/cut-short" => half_page(Duration::from_millis(100)),
        // Half a page, then nothing for two minutes.
        "/stalls" => half_page(Duration::from_secs(120)),
        "/partial" => {
            // The first 40 bytes of the page, as asked by a Range request.
            let mut r = reply(206, html, &PAGE.as_bytes()[..40]);
            let range = format!("bytes 0-39/{}", PAGE.len());
            r.headers_mut()
                .insert("content-range", HeaderValue::from_str(&range).unwrap());
            r
        }
        "/slow" => {
            tokio::time::sleep(SLOW).await;
            reply(200, "text/plain", SLOW_BODY)
        }
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            reply(200, "text/plain", "too late\n")
        }
        "/robots.txt" if robots => reply(200, "text/plain", ROBOTS),
        "/robots.txt" => reply(404, "text/plain", "no robots here\n"),
        "/upload" => {
            let n = body.as_ref().map(|b| b.len()).unwrap_or(0);
            reply(200, "text/plain", format!("got {n} bytes\n"))
        }
        _ => {
            // Hop-by-hop headers of the upstream's own connection, which must not reach the client.
            let mut r = reply(200, "text/plain", "echo\n");
            let h = r.headers_mut();
            h.insert("connection", HeaderValue::from_static("x-up-secret"));
            h.insert("x-up-secret", HeaderValue::from_static("1"));
            r
        }
    }
}

/// The first half of `PAGE` under a `Content-Length` for all of it; the body ends (unfinished)
/// after `pause`.
fn half_page(pause: Duration) -> Response<UpBody> {
    let half = futures_util::stream::unfold(false, move |sent| async move {
        if sent {
            tokio::time::sleep(pause).await;
            return None;
        }
        let half = Bytes::from_static(&PAGE.as_bytes()[..PAGE.len() / 2]);
        Some((Ok::<_, Infallible>(Frame::data(half)), true))
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("content-length", PAGE.len())
        .body(StreamBody::new(half).boxed_unsync())
        .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("the body is not gzip ({e}): {data:?}"));
    out
}

// ---- Clients: hyper's own HTTP/1.1 and HTTP/2 connections, so every header is the test's.

/// A response read in full; the body as it came on the wire (no content decoding).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A GET of `path` with `Host: host`, as a builder for more headers.
fn get(host: &str, path: &str) -> http::request::Builder {
    Request::get(path).header("host", host)
}

fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

/// Sends one request on a new HTTP/1.1 connection and reads the whole response.
fn send<B>(addr: SocketAddr, req: Request<B>) -> Reply
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let what = format!("{} {}", req.method(), req.uri());
    runtime().block_on(async move {
        tokio::time::timeout(REQUEST_BOUND, async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes().to_vec();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: no complete answer within {REQUEST_BOUND:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
    })
}

/// Sends requests one after the other on one HTTP/2 connection (prior knowledge, cleartext).
fn send_h2(addr: SocketAddr, reqs: Vec<Request<Full<Bytes>>>) -> Vec<Reply> {
    runtime().block_on(async move {
        tokio::time::timeout(REQUEST_BOUND, async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await?;
            tokio::spawn(conn);
            let mut out = Vec::new();
            for req in reqs {
                let resp = sender.send_request(req).await?;
                assert_eq!(resp.version(), http::Version::HTTP_2);
                let (parts, body) = resp.into_parts();
                let body = body.collect().await?.to_bytes().to_vec();
                out.push(Reply {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                });
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(out)
        })
        .await
        .unwrap_or_else(|_| panic!("HTTP/2: no complete answers within {REQUEST_BOUND:?}"))
        .unwrap_or_else(|e| panic!("HTTP/2: {e}"))
    })
}

/// Writes `bytes` on a raw connection and reads until the server closes it; `None` when it was
/// still open after `CLOSE_BOUND`. A reset counts as closed. Returns what was read.
fn raw_until_closed(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).unwrap();
    // The server may refuse before it has read everything: a failed write is an answer too.
    let _ = s.write_all(bytes);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(got),
        }
        if start.elapsed() > CLOSE_BOUND {
            return None;
        }
    }
}

// ---- Reading what was served and stored.

/// Checks that `page` is `original` with exactly one canary block planted just before its
/// `</body>`, and returns the block's token.
fn planted_token(page: &str, original: &str) -> String {
    assert_eq!(
        page.matches(CANARY_START).count(),
        1,
        "one canary block expected in:\n{page}"
    );
    assert_eq!(
        page.matches("/_fp/c/").count(),
        1,
        "one canary image expected in:\n{page}"
    );
    let start = page.find(CANARY_START).unwrap();
    // A sealed token: 64 characters.
    let token: String = page[start + CANARY_START.len()..]
        .chars()
        .take(64)
        .collect();
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "token {token:?} is not base64url"
    );
    let rest = &page[start + CANARY_START.len() + 64..];
    assert!(
        rest.starts_with(".jpg\""),
        "the image URL is /_fp/c/{{TOKEN}}.jpg: {rest}"
    );
    let end = start + page[start..].find("</div>").expect("the block is closed") + "</div>".len();
    assert!(
        page[end..].starts_with("</body>"),
        "the block is right before </body>:\n{page}"
    );
    let block = &page[start..end];
    assert!(
        block.contains(&format!("href=\"/_fp/g/{token}\"")) && block.contains("rel=\"nofollow\""),
        "the block links its trap gallery, nofollow: {block}"
    );
    let without = format!("{}{}", &page[..start], &page[end..]);
    assert_eq!(
        without, original,
        "the page is unchanged apart from the block"
    );
    token
}

/// One row of `events`.
#[derive(Debug, Clone)]
struct Row {
    path: String,
    kind: String,
    status: i64,
    client_ip: Option<String>,
    robots_sha256: Option<Vec<u8>>,
}

fn events(env: &Env) -> Vec<Row> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT path, kind, status, client_ip, robots_sha256 FROM events ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            path: r.get(0)?,
            kind: r.get(1)?,
            status: r.get(2)?,
            client_ip: r.get(3)?,
            robots_sha256: r.get(4)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn events_for(env: &Env, path: &str) -> Vec<Row> {
    events(env).into_iter().filter(|e| e.path == path).collect()
}

/// Stops the server with SIGTERM (which flushes the recorder) and checks it exited 0.
fn stop(server: &mut Server) {
    let status = server.terminate();
    assert!(
        status.success(),
        "faceprobe serve exited with {status} after SIGTERM:\n{}",
        server.log_text()
    );
}

/// A server in proxy mode in front of `upstream`; forwarding headers of clients are not
/// believed (no trusted proxies) unless `more_serve` says otherwise.
fn proxy(env: &Env, upstream: &Upstream, more_serve: &str) -> Server {
    let addrs = env.configure_serve(
        &format!(
            "mode = \"proxy\"\nupstream = \"{}\"\n{}",
            upstream.url(),
            if more_serve.contains("trusted_proxies") {
                more_serve.to_string()
            } else {
                format!("trusted_proxies = []\n{more_serve}")
            }
        ),
        "",
    );
    env.serve(addrs)
}

fn admin_get(server: &Server, path: &str) -> (u16, String) {
    let mut r = http_agent()
        .get(&format!("http://{}{path}", server.addrs.admin))
        .call()
        .unwrap_or_else(|e| panic!("admin {path}: {e}"));
    let body = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), body)
}

/// The value of a metric line `name value` (name with its labels), if present.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

// ---- 1. Proxy mode

#[test]
fn proxy_forwards_client_host_and_forwarding_headers_without_hop_by_hop() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    let public = server.addrs.public;

    let r = send(
        public,
        get("www.example.test", "/echo?q=1")
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("x-forwarded-for", "203.0.113.99")
            .header("x-kept", "yes")
            .body(empty())
            .unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "echo\n");
    let direct = send(
        up.addr,
        get("www.example.test", "/echo").body(empty()).unwrap(),
    );
    assert_eq!(
        direct.header("x-up-secret"),
        Some("1"),
        "the upstream itself sends the header"
    );
    assert!(
        r.header("x-up-secret").is_none(),
        "a header the upstream named in Connection reached the client: {:?}",
        r.headers
    );

    let seen = up.seen("/echo");
    assert_eq!(seen.len(), 2, "{seen:?}");
    let h = &seen[0].headers;
    let value = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(value("host").as_deref(), Some("www.example.test"));
    // The client (not a trusted proxy) claimed an address: replaced, not extended.
    assert_eq!(value("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        value("forwarded").as_deref(),
        Some("for=127.0.0.1;proto=http;host=\"www.example.test\"")
    );
    assert_eq!(value("x-kept").as_deref(), Some("yes"));
    for hop in ["x-secret", "keep-alive"] {
        assert!(value(hop).is_none(), "{hop} reached the upstream: {h:?}");
    }
    // hyper's client may say keep-alive on its own connection, never the client's x-secret.
    assert!(
        !value("connection").unwrap_or_default().contains("x-secret"),
        "{h:?}"
    );
}

#[test]
fn proxy_passes_css_and_images_through_byte_identical() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    for (path, content_type, body) in [
        ("/style.css", "text/css", CSS.to_vec()),
        ("/photo.png", "image/png", photo()),
    ] {
        let r = send(
            server.addrs.public,
            get("site.test", path).body(empty()).unwrap(),
        );
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        assert!(r.body == body, "{path}: the body changed on its way");
    }
}

#[test]
fn proxy_plants_one_canary_per_html_page_view_each_with_its_own_token() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let r = send(
            server.addrs.public,
            get("site.test", "/page").body(empty()).unwrap(),
        );
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        tokens.push(planted_token(&r.text(), PAGE));
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "every page view gets its own token");
}

#[test]
fn a_planted_page_goes_out_with_its_length_and_a_page_cut_short_is_a_502() {
    let env = Env::new();
    let up = Upstream::start(true);
    let mut server = proxy(&env, &up, "");
    let r = send(
        server.addrs.public,
        get("site.test", "/page").body(empty()).unwrap(),
    );
    assert_eq!(r.status, 200);
    planted_token(&r.text(), PAGE);
    assert_eq!(r.header("transfer-encoding"), None, "not chunked");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str()),
        "the planted page's own length"
    );
    // The upstream breaks off mid-page: the visitor gets a clean 502, not half a page, and
    // no token is kept for a page never sent.
    let cut = send(
        server.addrs.public,
        get("site.test", "/cut-short").body(empty()).unwrap(),
    );
    assert_eq!(cut.status, 502, "{}", cut.text());
    assert!(!cut.text().contains("Upstream"), "{}", cut.text());
    stop(&mut server);
    let e = events_for(&env, "/cut-short");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].status, e[0].kind.as_str()), (502, "page"));
    let minted: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM tokens t JOIN events e ON e.id = t.minting_event \
             WHERE e.path = '/cut-short'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(minted, 0);
}

#[test]
fn a_page_that_stalls_mid_body_is_a_504_after_upstream_timeout() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "upstream_timeout_secs = 1");
    let began = Instant::now();
    let r = send(
        server.addrs.public,
        get("site.test", "/stalls").body(empty()).unwrap(),
    );
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(began.elapsed() >= Duration::from_secs(1));
}

#[test]
fn a_range_of_a_page_passes_through_untouched() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    let r = send(
        server.addrs.public,
        get("site.test", "/partial")
            .header("range", "bytes=0-39")
            .body(empty())
            .unwrap(),
    );
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], &PAGE.as_bytes()[..40], "no markup in a range");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-39/{}", PAGE.len()).as_str())
    );
}

#[test]
fn proxy_plants_the_canary_in_gzip_html_and_keeps_it_gzip() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    let r = send(
        server.addrs.public,
        get("site.test", "/gzip")
            .header("accept-encoding", "gzip")
            .body(empty())
            .unwrap(),
    );
    assert_eq!(r.status, 200);
    let seen = up.seen("/gzip");
    assert!(
        seen[0]
            .headers
            .get("accept-encoding")
            .is_some_and(|v| v.to_str().unwrap().contains("gzip")),
        "the upstream was asked for gzip: {:?}",
        seen[0].headers
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    planted_token(&gunzip(&r.body), PAGE);
}

#[test]
fn proxy_plants_one_canary_in_html_streamed_in_pieces() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    let direct = send(
        up.addr,
        get("site.test", "/streamed").body(empty()).unwrap(),
    );
    assert_eq!(
        direct.header("transfer-encoding"),
        Some("chunked"),
        "the upstream itself streams the page"
    );
    let r = send(
        server.addrs.public,
        get("site.test", "/streamed").body(empty()).unwrap(),
    );
    assert_eq!(r.status, 200);
    planted_token(&r.text(), &STREAMED.concat());
}

#[test]
fn canary_url_serves_a_marked_jpeg_that_match_traces_to_its_one_fetch() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    let page = send(
        server.addrs.public,
        get("site.test", "/page").body(empty()).unwrap(),
    );
    let token = planted_token(&page.text(), PAGE);
    let url = format!("/_fp/c/{token}.jpg");
    let r = send(
        server.addrs.public,
        get("site.test", &url)
            .header("user-agent", "harvester/1.0")
            .body(empty())
            .unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("x-robots-tag"), Some("noai, noimageai"));
    assert_eq!(r.header("tdm-reservation"), Some("1"));
    assert!(is_whole_jpeg(&r.body), "{} bytes", r.body.len());

    // The fetch is committed before the image is sent: `match` finds it with the server up.
    let file = env.path("found.jpg");
    std::fs::write(&file, &r.body).unwrap();
    let (lines, o) = env.match_json(&[&file]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = &lines[0]["matches"][0];
    assert_eq!(m["token"], token.as_str(), "{}", lines[0]);
    assert_eq!(m["how"], "xmp", "{m}");
    let fetches = m["fetches"].as_array().unwrap();
    assert_eq!(fetches.len(), 1, "{m}");
    assert_eq!(fetches[0]["path"], url.as_str());
    assert_eq!(fetches[0]["client_ip"], "127.0.0.1");
    assert_eq!(fetches[0]["user_agent"], "harvester/1.0");
}

// ---- 2. robots.txt in proxy mode

#[test]
fn robots_txt_gets_fp_disallowed_in_every_group_stored_once_and_each_fetch_recorded() {
    let env = Env::new();
    let up = Upstream::start(true);
    let mut server = proxy(&env, &up, "");
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let r = send(
            server.addrs.public,
            get("site.test", "/robots.txt").body(empty()).unwrap(),
        );
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        bodies.push(r.body);
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "same file each time"
    );
    let served = String::from_utf8(bodies[0].clone()).unwrap();
    let groups: Vec<&str> = served.split("\n\n").collect();
    assert_eq!(groups.len(), 2, "{served}");
    for g in &groups {
        assert_eq!(
            g.lines().filter(|l| *l == "Disallow: /_fp/").count(),
            1,
            "group without the rule:\n{g}"
        );
    }
    assert!(served.contains("User-agent: GPTBot\nDisallow: /_fp/\nDisallow: /\n"));
    assert!(served.contains("User-agent: *\nDisallow: /_fp/\nDisallow: /private/\n"));
    assert!(served.contains("# upstream rules"), "{served}");

    stop(&mut server);
    let db = env.db();
    let stored: Vec<(Vec<u8>, Vec<u8>)> = db
        .prepare("SELECT sha256, body FROM robots")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 1, "one version, stored once");
    assert_eq!(stored[0].1, bodies[0], "the bytes as served");
    assert_eq!(stored[0].0, sha256(&bodies[0]));
    let fetches = events_for(&env, "/robots.txt");
    assert_eq!(fetches.len(), 3, "{fetches:?}");
    for e in &fetches {
        assert_eq!(e.kind, "robots");
        assert_eq!(e.status, 200);
        assert_eq!(e.robots_sha256.as_deref(), Some(&stored[0].0[..]));
    }
}

#[test]
fn robots_txt_is_the_default_when_the_upstream_has_none() {
    let env = Env::new();
    let up = Upstream::start(false);
    let mut server = proxy(&env, &up, "");
    let r = send(
        server.addrs.public,
        get("site.test", "/robots.txt").body(empty()).unwrap(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "User-agent: *\nDisallow: /_fp/\n");
    assert_eq!(up.seen("/robots.txt").len(), 1, "the upstream was asked");
    stop(&mut server);
    let e = events_for(&env, "/robots.txt");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].robots_sha256, Some(sha256(&r.body)));
}

// ---- 3. Upstream failures

#[test]
fn upstream_down_is_502_and_recorded() {
    let env = Env::new();
    // A port that was free a moment ago: nothing listens there.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let addrs = env.configure_serve(
        &format!("mode = \"proxy\"\nupstream = \"{dead}\"\nupstream_timeout_secs = 5"),
        "",
    );
    let mut server = env.serve(addrs);
    let r = send(
        addrs.public,
        get("site.test", "/down").body(empty()).unwrap(),
    );
    assert_eq!(r.status, 502, "{}", r.text());
    stop(&mut server);
    let e = events_for(&env, "/down");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].status, 502);
}

#[test]
fn upstream_that_never_answers_is_504_after_upstream_timeout() {
    let env = Env::new();
    let up = Upstream::start(true);
    let mut server = proxy(&env, &up, "upstream_timeout_secs = 1");
    let r = send(
        server.addrs.public,
        get("site.test", "/hang").body(empty()).unwrap(),
    );
    assert_eq!(r.status, 504, "{}", r.text());
    stop(&mut server);
    let e = events_for(&env, "/hang");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].status, 504);
}

// ---- 4. Limits

#[test]
fn request_body_over_max_body_bytes_is_413() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "max_body_bytes = 1024");
    let post = |n: usize| {
        Request::post("/upload")
            .header("host", "site.test")
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(vec![b'a'; n])))
            .unwrap()
    };
    let small = send(server.addrs.public, post(512));
    assert_eq!(small.status, 200);
    assert_eq!(small.text(), "got 512 bytes\n");
    let big = send(server.addrs.public, post(4096));
    assert_eq!(big.status, 413, "{}", big.text());
    let forwarded: Vec<_> = up
        .seen("/upload")
        .into_iter()
        .filter(|s| s.method == "POST" && s.body.as_ref().map(Vec::len) != Ok(512))
        .collect();
    assert!(
        forwarded.is_empty(),
        "the oversized body was forwarded: {forwarded:?}"
    );
}

#[test]
fn chunked_request_body_over_max_body_bytes_is_413() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "max_body_bytes = 1024");
    // No Content-Length: the size shows only as the body streams in.
    let pieces = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'b'; 1024])))),
    );
    let r = send(
        server.addrs.public,
        Request::post("/upload")
            .header("host", "site.test")
            .body(StreamBody::new(pieces))
            .unwrap(),
    );
    assert_eq!(
        r.status,
        413,
        "{}\nserver log:\n{}",
        r.text(),
        server.log_text()
    );
    let complete: Vec<_> = up
        .seen("/upload")
        .into_iter()
        .filter(|s| s.body.as_ref().is_ok_and(|b| b.len() == 4096))
        .collect();
    assert!(complete.is_empty(), "the whole body was forwarded");
}

#[test]
fn slowloris_partial_request_head_is_closed_after_header_timeout() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "header_timeout_secs = 1");
    let got = raw_until_closed(
        server.addrs.public,
        b"GET /page HTTP/1.1\r\nHost: site.test\r\nUser-Agent: slow\r\n",
    );
    let got = got.unwrap_or_else(|| {
        panic!("a partial request head kept its connection open for {CLOSE_BOUND:?}")
    });
    assert!(
        !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "a partial head was answered"
    );
    assert!(up.seen("/page").is_empty(), "a partial head was forwarded");
}

#[test]
fn silent_connection_is_closed_after_header_timeout() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "header_timeout_secs = 1");
    // Connects and sends nothing at all: the cheapest way to hold a connection slot.
    let got = raw_until_closed(server.addrs.public, b"");
    assert!(
        got.is_some(),
        "a connection that sent nothing was still open after {CLOSE_BOUND:?}"
    );
}

#[test]
fn request_head_over_max_header_bytes_is_refused() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "max_header_bytes = 8192");
    let mut head = b"GET /page HTTP/1.1\r\nHost: site.test\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 16 * 1024));
    head.extend_from_slice(b"\r\n\r\n");
    let got = raw_until_closed(server.addrs.public, &head)
        .unwrap_or_else(|| panic!("an oversized head kept its connection for {CLOSE_BOUND:?}"));
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 431"),
        "expected 431 or a closed connection, got: {text}"
    );
    assert!(
        up.seen("/page").is_empty(),
        "an oversized head was forwarded"
    );
}

// ---- 5. HTTP/2 cleartext

#[test]
fn http2_prior_knowledge_is_proxied_with_the_canary_planted() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    let req = |path: &str| {
        Request::get(format!("http://h2.site.test{path}"))
            .body(empty())
            .unwrap()
    };
    let r = send_h2(
        server.addrs.public,
        vec![req("/page"), req("/style.css"), req("/page")],
    );
    assert_eq!(r[0].status, 200);
    let first = planted_token(&r[0].text(), PAGE);
    assert_eq!(r[1].status, 200);
    assert!(r[1].body == CSS);
    let second = planted_token(&r[2].text(), PAGE);
    assert_ne!(first, second);
    let seen = up.seen("/page");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers.get("host").unwrap(), "h2.site.test");

    let canary = send_h2(
        server.addrs.public,
        vec![req(&format!("/_fp/c/{first}.jpg"))],
    );
    assert_eq!(canary[0].status, 200);
    assert_eq!(canary[0].header("content-type"), Some("image/jpeg"));
    assert!(is_whole_jpeg(&canary[0].body));
}

// ---- 6. Embed mode

fn embed(env: &Env, trusted: &str) -> Server {
    let addrs = env.configure_serve(
        &format!("mode = \"embed\"\ntrusted_proxies = {trusted}"),
        "",
    );
    env.serve(addrs)
}

#[test]
fn embed_mode_answers_only_its_own_paths() {
    let env = Env::new();
    let server = embed(&env, "[\"127.0.0.1/32\"]");
    let public = server.addrs.public;
    let fetch = |path: &str| send(public, get("site.test", path).body(empty()).unwrap());
    for path in ["/", "/index.html", "/photo.png", "/_fp/", "/_fp/unknown"] {
        assert_eq!(fetch(path).status, 404, "{path}");
    }
    let robots = fetch("/robots.txt");
    assert_eq!(robots.status, 200);
    assert_eq!(robots.text(), "User-agent: *\nDisallow: /_fp/\n");
    let tdm = fetch("/.well-known/tdmrep.json");
    assert_eq!(tdm.status, 200);
    assert!(tdm.header("content-type").unwrap().contains("json"));
    let tdm: serde_json::Value = serde_json::from_slice(&tdm.body).unwrap();
    assert_eq!(tdm[0]["tdm-reservation"], 1, "{tdm}");

    let snippet = fetch("/_fp/snippet");
    assert_eq!(snippet.status, 200);
    assert!(snippet
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let markup = snippet.text();
    assert!(markup.starts_with(CANARY_START), "{markup}");
    assert!(markup.ends_with("</div>"), "{markup}");
    let token = planted_token(&format!("<body>{markup}</body>"), "<body></body>");
    assert_ne!(
        token,
        planted_token(
            &format!("<body>{}</body>", fetch("/_fp/snippet").text()),
            "<body></body>"
        ),
        "each snippet has its own token"
    );
    let image = fetch(&format!("/_fp/c/{token}.jpg"));
    assert_eq!(image.status, 200);
    assert_eq!(image.header("content-type"), Some("image/jpeg"));
    assert!(is_whole_jpeg(&image.body));
}

/// The `client_ip` recorded for a snippet fetched with `X-Forwarded-For: 203.0.113.7`.
fn recorded_ip_behind_proxy(trusted: &str) -> Option<String> {
    let env = Env::new();
    let mut server = embed(&env, trusted);
    let r = send(
        server.addrs.public,
        get("site.test", "/_fp/snippet")
            .header("x-forwarded-for", "203.0.113.7")
            .body(empty())
            .unwrap(),
    );
    assert_eq!(r.status, 200);
    stop(&mut server);
    let e = events_for(&env, "/_fp/snippet");
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].client_ip.clone()
}

#[test]
fn embed_mode_believes_x_forwarded_for_from_a_trusted_proxy() {
    assert_eq!(
        recorded_ip_behind_proxy("[\"127.0.0.1/32\"]").as_deref(),
        Some("203.0.113.7")
    );
}

#[test]
fn embed_mode_ignores_x_forwarded_for_from_an_untrusted_peer() {
    assert_eq!(recorded_ip_behind_proxy("[]").as_deref(), Some("127.0.0.1"));
}

// ---- 7. Graceful shutdown

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_records_it() {
    let env = Env::new();
    let up = Upstream::start(true);
    let mut server = proxy(&env, &up, "");
    let public = server.addrs.public;
    let client =
        std::thread::spawn(move || send(public, get("site.test", "/slow").body(empty()).unwrap()));
    // In flight: the upstream has the request and answers only after `SLOW`.
    let start = Instant::now();
    while up.seen("/slow").is_empty() {
        assert!(
            start.elapsed() < REQUEST_BOUND,
            "the request never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(&mut server);
    let r = client.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), SLOW_BODY);
    let e = events_for(&env, "/slow");
    assert_eq!(e.len(), 1, "the request's event is in the store: {e:?}");
    assert_eq!(e[0].status, 200);
}

// ---- 8. /metrics and /healthz

#[test]
fn metrics_count_page_views_and_canaries_served() {
    let env = Env::new();
    let up = Upstream::start(true);
    let server = proxy(&env, &up, "");
    let public = server.addrs.public;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let r = send(public, get("site.test", "/page").body(empty()).unwrap());
        tokens.push(planted_token(&r.text(), PAGE));
    }
    for t in &tokens[..2] {
        let r = send(
            public,
            get("site.test", &format!("/_fp/c/{t}.jpg"))
                .body(empty())
                .unwrap(),
        );
        assert_eq!(r.status, 200);
    }
    send(
        public,
        get("site.test", "/style.css").body(empty()).unwrap(),
    );

    let (status, health) = admin_get(&server, "/healthz");
    assert_eq!((status, health.trim()), (200, "ok"));

    // A page's event is counted once its body has gone out, which may be a moment after the
    // client has it all: poll, bounded.
    let wanted = [
        ("faceprobe_requests_total{kind=\"page\"}", 3),
        ("faceprobe_requests_total{kind=\"canary\"}", 2),
        ("faceprobe_requests_total{kind=\"asset\"}", 1),
        ("faceprobe_canaries_served_total", 2),
    ];
    let start = Instant::now();
    let text = loop {
        let (status, text) = admin_get(&server, "/metrics");
        assert_eq!(status, 200);
        if wanted
            .iter()
            .all(|(name, n)| metric(&text, name).is_some_and(|v| v >= *n))
            || start.elapsed() > common::SERVE_TIMEOUT
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (name, n) in wanted {
        assert_eq!(metric(&text, name), Some(n), "{name} in:\n{text}");
    }
}

// ---- 9. db check

#[test]
fn db_check_passes_after_traffic_and_names_a_tampered_event() {
    let env = Env::new();
    let up = Upstream::start(true);
    let mut server = proxy(&env, &up, "max_body_bytes = 1024");
    let public = server.addrs.public;
    let page = send(public, get("site.test", "/page").body(empty()).unwrap());
    let token = planted_token(&page.text(), PAGE);
    for path in [
        format!("/_fp/c/{token}.jpg"),
        format!("/_fp/g/{token}"),
        "/robots.txt".to_string(),
        "/style.css".to_string(),
        "/_fp/c/AAAAAAAAAAAAAAAAAAAAAA.jpg".to_string(),
        "/echo".to_string(),
    ] {
        let r = send(public, get("site.test", &path).body(empty()).unwrap());
        assert!(r.status == 200 || r.status == 404, "{path}: {}", r.status);
    }
    let big = send(
        public,
        Request::post("/upload")
            .header("host", "site.test")
            .body(Full::new(Bytes::from(vec![0u8; 4096])))
            .unwrap(),
    );
    assert_eq!(big.status, 413);
    stop(&mut server);
    let n = events(&env).len();
    assert!(n >= 8, "{n} events");

    let o = env.run(&["db", "check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("integrity: ok") && out.contains("hash chain: ok"),
        "{out}"
    );
    assert!(out.contains(&format!("{n} events")), "{out}");

    let rw = rusqlite::Connection::open(env.data_dir().join("faceprobe.db")).unwrap();
    let changed = rw
        .execute("UPDATE events SET path = '/x' WHERE id = 2", [])
        .unwrap();
    assert_eq!(changed, 1);
    drop(rw);
    let o = env.run(&["db", "check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "a tampered event passed:\n{out}");
    assert!(out.contains("event 2"), "{out}");
    assert!(!out.contains("hash chain: ok"), "{out}");
}

/// `serve.scheduling`: every thread of the server — event loops, recorder, checkpointer,
/// detector, renderer — runs under the policy configured, `SCHED_BATCH` by default.
#[cfg(target_os = "linux")]
#[test]
fn every_thread_of_the_server_runs_under_the_configured_scheduling_policy() {
    for (setting, policy, name) in [
        ("", libc::SCHED_BATCH, "SCHED_BATCH"),
        ("scheduling = \"normal\"", libc::SCHED_OTHER, "SCHED_OTHER"),
    ] {
        let env = Env::new();
        let addrs = env.configure_serve(&format!("mode = \"demo\"\n{setting}"), "");
        let mut server = env.serve(addrs);
        // A page view and its canary: the threads that serve and render have run.
        let agent = http_agent();
        let page = common::fetch(&agent, &server.url("/")).unwrap().text();
        let (imgs, _) = common::img_and_link_urls(&page);
        let canary = imgs
            .iter()
            .find(|u| u.contains("/_fp/c/"))
            .expect("a planted canary");
        common::fetch(&agent, &server.url(canary)).unwrap();
        let tasks = format!("/proc/{}/task", server.child.id());
        let mut threads = Vec::new();
        for task in std::fs::read_dir(&tasks).unwrap() {
            let task = task.unwrap().path();
            let tid: libc::pid_t = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            // SAFETY: sched_getscheduler(2) only reads the policy of a thread by its id.
            let got = unsafe { libc::sched_getscheduler(tid) };
            if got == -1 {
                continue; // the thread ended meanwhile
            }
            threads.push(comm.trim().to_string());
            // The renderer works ahead of need: SCHED_IDLE whatever the setting, so that it
            // never holds a core a request wants.
            let (policy, name) = if comm.starts_with("faceprobe-rende") {
                (libc::SCHED_IDLE, "SCHED_IDLE")
            } else {
                (policy, name)
            };
            assert_eq!(
                got,
                policy,
                "thread {} ({tid}) of faceprobe serve is not under {name} with serve.{}",
                comm.trim(),
                if setting.is_empty() {
                    "scheduling unset"
                } else {
                    setting
                }
            );
        }
        for expected in [
            "faceprobe-edge",
            "faceprobe-write",
            "faceprobe-check",
            "faceprobe-rende",
            "faceprobe-timer",
        ] {
            assert!(
                threads.iter().any(|t| t.starts_with(expected)),
                "no {expected}* thread among {threads:?}"
            );
        }
        stop(&mut server);
    }
}
