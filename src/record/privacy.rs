//! The privacy and retention job, run by the writer thread between batches.
//!
//! After `raw_ip_hours` a raw client address and its nonce are replaced by a keyed pseudonym
//! (HMAC-SHA256 under a key derived from the deployment secret), unless the client is held
//! (flagged or in a case: table `holds`). After `retention_days` events are deleted unless
//! held; the chain value of the last event of each deleted run is kept as an anchor, so the
//! remaining chain still verifies. Neither step touches a field the chain covers. Tokens the
//! edge minted past retention whose image was never fetched are deleted too, and the header
//! sets no remaining event refers to.

use crate::config::RecordConfig;

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// Rows handled per transaction, so the writer returns to the queue between chunks.
const CHUNK: usize = 5000;
/// Rows handled per run at most; the rest wait for the next run.
const PER_RUN: usize = 200_000;

/// The key of IP pseudonyms, derived from the deployment secret.
pub fn ip_key(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(secret)
        .chain_update(b"faceprobe ip pseudonym key v1")
        .finalize()
        .into()
}

pub use crate::store::secret::pseudonym;

/// The address prefix a client belongs to (/24 for IPv4, /56 for IPv6), as text: what groups
/// clients for clustering and log limits without naming one address.
pub fn prefix(ip: IpAddr) -> String {
    let len = if ip.is_ipv4() { 24 } else { 56 };
    ipnet::IpNet::new(ip, len)
        .map(|n| n.trunc().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Done {
    pub pseudonymized: u64,
    pub expired: u64,
    /// Tokens minted by the edge past retention whose image was never fetched.
    pub tokens_expired: u64,
    /// Header sets no remaining event uses (the writer forgets the sets it remembered).
    pub header_sets_expired: u64,
}

/// Runs both steps for events older than their windows at `now_ms`.
pub fn run(
    conn: &mut Connection,
    key: &[u8; 32],
    config: &RecordConfig,
    now_ms: i64,
) -> rusqlite::Result<Done> {
    let ip_before = now_ms - (config.raw_ip_hours as i64) * 3_600_000;
    let keep_before = now_ms - (config.retention_days as i64) * 86_400_000;
    let mut done = Done::default();
    // Expire first: no point pseudonymizing what is about to be deleted.
    while (done.expired as usize) < PER_RUN {
        let n = expire_chunk(conn, keep_before)?;
        done.expired += n as u64;
        if n < CHUNK {
            break;
        }
    }
    while (done.header_sets_expired as usize) < PER_RUN {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = super::headers::expire(&tx, keep_before, CHUNK)?;
        tx.commit()?;
        done.header_sets_expired += n as u64;
        if n < CHUNK {
            break;
        }
    }
    while (done.pseudonymized as usize) < PER_RUN {
        let n = pseudonymize_chunk(conn, key, ip_before)?;
        done.pseudonymized += n as u64;
        if n < CHUNK {
            break;
        }
    }
    // The detector's summaries: addresses pseudonymized on the same clock, unflagged
    // clients forgotten with their events.
    done.pseudonymized += crate::store::clients::pseudonymize_stale(conn, key, ip_before)? as u64;
    conn.execute(STALE_CLIENTS, [keep_before])?;
    while (done.tokens_expired as usize) < PER_RUN {
        let n = conn.execute(EXPIRED_TOKENS, params![keep_before, CHUNK as i64])?;
        done.tokens_expired += n as u64;
        if n < CHUNK {
            break;
        }
    }
    Ok(done)
}

fn pseudonymize_chunk(
    conn: &mut Connection,
    key: &[u8; 32],
    before: i64,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let rows: Vec<(i64, String)> = {
        let mut stmt = tx.prepare_cached(RAW_ADDRESSES)?;
        let rows = stmt.query_map(params![before, CHUNK as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    {
        let mut update = tx.prepare_cached(
            "UPDATE events SET ip_pseudonym = ?1, client_ip = NULL, ip_nonce = NULL WHERE id = ?2",
        )?;
        for (id, ip) in &rows {
            update.execute(params![pseudonym(key, ip), id])?;
        }
    }
    tx.commit()?;
    Ok(rows.len())
}

/// Events past retention, oldest first, outside any hold. In time order (ids follow time
/// closely, and the anchors below do not depend on the order): ordered by id, SQLite read the
/// whole events table in id order on every run to find none, which held the writer for a
/// second per few million events.
const EXPIRED_EVENTS: &str = "SELECT id, chain FROM events
     WHERE ts_ms < ?1 AND client_key NOT IN (SELECT client_key FROM holds)
     ORDER BY ts_ms LIMIT ?2";

/// Events whose raw address is past `raw_ip_hours`, outside any hold.
const RAW_ADDRESSES: &str = "SELECT id, client_ip FROM events
     WHERE ts_ms < ?1 AND client_ip IS NOT NULL
       AND client_key NOT IN (SELECT client_key FROM holds)
     ORDER BY ts_ms LIMIT ?2";

/// The detector's summaries of unflagged clients past retention.
const STALE_CLIENTS: &str = "DELETE FROM clients WHERE last_ms < ?1 AND level IS NULL";

/// Tokens the edge minted past retention whose image was never fetched.
const EXPIRED_TOKENS: &str = "DELETE FROM tokens WHERE id IN (
     SELECT id FROM tokens
     WHERE created_ms < ?1 AND minted_by = 'edge'
       AND NOT EXISTS (SELECT 1 FROM events WHERE events.token = tokens.token)
     LIMIT ?2)";

fn expire_chunk(conn: &mut Connection, before: i64) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut stmt = tx.prepare_cached(EXPIRED_EVENTS)?;
        let rows = stmt.query_map(params![before, CHUNK as i64], |r| {
            // An event recorded before the chain began has no chain value: the chain after
            // it starts from zero (as the writer started it), so its anchor is zero.
            Ok((
                r.get(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?
                    .unwrap_or_else(|| vec![0; 32]),
            ))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    {
        let mut delete = tx.prepare_cached("DELETE FROM events WHERE id = ?1")?;
        for (id, _) in &rows {
            delete.execute([id])?;
        }
        // An anchor for every deleted event whose successor is still stored (or that was
        // the last one): the successor's chain starts from it.
        let mut successor = tx.prepare_cached("SELECT 1 FROM events WHERE id = ?1")?;
        let mut later = tx.prepare_cached("SELECT 1 FROM events WHERE id > ?1 LIMIT 1")?;
        let mut anchor = tx.prepare_cached(
            "INSERT OR REPLACE INTO chain_anchors (event_id, chain, created_ms) VALUES (?1, ?2, ?3)",
        )?;
        let now = crate::store::now_ms();
        for (id, chain) in &rows {
            if successor.exists([id + 1])? || !later.exists([id])? {
                anchor.execute(params![id, chain, now])?;
            }
        }
    }
    // Anchors whose successor is gone too are no longer needed (keep the newest: the writer
    // continues the chain from it when every event was deleted).
    tx.execute(
        "DELETE FROM chain_anchors
         WHERE event_id < (SELECT max(event_id) FROM chain_anchors)
           AND NOT EXISTS (SELECT 1 FROM events WHERE events.id = chain_anchors.event_id + 1)",
        [],
    )?;
    tx.commit()?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The privacy job runs on the writer's thread every `record.purge_interval_secs`: each of
    /// its queries must find its rows through an index, never read a table that grows with
    /// traffic (events, tokens) whole — on a store of millions of events that held the writer
    /// for seconds, long enough for the queue to fill and page events to be dropped.
    #[test]
    fn the_privacy_job_reads_no_growing_table_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        for q in [EXPIRED_EVENTS, EXPIRED_TOKENS, RAW_ADDRESSES, STALE_CLIENTS] {
            let mut stmt = store
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {q}"))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map(
                    rusqlite::params_from_iter(std::iter::repeat_n(0, stmt.parameter_count())),
                    |r| r.get::<_, String>(3),
                )
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for step in &plan {
                for table in ["events", "tokens", "clients"] {
                    assert!(
                        !step.starts_with(&format!("SCAN {table}")),
                        "{q}\nreads {table} whole: {plan:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn pseudonym_is_keyed_and_stable() {
        let k1 = ip_key(&[1; 32]);
        let k2 = ip_key(&[2; 32]);
        assert_eq!(pseudonym(&k1, "10.0.0.1"), pseudonym(&k1, "10.0.0.1"));
        assert_ne!(pseudonym(&k1, "10.0.0.1"), pseudonym(&k2, "10.0.0.1"));
        assert_ne!(pseudonym(&k1, "10.0.0.1"), pseudonym(&k1, "10.0.0.2"));
        assert!(!pseudonym(&k1, "10.0.0.1").contains("10.0"));
    }
}
