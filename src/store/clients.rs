//! The detector's tables: `clients` (each client and cluster it noticed, its state as JSON),
//! `flag_history` (every level reached, merge and dismissal; rows are only ever added),
//! `allow_list` (keys a person dismissed) and `holds` (clients whose raw addresses are kept).
//!
//! The store holds rows, not the detector's types: a state is JSON the detector encodes and
//! decodes (`detect::stored`), a level is its text. What the store itself reads in a state is
//! only where its addresses are (`address`, `addresses`), for the privacy job.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashSet;

/// The meta key of the last event id the detector has taken into account.
pub const CHECKPOINT: &str = "detect_last_event";

fn decode<S: DeserializeOwned>(state: String) -> Option<S> {
    serde_json::from_str(&state).ok()
}

/// The indexed columns of a client's or cluster's row; its state goes beside them as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRow<'a> {
    pub key: &'a str,
    pub cluster: bool,
    /// `watch`, `suspect` or `harvester`; None when not flagged (or dismissed).
    pub level: Option<&'a str>,
    pub score: f64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Writes a client's or cluster's current state.
pub fn upsert(
    conn: &Connection,
    row: &ClientRow,
    state: &impl Serialize,
    now_ms: i64,
) -> Result<(), StoreError> {
    let state = serde_json::to_string(state).map_err(|e| StoreError::Encode {
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
        row.key,
        if row.cluster { "cluster" } else { "client" },
        row.level,
        row.score,
        row.first_ms,
        row.last_ms,
        now_ms,
        state
    ])?;
    Ok(())
}

/// One entry of a key's history, as appended.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry<'a> {
    pub key: &'a str,
    pub at_ms: i64,
    /// The level from then on (None: no longer flagged).
    pub level: Option<&'a str>,
    pub score: f64,
    /// The event that caused it; 0 for none (a person's dismissal).
    pub at_event: i64,
    pub requests: u64,
    pub note: &'a str,
}

/// Appends one change to a key's history.
pub fn append_history(
    conn: &Connection,
    entry: &HistoryEntry,
    reasons: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO flag_history (key, ts_ms, level, score, at_event, requests, note, reasons)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        entry.key,
        entry.at_ms,
        entry.level,
        entry.score,
        (entry.at_event > 0).then_some(entry.at_event),
        entry.requests as i64,
        entry.note,
        reasons.map(|r| r.to_string()),
    ])?;
    Ok(())
}

/// The state of one client or cluster, by key, decoded as `S` (None when there is no row or
/// its state is not an `S`).
pub fn get<S: DeserializeOwned>(conn: &Connection, key: &str) -> Result<Option<S>, StoreError> {
    let state: Option<String> = conn
        .query_row("SELECT state FROM clients WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(state.and_then(decode))
}

/// States of the clients and clusters seen since `since_ms` or flagged, most recent first, at
/// most `limit`.
pub fn recent<S: DeserializeOwned>(
    conn: &Connection,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<S>, StoreError> {
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

/// Every state, flagged first, then by score: what `faceprobe clients` lists.
pub fn list<S: DeserializeOwned>(
    conn: &Connection,
    flagged_only: bool,
) -> Result<Vec<S>, StoreError> {
    let mut stmt = conn.prepare(if flagged_only {
        "SELECT state FROM clients WHERE level IS NOT NULL ORDER BY score DESC, key"
    } else {
        "SELECT state FROM clients ORDER BY level IS NULL, score DESC, key"
    })?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for state in rows {
        out.extend(decode(state?));
    }
    Ok(out)
}

/// Adds a key to the allow-list (a person dismissed its flag; `agent` is its user agent).
pub fn allow(
    conn: &Connection,
    key: &str,
    agent: Option<&str>,
    note: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO allow_list (key, agent, note, dismissed_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET note = excluded.note, dismissed_ms = excluded.dismissed_ms",
        params![key, agent, note, now_ms],
    )?;
    Ok(())
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
        let Some(mut json) = decode::<Json>(state) else {
            continue;
        };
        pseudonymize(key, &mut json);
        if let Ok(state) = serde_json::to_string(&json) {
            update.execute(params![state, k])?;
            n += 1;
        }
    }
    Ok(n)
}

/// Replaces the raw addresses of a state (`address`, each of `addresses`) by their keyed
/// pseudonyms, as the privacy job does for events.
fn pseudonymize(key: &[u8; 32], state: &mut Json) {
    let Json::Object(fields) = state else { return };
    let mut one = |v: &mut Json| {
        if let Json::String(a) = v {
            if !a.starts_with("ip:") {
                *a = super::secret::pseudonym(key, a);
            }
        }
    };
    for (name, value) in fields.iter_mut() {
        match (name.as_str(), value) {
            ("address", v) => one(v),
            ("addresses", Json::Array(items)) => items.iter_mut().for_each(&mut one),
            _ => {}
        }
    }
}

/// A JSON value whose objects keep their keys in order, so that a state rewritten here is
/// byte for byte what the detector writes (`serde_json::Value` would sort the keys).
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(n)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Json, E> {
                Ok(Json::String(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Json::Object(fields))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(items) => s.collect_seq(items),
            Json::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Keys on the allow-list.
pub fn allowed(conn: &Connection) -> Result<HashSet<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT key FROM allow_list")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RecordConfig;
    use crate::detect::stored::{get, upsert};
    use crate::detect::{Client, Level};
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
        // The rewritten state is byte for byte the detector's own encoding of it.
        let state = |k: &str| -> String {
            conn.query_row("SELECT state FROM clients WHERE key = ?1", [k], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let mut expected = client("c:old", now - 4 * day, None);
        crate::detect::runner::pseudonymize(&key, &mut expected);
        assert_eq!(state("c:old"), serde_json::to_string(&expected).unwrap());
        // Run again: nothing left to change.
        assert_eq!(
            pseudonymize_stale(&conn, &key, now - 72 * 3_600_000).unwrap(),
            0
        );
    }
}
