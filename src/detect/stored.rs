//! The detector's rows in the store: a `Client` as `store::clients` keeps it (its state as
//! JSON beside its key, kind, level as text and score), a `Change` as a history row, and a
//! person's dismissal. The store keeps rows; this module turns them into the detector's types
//! and back.

use super::engine::Change;
use super::{Client, Level};
use crate::store::clients::{self, ClientRow, HistoryEntry};
use crate::store::StoreError;
use rusqlite::Connection;

/// Writes a client's or cluster's current state.
pub fn upsert(conn: &Connection, c: &Client, now_ms: i64) -> Result<(), StoreError> {
    let row = ClientRow {
        key: &c.key,
        cluster: c.is_cluster(),
        level: match c.dismissed {
            true => None,
            false => c.level.map(Level::as_str),
        },
        score: c.score,
        first_ms: c.first_ms,
        last_ms: c.last_ms,
    };
    clients::upsert(conn, &row, c, now_ms)
}

/// Appends one change to its key's history.
pub fn append_history(
    conn: &Connection,
    change: &Change,
    reasons: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    let entry = HistoryEntry {
        key: &change.key,
        at_ms: change.at_ms,
        level: change.level.map(Level::as_str),
        score: change.score,
        at_event: change.at_event,
        requests: change.requests,
        note: &change.note,
    };
    clients::append_history(conn, &entry, reasons)
}

/// One client or cluster, by key.
pub fn get(conn: &Connection, key: &str) -> Result<Option<Client>, StoreError> {
    clients::get(conn, key)
}

/// Clients and clusters seen since `since_ms` or flagged, most recent first, at most `limit`.
pub fn recent(conn: &Connection, since_ms: i64, limit: usize) -> Result<Vec<Client>, StoreError> {
    clients::recent(conn, since_ms, limit)
}

/// Everything `faceprobe clients` lists: flagged first, then by score (clusters merged into
/// another are left out: the one they joined carries their evidence).
pub fn list(conn: &Connection, flagged_only: bool) -> Result<Vec<Client>, StoreError> {
    let all: Vec<Client> = clients::list(conn, flagged_only)?;
    Ok(all
        .into_iter()
        .filter(|c| c.merged_into.is_none())
        .collect())
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
    let done = dismiss_in(&tx, key, "a person", note, now_ms)?;
    tx.commit()?;
    Ok(done)
}

/// `dismiss` inside the caller's transaction; `by` names who dismissed it in the history.
pub fn dismiss_in(
    tx: &Connection,
    key: &str,
    by: &str,
    note: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let Some(mut c) = get(tx, key)? else {
        return Ok(false);
    };
    clients::allow(tx, key, c.agent.as_deref(), note, now_ms)?;
    clients::release(tx, key, &c.members)?;
    c.dismissed = true;
    upsert(tx, &c, now_ms)?;
    append_history(
        tx,
        &Change {
            key: key.to_string(),
            from: c.level,
            level: None,
            score: c.score,
            at_ms: now_ms,
            at_event: 0,
            requests: c.counts.requests,
            note: if note.is_empty() {
                format!("dismissed by {by}")
            } else {
                format!("dismissed by {by}: {note}")
            },
            dismissed: true,
        },
        None,
    )?;
    Ok(true)
}

/// A person takes a dismissal back: the key leaves the allow-list and is judged again (the
/// running detector reads the allow-list at its next persist). Returns false when the key
/// was not dismissed.
pub fn undismiss(
    conn: &mut Connection,
    key: &str,
    note: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let done = undismiss_in(&tx, key, "a person", note, now_ms)?;
    tx.commit()?;
    Ok(done)
}

/// `undismiss` inside the caller's transaction; `by` names who undid it in the history.
pub fn undismiss_in(
    tx: &Connection,
    key: &str,
    by: &str,
    note: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    if !crate::store::reviews::unallow(tx, key)? {
        return Ok(false);
    }
    if let Some(mut c) = get(tx, key)? {
        c.dismissed = false;
        upsert(tx, &c, now_ms)?;
        append_history(
            tx,
            &Change {
                key: key.to_string(),
                from: None,
                level: c.level,
                score: c.score,
                at_ms: now_ms,
                at_event: 0,
                requests: c.counts.requests,
                note: match note.is_empty() {
                    true => format!("dismissal undone by {by}"),
                    false => format!("dismissal undone by {by}: {note}"),
                },
                dismissed: false,
            },
            None,
        )?;
    }
    Ok(true)
}
