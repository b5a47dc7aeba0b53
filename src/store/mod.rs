//! The SQLite store: opening, migrating and the queries every other module uses.
//!
//! One file `faceprobe.db` in the data directory, in WAL mode so readers never wait on the
//! writer. The schema version lives in `PRAGMA user_version`; `schema` applies what is missing.
//! Nothing here knows about HTTP or images: it stores rows and hands them back.

pub mod clients;
pub mod reviews;
mod schema;
pub mod secret;
pub mod signing;
pub mod token;
pub mod tokens;

use rusqlite::Connection;
use std::path::{Path, PathBuf};

pub use schema::SCHEMA_VERSION;
pub use token::Token;

/// Why the store could not be used; each message names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source} (set store.data_dir to a writable directory)")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this faceprobe ({supported}); upgrade faceprobe")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("deployment secret {path}: {message}")]
    Secret { path: PathBuf, message: String },
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot encode {what}: {message}")]
    Encode { what: &'static str, message: String },
    #[error("backup into {path}: {message}")]
    Backup { path: PathBuf, message: String },
    #[error(
        "database {path} {why}. faceprobe leaves it as it is: restore it from a backup \
         (`faceprobe db backup` makes them; see docs/deploy.md), or move it away to start a \
         new, empty store"
    )]
    Damaged { path: PathBuf, why: String },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// An open store: the data directory and one connection to its database.
pub struct Store {
    dir: PathBuf,
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("faceprobe.db");
        let open_err = |source| open_error(&path, source);
        let mut conn = Connection::open(&path).map_err(open_err)?;
        // Until the file is known to be sound, closing must not write to it (SQLite copies the
        // write-ahead log into the database when its last connection closes).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(open_err)?;
        // A damaged file is found by reading its header, before anything is written to it.
        read_header(&conn).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        schema::migrate(&mut conn, &path).map_err(|e| match e {
            StoreError::Sql(source) => open_err(source),
            e => e,
        })?;
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            false,
        )
        .map_err(open_err)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            conn,
        })
    }

    /// The data directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The underlying connection, for modules that own their own queries.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Gives up the store for its connection (the recorder's writer owns one).
    pub fn into_conn(self) -> Connection {
        self.conn
    }

    /// Mutable access, for transactions.
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Opens a copy of a database (a backup) to read it, never changing it: not migrated, so
    /// it must be of this faceprobe's schema. `dir()` is the folder holding it.
    pub fn open_copy(file: &Path) -> Result<Store, StoreError> {
        let open_err = |source| open_error(file, source);
        let conn = Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(open_err)?;
        read_header(&conn).map_err(open_err)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::Backup {
                path: file.to_path_buf(),
                message: format!(
                    "schema version {found}, this faceprobe reads {SCHEMA_VERSION}: restore it \
                     into a data directory (faceprobe upgrades it when it opens it) and check \
                     that"
                ),
            });
        }
        Ok(Store {
            dir: file.parent().unwrap_or(Path::new(".")).to_path_buf(),
            conn,
        })
    }

    /// Copies the database into `dest` (which must not exist) while others go on writing:
    /// SQLite's online backup, every page in one step, inside one read transaction, so the
    /// copy is the database as it was at one moment. The copy is written beside `dest`, made
    /// a single file (no write-ahead log), synced, then renamed into place. Returns its pages.
    pub fn backup(&self, dest: &Path) -> Result<u64, StoreError> {
        let fail = |message: String| StoreError::Backup {
            path: dest.to_path_buf(),
            message,
        };
        if dest.exists() {
            return Err(fail("it exists already; give a new file name".into()));
        }
        let part = dest.with_extension("partial");
        let _ = std::fs::remove_file(&part);
        let copied = (|| -> Result<u64, StoreError> {
            let mut out = Connection::open(&part)?;
            {
                let backup = rusqlite::backup::Backup::new(&self.conn, &mut out)?;
                loop {
                    match backup.step(-1)? {
                        rusqlite::backup::StepResult::Done => break,
                        rusqlite::backup::StepResult::More => {}
                        // The writer holds a lock for a moment: try again.
                        _ => std::thread::sleep(std::time::Duration::from_millis(20)),
                    }
                }
            }
            out.pragma_update(None, "journal_mode", "DELETE")?;
            let pages: i64 = out.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            drop(out);
            std::fs::File::open(&part)
                .and_then(|f| f.sync_all())
                .map_err(|e| fail(e.to_string()))?;
            Ok(pages as u64)
        })();
        match copied {
            Ok(pages) => {
                std::fs::rename(&part, dest).map_err(|e| fail(e.to_string()))?;
                Ok(pages)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    /// Copies the write-ahead log into the database and empties it, so that the database file
    /// alone holds everything (at the end of `serve`: a copy of the stopped data directory's
    /// `faceprobe.db` is then whole).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// `PRAGMA integrity_check`; returns the problems it reports (empty when sound).
    pub fn integrity_problems(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }
}

/// Reads the database header and the schema's first page through SQLite, writing nothing:
/// a file that is not SQLite's fails with "not a database", one shorter than its header says
/// with "malformed" (SQLite compares the two). Never through a file handle of our own: closing
/// one would drop the locks SQLite's other connections in this process hold on the file
/// (POSIX locks belong to the process), and let a writer and a checkpoint overlap.
fn read_header(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
}

/// An error opening the database at `path`: `Damaged` when SQLite says the file is.
fn open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    match damage(&source) {
        Some(why) => StoreError::Damaged {
            path: path.to_path_buf(),
            why,
        },
        None => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Why an SQLite error means the file is damaged, if it does.
fn damage(e: &rusqlite::Error) -> Option<String> {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => Some("is not a database".into()),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            Some("is damaged (SQLite: database disk image is malformed)".into())
        }
        _ => None,
    }
}

/// Milliseconds since the Unix epoch, the time unit of every stored row.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_schema_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let v: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(store.integrity_problems().unwrap().is_empty());
    }

    #[test]
    fn a_backup_is_a_whole_single_file_that_opens_as_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .conn()
            .execute("INSERT INTO meta (key, value) VALUES ('k', 'v')", [])
            .unwrap();
        let dest = dir.path().join("copy.db");
        assert!(store.backup(&dest).unwrap() > 0);
        assert!(
            !dir.path().join("copy.db-wal").exists(),
            "one file, no log beside it"
        );
        let copy = Store::open_copy(&dest).unwrap();
        let v: String = copy
            .conn()
            .query_row("SELECT value FROM meta WHERE key = 'k'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, "v");
        assert!(copy.integrity_problems().unwrap().is_empty());
        let again = store.backup(&dest).unwrap_err().to_string();
        assert!(again.contains("exists already"), "{again}");
        assert!(!dir.path().join("copy.partial").exists());
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("faceprobe.db")).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("upgrade faceprobe"), "{err}");
    }
}
