//! The five behaviours: a person in a browser, a polite declared crawler, a bulk harvester, a
//! disguised harvester spread over many addresses, and a rendering harvester. Each is written
//! as the real thing behaves, from what it reads in the pages it gets, not from knowledge of
//! the demo site; each stops at its request budget or at the run's deadline, whichever first.

use super::agents::{
    disguised_headers, polite_headers, Browser, Dest, Library, Visit, POLITE_TOKEN,
    RENDERING_BROWSER,
};
use super::net::{now_ms, Net, Page};
use futures_util::StreamExt;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::{sleep, sleep_until, Instant};

/// Requests an actor may still make.
struct Budget(AtomicUsize);

impl Budget {
    fn new(n: usize) -> Budget {
        Budget(AtomicUsize::new(n))
    }

    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `d` scaled by a random factor in 0.7..1.3: nobody's clock is exact.
fn jitter(rng: &mut ChaCha8Rng, d: Duration) -> Duration {
    d.mul_f64(rng.random_range(0.7..1.3))
}

/// A browser loads what a page needs, several at a time, with the page as Referer.
async fn load(
    net: &Net,
    browser: &Browser,
    subs: Vec<(String, Dest)>,
    visit: Visit<'_>,
    at_once: usize,
) {
    futures_util::stream::iter(subs)
        .map(|(path, dest)| {
            let headers = browser.headers(dest, visit);
            async move {
                let _ = net.get(&path, &headers).await;
            }
        })
        .buffer_unordered(at_once)
        .collect::<Vec<()>>()
        .await;
}

/// A site cookie once the first page's script has run (the site's analytics set one; faceprobe
/// never does).
fn site_cookie(rng: &mut ChaCha8Rng) -> String {
    format!(
        "_ga=GA1.1.{}.{}; cookieconsent_status=dismiss",
        rng.random_range(100_000_000u32..2_000_000_000),
        now_ms() / 1000
    )
}

/// One person's visit: lands on the home page, a gallery from a search engine, or the about
/// page; reads 2 to 6 pages, following links they can see, with a think time between pages;
/// the browser loads each page's stylesheet, script and the images that are displayed (not
/// those in a hidden block, whatever their markup), each once per visit, and the favicon.
pub async fn person(
    net: Net,
    browser: Browser,
    language: usize,
    think_ms: (u64, u64),
    seed: u64,
    deadline: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pages = rng.random_range(2..=6usize);
    let mut cached: HashSet<String> = HashSet::new();
    let mut cookie: Option<String> = None;
    let (mut path, mut referer, mut site): (String, Option<String>, &'static str) =
        match rng.random_range(0..10) {
            0..=5 => ("/".into(), None, "none"),
            6..=8 => (
                format!("/gallery/{}", rng.random_range(1..=3)),
                Some("https://www.google.com/".into()),
                "cross-site",
            ),
            _ => ("/about".into(), None, "none"),
        };
    for i in 0..pages {
        if Instant::now() >= deadline {
            return;
        }
        let visit = Visit {
            referer: referer.as_deref(),
            language,
            cookie: cookie.as_deref(),
        };
        let headers = browser.headers(Dest::Document { site, user: true }, visit);
        let Ok(got) = net.get(&path, &headers).await else {
            return;
        };
        if !got.is_html() {
            return;
        }
        let page = Page::parse(&got.text(), &path);
        let here = net.url(&path);
        let mut subs = Vec::new();
        for p in &page.styles {
            subs.push((p.clone(), Dest::Style));
        }
        for p in &page.scripts {
            subs.push((p.clone(), Dest::Script));
        }
        for img in page.images.iter().filter(|f| !f.hidden) {
            subs.push((img.path.clone(), Dest::Image));
        }
        if i == 0 {
            subs.push(("/favicon.ico".into(), Dest::Image));
        }
        subs.retain(|(p, _)| cached.insert(p.clone()));
        let visit = Visit {
            referer: Some(&here),
            language,
            cookie: cookie.as_deref(),
        };
        load(&net, &browser, subs, visit, 4).await;
        if cookie.is_none() {
            cookie = Some(site_cookie(&mut rng));
        }
        if i + 1 == pages {
            break;
        }
        let think = Duration::from_millis(rng.random_range(think_ms.0..=think_ms.1));
        sleep_until((Instant::now() + think).min(deadline)).await;
        let visible: Vec<_> = page
            .links
            .iter()
            .filter(|l| !l.hidden && l.path != path)
            .collect();
        let Some(next) = visible.choose(&mut rng) else {
            break;
        };
        path = next.path.clone();
        referer = Some(here);
        site = "same-origin";
    }
}

/// Paces requests: at most one per `period`, never past `stop`.
struct Pace {
    next: Instant,
    period: Duration,
}

impl Pace {
    async fn wait(&mut self, stop: Instant) -> bool {
        if self.next >= stop {
            return false;
        }
        sleep_until(self.next).await;
        self.next = Instant::now().max(self.next) + self.period;
        true
    }
}

/// How long the polite crawler trusts the robots.txt it read (Google caches it up to 24 h).
const ROBOTS_FOR: Duration = Duration::from_secs(600);

/// A declared search crawler: fetches robots.txt first, obeys it (the group for its own
/// token, longest match, Allow over Disallow, Crawl-delay), one request per second at most;
/// crawls pages from the home page, following links that are not `nofollow`, and takes the
/// images the rules allow on its first pass. It starts over until `secs` are up, reading
/// robots.txt again when its copy is older than `ROBOTS_FOR`.
pub async fn polite(net: Net, secs: u64, deadline: Instant) {
    let stop = (Instant::now() + Duration::from_secs(secs)).min(deadline);
    let mut pace = Pace {
        next: Instant::now(),
        period: Duration::from_secs(1),
    };
    let mut pass = 0usize;
    let mut rules: Option<(texting_robots::Robot, Instant)> = None;
    while Instant::now() < stop {
        if rules
            .as_ref()
            .is_none_or(|(_, read)| read.elapsed() > ROBOTS_FOR)
        {
            if !pace.wait(stop).await {
                return;
            }
            let robots = net
                .get("/robots.txt", &polite_headers("text/plain,*/*;q=0.8"))
                .await;
            rules = match robots {
                Ok(g) if g.status == 200 => texting_robots::Robot::new(POLITE_TOKEN, &g.body).ok(),
                // No robots.txt: everything is allowed.
                Ok(g) if (400..500).contains(&g.status) => {
                    texting_robots::Robot::new(POLITE_TOKEN, b"").ok()
                }
                // Server error or no answer: crawl nothing until it can be read.
                _ => None,
            }
            .map(|r| (r, Instant::now()));
        }
        let Some((robot, _)) = &rules else {
            continue;
        };
        if let Some(delay) = robot.delay {
            pace.period = Duration::from_secs_f32(delay.clamp(1.0, 60.0));
        }
        let mut queue: VecDeque<(String, bool)> = VecDeque::from([("/".to_string(), false)]);
        let mut seen: HashSet<String> = HashSet::from(["/".to_string()]);
        while let Some((path, image)) = queue.pop_front() {
            if !pace.wait(stop).await {
                return;
            }
            let accept = if image {
                "image/avif,image/webp,image/*,*/*;q=0.8"
            } else {
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            };
            let Ok(got) = net.get(&path, &polite_headers(accept)).await else {
                continue;
            };
            if image || !got.is_html() {
                continue;
            }
            let page = Page::parse(&got.text(), &path);
            if pass == 0 {
                for img in page.images {
                    if robot.allowed(&img.path) && seen.insert(img.path.clone()) {
                        queue.push_back((img.path, true));
                    }
                }
            }
            for link in page.links {
                if !link.nofollow && robot.allowed(&link.path) && seen.insert(link.path.clone()) {
                    queue.push_back((link.path, false));
                }
            }
        }
        pass += 1;
    }
}

/// `/static/img/12.jpg` → (`/static/img/`, 12, `.jpg`): an image URL that counts.
fn numbered(path: &str) -> Option<(&str, u64, &str)> {
    let slash = path.rfind('/')? + 1;
    let (dir, file) = path.split_at(slash);
    let digits = file.bytes().take_while(u8::is_ascii_digit).count();
    let n = file[..digits].parse().ok()?;
    let ext = &file[digits..];
    (ext.starts_with('.') && !ext.contains(['/', '?'])).then_some((dir, n, ext))
}

/// What the bulk harvester still has to fetch: images before pages.
#[derive(Default)]
struct Frontier {
    images: VecDeque<String>,
    pages: VecDeque<String>,
    seen: HashSet<String>,
    in_flight: usize,
}

impl Frontier {
    fn image(&mut self, p: String) {
        if self.seen.insert(p.clone()) {
            self.images.push_back(p);
        }
    }

    fn page(&mut self, p: String) {
        if self.seen.insert(p.clone()) {
            self.pages.push_back(p);
        }
    }

    fn next(&mut self) -> Option<String> {
        let p = self.images.pop_front().or_else(|| self.pages.pop_front())?;
        self.in_flight += 1;
        Some(p)
    }

    /// Takes what a response shows: every `<img src>` (hidden or not), guesses of numbered
    /// image URLs (1, 2, … up to the one seen, then on while they exist), every `<a href>`.
    fn learn(&mut self, path: &str, status: Option<u16>, page: Option<Page>) {
        if let (Some((dir, n, ext)), Some(200)) = (numbered(path), status) {
            self.image(format!("{dir}{}{ext}", n + 1));
        }
        let Some(page) = page else { return };
        for img in page.images {
            if let Some((dir, n, ext)) = numbered(&img.path) {
                for k in 1..n {
                    self.image(format!("{dir}{k}{ext}"));
                }
            }
            self.image(img.path);
        }
        for link in page.links {
            self.page(link.path);
        }
    }
}

/// A bulk image harvester: a scraper library's agent, `at_once` requests in flight from one
/// address, robots.txt ignored (Scrapy reads it first, then ignores it), images first (every
/// `<img src>`, and numbered image URLs guessed in sequence), every link followed, hidden
/// ones included. Stops after `budget` requests.
pub async fn bulk(net: Net, library: Library, budget: usize, at_once: usize, deadline: Instant) {
    let budget = Budget::new(budget);
    let headers = library.headers(library.agent());
    if library == Library::Scrapy && budget.take() {
        let _ = net.get("/robots.txt", &headers).await;
    }
    let frontier = Mutex::new(Frontier::default());
    lock(&frontier).page("/".into());
    let worker = || async {
        loop {
            if Instant::now() >= deadline {
                return;
            }
            let next = {
                let mut f = lock(&frontier);
                match f.next() {
                    Some(p) => Some(p),
                    None if f.in_flight == 0 => return,
                    None => None,
                }
            };
            let Some(path) = next else {
                sleep(Duration::from_millis(10)).await;
                continue;
            };
            if !budget.take() {
                lock(&frontier).in_flight -= 1;
                return;
            }
            let got = net.get(&path, &headers).await;
            let status = got.as_ref().ok().map(|g| g.status);
            let page = got
                .ok()
                .filter(|g| g.is_html())
                .map(|g| Page::parse(&g.text(), &path));
            let mut f = lock(&frontier);
            f.in_flight -= 1;
            f.learn(&path, status, page);
        }
    };
    futures_util::future::join_all((0..at_once).map(|_| worker())).await;
}

/// A harvester behind a pool of addresses: a browser agent per address, a library's headers
/// (no `Sec-Fetch-*`), one request at a time at `rate` per second for the whole actor, each
/// from the next address of the pool (so a page is fetched by one address and its images by
/// the next ones). Takes every `<img src>` (hidden canaries included), follows links that are
/// not `nofollow` (which keeps it out of trap galleries), and visits the site again from the
/// home page once it has seen it all, to catch new photographs. Stops after `budget` requests.
pub async fn disguised(
    pool: Vec<(Net, &'static str)>,
    budget: usize,
    rate: f64,
    seed: u64,
    deadline: Instant,
) {
    if pool.is_empty() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut images: VecDeque<String> = VecDeque::new();
    let mut pages: VecDeque<String> = VecDeque::new();
    let mut seen_images: HashSet<String> = HashSet::new();
    let mut seen_pages: HashSet<String> = HashSet::new();
    for i in 0..budget {
        let (path, image) = match images.pop_front() {
            Some(p) => (p, true),
            None => match pages.pop_front() {
                Some(p) => (p, false),
                None => {
                    seen_pages = HashSet::from(["/".to_string()]);
                    ("/".to_string(), false)
                }
            },
        };
        let at = Instant::now() + jitter(&mut rng, period);
        if at >= deadline {
            return;
        }
        sleep_until(at).await;
        let (net, agent) = &pool[i % pool.len()];
        let Ok(got) = net.get(&path, &disguised_headers(agent, !image)).await else {
            continue;
        };
        if image || !got.is_html() {
            continue;
        }
        let page = Page::parse(&got.text(), &path);
        for img in page.images {
            if seen_images.insert(img.path.clone()) {
                images.push_back(img.path);
            }
        }
        for link in page.links {
            if !link.nofollow && seen_pages.insert(link.path.clone()) {
                pages.push_back(link.path);
            }
        }
    }
}

/// A harvester driving a real browser: full browser headers (`Sec-Fetch-*` included), the
/// stylesheet, script and displayed images loaded as a browser loads them, a cookie from the
/// site's script after the first page; then its script fetches every other `<img src>`
/// (`fetch()`: the hidden canaries) and it walks every link, hidden and `nofollow` ones
/// included, breadth first, alternating between its addresses page by page, `pause_ms`
/// between pages. Stops after `budget` requests.
pub async fn rendering(nets: Vec<Net>, budget: usize, pause_ms: u64, seed: u64, deadline: Instant) {
    if nets.is_empty() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let browser = RENDERING_BROWSER;
    let budget = Budget::new(budget);
    let mut queue: VecDeque<(String, Option<String>)> = VecDeque::from([("/".to_string(), None)]);
    let mut seen: HashSet<String> = HashSet::from(["/".to_string()]);
    let mut cached: HashSet<String> = HashSet::new();
    let mut cookie: Option<String> = None;
    let mut k = 0usize;
    while let Some((path, referer)) = queue.pop_front() {
        if Instant::now() >= deadline || !budget.take() {
            return;
        }
        let net = &nets[k % nets.len()];
        k += 1;
        let site = if referer.is_some() {
            "same-origin"
        } else {
            "none"
        };
        let visit = Visit {
            referer: referer.as_deref(),
            language: 0,
            cookie: cookie.as_deref(),
        };
        let headers = browser.headers(Dest::Document { site, user: true }, visit);
        let Ok(got) = net.get(&path, &headers).await else {
            continue;
        };
        if !got.is_html() {
            continue;
        }
        let page = Page::parse(&got.text(), &path);
        let here = net.url(&path);
        let mut shown = Vec::new();
        for p in &page.styles {
            shown.push((p.clone(), Dest::Style));
        }
        for p in &page.scripts {
            shown.push((p.clone(), Dest::Script));
        }
        for img in page.images.iter().filter(|f| !f.hidden) {
            shown.push((img.path.clone(), Dest::Image));
        }
        if k == 1 {
            shown.push(("/favicon.ico".into(), Dest::Image));
        }
        shown.retain(|(p, _)| cached.insert(p.clone()));
        let mut taken: Vec<(String, Dest)> = page
            .images
            .iter()
            .filter(|f| f.hidden && cached.insert(f.path.clone()))
            .map(|f| (f.path.clone(), Dest::Fetch))
            .collect();
        shown.retain(|_| budget.take());
        taken.retain(|_| budget.take());
        let visit = Visit {
            referer: Some(&here),
            language: 0,
            cookie: cookie.as_deref(),
        };
        load(net, &browser, shown, visit, 6).await;
        load(net, &browser, taken, visit, 6).await;
        if cookie.is_none() {
            cookie = Some(site_cookie(&mut rng));
        }
        for link in page.links {
            if seen.insert(link.path.clone()) {
                queue.push_back((link.path, Some(here.clone())));
            }
        }
        let pause = jitter(&mut rng, Duration::from_millis(pause_ms));
        sleep_until((Instant::now() + pause).min(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_image_urls_are_recognised() {
        assert_eq!(
            numbered("/static/img/12.jpg"),
            Some(("/static/img/", 12, ".jpg"))
        );
        assert_eq!(numbered("/_fp/c/AbC.jpg"), None);
        assert_eq!(numbered("/gallery/2"), None);
    }

    #[test]
    fn the_bulk_frontier_takes_images_first_and_guesses_the_sequence() {
        let mut f = Frontier::default();
        f.page("/".into());
        assert_eq!(f.next().as_deref(), Some("/"));
        let html = "<a href=\"/gallery/1\">g</a><img src=\"/static/img/3.jpg\">\
                    <div hidden><img src=\"/_fp/c/T.jpg\"><a href=\"/_fp/g/T\">t</a></div>";
        f.learn("/", Some(200), Some(Page::parse(html, "/")));
        let mut order = Vec::new();
        while let Some(p) = f.next() {
            order.push(p);
        }
        assert_eq!(
            order,
            [
                "/static/img/1.jpg",
                "/static/img/2.jpg",
                "/static/img/3.jpg",
                "/_fp/c/T.jpg",
                "/gallery/1",
                "/_fp/g/T"
            ]
        );
        f.learn("/static/img/3.jpg", Some(200), None);
        assert_eq!(f.next().as_deref(), Some("/static/img/4.jpg"));
    }
}
