//! faceprobe in embed mode behind Caddy (Debian's `caddy`), configured by the committed
//! `deploy/caddy/faceprobe.caddy`: a Caddyfile of the test's own serves a static site on a free
//! port of 127.0.0.1 and imports that file, which routes faceprobe's paths to a real
//! `faceprobe serve` and includes the canary block in the site's pages.
//!
//! The client connects from 127.0.0.3, so its address differs from Caddy's (127.0.0.1): what
//! the store records under 127.0.0.3 came through Caddy's forwarding, not from the peer.
//! Skipped with a notice when caddy is missing, unless FACEPROBE_REQUIRE_TOOLS is set.

mod common;

use common::{free_port, is_whole_jpeg, token_bytes, tool_available, Env, Fetched, Server};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest any one request of this test may take, whatever Caddy or faceprobe do.
const REQUEST_BOUND: Duration = Duration::from_secs(20);

/// The client's own address: loopback, but not Caddy's.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// The start of the canary block, up to the token.
const CANARY_START: &str =
    "<div hidden style=\"display:none\" aria-hidden=\"true\"><img loading=\"lazy\" src=\"/_fp/c/";

/// The site's page: text with braces of its own, and the include just before `</body>`.
const PAGE_HEAD: &str = "<!doctype html>\n<html><head><title>Caddy site</title></head>\n<body>\n\
<h1>A static page</h1>\n<p>Braces of the page stay as they are: {{ not a template }}</p>\n";
const INCLUDE: &str = "<!--{{httpInclude \"/_fp/snippet\"}}-->";
const PAGE_TAIL: &str = "\n</body>\n</html>\n";

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// `caddy run` with the test's Caddyfile; killed when dropped.
struct Caddy {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Caddy {
    /// Serves `site` on a free port of 127.0.0.1 with the committed faceprobe.caddy imported
    /// and faceprobe's public listener at `faceprobe`; waits until the port accepts.
    fn start(binary: &Path, env: &Env, site: &Path, faceprobe: SocketAddr) -> Caddy {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let import = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/caddy/faceprobe.caddy");
        let home = env.path("caddy-home");
        std::fs::create_dir_all(&home).unwrap();
        let caddyfile = env.path("Caddyfile");
        std::fs::write(
            &caddyfile,
            format!(
                "{{\n\tadmin off\n\tauto_https off\n}}\n\n\
                 http://{addr} {{\n\tbind 127.0.0.1\n\troot * {site}\n\timport {import}\n\tfile_server\n}}\n",
                site = site.display(),
                import = import.display(),
            ),
        )
        .unwrap();
        let log = env.path("caddy.log");
        let child = Command::new(binary)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("FACEPROBE_ADDRESS", faceprobe.to_string())
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut caddy = Caddy { child, addr, log };
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = caddy.child.try_wait().unwrap() {
                panic!("caddy exited ({status}):\n{}", caddy.log_text());
            }
            assert!(
                start.elapsed() < REQUEST_BOUND,
                "caddy did not listen on {addr} within {REQUEST_BOUND:?}:\n{}",
                caddy.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        caddy
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` from Caddy on a connection whose source address is `CLIENT`.
fn get(caddy: &Caddy, path: &str, headers: &[(&str, &str)]) -> Fetched {
    common::get_from(CLIENT, caddy.addr, path, headers)
}

/// The events recorded with user agent `agent`: (path, kind, status, client_ip, client_key,
/// token), in order.
type EventRow = (String, String, i64, Option<String>, String, Option<Vec<u8>>);

fn events_of(env: &Env, agent: &str) -> Vec<EventRow> {
    let db = env.db();
    let mut stmt = db
        .prepare(
            "SELECT path, kind, status, client_ip, client_key, token FROM events_full \
             WHERE user_agent = ?1 ORDER BY id",
        )
        .unwrap();
    stmt.query_map([agent], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The token in a page's canary block, checking the page is the site's page with exactly the
/// block in place of the include.
fn included_token(page: &str) -> String {
    let rest = page
        .strip_prefix(PAGE_HEAD)
        .unwrap_or_else(|| panic!("the page's text changed:\n{page}"));
    let block = rest
        .strip_suffix(PAGE_TAIL)
        .unwrap_or_else(|| panic!("the page's end changed:\n{page}"));
    assert!(
        block.starts_with(CANARY_START) && block.ends_with("</div>"),
        "the include is not replaced by the canary block:\n{page}"
    );
    assert_eq!(block.matches("/_fp/c/").count(), 1, "{block}");
    // A sealed token: 64 characters.
    let token: String = block[CANARY_START.len()..].chars().take(64).collect();
    assert!(
        block[CANARY_START.len() + 64..].starts_with(".jpg\""),
        "{block}"
    );
    token
}

fn stop(server: &mut Server) {
    let status = server.terminate();
    assert!(
        status.success(),
        "faceprobe: {status}\n{}",
        server.log_text()
    );
}

#[test]
fn caddy_includes_the_canary_block_and_forwards_the_clients_address() {
    let Some(caddy_bin) = tool_available("caddy", "apt-get install caddy") else {
        return;
    };
    let env = Env::new();
    let site = env.path("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("index.html"),
        format!("{PAGE_HEAD}{INCLUDE}{PAGE_TAIL}"),
    )
    .unwrap();
    let addrs = env.configure_serve("mode = \"embed\"\ntrusted_proxies = [\"127.0.0.1/32\"]", "");
    let mut server = env.serve(addrs);
    let caddy = Caddy::start(&caddy_bin, &env, &site, addrs.public);

    // A page view: the include becomes a block with a token minted for this client.
    let page = get(&caddy, "/", &[("user-agent", BROWSER)]);
    assert_eq!(page.status, 200, "{}\n{}", page.text(), caddy.log_text());
    assert!(page.content_type.starts_with("text/html"));
    let token = included_token(&page.text());
    let second = included_token(&get(&caddy, "/", &[("user-agent", BROWSER)]).text());
    assert_ne!(token, second, "each page view has its own token");

    // The canary taken through Caddy.
    let canary = get(
        &caddy,
        &format!("/_fp/c/{token}.jpg"),
        &[("user-agent", BROWSER)],
    );
    assert_eq!(canary.status, 200, "{}", caddy.log_text());
    assert_eq!(canary.content_type, "image/jpeg");
    assert!(is_whole_jpeg(&canary.body));

    // robots.txt is faceprobe's.
    let robots = get(&caddy, "/robots.txt", &[("user-agent", BROWSER)]);
    assert_eq!(robots.status, 200);
    assert_eq!(robots.text(), "User-agent: *\nDisallow: /_fp/\n");

    // A client asking for the snippet itself, passing off another address as its own with
    // every header the include uses.
    let forger = "forger/1.0";
    let forged = get(
        &caddy,
        "/_fp/snippet",
        &[
            ("user-agent", forger),
            ("caddy-templates-include", "1"),
            ("x-faceprobe-client", "203.0.113.9"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    );
    assert_eq!(forged.status, 200);
    assert!(forged.text().starts_with(CANARY_START));

    stop(&mut server); // flushes the recorder
    let events = events_of(&env, BROWSER);
    let paths: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/_fp/snippet",
            "/_fp/snippet",
            &format!("/_fp/c/{token}.jpg"),
            "/robots.txt"
        ],
        "{events:?}"
    );
    for (path, _, status, ip, _, _) in &events {
        assert_eq!(*status, 200, "{path}");
        assert_eq!(
            ip.as_deref(),
            Some("127.0.0.3"),
            "{path} is recorded under the client's address, not Caddy's"
        );
    }
    let (_, kind, _, _, fetcher_key, fetched) = &events[2];
    assert_eq!(kind, "canary");
    assert_eq!(fetched.as_deref(), Some(&token_bytes(&token)[..]));
    // The token was minted for the client that took it: no handoff between two clients.
    assert_eq!(&events[0].4, fetcher_key, "the page view's client key");
    let minted_for: String = env
        .db()
        .query_row(
            "SELECT client_key FROM tokens WHERE token = ?1",
            [token_bytes(&token)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(&minted_for, fetcher_key, "the token's client key");

    let forged_events = events_of(&env, forger);
    assert_eq!(forged_events.len(), 1, "{forged_events:?}");
    assert_eq!(
        forged_events[0].3.as_deref(),
        Some("127.0.0.3"),
        "a client's X-Faceprobe-Client or X-Forwarded-For is not believed"
    );

    // faceprobe stopped: the page is still served, without the block.
    let page = get(&caddy, "/", &[("user-agent", BROWSER)]);
    assert_eq!(page.status, 200, "{}", caddy.log_text());
    assert_eq!(page.text(), format!("{PAGE_HEAD}{PAGE_TAIL}"));
}
