//! The chain segment a bundle discloses: from a start value (a signed checkpoint before the
//! actor's first event, the chain's genesis, or a retention anchor) to a signed checkpoint at
//! or after its last event. The actor's events are read whole; every other event becomes its
//! 32-byte digest, which is all a verifier needs to recompute the links.

use super::events::Stored;
use super::files::Spool;
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
    /// Every checkpoint from the start to the end.
    pub checkpoints: Vec<Checkpoint>,
}

/// Reads the segment holding every event of `actor` (client keys) from the first rule-2 event
/// on, writing `chain.jsonl` into `chain` as it goes. When no checkpoint yet covers the
/// actor's last event, signs one (`build`) with `key`; without a key (a copy of another
/// instance's records, whose key is not here) that is an error.
pub fn read(
    conn: &mut Connection,
    actor: &HashSet<String>,
    key: Option<&SigningKey>,
    site: &str,
    chain: &mut Spool,
) -> Result<Segment, EvidenceError> {
    let rule2 = crate::record::chain::rule2_from(conn)?;
    let (first, last) = actor_span(conn, actor, rule2)?;
    let end = match (checkpoint::at_or_after(conn, last)?, key) {
        (Some(c), _) => c,
        (None, Some(key)) => checkpoint::sign_head(conn, key, site, "build")?
            .ok_or_else(|| EvidenceError::Store("no event to sign a checkpoint over".into()))?,
        (None, None) => {
            return Err(EvidenceError::NoEvents(format!(
                "no signed checkpoint covers event {last} yet: the instance signs one every \
                 evidence.checkpoint_minutes and when it stops; build again after its next one"
            )))
        }
    };
    let start = start(conn, first, rule2)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {CHAINED_COLUMNS}, chain, client_ip, ip_nonce, ip_pseudonym
         FROM events_full WHERE id > ?1 AND id <= ?2 ORDER BY id"
    ))?;
    let mut rows = stmt.query([start.after, end.event_id])?;
    // Two threads: this one reads the rows (a statement stays on the thread that made it),
    // the other hashes and links them and writes chain.jsonl, a batch at a time.
    start_line(chain, &start)?;
    let (send, receive) = std::sync::mpsc::sync_channel::<Read>(8);
    let lines = &mut *chain;
    let (read, linked) = std::thread::scope(|s| {
        let linking = s.spawn(move || link(receive, start.chain, actor, lines));
        let read = (|| -> Result<(Start, i64), EvidenceError> {
            let mut current = start.clone();
            let mut expected = start.after + 1;
            let mut actor_seen = false;
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(row) = rows.next()? {
                let event = Chained::from_row(row)?;
                let id = event.id;
                if id != expected {
                    // Events before the actor's first may have been deleted by retention:
                    // start again from the anchor retention left for the gap.
                    match anchor_at(conn, id - 1)? {
                        Some(a) if !actor_seen => {
                            current = Start {
                                after: id - 1,
                                chain: a,
                                source: "anchor",
                            };
                            let before = std::mem::take(&mut batch);
                            if send.send(Read::Rows(before)).is_err()
                                || send.send(Read::Restart(current.clone())).is_err()
                            {
                                break; // the linking thread stopped: its error says why
                            }
                        }
                        _ => {
                            return Err(EvidenceError::Store(format!(
                                "events {expected} to {} are missing from the store (deleted \
                                 by retention?): the chain segment from {} to {} cannot be \
                                 disclosed",
                                id - 1,
                                start.after,
                                end.event_id
                            )))
                        }
                    }
                }
                let stored: Option<Vec<u8>> = row.get(25)?;
                let opening = if actor.contains(&event.client_key) {
                    actor_seen = true;
                    Some(Opening {
                        client_ip: row.get(26)?,
                        ip_nonce: row.get(27)?,
                        ip_pseudonym: row.get(28)?,
                    })
                } else {
                    None
                };
                batch.push(Row {
                    event,
                    stored,
                    opening,
                });
                if batch.len() >= BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if send.send(Read::Rows(full)).is_err() {
                        break; // the linking thread stopped: its error says why
                    }
                }
                expected = id + 1;
            }
            let _ = send.send(Read::Rows(batch));
            Ok((current, expected))
        })();
        drop(send);
        let linked = linking
            .join()
            .unwrap_or_else(|_| Err(EvidenceError::Store("the chain linking failed".into())));
        (read, linked)
    });
    let linked = linked?;
    let (start, expected) = read?;
    if expected != end.event_id + 1 || linked.prev != end.chain {
        return Err(EvidenceError::Store(format!(
            "the chain up to checkpoint {} (event {}) does not verify; run `faceprobe db check`",
            end.seq, end.event_id
        )));
    }
    writeln!(
        chain,
        "{}",
        serde_json::json!({"type": "end", "id": end.event_id, "chain": hex::encode(end.chain)})
    )?;
    Ok(Segment {
        checkpoints: checkpoint::between(conn, start.after, end.event_id)?,
        start,
        end,
        actor_events: linked.events.len(),
        events: linked.events,
        others: linked.others,
    })
}

/// Rows passed from the reading thread to the linking one at a time.
const BATCH: usize = 1024;

/// What the reading thread passes on, in order.
enum Read {
    Rows(Vec<Row>),
    /// Retention left a gap before the actor's first event: start again from its anchor.
    Restart(Start),
}

struct Row {
    event: Chained,
    /// The chain value stored with it.
    stored: Option<Vec<u8>>,
    /// The actor's events only: what opens the address commitment.
    opening: Option<Opening>,
}

struct Opening {
    client_ip: Option<String>,
    ip_nonce: Option<Vec<u8>>,
    ip_pseudonym: Option<String>,
}

struct Linked {
    events: Vec<Stored>,
    others: u64,
    prev: [u8; 32],
}

/// Recomputes each link from the previous value and the event's digest, checks it against
/// the stored value, and writes the event's line of chain.jsonl.
fn link(
    receive: std::sync::mpsc::Receiver<Read>,
    start: [u8; 32],
    actor: &HashSet<String>,
    chain: &mut Spool,
) -> Result<Linked, EvidenceError> {
    let mut out = Linked {
        events: Vec::new(),
        others: 0,
        prev: start,
    };
    for message in receive {
        let batch = match message {
            Read::Restart(s) => {
                chain.restart()?;
                start_line(chain, &s)?;
                out.others = 0;
                out.prev = s.chain;
                continue;
            }
            Read::Rows(batch) => batch,
        };
        for Row {
            event,
            stored,
            opening,
        } in batch
        {
            let id = event.id;
            let d = digest(&event);
            let value = chain_link(&out.prev, &d);
            if stored.as_deref() != Some(&value[..]) {
                return Err(EvidenceError::Store(format!(
                    "the stored chain does not verify at event {id}; run `faceprobe db check`"
                )));
            }
            match opening {
                Some(o) if actor.contains(&event.client_key) => {
                    writeln!(chain, "{{\"type\":\"event\",\"id\":{id}}}")?;
                    out.events.push(Stored {
                        event,
                        chain: value,
                        client_ip: o.client_ip,
                        ip_nonce: o.ip_nonce,
                        ip_pseudonym: o.ip_pseudonym,
                    });
                }
                _ => {
                    writeln!(
                        chain,
                        "{{\"type\":\"digest\",\"id\":{id},\"digest\":\"{}\"}}",
                        hex::encode(d)
                    )?;
                    out.others += 1;
                }
            }
            out.prev = value;
        }
    }
    Ok(out)
}

/// The first line of `chain.jsonl`: where the segment starts.
fn start_line(chain: &mut Spool, start: &Start) -> Result<(), EvidenceError> {
    writeln!(
        chain,
        "{}",
        serde_json::json!({
            "type": "start",
            "after": start.after,
            "chain": hex::encode(start.chain),
            "source": start.source,
        })
    )?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RecordConfig;
    use crate::metrics::Metrics;
    use crate::record::Event;
    use crate::store::{now_ms, Store};
    use std::path::Path;
    use std::sync::Arc;

    const DAY: i64 = 86_400_000;

    /// A store of `old` visitor events from 200 days ago, then, now, visitor and actor
    /// events alternating (`recent` of each); retention then deletes the old ones.
    fn store_after_retention(old: i64, recent: i64) -> (tempfile::TempDir, RecordConfig) {
        let dir = tempfile::tempdir().unwrap();
        let config = RecordConfig::default();
        let (rec, writer) =
            crate::record::start(dir.path(), &config, [3; 32], Arc::new(Metrics::default()))
                .unwrap();
        let now = now_ms();
        let event = |ts_ms: i64, who: &str| Event {
            ts_ms,
            ip: Some(std::net::IpAddr::from([192, 0, 2, 9])),
            client_key: who.into(),
            method: "GET".into(),
            path: "/".into(),
            status: 200,
            ..Event::default()
        };
        for i in 0..old {
            rec.record_blocking(event(now - 200 * DAY + i, "c:visitor"))
                .unwrap();
        }
        for i in 0..recent {
            rec.record_blocking(event(now - 1000 + 2 * i, "c:visitor"))
                .unwrap();
            rec.record_blocking(event(now - 999 + 2 * i, "c:actor"))
                .unwrap();
        }
        rec.flush_blocking().unwrap();
        drop(rec);
        writer.join();
        let mut store = Store::open(dir.path()).unwrap();
        let done = crate::record::privacy::run(store.conn_mut(), &[3; 32], &config, now).unwrap();
        assert_eq!(done.expired, old as u64, "retention deleted the old events");
        (dir, config)
    }

    fn read_segment(dir: &Path) -> (Result<Segment, EvidenceError>, String) {
        let mut store = Store::open(dir).unwrap();
        let key = SigningKey::load_or_create(dir, None).unwrap();
        let out = dir.join("case.zip");
        let scratch = super::super::files::Scratch::beside(&out).unwrap();
        let mut chain = scratch.spool("chain.jsonl").unwrap();
        let actor: HashSet<String> = ["c:actor".to_string()].into();
        let seg = read(
            store.conn_mut(),
            &actor,
            Some(&key),
            "https://site",
            &mut chain,
        );
        let entry = chain.finish().unwrap();
        let super::super::files::Body::Spooled(path) = &entry.body else {
            panic!("spooled")
        };
        (seg, std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn a_segment_after_a_retention_gap_starts_at_the_anchor_and_links_every_event() {
        let (dir, _) = store_after_retention(5, 2000);
        let (seg, text) = read_segment(dir.path());
        let seg = seg.unwrap();
        assert_eq!(
            (seg.start.source, seg.start.after),
            ("anchor", 5),
            "the start is the anchor retention left for event 5"
        );
        assert_eq!((seg.actor_events, seg.events.len()), (2000, 2000));
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["type"], "start");
        assert_eq!(lines[0]["after"], 5);
        assert_eq!(lines[0]["source"], "anchor");
        assert_eq!(lines[0]["chain"], hex::encode(seg.start.chain));
        // One line per event from 6 to the end (across several batches), then the end.
        let ids: Vec<i64> = lines[1..lines.len() - 1]
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, (6..=seg.end.event_id).collect::<Vec<_>>());
        assert_eq!(lines.last().unwrap()["type"], "end");
        // Every other event of the segment is the visitor's, as a digest.
        assert_eq!(seg.others as usize, ids.len() - 2000);
        assert!(
            seg.events.windows(2).all(|w| w[0].event.id < w[1].event.id),
            "the actor's events are in id order"
        );
        // Every actor event's chain value is the one stored.
        let store = Store::open(dir.path()).unwrap();
        for e in [&seg.events[0], &seg.events[1999]] {
            let stored: Vec<u8> = store
                .conn()
                .query_row(
                    "SELECT chain FROM events WHERE id = ?1",
                    [e.event.id],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(stored, e.chain.to_vec());
        }
    }

    #[test]
    fn a_gap_after_the_actors_first_event_is_refused_with_the_missing_ids() {
        let (dir, _) = store_after_retention(0, 1500);
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .conn()
                .execute("DELETE FROM events WHERE id BETWEEN 1200 AND 1203", [])
                .unwrap();
        }
        let (seg, _) = read_segment(dir.path());
        let Err(e) = seg else {
            panic!("a segment with a hole was disclosed")
        };
        assert!(
            e.to_string().contains("events 1200 to 1203 are missing"),
            "{e}"
        );
    }
}
