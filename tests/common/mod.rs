//! Shared by the end-to-end tests: a temporary data directory with its config file, and the
//! `faceprobe` binary run against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A config file and data directory of their own.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("faceprobe.toml");
        let data = dir.path().join("data");
        std::fs::write(
            &config,
            format!("[store]\ndata_dir = {:?}\n", data.to_str().unwrap()),
        )
        .unwrap();
        Env { dir, config }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_faceprobe"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    pub fn render(&self, count: u32, seed: Option<u64>, out: &str) -> Vec<serde_json::Value> {
        let count = count.to_string();
        let out = self.path(out);
        let mut args = vec![
            "canary",
            "render",
            "--count",
            &count,
            "--out",
            out.to_str().unwrap(),
        ];
        let seed_text;
        if let Some(s) = seed {
            seed_text = s.to_string();
            args.extend(["--seed", &seed_text]);
        }
        let o = self.run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn match_json(&self, files: &[&Path]) -> (Vec<serde_json::Value>, Output) {
        let mut args = vec!["match", "--json"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        let o = self.run(&args);
        let lines = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines, o)
    }
}

// ---- `faceprobe serve` end to end: a server on free ports, an HTTP client, the event store.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server has to answer /healthz after it is started, and to exit after SIGTERM.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The two listeners of one `faceprobe serve`.
#[derive(Clone, Copy, Debug)]
pub struct ServeAddrs {
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

impl Env {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Rewrites the config file for `serve` on free ports of 127.0.0.1: `serve_keys` go into
    /// `[serve]` (e.g. `mode = "demo"`), `more` is appended as further sections.
    pub fn configure_serve(&self, serve_keys: &str, more: &str) -> ServeAddrs {
        let addrs = ServeAddrs {
            public: SocketAddr::from(([127, 0, 0, 1], free_port())),
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
        };
        let text = format!(
            "[store]\ndata_dir = {:?}\n\n[serve]\nlisten = \"{}\"\nadmin_listen = \"{}\"\n{}\n\n{}\n",
            self.data_dir().to_str().unwrap(),
            addrs.public,
            addrs.admin,
            serve_keys,
            more
        );
        std::fs::write(&self.config, text).unwrap();
        addrs
    }

    /// Starts `faceprobe serve` with the config file and waits until its admin listener
    /// answers `/healthz` (panics with the server's log when it does not within
    /// `SERVE_TIMEOUT`).
    pub fn serve(&self, addrs: ServeAddrs) -> Server {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let log = self.path(&format!("serve-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_faceprobe"))
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server { child, addrs, log };
        server.wait_healthy();
        server
    }

    /// The event store, opened read-only beside the running server.
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags(
            self.data_dir().join("faceprobe.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn
    }
}

/// A running `faceprobe serve`; killed (SIGKILL) when dropped if it still runs.
pub struct Server {
    pub child: Child,
    pub addrs: ServeAddrs,
    /// The server's stderr.
    pub log: PathBuf,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addrs.public, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_healthy(&mut self) {
        let agent = http_agent();
        let url = format!("http://{}/healthz", self.addrs.admin);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "faceprobe serve exited ({status}) before it was healthy:\n{}",
                    self.log_text()
                );
            }
            if let Ok(mut r) = agent.get(&url).call() {
                let body = r.body_mut().read_to_string().unwrap_or_default();
                if r.status() == 200 && body.trim() == "ok" {
                    return;
                }
            }
            assert!(
                start.elapsed() < SERVE_TIMEOUT,
                "faceprobe serve did not answer {url} with 200 \"ok\" within {SERVE_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asks for a graceful shutdown (SIGTERM) and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_within(SERVE_TIMEOUT)
    }

    /// Asks for a graceful shutdown and waits at most `limit` for the exit.
    pub fn terminate_within(&mut self, limit: Duration) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (no wait yet).
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {pid}");
        self.wait_exit_within(limit)
    }

    /// Kills the server at once (SIGKILL): no shutdown code runs.
    pub fn kill9(&mut self) -> ExitStatus {
        self.child.kill().unwrap();
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(SERVE_TIMEOUT)
    }

    fn wait_exit_within(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "faceprobe serve did not exit within {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP client: statuses are answers, not errors; redirects are not followed; no
/// request waits more than 20 s.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build(),
    )
}

/// One complete response.
pub struct Fetched {
    pub status: u16,
    pub content_type: String,
    pub content_length: Option<usize>,
    pub body: Vec<u8>,
}

impl Fetched {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET `url` and read the whole body; an error when the connection fails or the body is cut
/// short (fewer bytes than its Content-Length).
pub fn fetch(agent: &ureq::Agent, url: &str) -> Result<Fetched, String> {
    fetch_with(agent, url, &[])
}

/// `fetch` with request headers of its own (a user agent, a cookie, browser headers).
pub fn fetch_with(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Fetched, String> {
    let mut req = agent.get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut r = req.call().map_err(|e| format!("{url}: {e}"))?;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let content_length = header("content-length").and_then(|v| v.parse().ok());
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .map_err(|e| format!("{url}: body: {e}"))?;
    if let Some(n) = content_length {
        if body.len() != n {
            return Err(format!("{url}: {} bytes of {n}", body.len()));
        }
    }
    Ok(Fetched {
        status: r.status().as_u16(),
        content_type,
        content_length,
        body,
    })
}

/// The `src` of every `<img>` and the `href` of every `<a>`, as an HTML parser sees them.
pub fn img_and_link_urls(html: &str) -> (Vec<String>, Vec<String>) {
    let doc = scraper::Html::parse_document(html);
    let attr = |selector: &str, name: &str| -> Vec<String> {
        let selector = scraper::Selector::parse(selector).unwrap();
        doc.select(&selector)
            .filter_map(|e| e.value().attr(name))
            .map(str::to_string)
            .collect()
    };
    (attr("img[src]", "src"), attr("a[href]", "href"))
}

/// Resolves a link found on `page` (an `http://host:port/...` URL) when it stays on the same
/// origin; `None` for other origins and schemes.
pub fn same_origin(page: &str, link: &str) -> Option<String> {
    let rest = page.strip_prefix("http://")?;
    let origin_len = "http://".len() + rest.find('/').unwrap_or(rest.len());
    let origin = &page[..origin_len];
    let link = link.split('#').next().unwrap_or("");
    if link.is_empty() {
        return None;
    }
    if let Some(l) = link.strip_prefix(origin) {
        return Some(format!("{origin}{}", if l.is_empty() { "/" } else { l }));
    }
    if link.starts_with("//") || link.contains(':') && !link.starts_with('/') {
        return None;
    }
    if link.starts_with('/') {
        return Some(format!("{origin}{link}"));
    }
    let path = page[origin_len..].split(['?', '#']).next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{origin}{dir}{link}"))
}

/// The token of a canary image URL (`…/_fp/c/{TOKEN}.jpg`), if it is one.
pub fn canary_token(url: &str) -> Option<String> {
    let rest = &url[url.find("/_fp/c/")? + "/_fp/c/".len()..];
    let token = rest.split(['?', '#']).next()?.strip_suffix(".jpg")?;
    // Sealed tokens (64 characters) from the edge; 30 for those `canary render` mints.
    (token.len() == 64 || token.len() == 30).then(|| token.to_string())
}

/// The raw bytes a base64url token stands for (as stored in `events.token`): 48 for a sealed
/// token of the edge, 22 (mint time and 128 random bits) for one `canary render` minted.
pub fn token_bytes(token: &str) -> Vec<u8> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .unwrap_or_else(|e| panic!("token {token:?} is not base64url: {e}"));
    assert!(
        bytes.len() == 48 || bytes.len() == 22,
        "token {token:?} is neither sealed (48 bytes) nor 6 bytes of time and 128 random bits"
    );
    bytes
}

/// A complete JPEG: SOI at the start, EOI at the end.
pub fn is_whole_jpeg(body: &[u8]) -> bool {
    body.len() > 4 && body.starts_with(&[0xFF, 0xD8]) && body.ends_with(&[0xFF, 0xD9])
}

/// Waits (at most `SERVE_TIMEOUT`) until the writer has committed an event for `path`: the
/// writer commits events in order, so every event before it is in the store too.
pub fn wait_for_event(env: &Env, path: &str) {
    let start = Instant::now();
    loop {
        let n: i64 = env
            .db()
            .query_row("SELECT count(*) FROM events WHERE path = ?1", [path], |r| {
                r.get(0)
            })
            .unwrap();
        if n > 0 {
            return;
        }
        assert!(
            start.elapsed() < SERVE_TIMEOUT,
            "no event for {path} was committed within {SERVE_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a test tool is installed; when it is not and FACEPROBE_REQUIRE_TOOLS is set (by
/// scripts/test), the test fails instead of skipping.
pub fn tool_available(name: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("FACEPROBE_REQUIRE_TOOLS").is_err(),
            "{name} is required ({install})"
        );
        eprintln!("{name} not installed: skipping (scripts/test installs it: {install})");
    }
    found
}

// ---- Headless Chromium (Debian's `chromium`), driven through `chromedriver`.

/// Debian's chromedriver on a free port of 127.0.0.1, killed when dropped.
pub struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    /// Starts chromedriver (its log in `log`) and waits until it says it is ready.
    pub fn start(binary: &Path, log: &Path) -> ChromeDriver {
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut driver = ChromeDriver { child, port };
        let agent = http_agent();
        let start = Instant::now();
        loop {
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!(
                    "chromedriver exited ({status}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if let Ok(r) = fetch(&agent, &format!("http://127.0.0.1:{port}/status")) {
                let status: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if status["value"]["ready"] == serde_json::json!(true) {
                    return driver;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not get ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A headless Chromium session with a `window` of that size, fixed scale and colour
    /// profile, its own empty profile, and nothing fetched in the background.
    pub async fn session(
        &self,
        chromium: &Path,
        profile: &Path,
        window: (u32, u32),
    ) -> fantoccini::Client {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), serde_json::json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    "--force-color-profile=srgb",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--disable-extensions",
                    format!("--window-size={},{}", window.0, window.1),
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("a Chromium session through chromedriver: {e}"))
    }
}

impl Drop for ChromeDriver {
    /// Asks chromedriver to shut down, which quits the browser of every session still open
    /// (a test that failed did not close its own); killed if it has not exited within 5 s.
    fn drop(&mut self) {
        let shutdown = format!("http://127.0.0.1:{}/shutdown", self.port);
        let _ = http_agent().get(&shutdown).call();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Crawls as a scraper would with user agent `ua`: robots.txt, then pages breadth-first from
/// "/" down to `depth` links (at most `max_pages`), taking every `<img src>` and following
/// every link of the site (trap galleries included). Returns the first canary it took.
pub fn crawl(
    server: &Server,
    ua: &str,
    depth: usize,
    max_pages: usize,
) -> Option<(String, Vec<u8>)> {
    let agent = http_agent();
    let get = |url: &str| {
        fetch_with(&agent, url, &[("User-Agent", ua)]).unwrap_or_else(|e| panic!("{e}"))
    };
    get(&server.url("/robots.txt"));
    let mut first_canary = None;
    let mut seen = std::collections::HashSet::new();
    let mut queue = std::collections::VecDeque::from([(server.url("/"), 0)]);
    let mut pages = 0;
    while let Some((page_url, at)) = queue.pop_front() {
        if pages == max_pages || !seen.insert(page_url.clone()) {
            continue;
        }
        pages += 1;
        let page = get(&page_url);
        if !page.content_type.starts_with("text/html") {
            continue;
        }
        let (imgs, links) = img_and_link_urls(&page.text());
        for img in imgs.iter().filter_map(|s| same_origin(&page_url, s)) {
            if !seen.insert(img.clone()) {
                continue;
            }
            let image = get(&img);
            if let (Some(token), None) = (canary_token(&img), &first_canary) {
                assert_eq!(image.status, 200, "{img}");
                first_canary = Some((token, image.body));
            }
        }
        if at < depth {
            queue.extend(
                links
                    .iter()
                    .filter_map(|l| same_origin(&page_url, l))
                    .map(|l| (l, at + 1)),
            );
        }
    }
    first_canary
}

/// `faceprobe clients --json` (`--flagged` when `flagged`), one client a line.
pub fn clients_json(env: &Env, flagged: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["clients", "--json"];
    if flagged {
        args.push("--flagged");
    }
    let out = env.run(&args);
    assert!(
        out.status.success(),
        "faceprobe clients: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits (at most `SERVE_TIMEOUT`) until `faceprobe clients` lists a client that is `wanted`.
pub fn wait_for_client(
    env: &Env,
    server: &Server,
    flagged: bool,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let list = clients_json(env, flagged);
        if let Some(c) = list.iter().find(|c| wanted(c)) {
            return c.clone();
        }
        assert!(
            start.elapsed() < SERVE_TIMEOUT,
            "waited {SERVE_TIMEOUT:?} for {what}; `faceprobe clients --json{}` lists {list:#?}\n\
             server log:\n{}",
            if flagged { " --flagged" } else { "" },
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GET `path` from `to` on a connection whose source address is `from` (a loopback address of
/// the test's choosing, so that what a proxy in between forwards can be told from its own
/// address), with `headers`; the answer read whole, within 20 s.
pub fn get_from(
    from: std::net::IpAddr,
    to: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Fetched {
    use http_body_util::BodyExt;
    let mut req = http::Request::get(path).header("host", to.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        tokio::time::timeout(SERVE_TIMEOUT, async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from, 0))?;
            let stream = socket.connect(to).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes().to_vec();
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Fetched {
                status: parts.status.as_u16(),
                content_type: header("content-type").unwrap_or_default(),
                content_length: header("content-length").and_then(|v| v.parse().ok()),
                body,
            })
        })
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no complete answer within {SERVE_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    })
}

/// The tokens among `tokens` (canaries a client received whole) that have no canary fetch in
/// the store: evidence lost. Read after the server stopped (its queue flushed).
pub fn canaries_not_stored<'a>(
    env: &Env,
    tokens: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let db = env.db();
    let mut query = db
        .prepare("SELECT count(*) FROM events WHERE token = ?1 AND kind = 'canary'")
        .unwrap();
    tokens
        .into_iter()
        .filter(|t| {
            query
                .query_row([token_bytes(t)], |r| r.get::<_, i64>(0))
                .unwrap()
                == 0
        })
        .cloned()
        .collect()
}

/// `faceprobe db check` on the store, which must pass; `after` says what happened to it.
pub fn assert_db_check(env: &Env, after: &str) {
    let check = env.run(&["db", "check"]);
    assert!(
        check.status.success(),
        "db check after {after}: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Prints a test's figure line and adds it to `target/tmp/figures.txt`, which `scripts/test`
/// shows at the end of the run (cargo test keeps a passing test's output to itself).
pub fn figure(line: &str) {
    use std::io::Write;
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("figures.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

// ---- Alert webhooks.

/// One webhook call: headers (lower-case names) and body.
pub type Call = (Vec<(String, String)>, String);

/// A webhook receiver on 127.0.0.1: every call it gets.
pub fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<Call>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send((headers, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (port, rx)
}
