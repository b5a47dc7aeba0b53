//! The rows a person writes through the dashboard: `reviews` (who decided what about a flag,
//! when, and why), `found_images` (images found elsewhere, uploaded to match, and the case
//! each was attached to), and the reading of `cases` and `bundles` that the dashboard shows.
//! Rows are only ever added, except a found image's case and an allow-list entry undone.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

/// A person's decision on a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It is what the detector says: a case is opened.
    Confirm,
    /// It is harmless: the key goes on the allow-list.
    Dismiss,
    /// A dismissal taken back: off the allow-list again.
    Undismiss,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Confirm => "confirm",
            Decision::Dismiss => "dismiss",
            Decision::Undismiss => "undismiss",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "confirm" => Some(Decision::Confirm),
            "dismiss" => Some(Decision::Dismiss),
            "undismiss" => Some(Decision::Undismiss),
            _ => None,
        }
    }
}

/// One review as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub id: i64,
    pub key: String,
    pub ts_ms: i64,
    pub reviewer: String,
    pub decision: String,
    pub note: String,
}

pub fn add(
    conn: &Connection,
    key: &str,
    reviewer: &str,
    decision: Decision,
    note: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO reviews (key, ts_ms, reviewer, decision, note) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key, now_ms, reviewer, decision.as_str(), note],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The reviews of one key, newest first.
pub fn of(conn: &Connection, key: &str) -> Result<Vec<Review>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, key, ts_ms, reviewer, decision, note FROM reviews WHERE key = ?1
         ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([key], review)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn review(r: &rusqlite::Row) -> rusqlite::Result<Review> {
    Ok(Review {
        id: r.get(0)?,
        key: r.get(1)?,
        ts_ms: r.get(2)?,
        reviewer: r.get(3)?,
        decision: r.get(4)?,
        note: r.get(5)?,
    })
}

/// Takes a key off the allow-list; false when it was not on it.
pub fn unallow(conn: &Connection, key: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM allow_list WHERE key = ?1", [key])? > 0)
}

/// One allow-list entry: key, user agent, note, when.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowed {
    pub key: String,
    pub agent: Option<String>,
    pub note: String,
    pub dismissed_ms: i64,
}

/// The allow-list, newest first.
pub fn allow_list(conn: &Connection) -> Result<Vec<Allowed>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT key, agent, note, dismissed_ms FROM allow_list ORDER BY dismissed_ms DESC, key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Allowed {
            key: r.get(0)?,
            agent: r.get(1)?,
            note: r.get(2)?,
            dismissed_ms: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A case: who opened it, when, why.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub key: String,
    pub opened_ms: i64,
    pub opened_by: String,
    pub note: String,
}

/// Opens a case for `key` (nothing when one is open already). Returns whether it was new.
pub fn open_case(
    conn: &Connection,
    key: &str,
    by: &str,
    note: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO cases (key, opened_ms, opened_by, note) VALUES (?1, ?2, ?3, ?4)",
        params![key, now_ms, by, note],
    )? > 0)
}

pub fn case(conn: &Connection, key: &str) -> Result<Option<Case>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT key, opened_ms, opened_by, note FROM cases WHERE key = ?1",
            [key],
            case_row,
        )
        .optional()?)
}

/// Every case, newest first.
pub fn cases(conn: &Connection) -> Result<Vec<Case>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT key, opened_ms, opened_by, note FROM cases ORDER BY opened_ms DESC")?;
    let rows = stmt.query_map([], case_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn case_row(r: &rusqlite::Row) -> rusqlite::Result<Case> {
    Ok(Case {
        key: r.get(0)?,
        opened_ms: r.get(1)?,
        opened_by: r.get(2)?,
        note: r.get(3)?,
    })
}

/// A bundle built for a case.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleRow {
    pub id: i64,
    pub case_key: String,
    pub bundle: String,
    pub built_ms: i64,
    pub built_by: String,
    pub file: String,
    pub sha256: String,
    pub bytes: i64,
    pub events: i64,
}

const BUNDLE_COLUMNS: &str =
    "id, case_key, bundle, built_ms, built_by, file, sha256, bytes, events FROM bundles";

fn bundle_row(r: &rusqlite::Row) -> rusqlite::Result<BundleRow> {
    Ok(BundleRow {
        id: r.get(0)?,
        case_key: r.get(1)?,
        bundle: r.get(2)?,
        built_ms: r.get(3)?,
        built_by: r.get(4)?,
        file: r.get(5)?,
        sha256: r.get(6)?,
        bytes: r.get(7)?,
        events: r.get(8)?,
    })
}

/// The bundles of a case, newest first.
pub fn bundles(conn: &Connection, case_key: &str) -> Result<Vec<BundleRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {BUNDLE_COLUMNS} WHERE case_key = ?1 ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map([case_key], bundle_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn bundle(conn: &Connection, id: i64) -> Result<Option<BundleRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {BUNDLE_COLUMNS} WHERE id = ?1"),
            [id],
            bundle_row,
        )
        .optional()?)
}

/// An image found elsewhere, as uploaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: i64,
    pub name: String,
    pub sha256: String,
    pub image: Vec<u8>,
    pub uploaded_ms: i64,
    pub uploaded_by: String,
    pub case_key: Option<String>,
}

pub fn add_found(
    conn: &Connection,
    name: &str,
    sha256: &str,
    image: &[u8],
    by: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO found_images (name, sha256, image, uploaded_ms, uploaded_by)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, sha256, image, now_ms, by],
    )?;
    Ok(conn.last_insert_rowid())
}

const FOUND_COLUMNS: &str =
    "id, name, sha256, image, uploaded_ms, uploaded_by, case_key FROM found_images";

fn found_row(r: &rusqlite::Row) -> rusqlite::Result<Found> {
    Ok(Found {
        id: r.get(0)?,
        name: r.get(1)?,
        sha256: r.get(2)?,
        image: r.get(3)?,
        uploaded_ms: r.get(4)?,
        uploaded_by: r.get(5)?,
        case_key: r.get(6)?,
    })
}

pub fn found(conn: &Connection, id: i64) -> Result<Option<Found>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {FOUND_COLUMNS} WHERE id = ?1"),
            [id],
            found_row,
        )
        .optional()?)
}

/// The images attached to a case, in the order they were uploaded.
pub fn found_for_case(conn: &Connection, case_key: &str) -> Result<Vec<Found>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {FOUND_COLUMNS} WHERE case_key = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([case_key], found_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// An uploaded image as listed, without its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundEntry {
    pub id: i64,
    pub name: String,
    pub bytes: i64,
    pub uploaded_ms: i64,
    pub uploaded_by: String,
    pub case_key: Option<String>,
}

/// The images uploaded last, newest first, at most `limit`.
pub fn recent_found(conn: &Connection, limit: usize) -> Result<Vec<FoundEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, length(image), uploaded_ms, uploaded_by, case_key FROM found_images
         ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok(FoundEntry {
            id: r.get(0)?,
            name: r.get(1)?,
            bytes: r.get(2)?,
            uploaded_ms: r.get(3)?,
            uploaded_by: r.get(4)?,
            case_key: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Attaches an uploaded image to a case; false when there is no such image.
pub fn attach_found(conn: &Connection, id: i64, case_key: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE found_images SET case_key = ?2 WHERE id = ?1",
        params![id, case_key],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn reviews_cases_and_found_images_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let c = store.conn();
        add(c, "c:a", "Alice", Decision::Confirm, "bulk <b>", 10).unwrap();
        add(c, "c:a", "Bob", Decision::Dismiss, "", 20).unwrap();
        let r = of(c, "c:a").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].reviewer.as_str(), r[0].decision.as_str()),
            ("Bob", "dismiss")
        );
        assert_eq!(r[1].note, "bulk <b>");
        assert!(of(c, "c:b").unwrap().is_empty());

        assert!(open_case(c, "c:a", "Alice", "confirmed", 30).unwrap());
        assert!(!open_case(c, "c:a", "Bob", "again", 40).unwrap());
        assert_eq!(case(c, "c:a").unwrap().unwrap().opened_by, "Alice");
        assert_eq!(cases(c).unwrap().len(), 1);

        let id = add_found(c, "x.jpg", "ab", b"jpeg", "Alice", 50).unwrap();
        assert!(found_for_case(c, "c:a").unwrap().is_empty());
        assert!(attach_found(c, id, "c:a").unwrap());
        assert!(!attach_found(c, id + 1, "c:a").unwrap());
        let f = found_for_case(c, "c:a").unwrap();
        assert_eq!((f.len(), f[0].image.as_slice()), (1, &b"jpeg"[..]));
        let listed = recent_found(c, 10).unwrap();
        assert_eq!(
            (listed[0].bytes, listed[0].case_key.as_deref()),
            (4, Some("c:a"))
        );

        crate::store::clients::allow(c, "c:a", Some("ua"), "fine", 60).unwrap();
        assert_eq!(allow_list(c).unwrap()[0].agent.as_deref(), Some("ua"));
        assert!(unallow(c, "c:a").unwrap());
        assert!(!unallow(c, "c:a").unwrap());
        assert!(allow_list(c).unwrap().is_empty());
    }
}
