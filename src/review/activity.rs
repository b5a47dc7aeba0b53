//! One actor's activity, read from the events for its page: its requests over time by kind,
//! the site's images it took, the robots.txt versions it was served and the rules it broke,
//! the canaries it took, and a page of its requests. Only the actor's own events are read.
//!
//! Events are found by time: the events table has no index by client for pages and images
//! (it would cost the writer a third of its throughput), so the actor's span of ids is read
//! and filtered by key, as `evidence build` does; canaries, traps and robots.txt fetches have
//! their own index.

use super::db::text;
use super::web::Fail;
use crate::canary::Token;
use crate::evidence::robots::{ForAgent, Rules};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use std::borrow::Cow;
use std::collections::HashMap;

/// The timeline's series, stacked in this order.
pub const SERIES: [&str; 6] = ["page", "image", "canary", "trap", "robots", "other"];
/// Buckets of the timeline at most, and at least (a short burst is drawn as thin bars on
/// an axis longer than it, not as one wide block).
const BUCKETS: i64 = 48;
const MIN_BUCKETS: i64 = 12;
/// Events that may be a few seconds out of id order (ids are given at commit, times at the
/// request): the span is widened by this much on each side.
const SLACK_MS: i64 = 60_000;

/// Who the actor is: its client keys (a client's own, or a cluster's members), each key's
/// user agent (robots.txt groups are chosen by agent), and when it was seen.
pub struct Actor {
    pub keys: Vec<String>,
    pub agents: HashMap<String, String>,
    pub first_ms: i64,
    pub last_ms: i64,
}

#[derive(Debug, PartialEq)]
pub struct SiteImage {
    pub path: String,
    pub fetches: u64,
    pub bytes: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// A robots.txt version served to the actor, with its lines and how often each was broken.
#[derive(Debug, PartialEq)]
pub struct Version {
    pub sha256: String,
    pub first_served_ms: i64,
    /// When the actor fetched it (empty: in force, never read by the actor).
    pub fetched: Vec<i64>,
    pub lines: Vec<(u32, String, u64)>,
}

#[derive(Debug, PartialEq)]
pub struct Activity {
    pub bucket_ms: i64,
    pub starts: Vec<i64>,
    /// Per bucket, counts in the order of `SERIES`.
    pub buckets: Vec<Vec<u64>>,
    pub events: u64,
    pub images: Vec<SiteImage>,
    pub image_fetches: u64,
    pub image_bytes: u64,
    pub robots: Vec<Version>,
    /// Requests that broke a rule, and those of them after the actor had read robots.txt.
    pub violations: u64,
    pub after_reading: u64,
    /// Every event of the actor read: its id and the index of its kind in `KINDS`.
    pub ids: Vec<(i64, u8)>,
}

/// A bucket width that reads well: the smallest of these that fits the span in 48 buckets.
fn bucket_ms(span_ms: i64) -> i64 {
    const STEPS: [i64; 19] = [
        100,
        200,
        500,
        1_000,
        5_000,
        10_000,
        30_000,
        60_000,
        300_000,
        600_000,
        900_000,
        1_800_000,
        3_600_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        604_800_000,
        2_592_000_000,
    ];
    STEPS
        .into_iter()
        .find(|s| span_ms / s < BUCKETS)
        .unwrap_or(2_592_000_000)
}

/// The ids of the first and last events within the actor's time span (with slack).
pub fn span(conn: &Connection, actor: &Actor) -> Result<(i64, i64), Fail> {
    let lo: Option<i64> = conn
        .query_row(
            "SELECT id FROM events WHERE ts_ms >= ?1 ORDER BY ts_ms LIMIT 1",
            [actor.first_ms - SLACK_MS],
            |r| r.get(0),
        )
        .optional()?;
    let hi: Option<i64> = conn
        .query_row(
            "SELECT id FROM events WHERE ts_ms <= ?1 ORDER BY ts_ms DESC LIMIT 1",
            [actor.last_ms + SLACK_MS],
            |r| r.get(0),
        )
        .optional()?;
    Ok((lo.unwrap_or(1), hi.unwrap_or(0)))
}

/// The condition that picks the actor's events, and its value.
fn of_actor(actor: &Actor) -> (&'static str, Value) {
    match actor.keys.as_slice() {
        [one] => ("client_key = ?3", Value::Text(one.clone())),
        keys => (
            "client_key IN (SELECT value FROM json_each(?3))",
            Value::Text(serde_json::to_string(keys).unwrap_or_else(|_| "[]".into())),
        ),
    }
}

/// Events in a span at least this long are read in two halves at once, when a second
/// connection is at hand (the span of a client seen all week is the whole week's events).
const TWO_PARTS_FROM: i64 = 50_000;

/// The timeline's buckets: where they start, how wide, how many.
#[derive(Clone, Copy)]
struct Layout {
    start: i64,
    bucket: i64,
    n: usize,
}

/// What holds where a part of the span starts: the robots.txt version then in force (SHA-256
/// hex, body, first served) and whether the actor had read robots.txt before.
#[derive(Clone)]
struct Before {
    in_force: Option<(String, Vec<u8>, i64)>,
    read_any: bool,
}

/// What one part of the span holds of the actor.
struct Part {
    buckets: Vec<Vec<u64>>,
    images: HashMap<String, SiteImage>,
    versions: Vec<Version>,
    ids: Vec<(i64, u8)>,
    events: u64,
    violations: u64,
    after_reading: u64,
}

/// Reads the actor's events once for the timeline, the site's images and robots.txt. With a
/// second connection (`helper`, handed back), a long span is read in two halves at once.
pub fn read(
    conn: &Connection,
    helper: Option<Connection>,
    actor: &Actor,
) -> Result<(Activity, Option<Connection>), Fail> {
    let span = span(conn, actor)?;
    let bucket = bucket_ms(actor.last_ms - actor.first_ms);
    let start = actor.first_ms.div_euclid(bucket) * bucket;
    let n = ((actor.last_ms - start) / bucket + 1).clamp(MIN_BUCKETS, BUCKETS + 1) as usize;
    let layout = Layout { start, bucket, n };
    // Before the actor came, the version served last is in force.
    let first = Before {
        in_force: in_force_at(conn, actor.first_ms)?,
        read_any: false,
    };
    let (parts, helper) = match helper {
        Some(other) if span.1 - span.0 >= TWO_PARTS_FROM => {
            let mid = span.0 + (span.1 - span.0) / 2;
            let second = before(conn, actor, mid, &first)?;
            std::thread::scope(|s| {
                let later = s.spawn(move || {
                    let part = scan(&other, actor, (mid + 1, span.1), layout, second);
                    (part, other)
                });
                let earlier = scan(conn, actor, (span.0, mid), layout, first);
                let (later, other) = later
                    .join()
                    .map_err(|_| Fail::Internal("reading a client's events failed".into()))?;
                Ok::<_, Fail>((vec![earlier?, later?], Some(other)))
            })?
        }
        helper => (vec![scan(conn, actor, span, layout, first)?], helper),
    };
    Ok((merge(parts, layout), helper))
}

/// The robots.txt state at event `id`: the version the actor fetched last by then, if any.
fn before(conn: &Connection, actor: &Actor, id: i64, first: &Before) -> Result<Before, Fail> {
    let mut stmt = conn.prepare(
        "SELECT ts_ms, robots_sha256 FROM events WHERE client_key = ?1 AND kind = 'robots'
         AND id <= ?2 AND robots_sha256 IS NOT NULL ORDER BY ts_ms DESC, id DESC LIMIT 1",
    )?;
    let mut last: Option<(i64, Vec<u8>)> = None;
    for key in &actor.keys {
        let row: Option<(i64, Vec<u8>)> = stmt
            .query_row(rusqlite::params![key, id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some(row) = row {
            if last.as_ref().is_none_or(|l| row.0 > l.0) {
                last = Some(row);
            }
        }
    }
    if let Some((_, sha)) = last {
        let sha = hex::encode(sha);
        if let Some((body, first_served)) = body_of(conn, &sha)? {
            return Ok(Before {
                in_force: Some((sha, body, first_served)),
                read_any: true,
            });
        }
    }
    Ok(first.clone())
}

/// Reads the actor's events with ids in `ids` (inclusive).
fn scan(
    conn: &Connection,
    actor: &Actor,
    ids: (i64, i64),
    layout: Layout,
    before: Before,
) -> Result<Part, Fail> {
    let span = ids;
    let mut buckets = vec![vec![0u64; SERIES.len()]; layout.n];
    let mut images: HashMap<String, SiteImage> = HashMap::new();
    let mut versions: Vec<Version> = Vec::new();
    let mut rules: Vec<Rules> = Vec::new();
    let mut in_force: Option<usize> = None;
    if let Some((sha, body, first)) = before.in_force {
        add_version(&mut versions, &mut rules, sha, &body, first);
        in_force = Some(0);
    }
    let mut read_any = before.read_any;
    let mut judges: HashMap<(usize, &str), ForAgent> = HashMap::new();
    // Per version and client: each target judged once (a harvester asks for the same paths).
    let mut judged: HashMap<(usize, &str), HashMap<String, Option<u32>>> = HashMap::new();
    let (mut events, mut violations, mut after_reading) = (0u64, 0u64, 0u64);
    let mut ids = Vec::new();

    let (cond, key) = of_actor(actor);
    let mut stmt = conn.prepare(&format!(
        "SELECT ts_ms, kind, path, query, bytes, robots_sha256, client_key, id FROM events
         WHERE id >= ?1 AND id <= ?2 AND {cond}"
    ))?;
    let mut rows = stmt.query(rusqlite::params![span.0, span.1, key])?;
    // Values are read in place: a row allocates only for what it adds (a new image, a new
    // target to judge).
    while let Some(r) = rows.next()? {
        events += 1;
        let ts: i64 = r.get(0)?;
        let kind = r.get_ref(1)?.as_str().unwrap_or("other");
        let series = SERIES.iter().position(|s| *s == kind).unwrap_or(5);
        let k = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        ids.push((r.get::<_, i64>(7)?, k as u8));
        if let Some(b) = usize::try_from((ts - layout.start) / layout.bucket)
            .ok()
            .and_then(|i| buckets.get_mut(i))
        {
            b[series] += 1;
        }
        let path = lossy(r.get_ref(2)?);
        if kind == "image" {
            let bytes = r.get::<_, i64>(4)?.max(0) as u64;
            match images.get_mut(path.as_ref()) {
                Some(i) => {
                    i.fetches += 1;
                    i.bytes += bytes;
                    i.last_ms = ts;
                }
                None => {
                    let path = path.to_string();
                    images.insert(
                        path.clone(),
                        SiteImage {
                            path,
                            fetches: 1,
                            bytes,
                            first_ms: ts,
                            last_ms: ts,
                        },
                    );
                }
            }
        }
        if let ValueRef::Blob(sha) = r.get_ref(5)? {
            let sha = hex::encode(sha);
            let at = match versions.iter().position(|v| v.sha256 == sha) {
                Some(i) => Some(i),
                None => match body_of(conn, &sha)? {
                    Some((body, first)) => {
                        add_version(&mut versions, &mut rules, sha.clone(), &body, first);
                        Some(versions.len() - 1)
                    }
                    None => None,
                },
            };
            if let Some(i) = at {
                versions[i].fetched.push(ts);
                in_force = Some(i);
                read_any = true;
            }
            continue;
        }
        let Some(v) = in_force else {
            continue;
        };
        let client = r.get_ref(6)?.as_str().unwrap_or("");
        let Some((owner, agent)) = actor.agents.get_key_value(client) else {
            continue;
        };
        let target: Cow<str> = match r.get_ref(3)? {
            ValueRef::Null => path,
            q => Cow::Owned(format!("{path}?{}", lossy(q))),
        };
        let seen = judged.entry((v, owner.as_str())).or_default();
        let line = match seen.get(target.as_ref()) {
            Some(line) => *line,
            None => {
                let line = judges
                    .entry((v, owner.as_str()))
                    .or_insert_with(|| rules[v].for_agent(agent))
                    .broken_line(&target);
                seen.insert(target.into_owned(), line);
                line
            }
        };
        if let Some(line) = line {
            violations += 1;
            after_reading += u64::from(read_any);
            if let Some(l) = versions[v].lines.iter_mut().find(|l| l.0 == line) {
                l.2 += 1;
            }
        }
    }
    Ok(Part {
        buckets,
        images,
        versions,
        ids,
        events,
        violations,
        after_reading,
    })
}

/// The parts, in the order of their spans, as one.
fn merge(parts: Vec<Part>, layout: Layout) -> Activity {
    let mut buckets = vec![vec![0u64; SERIES.len()]; layout.n];
    let mut images: HashMap<String, SiteImage> = HashMap::new();
    let mut robots: Vec<Version> = Vec::new();
    let mut ids = Vec::new();
    let (mut events, mut violations, mut after_reading) = (0u64, 0u64, 0u64);
    for part in parts {
        for (total, b) in buckets.iter_mut().zip(&part.buckets) {
            for (t, n) in total.iter_mut().zip(b) {
                *t += n;
            }
        }
        for (path, i) in part.images {
            match images.get_mut(&path) {
                Some(m) => {
                    m.fetches += i.fetches;
                    m.bytes += i.bytes;
                    m.first_ms = m.first_ms.min(i.first_ms);
                    m.last_ms = m.last_ms.max(i.last_ms);
                }
                None => {
                    images.insert(path, i);
                }
            }
        }
        for v in part.versions {
            match robots.iter_mut().find(|r| r.sha256 == v.sha256) {
                Some(r) => {
                    r.fetched.extend(v.fetched);
                    for (line, more) in r.lines.iter_mut().zip(&v.lines) {
                        line.2 += more.2;
                    }
                }
                None => robots.push(v),
            }
        }
        ids.extend(part.ids);
        events += part.events;
        violations += part.violations;
        after_reading += part.after_reading;
    }
    let mut images: Vec<SiteImage> = images.into_values().collect();
    images.sort_by(|a, b| b.fetches.cmp(&a.fetches).then(a.first_ms.cmp(&b.first_ms)));
    Activity {
        bucket_ms: layout.bucket,
        starts: (0..layout.n as i64)
            .map(|i| layout.start + i * layout.bucket)
            .collect(),
        buckets,
        events,
        image_fetches: images.iter().map(|i| i.fetches).sum(),
        image_bytes: images.iter().map(|i| i.bytes).sum(),
        images,
        robots,
        violations,
        after_reading,
        ids,
    }
}

/// A text value as text, invalid UTF-8 replaced; borrowed when it is valid.
fn lossy(v: ValueRef<'_>) -> Cow<'_, str> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b),
        _ => Cow::Borrowed(""),
    }
}

fn add_version(
    versions: &mut Vec<Version>,
    rules: &mut Vec<Rules>,
    sha256: String,
    body: &[u8],
    first_served_ms: i64,
) {
    let body = String::from_utf8_lossy(body);
    versions.push(Version {
        sha256,
        first_served_ms,
        fetched: Vec::new(),
        lines: body
            .lines()
            .enumerate()
            .map(|(i, l)| (i as u32 + 1, l.to_string(), 0))
            .collect(),
    });
    rules.push(Rules::new(&body));
}

/// The robots.txt served last before `ts_ms`: (SHA-256 hex, body, first served).
fn in_force_at(conn: &Connection, ts_ms: i64) -> Result<Option<(String, Vec<u8>, i64)>, Fail> {
    Ok(conn
        .query_row(
            "SELECT sha256, body, first_served_ms FROM robots WHERE first_served_ms <= ?1
             ORDER BY first_served_ms DESC LIMIT 1",
            [ts_ms],
            |r| Ok((hex::encode(r.get::<_, Vec<u8>>(0)?), r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}

fn body_of(conn: &Connection, sha_hex: &str) -> Result<Option<(Vec<u8>, i64)>, Fail> {
    let Ok(sha) = hex::decode(sha_hex) else {
        return Ok(None);
    };
    Ok(conn
        .query_row(
            "SELECT body, first_served_ms FROM robots WHERE sha256 = ?1",
            [sha],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// One request as the page lists it.
pub struct Request {
    pub id: i64,
    pub ts_ms: i64,
    pub client_key: String,
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub status: i64,
    pub bytes: i64,
    pub kind: String,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
}

const REQUEST_COLUMNS: &str =
    "id, ts_ms, client_key, method, host, path, query, status, bytes, kind, user_agent, referer";

fn request(r: &rusqlite::Row) -> rusqlite::Result<Request> {
    Ok(Request {
        id: r.get(0)?,
        ts_ms: r.get(1)?,
        client_key: text(r, 2)?.unwrap_or_default(),
        method: text(r, 3)?.unwrap_or_default(),
        host: text(r, 4)?,
        path: text(r, 5)?.unwrap_or_default(),
        query: text(r, 6)?,
        status: r.get(7)?,
        bytes: r.get(8)?,
        kind: text(r, 9)?.unwrap_or_default(),
        user_agent: text(r, 10)?,
        referer: text(r, 11)?,
    })
}

/// The kinds the requests table can be narrowed to.
pub const KINDS: [&str; 7] = [
    "page", "image", "asset", "robots", "canary", "trap", "other",
];

/// A page of the actor's requests after event `after`, oldest first, of one kind or all
/// (`activity.ids` says which are its own); and whether more follow.
pub fn requests(
    conn: &Connection,
    activity: &Activity,
    kind: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<(Vec<Request>, bool), Fail> {
    let kind = kind.and_then(|k| KINDS.iter().position(|x| *x == k));
    let mut page: Vec<i64> = activity
        .ids
        .iter()
        .filter(|(id, k)| *id > after && kind.is_none_or(|want| usize::from(*k) == want))
        .map(|(id, _)| *id)
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((events(conn, &page)?, more))
}

/// Events by id (a reason's evidence), in id order.
pub fn events(conn: &Connection, ids: &[i64]) -> Result<Vec<Request>, Fail> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let mut stmt = conn.prepare(&format!(
        "SELECT {REQUEST_COLUMNS} FROM events_full
         WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
    ))?;
    let rows = stmt.query_map([list], request)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A canary the actor took: its token, how often and when first.
pub struct CanaryTaken {
    pub token: Token,
    pub fetches: u64,
    pub first_ms: i64,
    pub first_event: i64,
}

/// Every canary the actor took, in the order it first took them (through the evidence index).
pub fn canaries(conn: &Connection, actor: &Actor) -> Result<Vec<CanaryTaken>, Fail> {
    let mut stmt = conn.prepare(
        "SELECT id, ts_ms, token FROM events WHERE client_key = ?1 AND kind = 'canary'
         AND token IS NOT NULL ORDER BY ts_ms, id",
    )?;
    let mut by_token: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut out: Vec<CanaryTaken> = Vec::new();
    for key in &actor.keys {
        let mut rows = stmt.query([key])?;
        while let Some(r) = rows.next()? {
            let bytes: Vec<u8> = r.get(2)?;
            match by_token.get(&bytes) {
                Some(&i) => out[i].fetches += 1,
                None => {
                    let Some(token) = Token::from_bytes(&bytes) else {
                        continue;
                    };
                    by_token.insert(bytes, out.len());
                    out.push(CanaryTaken {
                        token,
                        fetches: 1,
                        first_event: r.get(0)?,
                        first_ms: r.get(1)?,
                    });
                }
            }
        }
    }
    out.sort_by_key(|c| (c.first_ms, c.first_event));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_fit_the_span_in_at_most_48() {
        assert_eq!(bucket_ms(0), 100);
        assert_eq!(bucket_ms(4_000), 100);
        assert_eq!(bucket_ms(40_000), 1_000);
        assert_eq!(bucket_ms(60_000), 5_000);
        assert_eq!(bucket_ms(3_600_000), 300_000);
        assert_eq!(bucket_ms(7 * 86_400_000), 21_600_000);
    }

    #[test]
    fn a_span_read_in_two_halves_is_the_span_read_whole() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::Store::open(dir.path()).unwrap().into_conn();
        let v1 = "User-agent: *\nDisallow: /private/\n";
        let v2 = "User-agent: *\nDisallow: /photos/\n";
        let sha = |b: &str| sha2::Sha256::digest(b.as_bytes()).to_vec();
        let tx = conn.transaction().unwrap();
        for (body, first) in [(v1, 0), (v2, 1000)] {
            tx.execute(
                "INSERT INTO robots (sha256, body, source, first_served_ms) VALUES (?1, ?2, 't', ?3)",
                rusqlite::params![sha(body), body.as_bytes(), first],
            )
            .unwrap();
        }
        let n = 3 * TWO_PARTS_FROM;
        for id in 1..=n {
            let actor = id % 3 == 0;
            let (kind, path, robots) = match (actor, id) {
                (true, 60_000) => ("robots", "/robots.txt".to_string(), Some(sha(v2))),
                (true, _) if id % 7 == 0 => ("page", "/private/x".to_string(), None),
                (true, _) => ("image", format!("/photos/{}.jpg", id % 50), None),
                (false, _) => ("page", "/".to_string(), None),
            };
            tx.execute(
                "INSERT INTO events (id, ts_ms, client_key, method, path, status, bytes,
                 duration_us, cookie_sent, kind, robots_sha256)
                 VALUES (?1, ?2, ?3, 'GET', ?4, 200, 10, 0, 0, ?5, ?6)",
                rusqlite::params![
                    id,
                    id * 10,
                    if actor { "c:a" } else { "c:b" },
                    path,
                    kind,
                    robots
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let actor = Actor {
            keys: vec!["c:a".into()],
            agents: [("c:a".to_string(), "bot/1.0".to_string())].into(),
            first_ms: 30,
            last_ms: n * 10,
        };
        let (whole, none) = read(&conn, None, &actor).unwrap();
        assert!(none.is_none());
        let other = crate::store::Store::open(dir.path()).unwrap().into_conn();
        let (halves, back) = read(&conn, Some(other), &actor).unwrap();
        assert!(back.is_some(), "the second connection is handed back");
        assert_eq!(whole, halves);
        // The rules changed at the robots.txt fetch, before the middle of the span: both
        // versions were broken, the second one only after it was read.
        assert_eq!(whole.robots.len(), 2);
        assert!(whole.robots.iter().all(|v| v.lines.iter().any(|l| l.2 > 0)));
        assert!(whole.after_reading > 0 && whole.after_reading < whole.violations);
        assert_eq!(whole.events, (n / 3) as u64);
    }
}
