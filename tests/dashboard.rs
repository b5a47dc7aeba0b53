//! The review dashboard works end to end in a real browser. Real traffic through
//! `faceprobe serve` gets a harvester flagged; a reviewer then, in headless Chromium on the
//! admin listener: is refused with a wrong token and signs in with the right one; finds the
//! harvester on the flags with a sentence saying why; confirms it with a note (a case opens);
//! builds its evidence bundle and downloads it (`faceprobe evidence verify` accepts the file
//! and its SHA-256 is the one the page shows); traces a re-encoded canary found elsewhere back
//! to the harvester by its picture and attaches it to the case; dismisses a person and undoes it
//! from the allow-list; sees a hostile user agent as text, never as script; cannot get a form
//! carried out without its CSRF token; and signs out, after which the dashboard is closed.
//!
//! Every page is also captured at its full length at laptop (1366 px) and phone (390 px)
//! width: into docs/screenshots/ when FACEPROBE_SCREENSHOTS=1, else into the test's temporary
//! directory.
//!
//! Skipped with a notice when Chromium or chromedriver is missing, unless
//! FACEPROBE_REQUIRE_TOOLS=1 (set by scripts/test, which installs both).

mod common;

use common::{
    crawl, fetch_with, http_agent, tool_available, wait_for_client, ChromeDriver, Env, Server,
};
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DETECT_FAST: &str = "[detect]\npoll_ms = 50\npersist_secs = 1\n";
const ADMIN_TOKEN: &str = "a-test-admin-token-0123456789";
const REVIEWER: &str = "Ada Reviewer";
const HARVESTER_UA: &str = "img2dataset/1.5.0 (+https://github.com/rom1504/img2dataset)";
/// Markup and a script URL in a user agent: the dashboard must show it as text.
const HOSTILE_UA: &str = "<script>alert(1)</script>\"' onmouseover=x javascript:alert(2)//";
const PERSON_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                         Chrome/131.0.0.0 Safari/537.36";
/// The longest any one thing is waited for.
const WAIT: Duration = Duration::from_secs(20);
/// Screenshot widths, in CSS pixels (the scale factor is 1).
const LAPTOP: u32 = 1366;
const PHONE: u32 = 390;
/// The tallest full-page screenshot.
const MAX_SHOT_HEIGHT: u32 = 8000;
/// The XMP packet's APP1 prefix, which carries a canary's own marking.
const XMP_PREFIX: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_takes_a_harvester_from_flag_to_verified_bundle_in_the_browser() {
    let Some(chromium) = tool_available("chromium", "apt-get install chromium") else {
        return;
    };
    let Some(chromedriver) = tool_available("chromedriver", "apt-get install chromium-driver")
    else {
        return;
    };
    let started = Instant::now();
    let env = Env::new();
    let addrs = env.configure_serve(
        "mode = \"demo\"",
        &format!("{DETECT_FAST}\n[review]\ntoken = \"{ADMIN_TOKEN}\"\n"),
    );
    let server = env.serve(addrs);
    let scene = traffic(&env, &server);
    eprintln!("traffic and flags: {:?}", started.elapsed());

    let driver = ChromeDriver::start(&chromedriver, &env.path("chromedriver.log"));
    let browser = driver
        .session(&chromium, &env.path("chromium-profile"), (LAPTOP, 900))
        .await;
    let d = Dash {
        browser,
        base: format!("http://{}", addrs.admin),
        server: &server,
        shots: screenshot_dir(&env),
    };
    d.a_wrong_token_is_refused().await;
    d.sign_in().await;
    d.the_harvester_is_on_the_flags(&scene.harvester).await;
    d.confirm(&scene.harvester).await;
    d.export_download_and_verify(&env, &scene.harvester).await;
    d.match_and_attach(&env, &scene).await;
    d.dismiss_and_undo(&scene.person).await;
    d.a_hostile_agent_is_only_text(&scene.hostile).await;
    d.a_form_without_its_csrf_token_is_refused(&env, &scene.harvester)
        .await;
    d.sign_out().await;
    d.browser.close().await.unwrap();
    eprintln!("dashboard test: {:?}", started.elapsed());
}

// ---- The traffic: a harvester, a hostile agent, a person.

/// What the traffic left: the three clients' keys and a canary the harvester took.
struct Scene {
    harvester: String,
    hostile: String,
    person: String,
    canary: Vec<u8>,
    canary_token: String,
}

fn traffic(env: &Env, server: &Server) -> Scene {
    let (canary_token, canary) = crawl(server, HARVESTER_UA, 3, 40)
        .unwrap_or_else(|| panic!("the harvester took no canary\n{}", server.log_text()));
    crawl(server, HOSTILE_UA, 1, 3);
    browse_like_a_person(server);
    let harvester = wait_for_client(env, server, true, "the harvester at level harvester", |c| {
        c["agent"] == HARVESTER_UA && c["level"] == "harvester" && c["kind"] == "client"
    });
    let hostile = wait_for_client(env, server, true, "the hostile agent flagged", |c| {
        c["agent"] == HOSTILE_UA
    });
    let person = wait_for_client(env, server, false, "the person recorded", |c| {
        c["agent"] == PERSON_UA
    });
    let key = |c: &Value| c["key"].as_str().unwrap().to_string();
    Scene {
        harvester: key(&harvester),
        hostile: key(&hostile),
        person: key(&person),
        canary,
        canary_token,
    }
}

/// A person in Chrome: browser headers, a referer, pages with their CSS, script and images.
/// They also open /private/ (an old bookmark, say), which robots.txt disallows: a client that
/// did nothing the detector scores is never written to the store, so it would have no page
/// to be dismissed from.
fn browse_like_a_person(server: &Server) {
    let agent = http_agent();
    for page in ["/", "/gallery/1", "/about", "/private/"] {
        let referer = server.url("/");
        let get = |path: &str, dest: &str| {
            let document = dest == "document";
            let accept = if document {
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            } else {
                "*/*"
            };
            let mode = if document { "navigate" } else { "no-cors" };
            let r = fetch_with(
                &agent,
                &server.url(path),
                &[
                    ("User-Agent", PERSON_UA),
                    ("Accept", accept),
                    ("Accept-Language", "en-GB,en;q=0.9"),
                    ("Sec-Fetch-Dest", dest),
                    ("Sec-Fetch-Mode", mode),
                    ("Sec-Fetch-Site", "same-origin"),
                    ("Referer", &referer),
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.status, 200, "{path}");
        };
        get(page, "document");
        get("/static/site.css", "style");
        get("/static/site.js", "script");
        if page == "/gallery/1" {
            for i in 1..=4 {
                get(&format!("/static/img/{i}.jpg"), "image");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The canary as a face search engine would return it: decoded, scaled to 85 % and encoded
/// again at quality 70, which leaves its XMP marking behind.
fn reencoded(canary: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory_with_format(canary, image::ImageFormat::Jpeg).unwrap();
    let (w, h) = (img.width() * 85 / 100, img.height() * 85 / 100);
    let small = img.resize_exact(w, h, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70)
        .encode_image(&small.to_rgb8())
        .unwrap();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where screenshots go: the committed folder when asked for, else the temporary directory.
fn screenshot_dir(env: &Env) -> PathBuf {
    let dir = match std::env::var("FACEPROBE_SCREENSHOTS").as_deref() {
        Ok("1") => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"),
        _ => env.path("screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- The browser on the dashboard.

/// Chromium on the admin listener, with what a failure message needs.
struct Dash<'a> {
    browser: Client,
    /// `http://127.0.0.1:PORT` of the admin listener.
    base: String,
    server: &'a Server,
    shots: PathBuf,
}

impl Dash<'_> {
    // -- The steps, in order.

    async fn a_wrong_token_is_refused(&self) {
        self.open("/login").await;
        self.shoot("login").await;
        self.fill("form#login input#name", REVIEWER).await;
        self.fill("form#login input#token", "not-the-admin-token-at-all")
            .await;
        self.click("form#login button[type=submit]").await;
        self.wait_for_text("p.error", "Wrong token.").await;
        assert_eq!(self.path().await, "/login", "still on the sign-in page");
        assert!(
            self.browser.get_named_cookie("fp_session").await.is_err(),
            "a wrong token opened a session"
        );
        // The same refusal as a plain request, to see its status.
        let r = http_agent()
            .post(&self.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send("name=x&token=not-the-admin-token-at-all&next=%2F")
            .unwrap();
        assert_eq!(r.status(), 401, "a wrong token is answered 401");
    }

    async fn sign_in(&self) {
        self.fill("form#login input#name", REVIEWER).await;
        self.fill("form#login input#token", ADMIN_TOKEN).await;
        self.click("form#login button[type=submit]").await;
        self.wait_for_path("/").await;
        self.wait_for_text("main h1", "Overview").await;
        self.shoot("overview").await;
    }

    /// The harvester has a row on the flags with a reason; its link opens its page.
    async fn the_harvester_is_on_the_flags(&self, key: &str) {
        self.open("/flags").await;
        self.shoot("flags").await;
        let row = self.row("table#flags tr.flag", "a.key", key).await;
        let why = self.text_in(&row, "td.why").await;
        assert!(
            why.len() > 10 && why.ends_with('.') && why != "No reason recorded yet.",
            "the flag of {key} says why in a sentence: {why:?}"
        );
        self.within(&row, "a.key").await.click().await.unwrap();
        self.wait_for_path(&format!("/clients/{key}")).await;
        let h1 = self.text("main h1").await;
        assert!(
            h1.contains(key),
            "the client page's title names {key}: {h1:?}"
        );
    }

    /// Confirming with a note records the decision, by the reviewer, and opens a case.
    async fn confirm(&self, key: &str) {
        let note = "Took canaries from the trap galleries; confirmed from the browser.";
        assert!(
            self.all("span.tag.confirmed").await.is_empty(),
            "a case is open before anyone confirmed"
        );
        self.fill("form.review textarea#note", note).await;
        self.click("form.review button[name=decision][value=confirm]")
            .await;
        self.wait_for_path(&format!("/clients/{key}")).await;
        self.find("p.notice").await;
        let decision = self
            .find("ol#reviews li.decision.confirm")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            decision.contains(REVIEWER) && decision.contains(note),
            "the decision names its reviewer and note: {decision:?}"
        );
        self.find("span.tag.confirmed").await;
    }

    /// The bundle built from the page downloads with the session, verifies, and hashes to
    /// the SHA-256 the page shows.
    async fn export_download_and_verify(&self, env: &Env, key: &str) {
        assert!(self.all("table#bundles").await.is_empty(), "no bundle yet");
        self.click("form.export button").await;
        let link = self.find("table#bundles a.download").await;
        assert_eq!(
            self.all("table#bundles tbody tr").await.len(),
            1,
            "one bundle built"
        );
        assert_eq!(self.path().await, format!("/clients/{key}"));
        self.find("p.notice").await;
        let shown_sha = self.text("table#bundles td.sha256").await;
        let href = link.attr("href").await.unwrap().expect("a download link");
        let zip = self.download(&href).await;
        assert!(zip.starts_with(b"PK\x03\x04"), "{href} is a zip");
        assert_eq!(
            sha256_hex(&zip),
            shown_sha.trim(),
            "the downloaded file's SHA-256 is the one on the page"
        );
        let file = env.path("downloaded-bundle.zip");
        std::fs::write(&file, &zip).unwrap();
        let o = env.run(&["evidence", "verify", file.to_str().unwrap()]);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "evidence verify:\n{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("all ") && l.ends_with(" checks hold")),
            "evidence verify:\n{out}"
        );
    }

    /// A re-encoded canary uploaded on /match is traced, by its picture, to the harvester's
    /// fetch; attached, it is listed in the harvester's case.
    async fn match_and_attach(&self, env: &Env, scene: &Scene) {
        let key = &scene.harvester;
        assert!(contains(&scene.canary, XMP_PREFIX), "a canary carries XMP");
        let found = reencoded(&scene.canary);
        assert!(
            !contains(&found, XMP_PREFIX),
            "the re-encoded copy has no XMP"
        );
        let file = env.path("found-elsewhere.jpg");
        std::fs::write(&file, &found).unwrap();

        self.open("/match").await;
        self.find("form#match input#image")
            .await
            .send_keys(file.to_str().unwrap())
            .await
            .unwrap();
        self.click("form#match button[type=submit]").await;
        let found_path = self
            .wait_for_path_where("/found/{id}", |p| {
                p.strip_prefix("/found/")
                    .is_some_and(|id| id.parse::<u64>().is_ok())
            })
            .await;
        let row = self
            .row("table#matches tr.match", "code", &scene.canary_token)
            .await;
        let confidence = self.text_in(&row, "td.confidence").await;
        let value: f64 = confidence
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("confidence {confidence:?}: {e}"));
        assert!(value > 0.5, "confidence {value} of {}", scene.canary_token);
        let how = self.text_in(&row, "td:nth-child(4)").await;
        assert!(how.contains("hashes"), "matched by its picture: {how:?}");
        let mut fetchers = Vec::new();
        for a in row.find_all(Locator::Css("a.client")).await.unwrap() {
            fetchers.push(a.attr("href").await.unwrap().unwrap_or_default());
        }
        assert!(
            fetchers.contains(&format!("/clients/{key}")),
            "the canary's fetch links to {key}: {fetchers:?}"
        );
        self.shoot("found").await;

        self.find("form.attach select#key")
            .await
            .select_by_value(key)
            .await
            .unwrap();
        self.click("form.attach button[type=submit]").await;
        self.wait_for_path(&format!("/clients/{key}")).await;
        self.find("p.notice").await;
        let attached = self.find("ul.found a").await.attr("href").await.unwrap();
        assert_eq!(
            attached.as_deref(),
            Some(found_path.as_str()),
            "the found image is listed in the case"
        );
        self.shoot("client").await;

        self.open("/cases").await;
        self.row("table#cases tbody tr", "a.key", key).await;
        self.shoot("cases").await;
    }

    /// A person's client dismissed from its page is on the allow-list; Undo takes it off.
    async fn dismiss_and_undo(&self, key: &str) {
        self.open(&format!("/clients/{key}")).await;
        self.fill(
            "form.review textarea#note",
            "A person in Chrome, reading the galleries.",
        )
        .await;
        self.click("form.review button[name=decision][value=dismiss]")
            .await;
        self.wait_for_path(&format!("/clients/{key}")).await;
        self.find("p.notice").await;
        self.find("ol#reviews li.decision.dismiss").await;

        self.open("/allow").await;
        self.row("table#allow tbody tr", "a.key", key).await;
        self.shoot("allow").await;
        // The screenshots reloaded the page: find the row again.
        let row = self.row("table#allow tbody tr", "a.key", key).await;
        self.within(&row, "form.undo button")
            .await
            .click()
            .await
            .unwrap();
        self.wait_for_path(&format!("/clients/{key}")).await;
        self.find("p.notice").await;
        self.find("ol#reviews li.decision.undismiss").await;
        self.open("/allow").await;
        self.wait_for_text("main h1", "Allow-list").await;
        for a in self.all("table#allow a.key").await {
            let text = a.text().await.unwrap();
            assert_ne!(text, key, "{key} is still on the allow-list after Undo");
        }
    }

    /// A user agent made of markup is shown as text: no script element, no dialog.
    async fn a_hostile_agent_is_only_text(&self, key: &str) {
        self.open(&format!("/clients/{key}")).await;
        let agent = self.text("dd.agent").await;
        assert_eq!(agent, HOSTILE_UA, "the user agent is shown as sent");
        let visible = self.text("body").await;
        assert!(
            visible.contains("<script>alert(1)</script>"),
            "the markup is visible as text"
        );
        match self.browser.get_alert_text().await {
            Err(e) if e.is_no_such_alert() => {}
            other => panic!("a dialog is open on the page of {key}: {other:?}"),
        }
        assert!(
            self.all("script").await.is_empty(),
            "a <script> element is in the page of {key}"
        );
    }

    /// A review form sent without the CSRF field is refused and changes nothing.
    async fn a_form_without_its_csrf_token_is_refused(&self, env: &Env, key: &str) {
        let cookie = self.session_cookie().await;
        let r = http_agent()
            .post(&self.url(&format!("/clients/{key}/review")))
            .header("Cookie", &cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send("decision=dismiss&note=x")
            .unwrap();
        assert_eq!(r.status(), 403, "a review without its CSRF token");
        let db = env.db();
        let count = |sql: &str| -> i64 { db.query_row(sql, [key], |r| r.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM allow_list WHERE key = ?1"),
            0,
            "{key} was put on the allow-list"
        );
        assert_eq!(
            count("SELECT count(*) FROM reviews WHERE key = ?1 AND decision = 'dismiss'"),
            0,
            "a dismissal of {key} was recorded"
        );
    }

    /// Signing out ends the session: the browser and the old cookie are sent to /login.
    async fn sign_out(&self) {
        let cookie = self.session_cookie().await;
        self.click("header form[action=\"/logout\"] button").await;
        self.wait_for_path("/login").await;
        self.open("/").await;
        self.wait_for_path("/login").await;
        let r = http_agent()
            .get(&self.url("/"))
            .header("Cookie", &cookie)
            .call()
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            r.status().is_redirection() && location.starts_with("/login"),
            "the old session still opens the overview: {} {location:?}",
            r.status()
        );
    }

    // -- Small helpers.

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn open(&self, path: &str) {
        let url = self.url(path);
        if let Err(e) = self.browser.goto(&url).await {
            self.fail(&format!("opening {url}: {e}")).await;
        }
    }

    /// The current page's path, without query or fragment.
    async fn path(&self) -> String {
        self.browser.current_url().await.unwrap().path().to_string()
    }

    async fn wait_for_path(&self, path: &str) {
        self.wait_for_path_where(path, |p| p == path).await;
    }

    /// Waits until the browser is on a page whose path is `wanted` (`what` says which).
    async fn wait_for_path_where(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let path = self.path().await;
            if wanted(&path) {
                return path;
            }
            if start.elapsed() > WAIT {
                self.fail(&format!("waited {WAIT:?} to be on {what}, still on {path}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element `css` selects, waited for.
    async fn find(&self, css: &str) -> Element {
        match self
            .browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => self.fail(&format!("waited {WAIT:?} for {css}: {e}")).await,
        }
    }

    /// Every element `css` selects now.
    async fn all(&self, css: &str) -> Vec<Element> {
        self.browser.find_all(Locator::Css(css)).await.unwrap()
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn within(&self, parent: &Element, css: &str) -> Element {
        match parent.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no {css} in its row: {e}")).await,
        }
    }

    async fn text_in(&self, parent: &Element, css: &str) -> String {
        self.within(parent, css).await.text().await.unwrap()
    }

    /// Waits until `css` shows exactly `text`.
    async fn wait_for_text(&self, css: &str, text: &str) {
        let start = Instant::now();
        loop {
            let now = self.text(css).await;
            if now.trim() == text {
                return;
            }
            if start.elapsed() > WAIT {
                self.fail(&format!(
                    "waited {WAIT:?} for {css} to say {text:?}; it says {now:?}"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the row of `rows` whose `cell` says `text`.
    async fn row(&self, rows: &str, cell: &str, text: &str) -> Element {
        let start = Instant::now();
        loop {
            let mut seen = Vec::new();
            for row in self.all(rows).await {
                if let Ok(c) = row.find(Locator::Css(cell)).await {
                    let t = c.text().await.unwrap();
                    if t.trim() == text {
                        return row;
                    }
                    seen.push(t);
                }
            }
            if start.elapsed() > WAIT {
                self.fail(&format!(
                    "waited {WAIT:?} for a row {rows} whose {cell} says {text:?}; they say {seen:?}"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        if let Err(err) = e.click().await {
            self.fail(&format!("clicking {css}: {err}")).await;
        }
    }

    /// The browser's session cookie, as a `Cookie` header.
    async fn session_cookie(&self) -> String {
        let c = self
            .browser
            .get_named_cookie("fp_session")
            .await
            .expect("the browser has a session cookie");
        format!("fp_session={}", c.value())
    }

    /// GET `href` of the dashboard with the browser's session, as the download would.
    async fn download(&self, href: &str) -> Vec<u8> {
        let cookie = self.session_cookie().await;
        let r = fetch_with(&http_agent(), &self.url(href), &[("Cookie", &cookie)])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "{href}: {}", r.text());
        assert_eq!(r.content_type, "application/zip", "{href}");
        r.body
    }

    /// Full-page screenshots of the current page at laptop and phone width, as
    /// `dashboard-{name}-{laptop|phone}.png`, once its images are in; the window is
    /// laptop-sized again after.
    async fn shoot(&self, name: &str) {
        for (label, width) in [("laptop", LAPTOP), ("phone", PHONE)] {
            self.viewport(width, 600).await;
            self.browser.refresh().await.unwrap();
            let height = self
                .browser
                .execute("return document.documentElement.scrollHeight;", vec![])
                .await
                .unwrap()
                .as_u64()
                .unwrap();
            let height = u32::try_from(height).unwrap().min(MAX_SHOT_HEIGHT);
            self.viewport(width, height).await;
            self.wait_for_images(&format!("{name} at {label} width"))
                .await;
            let png = self.browser.screenshot().await.unwrap();
            let shot = image::load_from_memory(&png).unwrap();
            assert_eq!(
                (shot.width(), shot.height()),
                (width, height),
                "the {name} screenshot at {label} width shows the whole page"
            );
            let file = self.shots.join(format!("dashboard-{name}-{label}.png"));
            std::fs::write(&file, &png).unwrap();
        }
        self.viewport(LAPTOP, 900).await;
    }

    /// Sizes the window so that the page gets `width` × `height` CSS pixels, and waits two
    /// frames for the layout.
    async fn viewport(&self, width: u32, height: u32) {
        let inner = || async {
            let v = self
                .browser
                .execute("return [window.innerWidth, window.innerHeight];", vec![])
                .await
                .unwrap();
            (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
        };
        self.browser.set_window_size(width, height).await.unwrap();
        let (w, h) = inner().await;
        if (w, h) != (u64::from(width), u64::from(height)) {
            // The window's frame takes the difference.
            let dw = u64::from(width) - w.min(u64::from(width));
            let dh = u64::from(height) - h.min(u64::from(height));
            self.browser
                .set_window_size(width + dw as u32, height + dh as u32)
                .await
                .unwrap();
        }
        let settled = "const done = arguments[arguments.length - 1];
                       requestAnimationFrame(() => requestAnimationFrame(() => done(true)));";
        self.browser.execute_async(settled, vec![]).await.unwrap();
    }

    /// Waits until every image in the window has loaded (the lazy ones included, now that
    /// the window holds them); fails when one is broken.
    async fn wait_for_images(&self, page: &str) {
        let state = "const shown = Array.from(document.images)
                         .filter(i => i.getBoundingClientRect().top < window.innerHeight);
                     return {
                         loading: shown.filter(i => !i.complete).length,
                         broken: shown.filter(i => i.complete && i.naturalWidth === 0)
                                      .map(i => i.getAttribute('src')),
                     };";
        let start = Instant::now();
        loop {
            let v = self.browser.execute(state, vec![]).await.unwrap();
            let broken = v["broken"].as_array().map_or(0, Vec::len);
            if broken > 0 {
                self.fail(&format!("broken images on {page}: {}", v["broken"]))
                    .await;
            }
            if v["loading"] == 0 {
                return;
            }
            if start.elapsed() > WAIT {
                self.fail(&format!("waited {WAIT:?} for the images of {page}: {v}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails the test with what was awaited, where the browser is, what the page says and
    /// the server's log.
    async fn fail(&self, what: &str) -> ! {
        let url = self.browser.current_url().await.map(|u| u.to_string());
        let text = self
            .browser
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
            .unwrap_or_default();
        let text: String = text.as_str().unwrap_or("").chars().take(3000).collect();
        panic!(
            "{what}\nbrowser at {url:?}, showing:\n{text}\n\nserver log:\n{}",
            self.server.log_text()
        );
    }
}
