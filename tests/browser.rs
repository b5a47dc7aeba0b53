//! A real browser sees a proxied page exactly as without faceprobe, and fetches neither the
//! canary nor the trap; a fetcher that parses the HTML and follows `<img src>` does take the
//! canary, and its fetch is in the store before the image reaches it.
//!
//! Headless Chromium (Debian's `chromium` and `chromium-driver`) loads a realistic page straight
//! from a static upstream and through `faceprobe serve` in proxy mode; both are scrolled to the
//! bottom and their screenshots must be identical to the pixel.
//!
//! Skipped with a notice when Chromium or chromedriver is missing, unless
//! FACEPROBE_REQUIRE_TOOLS=1 (set by scripts/test, which installs both).

mod common;

use common::{
    canary_token, fetch, http_agent, img_and_link_urls, is_whole_jpeg, same_origin, token_bytes,
    tool_available, wait_for_event, ChromeDriver, Env, Server,
};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::json;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The window: Chromium shows the page in all its width and most of its height.
const VIEWPORT: (u32, u32) = (1000, 800);

#[test]
fn a_browser_sees_the_page_unchanged_and_fetches_no_canary_while_a_scraper_does() {
    let Some(Scene {
        mut server,
        direct,
        proxied,
        upstream,
        _rt,
        env,
    }) = scene("")
    else {
        return;
    };
    assert!(
        proxied.injected >= 2,
        "the page Chromium got through faceprobe has no canary <img> and trap link in its DOM \
         ({} elements naming /_fp/)",
        proxied.injected
    );
    assert_eq!(direct.injected, 0);
    for r in &proxied.resources {
        assert!(
            !r.contains("/_fp/"),
            "Chromium fetched {r} through faceprobe"
        );
    }
    assert_eq!(
        paths(&direct.resources),
        paths(&proxied.resources),
        "Chromium fetched the same resources with and without faceprobe"
    );
    same_pixels(&direct.screenshot, &proxied.screenshot);
    assert!(
        direct.scroll_y > 0.0,
        "the page is taller than the window, so it was scrolled"
    );
    assert_eq!(direct.scroll_y, proxied.scroll_y, "same scroll position");
    assert!(direct.images >= 2 && direct.images == proxied.images);

    // Nothing under /_fp/ reached faceprobe while the browser loaded the page. The writer
    // commits in order: once the sentinel's event is in, every earlier one is.
    let agent = http_agent();
    fetch(&agent, &server.url("/sentinel-after-browser")).unwrap();
    wait_for_event(&env, "/sentinel-after-browser");
    let db = env.db();
    let pages: i64 = db
        .query_row(
            "SELECT count(*) FROM events WHERE path = '/' AND kind = 'page'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pages, 1, "Chromium's page view is recorded, once");
    let fp: Vec<(String, String)> = db
        .prepare(
            "SELECT path, kind FROM events \
             WHERE kind IN ('canary', 'trap') OR path LIKE '/_fp/%'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(fp.is_empty(), "the browser load fetched {fp:?}");
    drop(db);
    assert!(
        upstream.seen().iter().all(|p| !p.starts_with("/_fp/")),
        "faceprobe forwarded its own paths upstream: {:?}",
        upstream.seen()
    );

    // An HTML-parsing fetcher follows every <img src>, the hidden one too.
    let page_url = server.url("/");
    let page = fetch(&agent, &page_url).unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    let (imgs, links) = img_and_link_urls(&page.text());
    let mut canaries = Vec::new();
    for src in &imgs {
        let url = same_origin(&page_url, src).unwrap();
        let image = fetch(&agent, &url).unwrap();
        assert_eq!(image.status, 200, "{url}");
        if let Some(token) = canary_token(&url) {
            assert_canary_served_and_recorded(&env, &url, &token, &image);
            canaries.push(token);
        }
    }
    assert_eq!(canaries.len(), 1, "one canary per page view among {imgs:?}");

    // The trap link leads to a gallery of more canaries.
    let trap = links
        .iter()
        .filter_map(|l| same_origin(&page_url, l))
        .find(|l| l.contains("/_fp/g/"))
        .unwrap_or_else(|| panic!("no trap link among {links:?}"));
    let gallery = fetch(&agent, &trap).unwrap();
    assert_eq!(gallery.status, 200, "{trap}");
    assert!(gallery.content_type.starts_with("text/html"));
    let (gallery_imgs, _) = img_and_link_urls(&gallery.text());
    let deeper: Vec<String> = gallery_imgs
        .iter()
        .filter_map(|s| same_origin(&trap, s))
        .filter(|u| canary_token(u).is_some())
        .collect();
    assert!(!deeper.is_empty(), "the trap gallery holds canaries");
    let url = &deeper[0];
    let image = fetch(&agent, url).unwrap();
    assert_canary_served_and_recorded(&env, url, &canary_token(url).unwrap(), &image);
    let trap_path = &trap[trap.find("/_fp/g/").unwrap()..];
    wait_for_event(&env, trap_path);
    let (kind, token): (String, Vec<u8>) = env
        .db()
        .query_row(
            "SELECT kind, token FROM events WHERE path = ?1",
            [trap_path],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "trap");
    assert_eq!(
        token,
        token_bytes(&trap_path["/_fp/g/".len()..]),
        "a trap fetch names its token"
    );

    let robots = fetch(&agent, &server.url("/robots.txt")).unwrap();
    assert_eq!(robots.status, 200);
    assert!(
        robots.text().lines().any(|l| l.trim() == "Disallow: /_fp/"),
        "{}",
        robots.text()
    );

    let status = server.terminate();
    assert!(status.success(), "SIGTERM: {status}\n{}", server.log_text());
    let check = env.run(&["db", "check"]);
    assert!(
        check.status.success(),
        "db check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Structural selectors count every element: the block planted before `</body>` becomes the
/// body's last child, so `body > :last-child` no longer matches the page's own last element
/// (here the footer, which loses its border). Planting it there cannot pass this; kept to show
/// the limitation and to check a placement that would.
#[test]
#[ignore = "known limitation of planting the canary block before </body>"]
fn a_last_child_selector_still_matches_the_page_own_last_element() {
    let Some(scene) = scene("body > :last-child { border-bottom: 6px solid #c0392b; }") else {
        return;
    };
    same_pixels(&scene.direct.screenshot, &scene.proxied.screenshot);
}

/// A static upstream, faceprobe in proxy mode in front of it, and what Chromium showed of the
/// page each way; `None` (the test is skipped) when Chromium or chromedriver is missing.
/// Fields drop in order: the server is killed first, the temporary directory goes last.
struct Scene {
    server: Server,
    direct: Look,
    proxied: Look,
    upstream: Upstream,
    /// Runs the upstream.
    _rt: tokio::runtime::Runtime,
    env: Env,
}

fn scene(extra_css: &str) -> Option<Scene> {
    let chromium = tool_available("chromium", "apt-get install chromium")?;
    let chromedriver = tool_available("chromedriver", "apt-get install chromium-driver")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let upstream = rt.block_on(Upstream::start(format!("{STYLE}{extra_css}\n")));
    let env = Env::new();
    let addrs = env.configure_serve(
        &format!("mode = \"proxy\"\nupstream = \"http://{}\"", upstream.addr),
        "",
    );
    let server = env.serve(addrs);
    let driver = ChromeDriver::start(&chromedriver, &env.path("chromedriver.log"));
    let profile = env.path("chromium-profile");
    let (direct, proxied) = rt.block_on(async {
        let browser = driver.session(&chromium, &profile, VIEWPORT).await;
        let direct = look(&browser, &format!("http://{}/", upstream.addr)).await;
        let proxied = look(&browser, &server.url("/")).await;
        browser.close().await.unwrap();
        (direct, proxied)
    });
    Some(Scene {
        server,
        direct,
        proxied,
        upstream,
        _rt: rt,
        env,
    })
}

/// A served canary is a whole JPEG, and its fetch was committed before its body was sent.
fn assert_canary_served_and_recorded(env: &Env, url: &str, token: &str, image: &common::Fetched) {
    assert!(
        image.content_type.starts_with("image/jpeg"),
        "{url}: {}",
        image.content_type
    );
    assert!(is_whole_jpeg(&image.body), "{url}");
    image::load_from_memory_with_format(&image.body, image::ImageFormat::Jpeg)
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    // No waiting here: the record is committed before the body is sent.
    let rows: Vec<(String, i64, String)> = env
        .db()
        .prepare("SELECT kind, status, path FROM events WHERE token = ?1 AND kind = 'canary'")
        .unwrap()
        .query_map([token_bytes(token)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [("canary".to_string(), 200, format!("/_fp/c/{token}.jpg"))],
        "{url}: the fetch is in the store once the image is received"
    );
}

/// What Chromium showed and fetched for one page.
struct Look {
    screenshot: Vec<u8>,
    /// URLs of every sub-resource the page fetched (Resource Timing).
    resources: Vec<String>,
    /// `<img>` and `<a>` elements naming `/_fp/` in the DOM.
    injected: u64,
    /// Images not inside a `hidden` container.
    images: u64,
    scroll_y: f64,
}

/// Loads `url`, scrolls to the bottom, waits for every visible image (the lazy one below the
/// fold included) and two animation frames, and takes a screenshot.
async fn look(browser: &fantoccini::Client, url: &str) -> Look {
    browser.goto(url).await.unwrap();
    let state = r#"
        window.scrollTo(0, document.documentElement.scrollHeight);
        const visible = Array.from(document.images).filter(i => !i.closest('[hidden]'));
        return {
            ready: document.readyState === 'complete'
                && visible.every(i => i.complete && i.naturalWidth > 0),
            images: visible.length,
            injected: document.querySelectorAll('img[src*="/_fp/"], a[href*="/_fp/"]').length,
        };
    "#;
    let start = Instant::now();
    let info = loop {
        let info = browser.execute(state, vec![]).await.unwrap();
        if info["ready"] == json!(true) {
            break info;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{url}: the page's images did not load: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let settled = r#"
        const done = arguments[arguments.length - 1];
        window.scrollTo(0, document.documentElement.scrollHeight);
        requestAnimationFrame(() => requestAnimationFrame(() => done(window.scrollY)));
    "#;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scroll_y = browser.execute_async(settled, vec![]).await.unwrap();
    let screenshot = browser.screenshot().await.unwrap();
    let resources = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    Look {
        screenshot,
        resources: resources
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        injected: info["injected"].as_u64().unwrap(),
        images: info["images"].as_u64().unwrap(),
        scroll_y: scroll_y.as_f64().unwrap(),
    }
}

fn paths(urls: &[String]) -> BTreeSet<String> {
    urls.iter()
        .map(|u| {
            let rest = u.strip_prefix("http://").unwrap_or(u);
            rest[rest.find('/').unwrap_or(rest.len())..].to_string()
        })
        .collect()
}

/// Decoded pixels must be identical; on a difference both screenshots are kept for a look.
fn same_pixels(direct: &[u8], proxied: &[u8]) {
    let a = image::load_from_memory(direct).unwrap().to_rgba8();
    let b = image::load_from_memory(proxied).unwrap().to_rgba8();
    // The window's width; its height less what headless Chromium keeps for itself.
    assert_eq!(a.width(), VIEWPORT.0, "screenshot of the whole viewport");
    assert!(a.height() > VIEWPORT.1 / 2, "{:?}", a.dimensions());
    let differing = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
    if a.dimensions() != b.dimensions() || differing > 0 {
        let dir = std::env::temp_dir();
        let (pa, pb) = (
            dir.join("faceprobe-browser-direct.png"),
            dir.join("faceprobe-browser-proxied.png"),
        );
        std::fs::write(&pa, direct).unwrap();
        std::fs::write(&pb, proxied).unwrap();
        panic!(
            "the page through faceprobe looks different: {differing} pixels differ \
             ({:?} vs {:?}); see {} and {}",
            a.dimensions(),
            b.dimensions(),
            pa.display(),
            pb.display()
        );
    }
    // The screenshot shows the page, not a blank window: the footer colour is in it.
    assert!(
        a.pixels().any(|p| p.0 == [0x1f, 0x2a, 0x44, 0xff]),
        "the footer is not in the screenshot"
    );
}

/// A static site on a free port of 127.0.0.1, remembering the paths it was asked for.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn start(style: String) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let site = Arc::new(site(style));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (site, log) = (site.clone(), log.clone());
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let path = req.uri().path().to_string();
                    log.lock().unwrap().push(path.clone());
                    let response = match site.iter().find(|(p, _, _)| *p == path) {
                        Some((_, content_type, body)) => hyper::Response::builder()
                            .header("content-type", *content_type)
                            .body(Full::new(Bytes::from(body.clone()))),
                        None => hyper::Response::builder()
                            .status(404)
                            .header("content-type", "text/plain")
                            .body(Full::new(Bytes::from_static(b"not found\n"))),
                    };
                    async move { Ok::<_, Infallible>(response.unwrap()) }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// The site: a page with a stylesheet, a photo in view and a lazy one below the fold.
fn site(style: String) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("/", "text/html; charset=utf-8", page_html().into_bytes()),
        ("/style.css", "text/css", style.into_bytes()),
        ("/photo.png", "image/png", photo(640, 360, 0)),
        ("/harbour.png", "image/png", photo(480, 300, 1)),
    ]
}

/// A smooth picture with detail, so that any shift or rescale would change pixels.
fn photo(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let r = (x * 255 / width) as u8;
        let g = (y * 255 / height) as u8;
        let b = (((x / 16 + y / 16 + seed) % 2) * 90 + 80) as u8;
        image::Rgb([r, g, b])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

const STYLE: &str = r#"
* { box-sizing: border-box; }
html { background: #f4f1ea; }
body { margin: 0; font: 17px/1.55 "DejaVu Serif", Georgia, serif; color: #222; }
header { background: #fff; border-bottom: 3px solid #c0392b; padding: 14px 40px;
         display: flex; justify-content: space-between; align-items: center; }
header .brand { font: bold 24px "DejaVu Sans", sans-serif; letter-spacing: .04em; }
nav a { margin-left: 22px; color: #c0392b; text-decoration: none; font-family: sans-serif; }
main { max-width: 760px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 34px; line-height: 1.2; margin: 10px 0 6px; }
.byline { color: #777; font-style: italic; margin-bottom: 20px; }
figure { margin: 0 0 18px; }
figure img { display: block; width: 100%; height: auto; border-radius: 4px; }
figcaption { font-size: 14px; color: #555; margin-top: 6px; }
blockquote { border-left: 4px solid #c0392b; margin: 20px 0; padding: 4px 18px; background: #fff; }
table { border-collapse: collapse; width: 100%; margin: 16px 0; font-family: sans-serif; }
td, th { border: 1px solid #ccc; padding: 6px 10px; text-align: left; }
tr:nth-child(even) td { background: #fbfaf7; }
aside { background: #fff; padding: 12px 18px; border: 1px dashed #bbb; margin: 24px 0; }
footer { background: #1f2a44; color: #e9ecf3; padding: 30px 40px 60px; font-family: sans-serif; }
footer a { color: #9fc1ff; }
body > * + * { margin-top: 0; }
"#;

fn page_html() -> String {
    let para = "The harbour wakes before the town does. Fishing boats come in on the falling \
                tide, gulls circle the auction hall, and the first coffee of the day is poured \
                at the bar on the quay, where the same four people have argued about the \
                weather for thirty years. We spent a week there with a camera and a notebook.";
    let paras: String = (1..=6)
        .map(|i| format!("    <p>{para} (Part {i}.)</p>\n"))
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Morning at the harbour — A photo journal</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body>
  <header>
    <span class="brand">Tidewater Journal</span>
    <nav><a href="/">Home</a><a href="/stories">Stories</a><a href="/about">About</a></nav>
  </header>
  <main>
    <h1>Morning at the harbour</h1>
    <p class="byline">Words and pictures by A. Nonymous, 3 March</p>
    <figure>
      <img src="/photo.png" width="640" height="360" alt="Boats at the quay">
      <figcaption>The quay at half past six.</figcaption>
    </figure>
{paras}    <blockquote>“You photograph the boats, but the boats are not the story.”</blockquote>
    <table>
      <tr><th>Boat</th><th>Catch (kg)</th><th>Back at</th></tr>
      <tr><td>Marie-Jeanne</td><td>412</td><td>05:40</td></tr>
      <tr><td>Saint-Guénolé</td><td>268</td><td>06:05</td></tr>
      <tr><td>Les Trois Frères</td><td>530</td><td>06:20</td></tr>
    </table>
    <figure>
      <img src="/harbour.png" width="480" height="300" loading="lazy" alt="The auction hall">
      <figcaption>The auction hall, below the fold.</figcaption>
    </figure>
{paras}    <aside>Prints of these photographs are for sale; write to us.</aside>
  </main>
  <footer>
    <p>© 2026 Tidewater Journal · <a href="/contact">Contact</a> · <a href="/privacy">Privacy</a></p>
  </footer>
</body>
</html>
"#
    )
}
