//! The detector's tables: `clients` (each client and cluster it noticed, its state as JSON),
//! `flag_history` (every level reached, merge and dismissal; rows are only ever added),
//! `allow_list` (keys a person dismissed) and `holds` (clients whose raw addresses are kept).

use super::StoreError;
use crate::detect::engine::Change;
use crate::detect::{Client, Level};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;

/// The meta key of the last event id the detector has taken into account.
pub const CHECKPOINT: &str = "detect_last_event";

fn decode(state: String) -> Option<Client> {
    serde_json::from_str(&state).ok()
}

/// Writes a client's or cluster's current state.
pub fn upsert(conn: &Connection, c: &Client, now_ms: i64) -> Result<(), StoreError> {
    let state = serde_json::to_string(c).map_err(|e| StoreError::Encode {
        what: "a client's state",
        message: e.to_string(),
    })?;
    conn.prepare_cached(
        "INSERT INTO clients (key, kind, level, score, first_ms, last_ms, updated_ms, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (key) DO UPDATE SET level = excluded.level, score = excluded.score,
            first_ms = excluded.first_ms, last_ms = excluded.last_ms,
            updated_ms = excluded.updated_ms, state = excluded.state",
    )?
    .execute(params![
        c.key,
        if c.is_cluster() { "cluster" } else { "client" },
        if c.dismissed {
            None
        } else {
            c.level.map(Level::as_str)
        },
        c.score,
        c.first_ms,
        c.last_ms,
        now_ms,
        state
    ])?;
    Ok(())
}

/// Appends one change to a key's history.
pub fn append_history(
    conn: &Connection,
    change: &Change,
    reasons: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO flag_history (key, ts_ms, level, score, at_event, requests, note, reasons)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        change.key,
        change.at_ms,
        change.level.map(Level::as_str),
        change.score,
        (change.at_event > 0).then_some(change.at_event),
        change.requests as i64,
        change.note,
        reasons.map(|r| r.to_string()),
    ])?;
    Ok(())
}

/// One client or cluster, by key.
pub fn get(conn: &Connection, key: &str) -> Result<Option<Client>, StoreError> {
    let state: Option<String> = conn
        .query_row("SELECT state FROM clients WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(state.and_then(decode))
}

/// Clients and clusters seen since `since_ms` or flagged, most recent first, at most `limit`.
pub fn recent(conn: &Connection, since_ms: i64, limit: usize) -> Result<Vec<Client>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT state FROM clients WHERE last_ms >= ?1 OR level IS NOT NULL
         ORDER BY last_ms DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![since_ms, limit as i64], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for state in rows {
        out.extend(decode(state?));
    }
    Ok(out)
}

/// Every key in `clients` (for the detector to know what it can read back).
pub fn keys(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT key FROM clients")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Everything `faceprobe clients` lists: flagged first, then by score (clusters merged into
/// another are left out: the one they joined carries their evidence).
pub fn list(conn: &Connection, flagged_only: bool) -> Result<Vec<Client>, StoreError> {
    let mut stmt = conn.prepare(if flagged_only {
        "SELECT state FROM clients WHERE level IS NOT NULL ORDER BY score DESC, key"
    } else {
        "SELECT state FROM clients ORDER BY level IS NULL, score DESC, key"
    })?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for state in rows {
        out.extend(decode(state?).filter(|c| c.merged_into.is_none()));
    }
    Ok(out)
}

/// One row of a key's history: when, the level then, the score then, and what happened.
pub type HistoryRow = (i64, Option<String>, f64, String);

/// The history of one key, oldest first.
pub fn history(conn: &Connection, key: &str) -> Result<Vec<HistoryRow>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT ts_ms, level, score, note FROM flag_history WHERE key = ?1 ORDER BY id")?;
    let rows = stmt.query_map([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Keeps a client's raw addresses past the privacy window.
pub fn hold(
    conn: &Connection,
    client_key: &str,
    reason: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO holds (client_key, reason, since_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![client_key, reason, now_ms])?;
    Ok(())
}

/// Reason of a hold placed by a case: the detector never releases it.
pub const CASE_HOLD: &str = "case";

/// Keeps a client's records past retention and its raw addresses past the privacy window,
/// for a case (an evidence bundle was built). Replaces a detector's hold.
pub fn hold_for_case(conn: &Connection, client_key: &str, now_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO holds (client_key, reason, since_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (client_key) DO UPDATE SET reason = excluded.reason",
    )?
    .execute(params![client_key, CASE_HOLD, now_ms])?;
    Ok(())
}

/// Whether a client's raw addresses are kept (it, or a cluster it is in, is flagged).
pub fn is_held(conn: &Connection, client_key: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM holds WHERE client_key = ?1")?
        .exists([client_key])?)
}

/// Lets the privacy job pseudonymize a key's (and its members') addresses again.
pub fn release(conn: &Connection, key: &str, members: &[String]) -> Result<(), StoreError> {
    // A case's hold stays: its records are evidence whatever the flag becomes.
    let mut stmt =
        conn.prepare_cached("DELETE FROM holds WHERE client_key = ?1 AND reason <> 'case'")?;
    stmt.execute([key])?;
    for m in members {
        stmt.execute([m])?;
    }
    Ok(())
}

/// Replaces raw addresses by pseudonyms in the states of clients last seen before `before`
/// that are not held (nor, for a cluster, any of its members). Returns how many rows changed.
pub fn pseudonymize_stale(
    conn: &Connection,
    key: &[u8; 32],
    before: i64,
) -> rusqlite::Result<usize> {
    let rows: Vec<(String, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT key, state FROM clients
             WHERE last_ms < ?1 AND key NOT IN (SELECT client_key FROM holds)
               AND (json_extract(state, '$.address') NOT LIKE 'ip:%'
                    OR EXISTS (SELECT 1 FROM json_each(state, '$.addresses')
                               WHERE value NOT LIKE 'ip:%'))
               AND NOT EXISTS (SELECT 1 FROM json_each(state, '$.members') m
                               JOIN holds h ON h.client_key = m.value)
             LIMIT 5000",
        )?;
        let rows = stmt.query_map([before], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut update = conn.prepare_cached("UPDATE clients SET state = ?1 WHERE key = ?2")?;
    let mut n = 0;
    for (k, state) in rows {
        let Some(mut c) = decode(state) else { continue };
        crate::detect::runner::pseudonymize(key, &mut c);
        if let Ok(state) = serde_json::to_string(&c) {
            update.execute(params![state, k])?;
            n += 1;
        }
    }
    Ok(n)
}

/// Keys on the allow-list.
pub fn allowed(conn: &Connection) -> Result<HashSet<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT key FROM allow_list")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A person dismisses a flag: the key goes on the allow-list, its holds (and its members'
/// for a cluster) are released, and its history says so. Returns false for an unknown key.
pub fn dismiss(
    conn: &mut Connection,
    key: &str,
    note: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let Some(mut c) = get(&tx, key)? else {
        return Ok(false);
    };
    tx.execute(
        "INSERT INTO allow_list (key, agent, note, dismissed_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET note = excluded.note, dismissed_ms = excluded.dismissed_ms",
        params![key, c.agent, note, now_ms],
    )?;
    release(&tx, key, &c.members)?;
    c.dismissed = true;
    upsert(&tx, &c, now_ms)?;
    append_history(
        &tx,
        &Change {
            key: key.to_string(),
            from: c.level,
            level: None,
            score: c.score,
            at_ms: now_ms,
            at_event: 0,
            requests: c.counts.requests,
            note: if note.is_empty() {
                "dismissed by a person".to_string()
            } else {
                format!("dismissed by a person: {note}")
            },
            dismissed: true,
        },
        None,
    )?;
    tx.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RecordConfig;
    use crate::record::privacy;

    #[test]
    fn the_privacy_job_pseudonymizes_stale_unheld_clients_and_forgets_unflagged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::Store::open(dir.path()).unwrap().into_conn();
        let now = crate::store::now_ms();
        let day = 86_400_000;
        let client = |key: &str, last_ms: i64, level: Option<Level>| Client {
            key: key.into(),
            address: Some("192.0.2.7".into()),
            first_ms: last_ms,
            last_ms,
            level,
            score: 10.0,
            ..Client::default()
        };
        upsert(&conn, &client("c:old", now - 4 * day, None), now).unwrap();
        upsert(
            &conn,
            &client("c:held", now - 4 * day, Some(Level::Harvester)),
            now,
        )
        .unwrap();
        upsert(&conn, &client("c:new", now - 1000, None), now).unwrap();
        upsert(&conn, &client("c:ancient", now - 400 * day, None), now).unwrap();
        let cluster = Client {
            key: "k:held".into(),
            members: vec!["c:held".into()],
            addresses: vec!["192.0.2.7".into()],
            last_ms: now - 4 * day,
            ..Client::default()
        };
        upsert(&conn, &cluster, now).unwrap();
        hold(&conn, "c:held", "flagged harvester", now).unwrap();
        let key = privacy::ip_key(&[3; 32]);
        privacy::run(&mut conn, &key, &RecordConfig::default(), now).unwrap();
        let address = |k: &str| get(&conn, k).unwrap().and_then(|c| c.address);
        assert_eq!(
            address("c:old"),
            Some(privacy::pseudonym(&key, "192.0.2.7"))
        );
        assert_eq!(address("c:held").as_deref(), Some("192.0.2.7"));
        assert_eq!(address("c:new").as_deref(), Some("192.0.2.7"));
        assert!(get(&conn, "c:ancient").unwrap().is_none());
        assert_eq!(
            get(&conn, "k:held").unwrap().unwrap().addresses,
            vec!["192.0.2.7"]
        );
        // Run again: nothing left to change.
        assert_eq!(
            pseudonymize_stale(&conn, &key, now - 72 * 3_600_000).unwrap(),
            0
        );
    }
}
