//! Schema migrations, numbered by `PRAGMA user_version`.
//!
//! Each migration runs once, in its own transaction, and is never edited after it ships:
//! a change is a new migration. Tables are append-mostly and keyed so that a central engine
//! can ingest them later.

use super::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 11;

const MIGRATIONS: &[&str] = &[
    // 1: tokens, their hashes and identities; request events (filled by the edge).
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE hash_schemes (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        params     TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE client_identities (
        client_key    TEXT NOT NULL,
        identity_seed INTEGER NOT NULL,
        pool_slot     INTEGER NOT NULL,
        assigned_ms   INTEGER NOT NULL,
        PRIMARY KEY (client_key, identity_seed)
    );
    CREATE INDEX client_identities_seed ON client_identities (identity_seed);
    CREATE TABLE tokens (
        id            INTEGER PRIMARY KEY,
        token         BLOB NOT NULL UNIQUE CHECK (length(token) = 16),
        identity_seed INTEGER NOT NULL,
        variant_seed  INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        renderer      INTEGER NOT NULL,
        created_ms    INTEGER NOT NULL,
        client_key    TEXT NOT NULL,
        minted_by     TEXT NOT NULL,
        minting_event INTEGER,
        hash_scheme   INTEGER REFERENCES hash_schemes (id),
        phash         INTEGER,
        dhash         INTEGER,
        center_phash  INTEGER
    );
    CREATE INDEX tokens_identity ON tokens (identity_seed);
    CREATE TABLE events (
        id              INTEGER PRIMARY KEY,
        ts_ms           INTEGER NOT NULL,
        client_ip       TEXT,
        client_key      TEXT NOT NULL,
        method          TEXT NOT NULL,
        host            TEXT,
        path            TEXT NOT NULL,
        query           TEXT,
        status          INTEGER NOT NULL,
        bytes           INTEGER NOT NULL,
        duration_us     INTEGER NOT NULL,
        user_agent      TEXT,
        referer         TEXT,
        accept          TEXT,
        accept_language TEXT,
        accept_encoding TEXT,
        sec_fetch_site  TEXT,
        sec_fetch_mode  TEXT,
        sec_fetch_dest  TEXT,
        sec_fetch_user  TEXT,
        cookie_sent     INTEGER NOT NULL,
        header_order    TEXT,
        kind            TEXT NOT NULL,
        token           BLOB
    );
    CREATE INDEX events_token ON events (token) WHERE token IS NOT NULL;
    CREATE INDEX events_client ON events (client_key, ts_ms);
    "#,
    // 2: the recorder: hash chain with IP commitments, pseudonyms, robots.txt versions,
    // retention anchors, holds that keep a client's raw addresses, gallery depth of tokens.
    r#"
    ALTER TABLE events ADD COLUMN ip_nonce BLOB;
    ALTER TABLE events ADD COLUMN ip_commit BLOB;
    ALTER TABLE events ADD COLUMN ip_pseudonym TEXT;
    ALTER TABLE events ADD COLUMN robots_sha256 BLOB;
    ALTER TABLE events ADD COLUMN chain BLOB;
    CREATE INDEX events_ts ON events (ts_ms);
    -- A full (client_key, ts_ms) index costs a third of the writer's throughput (random
    -- inserts); per-client lookups need it only for the evidence kinds. Other events of a
    -- client are found by time range (ids follow time).
    DROP INDEX events_client;
    CREATE INDEX events_client_evidence ON events (client_key, ts_ms)
        WHERE kind IN ('canary', 'trap', 'robots');
    ALTER TABLE tokens ADD COLUMN parent_token BLOB;
    ALTER TABLE tokens ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE robots (
        sha256          BLOB PRIMARY KEY CHECK (length(sha256) = 32),
        body            BLOB NOT NULL,
        source          TEXT NOT NULL,
        first_served_ms INTEGER NOT NULL
    );
    CREATE TABLE chain_anchors (
        event_id   INTEGER PRIMARY KEY,
        chain      BLOB NOT NULL CHECK (length(chain) = 32),
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE holds (
        client_key TEXT PRIMARY KEY,
        reason     TEXT NOT NULL,
        since_ms   INTEGER NOT NULL
    );
    "#,
    // 3: detection: what the detector knows of each client and cluster it noticed (its state
    // as JSON, read back after a restart), the history of every flag change, the allow-list.
    r#"
    CREATE TABLE clients (
        key        TEXT PRIMARY KEY,
        kind       TEXT NOT NULL CHECK (kind IN ('client', 'cluster')),
        level      TEXT,
        score      REAL NOT NULL,
        first_ms   INTEGER NOT NULL,
        last_ms    INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        state      TEXT NOT NULL
    );
    CREATE INDEX clients_last ON clients (last_ms);
    CREATE INDEX clients_flagged ON clients (level) WHERE level IS NOT NULL;
    CREATE TABLE flag_history (
        id       INTEGER PRIMARY KEY,
        key      TEXT NOT NULL,
        ts_ms    INTEGER NOT NULL,
        level    TEXT,
        score    REAL NOT NULL,
        at_event INTEGER,
        requests INTEGER,
        note     TEXT NOT NULL,
        reasons  TEXT
    );
    CREATE INDEX flag_history_key ON flag_history (key, id);
    CREATE TABLE allow_list (
        key          TEXT PRIMARY KEY,
        agent        TEXT,
        note         TEXT NOT NULL,
        dismissed_ms INTEGER NOT NULL
    );
    "#,
    // 4: indexes cheaper to keep up on every request. The evidence index of version 2, same
    // rows, has its condition spelled as ORs: SQLite codes an `IN` list of three or more
    // constants with a temporary b-tree, and a partial index's condition is evaluated on every
    // insert, so each event written built (and threw away) one, about a third of the writer's
    // work per event (callgrind). A query reaches it through `kind = 'canary'` (or trap,
    // robots) or the same OR expression. The tokens' identity index goes: no query reads it,
    // and each page view's token was inserted into it at a scattered place.
    r#"
    DROP INDEX tokens_identity;
    DROP INDEX events_client_evidence;
    CREATE INDEX events_client_evidence ON events (client_key, ts_ms)
        WHERE kind = 'canary' OR kind = 'trap' OR kind = 'robots';
    "#,
    // 5: tokens carry their mint time before their 128 random bits (22 bytes), so that the
    // token index grows at its end; tokens of 16 bytes (random bits alone) stay valid. A
    // CHECK cannot be altered in SQLite: the table is rebuilt, rows and ids unchanged.
    r#"
    CREATE TABLE tokens_v5 (
        id            INTEGER PRIMARY KEY,
        token         BLOB NOT NULL UNIQUE
                      CHECK (length(token) = 22 OR length(token) = 16),
        identity_seed INTEGER NOT NULL,
        variant_seed  INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        renderer      INTEGER NOT NULL,
        created_ms    INTEGER NOT NULL,
        client_key    TEXT NOT NULL,
        minted_by     TEXT NOT NULL,
        minting_event INTEGER,
        hash_scheme   INTEGER REFERENCES hash_schemes (id),
        phash         INTEGER,
        dhash         INTEGER,
        center_phash  INTEGER,
        parent_token  BLOB,
        depth         INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO tokens_v5 (id, token, identity_seed, variant_seed, size, renderer, created_ms,
        client_key, minted_by, minting_event, hash_scheme, phash, dhash, center_phash,
        parent_token, depth)
    SELECT id, token, identity_seed, variant_seed, size, renderer, created_ms,
        client_key, minted_by, minting_event, hash_scheme, phash, dhash, center_phash,
        parent_token, depth
    FROM tokens;
    DROP TABLE tokens;
    ALTER TABLE tokens_v5 RENAME TO tokens;
    "#,
    // 6: the headers a client repeats on every request (user agent, accept*, sec-fetch-*,
    // header order) are stored once per distinct combination, in `header_sets`, and an event
    // refers to its set: about two thirds of an event's bytes and of the writer's work went
    // to these values. Events written before keep theirs inline (header_set NULL); the view
    // `events_full` shows every event with its values, whichever way they are stored, and is
    // what readers of those columns (the chain check, the detector, evidence) select from.
    // `last_ms` (kept within an hour of the newest event of the set) lets retention delete
    // the sets of deleted events without scanning the events.
    r#"
    CREATE TABLE header_sets (
        id              INTEGER PRIMARY KEY,
        digest          BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
        user_agent      TEXT,
        accept          TEXT,
        accept_language TEXT,
        accept_encoding TEXT,
        sec_fetch_site  TEXT,
        sec_fetch_mode  TEXT,
        sec_fetch_dest  TEXT,
        sec_fetch_user  TEXT,
        header_order    TEXT,
        last_ms         INTEGER NOT NULL
    );
    CREATE INDEX header_sets_last ON header_sets (last_ms);
    ALTER TABLE events ADD COLUMN header_set INTEGER;
    CREATE VIEW events_full AS
    SELECT e.id, e.ts_ms, e.client_ip, e.client_key, e.method, e.host, e.path, e.query,
        e.status, e.bytes, e.duration_us,
        CASE WHEN e.header_set IS NULL THEN e.user_agent ELSE h.user_agent END AS user_agent,
        e.referer,
        CASE WHEN e.header_set IS NULL THEN e.accept ELSE h.accept END AS accept,
        CASE WHEN e.header_set IS NULL THEN e.accept_language ELSE h.accept_language END
            AS accept_language,
        CASE WHEN e.header_set IS NULL THEN e.accept_encoding ELSE h.accept_encoding END
            AS accept_encoding,
        CASE WHEN e.header_set IS NULL THEN e.sec_fetch_site ELSE h.sec_fetch_site END
            AS sec_fetch_site,
        CASE WHEN e.header_set IS NULL THEN e.sec_fetch_mode ELSE h.sec_fetch_mode END
            AS sec_fetch_mode,
        CASE WHEN e.header_set IS NULL THEN e.sec_fetch_dest ELSE h.sec_fetch_dest END
            AS sec_fetch_dest,
        CASE WHEN e.header_set IS NULL THEN e.sec_fetch_user ELSE h.sec_fetch_user END
            AS sec_fetch_user,
        e.cookie_sent,
        CASE WHEN e.header_set IS NULL THEN e.header_order ELSE h.header_order END
            AS header_order,
        e.kind, e.token, e.ip_nonce, e.ip_commit, e.ip_pseudonym, e.robots_sha256, e.chain,
        e.header_set, h.id AS header_set_found
    FROM events e LEFT JOIN header_sets h ON h.id = e.header_set;
    "#,
    // 7: the privacy job finds the edge's tokens past retention through an index: it read the
    // whole tokens table (one row per page view) every run, holding the writer for as long.
    // Tokens are minted in time order, so each insert lands at the index's end.
    r#"
    CREATE INDEX tokens_edge_created ON tokens (created_ms) WHERE minted_by = 'edge';
    "#,
    // 8: evidence. The chain links each event's digest (SHA-256 of its encoding) from the
    // first event written after this migration on (`chain_rule2_from`), so a bundle can carry
    // other visitors' events as digests alone; earlier events keep rule 1. Checkpoints are the
    // chain heads the server signed as it ran; a case keeps a client's records past retention
    // (with its hold); bundles are the evidence archives built, who built them and their hash.
    r#"
    INSERT OR REPLACE INTO meta (key, value)
    SELECT 'chain_rule2_from', CAST(max(
        coalesce((SELECT max(id) FROM events), 0),
        coalesce((SELECT max(event_id) FROM chain_anchors), 0)) + 1 AS TEXT);
    CREATE TABLE checkpoints (
        seq             INTEGER PRIMARY KEY,
        ts_ms           INTEGER NOT NULL,
        event_id        INTEGER NOT NULL,
        chain           BLOB NOT NULL CHECK (length(chain) = 32),
        events          INTEGER NOT NULL,
        message         TEXT NOT NULL,
        signature       TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        made_by         TEXT NOT NULL,
        tsa_token       BLOB
    );
    CREATE INDEX checkpoints_event ON checkpoints (event_id);
    CREATE TABLE cases (
        key       TEXT PRIMARY KEY,
        opened_ms INTEGER NOT NULL,
        opened_by TEXT NOT NULL,
        note      TEXT NOT NULL
    );
    CREATE TABLE bundles (
        id       INTEGER PRIMARY KEY,
        case_key TEXT NOT NULL,
        bundle   TEXT NOT NULL,
        built_ms INTEGER NOT NULL,
        built_by TEXT NOT NULL,
        host     TEXT NOT NULL,
        command  TEXT NOT NULL,
        file     TEXT NOT NULL,
        sha256   TEXT NOT NULL,
        bytes    INTEGER NOT NULL,
        events   INTEGER NOT NULL
    );
    CREATE INDEX bundles_case ON bundles (case_key, id);
    "#,
    // 9: the dashboard. A person's review of a flag (who, when, what they decided and why);
    // images found elsewhere that were uploaded to match, kept with the case they were
    // attached to so its next bundle carries them.
    r#"
    CREATE TABLE reviews (
        id       INTEGER PRIMARY KEY,
        key      TEXT NOT NULL,
        ts_ms    INTEGER NOT NULL,
        reviewer TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('confirm', 'dismiss', 'undismiss')),
        note     TEXT NOT NULL
    );
    CREATE INDEX reviews_key ON reviews (key, id);
    CREATE TABLE found_images (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        image       BLOB NOT NULL,
        uploaded_ms INTEGER NOT NULL,
        uploaded_by TEXT NOT NULL,
        case_key    TEXT
    );
    CREATE INDEX found_images_case ON found_images (case_key) WHERE case_key IS NOT NULL;
    "#,
    // 10: where the hash chain begins. A store made before schema 2 holds events recorded before
    // there was a chain (no chain value, no address commitment); the chain begins at its first
    // chained event (or, when it has none yet, at the next event). Events before are reported
    // as not covered instead of as a break, and a store made since begins at 1.
    r#"
    INSERT OR IGNORE INTO meta (key, value)
    SELECT 'chain_from', CAST(coalesce(
        (SELECT min(id) FROM events WHERE chain IS NOT NULL),
        (SELECT max(id) + 1 FROM events),
        1) AS TEXT);
    "#,
    // 11: sealed tokens (48 bytes: seeds and origin encrypted under the deployment secret, so
    // that any replica serves them) beside those of 22 and 16 bytes. The CHECK is rebuilt as in
    // version 5, rows and ids unchanged, with the index of version 7.
    r#"
    CREATE TABLE tokens_v11 (
        id            INTEGER PRIMARY KEY,
        token         BLOB NOT NULL UNIQUE
                      CHECK (length(token) = 48 OR length(token) = 22 OR length(token) = 16),
        identity_seed INTEGER NOT NULL,
        variant_seed  INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        renderer      INTEGER NOT NULL,
        created_ms    INTEGER NOT NULL,
        client_key    TEXT NOT NULL,
        minted_by     TEXT NOT NULL,
        minting_event INTEGER,
        hash_scheme   INTEGER REFERENCES hash_schemes (id),
        phash         INTEGER,
        dhash         INTEGER,
        center_phash  INTEGER,
        parent_token  BLOB,
        depth         INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO tokens_v11 (id, token, identity_seed, variant_seed, size, renderer, created_ms,
        client_key, minted_by, minting_event, hash_scheme, phash, dhash, center_phash,
        parent_token, depth)
    SELECT id, token, identity_seed, variant_seed, size, renderer, created_ms,
        client_key, minted_by, minting_event, hash_scheme, phash, dhash, center_phash,
        parent_token, depth
    FROM tokens;
    DROP TABLE tokens;
    ALTER TABLE tokens_v11 RENAME TO tokens;
    CREATE INDEX tokens_edge_created ON tokens (created_ms) WHERE minted_by = 'edge';
    "#,
];

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::Token;
    use crate::store::{tokens, Store};

    /// A store made by the first schema, with events, tokens and identities in it, is brought
    /// to the current one: every row is still read as before, `db check`'s chain check passes
    /// (events from before the chain are reported, not a break), the recorder chains new
    /// events after them, and retention can delete the old ones with the chain still whole.
    #[test]
    fn a_store_of_the_first_schema_with_data_is_upgraded_and_keeps_working() {
        use crate::config::RecordConfig;
        use crate::metrics::Metrics;
        use crate::record::{self, chain, privacy, Event, Kind};
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        let now = crate::store::now_ms();
        let old_token = Token::from_bytes(&[5u8; 16]).unwrap();
        {
            let conn = Connection::open(dir.path().join("faceprobe.db")).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO tokens (token, identity_seed, variant_seed, size, renderer,
                     created_ms, client_key, minted_by, minting_event)
                 VALUES (?1, 11, 12, 256, 1, ?2, 'c:old', 'edge', 1)",
                rusqlite::params![old_token.as_bytes(), now - 100 * day],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO client_identities VALUES ('c:old', 11, 0, 1)",
                [],
            )
            .unwrap();
            for (id, path, kind, token) in [
                (1, "/", "page", None),
                (
                    2,
                    "/_fp/c/x.jpg",
                    "canary",
                    Some(old_token.as_bytes().to_vec()),
                ),
                (3, "/robots.txt", "robots", None),
            ] {
                conn.execute(
                    "INSERT INTO events (id, ts_ms, client_ip, client_key, method, host, path,
                         status, bytes, duration_us, user_agent, cookie_sent, header_order,
                         kind, token)
                     VALUES (?1, ?2, '192.0.2.9', 'c:old', 'GET', 'site', ?3, 200, 10, 5,
                         'old-agent', 0, 'host,user-agent', ?4, ?5)",
                    rusqlite::params![id, now - 100 * day + id, path, kind, token],
                )
                .unwrap();
            }
        }
        let store = Store::open(dir.path()).unwrap();
        let version: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(store.integrity_problems().unwrap().is_empty());
        let fk: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fk, 0);
        let agent: String = store
            .conn()
            .query_row("SELECT user_agent FROM events_full WHERE id = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            agent, "old-agent",
            "old events read through the view as before"
        );
        let fetches = tokens::fetches(store.conn(), &old_token).unwrap();
        assert_eq!(fetches.len(), 1, "the old token still leads to its fetch");
        let v = chain::verify(store.conn())
            .unwrap()
            .expect("the chain verifies");
        assert_eq!((v.before_chain, v.events), (3, 0));
        drop(store);

        // New events are chained after the old ones.
        let config = RecordConfig::default();
        let (rec, writer) = record::start(
            dir.path(),
            &config,
            [1; 32],
            std::sync::Arc::new(Metrics::default()),
        )
        .unwrap();
        for i in 0..5 {
            rec.record_blocking(Event {
                ts_ms: now - i,
                ip: Some(std::net::IpAddr::from([198, 51, 100, 1])),
                client_key: "c:new".into(),
                method: "GET".into(),
                path: format!("/page/{i}"),
                status: 200,
                kind: Some(Kind::Page),
                ..Event::default()
            })
            .unwrap();
        }
        rec.flush_blocking().unwrap();
        drop(rec);
        writer.join();
        let mut conn = Store::open(dir.path()).unwrap().into_conn();
        let v = chain::verify(&conn).unwrap().expect("the chain verifies");
        assert_eq!((v.before_chain, v.events), (3, 5));

        // Retention deletes the old events; the chain still verifies from the anchor.
        let shorter = RecordConfig {
            retention_days: 30,
            ..config
        };
        privacy::run(&mut conn, &privacy::ip_key(&[1; 32]), &shorter, now).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE client_key = 'c:old'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        let v = chain::verify(&conn).unwrap().expect("the chain verifies");
        assert_eq!((v.before_chain, v.events, v.anchors_used), (0, 5, 1));
    }

    /// A store left by a version-4 build keeps its tokens of 16 bytes, readable by text as
    /// before, and takes the new 22-byte tokens after the upgrade.
    #[test]
    fn version_4_tokens_survive_the_upgrade_next_to_time_ordered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faceprobe.db");
        let old = Token::from_bytes(&[9u8; 16]).unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute(
                "INSERT INTO tokens (id, token, identity_seed, variant_seed, size, renderer,
                     created_ms, client_key, minted_by, minting_event, phash, parent_token, depth)
                 VALUES (7, ?1, 11, 12, 256, 1, 1000, 'c:old', 'edge', 3, 42, ?1, 2)",
                [old.as_bytes()],
            )
            .unwrap();
            // The old table refuses what the new format needs.
            assert!(conn
                .execute(
                    "INSERT INTO tokens (token, identity_seed, variant_seed, size, renderer,
                         created_ms, client_key, minted_by) VALUES (?1, 1, 1, 1, 1, 1, 'c', 'e')",
                    [Token::random().as_bytes()],
                )
                .is_err());
        }
        let store = Store::open(dir.path()).unwrap();
        let row = tokens::by_token(store.conn(), &old.to_string().parse().unwrap())
            .unwrap()
            .expect("the old token is found after the upgrade");
        assert_eq!((row.id, row.identity_seed, row.variant_seed), (7, 11, 12));
        assert_eq!((row.minting_event, row.depth), (Some(3), 2));
        assert_eq!(row.parent_token, Some(old));
        let new = Token::random();
        let id = tokens::insert(
            store.conn(),
            &tokens::NewToken {
                token: new,
                identity_seed: 1,
                variant_seed: 2,
                size: 256,
                renderer: 1,
                created_ms: 2000,
                client_key: "c:new",
                minted_by: "edge",
                minting_event: None,
                hashes: None,
                parent_token: None,
                depth: 0,
            },
        )
        .unwrap();
        assert_eq!(id, 8);
        assert_eq!(
            tokens::by_token(store.conn(), &new)
                .unwrap()
                .map(|r| r.token),
            Some(new)
        );
        // Nothing else can be stored as a token.
        assert!(store
            .conn()
            .execute(
                "INSERT INTO tokens (token, identity_seed, variant_seed, size, renderer,
                     created_ms, client_key, minted_by) VALUES (?1, 1, 1, 1, 1, 1, 'c', 'e')",
                [&[1u8; 20][..]],
            )
            .is_err());
        assert!(store.integrity_problems().unwrap().is_empty());
    }

    /// Events a version-5 build wrote keep their headers inline; after the upgrade they read
    /// the same through `events_full`, new events go through header sets, and one chain covers
    /// both.
    #[test]
    fn version_5_events_keep_their_inline_headers_and_the_chain_runs_on() {
        use crate::record::event::{chain_next_v1, Chained, CHAINED_COLUMNS};
        let dir = tempfile::tempdir().unwrap();
        let old = Chained {
            id: 1,
            ts_ms: crate::store::now_ms(),
            client_key: "c:old".into(),
            method: "GET".into(),
            path: "/before".into(),
            user_agent: Some("OldBrowser/1".into()),
            accept: Some("text/html".into()),
            sec_fetch_dest: Some("document".into()),
            header_order: Some("host,user-agent".into()),
            kind: "page".into(),
            ..Chained::default()
        };
        {
            let conn = Connection::open(dir.path().join("faceprobe.db")).unwrap();
            for sql in &MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            conn.execute(
                "INSERT INTO events (id, ts_ms, client_key, method, path, status, bytes,
                     duration_us, user_agent, accept, sec_fetch_dest, cookie_sent, header_order,
                     kind, chain)
                 VALUES (1, ?1, 'c:old', 'GET', '/before', 0, 0, 0, 'OldBrowser/1', 'text/html',
                     'document', 0, 'host,user-agent', 'page', ?2)",
                rusqlite::params![old.ts_ms, &chain_next_v1(&[0; 32], &old)[..]],
            )
            .unwrap();
        }
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
        let config = crate::config::RecordConfig::default();
        let (rec, writer) = crate::record::start(dir.path(), &config, [3; 32], metrics).unwrap();
        rec.record_blocking(crate::record::Event {
            ts_ms: old.ts_ms + 1,
            client_key: "c:new".into(),
            method: "GET".into(),
            path: "/after".into(),
            user_agent: Some("NewBrowser/2".into()),
            header_order: "host".into(),
            kind: Some(crate::record::Kind::Page),
            ..Default::default()
        })
        .unwrap();
        rec.flush_blocking().unwrap();
        drop(rec);
        writer.join();
        let store = Store::open(dir.path()).unwrap();
        let read: Vec<Chained> = store
            .conn()
            .prepare(&format!(
                "SELECT {CHAINED_COLUMNS} FROM events_full ORDER BY id"
            ))
            .unwrap()
            .query_map([], Chained::from_row)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read[0], old);
        assert_eq!(read[1].user_agent.as_deref(), Some("NewBrowser/2"));
        assert_eq!(read[1].accept, None);
        let sets: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM header_sets", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sets, 1, "the old event's headers stay where they were");
        let verified = crate::record::chain::verify(store.conn()).unwrap().unwrap();
        assert_eq!(verified.events, 2);
    }
}
