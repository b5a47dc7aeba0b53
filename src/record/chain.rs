//! Verifying the hash chain of the stored events (`faceprobe db check`).
//!
//! Events are read in id order; each stored chain value must equal SHA-256 of the previous
//! value and the event's digest (rule 2), or, for events written before schema 8 (rule 1,
//! before `chain_rule2_from`), SHA-256 of the previous value and the whole encoding. Where events were deleted by retention, the
//! chain resumes from the anchor kept for the last deleted event. A raw address still held
//! must open its commitment with its nonce.

use super::event::{chain_next, chain_next_v1, ip_commitment, Chained, CHAINED_COLUMNS};
use rusqlite::{Connection, OptionalExtension};

/// The first event at which the chain does not verify, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    pub event_id: i64,
    pub reason: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "event {}: {}", self.event_id, self.reason)
    }
}

/// What a verification covered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verified {
    pub events: u64,
    pub anchors_used: u64,
    /// Events checked under rule 1 (written before schema 8).
    pub rule1_events: u64,
    /// Events recorded before the chain began (by a faceprobe older than schema 2): not covered.
    pub before_chain: u64,
    /// Chain value of the last event: the head to compare with an exported anchor.
    pub head: Option<[u8; 32]>,
}

/// Walks the whole chain; `Ok(Err(break))` names the first event that fails.
pub fn verify(conn: &Connection) -> rusqlite::Result<Result<Verified, Break>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CHAINED_COLUMNS}, chain, client_ip, ip_nonce, header_set, header_set_found
         FROM events_full ORDER BY id"
    ))?;
    let mut anchor = conn.prepare("SELECT chain FROM chain_anchors WHERE event_id = ?1")?;
    let rule2_from = rule2_from(conn)?;
    let chain_from = meta_id(conn, "chain_from")?.unwrap_or(1);
    let mut rows = stmt.query([])?;
    let mut prev = [0u8; 32];
    let mut last_id: Option<i64> = None;
    let mut done = Verified::default();
    while let Some(row) = rows.next()? {
        let event = Chained::from_row(row)?;
        let stored: Option<Vec<u8>> = row.get(25)?;
        let ip: Option<String> = row.get(26)?;
        let nonce: Option<Vec<u8>> = row.get(27)?;
        let id = event.id;
        if id < chain_from {
            // The writer chained the first event after these from zero, as it does here.
            done.before_chain += 1;
            prev = [0; 32];
            last_id = Some(id);
            continue;
        }
        if let (Some(set), None) = (
            row.get::<_, Option<i64>>(28)?,
            row.get::<_, Option<i64>>(29)?,
        ) {
            return Ok(Err(Break {
                event_id: id,
                reason: format!(
                    "its headers (header set {set}) are missing (deleted outside faceprobe?)"
                ),
            }));
        }
        let expected_prev = last_id.map(|l| l + 1).unwrap_or(1);
        if id != expected_prev {
            let a: Option<Vec<u8>> = anchor.query_row([id - 1], |r| r.get(0)).optional()?;
            match a.and_then(|a| <[u8; 32]>::try_from(a).ok()) {
                Some(a) => {
                    prev = a;
                    done.anchors_used += 1;
                }
                None => {
                    return Ok(Err(Break {
                        event_id: id,
                        reason: format!(
                            "events {} to {} are missing and no retention anchor covers them \
                             (deleted outside faceprobe?)",
                            expected_prev,
                            id - 1
                        ),
                    }))
                }
            }
        }
        let computed = if id >= rule2_from {
            chain_next(&prev, &event)
        } else {
            done.rule1_events += 1;
            chain_next_v1(&prev, &event)
        };
        if stored.as_deref() != Some(&computed[..]) {
            return Ok(Err(Break {
                event_id: id,
                reason: if stored.is_none() {
                    "has no chain value".to_string()
                } else {
                    "its content differs from what was chained when it was written \
                     (changed afterwards, or an earlier event was)"
                        .to_string()
                },
            }));
        }
        match (&ip, &nonce, &event.ip_commit) {
            (Some(ip), Some(nonce), Some(commit)) if ip_commitment(ip, nonce)[..] != commit[..] => {
                return Ok(Err(Break {
                    event_id: id,
                    reason: "its client address does not open its commitment \
                             (the address was changed)"
                        .into(),
                }));
            }
            (Some(_), Some(_), Some(_)) => {}
            (Some(_), _, _) => {
                return Ok(Err(Break {
                    event_id: id,
                    reason: "has a client address without a nonce or commitment".into(),
                }))
            }
            _ => {}
        }
        prev = computed;
        last_id = Some(id);
        done.events += 1;
    }
    done.head = last_id.map(|_| prev);
    Ok(Ok(done))
}

/// The first event id linked by rule 2 (digests); earlier ones use rule 1.
pub fn rule2_from(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(meta_id(conn, "chain_rule2_from")?.unwrap_or(1))
}

/// An event id kept in `meta` under `key`.
fn meta_id(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()))
}
