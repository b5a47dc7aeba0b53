//! Queries on tokens, hash schemes, identity assignments and the fetches of a token.
//!
//! Seeds and hashes are u64 in Rust and INTEGER (i64, same bits) in SQLite.

use super::token::Token;
use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// The perceptual hashes kept for every token (computed by `canary::hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hashes {
    /// DCT hash (pHash) of the whole frame.
    pub phash: u64,
    /// Gradient hash (dHash) of the whole frame.
    pub dhash: u64,
    /// pHash of the central region `CENTER`, for finding cropped copies.
    pub center_phash: u64,
}

impl Hashes {
    /// Summed Hamming distance of the whole-frame hashes (0..=128).
    pub fn full_distance(&self, other_phash: u64, other_dhash: u64) -> u32 {
        (self.phash ^ other_phash).count_ones() + (self.dhash ^ other_dhash).count_ones()
    }
}

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub token: Token,
    pub identity_seed: u64,
    pub variant_seed: u64,
    pub size: u32,
    pub renderer: u32,
    pub created_ms: i64,
    pub client_key: String,
    pub minted_by: String,
    pub minting_event: Option<i64>,
    /// The trap-gallery token whose page minted this one, if any.
    pub parent_token: Option<Token>,
    /// Gallery depth: 0 for a token planted in a site page.
    pub depth: u32,
}

/// What a new token row holds; the hashes may come later (hashing is off the request path).
pub struct NewToken<'a> {
    pub token: Token,
    pub identity_seed: u64,
    pub variant_seed: u64,
    pub size: u32,
    /// `render::RENDERER_VERSION` of the drawing the seeds refer to.
    pub renderer: u32,
    pub created_ms: i64,
    pub client_key: &'a str,
    pub minted_by: &'a str,
    pub minting_event: Option<i64>,
    pub hashes: Option<(i64, Hashes)>,
    /// The trap-gallery token whose page minted this one, if any.
    pub parent_token: Option<Token>,
    /// Gallery depth: 0 for a token planted in a site page.
    pub depth: u32,
}

/// One recorded fetch of a token's image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fetch {
    pub event_id: i64,
    pub ts_ms: i64,
    /// The raw address while it is kept (record.raw_ip_hours, or the client is held).
    pub client_ip: Option<String>,
    /// The keyed pseudonym that replaced the raw address after the privacy window.
    pub ip_pseudonym: Option<String>,
    pub client_key: String,
    pub kind: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
}

/// The id of a hash scheme, registering it on first use.
pub fn scheme_id(conn: &Connection, name: &str, params_json: &str) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO hash_schemes (name, params, created_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO NOTHING",
        params![name, params_json, super::now_ms()],
    )?;
    Ok(
        conn.query_row("SELECT id FROM hash_schemes WHERE name = ?1", [name], |r| {
            r.get(0)
        })?,
    )
}

/// The statement after its verb (a constant: a page view's insert formats nothing).
macro_rules! token_insert {
    () => {
        " INTO tokens (token, identity_seed, variant_seed, size, renderer, created_ms,
                      client_key, minted_by, minting_event, hash_scheme, phash, dhash,
                      center_phash, parent_token, depth)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    };
}

/// Inserts a new token; its id.
pub fn insert(conn: &Connection, t: &NewToken) -> Result<i64, StoreError> {
    write(conn, t, concat!("INSERT", token_insert!()))?;
    Ok(conn.last_insert_rowid())
}

/// Inserts a token unless it is already stored (the edge writes a token row both with the page
/// view that minted it and, in case that event was dropped, with its first fetch).
pub fn insert_if_new(conn: &Connection, t: &NewToken) -> Result<(), StoreError> {
    write(conn, t, concat!("INSERT OR IGNORE", token_insert!())).map(|_| ())
}

fn write(conn: &Connection, t: &NewToken, sql: &str) -> Result<usize, StoreError> {
    let (scheme, h) = match &t.hashes {
        Some((s, h)) => (
            Some(*s),
            Some((h.phash as i64, h.dhash as i64, h.center_phash as i64)),
        ),
        None => (None, None),
    };
    Ok(conn.prepare_cached(sql)?.execute(params![
        t.token.as_bytes(),
        t.identity_seed as i64,
        t.variant_seed as i64,
        t.size,
        t.renderer,
        t.created_ms,
        t.client_key,
        t.minted_by,
        t.minting_event,
        scheme,
        h.map(|h| h.0),
        h.map(|h| h.1),
        h.map(|h| h.2),
        t.parent_token.map(|p| p.as_bytes().to_vec()),
        t.depth,
    ])?)
}

const ROW_COLUMNS: &str = "id, token, identity_seed, variant_seed, size, created_ms, client_key,
                           minted_by, minting_event, renderer, parent_token, depth";

fn row(r: &rusqlite::Row) -> rusqlite::Result<TokenRow> {
    let bytes: Vec<u8> = r.get(1)?;
    let token = Token::from_bytes(&bytes).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, "token".into())
    })?;
    Ok(TokenRow {
        id: r.get(0)?,
        token,
        identity_seed: r.get::<_, i64>(2)? as u64,
        variant_seed: r.get::<_, i64>(3)? as u64,
        size: r.get(4)?,
        created_ms: r.get(5)?,
        client_key: r.get(6)?,
        minted_by: r.get(7)?,
        minting_event: r.get(8)?,
        renderer: r.get(9)?,
        parent_token: r
            .get::<_, Option<Vec<u8>>>(10)?
            .and_then(|p| Token::from_bytes(&p)),
        depth: r.get(11)?,
    })
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<TokenRow>, StoreError> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM tokens WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], row).optional()?)
}

pub fn by_token(conn: &Connection, token: &Token) -> Result<Option<TokenRow>, StoreError> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM tokens WHERE token = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([token.as_bytes()], row)
        .optional()?)
}

/// Calls `f(id, phash, dhash, center_phash)` for every token hashed under `scheme` and drawn
/// by `renderer`, in id order.
pub fn for_each_hash(
    conn: &Connection,
    scheme: i64,
    renderer: u32,
    mut f: impl FnMut(i64, u64, u64, u64),
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, phash, dhash, center_phash FROM tokens
         WHERE hash_scheme = ?1 AND renderer = ?2 ORDER BY id",
    )?;
    let mut rows = stmt.query(params![scheme, renderer])?;
    while let Some(r) = rows.next()? {
        f(
            r.get(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)? as u64,
            r.get::<_, i64>(3)? as u64,
        );
    }
    Ok(())
}

/// Tokens hashed under `scheme` by `renderer` (the index), and tokens hashed under another
/// scheme or renderer (only their XMP marks can be matched). Tokens never fetched from the
/// edge have no hashes and count in neither: their image never left.
pub fn counts(conn: &Connection, scheme: i64, renderer: u32) -> Result<(u64, u64), StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(hash_scheme = ?1 AND renderer = ?2), 0),
                coalesce(sum(hash_scheme IS NOT NULL AND (hash_scheme <> ?1 OR renderer <> ?2)), 0)
         FROM tokens",
        params![scheme, renderer],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// Every recorded fetch of a token, oldest first.
pub fn fetches(conn: &Connection, token: &Token) -> Result<Vec<Fetch>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, ts_ms, client_ip, client_key, method, path, status, user_agent, referer,
                ip_pseudonym, kind
         FROM events_full WHERE token = ?1 ORDER BY ts_ms, id",
    )?;
    let rows = stmt.query_map([token.as_bytes()], |r| {
        Ok(Fetch {
            event_id: r.get(0)?,
            ts_ms: r.get(1)?,
            client_ip: r.get(2)?,
            ip_pseudonym: r.get(9)?,
            client_key: r.get(3)?,
            kind: r.get(10)?,
            method: r.get(4)?,
            path: r.get(5)?,
            status: r.get(6)?,
            user_agent: r.get(7)?,
            referer: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The identity seeds already given to a client.
pub fn client_identities(conn: &Connection, client_key: &str) -> Result<Vec<u64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT identity_seed FROM client_identities WHERE client_key = ?1 ORDER BY pool_slot",
    )?;
    let rows = stmt.query_map([client_key], |r| r.get::<_, i64>(0))?;
    Ok(rows
        .map(|r| r.map(|s| s as u64))
        .collect::<Result<_, _>>()?)
}

/// The pool slots and identity seeds assigned to a client, by slot.
pub fn client_pool(conn: &Connection, client_key: &str) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT pool_slot, identity_seed FROM client_identities WHERE client_key = ?1
         ORDER BY pool_slot",
    )?;
    let rows = stmt.query_map([client_key], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn assign_identity(
    conn: &Connection,
    client_key: &str,
    seed: u64,
    slot: u64,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO client_identities (client_key, identity_seed, pool_slot, assigned_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![client_key, seed as i64, slot as i64, now_ms])?;
    Ok(())
}

/// Reads an integer from the meta table.
pub fn meta_u64(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|s| s.parse().ok()))
}

pub fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}
