//! Everything a bundle says about one actor, gathered from the store: its chain segment, the
//! report's facts (addresses, agents, counts, timeline, robots.txt versions and the rules
//! broken, opt-outs ignored, canaries, the site's images), and the canaries re-rendered.
//! Nothing of another visitor is read into it except the digests of the segment.

use super::files::Spool;
use super::report::model::{self, Report};
use super::robots::Rules;
use super::segment::{self, Segment};
use super::EvidenceError;
use crate::canary::{marks, render, Token};
use crate::config::Config;
use crate::detect::Client;
use crate::store::signing::{Public, SigningKey};
use crate::store::{clients, tokens};
use rusqlite::{Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Canaries re-rendered into a bundle at most (the index lists every one).
pub const MAX_CANARY_IMAGES: usize = 1000;
/// Rows of the site's images in the report at most (about four pages): a reader wants the
/// first of them and the totals; site-images.csv lists every one.
const MAX_SITE_IMAGE_ROWS: usize = 200;
/// Buckets of the timeline chart.
const BUCKETS: i64 = 48;

/// A canary the actor took.
pub struct CanaryTaken {
    pub token: Token,
    pub identity_seed: u64,
    pub variant_seed: u64,
    pub size: u32,
    pub phash: Option<u64>,
    pub dhash: Option<u64>,
    pub event_ids: Vec<i64>,
    pub first_fetch_ms: i64,
    /// The JPEG as re-rendered, when within `MAX_CANARY_IMAGES`.
    pub jpeg: Option<Vec<u8>>,
    pub depth: u32,
    pub minted_ms: i64,
    pub minted_for_actor: bool,
}

/// One site image the actor took.
pub struct SiteImageTaken {
    pub path: String,
    pub event_ids: Vec<i64>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub bytes: u64,
}

/// A case, ready to be written.
pub struct Case {
    pub client: Client,
    pub actor_keys: HashSet<String>,
    pub segment: Segment,
    pub history: Vec<clients::HistoryRow>,
    pub robots: Vec<(String, Vec<u8>, i64)>,
    pub canaries: Vec<CanaryTaken>,
    pub site_images: Vec<SiteImageTaken>,
    pub report: Report,
    pub jpeg_quality: u8,
}

/// Reads the case of `key` (a client `c:…` or a cluster `k:…`), writing the segment's
/// `chain.jsonl` into `chain`.
pub fn gather(
    conn: &mut Connection,
    config: &Config,
    key: &str,
    signer: &SigningKey,
    chain: &mut Spool,
) -> Result<Case, EvidenceError> {
    let client: Client =
        clients::get(conn, key)?.ok_or_else(|| EvidenceError::UnknownActor(key.into()))?;
    let mut actor_keys: HashSet<String> = client.members.iter().cloned().collect();
    if !client.is_cluster() {
        actor_keys.insert(client.key.clone());
    }
    let history = clients::history(conn, key)?;
    gather_of(
        conn,
        config,
        client,
        actor_keys,
        history,
        Checkpoints::Own(signer),
        chain,
    )
}

/// Whose checkpoints close a case's segment.
pub enum Checkpoints<'a> {
    /// This instance's: one is signed when none yet covers the actor's last event.
    Own(&'a SigningKey),
    /// Another instance's, as it shipped them to the fleet store, under its public key.
    Shipped(&'a Public),
}

/// Reads the case of `client`, whose events are those of `actor_keys`.
pub fn gather_of(
    conn: &mut Connection,
    config: &Config,
    client: Client,
    actor_keys: HashSet<String>,
    history: Vec<clients::HistoryRow>,
    checkpoints: Checkpoints,
    chain: &mut Spool,
) -> Result<Case, EvidenceError> {
    let started = std::time::Instant::now();
    let step = |what: &str| tracing::debug!("evidence case: {what} in {:?}", started.elapsed());
    let (signer, public) = match checkpoints {
        Checkpoints::Own(k) => (Some(k), k.public()),
        Checkpoints::Shipped(p) => (None, p.clone()),
    };
    let segment = segment::read(conn, &actor_keys, signer, &config.evidence.site, chain)?;
    step("chain segment read");
    let robots = robots_versions(conn, &segment)?;
    let canaries = canaries(conn, &segment, &actor_keys, config.canary.jpeg_quality)?;
    step("canaries re-rendered");
    let site_images = site_images(&segment);
    let mut case = Case {
        client,
        actor_keys,
        segment,
        history,
        robots,
        canaries,
        site_images,
        report: Report::default(),
        jpeg_quality: config.canary.jpeg_quality,
    };
    case.report = report(&case, config, &public);
    step("report's facts counted");
    Ok(case)
}

/// Every robots.txt version the actor fetched, and the latest served before its first event
/// (the rules in force when it never asked): `(sha256 hex, body, first served)`.
fn robots_versions(
    conn: &Connection,
    seg: &Segment,
) -> Result<Vec<(String, Vec<u8>, i64)>, EvidenceError> {
    let mut wanted: Vec<Vec<u8>> = Vec::new();
    for e in &seg.events {
        if let Some(h) = &e.event.robots_sha256 {
            if !wanted.contains(h) {
                wanted.push(h.clone());
            }
        }
    }
    let first_ts = seg.events.first().map(|e| e.event.ts_ms).unwrap_or(0);
    let in_force: Option<Vec<u8>> = conn
        .query_row(
            "SELECT sha256 FROM robots WHERE first_served_ms <= ?1
             ORDER BY first_served_ms DESC LIMIT 1",
            [first_ts],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(h) = in_force {
        if !wanted.contains(&h) {
            wanted.insert(0, h);
        }
    }
    let mut out = Vec::new();
    for h in wanted {
        let row: Option<(Vec<u8>, i64)> = conn
            .query_row(
                "SELECT body, first_served_ms FROM robots WHERE sha256 = ?1",
                [&h],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((body, first)) = row {
            out.push((hex::encode(&h), body, first));
        }
    }
    Ok(out)
}

fn canaries(
    conn: &Connection,
    seg: &Segment,
    actor: &HashSet<String>,
    quality: u8,
) -> Result<Vec<CanaryTaken>, EvidenceError> {
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut fetches: HashMap<Vec<u8>, (Vec<i64>, i64)> = HashMap::new();
    for e in &seg.events {
        if e.event.kind != "canary" {
            continue;
        }
        let Some(t) = &e.event.token else { continue };
        let entry = fetches.entry(t.clone()).or_insert_with(|| {
            order.push(t.clone());
            (Vec::new(), e.event.ts_ms)
        });
        entry.0.push(e.event.id);
    }
    let mut out = Vec::new();
    for bytes in order {
        let Some(token) = Token::from_bytes(&bytes) else {
            continue;
        };
        let Some(row) = tokens::by_token(conn, &token)? else {
            continue;
        };
        let (phash, dhash): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT phash, dhash FROM tokens WHERE id = ?1",
            [row.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let minted_for_actor = actor.contains(&row.client_key);
        let (ids, first) = fetches.remove(&bytes).unwrap_or_default();
        out.push(CanaryTaken {
            token,
            identity_seed: row.identity_seed,
            variant_seed: row.variant_seed,
            size: row.size,
            phash: phash.map(|v| v as u64),
            dhash: dhash.map(|v| v as u64),
            event_ids: ids,
            first_fetch_ms: first,
            jpeg: None,
            depth: row.depth,
            minted_ms: row.created_ms,
            minted_for_actor,
        });
    }
    // Rendering costs milliseconds each: both cores share the first MAX_CANARY_IMAGES.
    let n = out.len().min(MAX_CANARY_IMAGES);
    let half = n.div_ceil(2);
    let (a, b) = out[..n].split_at_mut(half);
    std::thread::scope(|s| {
        for part in [a, b] {
            s.spawn(move || {
                for c in part.iter_mut() {
                    c.jpeg = rerender(c, quality).ok();
                }
            });
        }
    });
    Ok(out)
}

/// A canary drawn again from its seeds and encoded as served.
pub fn rerender(c: &CanaryTaken, quality: u8) -> Result<Vec<u8>, EvidenceError> {
    let image = render::render_seeds(c.identity_seed, c.variant_seed, c.size);
    marks::encode_jpeg(&image, &c.token, quality)
        .map_err(|e| EvidenceError::Store(format!("cannot encode canary {}: {e}", c.token)))
}

fn site_images(seg: &Segment) -> Vec<SiteImageTaken> {
    let mut by_path: BTreeMap<String, SiteImageTaken> = BTreeMap::new();
    for e in &seg.events {
        let ev = &e.event;
        if ev.kind != "image" {
            continue;
        }
        let s = by_path
            .entry(ev.path.clone())
            .or_insert_with(|| SiteImageTaken {
                path: ev.path.clone(),
                event_ids: Vec::new(),
                first_ms: ev.ts_ms,
                last_ms: ev.ts_ms,
                bytes: 0,
            });
        s.event_ids.push(ev.id);
        s.last_ms = ev.ts_ms;
        s.bytes += ev.bytes.max(0) as u64;
    }
    let mut v: Vec<SiteImageTaken> = by_path.into_values().collect();
    v.sort_by_key(|s| (s.first_ms, s.event_ids[0]));
    v
}

/// The report's facts.
fn report(case: &Case, config: &Config, key: &Public) -> Report {
    let seg = &case.segment;
    let c = &case.client;
    let events = &seg.events;
    let first_ms = events.first().map(|e| e.event.ts_ms).unwrap_or(c.first_ms);
    let last_ms = events.last().map(|e| e.event.ts_ms).unwrap_or(c.last_ms);

    let mut addresses: BTreeMap<String, model::Address> = BTreeMap::new();
    let mut agents: BTreeMap<String, u64> = BTreeMap::new();
    let mut a = model::Activity {
        first_ms,
        last_ms,
        ..Default::default()
    };
    for e in events {
        // An event with neither its address nor a pseudonym (a fleet bundle's) lists none.
        if e.client_ip.is_some() || e.ip_pseudonym.is_some() {
            let (addr, raw) = e.address();
            let entry = addresses.entry(addr.clone()).or_insert(model::Address {
                address: addr,
                raw,
                requests: 0,
                first_ms: e.event.ts_ms,
                last_ms: e.event.ts_ms,
            });
            entry.requests += 1;
            entry.last_ms = e.event.ts_ms;
        }
        *agents
            .entry(e.event.user_agent.clone().unwrap_or_default())
            .or_default() += 1;
        a.requests += 1;
        match e.event.kind.as_str() {
            "page" => a.pages += 1,
            "image" => a.site_images += 1,
            "canary" => a.canaries += 1,
            "trap" => a.traps += 1,
            "robots" => a.robots_fetches += 1,
            "asset" => a.assets += 1,
            _ => a.other += 1,
        }
    }
    a.distinct_canaries = case.canaries.len() as u64;
    a.max_trap_depth = c.max_depth;

    // robots.txt: the version in force for each request is the one the actor last fetched,
    // else the one served before its first request.
    let rules: HashMap<&str, Rules> = case
        .robots
        .iter()
        .map(|(h, body, _)| (h.as_str(), Rules::new(&String::from_utf8_lossy(body))))
        .collect();
    let mut broken: HashMap<(String, u32), u64> = HashMap::new();
    let mut in_force: Option<String> = case.robots.first().map(|r| r.0.clone());
    let mut fetched: HashMap<String, Vec<i64>> = HashMap::new();
    let mut after_robots = 0u64;
    let mut violations = 0u64;
    for e in events {
        let ev = &e.event;
        if let Some(h) = &ev.robots_sha256 {
            let h = hex::encode(h);
            fetched.entry(h.clone()).or_default().push(ev.ts_ms);
            in_force = Some(h);
            continue;
        }
        let Some(sha) = &in_force else { continue };
        let Some(r) = rules.get(sha.as_str()) else {
            continue;
        };
        let target = match &ev.query {
            Some(q) => format!("{}?{q}", ev.path),
            None => ev.path.clone(),
        };
        if let Some(line) = r.broken_line(ev.user_agent.as_deref().unwrap_or(""), &target) {
            *broken.entry((sha.clone(), line)).or_default() += 1;
            violations += 1;
            if !fetched.is_empty() {
                after_robots += 1;
            }
        }
    }
    a.robots_violations = violations;
    let robots = case
        .robots
        .iter()
        .map(|(sha, body, first)| model::RobotsVersion {
            sha256: sha.clone(),
            first_served_ms: *first,
            fetched_ms: fetched.get(sha).cloned().unwrap_or_default(),
            lines: String::from_utf8_lossy(body)
                .lines()
                .enumerate()
                .map(|(i, text)| model::RobotsLine {
                    number: i as u32 + 1,
                    text: text.to_string(),
                    broken: broken
                        .get(&(sha.clone(), i as u32 + 1))
                        .copied()
                        .unwrap_or(0),
                })
                .collect(),
        })
        .collect();

    // Opt-outs: every canary and trap response carried X-Robots-Tag and tdm-reservation, every
    // canary its XMP mark; requests for more of them after the first are the signals ignored.
    let marked: Vec<&crate::evidence::events::Stored> = events
        .iter()
        .filter(|e| matches!(e.event.kind.as_str(), "canary" | "trap") && e.event.status == 200)
        .collect();
    let canary_served: Vec<i64> = events
        .iter()
        .filter(|e| e.event.kind == "canary" && e.event.status == 200)
        .map(|e| e.event.ts_ms)
        .collect();
    let opt = |signal: &str, value: &str, served: &[i64]| model::OptOut {
        signal: signal.into(),
        value: value.into(),
        served: served.len() as u64,
        ignored: served.len().saturating_sub(1) as u64,
        first_served_ms: served.first().copied(),
    };
    let marked_ts: Vec<i64> = marked.iter().map(|e| e.event.ts_ms).collect();
    let robots_ts: Vec<i64> = events
        .iter()
        .filter(|e| e.event.kind == "robots")
        .map(|e| e.event.ts_ms)
        .collect();
    let mut opt_outs = Vec::new();
    if !robots_ts.is_empty() || violations > 0 {
        opt_outs.push(model::OptOut {
            signal: "robots_txt".into(),
            value: crate::record::published::DISALLOW_FP.into(),
            served: robots_ts.len() as u64,
            ignored: if robots_ts.is_empty() {
                violations
            } else {
                after_robots
            },
            first_served_ms: robots_ts.first().copied(),
        });
    }
    if !marked_ts.is_empty() {
        opt_outs.push(opt("x_robots_tag", "noai, noimageai", &marked_ts));
        opt_outs.push(opt("tdm_reservation", "1", &marked_ts));
    }
    if !canary_served.is_empty() {
        opt_outs.push(opt(
            "xmp_data_mining",
            "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED",
            &canary_served,
        ));
    }

    let span = (last_ms - first_ms).max(1);
    let width = (span + BUCKETS - 1) / BUCKETS;
    let mut timeline: Vec<model::Bucket> = (0..BUCKETS)
        .map(|i| model::Bucket {
            start_ms: first_ms + i * width,
            end_ms: first_ms + (i + 1) * width,
            ..Default::default()
        })
        .collect();
    for e in events {
        let i = (((e.event.ts_ms - first_ms) / width).clamp(0, BUCKETS - 1)) as usize;
        let b = &mut timeline[i];
        match e.event.kind.as_str() {
            "page" => b.pages += 1,
            "image" => b.site_images += 1,
            "canary" => b.canaries += 1,
            "trap" => b.traps += 1,
            "robots" => b.robots += 1,
            _ => b.other += 1,
        }
    }

    let mut reasons: Vec<model::Reason> = c
        .reasons
        .iter()
        .filter(|r| r.score > 0.0)
        .map(|r| model::Reason {
            signal: r.signal.name().into(),
            score: r.score,
            count: u64::from(r.count),
            detail: r.detail.clone(),
            event_ids: r.events.clone(),
        })
        .collect();
    reasons.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut agents: Vec<model::Agent> = agents
        .into_iter()
        .map(|(agent, requests)| model::Agent { agent, requests })
        .collect();
    agents.sort_by_key(|a| std::cmp::Reverse(a.requests));
    let mut addresses: Vec<model::Address> = addresses.into_values().collect();
    addresses.sort_by_key(|a| std::cmp::Reverse(a.requests));
    let site = config.evidence.site.trim_end_matches('/');
    Report {
        bundle_id: String::new(),
        created_ms: 0,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        deployment: model::Deployment {
            site: config.evidence.site.clone(),
            operator: config.evidence.operator.clone(),
            contact: config.evidence.contact.clone(),
            mode: format!("{:?}", config.effective_mode()).to_lowercase(),
            checkpoint_minutes: config.evidence.checkpoint_minutes,
            raw_ip_hours: config.record.raw_ip_hours,
            instance: String::new(),
        },
        actor: model::Actor {
            key: c.key.clone(),
            kind: if c.is_cluster() { "cluster" } else { "client" }.into(),
            level: if c.dismissed {
                None
            } else {
                c.level.map(|l| l.as_str().to_string())
            },
            score: (c.score * 10.0).round() / 10.0,
            crawler: c.crawler.label().map(str::to_string),
            addresses,
            agents,
            members: c.members.clone(),
            first_ms,
            last_ms,
        },
        activity: a,
        timeline,
        robots,
        opt_outs,
        canaries: case
            .canaries
            .iter()
            .map(|k| model::Canary {
                token: k.token.to_string(),
                file: if k.jpeg.is_some() {
                    format!("canaries/{}.jpg", k.token)
                } else {
                    String::new()
                },
                first_fetch_ms: k.first_fetch_ms,
                fetches: k.event_ids.len() as u64,
                event_ids: k.event_ids.clone(),
                depth: k.depth,
                minted_ms: k.minted_ms,
                minted_for_actor: k.minted_for_actor,
                phash: k.phash.map(|h| format!("{h:016x}")).unwrap_or_default(),
                dhash: k.dhash.map(|h| format!("{h:016x}")).unwrap_or_default(),
            })
            .collect(),
        site_images: case
            .site_images
            .iter()
            .take(MAX_SITE_IMAGE_ROWS)
            .map(|s| model::SiteImage {
                path: s.path.clone(),
                fetches: s.event_ids.len() as u64,
                first_ms: s.first_ms,
                last_ms: s.last_ms,
                bytes: s.bytes,
            })
            .collect(),
        site_images_total: case.site_images.len() as u64,
        site_images_bytes: case.site_images.iter().map(|s| s.bytes).sum(),
        reasons,
        history: case
            .history
            .iter()
            .map(|(ts_ms, level, score, note)| model::HistoryEntry {
                ts_ms: *ts_ms,
                level: level.clone(),
                score: *score,
                note: note.clone(),
            })
            .collect(),
        found: Vec::new(),
        integrity: model::Integrity {
            events: events.len() as u64,
            chain_start_after: seg.start.after,
            chain_end: seg.end.event_id,
            chain_start_source: seg.start.source.into(),
            other_events_as_digests: seg.others,
            checkpoints: seg.checkpoints.len() as u64,
            end_chain: hex::encode(seg.end.chain),
            end_checkpoint_ms: seg.end.ts_ms,
            key_fingerprint: key.fingerprint.clone(),
            public_key: key.line.clone(),
            key_url: format!("{site}{}", crate::record::published::KEY_PATH),
        },
    }
}
