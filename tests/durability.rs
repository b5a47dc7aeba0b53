//! kill -9 under load: every canary a client received a whole body for is in the store after
//! the restart, and the store (integrity and hash chain) checks out.
//!
//! Crawlers on several threads walk the demo site as a harvester does (pages, every `<img>`,
//! trap galleries and their canaries) until the server is killed with SIGKILL in the middle of
//! their traffic. The server is then started again on the same data directory, stopped with
//! SIGTERM, and the store is read.
//!
//! The second test does it 200 times (`FACEPROBE_KILLS` to change it), each kill at a random
//! moment of the traffic, and prints how long the server took to serve again each time.

mod common;

use common::Env;
use common::{canary_token, fetch, http_agent, img_and_link_urls, is_whole_jpeg, same_origin};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

const CLIENTS: usize = 4;
/// Traffic before the kill, once at least `MIN_CANARIES` were received.
const LOAD: Duration = Duration::from_millis(2500);
const MIN_CANARIES: usize = 20;
/// Bounds, whatever the server does.
const MAX_LOAD: Duration = Duration::from_secs(30);
const MAX_REQUESTS_PER_CLIENT: usize = 5000;
const MAX_QUEUE: usize = 64;

#[derive(Default)]
struct Shared {
    /// Set just before the SIGKILL: failures from then on are expected.
    killing: AtomicBool,
    /// Tokens of the canaries whose whole JPEG was received.
    received: Mutex<Vec<String>>,
    received_count: AtomicUsize,
}

#[derive(Default)]
struct Crawl {
    requests: usize,
    /// Failures while the server was meant to be up: each one is a bug.
    errors: Vec<String>,
}

#[test]
fn every_canary_received_before_kill_9_is_in_the_store_after_restart() {
    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"", "");
    let mut server = env.serve(addrs);
    let base = server.url("");

    let shared = Arc::new(Shared::default());
    let crawlers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (base, shared) = (base.clone(), shared.clone());
            std::thread::spawn(move || crawl(&base, &shared))
        })
        .collect();
    let start = Instant::now();
    while (start.elapsed() < LOAD || shared.received_count.load(Ordering::SeqCst) < MIN_CANARIES)
        && start.elapsed() < MAX_LOAD
        && !crawlers.iter().all(|c| c.is_finished())
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    shared.killing.store(true, Ordering::SeqCst);
    server.kill9();
    let crawls: Vec<Crawl> = crawlers.into_iter().map(|c| c.join().unwrap()).collect();

    let errors: Vec<&String> = crawls.iter().flat_map(|c| &c.errors).collect();
    assert!(
        errors.is_empty(),
        "requests failed before the kill: {errors:?}\n{}",
        server.log_text()
    );
    let received = shared.received.lock().unwrap().clone();
    let requests: usize = crawls.iter().map(|c| c.requests).sum();
    eprintln!(
        "{requests} requests, {} canaries received, then SIGKILL",
        received.len()
    );
    assert!(
        received.len() >= MIN_CANARIES,
        "only {} canaries were received before the kill ({requests} requests)",
        received.len()
    );

    // Restart on the same data directory: it must come up, serve, and stop gracefully.
    let mut server = env.serve(addrs);
    let agent = http_agent();
    let page = fetch(&agent, &server.url("/")).unwrap();
    assert_eq!(page.status, 200, "after restart");
    drop(agent);
    let status = server.terminate();
    assert!(status.success(), "SIGTERM: {status}\n{}", server.log_text());

    let missing = common::canaries_not_stored(&env, &received);
    assert!(
        missing.is_empty(),
        "{} of {} canaries served with a whole body have no fetch in the store: {missing:?}",
        missing.len(),
        received.len()
    );
    let db = env.db();
    let kinds: Vec<(String, i64)> = db
        .prepare("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    eprintln!("events in the store after the restart: {kinds:?}");
    drop(db);

    common::assert_db_check(&env, "kill -9 and a restart");
}

/// Walks the site like a harvester: a page, then every image on it, then its links (trap
/// galleries included); back to `/` (a new page view, new canaries) when the queue runs dry.
/// Stops at the first failed request, or after `MAX_REQUESTS_PER_CLIENT`.
fn crawl(base: &str, shared: &Shared) -> Crawl {
    let agent = http_agent();
    let home = format!("{base}/");
    let mut queue: VecDeque<String> = VecDeque::new();
    let mut out = Crawl::default();
    while out.requests < MAX_REQUESTS_PER_CLIENT {
        let url = queue.pop_front().unwrap_or_else(|| home.clone());
        out.requests += 1;
        let r = match fetch(&agent, &url) {
            Ok(r) => r,
            Err(e) => {
                if !shared.killing.load(Ordering::SeqCst) {
                    out.errors.push(e);
                }
                return out;
            }
        };
        if let Some(token) = canary_token(&url) {
            if r.status == 200 && r.content_type.starts_with("image/jpeg") && is_whole_jpeg(&r.body)
            {
                shared.received.lock().unwrap().push(token);
                shared.received_count.fetch_add(1, Ordering::SeqCst);
            } else if !shared.killing.load(Ordering::SeqCst) {
                out.errors.push(format!(
                    "{url}: {} {} ({} bytes, not a whole JPEG)",
                    r.status,
                    r.content_type,
                    r.body.len()
                ));
                return out;
            }
        } else if r.status == 200 && r.content_type.starts_with("text/html") {
            let (imgs, links) = img_and_link_urls(&r.text());
            // Images of this page first, in page order; then the pages it links to.
            let imgs: Vec<String> = imgs.iter().filter_map(|s| same_origin(&url, s)).collect();
            for img in imgs.into_iter().rev() {
                queue.push_front(img);
            }
            for link in links.iter().filter_map(|l| same_origin(&url, l)) {
                if queue.len() < MAX_QUEUE {
                    queue.push_back(link);
                }
            }
        }
    }
    out
}

/// Kills of the loop (`FACEPROBE_KILLS` overrides).
const KILLS: usize = 200;
/// Each kill comes at a random moment up to this long into the traffic.
const MAX_KILL_AFTER: Duration = Duration::from_millis(400);

#[test]
fn two_hundred_kill_9_at_random_moments_lose_no_acknowledged_canary() {
    let kills: usize = std::env::var("FACEPROBE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(KILLS);
    let seed: u64 = std::env::var("FACEPROBE_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("{kills} kills, seed {seed} (FACEPROBE_KILL_SEED={seed} repeats the moments)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"", "");
    let mut received: Vec<String> = Vec::new();
    let mut up_times: Vec<Duration> = Vec::new();
    let mut requests = 0usize;
    for round in 0..kills {
        let started = Instant::now();
        let mut server = env.serve(addrs);
        // Serving again: the time from the start of the process to its first page.
        let agent = http_agent();
        let page = fetch(&agent, &server.url("/")).unwrap_or_else(|e| {
            panic!(
                "round {round}: first page after restart: {e}\n{}",
                server.log_text()
            )
        });
        assert_eq!(page.status, 200, "round {round}: {}", server.log_text());
        up_times.push(started.elapsed());
        drop(agent);

        let shared = Arc::new(Shared::default());
        let crawlers: Vec<_> = (0..2)
            .map(|_| {
                let (base, shared) = (server.url(""), shared.clone());
                std::thread::spawn(move || crawl(&base, &shared))
            })
            .collect();
        let after = rng.random_range(Duration::ZERO..MAX_KILL_AFTER);
        std::thread::sleep(after);
        shared.killing.store(true, Ordering::SeqCst);
        server.kill9();
        let crawls: Vec<Crawl> = crawlers.into_iter().map(|c| c.join().unwrap()).collect();
        let errors: Vec<&String> = crawls.iter().flat_map(|c| &c.errors).collect();
        assert!(
            errors.is_empty(),
            "round {round}: requests failed before the kill: {errors:?}\n{}",
            server.log_text()
        );
        requests += crawls.iter().map(|c| c.requests).sum::<usize>();
        received.extend(shared.received.lock().unwrap().drain(..));
    }

    // Once more, stopped gracefully; then every acknowledged canary must be in the store.
    // This stop does what 200 killed processes left undone (the detector catches up on every
    // event since its last save, the chain head is signed over all of them, the write-ahead
    // log is folded in): it is given a minute, and its time is printed.
    let mut server = env.serve(addrs);
    let stopping = Instant::now();
    let status = server.terminate_within(Duration::from_secs(60));
    common::figure(&format!(
        "kill -9 loop: the graceful stop after {kills} kills took {:.1} s",
        stopping.elapsed().as_secs_f64()
    ));
    assert!(status.success(), "SIGTERM: {status}\n{}", server.log_text());
    let lost = common::canaries_not_stored(&env, &received).len();
    up_times.sort();
    let median = up_times[up_times.len() / 2];
    let worst = *up_times.last().unwrap();
    let over_2s = up_times
        .iter()
        .filter(|t| **t > Duration::from_secs(2))
        .count();
    common::figure(&format!(
        "kills survived: {kills}; requests: {requests}; canaries acknowledged: {}; lost: {lost}; \
         serving again after start: median {median:.2?}, worst {worst:.2?}, over 2 s: {over_2s}",
        received.len()
    ));
    assert_eq!(lost, 0, "acknowledged canaries with no fetch in the store");
    assert!(
        received.len() >= kills / 4,
        "too few canaries acknowledged ({}) for the loop to prove anything",
        received.len()
    );
    common::assert_db_check(&env, &format!("{kills} kills"));
}
