//! Embed mode behind Debian's nginx, for real: nginx on a loopback port serves a static site
//! and includes deploy/nginx/faceprobe.conf (the file users copy), faceprobe in embed mode
//! beside it. A page fetched through nginx carries the canary block (SSI includes
//! `/_fp/snippet`); a scraper, from its own loopback address, that reads robots.txt, takes the
//! canary and walks the trap is recorded under its own address, not nginx's, and is flagged;
//! each canary's fetch is in the store as soon as its body has arrived; an address the client
//! puts in `X-Forwarded-For` is believed neither through nginx nor straight from the client.
//!
//! Skipped with a notice when nginx is missing, unless FACEPROBE_REQUIRE_TOOLS=1 (set by
//! scripts/test, which installs it).

mod common;

use common::{tool_available, wait_for_client, Env, Fetched, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DETECT_FAST: &str = "[detect]\npoll_ms = 50\npersist_secs = 1\n";
const SCRAPER: &str = "img2dataset/1.5.0 (+https://github.com/rom1504/img2dataset)";
/// The scraper's own address: nginx reaches faceprobe from 127.0.0.1.
const SCRAPER_IP: [u8; 4] = [127, 0, 0, 3];

/// GET `path` from `to`, sent from the scraper's own address with its agent and `headers`.
fn get(to: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut all = vec![("user-agent", SCRAPER)];
    all.extend_from_slice(headers);
    common::get_from(SCRAPER_IP.into(), to, path, &all)
}

/// Debian's nginx on a free loopback port, killed when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Serves `site` and includes the committed faceprobe.conf, with faceprobe at `faceprobe`.
    fn start(binary: &Path, dir: &Path, site: &Path, faceprobe: SocketAddr) -> Nginx {
        let addr = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        let snippet = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/faceprobe.conf");
        let temp = dir.join("temp");
        std::fs::create_dir_all(&temp).unwrap();
        // As root nginx would hand its workers to "nobody", who cannot read the test's folders.
        // SAFETY: geteuid(2) has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}\ndaemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n\
             proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n\
             uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
             types {{ text/html html; image/jpeg jpg; }}\n\
             upstream faceprobe {{ server {faceprobe}; keepalive 16; }}\n\
             server {{\n    listen {addr};\n    root {site};\n    include {snippet};\n\
             location / {{ ssi on; }}\n  }}\n}}\n",
            dir = dir.display(),
            t = temp.display(),
            site = site.display(),
            snippet = snippet.display(),
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut nginx = Nginx {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", nginx.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nginx did not listen:\n{}",
                nginx.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn log(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address recorded with the last event of `path` (`path` is unique to the request).
fn recorded_address(env: &Env, path: &str, query: Option<&str>) -> Option<String> {
    env.db()
        .query_row(
            "SELECT coalesce(client_ip, ip_pseudonym) FROM events_full
             WHERE path = ?1 AND query IS ?2 ORDER BY id DESC LIMIT 1",
            rusqlite::params![path, query],
            |r| r.get(0),
        )
        .ok()
}

/// The static site: pages that include the canary block where the template says so.
fn site(dir: &Path) -> PathBuf {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("photos")).unwrap();
    let page = |title: &str, body: &str| {
        format!(
            "<!doctype html><html><head><title>{title}</title></head><body>{body}\n\
             <!--# include virtual=\"/_fp/snippet\" -->\n</body></html>\n"
        )
    };
    std::fs::write(
        site.join("index.html"),
        page(
            "Photos",
            "<h1>Photos</h1><img src=\"/photos/a.jpg\" alt=\"\">",
        ),
    )
    .unwrap();
    std::fs::write(site.join("photos/a.jpg"), [0xFF, 0xD8, 0xFF, 0xD9]).unwrap();
    site
}

#[test]
fn a_scraper_through_nginx_is_recorded_under_its_own_address_and_flagged() {
    let nginx_bin = tool_available("nginx", "apt-get install nginx").or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    });
    let Some(nginx_bin) = nginx_bin else {
        return;
    };
    let env = Env::new();
    let addrs = env.configure_serve(
        "mode = \"embed\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
        DETECT_FAST,
    );
    let server: Server = env.serve(addrs);
    let nginx = Nginx::start(
        &nginx_bin,
        &env.path("nginx"),
        &site(env.dir.path()),
        addrs.public,
    );
    let via = nginx.addr;
    let scraper = std::net::IpAddr::from(SCRAPER_IP).to_string();

    let robots = get(via, "/robots.txt", &[]);
    assert_eq!(robots.status, 200, "{}", nginx.log());
    assert!(String::from_utf8_lossy(&robots.body).contains("Disallow: /_fp/"));

    // The page, through nginx, with the block SSI fetched from faceprobe for this view.
    let page = get(via, "/", &[("x-forwarded-for", "198.51.100.7")]);
    assert_eq!(page.status, 200, "{}", nginx.log());
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(html.contains("<h1>Photos</h1>"), "{html}");
    let (imgs, links) = common::img_and_link_urls(&html);
    let canary = imgs
        .iter()
        .find(|s| s.starts_with("/_fp/c/"))
        .unwrap_or_else(|| panic!("no canary in the page nginx served:\n{html}"))
        .clone();
    let trap = links
        .iter()
        .find(|s| s.starts_with("/_fp/g/"))
        .unwrap_or_else(|| panic!("no trap link in:\n{html}"))
        .clone();

    // The canary through nginx: its fetch is in the store as soon as its body arrived,
    // under the scraper's address (nginx's X-Forwarded-For), whatever the client claimed.
    let image = get(via, &canary, &[("x-forwarded-for", "198.51.100.7")]);
    assert_eq!(image.status, 200, "{}", nginx.log());
    assert!(common::is_whole_jpeg(&image.body));
    assert_eq!(
        recorded_address(&env, &canary, None).as_deref(),
        Some(scraper.as_str()),
        "the canary's fetch is recorded, under the scraper's own address"
    );
    let gallery = get(via, &trap, &[]);
    assert_eq!(gallery.status, 200);
    let (more, _) = common::img_and_link_urls(&String::from_utf8_lossy(&gallery.body));
    for src in more.iter().filter(|s| s.starts_with("/_fp/c/")).take(3) {
        assert_eq!(get(via, src, &[]).status, 200);
        assert_eq!(
            recorded_address(&env, src, None).as_deref(),
            Some(scraper.as_str())
        );
    }
    let flagged = wait_for_client(&env, &server, true, "the scraper flagged", |c| {
        c["agent"] == SCRAPER && c["level"] == "harvester"
    });
    assert_eq!(flagged["address"], scraper, "flagged under its own address");

    // Straight to faceprobe, the same scraper forges X-Forwarded-For: not believed.
    let direct = get(
        addrs.public,
        "/robots.txt?direct=1",
        &[
            ("x-forwarded-for", "198.51.100.9"),
            ("forwarded", "for=198.51.100.9"),
        ],
    );
    assert_eq!(direct.status, 200);
    common::wait_for_event(&env, "/robots.txt");
    let start = Instant::now();
    let address = loop {
        if let Some(a) = recorded_address(&env, "/robots.txt", Some("direct=1")) {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never recorded");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(address, scraper, "the forged address is not believed");
    let forged: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM events WHERE client_ip LIKE '198.51.100.%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(forged, 0, "no event carries an address a client made up");
}
