//! Speed of the detector (issue 4: ≤ 5 µs per event on average). The unit is
//! `Engine::observe` on one committed event, fed realistic traffic generated before timing:
//! people browsing, harvesters, a 95 % / 5 % mix of the two, and a flood of new clients past
//! the LRU cap. The detector's other cost per event, reading events back from SQLite
//! (`seen::read_after`, as the runner does), is measured beside it on a store of 200,000
//! events written by the recorder. Throughput is in events: time per event = 1 / thrpt.
//! `take_changes` is called every 10,000 events and timed with the rest, as the runner's
//! persist calls it.
//!
//! cargo bench --bench detect
//! DETECT_BENCH_EVENTS=20000 cargo bench --bench detect     (smaller traces and store)

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use faceprobe::config::RecordConfig;
use faceprobe::detect::runner::READ_BATCH;
use faceprobe::detect::seen::read_after;
use faceprobe::detect::{DetectConfig, Engine, Seen};
use faceprobe::metrics::Metrics;
use faceprobe::record::{self, Event, Kind, Mint};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// Events per trace; the store read back holds twice as many.
fn trace_len() -> usize {
    std::env::var("DETECT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Events between two `take_changes` calls: the runner takes changes at each persist (every
/// `detect.persist_secs`); 10,000 events is more often than that at the rates measured here.
const PERSIST_EVERY: usize = 10_000;

/// Real browsers' user agents with the header order each sends (what the fingerprint and
/// the header-order signal look at).
const BROWSERS: [(&str, &str); 5] = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "host,connection,sec-ch-ua,sec-ch-ua-mobile,sec-ch-ua-platform,upgrade-insecure-requests,user-agent,accept,sec-fetch-site,sec-fetch-mode,sec-fetch-user,sec-fetch-dest,referer,accept-encoding,accept-language,cookie",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "host,connection,sec-ch-ua,sec-ch-ua-mobile,sec-ch-ua-platform,upgrade-insecure-requests,user-agent,accept,sec-fetch-site,sec-fetch-mode,sec-fetch-user,sec-fetch-dest,referer,accept-encoding,accept-language,cookie",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "host,user-agent,accept,accept-language,accept-encoding,referer,connection,cookie,upgrade-insecure-requests,sec-fetch-dest,sec-fetch-mode,sec-fetch-site,sec-fetch-user,priority",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "host,sec-fetch-dest,user-agent,accept,referer,sec-fetch-site,sec-fetch-mode,accept-language,priority,accept-encoding,connection,cookie",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "host,connection,sec-ch-ua,sec-ch-ua-mobile,sec-ch-ua-platform,upgrade-insecure-requests,user-agent,accept,sec-fetch-site,sec-fetch-mode,sec-fetch-user,sec-fetch-dest,referer,accept-encoding,accept-language,cookie",
    ),
];

const SCRAPERS: [&str; 5] = [
    "python-requests/2.31.0",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "Go-http-client/1.1",
    "img2dataset/1.45.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
];

/// The order an HTTP library sends its few headers in.
const LIBRARY_ORDER: &str = "host,user-agent,accept-encoding,accept,connection";

const ROBOTS: &str = "User-agent: *\nDisallow: /private/\nDisallow: /_fp/\n\n\
                      User-agent: GPTBot\nDisallow: /\n";

const ACCEPT_PAGE: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
const ACCEPT_IMAGE: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
const ACCEPT_CSS: &str = "text/css,*/*;q=0.1";

fn robots_sha() -> [u8; 32] {
    Sha256::digest(ROBOTS.as_bytes()).into()
}

enum Role {
    /// Pages, their CSS and JS (first visit only: cached after), and their images, with
    /// referers; seconds to a minute of reading between page views.
    Person {
        visit: Vec<(Kind, String)>,
        visited: bool,
    },
    /// Pages without assets, numbered images, canaries and trap galleries, on a timer or
    /// in bursts; some read robots.txt first. Hands tokens to the others of its `pool`.
    Harvester {
        regular: bool,
        next_image: u64,
        depth: u32,
        pool: Vec<usize>,
        started: bool,
    },
}

struct Actor {
    key: String,
    ip: String,
    ua: &'static str,
    order: &'static str,
    browser_headers: bool,
    role: Role,
}

fn key(n: u64) -> String {
    format!("c:{n:024x}")
}

fn person(n: u64, rng: &mut ChaCha8Rng) -> Actor {
    let (ua, order) = BROWSERS[rng.random_range(0..BROWSERS.len())];
    Actor {
        key: key(n),
        ip: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        ua,
        order,
        browser_headers: true,
        role: Role::Person {
            visit: Vec::new(),
            visited: false,
        },
    }
}

fn harvester(n: u64, pool: Vec<usize>, rng: &mut ChaCha8Rng) -> Actor {
    // Half use a library or dataset tool under its own name; half hide behind a browser's
    // user agent with a library's headers (and are the ones spread over address pools).
    let (ua, order, browser_headers) = if pool.is_empty() {
        let ua = SCRAPERS[rng.random_range(0..SCRAPERS.len())];
        let headless = ua.contains("Headless");
        let order = if headless {
            BROWSERS[0].1
        } else {
            LIBRARY_ORDER
        };
        (ua, order, headless)
    } else {
        (BROWSERS[0].0, LIBRARY_ORDER, false)
    };
    Actor {
        key: key(n),
        ip: format!("203.0.{}.{}", (n >> 8) & 255, n & 255),
        ua,
        order,
        browser_headers,
        role: Role::Harvester {
            regular: rng.random_bool(0.3),
            next_image: rng.random_range(1..5_000),
            depth: 0,
            pool,
            started: false,
        },
    }
}

/// `n` harvesters; those of the second half come in pools of ten addresses.
fn harvesters(first: u64, n: usize, rng: &mut ChaCha8Rng) -> Vec<Actor> {
    (0..n)
        .map(|i| {
            let pool = if i >= n / 2 {
                let base = i - (i - n / 2) % 10;
                (base..(base + 10).min(n)).filter(|j| *j != i).collect()
            } else {
                Vec::new()
            };
            harvester(first + i as u64, pool, rng)
        })
        .collect()
}

/// Generates `n` events of `actors`, each acting on its own clock (so the gaps between one
/// client's requests are its own: bursty for people, a timer for some harvesters).
fn trace(mut actors: Vec<Actor>, n: usize, rng: &mut ChaCha8Rng) -> Vec<Seen> {
    let t0 = 1_750_000_000_000i64;
    let mut clock: BinaryHeap<Reverse<(i64, usize)>> = (0..actors.len())
        .map(|i| Reverse((t0 + rng.random_range(0..60_000), i)))
        .collect();
    let keys: Vec<String> = actors.iter().map(|a| a.key.clone()).collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let Some(Reverse((ts, i))) = clock.pop() else {
            break;
        };
        let a = &mut actors[i];
        let mut s = Seen {
            id: out.len() as i64 + 1,
            ts_ms: ts,
            ip: Some(a.ip.clone()),
            client_key: a.key.clone(),
            status: 200,
            user_agent: Some(a.ua.to_string()),
            accept_language: a.browser_headers,
            sec_fetch: a.browser_headers,
            cookie: a.browser_headers,
            header_order: a.order.to_string(),
            ..Seen::default()
        };
        let gap = match &mut a.role {
            Role::Person { visit, visited } => {
                if visit.is_empty() {
                    let g = rng.random_range(1..=200u32);
                    visit.push((Kind::Page, format!("/gallery/{g}")));
                    if !*visited || rng.random_bool(0.1) {
                        visit.push((Kind::Asset, "/static/site.css".into()));
                        visit.push((Kind::Asset, "/static/app.js".into()));
                    }
                    for p in 0..rng.random_range(4..=12u32) {
                        visit.push((Kind::Image, format!("/media/{g}/{p}.jpg")));
                    }
                    visit.reverse();
                    *visited = true;
                }
                let (kind, path) = visit.pop().expect("a visit has a page");
                s.referer = kind != Kind::Page || rng.random_bool(0.7);
                s.accept = Some(
                    match kind {
                        Kind::Page => ACCEPT_PAGE,
                        Kind::Asset => ACCEPT_CSS,
                        _ => ACCEPT_IMAGE,
                    }
                    .to_string(),
                );
                s.kind = Some(kind);
                s.path = path;
                if visit.is_empty() {
                    rng.random_range(2_000..60_000)
                } else {
                    rng.random_range(5..80)
                }
            }
            Role::Harvester {
                regular,
                next_image,
                depth,
                pool,
                started,
            } => {
                s.accept = Some("*/*".into());
                let roll = rng.random_range(0..100u32);
                if !*started && rng.random_bool(0.3) {
                    s.kind = Some(Kind::Robots);
                    s.path = "/robots.txt".into();
                    s.robots_sha256 = Some(robots_sha());
                } else if roll < 15 {
                    s.kind = Some(Kind::Page);
                    s.path = format!("/gallery/{}", rng.random_range(1..=200u32));
                } else if roll < 80 {
                    s.kind = Some(Kind::Image);
                    s.path = format!("/media/photos/{next_image}.jpg");
                    *next_image += 1;
                    if rng.random_bool(0.05) {
                        s.status = 404;
                    }
                } else if roll < 95 {
                    s.kind = Some(Kind::Canary);
                    s.path = format!("/_fp/c/{:032x}.jpg", rng.random::<u128>());
                    let owner = if !pool.is_empty() && rng.random_bool(0.5) {
                        pool[rng.random_range(0..pool.len())]
                    } else {
                        i
                    };
                    s.token_owner = Some(keys[owner].clone());
                    s.token_depth = Some(0);
                } else {
                    s.kind = Some(Kind::Trap);
                    s.path = format!("/_fp/g/{:032x}", rng.random::<u128>());
                    s.token_owner = Some(keys[i].clone());
                    s.token_depth = Some(*depth);
                    *depth += 1;
                }
                *started = true;
                if *regular {
                    rng.random_range(980..1_020)
                } else {
                    rng.random_range(20..600)
                }
            }
        };
        out.push(s);
        clock.push(Reverse((ts + gap, i)));
    }
    out
}

/// Interleaves two traces, taking from `b` with probability `share`; each client's events
/// keep their order and timestamps, ids are renumbered.
fn mix(a: Vec<Seen>, b: Vec<Seen>, share: f64, n: usize, rng: &mut ChaCha8Rng) -> Vec<Seen> {
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = if rng.random_bool(share) {
            b.next().or_else(|| a.next())
        } else {
            a.next().or_else(|| b.next())
        };
        let Some(mut s) = next else { break };
        s.id = out.len() as i64 + 1;
        out.push(s);
    }
    out
}

/// Each event from a new client: 90 % a browser's page view, 10 % a scraper's image fetch
/// (a known agent, so its state has a reason and it is handed back when evicted).
fn flood(n: usize, rng: &mut ChaCha8Rng) -> Vec<Seen> {
    (0..n)
        .map(|i| {
            let scraper = rng.random_bool(0.1);
            let (ua, order) = if scraper {
                (SCRAPERS[rng.random_range(0..3)], LIBRARY_ORDER)
            } else {
                BROWSERS[rng.random_range(0..BROWSERS.len())]
            };
            let n = 1_000_000 + i as u64;
            Seen {
                id: i as i64 + 1,
                ts_ms: 1_750_000_000_000 + i as i64 * 2,
                ip: Some(format!(
                    "10.{}.{}.{}",
                    (n >> 16) & 255,
                    (n >> 8) & 255,
                    n & 255
                )),
                client_key: key(n),
                kind: Some(if scraper { Kind::Image } else { Kind::Page }),
                path: if scraper {
                    format!("/media/photos/{i}.jpg")
                } else {
                    format!("/gallery/{}", i % 200)
                },
                status: 200,
                user_agent: Some(ua.to_string()),
                accept: Some(if scraper { "*/*" } else { ACCEPT_PAGE }.to_string()),
                accept_language: !scraper,
                sec_fetch: !scraper,
                header_order: order.to_string(),
                ..Seen::default()
            }
        })
        .collect()
}

fn engine(max_clients: usize) -> Engine {
    let mut e = Engine::new(DetectConfig {
        max_clients,
        ..DetectConfig::default()
    });
    e.robots.add(hex::encode(robots_sha()), ROBOTS.into());
    e
}

fn feed(mut engine: Engine, events: &[Seen]) -> Engine {
    for (i, s) in events.iter().enumerate() {
        engine.observe(s);
        if i % PERSIST_EVERY == PERSIST_EVERY - 1 {
            black_box(engine.take_changes());
        }
    }
    black_box(engine.take_changes());
    engine
}

/// One trace through a fresh engine per iteration (created before the clock starts, dropped
/// after it stops). A fresh engine over the whole trace is the steady state of the traffic
/// the trace models: each client is timed from its first event (created, classified) to
/// its last, new clients arrive at the trace's own rate (one in twenty events for people),
/// and once-only signals, flags and clusters happen as often as they would. A long-lived
/// engine replaying the same trace would instead know every client and have fired every
/// once-only signal already, and time only the cheapest path.
///
/// The trace is generated on first use, so that a filtered run builds only what it times.
fn observe(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    cap: usize,
    make: impl FnOnce(usize, &mut ChaCha8Rng) -> Vec<Seen>,
) {
    let n = trace_len();
    let mut make = Some(make);
    let mut events = None;
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(name, |b| {
        let events = events.get_or_insert_with(|| {
            let make = make.take().expect("made once");
            let events = make(n, &mut ChaCha8Rng::seed_from_u64(4));
            assert_eq!(events.len(), n);
            events
        });
        b.iter_batched(|| engine(cap), |e| feed(e, events), BatchSize::PerIteration)
    });
}

fn people(rng: &mut ChaCha8Rng) -> Vec<Actor> {
    (0..5_000).map(|i| person(i, rng)).collect()
}

fn detect(c: &mut Criterion) {
    let mut group = c.benchmark_group("observe");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    let cap = DetectConfig::default().max_clients;
    observe(&mut group, "people (5,000 clients)", cap, |n, rng| {
        let people = people(rng);
        trace(people, n, rng)
    });
    observe(&mut group, "harvesters (200 clients)", cap, |n, rng| {
        let harvesters = harvesters(100_000, 200, rng);
        trace(harvesters, n, rng)
    });
    observe(
        &mut group,
        "mixed 95 % people, 5 % harvesters",
        cap,
        |n, rng| {
            let people = people(rng);
            let p = trace(people, n, rng);
            let harvesters = harvesters(100_000, 200, rng);
            let h = trace(harvesters, n / 10, rng);
            mix(p, h, 0.05, n, rng)
        },
    );
    observe(
        &mut group,
        "flood of new clients, cap a tenth of them",
        trace_len() / 10,
        flood,
    );
    group.finish();
}

/// A store of `n` events as the edge writes them: page views (each minting the token of the
/// canary planted in it), assets, images, and canary fetches of earlier tokens.
fn store(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    // `normal` only to build the store faster; reading does not depend on it.
    let config = RecordConfig {
        synchronous: faceprobe::config::Synchronous::Normal,
        ..RecordConfig::default()
    };
    let (rec, writer) = record::start(dir.path(), &config, [1; 32], Arc::new(Metrics::default()))
        .expect("recorder starts");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut minted = Vec::new();
    let now = faceprobe::store::now_ms();
    for i in 0..n {
        let client = rng.random_range(0..5_000u64);
        let (ua, order) = BROWSERS[(client % 5) as usize];
        let roll = rng.random_range(0..100u32);
        let kind = match roll {
            0..25 => Kind::Page,
            25..40 => Kind::Asset,
            40..95 => Kind::Image,
            _ if !minted.is_empty() => Kind::Canary,
            _ => Kind::Page,
        };
        let mut e = Event {
            ts_ms: now - (n - i) as i64,
            ip: Some(std::net::IpAddr::from([
                10,
                0,
                (client >> 8) as u8,
                client as u8,
            ])),
            client_key: key(client),
            method: "GET".into(),
            host: Some("www.example.org".into()),
            path: format!("/gallery/{}/photo-{i}.jpg", i % 97),
            status: 200,
            bytes: 18_234,
            duration_us: 740,
            user_agent: Some(ua.into()),
            referer: Some("https://www.example.org/gallery/".into()),
            accept: Some(ACCEPT_IMAGE.into()),
            accept_language: Some("fr-FR,fr;q=0.9,en;q=0.8".into()),
            accept_encoding: Some("gzip, deflate, br".into()),
            sec_fetch_site: Some("same-origin".into()),
            sec_fetch_mode: Some("no-cors".into()),
            sec_fetch_dest: Some("image".into()),
            cookie_sent: true,
            header_order: order.into(),
            kind: Some(kind),
            ..Event::default()
        };
        match kind {
            Kind::Page => {
                let token = faceprobe::canary::Token::random();
                e.path = format!("/gallery/{}", i % 200);
                e.mints.push(Mint {
                    token,
                    identity_seed: rng.random(),
                    variant_seed: rng.random(),
                    size: 256,
                    renderer: faceprobe::canary::render::RENDERER_VERSION,
                    created_ms: e.ts_ms,
                    client_key: e.client_key.clone(),
                    parent: None,
                    depth: 0,
                });
                minted.push(token);
            }
            Kind::Canary => {
                let token = minted[rng.random_range(0..minted.len())];
                e.path = format!("/_fp/c/{token}.jpg");
                e.token = Some(token);
            }
            _ => {}
        }
        rec.record_blocking(e).expect("recorder running");
    }
    rec.flush_blocking().expect("flush");
    drop(rec);
    writer.join();
    dir
}

/// Reading the whole store back in the runner's batches (`READ_BATCH`), warm (the detector
/// reads events just committed, still in the page cache).
fn read(c: &mut Criterion) {
    let n = 2 * trace_len();
    let mut built = None;
    let mut group = c.benchmark_group("read_after");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("{n} events, batches of {READ_BATCH}"), |b| {
        let (_dir, conn) = built.get_or_insert_with(|| {
            let dir = store(n);
            let conn = faceprobe::store::Store::open(dir.path())
                .expect("store opens")
                .into_conn();
            (dir, conn)
        });
        let conn = &*conn;
        b.iter(|| {
            let mut after = 0;
            let mut read = 0;
            loop {
                let batch = read_after(conn, after, READ_BATCH).expect("read");
                let Some(last) = batch.last() else { break };
                after = last.id;
                read += batch.len();
                black_box(batch);
            }
            assert_eq!(read, n);
        })
    });
    group.finish();
}

criterion_group!(benches, detect, read);
criterion_main!(benches);
