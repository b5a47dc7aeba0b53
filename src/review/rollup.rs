//! Requests per minute and kind over the last week, kept in memory for the overview: counting
//! a week of events at every view would read the whole events table. It is filled once from
//! the store (in steps, so the overview shows what is counted so far) and then follows the
//! events table by id; minutes older than a week are dropped. About 300 KB whatever the traffic.

use crate::metrics::REQUEST_KINDS;
use rusqlite::Connection;
use std::collections::BTreeMap;

pub const KINDS: usize = REQUEST_KINDS.len();
pub const MINUTE: i64 = 60_000;
pub const WEEK: i64 = 7 * 24 * 60 * MINUTE;
/// Events read per step: each step holds no lock on the counts while it reads.
const STEP: i64 = 100_000;

#[derive(Debug, Default)]
pub struct Rollup {
    /// Counts by minute (ms / 60,000), then by kind in the order of `REQUEST_KINDS`.
    minutes: BTreeMap<i64, [u32; KINDS]>,
    /// The last event id counted.
    last_id: i64,
    /// Whether the first fill reached the newest event.
    pub caught_up: bool,
    started: bool,
}

/// The events read in one step: (minute, kind index) per event, and the last id read.
pub struct Step {
    counts: Vec<(i64, usize)>,
    last_id: i64,
    /// It reached the newest event.
    pub done: bool,
}

/// Where the next step starts: after the last id counted, or at the first event of the week.
pub fn start_after(rollup: &Rollup, conn: &Connection, now_ms: i64) -> rusqlite::Result<i64> {
    if rollup.started {
        return Ok(rollup.last_id);
    }
    // Through the time index; ids follow time closely enough for a count per minute.
    let first: Option<i64> = conn
        .query_row(
            "SELECT id FROM events WHERE ts_ms >= ?1 ORDER BY ts_ms LIMIT 1",
            [now_ms - WEEK],
            |r| r.get(0),
        )
        .ok();
    Ok(match first {
        Some(id) => id - 1,
        None => conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))?,
    })
}

/// Reads the next events after `after` (outside any lock).
pub fn read(conn: &Connection, after: i64) -> rusqlite::Result<Step> {
    let mut stmt = conn
        .prepare_cached("SELECT id, ts_ms, kind FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let mut rows = stmt.query([after, STEP])?;
    let mut counts = Vec::new();
    let mut last_id = after;
    while let Some(r) = rows.next()? {
        last_id = r.get(0)?;
        let ts: i64 = r.get(1)?;
        let kind = r.get_ref(2)?.as_str().unwrap_or("other");
        let k = REQUEST_KINDS
            .iter()
            .position(|n| *n == kind)
            .unwrap_or(KINDS - 1);
        counts.push((ts.div_euclid(MINUTE), k));
    }
    let done = (counts.len() as i64) < STEP;
    Ok(Step {
        counts,
        last_id,
        done,
    })
}

impl Rollup {
    /// Adds a step's counts and drops the minutes older than a week.
    pub fn apply(&mut self, step: Step, now_ms: i64) {
        let oldest = (now_ms - WEEK).div_euclid(MINUTE);
        for (minute, k) in step.counts {
            if minute >= oldest {
                self.minutes.entry(minute).or_default()[k] += 1;
            }
        }
        self.last_id = step.last_id;
        self.started = true;
        self.caught_up |= step.done;
        self.minutes = self.minutes.split_off(&oldest);
    }

    /// Counts per kind in `n` buckets of `bucket_ms` ending at `end_ms` (exclusive).
    pub fn buckets(&self, end_ms: i64, bucket_ms: i64, n: usize) -> Vec<[u64; KINDS]> {
        let start = end_ms - bucket_ms * n as i64;
        let mut out = vec![[0u64; KINDS]; n];
        for (&minute, counts) in self.minutes.range(start.div_euclid(MINUTE)..) {
            let i = (minute * MINUTE - start).div_euclid(bucket_ms);
            if let Some(b) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                for (t, c) in b.iter_mut().zip(counts) {
                    *t += u64::from(*c);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_by_minute_and_kind_and_a_week_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let c = store.conn();
        let now = 1_800_000_000_000i64;
        let insert = |id: i64, ts: i64, kind: &str| {
            c.execute(
                "INSERT INTO events (id, ts_ms, client_key, method, path, status, bytes,
                 duration_us, cookie_sent, kind) VALUES (?1, ?2, 'c:x', 'GET', '/', 200, 0, 0, 0, ?3)",
                rusqlite::params![id, ts, kind],
            )
            .unwrap();
        };
        insert(1, now - WEEK - 10 * MINUTE, "page");
        insert(2, now - 90 * MINUTE, "page");
        insert(3, now - 90 * MINUTE + 1, "canary");
        insert(4, now - 30 * MINUTE, "image");
        insert(5, now - 1000, "trap");
        let mut r = Rollup::default();
        let after = start_after(&r, c, now).unwrap();
        assert_eq!(
            after, 1,
            "the week starts after the event older than a week"
        );
        r.apply(read(c, after).unwrap(), now);
        assert!(r.caught_up);
        // Two buckets of an hour: the first holds nothing from 2 h ago, the last 30 min and now.
        let b = r.buckets(now, 60 * MINUTE, 2);
        let kind = |k: &str| REQUEST_KINDS.iter().position(|n| *n == k).unwrap();
        assert_eq!(b[0][kind("page")], 1);
        assert_eq!(b[0][kind("canary")], 1);
        assert_eq!(b[1][kind("image")], 1);
        assert_eq!(b[1][kind("trap")], 1);
        // Later events are read after the last one counted.
        insert(6, now + 10, "canary");
        r.apply(read(c, start_after(&r, c, now).unwrap()).unwrap(), now);
        assert_eq!(r.buckets(now + MINUTE, MINUTE, 1)[0][kind("canary")], 1);
    }
}
