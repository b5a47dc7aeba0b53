//! One committed event as the detector reads it back: only what the signals look at, with the
//! client the event's token was minted for (to see token hand-offs).

use crate::record::Kind;
use rusqlite::Connection;
use std::borrow::Cow;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub id: i64,
    pub ts_ms: i64,
    /// The raw address while the store keeps it (None once pseudonymized).
    pub ip: Option<String>,
    pub client_key: String,
    pub kind: Option<Kind>,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
    pub accept_language: bool,
    /// Any of the `Sec-Fetch-*` headers was sent.
    pub sec_fetch: bool,
    pub referer: bool,
    pub cookie: bool,
    pub header_order: String,
    pub robots_sha256: Option<[u8; 32]>,
    /// For a canary or trap fetch: the client its token was minted for, and its gallery depth.
    pub token_owner: Option<String>,
    pub token_depth: Option<u32>,
}

impl Seen {
    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Other)
    }

    /// The path with its query, as robots.txt rules see it (borrowed when there is no query:
    /// this runs for every event).
    pub fn target(&self) -> Cow<'_, str> {
        match &self.query {
            Some(q) => Cow::Owned(format!("{}?{}", self.path, q)),
            None => Cow::Borrowed(&self.path),
        }
    }
}

fn kind_of(s: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| k.as_str() == s)
}

/// A stored status as the signals see it (the store holds any integer).
pub fn status_of(stored: i64) -> u16 {
    stored.clamp(0, 999) as u16
}

/// A stored gallery depth as the signals see it.
pub fn depth_of(stored: i64) -> u32 {
    stored.clamp(0, 1 << 20) as u32
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
