//! Reading the central store: the fleet's flags, each instance's hash chain recomputed from
//! what it shipped, and the canaries and fetches `match --fleet` traces an image to.

use super::FleetError;
use crate::record::event::{chain_next, Chained};
use serde::Serialize;
use tokio_postgres::GenericClient;

/// An actor the fleet detector flagged.
#[derive(Debug, Clone, Serialize)]
pub struct FleetFlag {
    pub actor: String,
    pub level: String,
    pub score: f64,
    pub reasons: String,
    pub instances: Vec<String>,
    pub sites: Vec<String>,
    pub client_keys: Vec<String>,
    pub requests: i64,
    pub canaries: i64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Every actor flagged, highest score first.
pub async fn flags(client: &impl GenericClient, url: &str) -> Result<Vec<FleetFlag>, FleetError> {
    let rows = client
        .query(
            "SELECT actor, level, score, reasons, instances, sites, client_keys, requests,
                 canaries, first_ms, last_ms
             FROM fleet_flags ORDER BY score DESC, last_ms DESC",
            &[],
        )
        .await
        .map_err(|e| FleetError::pg(url, e))?;
    Ok(rows
        .into_iter()
        .map(|r| FleetFlag {
            actor: r.get(0),
            level: r.get(1),
            score: r.get(2),
            reasons: r.get(3),
            instances: r.get(4),
            sites: r.get(5),
            client_keys: r.get(6),
            requests: r.get(7),
            canaries: r.get(8),
            first_ms: r.get(9),
            last_ms: r.get(10),
        })
        .collect())
}

/// A change of the fleet detector's verdict on an actor.
#[derive(Debug, Clone, Serialize)]
pub struct FleetFlagChange {
    pub ts_ms: i64,
    pub level: String,
    pub score: f64,
    pub reasons: String,
}

/// The fleet detector's verdicts on `actor`, oldest first.
pub async fn flag_history(
    client: &impl GenericClient,
    url: &str,
    actor: &str,
) -> Result<Vec<FleetFlagChange>, FleetError> {
    let rows = client
        .query(
            "SELECT ts_ms, level, score, reasons FROM fleet_flag_history
             WHERE actor = $1 ORDER BY ts_ms, id",
            &[&actor],
        )
        .await
        .map_err(|e| FleetError::pg(url, e))?;
    Ok(rows
        .into_iter()
        .map(|r| FleetFlagChange {
            ts_ms: r.get(0),
            level: r.get(1),
            score: r.get(2),
            reasons: r.get(3),
        })
        .collect())
}

/// One instance's hash chain as shipped, recomputed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChainCheck {
    pub instance: String,
    pub site: String,
    pub events: i64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    /// The first event whose chain value does not follow from its content and the previous
    /// event's, or a gap in the ids; `None` when the whole chain holds.
    pub broken: Option<String>,
    /// Signed checkpoints shipped whose chain head matches the shipped event's chain value.
    pub checkpoints_matching: i64,
    pub checkpoints: i64,
}

/// Recomputes every instance's chain from the events it shipped: each event's chain value
/// must be SHA-256 of the previous value and the event's digest (rule 2), ids without gaps.
/// The first event shipped (or the first after a retention anchor) is taken as shipped.
pub async fn check_chains(
    client: &impl GenericClient,
    url: &str,
) -> Result<Vec<ChainCheck>, FleetError> {
    let pg = |e: tokio_postgres::Error| FleetError::pg(url, e);
    let instances = client
        .query(
            "SELECT instance, site, coalesce(rule2_from, 1) FROM instances ORDER BY instance",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut out = Vec::new();
    for inst in instances {
        let name: String = inst.get(0);
        let rule2_from: i64 = inst.get(2);
        let rows = client
            .query(
                "SELECT id, ts_ms, ip_commit, client_key, method, host, path, query, status,
                     bytes, duration_us, user_agent, referer, accept, accept_language,
                     accept_encoding, sec_fetch_site, sec_fetch_mode, sec_fetch_dest,
                     sec_fetch_user, cookie_sent, header_order, kind, token, robots_sha256,
                     chain
                 FROM events WHERE instance = $1 ORDER BY id",
                &[&name],
            )
            .await
            .map_err(pg)?;
        let mut check = ChainCheck {
            instance: name.clone(),
            site: inst.get(1),
            events: rows.len() as i64,
            first_id: rows.first().map(|r| r.get(0)),
            last_id: rows.last().map(|r| r.get(0)),
            broken: None,
            checkpoints_matching: 0,
            checkpoints: 0,
        };
        let mut prev: Option<(i64, [u8; 32])> = None;
        for r in &rows {
            let e = Chained {
                id: r.get(0),
                ts_ms: r.get(1),
                ip_commit: r.get(2),
                client_key: r.get(3),
                method: r.get(4),
                host: r.get(5),
                path: r.get(6),
                query: r.get(7),
                status: i64::from(r.get::<_, i32>(8)),
                bytes: r.get(9),
                duration_us: r.get(10),
                user_agent: r.get(11),
                referer: r.get(12),
                accept: r.get(13),
                accept_language: r.get(14),
                accept_encoding: r.get(15),
                sec_fetch_site: r.get(16),
                sec_fetch_mode: r.get(17),
                sec_fetch_dest: r.get(18),
                sec_fetch_user: r.get(19),
                cookie_sent: r.get(20),
                header_order: r.get(21),
                kind: r.get(22),
                token: r.get(23),
                robots_sha256: r.get(24),
            };
            let stored: Option<Vec<u8>> = r.get(25);
            let Some(stored) = stored.and_then(|s| <[u8; 32]>::try_from(s).ok()) else {
                check.broken = Some(format!("event {}: has no chain value", e.id));
                break;
            };
            if let Some((prev_id, prev_chain)) = prev {
                if e.id != prev_id + 1 {
                    check.broken = Some(format!(
                        "events {} to {} were not shipped",
                        prev_id + 1,
                        e.id - 1
                    ));
                    break;
                }
                if e.id >= rule2_from && chain_next(&prev_chain, &e) != stored {
                    check.broken = Some(format!(
                        "event {}: its content differs from what was chained when it was \
                         written",
                        e.id
                    ));
                    break;
                }
            }
            prev = Some((e.id, stored));
        }
        let cp = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE e.chain = c.chain)
                 FROM checkpoints c LEFT JOIN events e
                     ON e.instance = c.instance AND e.id = c.event_id
                 WHERE c.instance = $1",
                &[&name],
            )
            .await
            .map_err(pg)?;
        check.checkpoints = cp.get(0);
        check.checkpoints_matching = cp.get(1);
        out.push(check);
    }
    Ok(out)
}

/// Copies every canary of the fleet that left an instance (its fetch stored its hashes) into
/// `conn`, an empty scratch store, one row per token: `match` then runs on it as on one
/// instance's store. Returns the number of tokens copied.
pub async fn copy_fetched_tokens(
    client: &impl GenericClient,
    url: &str,
    conn: &mut rusqlite::Connection,
) -> Result<usize, FleetError> {
    use futures_util::TryStreamExt;
    let pg = |e: tokio_postgres::Error| FleetError::pg(url, e);
    let scheme = crate::canary::hash::Scheme::new();
    let scheme_id = crate::store::tokens::scheme_id(conn, scheme.name(), scheme.params())?;
    let rows = client
        .query_raw(
            &format!(
                "SELECT DISTINCT ON (token) {TOKEN_COLUMNS}
                 FROM tokens WHERE phash IS NOT NULL AND hash_scheme = $1
                 ORDER BY token, instance, id"
            ),
            &[&scheme.name()],
        )
        .await
        .map_err(pg)?;
    futures_util::pin_mut!(rows);
    let tx = conn.transaction()?;
    let mut n = 0;
    while let Some(r) = rows.try_next().await.map_err(pg)? {
        n += usize::from(insert_token(&tx, &r, scheme_id)?);
    }
    tx.commit()?;
    Ok(n)
}

/// The columns of a shipped token `insert_token` reads, in its order.
const TOKEN_COLUMNS: &str = "token, identity_seed, variant_seed, size, renderer, created_ms, \
     client_key, minted_by, phash, dhash, center_phash, depth";

/// Writes a shipped token (a row of `TOKEN_COLUMNS`) into a scratch store, with its hashes
/// when it has them; false when the row holds no token faceprobe reads.
fn insert_token(
    tx: &rusqlite::Transaction,
    r: &tokio_postgres::Row,
    scheme_id: i64,
) -> Result<bool, FleetError> {
    let token: Vec<u8> = r.get(0);
    let Some(token) = crate::store::token::Token::from_bytes(&token) else {
        return Ok(false);
    };
    let client_key: String = r.get(6);
    let minted_by: String = r.get(7);
    let hashes = match (r.get::<_, Option<i64>>(8), r.get::<_, Option<i64>>(9)) {
        (Some(phash), Some(dhash)) => Some((
            scheme_id,
            crate::store::tokens::Hashes {
                phash: phash as u64,
                dhash: dhash as u64,
                center_phash: r.get::<_, Option<i64>>(10).unwrap_or_default() as u64,
            },
        )),
        _ => None,
    };
    crate::store::tokens::insert(
        tx,
        &crate::store::tokens::NewToken {
            token,
            identity_seed: r.get::<_, i64>(1) as u64,
            variant_seed: r.get::<_, i64>(2) as u64,
            size: r.get::<_, i32>(3) as u32,
            renderer: r.get::<_, i32>(4) as u32,
            created_ms: r.get(5),
            client_key: &client_key,
            minted_by: &minted_by,
            minting_event: None,
            hashes,
            parent_token: None,
            depth: r.get::<_, i32>(11) as u32,
        },
    )?;
    Ok(true)
}

/// An instance that recorded an actor of the fleet.
#[derive(Debug, Clone)]
pub struct ActorInstance {
    pub instance: String,
    pub site: String,
    /// Its checkpoint key (an OpenSSH line), when it shipped one.
    pub public_key: Option<String>,
    pub rule2_from: i64,
    /// The actor's client keys there.
    pub client_keys: Vec<String>,
    /// The actor's first and last event there.
    pub first: i64,
    pub last: i64,
}

/// Every instance that recorded `actor` (its pseudonym in the fleet), by name.
pub async fn actor_instances(
    client: &impl GenericClient,
    url: &str,
    actor: &str,
) -> Result<Vec<ActorInstance>, FleetError> {
    let rows = client
        .query(
            "SELECT e.instance, i.site, i.public_key, coalesce(i.rule2_from, 1),
                 array_agg(DISTINCT e.client_key), min(e.id), max(e.id)
             FROM events e JOIN instances i ON i.instance = e.instance
             WHERE e.actor = $1 AND e.id >= coalesce(i.rule2_from, 1)
             GROUP BY e.instance, i.site, i.public_key, i.rule2_from
             ORDER BY e.instance",
            &[&actor],
        )
        .await
        .map_err(|e| FleetError::pg(url, e))?;
    Ok(rows
        .into_iter()
        .map(|r| ActorInstance {
            instance: r.get(0),
            site: r.get(1),
            public_key: r.get(2),
            rule2_from: r.get(3),
            client_keys: r.get(4),
            first: r.get(5),
            last: r.get(6),
        })
        .collect())
}

/// Copies into `conn` (an empty scratch store) what an evidence bundle of `actor` needs from
/// `inst`, as the instance's own store would hold it: its signed checkpoints; its events from
/// the newest checkpoint before the actor's first event to the first checkpoint at or after
/// its last (other visitors' among them, which the bundle reduces to digests); the tokens
/// the actor fetched; the instance's robots.txt versions. Returns the instance's flag history
/// of the actor's client keys.
pub async fn copy_instance(
    client: &impl GenericClient,
    url: &str,
    actor: &str,
    inst: &ActorInstance,
    conn: &mut rusqlite::Connection,
) -> Result<Vec<crate::store::clients::HistoryRow>, FleetError> {
    use futures_util::TryStreamExt;
    let pg = |e: tokio_postgres::Error| FleetError::pg(url, e);
    let name = &inst.instance;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('chain_rule2_from', ?1)",
        [inst.rule2_from.to_string()],
    )?;
    let checkpoints = client
        .query(
            "SELECT seq, ts_ms, event_id, chain, events, message, signature, key_fingerprint,
                 made_by
             FROM checkpoints WHERE instance = $1 ORDER BY seq",
            &[name],
        )
        .await
        .map_err(pg)?;
    let mut lo = match inst.rule2_from {
        1 => 0,
        n => n - 1,
    };
    let mut hi = inst.last;
    let mut covered = false;
    for r in &checkpoints {
        let event_id: i64 = r.get(2);
        if event_id < inst.first && event_id > lo {
            lo = event_id;
        }
        if event_id >= inst.last && !covered {
            hi = event_id;
            covered = true;
        }
        tx.execute(
            "INSERT INTO checkpoints (seq, ts_ms, event_id, chain, events, message, signature,
                 key_fingerprint, made_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                event_id,
                r.get::<_, Vec<u8>>(3),
                r.get::<_, i64>(4),
                r.get::<_, String>(5),
                r.get::<_, String>(6),
                r.get::<_, String>(7),
                r.get::<_, String>(8),
            ],
        )?;
    }
    let rows = client
        .query_raw(
            "SELECT id, ts_ms, ip_commit, client_key, method, host, path, query, status, bytes,
                 duration_us, user_agent, referer, accept, accept_language, accept_encoding,
                 sec_fetch_site, sec_fetch_mode, sec_fetch_dest, sec_fetch_user, cookie_sent,
                 header_order, kind, token, robots_sha256, chain
             FROM events WHERE instance = $1 AND id >= $2 AND id <= $3 ORDER BY id",
            [name as &(dyn tokio_postgres::types::ToSql + Sync), &lo, &hi],
        )
        .await
        .map_err(pg)?;
    futures_util::pin_mut!(rows);
    {
        let mut insert = tx.prepare(
            "INSERT INTO events (id, ts_ms, ip_commit, client_key, method, host, path, query,
                 status, bytes, duration_us, user_agent, referer, accept, accept_language,
                 accept_encoding, sec_fetch_site, sec_fetch_mode, sec_fetch_dest, sec_fetch_user,
                 cookie_sent, header_order, kind, token, robots_sha256, chain)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
        )?;
        while let Some(r) = rows.try_next().await.map_err(pg)? {
            insert.execute(rusqlite::params![
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, Option<Vec<u8>>>(2),
                r.get::<_, String>(3),
                r.get::<_, String>(4),
                r.get::<_, Option<String>>(5),
                r.get::<_, String>(6),
                r.get::<_, Option<String>>(7),
                i64::from(r.get::<_, i32>(8)),
                r.get::<_, i64>(9),
                r.get::<_, i64>(10),
                r.get::<_, Option<String>>(11),
                r.get::<_, Option<String>>(12),
                r.get::<_, Option<String>>(13),
                r.get::<_, Option<String>>(14),
                r.get::<_, Option<String>>(15),
                r.get::<_, Option<String>>(16),
                r.get::<_, Option<String>>(17),
                r.get::<_, Option<String>>(18),
                r.get::<_, Option<String>>(19),
                r.get::<_, bool>(20),
                r.get::<_, Option<String>>(21),
                r.get::<_, String>(22),
                r.get::<_, Option<Vec<u8>>>(23),
                r.get::<_, Option<Vec<u8>>>(24),
                r.get::<_, Option<Vec<u8>>>(25),
            ])?;
        }
    }
    // The tokens the actor fetched there, as that instance wrote them when it can (it keeps
    // the minter's client key from the seal), else as the minting instance did.
    let scheme = crate::canary::hash::Scheme::new();
    let scheme_id = crate::store::tokens::scheme_id(&tx, scheme.name(), scheme.params())?;
    let tokens = client
        .query(
            &format!(
                "SELECT DISTINCT ON (token) {TOKEN_COLUMNS} FROM tokens
                 WHERE token IN (SELECT token FROM events
                                 WHERE instance = $1 AND actor = $2 AND token IS NOT NULL)
                 ORDER BY token, instance = $1 DESC, phash IS NULL, instance, id"
            ),
            &[name, &actor],
        )
        .await
        .map_err(pg)?;
    for r in &tokens {
        insert_token(&tx, r, scheme_id)?;
    }
    let robots = client
        .query(
            "SELECT sha256, body, source, first_served_ms FROM robots WHERE instance = $1
             ORDER BY id",
            &[name],
        )
        .await
        .map_err(pg)?;
    for r in &robots {
        tx.execute(
            "INSERT OR IGNORE INTO robots (sha256, body, source, first_served_ms)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                r.get::<_, Vec<u8>>(0),
                r.get::<_, Vec<u8>>(1),
                r.get::<_, String>(2),
                r.get::<_, i64>(3)
            ],
        )?;
    }
    tx.commit()?;
    let history = client
        .query(
            "SELECT ts_ms, level, score, note FROM flags
             WHERE instance = $1 AND key = ANY($2) ORDER BY ts_ms, id",
            &[name, &inst.client_keys],
        )
        .await
        .map_err(pg)?;
    Ok(history
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// One fetch of a token recorded by some instance of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct FleetFetch {
    pub instance: String,
    pub site: String,
    pub event_id: i64,
    pub ts_ms: i64,
    pub client_key: String,
    /// The fleet's pseudonym of the client (address and user agent), the same on every site.
    pub actor: Option<String>,
    pub kind: String,
    pub method: String,
    pub path: String,
    pub status: i32,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
}

/// Every fetch of `token` the fleet recorded, oldest first.
pub async fn fetches(
    client: &impl GenericClient,
    url: &str,
    token: &[u8],
) -> Result<Vec<FleetFetch>, FleetError> {
    let rows = client
        .query(
            "SELECT instance, site, id, ts_ms, client_key, actor, kind, method, path, status,
                 user_agent, referer
             FROM events WHERE token = $1 ORDER BY ts_ms, instance, id",
            &[&token],
        )
        .await
        .map_err(|e| FleetError::pg(url, e))?;
    Ok(rows
        .into_iter()
        .map(|r| FleetFetch {
            instance: r.get(0),
            site: r.get(1),
            event_id: r.get(2),
            ts_ms: r.get(3),
            client_key: r.get(4),
            actor: r.get(5),
            kind: r.get(6),
            method: r.get(7),
            path: r.get(8),
            status: r.get(9),
            user_agent: r.get(10),
            referer: r.get(11),
        })
        .collect())
}
