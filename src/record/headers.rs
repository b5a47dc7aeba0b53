//! Header sets: the request headers a client repeats on every request, stored once per distinct
//! combination (table `header_sets`, schema version 6) and referred to by id from each event.
//!
//! The writer keeps the sets it used lately in memory, so that an event whose headers it has
//! seen costs a hash and a comparison instead of nine text columns. The chain is unaffected:
//! it covers the values, read back through the view `events_full`.

use rusqlite::{params, Transaction};
use sha2::{Digest, Sha256};
use std::hash::BuildHasher;

/// The headers of one set, in the column order of `header_sets`.
pub type Values<'a> = [Option<&'a str>; 9];

/// Sets kept in memory at most, and their bytes at most: past either the cache starts again
/// empty (the store still has them). Whatever clients send, it stays under ~4 MiB.
const CACHE_MAX: usize = 4096;
const CACHE_MAX_BYTES: usize = 4 << 20;

/// How far behind the newest event of a set its `last_ms` may be. Retention deletes a set only
/// when `last_ms` is older than the cut-off by more than this and no older event uses it.
const LAST_MS_SLACK: i64 = 3_600_000;

struct Cached {
    id: i64,
    values: [Option<String>; 9],
    last_ms: i64,
}

/// The writer's memory of recently used sets, by a 64-bit hash of their values.
#[derive(Default)]
pub struct HeaderSets {
    by_hash: std::collections::HashMap<u64, Vec<Cached>>,
    len: usize,
    bytes: usize,
}

impl HeaderSets {
    /// The id of the set of `values`, stored if new, its `last_ms` brought within
    /// `LAST_MS_SLACK` of `ts_ms`. Runs inside the batch's transaction: if that is rolled back,
    /// call `forget` (ids and times learnt in it are gone with it).
    pub fn id_for(
        &mut self,
        tx: &Transaction,
        values: Values,
        ts_ms: i64,
    ) -> rusqlite::Result<i64> {
        let hash = foldhash::fast::FixedState::with_seed(0x6865_6164_6572_7365).hash_one(values);
        if let Some(c) = self
            .by_hash
            .get_mut(&hash)
            .and_then(|list| list.iter_mut().find(|c| same(&c.values, &values)))
        {
            if ts_ms <= c.last_ms + LAST_MS_SLACK {
                return Ok(c.id);
            }
            let updated = tx
                .prepare_cached("UPDATE header_sets SET last_ms = ?1 WHERE id = ?2")?
                .execute(params![ts_ms, c.id])?;
            if updated == 1 {
                c.last_ms = ts_ms;
                return Ok(c.id);
            }
            // Deleted meanwhile (retention): store it again below.
            self.forget();
        }
        let (id, last_ms) = tx
            .prepare_cached(
                "INSERT INTO header_sets (digest, user_agent, accept, accept_language,
                     accept_encoding, sec_fetch_site, sec_fetch_mode, sec_fetch_dest,
                     sec_fetch_user, header_order, last_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (digest) DO UPDATE SET last_ms = max(last_ms, excluded.last_ms)
                 RETURNING id, last_ms",
            )?
            .query_row(
                params![
                    &digest(&values)[..],
                    values[0],
                    values[1],
                    values[2],
                    values[3],
                    values[4],
                    values[5],
                    values[6],
                    values[7],
                    values[8],
                    ts_ms
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
        let bytes =
            std::mem::size_of::<Cached>() + values.iter().flatten().map(|v| v.len()).sum::<usize>();
        if self.len >= CACHE_MAX || self.bytes + bytes > CACHE_MAX_BYTES {
            self.forget();
        }
        self.by_hash.entry(hash).or_default().push(Cached {
            id,
            values: values.map(|v| v.map(str::to_string)),
            last_ms,
        });
        self.len += 1;
        self.bytes += bytes;
        Ok(id)
    }

    /// Drops everything remembered: after a rollback, or once retention deleted sets.
    pub fn forget(&mut self) {
        self.by_hash = Default::default();
        self.len = 0;
        self.bytes = 0;
    }
}

fn same(cached: &[Option<String>; 9], values: &Values) -> bool {
    cached.iter().zip(values).all(|(c, v)| c.as_deref() == *v)
}

/// What makes a set unique in the store: SHA-256 over its values encoded as the chain encodes
/// fields (`event::field`: absent, or present with its length), so that no two different sets
/// share a digest.
pub fn digest(values: &Values) -> [u8; 32] {
    let mut out = b"faceprobe-header-set-v1\0".to_vec();
    for v in values {
        super::event::field(&mut out, v.map(str::as_bytes));
    }
    Sha256::digest(&out).into()
}

/// Deletes up to `limit` sets no event can still use: `last_ms` older than `before` by more
/// than the slack, and no remaining event older than `before` (held ones, or those the
/// retention job has not reached yet) refers to them. Returns how many went.
pub fn expire(tx: &Transaction, before: i64, limit: usize) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM header_sets WHERE id IN (
            SELECT id FROM header_sets
            WHERE last_ms < ?1
              AND id NOT IN (SELECT header_set FROM events
                             WHERE ts_ms < ?2 AND header_set IS NOT NULL)
            LIMIT ?3)",
        params![before - LAST_MS_SLACK, before, limit as i64],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More distinct sets than the cache holds (and some large): it stays within its bounds,
    /// and a set met again, remembered or not, gets the id it was stored under.
    #[test]
    fn past_its_bounds_the_cache_starts_over_and_ids_stay_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::Store::open(dir.path()).unwrap().into_conn();
        let tx = conn.transaction().unwrap();
        let mut sets = HeaderSets::default();
        // Many small sets (past the count), then large ones (past the bytes).
        let agents: Vec<String> = (0..CACHE_MAX + 1200)
            .map(|i| {
                format!(
                    "agent/{i} {}",
                    "x".repeat(if i < CACHE_MAX + 500 { 10 } else { 8000 })
                )
            })
            .collect();
        fn values(a: &str) -> Values<'_> {
            [
                Some(a),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Some("host"),
            ]
        }
        let mut first = Vec::new();
        let mut restarts = 0;
        for a in &agents {
            let before = sets.len;
            first.push(sets.id_for(&tx, values(a), 1000).unwrap());
            assert!(sets.len <= CACHE_MAX && sets.bytes <= CACHE_MAX_BYTES);
            restarts += usize::from(sets.len <= before);
        }
        assert_eq!(restarts, 2, "once past the count, once past the bytes");
        let distinct: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(distinct.len(), agents.len());
        for (a, id) in agents.iter().zip(&first).step_by(97) {
            assert_eq!(sets.id_for(&tx, values(a), 2000).unwrap(), *id, "{a}");
        }
        let stored: i64 = tx
            .query_row("SELECT count(*) FROM header_sets", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored as usize, agents.len());
    }

    #[test]
    fn digests_tell_absent_empty_and_shifted_values_apart() {
        let mut a: Values = [None; 9];
        let mut b: Values = [None; 9];
        assert_eq!(digest(&a), digest(&b));
        b[0] = Some("");
        assert_ne!(digest(&a), digest(&b));
        a[0] = Some("ab");
        a[1] = Some("c");
        b[0] = Some("a");
        b[1] = Some("bc");
        assert_ne!(digest(&a), digest(&b));
    }
}
