//! Checkpoints: the chain head signed as it happens (every `evidence.checkpoint_minutes` while
//! serving, at shutdown, and when a bundle needs one past its actor's last event).
//!
//! A checkpoint signs the last committed event's id and chain value, the time and the number of
//! events held, as a small text (the `message`) under the deployment's Ed25519 key, namespace
//! `faceprobe-checkpoint`. A log signed at the time cannot be rewritten later without the key:
//! an evidence bundle proves its chain segment by the checkpoints at both of its ends.

use crate::store::signing::{SigningKey, NAMESPACE_CHECKPOINT};
use crate::store::{now_ms, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// One signed chain head, as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub ts_ms: i64,
    pub event_id: i64,
    #[serde(serialize_with = "as_hex")]
    pub chain: [u8; 32],
    pub events: i64,
    /// The exact text signed.
    pub message: String,
    /// Armored OpenSSH signature of `message`.
    pub signature: String,
    pub key_fingerprint: String,
    /// `interval`, `shutdown` or `build`.
    pub made_by: String,
}

fn as_hex<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

/// The signed text: one `name: value` line each, in this order (docs/evidence-format.md).
pub fn message(
    site: &str,
    seq: i64,
    event_id: i64,
    chain: &[u8; 32],
    ts_ms: i64,
    events: i64,
) -> String {
    format!(
        "faceprobe checkpoint v1\nsite: {site}\nseq: {seq}\nevent: {event_id}\nchain: {}\ntime_ms: {ts_ms}\nevents: {events}\n",
        hex::encode(chain)
    )
}

/// Signs the head of the committed chain, unless the newest checkpoint already covers it (then
/// that one is returned). `None` when no event was ever written.
pub fn sign_head(
    conn: &mut Connection,
    key: &SigningKey,
    site: &str,
    made_by: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT id, chain FROM events WHERE chain IS NOT NULL ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((event_id, chain)) = head else {
        return Ok(None);
    };
    let chain: [u8; 32] = chain.try_into().map_err(|_| StoreError::Encode {
        what: "checkpoint",
        message: format!("event {event_id} has a chain value that is not 32 bytes"),
    })?;
    if let Some(last) = latest(&tx)? {
        if last.event_id >= event_id {
            return Ok(Some(last));
        }
    }
    let seq: i64 = tx.query_row(
        "SELECT coalesce(max(seq), 0) + 1 FROM checkpoints",
        [],
        |r| r.get(0),
    )?;
    let events: i64 = tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    let ts_ms = now_ms();
    let message = message(site, seq, event_id, &chain, ts_ms, events);
    let signature = key.sign(NAMESPACE_CHECKPOINT, message.as_bytes())?;
    let c = Checkpoint {
        seq,
        ts_ms,
        event_id,
        chain,
        events,
        message,
        signature,
        key_fingerprint: key.fingerprint(),
        made_by: made_by.to_string(),
    };
    tx.execute(
        "INSERT INTO checkpoints (seq, ts_ms, event_id, chain, events, message, signature,
             key_fingerprint, made_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            c.seq,
            c.ts_ms,
            c.event_id,
            &c.chain[..],
            c.events,
            c.message,
            c.signature,
            c.key_fingerprint,
            c.made_by
        ],
    )?;
    tx.commit()?;
    Ok(Some(c))
}

const COLUMNS: &str =
    "seq, ts_ms, event_id, chain, events, message, signature, key_fingerprint, made_by";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Checkpoint> {
    let chain: Vec<u8> = r.get(3)?;
    Ok(Checkpoint {
        seq: r.get(0)?,
        ts_ms: r.get(1)?,
        event_id: r.get(2)?,
        chain: chain.try_into().unwrap_or([0; 32]),
        events: r.get(4)?,
        message: r.get(5)?,
        signature: r.get(6)?,
        key_fingerprint: r.get(7)?,
        made_by: r.get(8)?,
    })
}

/// What `db check` found of the stored checkpoints.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Audit {
    /// Checkpoints whose message, signature and chain value all hold.
    pub verified: u64,
    /// Signed by another key than the one given (the key was replaced): fields and chain value
    /// checked, the signature not.
    pub other_key: u64,
    /// Naming an event retention has since deleted: message and signature checked, the chain
    /// value not.
    pub event_gone: u64,
}

/// Checks every stored checkpoint: `seq` runs 1, 2, … without a gap; each message says the
/// values stored beside it; each signature made by `key` holds; and the event it names, while
/// kept, carries the chain value it signed. `Err` names the first checkpoint that fails and why.
pub fn audit(conn: &Connection, key: &SigningKey) -> Result<Result<Audit, String>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM checkpoints ORDER BY seq"))?;
    let all = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut chain_of = conn.prepare("SELECT chain FROM events WHERE id = ?1")?;
    let fingerprint = key.fingerprint();
    let public = key.public_line();
    let mut audit = Audit::default();
    for (i, c) in all.iter().enumerate() {
        let seq = c.seq;
        if seq != i as i64 + 1 {
            return Ok(Err(format!(
                "checkpoint {seq} follows checkpoint {i}: checkpoints are missing"
            )));
        }
        // The message as `message` writes it for the site it names: one format, compared whole.
        let site = c
            .message
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("site: "))
            .unwrap_or_default();
        if c.message != message(site, seq, c.event_id, &c.chain, c.ts_ms, c.events) {
            return Ok(Err(format!(
                "checkpoint {seq}: its signed message says other values than its row"
            )));
        }
        let own_key = c.key_fingerprint == fingerprint;
        if own_key {
            if let Err(why) = crate::store::signing::verify(
                &public,
                NAMESPACE_CHECKPOINT,
                c.message.as_bytes(),
                &c.signature,
            ) {
                return Ok(Err(format!("checkpoint {seq}: {why}")));
            }
        }
        let stored: Option<Vec<u8>> = chain_of.query_row([c.event_id], |r| r.get(0)).optional()?;
        match stored {
            Some(v) if v.as_slice() != c.chain.as_slice() => {
                return Ok(Err(format!(
                    "checkpoint {seq}: event {} now carries another chain value than the one signed",
                    c.event_id
                )));
            }
            None => audit.event_gone += 1,
            Some(_) if !own_key => audit.other_key += 1,
            Some(_) => audit.verified += 1,
        }
    }
    Ok(Ok(audit))
}

/// The newest checkpoint.
pub fn latest(conn: &Connection) -> Result<Option<Checkpoint>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM checkpoints ORDER BY seq DESC LIMIT 1"),
            [],
            from_row,
        )
        .optional()?)
}

/// The newest checkpoint strictly before event `id` (and at or after `from`).
pub fn before(conn: &Connection, id: i64, from: i64) -> Result<Option<Checkpoint>, StoreError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM checkpoints WHERE event_id < ?1 AND event_id >= ?2
                 ORDER BY event_id DESC, seq DESC LIMIT 1"
            ),
            [id, from],
            from_row,
        )
        .optional()?)
}

/// The first checkpoint at or after event `id`.
pub fn at_or_after(conn: &Connection, id: i64) -> Result<Option<Checkpoint>, StoreError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM checkpoints WHERE event_id >= ?1
                 ORDER BY event_id, seq LIMIT 1"
            ),
            [id],
            from_row,
        )
        .optional()?)
}

/// Every checkpoint whose event lies in `from..=to`, in event order.
pub fn between(conn: &Connection, from: i64, to: i64) -> Result<Vec<Checkpoint>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM checkpoints WHERE event_id BETWEEN ?1 AND ?2 ORDER BY event_id, seq"
    ))?;
    let rows = stmt.query_map([from, to], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The thread that signs the head every interval; `finish` stops it and signs once more.
pub struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    conn: Connection,
    key: Arc<SigningKey>,
    site: String,
}

impl Checkpointer {
    /// Starts signing every `every` (the first after one interval) on its own connection.
    pub fn start(
        data_dir: &Path,
        key: Arc<SigningKey>,
        site: &str,
        every: Duration,
    ) -> Result<Checkpointer, StoreError> {
        let mut conn = Store::open(data_dir)?.into_conn();
        let final_conn = Store::open(data_dir)?.into_conn();
        let (stop, stopped) = mpsc::channel::<()>();
        let (thread_key, thread_site) = (key.clone(), site.to_string());
        let thread = std::thread::Builder::new()
            .name("faceprobe-sign".into())
            .spawn(move || {
                let mut failing = false;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    match sign_head(&mut conn, &thread_key, &thread_site, "interval") {
                        Ok(_) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            tracing::error!(error = %e, "could not sign a checkpoint; retrying at the next interval");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(|source| StoreError::Thread {
                what: "checkpoint",
                source,
            })?;
        Ok(Checkpointer {
            stop,
            thread,
            conn: final_conn,
            key,
            site: site.to_string(),
        })
    }

    /// Stops the thread and signs the head as it is now (call after the recorder flushed).
    pub fn finish(mut self) -> Result<Option<Checkpoint>, StoreError> {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        sign_head(&mut self.conn, &self.key, &self.site, "shutdown")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::signing::verify;

    fn add_event(conn: &Connection, id: i64) {
        conn.execute(
            "INSERT INTO events (id, ts_ms, client_key, method, path, status, bytes, duration_us,
                 cookie_sent, kind, chain) VALUES (?1, 0, 'c', 'GET', '/', 200, 0, 0, 0, 'page', ?2)",
            params![id, &[id as u8; 32][..]],
        )
        .unwrap();
    }

    #[test]
    fn the_audit_holds_on_true_checkpoints_and_names_each_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path(), None).unwrap();
        let mut conn = Store::open(dir.path()).unwrap().into_conn();
        for id in 1..=3 {
            add_event(&conn, id);
            sign_head(&mut conn, &key, "https://s", "interval").unwrap();
        }
        assert_eq!(
            audit(&conn, &key).unwrap(),
            Ok(Audit {
                verified: 3,
                ..Audit::default()
            })
        );
        let expect_err = |conn: &Connection, needle: &str| {
            let why = audit(conn, &key).unwrap().unwrap_err();
            assert!(why.contains(needle), "{why}");
        };
        // The event's chain value rewritten after it was signed.
        conn.execute(
            "UPDATE events SET chain = ?1 WHERE id = 2",
            [&[9u8; 32][..]],
        )
        .unwrap();
        expect_err(
            &conn,
            "checkpoint 2: event 2 now carries another chain value",
        );
        conn.execute(
            "UPDATE events SET chain = ?1 WHERE id = 2",
            [&[2u8; 32][..]],
        )
        .unwrap();
        // A row's value changed without re-signing.
        conn.execute("UPDATE checkpoints SET events = 7 WHERE seq = 3", [])
            .unwrap();
        expect_err(&conn, "checkpoint 3: its signed message says other values");
        conn.execute("UPDATE checkpoints SET events = 3 WHERE seq = 3", [])
            .unwrap();
        // A message and its row changed together: the signature fails.
        conn.execute(
            "UPDATE checkpoints SET ts_ms = ts_ms + 1,
                 message = replace(message, 'time_ms: ' || ts_ms, 'time_ms: ' || (ts_ms + 1))
             WHERE seq = 1",
            [],
        )
        .unwrap();
        expect_err(&conn, "checkpoint 1: the signature does not match");
        conn.execute(
            "UPDATE checkpoints SET ts_ms = ts_ms - 1,
                 message = replace(message, 'time_ms: ' || (ts_ms + 0), 'time_ms: ' || (ts_ms - 1))
             WHERE seq = 1",
            [],
        )
        .unwrap();
        assert!(audit(&conn, &key).unwrap().is_ok());
        // Retention deleted an event: its checkpoint's chain value can no longer be compared.
        conn.execute("DELETE FROM events WHERE id = 1", []).unwrap();
        assert_eq!(audit(&conn, &key).unwrap().map(|a| a.event_gone), Ok(1));
        // A checkpoint removed.
        conn.execute("DELETE FROM checkpoints WHERE seq = 2", [])
            .unwrap();
        expect_err(&conn, "checkpoint 3 follows checkpoint 1");
    }

    #[test]
    fn the_head_is_signed_once_and_its_message_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path(), None).unwrap();
        let mut conn = Store::open(dir.path()).unwrap().into_conn();
        assert_eq!(
            sign_head(&mut conn, &key, "https://s", "interval").unwrap(),
            None
        );
        add_event(&conn, 1);
        add_event(&conn, 2);
        let c = sign_head(&mut conn, &key, "https://s", "interval")
            .unwrap()
            .unwrap();
        assert_eq!((c.seq, c.event_id, c.events, c.chain), (1, 2, 2, [2; 32]));
        assert!(c
            .message
            .contains(&format!("chain: {}\n", hex::encode([2u8; 32]))));
        verify(
            &key.public_line(),
            NAMESPACE_CHECKPOINT,
            c.message.as_bytes(),
            &c.signature,
        )
        .unwrap();
        // Nothing new: the same checkpoint, no second row.
        let again = sign_head(&mut conn, &key, "https://s", "shutdown")
            .unwrap()
            .unwrap();
        assert_eq!(again, c);
        add_event(&conn, 3);
        let d = sign_head(&mut conn, &key, "https://s", "shutdown")
            .unwrap()
            .unwrap();
        assert_eq!((d.seq, d.event_id, d.made_by.as_str()), (2, 3, "shutdown"));
        assert_eq!(before(&conn, 3, 0).unwrap().map(|c| c.seq), Some(1));
        assert_eq!(at_or_after(&conn, 3).unwrap().map(|c| c.seq), Some(2));
        assert_eq!(between(&conn, 1, 3).unwrap().len(), 2);
    }

    #[test]
    fn the_thread_signs_every_interval_and_once_more_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::load_or_create(dir.path(), None).unwrap());
        let conn = Store::open(dir.path()).unwrap().into_conn();
        add_event(&conn, 1);
        let cp =
            Checkpointer::start(dir.path(), key.clone(), "s", Duration::from_millis(20)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while latest(&conn).unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            latest(&conn).unwrap().map(|c| c.made_by),
            Some("interval".into())
        );
        add_event(&conn, 2);
        let last = cp.finish().unwrap().unwrap();
        assert_eq!(last.event_id, 2);
    }
}
