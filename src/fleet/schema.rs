//! The central store's schema in PostgreSQL: forward-only migrations, applied by whichever
//! instance connects first (under an advisory lock, so instances starting together apply each
//! once), and the monthly partitions of the events table.
//!
//! Every shipped row is keyed by the instance that recorded it and its id in that instance's
//! SQLite store, so shipping twice changes nothing. Events are partitioned by month of their
//! time (`ts_ms`): retention drops whole partitions, and queries over recent events read only
//! recent ones.

use super::FleetError;
use deadpool_postgres::Pool;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio_postgres::GenericClient;

/// Key of the advisory lock migrations and partition creation take.
const LOCK: i64 = 0x6661_6365_7072_6f62; // "faceprob"

/// Each migration once, in order; never edited once released (add one instead).
const MIGRATIONS: &[&str] = &[
    // 1: instances, shipped rows, the cursors of shipping, the fleet detector's flags.
    r#"
    CREATE TABLE fleet_meta (
        key   text PRIMARY KEY,
        value bytea NOT NULL
    );
    CREATE TABLE instances (
        instance     text PRIMARY KEY,
        site         text NOT NULL,
        replica      integer NOT NULL,
        version      text NOT NULL,
        first_ms     bigint NOT NULL,
        last_ms      bigint NOT NULL,
        chain_from   bigint,
        rule2_from   bigint,
        public_key   text
    );
    CREATE TABLE shipping (
        instance   text NOT NULL,
        stream     text NOT NULL,
        last_id    bigint NOT NULL,
        shipped_ms bigint NOT NULL,
        PRIMARY KEY (instance, stream)
    );
    CREATE TABLE events (
        instance        text NOT NULL,
        id              bigint NOT NULL,
        ts_ms           bigint NOT NULL,
        site            text NOT NULL,
        client_key      text NOT NULL,
        actor           text,
        address         text,
        prefix          text,
        ip_commit       bytea,
        method          text NOT NULL,
        host            text,
        path            text NOT NULL,
        query           text,
        status          integer NOT NULL,
        bytes           bigint NOT NULL,
        duration_us     bigint NOT NULL,
        user_agent      text,
        referer         text,
        accept          text,
        accept_language text,
        accept_encoding text,
        sec_fetch_site  text,
        sec_fetch_mode  text,
        sec_fetch_dest  text,
        sec_fetch_user  text,
        cookie_sent     boolean NOT NULL,
        header_order    text,
        kind            text NOT NULL,
        token           bytea,
        robots_sha256   bytea,
        chain           bytea,
        received_ms     bigint NOT NULL
                        DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
        PRIMARY KEY (instance, id, ts_ms)
    ) PARTITION BY RANGE (ts_ms);
    CREATE INDEX events_token ON events (token) WHERE token IS NOT NULL;
    CREATE INDEX events_actor ON events (actor, ts_ms);
    CREATE INDEX events_ts ON events (ts_ms);
    CREATE TABLE tokens (
        instance      text NOT NULL,
        id            bigint NOT NULL,
        token         bytea NOT NULL,
        identity_seed bigint NOT NULL,
        variant_seed  bigint NOT NULL,
        size          integer NOT NULL,
        renderer      integer NOT NULL,
        created_ms    bigint NOT NULL,
        client_key    text NOT NULL,
        minted_by     text NOT NULL,
        minting_event bigint,
        hash_scheme   text,
        phash         bigint,
        dhash         bigint,
        center_phash  bigint,
        parent_token  bytea,
        depth         integer NOT NULL,
        PRIMARY KEY (instance, id)
    );
    CREATE INDEX tokens_token ON tokens (token);
    CREATE INDEX tokens_hashed ON tokens (instance, id) WHERE phash IS NOT NULL;
    CREATE TABLE robots (
        instance        text NOT NULL,
        id              bigint NOT NULL,
        sha256          bytea NOT NULL,
        body            bytea NOT NULL,
        source          text NOT NULL,
        first_served_ms bigint NOT NULL,
        PRIMARY KEY (instance, id)
    );
    CREATE TABLE flags (
        instance text NOT NULL,
        id       bigint NOT NULL,
        key      text NOT NULL,
        ts_ms    bigint NOT NULL,
        level    text,
        score    double precision NOT NULL,
        at_event bigint,
        requests bigint,
        note     text NOT NULL,
        reasons  text,
        PRIMARY KEY (instance, id)
    );
    CREATE TABLE reviews (
        instance text NOT NULL,
        id       bigint NOT NULL,
        key      text NOT NULL,
        ts_ms    bigint NOT NULL,
        reviewer text NOT NULL,
        decision text NOT NULL,
        note     text NOT NULL,
        PRIMARY KEY (instance, id)
    );
    CREATE TABLE checkpoints (
        instance        text NOT NULL,
        seq             bigint NOT NULL,
        ts_ms           bigint NOT NULL,
        event_id        bigint NOT NULL,
        chain           bytea NOT NULL,
        events          bigint NOT NULL,
        message         text NOT NULL,
        signature       text NOT NULL,
        key_fingerprint text NOT NULL,
        made_by         text NOT NULL,
        PRIMARY KEY (instance, seq)
    );
    CREATE TABLE fleet_flags (
        actor      text PRIMARY KEY,
        level      text NOT NULL,
        score      double precision NOT NULL,
        reasons    text NOT NULL,
        instances  text[] NOT NULL,
        sites      text[] NOT NULL,
        client_keys text[] NOT NULL,
        requests   bigint NOT NULL,
        canaries   bigint NOT NULL,
        first_ms   bigint NOT NULL,
        last_ms    bigint NOT NULL,
        updated_ms bigint NOT NULL
    );
    CREATE TABLE fleet_flag_history (
        id      bigserial PRIMARY KEY,
        actor   text NOT NULL,
        ts_ms   bigint NOT NULL,
        level   text NOT NULL,
        score   double precision NOT NULL,
        reasons text NOT NULL
    );
    "#,
];

/// Brings the central store to the current schema and returns the fleet's key (32 random
/// bytes made once, kept in the store): the actor pseudonyms every instance computes with it
/// line up across sites whose deployment secrets differ.
pub async fn migrate(pool: &Pool, url: &str) -> Result<[u8; 32], FleetError> {
    let pg = |e: &dyn std::error::Error| FleetError::pg(url, e);
    let mut client = pool.get().await.map_err(|e| pg(&e))?;
    let tx = client.transaction().await.map_err(|e| pg(&e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(|e| pg(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS fleet_schema (
             version    integer PRIMARY KEY,
             applied_ms bigint NOT NULL
         )",
    )
    .await
    .map_err(|e| pg(&e))?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM fleet_schema", &[])
        .await
        .map_err(|e| pg(&e))?
        .get(0);
    if found as usize > MIGRATIONS.len() {
        return Err(FleetError::said(
            url,
            format!(
                "its fleet schema is version {found}, this faceprobe knows {}: upgrade this \
                 instance to the version the others run",
                MIGRATIONS.len()
            ),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await.map_err(|e| pg(&e))?;
        tx.execute(
            "INSERT INTO fleet_schema (version, applied_ms) VALUES ($1, $2)",
            &[&((i + 1) as i32), &crate::store::now_ms()],
        )
        .await
        .map_err(|e| pg(&e))?;
        tracing::info!(version = i + 1, "fleet store schema migrated");
    }
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    tx.execute(
        "INSERT INTO fleet_meta (key, value) VALUES ('actor_key', $1) ON CONFLICT DO NOTHING",
        &[&&key[..]],
    )
    .await
    .map_err(|e| pg(&e))?;
    let stored: Vec<u8> = tx
        .query_one("SELECT value FROM fleet_meta WHERE key = 'actor_key'", &[])
        .await
        .map_err(|e| pg(&e))?
        .get(0);
    tx.commit().await.map_err(|e| pg(&e))?;
    stored.try_into().map_err(|_| {
        FleetError::said(
            url,
            "fleet_meta.actor_key is not 32 bytes (changed by hand?)",
        )
    })
}

/// The month partitions of `events` already made (by this process).
#[derive(Default)]
pub struct Partitions(Mutex<HashSet<i64>>);

const DAY_MS: i64 = 86_400_000;

/// First millisecond of the month holding `ts_ms`, and of the next, and the partition's name.
fn month_of(ts_ms: i64) -> (i64, i64, String) {
    let days = ts_ms.div_euclid(DAY_MS);
    let (y, m, _) = civil_from_days(days);
    let start = days_from_civil(y, m, 1) * DAY_MS;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = days_from_civil(ny, nm, 1) * DAY_MS;
    (start, end, format!("events_{y:04}_{m:02}"))
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Partitions {
    /// Makes the month partitions the events of `times` fall in, when missing.
    pub async fn ensure(
        &self,
        client: &impl GenericClient,
        url: &str,
        times: impl Iterator<Item = i64>,
    ) -> Result<(), FleetError> {
        let mut wanted: Vec<(i64, i64, String)> = Vec::new();
        {
            let made = self.0.lock().unwrap_or_else(|e| e.into_inner());
            for t in times {
                let m = month_of(t);
                if !made.contains(&m.0) && !wanted.iter().any(|w| w.0 == m.0) {
                    wanted.push(m);
                }
            }
        }
        for (start, end, name) in wanted {
            // One instance at a time: two making the same partition would collide.
            client
                .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
                .await
                .map_err(|e| FleetError::pg(url, e))?;
            let made = client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF events \
                     FOR VALUES FROM ({start}) TO ({end})"
                ))
                .await;
            let unlocked = client
                .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
                .await;
            made.map_err(|e| FleetError::pg(url, e))?;
            unlocked.map_err(|e| FleetError::pg(url, e))?;
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(start);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_begin_and_end_on_the_calendar() {
        // 2026-12-06T23:59:58Z
        let (start, end, name) = month_of(1_796_601_598_000);
        assert_eq!(name, "events_2026_12");
        assert_eq!(start, 1_796_083_200_000); // 2026-12-01
        assert_eq!(end, 1_798_761_600_000); // 2027-01-01
        let (s, e, n) = month_of(951_782_400_000); // 2000-02-29
        assert_eq!(n, "events_2000_02");
        assert_eq!(e - s, 29 * DAY_MS);
        assert_eq!(month_of(0).2, "events_1970_01");
        for days in [-1000, 0, 59, 60, 10_000, 20_000, 40_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
