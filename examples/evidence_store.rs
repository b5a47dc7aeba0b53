//! A store for the evidence benchmark: EVENTS events (default 1,000,000), of which every
//! tenth (ACTOR_EVENTS = EVENTS / 10) belongs to one harvester, `c:bench-harvester`, flagged;
//! the rest come from 5,000 other visitors. The harvester fetches pages, the site's images,
//! robots.txt and CANARIES canaries (default 300), each with its token and hashes.
//!
//! cargo run --release --example evidence_store -- DATA_DIR [EVENTS] [CANARIES]
//!
//! Then `scripts/bench-evidence` times `evidence build`, `evidence verify` and `verify.py`.

use faceprobe::canary::hash::{Frame, Scheme};
use faceprobe::canary::render::{render_seeds, RENDERER_VERSION};
use faceprobe::canary::Token;
use faceprobe::config::RecordConfig;
use faceprobe::detect::{Client, Level};
use faceprobe::metrics::Metrics;
use faceprobe::record::event::{Mint, TokenHashes};
use faceprobe::record::{self, Event, Kind};
use faceprobe::store::{now_ms, tokens, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const ROBOTS: &str = "User-agent: *\nDisallow: /_fp/\nDisallow: /private/\n";

fn robots_sha() -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(ROBOTS.as_bytes()).into()
}

const ACTOR: &str = "c:bench-harvester";
const ACTOR_AGENT: &str = "img2dataset/1.5.0 (+https://github.com/rom1504/img2dataset)";

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("DATA_DIR"));
    let events: u64 = args
        .next()
        .map(|a| a.parse().expect("EVENTS"))
        .unwrap_or(1_000_000);
    let canaries: u64 = args
        .next()
        .map(|a| a.parse().expect("CANARIES"))
        .unwrap_or(300);
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
    let metrics = Arc::new(Metrics::default());
    let (rec, writer) = record::start(&dir, &config, [9; 32], metrics).expect("recorder");
    let base = now_ms() - events as i64 * 10;
    let actor_every = 10;
    let actor_events = events / actor_every;
    let canary_every = (actor_events / canaries.max(1)).max(1);
    let mut actor_n = 0u64;
    for i in 0..events {
        let ts_ms = base + i as i64 * 10;
        let e = if i % actor_every == 3 {
            actor_n += 1;
            actor_event(actor_n, ts_ms, canary_every, scheme_id, &scheme)
        } else {
            visitor_event(i, ts_ms)
        };
        rec.record_blocking(e).expect("record");
    }
    rec.flush_blocking().expect("flush");
    drop(rec);
    writer.join();
    let store = Store::open(&dir).expect("store");
    let client = Client {
        key: ACTOR.into(),
        address: Some("203.0.113.7".into()),
        agent: Some(ACTOR_AGENT.into()),
        first_ms: base,
        last_ms: base + events as i64 * 10,
        score: 240.0,
        level: Some(Level::Harvester),
        ..Client::default()
    };
    faceprobe::detect::stored::upsert(store.conn(), &client, now_ms()).expect("client");
    eprintln!(
        "{events} events ({actor_n} of {ACTOR}) written to {} in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
}

fn actor_event(n: u64, ts_ms: i64, canary_every: u64, scheme_id: i64, scheme: &Scheme) -> Event {
    let mut e = Event {
        ts_ms,
        ip: Some(std::net::IpAddr::from([203, 0, 113, 7])),
        client_key: ACTOR.into(),
        method: "GET".into(),
        host: Some("photos.example.org".into()),
        status: 200,
        bytes: 48_000,
        duration_us: 900,
        user_agent: Some(ACTOR_AGENT.into()),
        accept: Some("*/*".into()),
        accept_encoding: Some("gzip, deflate".into()),
        header_order: "host,user-agent,accept-encoding,accept,connection".into(),
        ..Event::default()
    };
    if n.is_multiple_of(canary_every) {
        let token = Token::minted_at(ts_ms - 500);
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
            created_ms: ts_ms - 500,
            client_key: ACTOR.into(),
            parent: None,
            depth: 0,
        });
        e.hashes = Some(TokenHashes {
            scheme_id,
            hashes: scheme.hashes(&Frame::of_rgb(&image)),
        });
    } else if n % 50 == 1 {
        e.path = "/robots.txt".into();
        e.kind = Some(Kind::Robots);
        e.robots_sha256 = Some(robots_sha());
    } else if n.is_multiple_of(3) {
        e.path = format!("/gallery/{}/", n % 400);
        e.kind = Some(Kind::Page);
    } else {
        e.path = format!("/photos/{:05}.jpg", n % 20_000);
        e.kind = Some(Kind::Image);
    }
    e
}

fn visitor_event(i: u64, ts_ms: i64) -> Event {
    Event {
        ts_ms,
        ip: Some(std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, (i % 5000) as u8])),
        client_key: format!("c:{:024x}", i % 5000),
        method: "GET".into(),
        host: Some("photos.example.org".into()),
        path: format!("/gallery/{}/photo-{}.html", i % 97, i),
        status: 200,
        bytes: 18_234,
        duration_us: 740,
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
                .into(),
        ),
        accept: Some("text/html,application/xhtml+xml".into()),
        accept_language: Some("fr-FR,fr;q=0.9".into()),
        header_order: "host,user-agent,accept,accept-language".into(),
        kind: Some(Kind::Page),
        ..Event::default()
    }
}
