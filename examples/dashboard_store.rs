//! A store for the dashboard benchmark: EVENTS events (default 1,000,000) over the last seven
//! days from CLIENTS clients (default 100,000), each with its detector state, of which about
//! 2 % are flagged (with reasons, event ids and history), some confirmed (a case), some
//! dismissed; and two actors that make the heaviest pages:
//!
//! - `c:bench-harvester` (img2dataset), every tenth event over the whole week (100,000 events:
//!   pages, the site's images, robots.txt and 300 canaries), so its page reads the whole span;
//! - `k:bench-cluster`, 50 disguised clients (a browser's user agent, one address each) that
//!   share the work of one crawl over two hours, with canaries.
//!
//! cargo run --release --example dashboard_store -- DATA_DIR [EVENTS] [CLIENTS] [TOKENS]
//!
//! TOKENS (default 0) more tokens are stored as the edge mints them, one per page view over the
//! week, each with its hashes (random bits: their size is what matters here), for the sizing
//! figures of docs/deploy.md (`scripts/bench-sizing`).
//!
//! It prints the keys `scripts/bench-dashboard` asks for. The detector must stay off while the
//! benchmark runs (`[detect] enabled = false`): it would judge these events again.

use faceprobe::canary::hash::{Frame, Scheme};
use faceprobe::canary::render::{render_seeds, RENDERER_VERSION};
use faceprobe::canary::Token;
use faceprobe::config::{Level, RecordConfig};
use faceprobe::detect::client::{Counts, Reached, Reason};
use faceprobe::detect::signals::SignalId;
use faceprobe::detect::{stored, Client};
use faceprobe::metrics::Metrics;
use faceprobe::record::event::{Mint, TokenHashes};
use faceprobe::record::{self, Event, Kind};
use faceprobe::store::clients::{self, HistoryEntry};
use faceprobe::store::{now_ms, reviews, tokens, Store};
use rand::{Rng, SeedableRng};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const ROBOTS: &str = "User-agent: *\nDisallow: /_fp/\nDisallow: /private/\n";
const HARVESTER: &str = "c:bench-harvester";
const HARVESTER_AGENT: &str = "img2dataset/1.5.0 (+https://github.com/rom1504/img2dataset)";
const CLUSTER: &str = "k:bench-cluster";
const MEMBERS: u64 = 50;
const CLUSTER_EVENTS: u64 = 10_000;
const CANARIES: u64 = 300;
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const WEEK_MS: i64 = 7 * 86_400_000;

fn robots_sha() -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(ROBOTS.as_bytes()).into()
}

/// What is known of one client while its events are written.
#[derive(Default, Clone)]
struct Seen {
    first_ms: i64,
    last_ms: i64,
    counts: Counts,
    ids: Vec<i64>,
}

impl Seen {
    fn add(&mut self, id: i64, ts: i64, kind: Kind) {
        if self.counts.requests == 0 {
            self.first_ms = ts;
        }
        self.last_ms = ts;
        self.counts.requests += 1;
        match kind {
            Kind::Page => self.counts.pages += 1,
            Kind::Image => self.counts.images += 1,
            Kind::Canary => self.counts.canaries += 1,
            Kind::Robots => self.counts.robots += 1,
            Kind::Trap => self.counts.traps += 1,
            _ => self.counts.assets += 1,
        }
        if self.ids.len() < 10 {
            self.ids.push(id);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("DATA_DIR"));
    let events: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("EVENTS"));
    let clients_n: u64 = args.next().map_or(100_000, |a| a.parse().expect("CLIENTS"));
    let extra_tokens: u64 = args.next().map_or(0, |a| a.parse().expect("TOKENS"));
    let started = Instant::now();
    let scheme = Scheme::new();
    let scheme_id = {
        let store = Store::open(&dir).expect("store");
        store
            .conn()
            .execute(
                "INSERT OR IGNORE INTO robots (sha256, body, source, first_served_ms)
                 VALUES (?1, ?2, 'bench', 0)",
                rusqlite::params![&robots_sha()[..], ROBOTS.as_bytes()],
            )
            .expect("robots");
        tokens::scheme_id(store.conn(), scheme.name(), scheme.params()).expect("scheme")
    };
    let config = RecordConfig {
        synchronous: faceprobe::config::Synchronous::Normal,
        ..RecordConfig::default()
    };
    let (rec, writer) =
        record::start(&dir, &config, [9; 32], Arc::new(Metrics::default())).expect("recorder");
    let end = now_ms() - 60_000;
    let step = WEEK_MS / events as i64;
    let start = end - step * events as i64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut seen: Vec<Seen> = vec![Seen::default(); clients_n as usize];
    let mut harvester = Seen::default();
    let mut members: Vec<Seen> = vec![Seen::default(); MEMBERS as usize];
    let cluster_from = events * 8 / 10;
    let (mut harvested, mut clustered) = (0u64, 0u64);
    for i in 0..events {
        let id = i as i64 + 1;
        let ts = start + i as i64 * step;
        let e = if i % 10 == 3 {
            harvested += 1;
            let e = harvester_event(harvested, ts, scheme_id, &scheme, events / 10);
            harvester.add(id, ts, e.kind());
            e
        } else if i >= cluster_from && i % 7 == 0 && clustered < CLUSTER_EVENTS {
            clustered += 1;
            let m = (clustered % MEMBERS) as usize;
            let e = member_event(m, clustered, ts, scheme_id, &scheme);
            members[m].add(id, ts, e.kind());
            e
        } else {
            let c = rng.random_range(0..clients_n) as usize;
            let e = visitor_event(c, &mut rng, ts);
            seen[c].add(id, ts, e.kind());
            e
        };
        rec.record_blocking(e).expect("record");
    }
    rec.flush_blocking().expect("flush");
    drop(rec);
    writer.join();
    eprintln!(
        "{events} events written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut store = Store::open(&dir).expect("store");
    let tx = store.conn_mut().transaction().expect("transaction");
    let now = now_ms();
    let mut flagged = 0u64;
    for (i, s) in seen.iter().enumerate() {
        if s.counts.requests == 0 {
            continue;
        }
        let key = visitor_key(i);
        let mut c = Client {
            key: key.clone(),
            address: Some(visitor_ip(i).to_string()),
            prefix: Some(format!("{}/24", prefix(visitor_ip(i)))),
            agent: Some(visitor_agent(i).into()),
            browser: !visitor_agent(i).starts_with("python"),
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            counts: s.counts.clone(),
            ..Client::default()
        };
        // One in fifty is flagged, at a level that follows its score.
        if i % 50 == 7 {
            flagged += 1;
            let (level, score) = match i % 3 {
                0 => (Level::Watch, 25.0),
                1 => (Level::Suspect, 60.0),
                _ => (Level::Harvester, 110.0),
            };
            flag(&tx, &mut c, level, score, &s.ids, now);
            if i % 500 == 7 {
                reviews::open_case(&tx, &key, "bench", "confirmed", now).expect("case");
                reviews::add(&tx, &key, "bench", reviews::Decision::Confirm, "bench", now)
                    .expect("review");
            } else if i % 500 == 57 {
                stored::upsert(&tx, &c, now).expect("client");
                stored::dismiss_in(&tx, &key, "bench", "our monitor", now).expect("dismiss");
                continue;
            }
        }
        stored::upsert(&tx, &c, now).expect("client");
    }
    let mut h = Client {
        key: HARVESTER.into(),
        address: Some("203.0.113.7".into()),
        prefix: Some("203.0.113.0/24".into()),
        agent: Some(HARVESTER_AGENT.into()),
        first_ms: harvester.first_ms,
        last_ms: harvester.last_ms,
        counts: harvester.counts.clone(),
        ..Client::default()
    };
    flag(&tx, &mut h, Level::Harvester, 240.0, &harvester.ids, now);
    stored::upsert(&tx, &h, now).expect("harvester");
    let mut cluster = Client {
        key: CLUSTER.into(),
        ..Client::default()
    };
    for (m, s) in members.iter().enumerate() {
        let mut c = Client {
            key: member_key(m),
            address: Some(member_ip(m).to_string()),
            prefix: Some(format!("{}/24", prefix(member_ip(m)))),
            agent: Some(CHROME.into()),
            browser: true,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            counts: s.counts.clone(),
            cluster: Some(CLUSTER.into()),
            ..Client::default()
        };
        flag(&tx, &mut c, Level::Suspect, 55.0, &s.ids, now);
        stored::upsert(&tx, &c, now).expect("member");
        cluster.members.push(c.key.clone());
        cluster
            .addresses
            .push(c.address.clone().unwrap_or_default());
        cluster.counts.add(&s.counts);
        cluster.first_ms = if cluster.first_ms == 0 {
            s.first_ms
        } else {
            cluster.first_ms.min(s.first_ms)
        };
        cluster.last_ms = cluster.last_ms.max(s.last_ms);
    }
    mint(&tx, extra_tokens, start, end, scheme_id, &mut rng);
    let ids: Vec<i64> = members
        .iter()
        .flat_map(|s| s.ids.iter().copied())
        .take(10)
        .collect();
    flag(&tx, &mut cluster, Level::Harvester, 180.0, &ids, now);
    stored::upsert(&tx, &cluster, now).expect("cluster");
    tx.commit().expect("commit");
    eprintln!(
        "{} clients ({flagged} of them flagged), {HARVESTER} ({} events), {CLUSTER} ({MEMBERS} members, {clustered} events) in {} ({:.1} s in all)",
        seen.iter().filter(|s| s.counts.requests > 0).count(),
        harvester.counts.requests,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    println!("harvester {HARVESTER}");
    println!("cluster {CLUSTER}");
    println!("member {}", member_key(0));
    println!("flagged {}", visitor_key(7));
}

/// `n` tokens minted by page views spread over `start..end`, as the edge stores them.
fn mint(
    tx: &rusqlite::Connection,
    n: u64,
    start: i64,
    end: i64,
    scheme_id: i64,
    rng: &mut impl Rng,
) {
    for i in 0..n {
        let created_ms = start + (end - start) * i as i64 / n.max(1) as i64;
        tokens::insert(
            tx,
            &tokens::NewToken {
                token: Token::minted_at(created_ms),
                identity_seed: rng.random(),
                variant_seed: rng.random(),
                size: 256,
                renderer: RENDERER_VERSION,
                created_ms,
                client_key: &visitor_key(rng.random_range(0..100_000)),
                minted_by: "edge",
                minting_event: Some(i as i64 + 1),
                hashes: Some((
                    scheme_id,
                    faceprobe::canary::hash::Hashes {
                        phash: rng.random(),
                        dhash: rng.random(),
                        center_phash: rng.random(),
                    },
                )),
                parent_token: None,
                depth: 0,
            },
        )
        .expect("token");
    }
}

/// Gives `c` a level with its reasons, levels reached and history lines.
fn flag(
    tx: &rusqlite::Connection,
    c: &mut Client,
    level: Level,
    score: f64,
    ids: &[i64],
    now: i64,
) {
    let reasons: &[(SignalId, &str)] = match level {
        Level::Watch => &[(SignalId::RequestRate, "62 requests in a minute")],
        Level::Suspect => &[
            (
                SignalId::BrowserHeadersMissing,
                "a browser's agent without Sec-Fetch-*",
            ),
            (SignalId::NoRender, "images without CSS or scripts"),
        ],
        Level::Harvester => &[
            (SignalId::CanaryFetched, "hidden canaries fetched"),
            (SignalId::RobotsDisallowed, "Disallow: /_fp/ broken"),
            (SignalId::KnownAgent, "img2dataset"),
        ],
    };
    c.score = score;
    c.level = Some(level);
    for (i, (signal, detail)) in reasons.iter().enumerate() {
        c.reasons.push(Reason {
            signal: *signal,
            score: score / (i as f64 + 1.5),
            count: ids.len() as u32,
            events: ids.to_vec(),
            detail: (*detail).into(),
        });
    }
    let at_event = ids.first().copied().unwrap_or(0);
    for (l, s) in [
        (Level::Watch, 20.0),
        (Level::Suspect, 50.0),
        (Level::Harvester, 100.0),
    ] {
        if l > level {
            break;
        }
        let at_ms = c.first_ms + (c.last_ms - c.first_ms) / 4 * (l as i64 + 1);
        c.levels.push(Reached {
            level: l,
            at_ms,
            at_event,
            requests: c.counts.requests,
        });
        clients::append_history(
            tx,
            &HistoryEntry {
                key: &c.key,
                at_ms: at_ms.min(now),
                level: Some(l.as_str()),
                score: s,
                at_event,
                requests: c.counts.requests,
                note: "reached",
            },
            None,
        )
        .expect("history");
    }
}

fn visitor_key(i: usize) -> String {
    format!("c:{:024x}", i as u64 * 0x9E37_79B9 + 1)
}

fn visitor_ip(i: usize) -> IpAddr {
    IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

fn visitor_agent(i: usize) -> &'static str {
    match i % 10 {
        0 => "python-requests/2.31.0",
        1 | 2 => "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        _ => CHROME,
    }
}

fn member_key(m: usize) -> String {
    format!("c:bench-member-{m:02}")
}

fn member_ip(m: usize) -> IpAddr {
    IpAddr::from([198, 51, 100, m as u8 + 10])
}

fn prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{}.{}.{}.0", o[0], o[1], o[2])
        }
        IpAddr::V6(v) => v.to_string(),
    }
}

fn visitor_event(c: usize, rng: &mut impl Rng, ts_ms: i64) -> Event {
    let page = rng.random_range(0..400u32);
    let (path, kind) = match rng.random_range(0..10u32) {
        0..=4 => (format!("/gallery/{page}/"), Kind::Page),
        5..=7 => (
            format!("/photos/{:05}.jpg", rng.random_range(0..20_000u32)),
            Kind::Image,
        ),
        _ => ("/static/site.css".to_string(), Kind::Asset),
    };
    Event {
        ts_ms,
        ip: Some(visitor_ip(c)),
        client_key: visitor_key(c),
        method: "GET".into(),
        host: Some("photos.example.org".into()),
        path,
        status: 200,
        bytes: 18_234,
        duration_us: 740,
        user_agent: Some(visitor_agent(c).into()),
        accept: Some("text/html,application/xhtml+xml".into()),
        accept_language: Some("fr-FR,fr;q=0.9".into()),
        header_order: "host,user-agent,accept,accept-language".into(),
        kind: Some(kind),
        ..Event::default()
    }
}

/// A canary fetch by `client`, with its token row and hashes.
fn canary(e: &mut Event, n: u64, client: &str, scheme_id: i64, scheme: &Scheme) {
    let token = Token::minted_at(e.ts_ms - 500);
    let (identity_seed, variant_seed) = (n.wrapping_mul(0x9E37_79B9), n ^ 0x5555);
    let image = render_seeds(identity_seed, variant_seed, 256);
    e.path = format!("/_fp/c/{token}.jpg");
    e.kind = Some(Kind::Canary);
    e.token = Some(token);
    e.ensure_token = Some(Mint {
        token,
        identity_seed,
        variant_seed,
        size: 256,
        renderer: RENDERER_VERSION,
        created_ms: e.ts_ms - 500,
        client_key: client.into(),
        parent: None,
        depth: 0,
    });
    e.hashes = Some(TokenHashes {
        scheme_id,
        hashes: scheme.hashes(&Frame::of_rgb(&image)),
    });
}

fn harvester_event(n: u64, ts_ms: i64, scheme_id: i64, scheme: &Scheme, total: u64) -> Event {
    let mut e = Event {
        ts_ms,
        ip: Some(IpAddr::from([203, 0, 113, 7])),
        client_key: HARVESTER.into(),
        method: "GET".into(),
        host: Some("photos.example.org".into()),
        status: 200,
        bytes: 48_000,
        duration_us: 900,
        user_agent: Some(HARVESTER_AGENT.into()),
        accept: Some("*/*".into()),
        header_order: "host,user-agent,accept-encoding,accept,connection".into(),
        ..Event::default()
    };
    if n.is_multiple_of((total / CANARIES).max(1)) {
        canary(&mut e, n, HARVESTER, scheme_id, scheme);
    } else if n % 500 == 1 {
        e.path = "/robots.txt".into();
        e.kind = Some(Kind::Robots);
        e.robots_sha256 = Some(robots_sha());
    } else if n % 97 == 5 {
        e.path = format!("/private/{}.jpg", n % 300);
        e.kind = Some(Kind::Image);
    } else if n.is_multiple_of(3) {
        e.path = format!("/gallery/{}/", n % 400);
        e.kind = Some(Kind::Page);
    } else {
        e.path = format!("/photos/{:05}.jpg", n % 20_000);
        e.kind = Some(Kind::Image);
    }
    e
}

fn member_event(m: usize, n: u64, ts_ms: i64, scheme_id: i64, scheme: &Scheme) -> Event {
    let key = member_key(m);
    let mut e = Event {
        ts_ms,
        ip: Some(member_ip(m)),
        client_key: key.clone(),
        method: "GET".into(),
        host: Some("photos.example.org".into()),
        status: 200,
        bytes: 52_000,
        duration_us: 800,
        user_agent: Some(CHROME.into()),
        accept: Some("image/avif,image/webp,*/*".into()),
        header_order: "host,user-agent,accept,connection".into(),
        ..Event::default()
    };
    if n.is_multiple_of(40) {
        canary(&mut e, 1_000_000 + n, &key, scheme_id, scheme);
    } else {
        e.path = format!("/photos/{:05}.jpg", (n * 7) % 20_000);
        e.kind = Some(Kind::Image);
    }
    e
}
