//! Memory of the detector at its LRU cap (issue 4: ≤ 2 KB per tracked client; 1,000,000
//! distinct clients under the cap with bounded memory), and its time per event on the way.
//!
//! cargo run --release --example detect_memory -- [--clients N] [--cap N]
//!
//! Feeds N distinct clients (default 1,000,000) into an `Engine` with `max_clients` = cap
//! (default: the configured 100,000): three in four make one page view, 15 % a visit of 3–10
//! requests, and 10 % are harvesters whose signals fire (canaries, a library's headers behind
//! a browser's user agent, headless browsers), so their state carries reasons and they are
//! handed back when evicted. `take_changes` is called every 10,000 events and its result
//! dropped, as the runner's persist does. Heap is counted exactly by a counting wrapper over
//! the system allocator (bytes requested; malloc adds ~16 bytes of its own per block, hence
//! the blocks column), at N/10, N/4, N/2 and N clients, once the cap is long reached.

use faceprobe::detect::{DetectConfig, Engine, Seen};
use faceprobe::record::Kind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The system allocator, counting live bytes, the most ever live, and live blocks.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
            BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
            BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
        BLOCKS.fetch_sub(1, Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Events between two `take_changes` (one read batch of the runner).
const PERSIST_EVERY: u64 = 10_000;
/// Clients generated at a time (generation is not timed, and its buffer is freed before
/// each heap reading).
const CHUNK: u64 = 5_000;

/// Browser user agents of 70–140 bytes (110 on average), a few hundred distinct strings as
/// in real traffic: browsers now freeze all but the major version.
fn browser_agent(rng: &mut ChaCha8Rng) -> (String, &'static str) {
    const CHROME_ORDER: &str = "host,connection,sec-ch-ua,sec-ch-ua-mobile,sec-ch-ua-platform,upgrade-insecure-requests,user-agent,accept,sec-fetch-site,sec-fetch-mode,sec-fetch-user,sec-fetch-dest,referer,accept-encoding,accept-language,cookie";
    const FIREFOX_ORDER: &str = "host,user-agent,accept,accept-language,accept-encoding,referer,connection,cookie,upgrade-insecure-requests,sec-fetch-dest,sec-fetch-mode,sec-fetch-site,sec-fetch-user,priority";
    const SAFARI_ORDER: &str = "host,sec-fetch-dest,user-agent,accept,referer,sec-fetch-site,sec-fetch-mode,accept-language,priority,accept-encoding,connection,cookie";
    let v = rng.random_range(118..=131);
    match rng.random_range(0..7) {
        0 | 1 => (format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"), CHROME_ORDER),
        2 => (format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0"), CHROME_ORDER),
        3 => (format!("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36"), CHROME_ORDER),
        4 => (format!("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"), CHROME_ORDER),
        5 => {
            let (os, safari) = (rng.random_range(0..7), rng.random_range(0..7));
            (format!("Mozilla/5.0 (iPhone; CPU iPhone OS 17_{os} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{safari} Mobile/15E148 Safari/604.1"), SAFARI_ORDER)
        }
        _ => (format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"), FIREFOX_ORDER),
    }
}

/// Harvesters' user agents: a few fixed strings each operator reuses from every address.
const HARVESTER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
];
const LIBRARY_ORDER: &str = "host,user-agent,accept-encoding,accept,connection";

struct Traffic {
    rng: ChaCha8Rng,
    id: i64,
    ts: i64,
}

impl Traffic {
    /// The events of client number `n`.
    fn client(&mut self, n: u64, out: &mut Vec<Seen>) {
        let rng = &mut self.rng;
        let ip = if n.is_multiple_of(5) {
            format!(
                "2001:db8:{:x}:{:x}::{:x}",
                n >> 32,
                (n >> 16) & 0xffff,
                n & 0xffff
            )
        } else {
            format!(
                "{}.{}.{}.{}",
                11 + (n >> 24),
                (n >> 16) & 255,
                (n >> 8) & 255,
                n & 255
            )
        };
        let roll = rng.random_range(0..100u32);
        let harvester = roll < 10;
        let (ua, order) = if harvester {
            let ua = HARVESTER_AGENTS[rng.random_range(0..HARVESTER_AGENTS.len())];
            let headless = ua.contains("Headless");
            (
                ua.to_string(),
                if headless {
                    "host,connection,user-agent,accept,accept-encoding,accept-language"
                } else {
                    LIBRARY_ORDER
                },
            )
        } else {
            browser_agent(rng)
        };
        let requests: Vec<(Kind, String)> = if harvester {
            let mut r = vec![(Kind::Page, format!("/gallery/{}", rng.random_range(1..200)))];
            for _ in 0..rng.random_range(1..5) {
                r.push(if rng.random_bool(0.5) {
                    (
                        Kind::Canary,
                        format!("/_fp/c/{:032x}.jpg", rng.random::<u128>()),
                    )
                } else {
                    (
                        Kind::Image,
                        format!("/media/photos/{}.jpg", rng.random_range(1..10_000)),
                    )
                });
            }
            r
        } else if roll < 25 {
            let g = rng.random_range(1..200);
            let mut r = vec![
                (Kind::Page, format!("/gallery/{g}")),
                (Kind::Asset, "/static/site.css".to_string()),
            ];
            for p in 0..rng.random_range(1..9) {
                r.push((Kind::Image, format!("/media/{g}/{p}.jpg")));
            }
            r
        } else {
            vec![(Kind::Page, format!("/gallery/{}", rng.random_range(1..200)))]
        };
        let key = format!("c:{:024x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for (kind, path) in requests {
            self.id += 1;
            self.ts += rng.random_range(1..4);
            out.push(Seen {
                id: self.id,
                ts_ms: self.ts,
                ip: Some(ip.clone()),
                client_key: key.clone(),
                token_owner: (kind == Kind::Canary).then(|| key.clone()),
                token_depth: (kind == Kind::Canary).then_some(0),
                kind: Some(kind),
                path,
                status: 200,
                user_agent: Some(ua.clone()),
                accept: Some(
                    if harvester {
                        "*/*"
                    } else {
                        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
                    }
                    .to_string(),
                ),
                accept_language: !harvester || ua.contains("Headless"),
                sec_fetch: !harvester,
                referer: kind != Kind::Page,
                cookie: !harvester,
                header_order: order.to_string(),
                ..Seen::default()
            });
        }
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    match args.get(i + 1).map(|v| v.replace(['_', ','], "").parse()) {
        Some(Ok(v)) => Some(v),
        _ => {
            eprintln!("{name} needs a number, e.g. {name} 1000000");
            std::process::exit(2);
        }
    }
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    let clients = arg("--clients").unwrap_or(1_000_000);
    let config = DetectConfig {
        max_clients: arg("--cap").map_or(DetectConfig::default().max_clients, |c| c as usize),
        ..DetectConfig::default()
    };
    let cap = config.max_clients;
    let base = LIVE.load(Relaxed);
    let mut engine = Engine::new(config);
    let empty = LIVE.load(Relaxed) - base;
    println!(
        "detector memory: {clients} distinct clients, max_clients {cap}, take_changes every {PERSIST_EVERY} events"
    );
    println!(
        "empty engine: {:.1} MB (the LRU's table is sized for the cap); a Client is {} bytes \
         inline, plus its strings and its 128-byte image bitmap",
        mb(empty),
        std::mem::size_of::<faceprobe::detect::Client>()
    );
    println!(
        "{:>12} {:>10} {:>9} {:>9} {:>14} {:>14} {:>9} {:>8}",
        "clients",
        "events",
        "tracked",
        "heap MB",
        "bytes/tracked",
        "blocks/tracked",
        "peak MB",
        "RSS MB"
    );
    let mut checkpoints = vec![clients / 10, clients / 4, clients / 2, clients];
    checkpoints.dedup();
    let mut traffic = Traffic {
        rng: ChaCha8Rng::seed_from_u64(4),
        id: 0,
        ts: 1_750_000_000_000,
    };
    let mut spent = Duration::ZERO;
    let mut events = 0u64;
    let mut at_cap = 0usize;
    let mut heaps = Vec::new();
    let mut n = 0;
    let mut batch = Vec::new();
    while n < clients {
        let until = (n + CHUNK).min(clients);
        let until = checkpoints
            .iter()
            .copied()
            .find(|c| *c > n)
            .map_or(until, |c| c.min(until));
        for i in n..until {
            traffic.client(i, &mut batch);
        }
        n = until;
        let t0 = Instant::now();
        for s in &batch {
            engine.observe(s);
            events += 1;
            if events.is_multiple_of(PERSIST_EVERY) {
                drop(engine.take_changes());
            }
        }
        spent += t0.elapsed();
        batch.clear();
        if checkpoints.contains(&n) {
            batch = Vec::new();
            drop(engine.take_changes());
            let heap = LIVE.load(Relaxed) - base;
            let tracked = engine.tracked();
            let blocks = BLOCKS.load(Relaxed);
            println!(
                "{n:>12} {events:>10} {tracked:>9} {:>9.1} {:>14.0} {:>14.1} {:>9.1} {:>8.1}",
                mb(heap),
                heap as f64 / tracked as f64,
                blocks as f64 / tracked as f64,
                mb(PEAK.load(Relaxed) - base),
                rss_kb() as f64 / 1e3,
            );
            if tracked >= cap && at_cap == 0 {
                at_cap = heap;
            }
            heaps.push(heap);
        }
    }
    let last = *heaps.last().unwrap_or(&0);
    let tracked = engine.tracked().max(1);
    println!(
        "time per event: {:.2} µs over {events} events (observe and take_changes; generating the events not counted), {} evictions",
        spent.as_secs_f64() * 1e6 / events as f64,
        engine.evictions
    );
    println!(
        "at the cap: {:.0} bytes per tracked client, everything the engine holds included (target ≤ 2,048)",
        last as f64 / tracked as f64
    );
    if at_cap > 0 {
        println!(
            "growth after the cap was reached: {:+.1} MB ({:+.1} %) from the first reading at the cap to the last",
            (last as f64 - at_cap as f64) / 1e6,
            (last as f64 / at_cap as f64 - 1.0) * 100.0
        );
    }
}
