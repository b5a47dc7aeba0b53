//! Reading committed events back from the store, in the form the writer's feed hands them
//! over (`record::feed::Seen`): for events from before the feed started, or that it did not
//! carry.

pub use crate::record::feed::{depth_of, status_of, Seen};
use crate::record::Kind;
use rusqlite::Connection;

fn kind_of(s: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| k.as_str() == s)
}

/// Reads up to `limit` committed events after `after_id`, in id order.
pub fn read_after(conn: &Connection, after_id: i64, limit: usize) -> rusqlite::Result<Vec<Seen>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, e.ts_ms, e.client_ip, e.client_key, e.kind, e.path, e.query, e.status,
                e.user_agent, e.accept, e.accept_language IS NOT NULL,
                (e.sec_fetch_site IS NOT NULL OR e.sec_fetch_mode IS NOT NULL
                 OR e.sec_fetch_dest IS NOT NULL),
                e.referer IS NOT NULL, e.cookie_sent, e.header_order, e.robots_sha256,
                t.client_key, t.depth
         FROM events_full e LEFT JOIN tokens t ON e.token IS NOT NULL AND t.token = e.token
         WHERE e.id > ?1 ORDER BY e.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![after_id, limit as i64], |r| {
        let kind: String = r.get(4)?;
        let robots: Option<Vec<u8>> = r.get(15)?;
        Ok(Seen {
            id: r.get(0)?,
            ts_ms: r.get(1)?,
            ip: r.get(2)?,
            client_key: r.get(3)?,
            kind: kind_of(&kind),
            path: r.get(5)?,
            query: r.get(6)?,
            status: status_of(r.get(7)?),
            user_agent: r.get(8)?,
            accept: r.get(9)?,
            accept_language: r.get(10)?,
            sec_fetch: r.get(11)?,
            referer: r.get(12)?,
            cookie: r.get(13)?,
            header_order: r.get::<_, Option<String>>(14)?.unwrap_or_default(),
            robots_sha256: robots.and_then(|b| b.try_into().ok()),
            token_owner: r.get(16)?,
            token_depth: r.get::<_, Option<i64>>(17)?.map(depth_of),
        })
    })?;
    rows.collect()
}

/// The id of the first event at or after `ts_ms` (for the first start's replay).
pub fn first_id_since(conn: &Connection, ts_ms: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT MIN(id) FROM events WHERE ts_ms >= ?1",
        [ts_ms],
        |r| r.get(0),
    )
}
