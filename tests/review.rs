//! The review dashboard over plain HTTP (the browser test, tests/dashboard.rs, drives it in
//! Chromium): nothing is shown or changed without a session; a wrong token gets 401 and
//! attempts are limited; every form without its CSRF token is refused and changes nothing;
//! what a client sent (agent, path, query) is shown escaped, whatever its bytes; a public
//! admin listener without a token is refused at start; a token made at first start is shown
//! once and kept hashed; and a flagged harvester is confirmed, exported, downloaded and
//! verified through the dashboard's own routes.

mod common;

use common::{crawl, http_agent, wait_for_client, Env, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const DETECT_FAST: &str = "[detect]\npoll_ms = 50\npersist_secs = 1\n";
const TOKEN: &str = "a-test-admin-token-0123456789";
const HARVESTER: &str = "img2dataset/1.5.0 (+https://github.com/rom1504/img2dataset)";

/// A signed-in dashboard session over HTTP.
struct Admin {
    base: String,
    cookie: String,
    agent: ureq::Agent,
}

/// The answer to one dashboard request.
struct Page {
    status: u16,
    location: String,
    body: String,
}

impl Admin {
    fn login(server: &Server) -> Admin {
        let base = format!("http://{}", server.addrs.admin);
        let agent = http_agent();
        let r = agent
            .post(&format!("{base}/login"))
            .send_form([("name", "Tess"), ("token", TOKEN), ("next", "/")])
            .unwrap();
        assert_eq!(r.status(), 303, "signing in redirects");
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let cookie = cookie.split(';').next().unwrap().to_string();
        Admin {
            base,
            cookie,
            agent,
        }
    }

    fn get(&self, path: &str) -> Page {
        let r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .call()
            .unwrap();
        page(r)
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send_form(form.iter().copied())
            .unwrap();
        page(r)
    }

    /// The CSRF token the session's forms carry.
    fn csrf(&self) -> String {
        let body = self.get("/").body;
        let at = body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        body[at..at + body[at..].find('"').unwrap()].to_string()
    }
}

fn page(mut r: ureq::http::Response<ureq::Body>) -> Page {
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Page {
        status: r.status().as_u16(),
        location,
        body: r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default(),
    }
}

fn serve(env: &Env, review: &str) -> Server {
    let addrs = env.configure_serve("", &format!("{DETECT_FAST}\n[review]\n{review}\n"));
    env.serve(addrs)
}

/// The key of the flagged client whose user agent is `agent`, once the detector has it.
fn flagged_key(env: &Env, server: &Server, agent: &str) -> String {
    let c = wait_for_client(env, server, true, agent, |c| c["agent"] == agent);
    c["key"].as_str().unwrap_or_default().to_string()
}

#[test]
fn nothing_is_shown_or_changed_without_a_session() {
    let env = Env::new();
    let server = serve(&env, &format!("token = \"{TOKEN}\""));
    let base = format!("http://{}", server.addrs.admin);
    let agent = http_agent();
    for path in [
        "/",
        "/?range=week",
        "/flags",
        "/clients/c:0123",
        "/cases",
        "/allow",
        "/match",
        "/found/1",
        "/found/1/image.jpg",
        "/bundles/1/download",
        "/canaries/AaJMRdhKHxveWOPxpQNJC3npReziwg.jpg",
    ] {
        let p = page(agent.get(&format!("{base}{path}")).call().unwrap());
        assert_eq!(p.status, 303, "GET {path} without a session");
        assert!(
            p.location.starts_with("/login?next="),
            "{path}: {}",
            p.location
        );
        assert!(!p.body.contains("c:0123"), "{path} shows nothing");
    }
    for path in [
        "/clients/c:0123/review",
        "/clients/c:0123/export",
        "/found/1/attach",
        "/match",
        "/logout",
    ] {
        let p = page(
            agent
                .post(&format!("{base}{path}"))
                .send_form([("decision", "dismiss")])
                .unwrap(),
        );
        assert_eq!(p.status, 401, "POST {path} without a session");
    }
    // The probes stay open (review.open_metrics), and every answer carries the strict CSP.
    let r = agent.get(&format!("{base}/metrics")).call().unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers().get("content-security-policy").unwrap();
    assert!(csp.to_str().unwrap().starts_with("default-src 'none'"));
    let login = page(agent.get(&format!("{base}/login")).call().unwrap());
    assert_eq!(login.status, 200);
    assert!(login.body.contains("id=\"login\""));
}

#[test]
fn a_wrong_token_gets_401_and_sign_in_attempts_are_limited() {
    let env = Env::new();
    let server = serve(&env, &format!("token = \"{TOKEN}\"\nlogin_per_minute = 3"));
    let url = format!("http://{}/login", server.addrs.admin);
    let agent = http_agent();
    let attempt = |token: &str| {
        page(
            agent
                .post(&url)
                .send_form([("name", "Mallory"), ("token", token)])
                .unwrap(),
        )
    };
    for _ in 0..3 {
        let p = attempt("not-the-token-at-all");
        assert_eq!(p.status, 401);
        assert!(p.body.contains("Wrong token."));
        assert!(!p.body.contains(TOKEN));
    }
    // Over the limit, even the right token waits.
    assert_eq!(attempt(TOKEN).status, 429);
}

#[test]
fn a_public_admin_listener_without_a_token_is_refused_and_a_made_token_is_shown_once() {
    let env = Env::new();
    let mut addrs = env.configure_serve("", DETECT_FAST);
    addrs.admin.set_ip([0, 0, 0, 0].into());
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("admin_listen = \"127.0.0.1:", "admin_listen = \"0.0.0.0:");
    std::fs::write(&env.config, text).unwrap();
    let out = env.run(&["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("FACEPROBE_ADMIN_TOKEN"),
        "{err}"
    );
    assert!(
        !env.data_dir().join("faceprobe.db").exists(),
        "refused before anything is made"
    );

    // On loopback with no token given, one is made, printed once and kept as its hash.
    let addrs = env.configure_serve("", DETECT_FAST);
    let mut first = env.serve(addrs);
    let log = first.log_text();
    let token = log
        .lines()
        .skip_while(|l| !l.contains("dashboard admin token"))
        .nth(2)
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    assert!(token.len() >= 24, "no token printed:\n{log}");
    first.terminate();
    let stored = std::fs::read_to_string(env.data_dir().join("admin-token.sha256")).unwrap();
    assert!(!stored.contains(&token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.data_dir().join("admin-token.sha256"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the token's hash is private to its owner");
    }
    let second = env.serve(addrs);
    assert!(!second.log_text().contains(&token), "shown once only");
    let r = http_agent()
        .post(&format!("http://{}/login", addrs.admin))
        .send_form([("name", "Tess"), ("token", token.as_str())])
        .unwrap();
    assert_eq!(r.status(), 303, "the printed token still signs in");
}

#[test]
fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let env = Env::new();
    let server = serve(&env, &format!("token = \"{TOKEN}\""));
    crawl(&server, HARVESTER, 2, 40);
    let key = flagged_key(&env, &server, HARVESTER);
    let admin = Admin::login(&server);
    let client = format!("/clients/{key}");
    for (path, form) in [
        (
            format!("{client}/review"),
            vec![("decision", "dismiss"), ("note", "x")],
        ),
        (
            format!("{client}/review"),
            vec![("decision", "confirm"), ("csrf", "forged")],
        ),
        (format!("{client}/export"), vec![]),
        ("/found/1/attach".to_string(), vec![("key", key.as_str())]),
        ("/logout".to_string(), vec![]),
    ] {
        let p = admin.post(&path, &form);
        assert_eq!(p.status, 403, "POST {path} {form:?}");
    }
    let db = env.db();
    for table in ["reviews", "allow_list", "cases", "bundles"] {
        let n: i64 = db
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table} is untouched");
    }
    assert_eq!(admin.get("/").status, 200, "the session is still open");
}

/// Sends one request whose head is `head` (raw bytes: a client may send anything).
fn raw(addr: std::net::SocketAddr, head: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(head).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

#[test]
fn what_a_client_sent_is_shown_as_text() {
    let env = Env::new();
    let server = serve(&env, &format!("token = \"{TOKEN}\""));
    // An agent with markup, quotes, a template injection, invalid UTF-8 and 4 KB of filler;
    // a path and a query with markup (percent-encoded, as a URI must be) and raw quotes.
    let mut agent =
        b"<script>alert(1)</script>\"' onmouseover=alert(2) ${jndi:ldap://x/a} \xff\xfe ".to_vec();
    agent.extend(std::iter::repeat_n(b'A', 4096));
    for path in [
        "/_fp/c/%3Cscript%3Ealert(3)%3C/script%3E.jpg",
        "/?q=%22%3E%3Cimg%20src=x%20onerror=alert(4)%3E",
        "/_fp/g/x'\"><b>",
        "/",
    ] {
        let mut head =
            format!("GET {path} HTTP/1.1\r\nHost: site.example\r\nUser-Agent: ").into_bytes();
        head.extend_from_slice(&agent);
        head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        raw(server.addrs.public, &head);
    }
    crawl(&server, "<script>alert(5)</script>", 1, 40);
    let key = flagged_key(&env, &server, "<script>alert(5)</script>");
    let admin = Admin::login(&server);
    let pages = [
        format!("/clients/{key}"),
        "/flags".to_string(),
        "/".to_string(),
    ];
    for path in &pages {
        let p = admin.get(path);
        assert_eq!(p.status, 200, "{path}");
        assert!(
            !p.body.contains("<script"),
            "{path} carries markup a client sent"
        );
        assert!(!p.body.contains("<img src=x"), "{path}");
        assert!(!p.body.contains("<b>"), "{path}");
    }
    let flags = admin.get("/flags").body;
    assert!(
        flags.contains("&lt;script&gt;alert(5)&lt;/script&gt;"),
        "shown as text"
    );
    // The raw requests' client: find it by its address and agent among every client.
    let out = env.run(&["clients", "--json"]);
    let hostile = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|c| c["agent"].as_str().is_some_and(|a| a.contains("jndi")))
        .and_then(|c| c["key"].as_str().map(str::to_string))
        .expect("the client of the raw requests is listed");
    let p = admin.get(&format!("/clients/{hostile}"));
    assert_eq!(p.status, 200);
    assert!(!p.body.contains("<script"));
    assert!(
        p.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
        "escaped"
    );
    assert!(
        p.body.contains('\u{fffd}'),
        "invalid UTF-8 shown as replacement characters"
    );
    assert!(
        p.body.contains(" characters)"),
        "a long agent is cut, with its length"
    );
    assert!(
        p.body.contains("%3Cscript%3Ealert(3)%3C/script%3E"),
        "the path as sent"
    );
}

#[test]
fn a_harvester_is_confirmed_exported_downloaded_and_verified_through_the_dashboard() {
    let env = Env::new();
    let server = serve(&env, &format!("token = \"{TOKEN}\""));
    crawl(&server, HARVESTER, 3, 40);
    let key = flagged_key(&env, &server, HARVESTER);
    let admin = Admin::login(&server);
    let csrf = admin.csrf();
    let client = format!("/clients/{key}");
    let p = admin.get(&client);
    assert!(p.body.contains("Canaries taken") && p.body.contains("/canaries/"));
    let confirmed = admin.post(
        &format!("{client}/review"),
        &[
            ("csrf", &csrf),
            ("decision", "confirm"),
            ("note", "took <b>canaries</b>"),
        ],
    );
    assert_eq!(confirmed.status, 303);
    let p = admin.get(&confirmed.location);
    assert!(p.body.contains("Case open") && p.body.contains("took &lt;b&gt;canaries&lt;/b&gt;"));
    let exported = admin.post(&format!("{client}/export"), &[("csrf", &csrf)]);
    assert_eq!(exported.status, 303, "{}", exported.body);
    let p = admin.get(&client).body;
    let at = p.find("/bundles/").expect("a bundle listed");
    let href = &p[at..at + p[at..].find('"').unwrap()];
    let r = admin
        .agent
        .get(&format!("{}{href}", admin.base))
        .header("Cookie", &admin.cookie)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("content-type").unwrap(), "application/zip");
    let zip = r
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    let file = env.path("downloaded.zip");
    std::fs::write(&file, &zip).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&zip))
    };
    assert!(
        p.contains(&sha),
        "the page lists the SHA-256 of the file downloaded"
    );
    let out = env.run(&["evidence", "verify", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("checks hold"),
        "{text}"
    );
    let built_by: String = env
        .db()
        .query_row("SELECT built_by FROM bundles", [], |r| r.get(0))
        .unwrap();
    assert_eq!(built_by, "Tess", "the reviewer is recorded as the builder");
}

#[test]
fn sql_metacharacters_in_agents_and_filters_are_only_text() {
    let env = Env::new();
    let server = serve(&env, &format!("token = \"{TOKEN}\""));
    let hostile = "x'); DROP TABLE events; -- \" OR 1=1 %_";
    crawl(&server, hostile, 1, 40);
    let key = flagged_key(&env, &server, hostile);
    let admin = Admin::login(&server);
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    // Filters made of SQL: answered, matching only what holds them literally.
    for (filter, value, finds_it) in [
        ("q", "' OR '1'='1", false),
        ("q", "%", false),
        ("agent", "' OR 1=1 --", false),
        ("agent", "%", true),
        ("agent", "DROP TABLE events", true),
        ("agent", "_", true),
        // Wildcards match themselves only: unescaped, these would find the client.
        ("agent", "x%OR", false),
        ("agent", "D_OP", false),
    ] {
        let p = admin.get(&format!("/flags?{filter}={}", enc(value)));
        assert_eq!(p.status, 200, "{filter}={value}: {}", p.body);
        assert_eq!(
            p.body.contains(&key),
            finds_it,
            "{filter}={value:?} should {}find the client",
            if finds_it { "" } else { "not " }
        );
    }
    // The agent is stored as sent, the tables are whole, the chain checks out.
    let db = env.db();
    let stored: i64 = db
        .query_row(
            "SELECT count(*) FROM events_full WHERE user_agent = ?1",
            [hostile],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored > 0, "the agent is stored verbatim");
    let tables: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('events', 'clients')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 2);
    drop(db);
    common::assert_db_check(&env, "SQL metacharacters in agents and filters");
}
