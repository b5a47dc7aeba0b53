//! A flood: requests from 65,000 distinct loopback addresses (127.1.0.0/16 and on), each
//! address a visitor on its own keep-alive connection: robots.txt, pages, the site's assets,
//! and now and then a canary of the page it was given. Throughout, `/healthz` is asked ten times
//! a second. Afterwards:
//! - the server's peak memory (VmHWM) is under the documented bound (docs/performance.md);
//! - its log holds no more request lines than the limiter's budget (`log.total_per_second`);
//! - no canary or robots.txt fetch that got its answer is missing from the store;
//! - `/healthz` never failed; the server serves a new visitor at once and holds no connection.
//!
//! Sizes: `FACEPROBE_FLOOD_REQUESTS` (default 200,000 here; `scripts/bench-flood` runs
//! 1,000,000 on a release build), `FACEPROBE_FLOOD_ADDRESSES` (65,000), one canary fetched by
//! every `FACEPROBE_FLOOD_CANARY_EVERY`th visitor (16). The figures are printed.

mod common;

use common::{fetch, http_agent, Env};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Peak resident memory `faceprobe serve` may reach with the default configuration, whatever
/// it is sent (docs/performance.md, "Memory bounds").
const MEMORY_BOUND_MB: u64 = 768;
/// Visitors at once.
const CONCURRENCY: usize = 128;
/// What a visitor asks for, in turn (a canary is asked for after the first page when it is
/// one of the visitors that do).
const PATHS: [&str; 5] = [
    "/robots.txt",
    "/",
    "/static/site.css",
    "/static/site.js",
    "/about",
];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The source address of visitor `i`: 127.1.1.1, 127.1.1.2, … (no .0 or .255 octets).
fn address(i: usize) -> IpAddr {
    let (hi, rest) = (i / 62_500, i % 62_500);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + hi as u8,
        (rest / 250 + 1) as u8,
        (rest % 250 + 1) as u8,
    ))
}

#[derive(Default)]
struct Tally {
    requests: AtomicUsize,
    robots_ok: AtomicUsize,
    canaries_ok: AtomicUsize,
    /// Answers other than 200 (each one is printed, the first few).
    other: AtomicUsize,
    /// Connections that could not be made or broke.
    failures: AtomicUsize,
}

/// One visitor: connects from its own address, sends `count` requests on one connection.
async fn visit(
    server: SocketAddr,
    from: IpAddr,
    count: usize,
    canary: bool,
    tally: &Tally,
) -> Result<(), String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(from, 0))
        .map_err(|e| format!("bind {from}: {e}"))?;
    let stream = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect from {from}: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let mut canary_path: Option<String> = None;
    for n in 0..count {
        let path = match canary_path.take() {
            Some(c) => c,
            None => PATHS[n % PATHS.len()].to_string(),
        };
        let req = hyper::Request::get(&path)
            .header("host", "flood.test")
            .header("user-agent", "flood/1.0")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{path} from {from}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{path} body from {from}: {e}"))?
            .to_bytes();
        tally.requests.fetch_add(1, Relaxed);
        if status != 200 {
            if tally.other.fetch_add(1, Relaxed) < 5 {
                eprintln!("{path} from {from}: {status}");
            }
            continue;
        }
        if path == "/robots.txt" {
            tally.robots_ok.fetch_add(1, Relaxed);
        } else if path.starts_with("/_fp/c/") {
            tally.canaries_ok.fetch_add(1, Relaxed);
        } else if path == "/" && canary && n == 1 {
            canary_path = first_canary(&body);
        }
    }
    drop(sender);
    let _ = driver.await;
    Ok(())
}

/// The path of the first canary image on a page.
fn first_canary(page: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(page).ok()?;
    let start = text.find("/_fp/c/")?;
    let end = start + text[start..].find(".jpg")? + 4;
    Some(text[start..end].to_string())
}

/// A line of `/proc/PID/status` in kB.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix(" kB")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn a_flood_from_65000_addresses_loses_nothing_and_stays_within_bounds() {
    let total = env_or("FACEPROBE_FLOOD_REQUESTS", 200_000);
    let addresses = env_or("FACEPROBE_FLOOD_ADDRESSES", 65_000);
    let canary_every = env_or("FACEPROBE_FLOOD_CANARY_EVERY", 16).max(1);
    let per_visitor = total.div_ceil(addresses).max(2);

    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"\ntrusted_proxies = []", "");
    let mut server = env.serve(addrs);
    let pid = server.child.id();
    let started_rss = proc_kb(pid, "VmRSS:");

    // /healthz ten times a second, on its own thread, until the flood is over.
    let flooding = Arc::new(AtomicUsize::new(1));
    let health = {
        let (flooding, url) = (flooding.clone(), format!("http://{}/healthz", addrs.admin));
        std::thread::spawn(move || {
            let agent = http_agent();
            let (mut asked, mut failed, mut slowest) = (0usize, Vec::new(), Duration::ZERO);
            while flooding.load(Relaxed) == 1 {
                let t = Instant::now();
                match fetch(&agent, &url) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failed.push(format!("{}", r.status)),
                    Err(e) => failed.push(e),
                }
                slowest = slowest.max(t.elapsed());
                asked += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (asked, failed, slowest)
        })
    };

    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicUsize::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let errors: Vec<String> = runtime.block_on(async {
        // Memory, sampled while the flood runs.
        let sampler = {
            let peak = peak_rss.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(proc_kb(pid, "VmRSS:"), Relaxed);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (tally, next) = (tally.clone(), next.clone());
                let server = addrs.public;
                tokio::spawn(async move {
                    let mut errors = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Relaxed);
                        if i >= addresses {
                            return errors;
                        }
                        let count = per_visitor
                            .min(total.saturating_sub(i * per_visitor))
                            .max(2);
                        let canary = i % canary_every == 0;
                        if let Err(e) = visit(server, address(i), count, canary, &tally).await {
                            tally.failures.fetch_add(1, Relaxed);
                            if errors.len() < 3 {
                                errors.push(e);
                            }
                        }
                    }
                })
            })
            .collect();
        let mut errors = Vec::new();
        for t in tasks {
            errors.extend(t.await.unwrap());
        }
        sampler.abort();
        errors
    });
    let elapsed = started.elapsed();
    flooding.store(0, Relaxed);
    let (health_asked, health_failed, health_slowest) = health.join().unwrap();

    // Afterwards: a new visitor is served, nothing is left open, the queue drains.
    let agent = http_agent();
    let after = fetch(&agent, &server.url("/")).unwrap();
    assert_eq!(after.status, 200, "a page after the flood");
    let metrics_url = format!("http://{}/metrics", addrs.admin);
    let settle = Instant::now();
    let (open, queued) = loop {
        let m = fetch(&agent, &metrics_url).unwrap().text();
        let value = |name: &str| -> i64 {
            m.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or(-1)
        };
        let (open, queued) = (
            value("faceprobe_connections_open"),
            value("faceprobe_queue_depth"),
        );
        if (open == 0 && queued == 0) || settle.elapsed() > Duration::from_secs(20) {
            break (open, queued);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let peak_mb = proc_kb(pid, "VmHWM:") / 1024;
    let sampled_mb = peak_rss.load(Relaxed) / 1024;
    let status = server.terminate();
    assert!(status.success(), "SIGTERM: {status}\n{}", server.log_text());

    // What the store holds of the flood.
    let db = env.db();
    let count = |kind: &str| -> usize {
        db.query_row("SELECT count(*) FROM events WHERE kind = ?1", [kind], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
    };
    let (robots_stored, canaries_stored) = (count("robots"), count("canary"));
    let distinct: i64 = db
        .query_row("SELECT count(DISTINCT client_key) FROM events", [], |r| {
            r.get(0)
        })
        .unwrap_or(-1);
    drop(db);
    let log = server.log_text();
    let log_lines = log.lines().count();
    // The limiter's budget: its burst, then `total_per_second` a second, plus the lines the
    // server writes of its own (start, stop, a summary a minute).
    let budget =
        50 * (elapsed.as_secs() as usize + 2) + 20 + 2 * (elapsed.as_secs() as usize / 60 + 1);

    let requests = tally.requests.load(Relaxed);
    let (robots_ok, canaries_ok) = (
        tally.robots_ok.load(Relaxed),
        tally.canaries_ok.load(Relaxed),
    );
    common::figure(&format!(
        "flood: {requests} requests from {addresses} addresses in {elapsed:.1?} ({:.0}/s); \
         {} answers not 200, {} connection failures; server memory: {} MB at start, peak {peak_mb} MB \
         (sampled {sampled_mb} MB; bound {MEMORY_BOUND_MB} MB); log lines: {log_lines} (budget {budget}); \
         robots.txt answered {robots_ok}, stored {robots_stored}; canaries answered {canaries_ok}, \
         stored {canaries_stored}; records lost: {}; distinct clients stored: {distinct}; \
         /healthz: {health_asked} asked, {} failed, slowest {health_slowest:.1?}; after: {open} connections open, {queued} queued",
        requests as f64 / elapsed.as_secs_f64(),
        tally.other.load(Relaxed),
        tally.failures.load(Relaxed),
        started_rss / 1024,
        (robots_ok.saturating_sub(robots_stored)) + canaries_ok.saturating_sub(canaries_stored),
        health_failed.len(),
    ));
    assert!(errors.is_empty(), "visitors failed: {errors:?}");
    assert_eq!(tally.other.load(Relaxed), 0, "answers other than 200");
    assert!(
        requests >= total * 9 / 10,
        "only {requests} of {total} requests were sent"
    );
    assert!(
        health_failed.is_empty(),
        "/healthz failed during the flood: {health_failed:?}"
    );
    assert!(
        peak_mb < MEMORY_BOUND_MB,
        "peak memory {peak_mb} MB over the bound of {MEMORY_BOUND_MB} MB"
    );
    assert!(
        log_lines <= budget,
        "{log_lines} log lines, over the budget of {budget}:\n{}",
        &log[..log.len().min(4000)]
    );
    assert_eq!(
        robots_stored, robots_ok,
        "robots.txt fetches answered but not stored"
    );
    assert_eq!(
        canaries_stored, canaries_ok,
        "canary fetches answered but not stored"
    );
    assert!(canaries_ok > 0, "the flood fetched no canary");
    assert_eq!(
        (open, queued),
        (0, 0),
        "connections or events left over after the flood"
    );
}
