//! The dashboard's connections to the store: a few kept open between requests (opening one
//! checks the schema), each used by one request at a time on the blocking pool. Readers never
//! wait on the recorder's writer (WAL).

use super::web::Fail;
use crate::store::Store;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use std::path::PathBuf;
use std::sync::Mutex;

/// Connections kept open at most; more requests at once open more and close them after.
const IDLE: usize = 4;
/// The database is read through a memory map: a page of a client reads its span of events
/// whole, and through `read(2)` each page would be copied from the kernel's cache again (a
/// third of the time of a large client's page). Address space, not memory: the kernel's
/// page cache holds the pages either way.
const MMAP_BYTES: i64 = 1 << 30;

pub struct Db {
    dir: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Db {
    pub fn new(dir: PathBuf) -> Db {
        Db {
            dir,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn take(&self) -> Result<Connection, Fail> {
        let kept = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match kept {
            Some(c) => Ok(c),
            None => {
                let conn = Store::open(&self.dir)?.into_conn();
                conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
                Ok(conn)
            }
        }
    }

    pub fn give(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // A connection left inside a transaction (a handler failed half-way) is not reused.
        if idle.len() < IDLE && conn.is_autocommit() {
            idle.push(conn);
        }
    }
}

/// A text column a client controls (agent, path, query, referer...), whatever bytes it
/// holds: invalid UTF-8 is shown with replacement characters rather than failing the page.
pub fn text(row: &Row, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
    })
}
