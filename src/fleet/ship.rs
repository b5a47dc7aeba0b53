//! Shipping: a thread of its own reads what this instance committed to its SQLite store and
//! copies it to PostgreSQL, stream by stream (events, tokens, robots.txt versions, flags,
//! reviews, signed checkpoints), each in id order.
//!
//! Each round sends at most `fleet.batch` rows of a stream in one PostgreSQL transaction, which
//! also moves the stream's cursor (`shipping`): so a round is shipped whole or not at all, and a
//! row sent twice (a round retried after an answer was lost) is ignored (`ON CONFLICT`). After a
//! restart, or when PostgreSQL comes back, shipping resumes from the cursors stored there. The
//! request path never sees any of this: it writes SQLite as always, and the backlog is the
//! local store itself (bounded by its retention).

use super::schema::{self, Partitions};
use super::FleetError;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::record::event::{Chained, CHAINED_COLUMNS};
use crate::store::{now_ms, Store};
use deadpool_postgres::Pool;
use hmac::{Hmac, Mac};
use rusqlite::{params, Connection};
use sha2::Sha256;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::GenericClient;

/// The streams shipped, in the order of a round.
pub const STREAMS: [&str; 6] = [
    "events",
    "tokens",
    "robots",
    "flags",
    "reviews",
    "checkpoints",
];

/// What the shipper needs to know of its instance.
#[derive(Clone)]
pub struct Instance {
    pub name: String,
    pub site: String,
    pub replica: u16,
    pub data_dir: PathBuf,
    pub public_key: Option<String>,
}

impl Instance {
    pub fn of(config: &Config) -> Instance {
        let name = config.fleet.instance_name();
        Instance {
            replica: crate::canary::seal::Sealer::replica_of(&name),
            name,
            site: super::site_name(config),
            data_dir: config.store.data_dir.clone(),
            public_key: None,
        }
    }
}

/// A connection pool to the fleet store (connections are made when first needed).
pub fn pool(url: &str, timeout: Duration, size: usize) -> Result<Pool, FleetError> {
    let mut pg: tokio_postgres::Config = url.parse().map_err(|e| FleetError::pg(url, e))?;
    pg.connect_timeout(timeout);
    pg.application_name("faceprobe");
    let ms = timeout.as_millis();
    pg.options(format!("-c statement_timeout={ms} -c lock_timeout={ms}"));
    let manager = deadpool_postgres::Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| FleetError::pg(url, e))
}

/// The fleet's pseudonyms of one client: the actor (address and user agent, like an
/// instance's client key but under the fleet's key, so it is the same on every site), its
/// address alone, and its network (/24, /56).
pub struct Pseudonyms {
    key: Hmac<Sha256>,
}

impl Pseudonyms {
    pub fn new(fleet_key: &[u8; 32]) -> Pseudonyms {
        Pseudonyms {
            key: Hmac::<Sha256>::new_from_slice(fleet_key).expect("any key length"),
        }
    }

    fn mac(&self, parts: &[&[u8]], prefix: &str, len: usize) -> String {
        let mut mac = self.key.clone();
        for p in parts {
            mac.update(p);
            mac.update(&[0]);
        }
        format!(
            "{prefix}{}",
            hex::encode(&mac.finalize().into_bytes()[..len])
        )
    }

    /// (actor, address, network) of a client address and user agent.
    pub fn of(&self, ip: IpAddr, user_agent: Option<&str>) -> (String, String, String) {
        let text = ip.to_string();
        let ua = user_agent.unwrap_or("").as_bytes();
        (
            self.mac(&[b"actor", text.as_bytes(), ua], "a:", 12),
            self.mac(&[b"address", text.as_bytes()], "ip:", 10),
            self.mac(
                &[b"network", crate::record::privacy::prefix(ip).as_bytes()],
                "net:",
                10,
            ),
        )
    }
}

/// The running shipper; `finish` ships what is left (within a grace time) and stops it.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Shipper {
    /// Starts shipping to `url` on a thread of its own; errors only if the thread cannot start.
    pub fn start(
        config: &Config,
        url: String,
        instance: Instance,
        metrics: Arc<Metrics>,
        alerting: Option<super::detect::Alerting>,
    ) -> std::io::Result<Shipper> {
        let stop = Arc::new(AtomicBool::new(false));
        let fleet = config.fleet.clone();
        let detect_config = config.detect.clone();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("faceprobe-ship".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "the fleet shipper could not start its runtime; nothing is shipped");
                        return;
                    }
                };
                runtime.block_on(run(
                    Settings {
                        fleet,
                        detect: detect_config,
                        alerting,
                    },
                    url,
                    instance,
                    metrics,
                    stopping,
                ));
            })?;
        Ok(Shipper { stop, thread })
    }

    /// Asks the shipper to ship what is committed and stop; waits at most `grace`.
    pub fn finish(self, grace: Duration) {
        self.stop.store(true, Relaxed);
        let deadline = std::time::Instant::now() + grace;
        while !self.thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        } else {
            tracing::warn!(
                "the fleet shipper did not catch up within {grace:?}; what is left is shipped at the next start"
            );
        }
    }
}

/// What the shipper runs with, besides where it ships.
struct Settings {
    fleet: crate::config::FleetConfig,
    detect: crate::config::DetectConfig,
    alerting: Option<super::detect::Alerting>,
}

async fn run(
    settings: Settings,
    url: String,
    instance: Instance,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) {
    let timeout = Duration::from_secs(settings.fleet.timeout_secs);
    let pool = match pool(&url, timeout, 2) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "fleet.postgres cannot be used; nothing is shipped");
            return;
        }
    };
    let mut backoff = Duration::from_millis(250);
    let mut was_down = false;
    loop {
        let result = session(&settings, &pool, &url, &instance, &metrics, &stop).await;
        match result {
            Ok(()) => return,
            Err(e) => {
                metrics.fleet_up.store(0, Relaxed);
                metrics.fleet_errors.fetch_add(1, Relaxed);
                if !was_down {
                    tracing::warn!(error = %e, "fleet store unreachable; serving and the local record go on, shipping resumes when it is back");
                    was_down = true;
                }
                if stop.load(Relaxed) {
                    return;
                }
                sleep_unless_stopped(backoff, &stop).await;
                backoff = (backoff * 2).min(timeout);
            }
        }
        if metrics.fleet_up.load(Relaxed) == 1 {
            backoff = Duration::from_millis(250);
            if was_down {
                tracing::info!("fleet store reachable again; shipping resumed");
                was_down = false;
            }
        }
    }
}

async fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end && !stop.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(20).min(d)).await;
    }
}

/// One connected stretch: migrate, register, then ship rounds until stopped (Ok) or until
/// PostgreSQL or the local store fails (Err).
async fn session(
    settings: &Settings,
    pool: &Pool,
    url: &str,
    instance: &Instance,
    metrics: &Metrics,
    stop: &AtomicBool,
) -> Result<(), FleetError> {
    let fleet = &settings.fleet;
    let key = schema::migrate(pool, url).await?;
    let local = Store::open(&instance.data_dir)?.into_conn();
    let shipper = Shipping {
        url,
        instance,
        pseudonyms: Pseudonyms::new(&key),
        partitions: Partitions::default(),
        local,
        batch: fleet.batch,
    };
    let client = pool.get().await.map_err(|e| FleetError::pg(url, e))?;
    shipper.register(&**client).await?;
    let mut cursors = shipper.cursors(&**client).await?;
    drop(client);
    metrics.fleet_up.store(1, Relaxed);
    let detect_every = Duration::from_secs(fleet.detect_interval_secs);
    let mut next_detect = tokio::time::Instant::now();
    loop {
        let stopping = stop.load(Relaxed);
        let mut client = pool.get().await.map_err(|e| FleetError::pg(url, e))?;
        let mut full = false;
        for (i, stream) in STREAMS.iter().enumerate() {
            let (sent, last) = shipper.round(&mut client, stream, cursors[i]).await?;
            if let Some(last) = last {
                cursors[i] = last;
            }
            if *stream == "events" {
                metrics.fleet_events_shipped.fetch_add(sent as u64, Relaxed);
            }
            metrics.fleet_rows_shipped.fetch_add(sent as u64, Relaxed);
            full |= sent >= fleet.batch;
        }
        metrics.fleet_up.store(1, Relaxed);
        let backlog = shipper.backlog(cursors[0])?;
        metrics.fleet_backlog.store(backlog, Relaxed);
        if tokio::time::Instant::now() >= next_detect {
            next_detect = tokio::time::Instant::now() + detect_every;
            let alerting = settings.alerting.as_ref();
            match super::detect::run(&**client, url, &settings.detect, alerting).await {
                Ok(Some(n)) if n > 0 => tracing::debug!(flags = n, "fleet detector ran"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "fleet detector failed; it runs again"),
            }
        }
        drop(client);
        if stopping && !full {
            return Ok(());
        }
        if !full {
            sleep_unless_stopped(Duration::from_millis(fleet.interval_ms), stop).await;
        }
    }
}

struct Shipping<'a> {
    url: &'a str,
    instance: &'a Instance,
    pseudonyms: Pseudonyms,
    partitions: Partitions,
    local: Connection,
    batch: usize,
}

impl Shipping<'_> {
    fn pg(&self, e: impl std::error::Error) -> FleetError {
        FleetError::pg(self.url, e)
    }

    async fn register(&self, client: &impl GenericClient) -> Result<(), FleetError> {
        let meta = |key: &str| -> Option<i64> {
            self.local
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                    r.get::<_, String>(0)
                })
                .ok()
                .and_then(|v| v.parse().ok())
        };
        let now = now_ms();
        client
            .execute(
                "INSERT INTO instances (instance, site, replica, version, first_ms, last_ms,
                     chain_from, rule2_from, public_key)
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)
                 ON CONFLICT (instance) DO UPDATE SET site = EXCLUDED.site,
                     replica = EXCLUDED.replica, version = EXCLUDED.version,
                     last_ms = EXCLUDED.last_ms, chain_from = EXCLUDED.chain_from,
                     rule2_from = EXCLUDED.rule2_from,
                     public_key = coalesce(EXCLUDED.public_key, instances.public_key)",
                &[
                    &self.instance.name,
                    &self.instance.site,
                    &i32::from(self.instance.replica),
                    &env!("CARGO_PKG_VERSION"),
                    &now,
                    &meta("chain_from"),
                    &meta("chain_rule2_from"),
                    &self.instance.public_key,
                ],
            )
            .await
            .map_err(|e| self.pg(e))?;
        Ok(())
    }

    /// Where each stream resumes: the last id PostgreSQL holds of this instance.
    async fn cursors(&self, client: &impl GenericClient) -> Result<[i64; 6], FleetError> {
        let rows = client
            .query(
                "SELECT stream, last_id FROM shipping WHERE instance = $1",
                &[&self.instance.name],
            )
            .await
            .map_err(|e| self.pg(e))?;
        let mut out = [0i64; 6];
        for r in rows {
            let stream: String = r.get(0);
            if let Some(i) = STREAMS.iter().position(|s| *s == stream) {
                out[i] = r.get(1);
            }
        }
        Ok(out)
    }

    /// Events committed locally and not yet shipped.
    fn backlog(&self, cursor: i64) -> Result<i64, FleetError> {
        let max: Option<i64> = self
            .local
            .query_row("SELECT max(id) FROM events", [], |r| r.get(0))?;
        Ok((max.unwrap_or(0) - cursor).max(0))
    }

    /// Ships one batch of `stream` after `cursor`: rows sent and the new cursor.
    async fn round(
        &self,
        client: &mut deadpool_postgres::Client,
        stream: &str,
        cursor: i64,
    ) -> Result<(usize, Option<i64>), FleetError> {
        let tx = client.transaction().await.map_err(|e| self.pg(e))?;
        let (sent, last) = match stream {
            "events" => self.events(&tx, cursor).await?,
            "tokens" => {
                let rows = self.local_tokens("t.id > ?1 ORDER BY t.id LIMIT ?2", cursor)?;
                let last = rows.last().map(|r| r.id);
                (self.put_tokens(&tx, &rows).await?, last)
            }
            "robots" => self.robots(&tx, cursor).await?,
            "flags" => self.flags(&tx, cursor).await?,
            "reviews" => self.reviews(&tx, cursor).await?,
            _ => self.checkpoints(&tx, cursor).await?,
        };
        if let Some(last) = last {
            tx.execute(
                "INSERT INTO shipping (instance, stream, last_id, shipped_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (instance, stream) DO UPDATE
                 SET last_id = greatest(shipping.last_id, EXCLUDED.last_id),
                     shipped_ms = EXCLUDED.shipped_ms",
                &[&self.instance.name, &stream, &last, &now_ms()],
            )
            .await
            .map_err(|e| self.pg(e))?;
        }
        tx.commit().await.map_err(|e| self.pg(e))?;
        Ok((sent, last))
    }

    async fn events(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        cursor: i64,
    ) -> Result<(usize, Option<i64>), FleetError> {
        let mut stmt = self.local.prepare_cached(&format!(
            "SELECT {CHAINED_COLUMNS}, chain, client_ip FROM events_full
             WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))?;
        let mut rows = stmt.query(params![cursor, self.batch as i64])?;
        let mut c = EventColumns::default();
        let mut fetched_tokens: Vec<Vec<u8>> = Vec::new();
        while let Some(row) = rows.next()? {
            let e = Chained::from_row(row)?;
            let chain: Option<Vec<u8>> = row.get(25)?;
            let ip: Option<String> = row.get(26)?;
            let (actor, address, prefix) =
                match ip.as_deref().and_then(|i| i.parse::<IpAddr>().ok()) {
                    Some(ip) => {
                        let (a, b, c) = self.pseudonyms.of(ip, e.user_agent.as_deref());
                        (Some(a), Some(b), Some(c))
                    }
                    None => (None, None, None),
                };
            if e.kind == "canary" && e.status < 400 {
                if let Some(t) = &e.token {
                    fetched_tokens.push(t.clone());
                }
            }
            c.push(e, chain, actor, address, prefix);
        }
        drop(rows);
        if c.id.is_empty() {
            return Ok((0, None));
        }
        self.partitions
            .ensure(&**tx, self.url, c.ts_ms.iter().copied())
            .await?;
        let n = c.id.len();
        let last = c.id.last().copied();
        let site = vec![self.instance.site.clone(); n];
        let instance = vec![self.instance.name.clone(); n];
        tx.execute(
            "INSERT INTO events (instance, id, ts_ms, site, client_key, actor, address, prefix,
                 ip_commit, method, host, path, query, status, bytes, duration_us, user_agent,
                 referer, accept, accept_language, accept_encoding, sec_fetch_site,
                 sec_fetch_mode, sec_fetch_dest, sec_fetch_user, cookie_sent, header_order,
                 kind, token, robots_sha256, chain)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[],
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::text[],
                 $11::text[], $12::text[], $13::text[], $14::int[], $15::bigint[],
                 $16::bigint[], $17::text[], $18::text[], $19::text[], $20::text[],
                 $21::text[], $22::text[], $23::text[], $24::text[], $25::text[],
                 $26::bool[], $27::text[], $28::text[], $29::bytea[], $30::bytea[],
                 $31::bytea[])
             ON CONFLICT DO NOTHING",
            &[
                &instance,
                &c.id,
                &c.ts_ms,
                &site,
                &c.client_key,
                &c.actor,
                &c.address,
                &c.prefix,
                &c.ip_commit,
                &c.method,
                &c.host,
                &c.path,
                &c.query,
                &c.status,
                &c.bytes,
                &c.duration_us,
                &c.user_agent,
                &c.referer,
                &c.accept,
                &c.accept_language,
                &c.accept_encoding,
                &c.sec_fetch_site,
                &c.sec_fetch_mode,
                &c.sec_fetch_dest,
                &c.sec_fetch_user,
                &c.cookie_sent,
                &c.header_order,
                &c.kind,
                &c.token,
                &c.robots_sha256,
                &c.chain,
            ],
        )
        .await
        .map_err(|e| self.pg(e))?;
        // The hashes of a canary are stored with its first fetch: its token row goes again.
        let mut rows = Vec::new();
        for t in &fetched_tokens {
            rows.extend(self.local_tokens("t.token = ?1 AND ?2 > 0", t)?);
        }
        self.put_tokens(tx, &rows).await?;
        Ok((n, last))
    }

    fn local_tokens(
        &self,
        condition: &str,
        arg: impl rusqlite::ToSql,
    ) -> Result<Vec<TokenRow>, FleetError> {
        let mut stmt = self.local.prepare_cached(&format!(
            "SELECT t.id, t.token, t.identity_seed, t.variant_seed, t.size, t.renderer,
                 t.created_ms, t.client_key, t.minted_by, t.minting_event, s.name, t.phash,
                 t.dhash, t.center_phash, t.parent_token, t.depth
             FROM tokens t LEFT JOIN hash_schemes s ON s.id = t.hash_scheme WHERE {condition}"
        ))?;
        let rows = stmt.query_map(params![arg, self.batch as i64], |r| {
            Ok(TokenRow {
                id: r.get(0)?,
                token: r.get(1)?,
                identity_seed: r.get(2)?,
                variant_seed: r.get(3)?,
                size: r.get(4)?,
                renderer: r.get(5)?,
                created_ms: r.get(6)?,
                client_key: r.get(7)?,
                minted_by: r.get(8)?,
                minting_event: r.get(9)?,
                hash_scheme: r.get(10)?,
                phash: r.get(11)?,
                dhash: r.get(12)?,
                center_phash: r.get(13)?,
                parent_token: r.get(14)?,
                depth: r.get(15)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn put_tokens(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        rows: &[TokenRow],
    ) -> Result<usize, FleetError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let col = |f: fn(&TokenRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        let opt = |f: fn(&TokenRow) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
        let int = |f: fn(&TokenRow) -> i32| rows.iter().map(f).collect::<Vec<i32>>();
        let instance = vec![self.instance.name.clone(); rows.len()];
        tx.execute(
            "INSERT INTO tokens (instance, id, token, identity_seed, variant_seed, size, renderer,
                 created_ms, client_key, minted_by, minting_event, hash_scheme, phash, dhash,
                 center_phash, parent_token, depth)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bigint[],
                 $5::bigint[], $6::int[], $7::int[], $8::bigint[], $9::text[], $10::text[],
                 $11::bigint[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[],
                 $16::bytea[], $17::int[])
             ON CONFLICT (instance, id) DO UPDATE SET hash_scheme = EXCLUDED.hash_scheme,
                 phash = EXCLUDED.phash, dhash = EXCLUDED.dhash,
                 center_phash = EXCLUDED.center_phash
             WHERE tokens.phash IS NULL AND EXCLUDED.phash IS NOT NULL",
            &[
                &instance,
                &col(|r| r.id),
                &rows.iter().map(|r| r.token.clone()).collect::<Vec<_>>(),
                &col(|r| r.identity_seed),
                &col(|r| r.variant_seed),
                &int(|r| r.size),
                &int(|r| r.renderer),
                &col(|r| r.created_ms),
                &rows
                    .iter()
                    .map(|r| r.client_key.clone())
                    .collect::<Vec<_>>(),
                &rows.iter().map(|r| r.minted_by.clone()).collect::<Vec<_>>(),
                &opt(|r| r.minting_event),
                &rows
                    .iter()
                    .map(|r| r.hash_scheme.clone())
                    .collect::<Vec<_>>(),
                &opt(|r| r.phash),
                &opt(|r| r.dhash),
                &opt(|r| r.center_phash),
                &rows
                    .iter()
                    .map(|r| r.parent_token.clone())
                    .collect::<Vec<_>>(),
                &int(|r| r.depth),
            ],
        )
        .await
        .map_err(|e| self.pg(e))?;
        Ok(rows.len())
    }

    async fn robots(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        cursor: i64,
    ) -> Result<(usize, Option<i64>), FleetError> {
        type Robots = (i64, Vec<u8>, Vec<u8>, String, i64);
        let rows: Vec<Robots> = self
            .local
            .prepare_cached(
                "SELECT rowid, sha256, body, source, first_served_ms FROM robots
                 WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            )?
            .query_map(params![cursor, self.batch as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        for (id, sha, body, source, first) in &rows {
            tx.execute(
                "INSERT INTO robots (instance, id, sha256, body, source, first_served_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[&self.instance.name, id, sha, body, source, first],
            )
            .await
            .map_err(|e| self.pg(e))?;
        }
        Ok((rows.len(), rows.last().map(|r| r.0)))
    }

    async fn flags(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        cursor: i64,
    ) -> Result<(usize, Option<i64>), FleetError> {
        type Flag = (
            i64,
            String,
            i64,
            Option<String>,
            f64,
            Option<i64>,
            Option<i64>,
            String,
            Option<String>,
        );
        let rows: Vec<Flag> = self
            .local
            .prepare_cached(
                "SELECT id, key, ts_ms, level, score, at_event, requests, note, reasons
                 FROM flag_history WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![cursor, self.batch as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        for f in &rows {
            tx.execute(
                "INSERT INTO flags (instance, id, key, ts_ms, level, score, at_event, requests,
                     note, reasons)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                &[
                    &self.instance.name,
                    &f.0,
                    &f.1,
                    &f.2,
                    &f.3,
                    &f.4,
                    &f.5,
                    &f.6,
                    &f.7,
                    &f.8,
                ],
            )
            .await
            .map_err(|e| self.pg(e))?;
        }
        Ok((rows.len(), rows.last().map(|r| r.0)))
    }

    async fn reviews(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        cursor: i64,
    ) -> Result<(usize, Option<i64>), FleetError> {
        let rows: Vec<(i64, String, i64, String, String, String)> = self
            .local
            .prepare_cached(
                "SELECT id, key, ts_ms, reviewer, decision, note FROM reviews
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![cursor, self.batch as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        for r in &rows {
            tx.execute(
                "INSERT INTO reviews (instance, id, key, ts_ms, reviewer, decision, note)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[&self.instance.name, &r.0, &r.1, &r.2, &r.3, &r.4, &r.5],
            )
            .await
            .map_err(|e| self.pg(e))?;
        }
        Ok((rows.len(), rows.last().map(|r| r.0)))
    }

    async fn checkpoints(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        cursor: i64,
    ) -> Result<(usize, Option<i64>), FleetError> {
        type Row = (i64, i64, i64, Vec<u8>, i64, String, String, String, String);
        let rows: Vec<Row> = self
            .local
            .prepare_cached(
                "SELECT seq, ts_ms, event_id, chain, events, message, signature,
                     key_fingerprint, made_by
                 FROM checkpoints WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(params![cursor, self.batch as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        for c in &rows {
            tx.execute(
                "INSERT INTO checkpoints (instance, seq, ts_ms, event_id, chain, events, message,
                     signature, key_fingerprint, made_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                &[
                    &self.instance.name,
                    &c.0,
                    &c.1,
                    &c.2,
                    &c.3,
                    &c.4,
                    &c.5,
                    &c.6,
                    &c.7,
                    &c.8,
                ],
            )
            .await
            .map_err(|e| self.pg(e))?;
        }
        Ok((rows.len(), rows.last().map(|r| r.0)))
    }
}

struct TokenRow {
    id: i64,
    token: Vec<u8>,
    identity_seed: i64,
    variant_seed: i64,
    size: i32,
    renderer: i32,
    created_ms: i64,
    client_key: String,
    minted_by: String,
    minting_event: Option<i64>,
    hash_scheme: Option<String>,
    phash: Option<i64>,
    dhash: Option<i64>,
    center_phash: Option<i64>,
    parent_token: Option<Vec<u8>>,
    depth: i32,
}

/// A batch of events as one array per column (sent with `unnest`: one statement per batch).
#[derive(Default)]
struct EventColumns {
    id: Vec<i64>,
    ts_ms: Vec<i64>,
    client_key: Vec<String>,
    actor: Vec<Option<String>>,
    address: Vec<Option<String>>,
    prefix: Vec<Option<String>>,
    ip_commit: Vec<Option<Vec<u8>>>,
    method: Vec<String>,
    host: Vec<Option<String>>,
    path: Vec<String>,
    query: Vec<Option<String>>,
    status: Vec<i32>,
    bytes: Vec<i64>,
    duration_us: Vec<i64>,
    user_agent: Vec<Option<String>>,
    referer: Vec<Option<String>>,
    accept: Vec<Option<String>>,
    accept_language: Vec<Option<String>>,
    accept_encoding: Vec<Option<String>>,
    sec_fetch_site: Vec<Option<String>>,
    sec_fetch_mode: Vec<Option<String>>,
    sec_fetch_dest: Vec<Option<String>>,
    sec_fetch_user: Vec<Option<String>>,
    cookie_sent: Vec<bool>,
    header_order: Vec<Option<String>>,
    kind: Vec<String>,
    token: Vec<Option<Vec<u8>>>,
    robots_sha256: Vec<Option<Vec<u8>>>,
    chain: Vec<Option<Vec<u8>>>,
}

impl EventColumns {
    fn push(
        &mut self,
        e: Chained,
        chain: Option<Vec<u8>>,
        actor: Option<String>,
        address: Option<String>,
        prefix: Option<String>,
    ) {
        self.id.push(e.id);
        self.ts_ms.push(e.ts_ms);
        self.client_key.push(e.client_key);
        self.actor.push(actor);
        self.address.push(address);
        self.prefix.push(prefix);
        self.ip_commit.push(e.ip_commit);
        self.method.push(e.method);
        self.host.push(e.host);
        self.path.push(e.path);
        self.query.push(e.query);
        self.status.push(e.status as i32);
        self.bytes.push(e.bytes);
        self.duration_us.push(e.duration_us);
        self.user_agent.push(e.user_agent);
        self.referer.push(e.referer);
        self.accept.push(e.accept);
        self.accept_language.push(e.accept_language);
        self.accept_encoding.push(e.accept_encoding);
        self.sec_fetch_site.push(e.sec_fetch_site);
        self.sec_fetch_mode.push(e.sec_fetch_mode);
        self.sec_fetch_dest.push(e.sec_fetch_dest);
        self.sec_fetch_user.push(e.sec_fetch_user);
        self.cookie_sent.push(e.cookie_sent);
        self.header_order.push(e.header_order);
        self.kind.push(e.kind);
        self.token.push(e.token);
        self.robots_sha256.push(e.robots_sha256);
        self.chain.push(chain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_the_same_under_one_fleet_key_and_hide_the_address() {
        let a = Pseudonyms::new(&[3; 32]);
        let b = Pseudonyms::new(&[3; 32]);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let (actor, address, net) = a.of(ip, Some("bot/1"));
        assert_eq!(
            b.of(ip, Some("bot/1")),
            (actor.clone(), address.clone(), net.clone())
        );
        assert!(actor.starts_with("a:") && !actor.contains("203.0.113"));
        let (actor2, address2, _) = a.of(ip, Some("bot/2"));
        assert_ne!(actor, actor2, "another agent is another actor");
        assert_eq!(address, address2);
        assert_eq!(net, a.of("203.0.113.99".parse().unwrap(), None).2);
        assert_ne!(Pseudonyms::new(&[4; 32]).of(ip, Some("bot/1")).0, actor);
    }
}
