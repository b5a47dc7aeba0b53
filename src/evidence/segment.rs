//! The chain segment a bundle discloses: from a start value (a signed checkpoint before the
//! actor's first event, the chain's genesis, or a retention anchor) to a signed checkpoint at
//! or after its last event. The actor's events are read whole; every other event becomes its
//! 32-byte digest, which is all a verifier needs to recompute the links.

use super::events::Stored;
use super::EvidenceError;
use crate::record::checkpoint::{self, Checkpoint};
use crate::record::event::{chain_link, digest, Chained, CHAINED_COLUMNS};
use crate::store::signing::SigningKey;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashSet;
use std::io::Write;

/// Where the segment starts: the chain value after event `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub after: i64,
    pub chain: [u8; 32],
    /// `checkpoint`, `genesis` or `anchor`.
    pub source: &'static str,
}

/// A segment read from the store.
pub struct Segment {
    pub start: Start,
    pub end: Checkpoint,
    /// The actor's events in it, in id order (emptied once `events.jsonl` is written).
    pub events: Vec<Stored>,
    /// How many events of the actor it holds.
    pub actor_events: usize,
    /// Other visitors' events, present as digests only.
    pub others: u64,
    /// `chain.jsonl`, written while reading.
    pub chain_jsonl: Vec<u8>,
    /// Every checkpoint from the start to the end.
    pub checkpoints: Vec<Checkpoint>,
}

/// Reads the segment holding every event of `actor` (client keys) from the first rule-2 event
/// on. Signs a checkpoint (`build`) when none yet covers the actor's last event.
pub fn read(
    conn: &mut Connection,
    actor: &HashSet<String>,
    key: &SigningKey,
    site: &str,
) -> Result<Segment, EvidenceError> {
    let rule2 = crate::record::chain::rule2_from(conn)?;
    let (first, last) = actor_span(conn, actor, rule2)?;
    let end = match checkpoint::at_or_after(conn, last)? {
        Some(c) => c,
        None => checkpoint::sign_head(conn, key, site, "build")?
            .ok_or_else(|| EvidenceError::Store("no event to sign a checkpoint over".into()))?,
    };
    let start = start(conn, first, rule2)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {CHAINED_COLUMNS}, chain, client_ip, ip_nonce, ip_pseudonym
         FROM events_full WHERE id > ?1 AND id <= ?2 ORDER BY id"
    ))?;
    let mut rows = stmt.query([start.after, end.event_id])?;
    let mut seg = Segment {
        start: start.clone(),
        end: end.clone(),
        events: Vec::new(),
        actor_events: 0,
        others: 0,
        // A digest line is 107 bytes with a 7-digit id; room for those, the start and end
        // lines, so that the buffer (the bundle's largest file) is never copied to grow.
        chain_jsonl: Vec::with_capacity(((end.event_id - start.after).max(0) as usize) * 112 + 512),
        checkpoints: Vec::new(),
    };
    let mut prev = start.chain;
    let mut expected = start.after + 1;
    while let Some(row) = rows.next()? {
        let event = Chained::from_row(row)?;
        let id = event.id;
        if id != expected {
            // Events before the actor's first may have been deleted by retention: start again
            // from the anchor retention left for the gap.
            let anchor = anchor_at(conn, id - 1)?;
            match anchor {
                Some(a) if seg.events.is_empty() => {
                    seg.start = Start {
                        after: id - 1,
                        chain: a,
                        source: "anchor",
                    };
                    seg.chain_jsonl.clear();
                    seg.others = 0;
                    prev = a;
                }
                _ => {
                    return Err(EvidenceError::Store(format!(
                        "events {expected} to {} are missing from the store (deleted by \
                         retention?): the chain segment from {} to {} cannot be disclosed",
                        id - 1,
                        start.after,
                        end.event_id
                    )))
                }
            }
        }
        let stored: Option<Vec<u8>> = row.get(25)?;
        let d = digest(&event);
        let value = chain_link(&prev, &d);
        if stored.as_deref() != Some(&value[..]) {
            return Err(EvidenceError::Store(format!(
                "the stored chain does not verify at event {id}; run `faceprobe db check`"
            )));
        }
        if actor.contains(&event.client_key) {
            writeln!(seg.chain_jsonl, "{{\"type\":\"event\",\"id\":{id}}}")?;
            seg.events.push(Stored {
                event,
                chain: value,
                client_ip: row.get(26)?,
                ip_nonce: row.get(27)?,
                ip_pseudonym: row.get(28)?,
            });
        } else {
            writeln!(
                seg.chain_jsonl,
                "{{\"type\":\"digest\",\"id\":{id},\"digest\":\"{}\"}}",
                hex::encode(d)
            )?;
            seg.others += 1;
        }
        prev = value;
        expected = id + 1;
    }
    if expected != end.event_id + 1 || prev != end.chain {
        return Err(EvidenceError::Store(format!(
            "the chain up to checkpoint {} (event {}) does not verify; run `faceprobe db check`",
            end.seq, end.event_id
        )));
    }
    let mut head = Vec::new();
    writeln!(
        head,
        "{}",
        serde_json::json!({
            "type": "start",
            "after": seg.start.after,
            "chain": hex::encode(seg.start.chain),
            "source": seg.start.source,
        })
    )?;
    seg.actor_events = seg.events.len();
    // Put in front in place (the capacity holds it), not by a second buffer of the same size.
    seg.chain_jsonl.splice(0..0, head);
    writeln!(
        seg.chain_jsonl,
        "{}",
        serde_json::json!({"type": "end", "id": end.event_id, "chain": hex::encode(end.chain)})
    )?;
    seg.checkpoints = checkpoint::between(conn, seg.start.after, end.event_id)?;
    Ok(seg)
}

/// The actor's first and last event ids under rule 2.
fn actor_span(
    conn: &Connection,
    actor: &HashSet<String>,
    rule2: i64,
) -> Result<(i64, i64), EvidenceError> {
    let mut stmt =
        conn.prepare("SELECT min(id), max(id) FROM events WHERE client_key = ?1 AND id >= ?2")?;
    let mut span: Option<(i64, i64)> = None;
    for k in actor {
        let (lo, hi): (Option<i64>, Option<i64>) =
            stmt.query_row(rusqlite::params![k, rule2], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if let (Some(lo), Some(hi)) = (lo, hi) {
            span = Some(match span {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
    }
    span.ok_or_else(|| {
        EvidenceError::NoEvents(
            "the store holds no event of this actor (deleted by retention, or recorded \
             before this faceprobe's digest-linked chain began)"
                .into(),
        )
    })
}

/// The start value: the newest checkpoint before `first`, the genesis, or an anchor.
fn start(conn: &Connection, first: i64, rule2: i64) -> Result<Start, EvidenceError> {
    if let Some(c) = checkpoint::before(conn, first, rule2 - 1)? {
        return Ok(Start {
            after: c.event_id,
            chain: c.chain,
            source: "checkpoint",
        });
    }
    if rule2 == 1 {
        return Ok(Start {
            after: 0,
            chain: [0; 32],
            source: "genesis",
        });
    }
    let after = rule2 - 1;
    let value: Option<Vec<u8>> = conn
        .query_row("SELECT chain FROM events WHERE id = ?1", [after], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    let value = match value {
        Some(v) => Some(v),
        None => anchor_at(conn, after)?.map(|a| a.to_vec()),
    };
    let chain = value
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| {
            EvidenceError::Store(format!(
                "no chain value is kept for event {after}, where digest links began"
            ))
        })?;
    Ok(Start {
        after,
        chain,
        source: "anchor",
    })
}

fn anchor_at(conn: &Connection, id: i64) -> Result<Option<[u8; 32]>, EvidenceError> {
    let v: Option<Vec<u8>> = conn
        .query_row(
            "SELECT chain FROM chain_anchors WHERE event_id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.try_into().ok()))
}
